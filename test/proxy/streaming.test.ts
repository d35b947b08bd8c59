import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { startTestGateway, type TestGateway, usePatGateway } from '../helpers/gateway.js';
import { streamRequest } from '../helpers/http.js';

const PAT = 'dapi00000000000000000000000000000000';

/** A gateway route "live" in front of a plain-HTTP upstream on `port` (PAT credential). */
function liveGateway(port: number): Promise<TestGateway> {
  return startTestGateway({ flags: { workspace: [`live=http://127.0.0.1:${port}`], credential: 'pat' }, env: { DATABRICKS_TOKEN: PAT } });
}

/** A WebSocket handshake to /ws/live through the gateway, with extra header lines. */
async function openUpgrade(gwPort: number, extraHeaders = ''): Promise<net.Socket> {
  const socket = net.connect(gwPort, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(
    'GET /ws/live/ws/v1/stream HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`,
  );
  return socket;
}

describe('streaming', () => {
  const ctx = usePatGateway({ pat: PAT });

  /** Upstream that hashes the request body and reports what it saw. */
  function hashingUpstream() {
    ctx.upstream.handle((req, res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
      });
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ bytes, sha256: hash.digest('hex'), auth: req.headers.authorization, expect: req.headers.expect ?? null }));
      });
    });
  }

  for (const expectContinue of [false, true]) {
    it(`streams a chunked upload ${expectContinue ? 'with' : 'without'} Expect: 100-continue and attaches the token`, async () => {
      hashingUpstream();
      const chunk = Buffer.alloc(64 * 1024, 7);
      const chunks = 64;
      const expected = createHash('sha256');
      for (let i = 0; i < chunks; i++) expected.update(chunk);
      const body = await streamRequest(
        `${ctx.gw.url}/ws/prod/api/2.0/fs/files/Volumes/x`,
        {
          method: 'PUT',
          headers: { 'transfer-encoding': 'chunked', authorization: 'Bearer client-placeholder', ...(expectContinue ? { expect: '100-continue' } : {}) },
        },
        (req) => {
          const write = () => {
            for (let i = 0; i < chunks; i++) req.write(chunk);
            req.end();
          };
          if (expectContinue) req.on('continue', write);
          else write();
        },
      );
      const seen = JSON.parse(body) as { bytes: number; sha256: string; auth: string };
      assert.equal(seen.bytes, chunk.length * chunks);
      assert.equal(seen.sha256, expected.digest('hex'));
      assert.equal(seen.auth, `Bearer ${PAT}`);
    });
  }

  it('flushes chunked and server-sent-event responses as they arrive', async () => {
    let sendNext: (() => void) | undefined;
    ctx.upstream.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: first\n\n');
      sendNext = () => res.end('data: second\n\n');
    });
    const res = await new Promise<http.IncomingMessage>((resolve) => http.get(`${ctx.gw.url}/ws/prod/sse`, { agent: false }, resolve));
    const [first] = (await once(res, 'data')) as [Buffer];
    // The first event arrived while the upstream still holds the response open.
    assert.equal(first.toString(), 'data: first\n\n');
    assert.ok(sendNext);
    sendNext();
    let rest = '';
    for await (const c of res) rest += c;
    assert.equal(rest, 'data: second\n\n');
    assert.equal(res.headers['content-type'], 'text/event-stream');
  });

  it('aborts the upstream request when the client disconnects', async () => {
    let upstreamClosed: () => void = () => {};
    const closed = new Promise<void>((resolve) => {
      upstreamClosed = resolve;
    });
    ctx.upstream.handle((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const timer = setInterval(() => res.write(Buffer.alloc(1024)), 5);
      res.on('close', () => {
        clearInterval(timer);
        upstreamClosed();
      });
      req.resume();
    });
    const socket = net.connect(ctx.gw.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /ws/prod/download HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await once(socket, 'data');
    socket.destroy();
    await closed; // the test times out if the upstream never sees the abort
  });

  it('aborts the client response when the upstream resets mid-stream', async () => {
    ctx.upstream.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(1000));
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const outcome = await new Promise<string>((resolve) => {
      http
        .get(`${ctx.gw.url}/ws/prod/reset`, { agent: false }, (res) => {
          res.on('data', () => {});
          res.on('end', () => resolve('end'));
          res.on('error', () => resolve('error'));
          res.on('aborted', () => resolve('error'));
        })
        .on('error', () => resolve('error'));
    });
    assert.equal(outcome, 'error');
  });

  it('gives a refused upgrade the response passes: 401 rejects the token, CORS dropped, Location rewritten', async () => {
    // An upstream with no upgrade handler answers the handshake as a plain request.
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(401, { 'access-control-allow-origin': '*', location: `http://127.0.0.1:${port}/login`, 'content-length': '2' });
      res.end('no');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const wsGw = await liveGateway(port);
    try {
      const route = wsGw.routes.all[0]!;
      await wsGw.tokens.get(route.credential, 'databricks');
      const socket = await openUpgrade(wsGw.port);
      let reply = '';
      socket.on('data', (d: Buffer) => (reply += d.toString()));
      await once(socket, 'close');
      assert.match(reply, /^HTTP\/1\.1 401/);
      assert.doesNotMatch(reply, /access-control-allow-origin/i);
      assert.match(reply, /location: \/ws\/live\/login\r\n/i);
      assert.equal(wsGw.tokens.status(route.credential, 'databricks').token, undefined, 'the refused token is dropped');
    } finally {
      await wsGw.shutdown(100);
      server.closeAllConnections();
      server.close();
    }
  });

  it('proxies WebSocket upgrades with the token attached', async () => {
    const seenAuth: string[] = [];
    // Plain echo over the upgraded socket: enough to prove the tunnel and the handshake headers.
    const server = http.createServer();
    server.on('upgrade', (req, socket) => {
      seenAuth.push(req.headers.authorization ?? '');
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d) => socket.write(d));
      socket.on('end', () => socket.end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const wsGw = await liveGateway(port);
    try {
      const socket = await openUpgrade(wsGw.port, 'Authorization: Bearer client\r\n');
      const [head] = (await once(socket, 'data')) as [Buffer];
      assert.match(head.toString(), /^HTTP\/1\.1 101/);
      socket.write('ping-frame');
      const [echo] = (await once(socket, 'data')) as [Buffer];
      assert.equal(echo.toString(), 'ping-frame');
      assert.deepEqual(seenAuth, [`Bearer ${PAT}`]);
      socket.destroy();
    } finally {
      await wsGw.shutdown(100);
      server.closeAllConnections();
      server.close();
    }
  });
});
