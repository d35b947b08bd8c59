import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { startPatGateway, usePatGateway } from '../helpers/gateway.js';
import { rawRequest, request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';

const PAT = 'dapi5555555555555555555555555555aaaa';
const UPGRADE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

/** A TLS upstream that answers every connection's first bytes with `answer`, exactly as given. */
async function startRawUpstream(answer: () => string): Promise<{ url: URL; close(): Promise<void> }> {
  const pki = testPki();
  const sockets = new Set<Socket>();
  const server = tls.createServer({ key: pki.key, cert: pki.cert }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('data', () => socket.end(answer(), 'latin1'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}`),
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('upgrade smuggling: an upgrade that declares a body', () => {
  const ctx = usePatGateway({
    pat: PAT,
    configure: (c) => {
      c.routes[0]!.readOnly = true;
    },
  });

  for (const framing of ['Content-Length: 30\r\n', 'Transfer-Encoding: chunked\r\n']) {
    it(`is refused with 400 and forwards nothing (${framing.trim()})`, async () => {
      const before = ctx.upstream.seen.length;
      const reply = await rawRequest(ctx.gw.port, `GET /ws/prod/api/2.0/clusters/list HTTP/1.1\r\nHost: localhost\r\n${UPGRADE}${framing}\r\n`, 1000);
      assert.match(reply, /^HTTP\/1\.1 400 /, reply);
      assert.match(reply, /must not carry a body/);
      // The exploit: the next request's first 30 bytes would have become the upgrade's "body".
      await request(`${ctx.gw.url}/ws/prod/api/2.0/clusters/get`);
      await request(`${ctx.gw.url}/ws/prod/api/2.0/clusters/get`);
      assert.deepEqual(
        ctx.upstream.seen.slice(before).map((s) => `${s.method} ${s.url}`),
        ['GET /api/2.0/clusters/get', 'GET /api/2.0/clusters/get'],
      );
    });
  }
});

describe('WebSocket upgrades in the request log and metrics', () => {
  it('are logged once and counted with their outcome, like any request', async () => {
    const upstream = await startFakeUpstream((req, res) => {
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error_code":"401"}');
    });
    const gw = await startPatGateway(upstream, PAT);
    try {
      await rawRequest(gw.port, `GET /ws/prod/ws HTTP/1.1\r\nHost: localhost\r\n${UPGRADE}Content-Length: 5\r\n\r\n`, 1000);
      await rawRequest(gw.port, `GET /ws/prod/ws HTTP/1.1\r\nHost: localhost\r\n${UPGRADE}\r\n`, 1000);
      const metrics = (await request(`${gw.url}/metrics`)).text;
      assert.match(metrics, /dbx_gateway_requests_total\{route="prod",method="GET",status="400",key="-"\} 1/);
      assert.match(metrics, /dbx_gateway_requests_total\{route="prod",method="GET",status="401",key="-"\} 1/);
      const lines = gw.logs.filter((l) => l.msg === 'request' && l.upgrade === true);
      assert.deepEqual(lines.map((l) => l.status).sort(), [400, 401]);
      assert.equal(lines.find((l) => l.status === 400)?.error, 'GATEWAY_BAD_REQUEST');
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });
});

describe('upgrade smuggling: a connection that carried an upgrade attempt', () => {
  it('is never returned to the pool, even when the upstream answers it as an ordinary request', async () => {
    const sockets: Array<{ url: string; socket: unknown }> = [];
    const upstream = await startFakeUpstream((req: IncomingMessage, res: ServerResponse) => {
      sockets.push({ url: req.url ?? '', socket: req.socket });
      req.resume();
      res.end('{"ignored":"upgrade"}');
    });
    const gw = await startPatGateway(upstream, PAT);
    try {
      const refused = await rawRequest(gw.port, `GET /ws/prod/ws-endpoint HTTP/1.1\r\nHost: localhost\r\n${UPGRADE}\r\n`, 1000);
      for (let i = 0; i < 3; i++) assert.equal((await request(`${gw.url}/ws/prod/api/2.0/clusters/list`)).status, 200);
      const upgradeSocket = sockets.find((s) => s.url === '/ws-endpoint')?.socket;
      assert.ok(upgradeSocket);
      assert.ok(
        sockets.filter((s) => s.url !== '/ws-endpoint').every((s) => s.socket !== upgradeSocket),
        'a later request rode the connection of the refused upgrade',
      );
      assert.match(refused, /^HTTP\/1\.1 200 /, refused);
      assert.match(refused, /connection: close/i);
      assert.match(refused, /\{"ignored":"upgrade"\}$/);
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });
});

describe('no upstream byte sequence crashes the process', () => {
  const answers: Record<string, { raw: string; status: number }> = {
    'a reason phrase with \\x01': { raw: 'HTTP/1.1 200 O\x01K\r\ncontent-length: 2\r\n\r\nok', status: 200 },
    'a reason phrase with \\x7f': { raw: 'HTTP/1.1 200 O\x7fK\r\ncontent-length: 2\r\n\r\nok', status: 200 },
    'status 099': { raw: 'HTTP/1.1 099 Hi\r\ncontent-length: 2\r\n\r\nok', status: 502 },
    'status 600': { raw: 'HTTP/1.1 600 Hi\r\ncontent-length: 2\r\n\r\nok', status: 502 },
  };
  let current = '';
  const ctx = usePatGateway({ pat: PAT, upstream: () => startRawUpstream(() => current) });

  for (const [name, { raw, status }] of Object.entries(answers)) {
    it(`answers ${status} for ${name}, relays no reason phrase, and keeps serving`, async () => {
      current = raw;
      const reply = await rawRequest(ctx.gw.port, 'GET /ws/prod/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', 1000);
      assert.match(reply, new RegExp(`^HTTP/1\\.1 ${status} [A-Za-z_ ]*\\r\\n`), JSON.stringify(reply));
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the control bytes are what the test looks for
      assert.ok(!/[\x01\x7f]/.test(reply), 'no control byte of the upstream is relayed');
      if (status === 502) assert.match(reply, /invalid HTTP status/);
      // The same bytes on a refused WebSocket upgrade.
      const upgrade = await rawRequest(ctx.gw.port, `GET /ws/prod/x HTTP/1.1\r\nHost: localhost\r\n${UPGRADE}\r\n`, 1000);
      assert.match(upgrade, new RegExp(`^HTTP/1\\.1 ${status} [A-Za-z_ ]*\\r\\n`), JSON.stringify(upgrade));
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the control bytes are what the test looks for
      assert.ok(!/[\x01\x7f]/.test(upgrade));
      assert.equal((await request(`${ctx.gw.url}/healthz`)).status, 200);
    });
  }
});

describe("HTML from a workspace never runs on the gateway's origin", () => {
  const ctx = usePatGateway({
    pat: PAT,
    handler: (req, res) => {
      req.resume();
      const type = new URL(req.url ?? '/', 'http://x').searchParams.get('type') ?? 'application/json';
      res.writeHead(200, { 'content-type': type });
      res.end(type.includes('html') ? '<script>fetch("/ws/prod/api/2.0/token/create",{method:"POST"})</script>' : '{}');
    },
  });

  for (const type of ['text/html; charset=utf-8', 'TEXT/HTML', 'application/xhtml+xml', 'image/svg+xml']) {
    it(`sandboxes ${type} with Content-Security-Policy: sandbox and nosniff`, async () => {
      const res = await request(`${ctx.gw.url}/ws/prod/files/export?type=${encodeURIComponent(type)}`);
      assert.equal(res.headers['content-security-policy'], 'sandbox');
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.equal(res.headers['content-type'], type);
    });
  }

  it('passes JSON and every other type unchanged', async () => {
    for (const type of ['application/json', 'text/plain', 'application/octet-stream']) {
      const res = await request(`${ctx.gw.url}/ws/prod/x?type=${encodeURIComponent(type)}`);
      assert.equal(res.headers['content-security-policy'], undefined, type);
      assert.equal(res.headers['x-content-type-options'], undefined, type);
    }
  });
});

describe('a rewritten Location never leaves the gateway', () => {
  it('collapses leading slashes on a per-route port, where the prefix is empty', async () => {
    let location = '';
    const upstream = await startFakeUpstream((req, res) => {
      req.resume();
      res.writeHead(302, { location });
      res.end();
    });
    const gw = await startPatGateway(upstream, PAT, (c) => {
      c.routes[0]!.port = 0;
    });
    try {
      const port = gw.routePorts.get('prod')!;
      const cases: Record<string, string> = {
        [`${upstream.url.origin}//evil.example/x`]: '/evil.example/x',
        [`${upstream.url.origin}///evil.example/x?y=1`]: '/evil.example/x?y=1',
        [`//${upstream.url.host}//evil.example/x`]: '/evil.example/x',
        [`${upstream.url.origin}/\\evil.example/x`]: '/evil.example/x',
        [`${upstream.url.origin}/ok?x=1`]: '/ok?x=1',
      };
      for (const [sent, expected] of Object.entries(cases)) {
        location = sent;
        const res = await request(`http://127.0.0.1:${port}/login`);
        assert.equal(res.headers.location, expected, sent);
        const prefixed = await request(`${gw.url}/ws/prod/login`);
        assert.equal(prefixed.headers.location, `/ws/prod${expected}`, sent);
      }
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });
});
