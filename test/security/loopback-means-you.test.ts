/**
 * Issue 19, item 14: on a shared machine any local user could act as the gateway's identity
 * through its loopback port (`su nobody -c 'curl localhost:8090/ws/prod/...'`). On Linux a
 * loopback listener without inbound keys now serves only its own user's processes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { GatewayConfig } from '../../src/config/types.js';
import { newInboundKey } from '../../src/security/inbound-keys.js';
import { findConnectionRows, judgePeer, PROC_NET_TCP } from '../../src/security/peer-user.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startPatGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';

const LINUX = process.platform === 'linux';
const NOT_LINUX = 'Linux only: elsewhere the OS does not say which user a TCP client runs as (the startup line says so)';
const NOBODY = { uid: 65534, gid: 65534 };
const needsRoot = !LINUX ? NOT_LINUX : process.getuid?.() !== 0 ? 'needs root, to run a client as user nobody (uid 65534)' : false;

/** A real loopback connection: the server's accepted socket and the client, both open. */
async function socketPair(host: string, connectTo = host): Promise<{ accepted: Socket; client: Socket; close(): void }> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = tcpConnect(port, connectTo);
  await once(client, 'connect');
  const [socket] = await accepted;
  return {
    accepted: socket,
    client,
    close() {
      client.destroy();
      socket.destroy();
      server.close();
    },
  };
}

