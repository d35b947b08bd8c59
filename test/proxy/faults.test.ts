import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { DEFAULT_LIMITS } from '../../src/config/types.js';
import { createApp } from '../../src/local/app.js';
import { createLogger } from '../../src/observability/logger.js';
import { createGatewayCore } from '../../src/runtime/core.js';
import { createAdmission } from '../../src/security/admission.js';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';

const env = { DATABRICKS_TOKEN: 'dapi11111111111111111111111111111111' };

describe('upstream faults', () => {
  it('answers 502 GATEWAY_UPSTREAM_UNREACHABLE when the upstream refuses connections', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const gw = await startTestGateway({ flags: { workspace: [`gone=https://127.0.0.1:${port}`], credential: 'pat' }, env });
    try {
      const res = await request(`${gw.url}/ws/gone/api/2.0/clusters/list`);
      assert.equal(res.status, 502);
      assert.equal(res.headers['x-dbx-gateway-error'], '1');
      const body = res.json<{ error_code: string; message: string }>();
      assert.equal(body.error_code, 'GATEWAY_UPSTREAM_UNREACHABLE');
      assert.match(body.message, /ECONNREFUSED/);
    } finally {
      await gw.shutdown(100);
    }
  });

  it('answers an unexpected error after dispatch 500 GATEWAY_INTERNAL_ERROR, its detail in the log only', async () => {
    const upstream = await startFakeUpstream();
    const gw = await startTestGateway({ flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'pat' }, env, configure: trustCa(testPki().caFile) });
    try {
      // A bug in a response pass, stood in for by a handler whose onHeaders throws: the real pool
      // sends the request and undici hands the thrown error to the gateway's onError.
      const pool = gw.routes.all[0]!.pool;
      const dispatch = pool.dispatch.bind(pool);
      pool.dispatch = (options, handler) =>
        dispatch(
          options,
          new Proxy(handler, {
            get(target, name) {
              if (name === 'onHeaders')
                return () => {
                  throw new TypeError('bug detail x-internal-7f3a');
                };
              const value = Reflect.get(target, name) as unknown;
              return typeof value === 'function' ? value.bind(target) : value;
            },
          }),
        );
      const res = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`);
      assert.equal(res.status, 500);
      assert.equal(res.json<{ error_code: string }>().error_code, 'GATEWAY_INTERNAL_ERROR');
      assert.doesNotMatch(res.text, /x-internal-7f3a/);
      assert.match(gw.logText(), /x-internal-7f3a/);
      assert.equal(upstream.seen.length, 1, 'the request went upstream');
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });

  it('answers 502, not a crash, when the upstream resets a request with a body', async () => {
    const upstream = await startFakeUpstream((req) => req.socket.destroy());
    const gw = await startTestGateway({ flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'pat' }, env, configure: trustCa(testPki().caFile) });
    try {
      const res = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`, { method: 'POST', body: 'x' });
      assert.equal(res.status, 502);
      const body = res.json<{ error_code: string; message: string }>();
      assert.equal(body.error_code, 'GATEWAY_UPSTREAM_UNREACHABLE');
      assert.match(body.message, /^could not reach https:\/\/127\.0\.0\.1:\d+: /);
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });

  it('answers 502 when the upstream certificate is not trusted (TLS verification stays on)', async () => {
    const upstream = await startFakeUpstream();
    const gw = await startTestGateway({ flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'pat' }, env });
    try {
      const res = await request(`${gw.url}/ws/prod/x`);
      assert.equal(res.status, 502);
      assert.equal(upstream.seen.length, 0);
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });

  it('answers 504 GATEWAY_UPSTREAM_TIMEOUT when response headers do not come in time, but lets a flowing body run', async () => {
    const upstream = await startFakeUpstream((req, res) => {
      req.resume();
      if (req.url === '/slow-headers') return; // never answers
      res.writeHead(200);
      let n = 0;
      const timer = setInterval(() => {
        res.write('x');
        if (++n === 6) {
          clearInterval(timer);
          res.end();
        }
      }, 100);
    });
    const gw = await startTestGateway({
      flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'pat' },
      env,
      configure: (c) => {
        trustCa(testPki().caFile)(c);
        c.timeouts.headersMs = 300;
        c.timeouts.idleMs = 300;
      },
    });
    try {
      const res = await request(`${gw.url}/ws/prod/slow-headers`);
      assert.equal(res.status, 504);
      assert.equal(res.json().error_code, 'GATEWAY_UPSTREAM_TIMEOUT');
      // 600 ms of body in 100 ms steps: longer than both timeouts, never idle for 300 ms.
      const flowing = await request(`${gw.url}/ws/prod/trickle`);
      assert.equal(flowing.status, 200);
      assert.equal(flowing.text, 'xxxxxx');
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });
});

