import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { createUpstreamPool } from '../../src/proxy/transport.js';
import { usePatGateway } from '../helpers/gateway.js';
import { testPki } from '../helpers/tls.js';

const require = createRequire(import.meta.url);
const loaded = (pattern: RegExp) => Object.keys(require.cache).filter((file) => pattern.test(file.replaceAll('\\', '/')));

// Issue 23: the gateway loads undici's Pool and prom-client's four classes from their own files,
// not the packages' indexes (fetch, WebSocket, mocks; default metrics with @opentelemetry/api).
describe('a serving gateway loads only what its routes use', () => {
  const setup = usePatGateway();

  it("proxies a request without loading undici's index or @opentelemetry/api", async () => {
    const res = await fetch(new URL('/ws/prod/api/2.0/clusters/list', setup.gw.url));
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.deepEqual(loaded(/\/node_modules\/undici\/index\.js$/), [], 'undici/index.js was loaded');
    assert.deepEqual(loaded(/\/node_modules\/@opentelemetry\/api\//), [], '@opentelemetry/api was loaded');
    assert.deepEqual(loaded(/\/node_modules\/prom-client\/index\.js$/), [], 'prom-client/index.js was loaded');
    assert.ok(loaded(/\/node_modules\/undici\/lib\/dispatcher\/pool\.js$/).length === 1, "undici's Pool file is what serves");
  });

  // The Lakebase door loads with a route that has one (runtime/server.ts, generation.ts); this
  // gateway's one route has none. (node:http2 is no measure of the Spark door: undici loads it.)
  it('has not loaded pg-protocol without a Lakebase route', () => {
    assert.deepEqual(loaded(/\/node_modules\/pg-protocol\//), [], 'pg-protocol was loaded');
  });

  // The index is what puts `request` on undici's Dispatcher.prototype: a Pool from its own file
  // has none, and the token clients (Entra, Databricks OAuth) and the route probe call it.
  it('answers request() on an upstream pool, as the token clients and the route probe call it', async () => {
    const pool = createUpstreamPool(setup.upstream.url, {
      timeouts: { connectMs: 5_000, headersMs: 5_000, idleMs: 5_000, drainMs: 0 },
      caFile: testPki().caFile,
    });
    try {
      const res = await pool.request({ path: '/oidc/v1/token', method: 'GET' });
      assert.equal(res.statusCode, 200);
      await res.body.text();
    } finally {
      await pool.close();
    }
    assert.deepEqual(loaded(/\/node_modules\/undici\/index\.js$/), [], 'undici/index.js was loaded');
  });
});

// The files are internal paths (neither package has an `exports` map): a release that moves or
// renames them fails here rather than in a user's gateway.
describe("the files the gateway loads are the packages' own classes", () => {
  it('undici/lib/dispatcher/pool.js is undici.Pool', () => {
    assert.equal(require('undici/lib/dispatcher/pool.js'), require('undici').Pool);
  });

  it("prom-client/lib/{registry,counter,gauge,histogram}.js are prom-client's classes", () => {
    const prom = require('prom-client');
    for (const [file, name] of [
      ['registry', 'Registry'],
      ['counter', 'Counter'],
      ['gauge', 'Gauge'],
      ['histogram', 'Histogram'],
    ] as const) {
      assert.equal(require(`prom-client/lib/${file}.js`), prom[name], `prom-client/lib/${file}.js`);
    }
  });
});
