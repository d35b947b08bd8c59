import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { TestGateway } from '../helpers/gateway.js';
import { type FakeWorkspace, lakebaseGateway, startFakeWorkspace } from '../helpers/lakebase.js';
import { ident, POSTGRES_SKIP, startPostgres, type TestPostgres } from '../helpers/postgres.js';

// The Lakebase door's protocol edges: SCRAM and MD5 servers, psql, cancel, inbound keys over TLS
// with verify-full against the local CA, hostile bytes, and the shutdown at a message boundary.

/** A PostgreSQL program, run asynchronously; its stdout and stderr together. */
function run(bin: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { env: { PATH: '/usr/bin:/bin' }, timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${bin} failed: ${err.message} ${stderr}`)) : resolve(`${stdout}${stderr}`),
    );
  });
}

/** The real psql, run asynchronously (the gateway under test lives in this process). */
function psql(server: TestPostgres, args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(
      join(server.bin, 'psql'),
      ['-X', ...args],
      { encoding: 'buffer', env: { PATH: '/usr/bin:/bin', HOME: mkdtempSync(join(tmpdir(), 'dbxgw-psql-')) }, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`psql failed: ${err.message} ${stderr.toString()}`)) : resolve(stdout)),
    );
  });
}

function sameUserSkip(): string | false {
  if (process.platform !== 'linux') return 'the same-user check is Linux only';
  return process.getuid?.() === 0 ? false : 'needs root, to run a client as user nobody (uid 65534)';
}

/** A StartupMessage from a process of another user (or this one): the first thing the gateway answers, as latin1. */
async function startupAs(user: { uid: number; gid: number } | undefined, port: number): Promise<string> {
  const script = `
const s = require('node:net').connect(Number(process.argv[1]), '127.0.0.1');
const params = Buffer.from('user\\0x\\0database\\0postgres\\0\\0');
const head = Buffer.alloc(8); head.writeInt32BE(8 + params.length, 0); head.writeInt32BE(196608, 4);
s.write(Buffer.concat([head, params]));
s.once('data', (d) => { process.stdout.write(d.toString('latin1')); s.destroy(); });
s.on('error', () => {});`;
  const child = spawn(process.execPath, ['-e', script, String(port)], { ...user, cwd: '/', env: {}, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString('latin1');
  });
  await once(child, 'close');
  return out;
}

describe('Lakebase door: protocol', { skip: POSTGRES_SKIP }, () => {
  let server: TestPostgres;

  before(async () => {
    server = await startPostgres(['hostssl all scram_user 127.0.0.1/32 scram-sha-256', 'hostssl all md5_user 127.0.0.1/32 md5']);
    for (const role of ['dana@contoso.com', 'scram_user', 'md5_user']) await server.query(`CREATE ROLE ${ident(role)} LOGIN`);
    await server.query('CREATE DATABASE databricks_postgres');
  });

  after(async () => {
    await server?.stop();
  });

  for (const [role, method] of [
    ['scram_user', 'scram-sha-256'],
    ['md5_user', 'md5'],
  ] as const) {
    it(`answers a ${method} password request with the credential`, async () => {
      const workspace = await startFakeWorkspace(server, { userName: role, encryption: method === 'md5' ? 'md5' : 'scram-sha-256' });
      const gw = await lakebaseGateway(workspace, {});
      try {
        const c = new pg.Client({ host: '127.0.0.1', port: gw.postgresPorts.get('prod'), user: 'anyone' });
        await c.connect();
        const { rows } = await c.query('SELECT current_user AS who');
        await c.end();
        assert.equal(rows[0].who, role);
      } finally {
        await gw.shutdown(0);
        await workspace.upstream.close();
      }
    });
  }

  describe('with a password server', () => {
    let workspace: FakeWorkspace;
    let gw: TestGateway;
    before(async () => {
      workspace = await startFakeWorkspace(server);
      gw = await lakebaseGateway(workspace);
    });
    after(async () => {
      await gw?.shutdown(0);
      await workspace?.upstream.close();
    });

    it('serves psql with no password and no token handling', async () => {
      const out = await psql(server, [
        '-A',
        '-t',
        '-c',
        'SELECT current_user',
        `host=127.0.0.1 port=${gw.postgresPorts.get('prod')} user=someone sslmode=disable`,
      ]);
      assert.equal(out.toString().trim(), 'dana@contoso.com');
    });

    it('streams a COPY TO STDOUT byte for byte', async () => {
      const copy = "COPY (SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g) TO STDOUT";
      const out = await psql(server, ['-c', copy, `host=127.0.0.1 port=${gw.postgresPorts.get('prod')} user=x sslmode=disable`]);
      assert.ok(out.length > 20_000_000, `${out.length} bytes`);
      const hash = createHash('sha256').update(out).digest('hex');
      const expected = createHash('sha256');
      for (let g = 1; g <= 100000; g++) expected.update(`${g}\t${'x'.repeat(200)}\n`);
      assert.equal(hash, expected.digest('hex'));
    });

    it('relays pgbench with the extended protocol (-M extended) and prepared statements (-M prepared)', async () => {
      const init = ['-h', server.socketDir, '-p', String(server.port), '-U', 'postgres'];
      await run(join(server.bin, 'pgbench'), ['-i', '-s', '1', '-q', ...init, 'databricks_postgres']);
      await run(join(server.bin, 'psql'), [
        '-X',
        '-q',
        ...init,
        '-d',
        'databricks_postgres',
        '-c',
        `GRANT ALL ON ALL TABLES IN SCHEMA public TO ${ident('dana@contoso.com')}`,
      ]);
      const conn = `host=127.0.0.1 port=${gw.postgresPorts.get('prod')} user=x dbname=databricks_postgres sslmode=disable`;
      for (const mode of ['extended', 'prepared']) {
        const out = await run(join(server.bin, 'pgbench'), ['-n', '-M', mode, '-c', '2', '-t', '50', conn]);
        assert.match(out, /number of transactions actually processed: 100\/100/);
        assert.match(out, /number of failed transactions: 0/);
      }
    });

    it('forwards a CancelRequest to the server that holds the session', async () => {
      const c = new pg.Client({ host: '127.0.0.1', port: gw.postgresPorts.get('prod'), user: 'x' });
      await c.connect();
      const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
      const slow = c.query('SELECT pg_sleep(30)');
      await new Promise((r) => setTimeout(r, 200));
      const cancel = Buffer.alloc(16);
      cancel.writeInt32BE(16, 0);
      cancel.writeInt32BE(80877102, 4);
      cancel.writeInt32BE(processID, 8);
      cancel.writeInt32BE(secretKey, 12);
      const started = Date.now();
      const socket = connect(gw.postgresPorts.get('prod') ?? 0, '127.0.0.1');
      socket.end(cancel);
      await assert.rejects(slow, (err: Error & { code?: string }) => err.code === '57014');
      assert.ok(Date.now() - started < 10_000);
      await c.end();
    });

    it('survives garbage, a 1 GiB length and truncated packets, and still serves', async () => {
      const port = gw.postgresPorts.get('prod') ?? 0;
      const send = (bytes: Buffer) =>
        new Promise<Buffer>((resolve) => {
          const s = connect(port, '127.0.0.1');
          let got = Buffer.alloc(0);
          s.on('data', (d: Buffer) => {
            got = Buffer.concat([got, d]);
          });
          s.on('error', () => {});
          s.on('close', () => resolve(got));
          s.end(bytes);
        });
      const huge = Buffer.alloc(8);
      huge.writeInt32BE(0x40000000, 0);
      huge.writeInt32BE(196608, 4);
      for (const bytes of [randomBytes(64), huge, Buffer.from([0, 0, 0, 40, 0, 3, 0, 0, 117]), Buffer.from('GET / HTTP/1.1\r\n\r\n')]) await send(bytes);
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'x' });
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
    });
  });

  it('with inbound keys: asks for the key over TLS only, checks it first, and verify-full works against the local CA', async () => {
    const workspace = await startFakeWorkspace(server);
    const key = `dgw_${randomBytes(24).toString('base64url')}`;
    const tlsDir = mkdtempSync(join(tmpdir(), 'dbxgw-pg-tls-'));
    const gw = await lakebaseGateway(workspace, {}, (config) => {
      config.inboundKeys = [{ name: 'alice', sha256: createHash('sha256').update(key).digest() }];
      config.listen.tls = { mode: 'auto', dir: tlsDir };
    });
    try {
      const port = gw.postgresPorts.get('prod');
      const ca = readFileSync(join(tlsDir, 'ca.pem'), 'utf8');
      const mints = workspace.mints;
      const plain = new pg.Client({ host: '127.0.0.1', port, user: 'x', password: key, ssl: false });
      await assert.rejects(plain.connect(), (err: Error & { code?: string }) => err.code === '28000' && /sslmode=require/.test(err.message));
      const wrong = new pg.Client({ host: 'localhost', port, user: 'x', password: 'dgw_wrong', ssl: { ca, servername: 'localhost' } });
      await assert.rejects(wrong.connect(), (err: Error & { code?: string }) => err.code === '28P01');
      assert.equal(workspace.mints, mints, 'a refused client made the gateway mint');
      const good = new pg.Client({ host: 'localhost', port, user: 'x', password: key, ssl: { ca, servername: 'localhost' } });
      await good.connect();
      const { rows } = await good.query('SELECT current_user AS who');
      await good.end();
      assert.equal(rows[0].who, 'dana@contoso.com');
      const line = gw.logs.find((l) => l.msg === 'session' && l.outcome === 'ok');
      assert.equal(line?.key, 'alice');
      assert.ok(!gw.logText().includes(key), 'the key is in the log');
    } finally {
      await gw.shutdown(0);
      await workspace.upstream.close();
    }
  });

  it('refuses another local user with 28000 and how to share (loopback means you)', { skip: sameUserSkip() }, async () => {
    const workspace = await startFakeWorkspace(server);
    const gw = await lakebaseGateway(workspace);
    try {
      const mints = workspace.mints;
      const answer = await startupAs({ uid: 65534, gid: 65534 }, gw.postgresPorts.get('prod') ?? 0);
      assert.match(answer, /^E.*C28000.*comes from uid 65534.*dbx-gateway keys add NAME/s);
      assert.equal(workspace.mints, mints);
      const own = await startupAs(undefined, gw.postgresPorts.get('prod') ?? 0);
      assert.match(own, /^R/);
    } finally {
      await gw.shutdown(0);
      await workspace.upstream.close();
    }
  });

  it('ends an open session with FATAL 57P01 when the drain is over', async () => {
    const workspace = await startFakeWorkspace(server);
    const gw = await lakebaseGateway(workspace);
    try {
      const c = new pg.Client({ host: '127.0.0.1', port: gw.postgresPorts.get('prod'), user: 'x' });
      await c.connect();
      // The first error is the FATAL; the socket's end follows it.
      const ended = new Promise<Error & { code?: string }>((resolve) => c.on('error', resolve));
      await gw.shutdown(100);
      const err = await ended;
      assert.equal(err.code, '57P01', String(err));
    } finally {
      await workspace.upstream.close();
    }
  });
});