describe('/proc/net/tcp rows of a real loopback connection', { skip: LINUX ? false : NOT_LINUX }, () => {
  const uid = process.getuid?.() ?? -1;

  it('finds both ends of a 127.0.0.1 connection with this user and a live socket', async () => {
    const pair = await socketPair('127.0.0.1');
    try {
      const { own, peer } = findConnectionRows(pair.accepted);
      assert.deepEqual(own && { uid: own.uid, state: own.state }, { uid, state: 1 });
      assert.deepEqual(peer && { uid: peer.uid, state: peer.state }, { uid, state: 1 });
      assert.ok(own && peer && own.inode > 0 && peer.inode > 0 && own.inode !== peer.inode);
      // The client's view is the mirror image: its own row is our peer row.
      assert.deepEqual(findConnectionRows(pair.client).own, peer);
    } finally {
      pair.close();
    }
  });

  it('finds an IPv6 client of an IPv4 listener (::ffff:127.0.0.1) in tcp6', async (t) => {
    let pair: Awaited<ReturnType<typeof socketPair>>;
    try {
      pair = await socketPair('127.0.0.1', '::ffff:127.0.0.1');
    } catch {
      t.skip('no IPv6 sockets on this machine');
      return;
    }
    try {
      assert.equal(judgePeer(pair.accepted), undefined);
      assert.equal(findConnectionRows(pair.accepted).peer?.uid, uid);
    } finally {
      pair.close();
    }
  });

  it('finds both ends of a ::1 connection in tcp6', async (t) => {
    let pair: Awaited<ReturnType<typeof socketPair>>;
    try {
      pair = await socketPair('::1');
    } catch {
      t.skip('no ::1 on this machine');
      return;
    }
    try {
      const { own, peer } = findConnectionRows(pair.accepted);
      assert.equal(own?.uid, uid);
      assert.equal(peer?.uid, uid);
      assert.equal(judgePeer(pair.accepted), undefined);
    } finally {
      pair.close();
    }
  });

  it('reads rows that straddle its read pieces, and reports a peer of another uid', async () => {
    const pair = await socketPair('127.0.0.1');
    try {
      const lines = readFileSync(PROC_NET_TCP.tcp, 'latin1').split('\n');
      const header = lines[0]!;
      const { peer } = findConnectionRows(pair.accepted);
      const isPeer = (row: string) => row.trim().split(/\s+/)[9] === String(peer?.inode);
      const peerRow = lines.find(isPeer)!;
      const others = lines.slice(1).filter((l) => l.trim() && !isPeer(l));
      // The kernel's own rows, with the client's row as if another user (uid 4242) held it, placed
      // to cross the parser's first 64 KiB read.
      const other = peerRow.replace(/^((?:\s*\S+){7}\s+)\S+/, (_all, before: string) => `${before}4242`);
      let text = `${header}\n`;
      while (text.length + others[0]!.length + 1 < 65_536 - 40) text += `${others[0]}\n`;
      text += `${' '.repeat(65_536 - 40 - text.length - 1)}\n${other}\n${others.join('\n')}\n`;
      const dir = mkdtempSync(join(tmpdir(), 'dbxgw-procnet-'));
      const tcp = join(dir, 'tcp');
      writeFileSync(tcp, text);
      const files = { tcp, tcp6: join(dir, 'absent') };
      assert.equal(findConnectionRows(pair.accepted, files).peer?.uid, 4242);
      const refusal = judgePeer(pair.accepted, files);
      assert.equal(refusal?.code, 'GATEWAY_FORBIDDEN');
      assert.match(refusal.message, /comes from uid 4242; to share the gateway, configure inbound keys \(dbx-gateway keys add NAME\)/);
    } finally {
      pair.close();
    }
  });

  it('refuses when the client end is not in the table (it closed, or another namespace)', async () => {
    const pair = await socketPair('127.0.0.1');
    try {
      const dir = mkdtempSync(join(tmpdir(), 'dbxgw-procnet-'));
      const tcp = join(dir, 'tcp');
      const { peer } = findConnectionRows(pair.accepted);
      const lines = readFileSync(PROC_NET_TCP.tcp, 'latin1').split('\n');
      writeFileSync(tcp, lines.filter((l) => l.trim().split(/\s+/)[9] !== String(peer?.inode)).join('\n'));
      const refusal = judgePeer(pair.accepted, { tcp, tcp6: join(dir, 'absent') });
      assert.match(refusal?.message ?? '', /could not find this connection's client in .*; connect as that user, or to share the gateway/);
    } finally {
      pair.close();
    }
  });
});

/** Runs `script` in a node child as `user`, with `args` as process.argv[1..]; resolves with its JSON line. */
async function runAs(user: { uid: number; gid: number } | undefined, script: string, ...args: string[]): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, ['-e', script, ...args], {
    ...user,
    cwd: '/',
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await once(child, 'close');
  return JSON.parse(out) as Record<string, unknown>;
}

const HTTP_GET = `
const http = require(process.argv[1].startsWith('https:') ? 'node:https' : 'node:http');
const headers = process.argv[2] ? { authorization: 'Bearer ' + process.argv[2] } : {};
http.get(process.argv[1], { headers, ca: process.argv[3] }, (res) => {
  let body = '';
  res.on('data', (d) => (body += d));
  res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, connection: res.headers.connection, body })));
}).on('error', (e) => console.log(JSON.stringify({ error: e.code })));`;

const GRPC_CALL = `
const http2 = require('node:http2');
const session = http2.connect(process.argv[1]);
session.on('error', (e) => console.log(JSON.stringify({ error: e.code })));
const call = session.request({ ':method': 'POST', ':path': '/spark.connect.SparkConnectService/AnalyzePlan', 'content-type': 'application/grpc', te: 'trailers' });
const out = {};
const take = (h) => { if (h['grpc-status'] !== undefined) { out.grpcStatus = Number(h['grpc-status']); out.message = decodeURIComponent(h['grpc-message'] || ''); } };
call.on('response', take);
call.on('trailers', take);
call.on('close', () => { console.log(JSON.stringify(out)); session.close(); });
call.resume();
call.end(Buffer.alloc(5));`;

describe('loopback means you: another local user cannot act as the gateway', { skip: needsRoot }, () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  const withPorts = (config: GatewayConfig) => {
    config.routes[0]!.port = 0;
    config.routes[0]!.sparkConnect = { port: 0 };
  };

  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startPatGateway(upstream, 'dapi-loopback-0000000000000000000000', withPorts);
  });
  after(async () => {
    await gw?.shutdown(100);
    await upstream?.close();
  });

  it('says at startup that loopback serves only this user', () => {
    assert.equal(gw.sameUser?.enforced, true);
    assert.match(gw.sameUser.message, /loopback listeners serve only processes of this user \(.*uid 0\)/);
  });

  it("refuses user nobody on the main port with 403 and how to share, and the owner's requests still pass", async () => {
    const res = await runAs(NOBODY, HTTP_GET, `${gw.url}/ws/prod/api/2.0/clusters/list`);
    assert.equal(res.status, 403);
    assert.equal(res.connection, 'close');
    const body = JSON.parse(res.body as string) as { error_code: string; message: string };
    assert.equal(body.error_code, 'GATEWAY_FORBIDDEN');
    assert.match(body.message, /serves only its own user \(.*uid 0\) on loopback, and this connection comes from uid 65534; .*dbx-gateway keys add NAME/);
    assert.equal(upstream.seen.length, 0);
    assert.ok(gw.logs.some((l) => l.error === 'GATEWAY_FORBIDDEN' && l.status === 403));

    const own = await runAs(undefined, HTTP_GET, `${gw.url}/ws/prod/api/2.0/clusters/list`);
    assert.equal(own.status, 200);
    assert.equal((await request(`${gw.url}/healthz`)).status, 200);
  });

  it('refuses user nobody on the per-route port and the local endpoints too', async () => {
    const seen = upstream.seen.length;
    const routePort = await runAs(NOBODY, HTTP_GET, `http://127.0.0.1:${gw.routePorts.get('prod')}/api/2.0/clusters/list`);
    assert.equal(routePort.status, 403);
    const status = await runAs(NOBODY, HTTP_GET, `${gw.url}/healthz`);
    assert.equal(status.status, 403);
    assert.equal(upstream.seen.length, seen);
  });

  it('ends user nobody’s Spark Connect calls with PERMISSION_DENIED', async () => {
    const res = await runAs(NOBODY, GRPC_CALL, `http://127.0.0.1:${gw.sparkPorts.get('prod')}`);
    assert.equal(res.grpcStatus, 7);
    assert.match(res.message as string, /comes from uid 65534; .*dbx-gateway keys add NAME/);
  });
});

