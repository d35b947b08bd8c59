import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BIN, NO_TOOLS_PATH } from '../helpers/cli.js';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { connectionsClosed, startPatGateway, usePatGateway } from '../helpers/gateway.js';
import { rawRequest } from '../helpers/http.js';
import { spawnGateway } from '../helpers/spawn-gateway.js';

const PAT = 'dapi8888888888888888888888888888dddd';

describe('request smuggling and malformed requests', () => {
  const ctx = usePatGateway({ pat: PAT });

  const head = 'POST /ws/prod/api/2.0/jobs/run-now HTTP/1.1\r\nHost: localhost\r\n';
  const attacks: Record<string, string> = {
    'Content-Length with Transfer-Encoding': `${head}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /ws/prod/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    'conflicting Content-Length values': `${head}Content-Length: 4\r\nContent-Length: 40\r\n\r\nabcd`,
    'Transfer-Encoding that is not chunked': `${head}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`,
    'obs-fold header continuation': `${head}X-Note: a\r\n  folded\r\nContent-Length: 0\r\n\r\n`,
    'space before the colon': `${head}Content-Length : 5\r\n\r\nhello`,
    'bare LF line endings': 'POST /ws/prod/x HTTP/1.1\nHost: localhost\nContent-Length: 0\n\n',
    'invalid chunk size': `${head}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
  };
  for (const [name, payload] of Object.entries(attacks)) {
    it(`refuses ${name} with 400 and forwards nothing`, async () => {
      const before = ctx.upstream.seen.length;
      const reply = await rawRequest(ctx.gw.port, payload, 1000);
      assert.match(reply, /^HTTP\/1\.1 400 /, reply);
      assert.match(reply, /"error_code":"GATEWAY_BAD_REQUEST"/);
      assert.equal(ctx.upstream.seen.length, before);
    });
  }

  it('answers 431 with a clear message for an oversized request head', async () => {
    const reply = await rawRequest(ctx.gw.port, `GET /ws/prod/x HTTP/1.1\r\nHost: localhost\r\nCookie: ${'a'.repeat(40 * 1024)}\r\n\r\n`, 1000);
    assert.match(reply, /^HTTP\/1\.1 431 /);
    assert.match(reply, /limits\.maxHeaderBytes/);
  });
});

