import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { usePatGateway } from '../helpers/gateway.js';
import { rawRequest, request } from '../helpers/http.js';

const PAT = 'dapi5555555555555555555555555555aaaa';

describe('attacks from browsers and DNS rebinding', () => {
  const ctx = usePatGateway({
    pat: PAT,
    handler: (req, res) => {
      req.resume();
      // An upstream that itself allows any origin: the gateway must not pass that on.
      res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
      res.end('{}');
    },
    yaml: (upstream) =>
      `routes:\n  prod: { host: ${upstream.url.origin}, credential: pat }\nallowedHosts: [dbx-gateway]\nallowedOrigins: ["http://localhost:3000"]\n`,
  });
  const forwarded = () => ctx.upstream.seen.length;

  const get = (headers: Record<string, string>, path = '/ws/prod/api/2.0/clusters/list', method = 'GET') =>
    request(`${ctx.gw.url}${path}`, { method, headers });

  it('refuses Host names that are not loopback or allowed, with anchored matching', async () => {
    const before = forwarded();
    for (const host of [
      'evil.example',
      'localhost.evil.example',
      'evil-localhost',
      '127.0.0.1.nip.io',
      'dbx-gateway.evil.example',
      'xdbx-gateway',
      '0.0.0.0',
      '127.0.0.2',
    ]) {
      const res = await get({ host });
      assert.equal(res.status, 403, host);
      assert.equal(res.json<{ error_code: string }>().error_code, 'GATEWAY_FORBIDDEN');
    }
    // Userinfo tricks never parse as a Host: Node or the guard refuse them.
    const userinfo = await rawRequest(ctx.gw.port, 'GET /ws/prod/x HTTP/1.1\r\nHost: evil.example:8080@localhost\r\nConnection: close\r\n\r\n');
    assert.match(userinfo, /^HTTP\/1\.1 (400|403)/);
    assert.equal(forwarded(), before, 'nothing was forwarded');
    for (const host of ['localhost', 'LOCALHOST:1234', '127.0.0.1:9', '[::1]:8080', 'dbx-gateway', 'dbx-gateway:8080']) {
      assert.equal((await get({ host })).status, 200, host);
    }
  });

  it('refuses cross-site browser requests by Origin and by Sec-Fetch-Site, before any forwarding', async () => {
    const before = forwarded();
    const attacks: Array<Record<string, string>> = [
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { origin: 'http://localhost:3001' },
      { origin: 'http://localhost:3000.evil.example' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { origin: `http://127.0.0.1:${ctx.gw.port}`, 'sec-fetch-site': 'cross-site', host: 'localhost' },
    ];
    for (const headers of attacks) {
      const res = await get(headers, '/ws/prod/api/2.0/jobs/run-now', 'POST');
      assert.equal(res.status, 403, JSON.stringify(headers));
      assert.match(res.json<{ message: string }>().message, /allowedOrigins/);
      assert.equal(res.headers['access-control-allow-origin'], undefined);
    }
    assert.equal(forwarded(), before);
  });

  it('lets same-origin pages, typed URLs and non-browser clients through, without CORS headers', async () => {
    const cases: Array<Record<string, string>> = [
      {},
      { 'sec-fetch-site': 'none' },
      { origin: `http://127.0.0.1:${ctx.gw.port}`, 'sec-fetch-site': 'same-origin', host: `127.0.0.1:${ctx.gw.port}` },
    ];
    for (const headers of cases) {
      const res = await get(headers);
      assert.equal(res.status, 200, JSON.stringify(headers));
      assert.equal(res.headers['access-control-allow-origin'], undefined, 'the upstream "*" is dropped');
    }
  });

  it('sends CORS headers only to an allowed origin, and answers its preflight without forwarding', async () => {
    const res = await get({ origin: 'http://localhost:3000', 'sec-fetch-site': 'same-site' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], 'http://localhost:3000');
    assert.match(String(res.headers.vary), /Origin/);
    const before = forwarded();
    const preflight = await request(`${ctx.gw.url}/ws/prod/api/2.0/clusters/create`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-methods'], 'POST');
    assert.equal(preflight.headers['access-control-allow-headers'], 'content-type');
    assert.equal(forwarded(), before, 'the preflight is answered locally');
    const local = await request(`${ctx.gw.url}/healthz`, { headers: { origin: 'http://localhost:3000' } });
    assert.equal(local.headers['access-control-allow-origin'], 'http://localhost:3000');
  });

  it('refuses a cross-site WebSocket upgrade (cross-site WebSocket hijacking)', async () => {
    const reply = await rawRequest(
      ctx.gw.port,
      'GET /ws/prod/ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nOrigin: https://evil.example\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    assert.match(reply, /^HTTP\/1\.1 403 GATEWAY_FORBIDDEN/);
  });
});