describe('local endpoints', () => {
  it('serves /healthz, /readyz per route and /metrics without secrets', async () => {
    const upstream = await startFakeUpstream();
    const gw = await startTestGateway({
      flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'pat' },
      env,
      configure: trustCa(testPki().caFile),
    });
    try {
      assert.deepEqual((await request(`${gw.url}/healthz`)).json(), { status: 'ok' });
      const ready = await request(`${gw.url}/readyz`);
      assert.equal(ready.status, 200);
      const routes = ready.json<{ routes: Record<string, { ready: boolean; credential: string; expires_on: null }> }>().routes;
      assert.equal(routes.prod?.ready, true);
      assert.equal(routes.prod?.credential, 'pat');
      assert.equal(routes.prod?.expires_on, null);
      await request(`${gw.url}/ws/prod/api/2.0/clusters/list`);
      const metrics = await request(`${gw.url}/metrics`);
      assert.match(metrics.text, /dbx_gateway_requests_total\{route="prod",method="GET",status="200",key="-"\} 1/);
      assert.match(metrics.text, /dbx_gateway_token_fetches_total\{credential="pat",audience="databricks"\} 1/);
      assert.match(metrics.text, /dbx_gateway_response_bytes_total\{route="prod"\} \d+/);
      assert.ok(!metrics.text.includes(env.DATABRICKS_TOKEN));
      assert.ok(!ready.text.includes(env.DATABRICKS_TOKEN));
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });

  it('lets an in-flight request finish during the drain, then closes', async () => {
    let release: () => void = () => {};
    const upstream = await startFakeUpstream((req, res) => {
      req.resume();
      release = () => res.end('finished');
    });
    const gw = await startTestGateway({
      flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'pat' },
      env,
      configure: trustCa(testPki().caFile),
    });
    const inFlight = request(`${gw.url}/ws/prod/slow`);
    await upstream.requested((r) => r.url === '/slow');
    const stopped = gw.shutdown(5000);
    await assert.rejects(request(`${gw.url}/healthz`), 'no new connections while draining');
    release();
    const res = await inFlight;
    assert.equal(res.status, 200);
    assert.equal(res.text, 'finished');
    await stopped;
    await upstream.close();
  });

  it('answers /readyz 503 while draining', async () => {
    const core = await createGatewayCore(loadConfig({ env, cwd: '/nonexistent', flags: { workspace: ['prod=https://127.0.0.1:9'], credential: 'pat' } }));
    const app = createApp({
      routes: core.routes,
      tokens: core.tokens,
      metrics: core.metrics,
      logger: createLogger({ level: 'silent', stream: process.stderr, pretty: false }),
      admission: createAdmission({ allowedHosts: [], allowedOrigins: [], inboundKeys: [], limits: DEFAULT_LIMITS }),
      isDraining: () => true,
    });
    const res = await app.request(
      'http://localhost/readyz',
      { headers: { host: 'localhost' } },
      { incoming: { headers: { host: 'localhost' } }, outgoing: { once() {} } },
    );
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { status: string }).status, 'draining');
    await core.close();
  });
});