describe('smuggling through Connection-listed framing headers', () => {
  it("keeps the body framed: a GET body never becomes a second request with the gateway's token", async () => {
    const upstream = await startFakeUpstream();
    const gw = await startPatGateway(upstream, PAT, (c) => {
      c.routes[0]!.readOnly = true;
    });
    try {
      const smuggled = 'POST /api/2.0/token/create HTTP/1.1\r\nHost: x\r\nX-Ignore: ';
      const chunk = `${Buffer.byteLength(smuggled).toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
      await rawRequest(
        gw.port,
        `GET /ws/prod/api/2.0/clusters/list HTTP/1.1\r\nHost: localhost\r\nConnection: close, transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}`,
        1000,
      );
      // The next request would complete a smuggled prefix left on the pooled upstream connection.
      await rawRequest(gw.port, 'GET /ws/prod/api/2.0/clusters/get HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', 1000);
      assert.ok(
        upstream.seen.every((s) => s.method === 'GET' && !s.url.includes('token/create')),
        JSON.stringify(upstream.seen.map((s) => `${s.method} ${s.url}`)),
      );
      assert.deepEqual(
        upstream.seen.map((s) => s.url),
        ['/api/2.0/clusters/list', '/api/2.0/clusters/get'],
      );
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });
});

describe('connection limits and idle clients', () => {
  it('closes refused WebSocket upgrades, so they cannot hold connection slots', async () => {
    const upstream = await startFakeUpstream();
    const gw = await startPatGateway(upstream, PAT, (c) => {
      c.limits.maxConnections = 3;
    });
    const held: net.Socket[] = [];
    // The gateway refuses each upgrade (Host is not loopback) and must close the connection itself.
    const closed = connectionsClosed(gw.server, 3);
    try {
      for (let i = 0; i < 3; i++) {
        const s = net.connect(gw.port, '127.0.0.1');
        s.on('error', () => {});
        // A client that never closes its side (nor reads the answer).
        s.write(
          'GET /ws/prod/x HTTP/1.1\r\nHost: evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
        );
        held.push(s);
      }
      await closed;
      const health = await rawRequest(gw.port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', 1000);
      assert.match(health, /^HTTP\/1\.1 200/);
    } finally {
      for (const s of held) s.destroy();
      await gw.shutdown(100);
      await upstream.close();
    }
  });

  it('answers 503 past limits.maxConnections and closes idle client sockets', async () => {
    const upstream = await startFakeUpstream();
    const gw = await startPatGateway(upstream, PAT, (c) => {
      c.limits.maxConnections = 2;
      Object.assign(c.timeouts, { idleMs: 300, connectMs: 100, headersMs: 100 });
    });
    try {
      const open = () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect(gw.port, '127.0.0.1', () => resolve(s));
        });
      const a = await open();
      const b = await open();
      const third = await rawRequest(gw.port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n', 1000);
      assert.match(third, /^HTTP\/1\.1 503 GATEWAY_OVERLOADED/);
      assert.match(third, /limits\.maxConnections/);
      const closedAt = await Promise.all([a, b].map((s) => new Promise<number>((r) => s.once('close', () => r(Date.now())))));
      assert.ok(closedAt.length === 2, 'idle sockets are closed by the server');
      const after = await rawRequest(gw.port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', 1000);
      assert.match(after, /^HTTP\/1\.1 200/, 'capacity is back once they are gone');
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });
});

describe('where it listens', () => {
  const home = mkdtempSync(join(tmpdir(), 'dbxgw-home-'));
  const run = (args: string[]) =>
    spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, env: { PATH: NO_TOOLS_PATH, HOME: home }, cwd: home });

  it('refuses a non-loopback address without inbound keys, saying what to do', () => {
    const res = run(['--host', '0.0.0.0', '--port', '0']);
    assert.equal(res.status, 2);
    assert.match(
      res.stderr,
      /--host: 0\.0\.0\.0 is reachable from other machines.*configure inboundKeys \(dbx-gateway keys add NAME\) or pass --allow-unauthenticated-network/,
    );
  });

  it('starts with --allow-unauthenticated-network, with a warning', async () => {
    const gw = await spawnGateway(['--host', '0.0.0.0', '--allow-unauthenticated-network'], { HOME: home }, home);
    try {
      assert.match(gw.stdout(), /"level":40.*without inbound keys \(--allow-unauthenticated-network\)/);
    } finally {
      await gw.stop();
    }
  });

  it('starts on a non-loopback address when inbound keys are configured', async () => {
    const file = join(home, 'keys.yaml');
    writeFileSync(file, `inboundKeys:\n  ci: sha256:${'ab'.repeat(32)}\n`);
    const gw = await spawnGateway(['--host', '0.0.0.0', '--config', file], { HOME: home }, home);
    try {
      assert.ok(!gw.stdout().includes('without inbound keys'));
      const res = await new Promise<number>((resolve) => {
        http.get(`${gw.url.replace('0.0.0.0', '127.0.0.1')}/ws/demo/api/2.0/clusters/list`, (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        });
      });
      assert.equal(res, 401);
    } finally {
      await gw.stop();
    }
  });

  it('serves a unix socket only this user can open, instead of TCP', async () => {
    const socket = join(mkdtempSync(join(tmpdir(), 'dbxgw-sock-')), 'gw.sock');
    const gw = await spawnGateway(['--socket', socket], { HOME: home }, home);
    try {
      assert.equal(gw.url, `unix:${socket}`);
      assert.equal(statSync(socket).mode & 0o777, 0o600);
      const status = await new Promise<number>((resolve, reject) => {
        http
          .get({ socketPath: socket, path: '/ws/demo/api/2.0/clusters/list', headers: { host: 'localhost' } }, (r) => {
            r.resume();
            resolve(r.statusCode ?? 0);
          })
          .on('error', reject);
      });
      assert.equal(status, 200);
    } finally {
      await gw.stop();
    }
  });
});