describe('loopback means you: on a TLS listener too', { skip: needsRoot }, () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startFakeUpstream();
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-loopback-tls-'));
    const pki = testPki();
    writeFileSync(join(dir, 'key.pem'), pki.key);
    writeFileSync(join(dir, 'cert.pem'), pki.cert);
    gw = await startPatGateway(upstream, 'dapi-loopback-0000000000000000000000', (config) => {
      config.listen.tls = { mode: 'files', keyFile: join(dir, 'key.pem'), certFile: join(dir, 'cert.pem') };
    });
  });
  after(async () => {
    await gw?.shutdown(100);
    await upstream?.close();
  });

  it('answers user nobody 403 over HTTPS, after the handshake', async () => {
    assert.match(gw.url, /^https:/);
    const res = await runAs(NOBODY, HTTP_GET, `${gw.url}/ws/prod/api/2.0/clusters/list`, '', testPki().ca);
    assert.equal(res.status, 403);
    assert.match(res.body as string, /comes from uid 65534/);
    const own = await runAs(undefined, HTTP_GET, `${gw.url}/ws/prod/api/2.0/clusters/list`, '', testPki().ca);
    assert.equal(own.status, 200);
  });
});

describe('loopback means you: inbound keys are the way to share', { skip: needsRoot }, () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  const { key, hash } = newInboundKey();

  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startPatGateway(upstream, 'dapi-loopback-0000000000000000000000', (config) => {
      config.inboundKeys = [{ name: 'nobody', sha256: Buffer.from(hash.slice('sha256:'.length), 'hex') }];
    });
  });
  after(async () => {
    await gw?.shutdown(100);
    await upstream?.close();
  });

  it('serves another user who presents a key, and says nothing about users at startup', async () => {
    assert.equal(gw.sameUser, undefined);
    const res = await runAs(NOBODY, HTTP_GET, `${gw.url}/ws/prod/api/2.0/clusters/list`, key);
    assert.equal(res.status, 200);
  });
});
