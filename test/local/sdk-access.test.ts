import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { defaultHandler, type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway, trustCa } from '../helpers/gateway.js';
import { rawRequest, request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';

const PAT = 'dapi0123456789abcdef0123456789abcdef';
const SECRET = 'f3c1a2b4-5d6e-4f70-8a9b-0c1d2e3f4a5b';

/** The request the Go and Python SDKs send for DATABRICKS_AUTH_TYPE=metadata-service. */
function sdkMetadataRequest(url: string, host: string, version: string | null = '1') {
  return request(url, {
    headers: { ...(version !== null ? { 'x-databricks-metadata-version': version } : {}), 'x-databricks-host': host },
  });
}

describe('per-route ports and the metadata service', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let routePort: number;

  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startTestGateway({
      flags: {
        workspace: [`prod=${upstream.url.origin}`, `dev=${upstream.url.origin.replace('127.0.0.1', 'localhost')}`],
        credential: 'pat',
        metadataService: true,
      },
      env: { DATABRICKS_TOKEN: PAT, DBX_GATEWAY_METADATA_SECRET: SECRET },
      configure: (config) => {
        trustCa(testPki().caFile)(config);
        config.routes.find((r) => r.name === 'prod')!.port = 0;
      },
    });
    routePort = gw.routePorts.get('prod')!;
  });
  beforeEach(() => upstream.handle(defaultHandler));
  after(async () => {
    await gw.shutdown(100);
    await upstream.close();
  });

  describe('per-route port', () => {
    it('serves the route with no prefix, every path including ones the gateway uses itself', async () => {
      const res = await request(`http://127.0.0.1:${routePort}/api/2.0/clusters/list?x=1`, { headers: { authorization: 'Bearer placeholder' } });
      assert.equal(res.status, 200);
      assert.equal(upstream.seen.at(-1)?.url, '/api/2.0/clusters/list?x=1');
      assert.equal(upstream.seen.at(-1)?.headers.authorization, `Bearer ${PAT}`);
      await request(`http://127.0.0.1:${routePort}/healthz`);
      assert.equal(upstream.seen.at(-1)?.url, '/healthz', 'the upstream owns every path on a route port');
    });

    it('rewrites redirects to the upstream into the bare local origin', async () => {
      upstream.handle((req, res) => {
        req.resume();
        res.writeHead(302, { location: `${upstream.url.origin}/login?next=%2F`, 'content-length': '0' });
        res.end();
      });
      const res = await request(`http://127.0.0.1:${routePort}/go`);
      assert.equal(res.headers.location, '/login?next=%2F');
    });

    it('keeps the Host guard and the path checks', async () => {
      const evil = await request(`http://127.0.0.1:${routePort}/api/2.0/clusters/list`, { headers: { host: 'evil.example' } });
      assert.equal(evil.status, 403);
      const absolute = await rawRequest(routePort, 'GET http://evil.example/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      assert.match(absolute, /^HTTP\/1\.1 400/);
      const dots = await rawRequest(routePort, 'GET /api/../x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      assert.match(dots, /^HTTP\/1\.1 400/);
    });
  });

  describe('metadata service', () => {
    const url = () => `${gw.url}/metadata/${SECRET}`;

    it('answers the SDK request with the token and its expiry as a JSON integer', async () => {
      const res = await sdkMetadataRequest(url(), upstream.url.origin);
      assert.equal(res.status, 200);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.match(res.text, /"expires_on":\d+[,}]/, 'a JSON number, not a string');
      const body = res.json<{ access_token: string; token_type: string; expires_on: number }>();
      assert.equal(body.access_token, PAT);
      assert.equal(body.token_type, 'Bearer');
      // As the Python SDK reads it: datetime.fromtimestamp(expires_on), expired within 40 s.
      assert.ok(Number.isInteger(body.expires_on) && body.expires_on * 1000 - Date.now() > 40_000);
    });

    it('matches hosts the way SDKs normalise them, including the per-route port', async () => {
      for (const host of [`${upstream.url.origin}/`, upstream.url.origin.toUpperCase(), `http://127.0.0.1:${routePort}`, `http://localhost:${routePort}`]) {
        assert.equal((await sdkMetadataRequest(url(), host)).status, 200, host);
      }
    });

    it('answers 4xx for a missing or unknown version, an unknown host and a wrong secret', async () => {
      const missing = await sdkMetadataRequest(url(), upstream.url.origin, null);
      assert.equal(missing.status, 400);
      assert.match(missing.json<{ message: string }>().message, /send X-Databricks-Metadata-Version: 1/);
      assert.equal((await sdkMetadataRequest(url(), upstream.url.origin, '2')).status, 400);
      const unknown = await sdkMetadataRequest(url(), 'https://adb-999.9.azuredatabricks.net');
      assert.equal(unknown.status, 404);
      assert.match(unknown.json<{ message: string }>().message, /no route serves host https:\/\/adb-999/);
      const wrong = await sdkMetadataRequest(`${gw.url}/metadata/${SECRET.slice(0, -1)}0`, upstream.url.origin);
      assert.equal(wrong.status, 403);
      assert.equal((await sdkMetadataRequest(`${gw.url}/metadata/`, upstream.url.origin)).status, 403);
      assert.equal((await request(url(), { method: 'POST', headers: { 'x-databricks-metadata-version': '1' } })).status, 400);
    });

    it('works end to end like an SDK: token from the metadata service, calls to the per-route port', async () => {
      const { access_token: token } = (await sdkMetadataRequest(url(), `http://127.0.0.1:${routePort}`)).json<{ access_token: string }>();
      const res = await request(`http://127.0.0.1:${routePort}/api/2.0/preview/scim/v2/Me`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200);
      assert.equal(upstream.seen.at(-1)?.headers.authorization, `Bearer ${PAT}`);
    });

    it('refuses absolute-form and dot-segment targets that would reach it, so its URL never reaches the log', async () => {
      for (const target of [`http://localhost/metadata/${SECRET}`, `/x/../metadata/${SECRET}`, `/x/%2e%2e/metadata/${SECRET}`]) {
        const reply = await rawRequest(
          gw.port,
          `GET ${target} HTTP/1.1\r\nHost: localhost\r\nX-Databricks-Metadata-Version: 1\r\nX-Databricks-Host: ${upstream.url.origin}\r\nConnection: close\r\n\r\n`,
        );
        assert.match(reply, /^HTTP\/1\.1 400 /, target);
      }
    });

    it('never logs the secret or the token', () => {
      assert.ok(gw.logText().includes('/metadata/[REDACTED]'));
      // The refused targets are logged too (one HTTP door, one line each), without the secret.
      assert.match(gw.logText(), /"path":"\[REDACTED\]","status":400/);
      assert.match(gw.logText(), /"path":"\/x\/\[REDACTED\]","status":400/);
      assert.ok(!gw.logText().includes(SECRET));
      assert.ok(!gw.logText().includes(PAT));
    });
  });
});

describe('metadata service off', () => {
  it('is not served unless enabled', async () => {
    const gw = await startTestGateway({ flags: { demo: true } });
    try {
      const res = await sdkMetadataRequest(`${gw.url}/metadata/${SECRET}`, 'https://x');
      assert.equal(res.status, 404);
    } finally {
      await gw.shutdown(100);
    }
  });
});
