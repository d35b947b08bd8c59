import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { doctorReport } from '../../src/runtime/diagnose.js';
import type { TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { type FakeWorkspace, INSTANCE, lakebaseGateway, startFakeWorkspace } from '../helpers/lakebase.js';
import { ident, POSTGRES_SKIP, startPostgres, type TestPostgres } from '../helpers/postgres.js';

// The Lakebase door against a real PostgreSQL server whose roles log in with a password over TLS,
// and a fake workspace that mints database credentials and sets the role's password to each new
// one (so only the newest logs in), as Lakebase does.

const USER = 'dana@contoso.com';

function client(gw: TestGateway, options: pg.ClientConfig = {}): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port: gw.postgresPorts.get('prod'), user: 'whoever', ssl: false, ...options });
}

describe('Lakebase door', { skip: POSTGRES_SKIP }, () => {
  let server: TestPostgres;
  let workspace: FakeWorkspace;
  let gw: TestGateway;

  before(async () => {
    server = await startPostgres();
    await server.query(`CREATE ROLE ${ident(USER)} LOGIN`);
    await server.query('CREATE DATABASE databricks_postgres');
    await server.query(`GRANT ALL ON DATABASE databricks_postgres TO ${ident(USER)}`);
    workspace = await startFakeWorkspace(server);
    gw = await lakebaseGateway(workspace);
  });

  after(async () => {
    await gw?.shutdown(0);
    await workspace?.upstream.close();
    await server?.stop();
  });

  it('logs in as the identity from SCIM Me, in the route database, with no password from the client', async () => {
    const c = client(gw);
    await c.connect();
    const { rows } = await c.query('SELECT current_user AS who, current_database() AS db, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    await c.end();
    assert.deepEqual(rows[0], { who: USER, db: 'databricks_postgres', ssl: true });
  });

  it('keeps the database a client names', async () => {
    const c = client(gw, { database: 'postgres' });
    await c.connect();
    const { rows } = await c.query('SELECT current_database() AS db');
    await c.end();
    assert.equal(rows[0].db, 'postgres');
  });

  it('mints one credential for many sessions', async () => {
    const before = workspace.mints;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        const c = client(gw);
        await c.connect();
        await c.query('SELECT 1');
        await c.end();
      }),
    );
    assert.ok(workspace.mints - before <= 1, `minted ${workspace.mints - before} times for 8 sessions`);
  });

  it('relays the extended protocol, errors and a large result unchanged', async () => {
    const c = client(gw);
    await c.connect();
    const { rows } = await c.query('SELECT $1::int + 1 AS n, $2::text AS t', [41, 'x'.repeat(100_000)]);
    assert.equal(rows[0].n, 42);
    assert.equal(rows[0].t.length, 100_000);
    await assert.rejects(c.query('SELECT * FROM no_such_table'), /no_such_table/);
    const big = await c.query('SELECT g, md5(g::text) FROM generate_series(1, 50000) g');
    assert.equal(big.rowCount, 50000);
    await c.end();
  });

  it('puts one log line per session with route, user, database and bytes', async () => {
    const c = client(gw);
    await c.connect();
    await c.query('SELECT 1');
    await c.end();
    const line = await waitForLog(gw, (l) => l.msg === 'session' && l.outcome === 'ok');
    assert.equal(line.route, 'prod');
    assert.equal(line.user, USER);
    assert.equal(line.database, 'databricks_postgres');
    assert.ok(Number(line.bytes) > 0 && Number(line.bytesIn) > 0);
    assert.ok(!gw.logText().includes(workspace.lastCredential ?? 'never'), 'the credential is in the log');
  });

  it('counts sessions in /metrics', async () => {
    const text = await gw.metrics.registry.metrics();
    assert.match(text, /dbx_gateway_postgres_sessions_total\{route="prod",outcome="ok"\} [1-9]/);
    assert.match(text, /dbx_gateway_postgres_sessions\{route="prod"\} 0/);
  });

  it('shows the port and open sessions on the status page', async () => {
    const c = client(gw);
    await c.connect();
    const res = await request(`${gw.url}/`, { headers: { accept: 'application/json' } });
    await c.end();
    const route = res.json<{ routes: Array<{ name: string; postgres_port?: number; postgres_sessions?: number }> }>().routes.find((r) => r.name === 'prod');
    assert.equal(route?.postgres_port, gw.postgresPorts.get('prod'));
    assert.equal(route?.postgres_sessions, 1);
  });

  it('doctor mints a credential, logs in and runs SELECT 1', async () => {
    const report = await doctorReport({ routes: gw.routes, tokens: gw.tokens });
    assert.match(report.text, /postgres: +logged in to localhost:\d+ as dana@contoso\.com, database databricks_postgres; SELECT 1 in \d+ ms/);
    assert.ok(report.ok, report.text);
  });

  it('answers the server refusing the credential with its error, and mints a new one for the next session', async () => {
    // Another credential replaces the role's password behind the gateway's back.
    await server.query(`ALTER ROLE ${ident(USER)} PASSWORD 'rotated-elsewhere'`);
    const c = client(gw);
    await assert.rejects(c.connect(), (err: Error & { code?: string }) => err.code === '28P01' && /password authentication failed/.test(err.message));
    const before = workspace.mints;
    const again = client(gw);
    await again.connect();
    await again.end();
    assert.equal(workspace.mints, before + 1);
  });

  it('gives 28000 with the fix when no credential can be minted, and opens nothing upstream', async () => {
    const gw2 = await lakebaseGateway(workspace, { database: 'databricks_postgres' }, (config) => {
      for (const r of config.routes) r.credential = { type: 'pat', token: 'dapi-not-accepted-000000000000' };
    });
    try {
      const c = client(gw2);
      await assert.rejects(c.connect(), (err: Error & { code?: string }) => err.code === '28000' && /Fix:/.test(err.message));
    } finally {
      await gw2.shutdown(0);
    }
  });

  it('gives 08001 naming the server when it cannot be reached', async () => {
    const gw2 = await lakebaseGateway(workspace, { host: '127.0.0.1:1' });
    try {
      const c = client(gw2);
      await assert.rejects(c.connect(), (err: Error & { code?: string }) => err.code === '08001' && /127\.0\.0\.1/.test(err.message));
    } finally {
      await gw2.shutdown(0);
    }
  });
});

describe('Lakebase door: credentials, instances and reloads', { skip: POSTGRES_SKIP }, () => {
  let server: TestPostgres;

  before(async () => {
    server = await startPostgres();
    await server.query(`CREATE ROLE ${ident(USER)} LOGIN`);
    await server.query('CREATE DATABASE databricks_postgres');
  });

  after(async () => {
    await server?.stop();
  });

  it('mints and finds the server of a Provisioned instance', async () => {
    const workspace = await startFakeWorkspace(server);
    const gw = await lakebaseGateway(workspace, { instance: INSTANCE });
    try {
      const c = client(gw);
      await c.connect();
      const { rows } = await c.query('SELECT current_user AS who');
      await c.end();
      assert.equal(rows[0].who, USER);
      assert.ok(workspace.upstream.seen.some((r) => r.url === '/api/2.0/database/credentials'));
      assert.ok(workspace.upstream.seen.some((r) => r.url === `/api/2.0/database/instances/${INSTANCE}`));
    } finally {
      await gw.shutdown(0);
      await workspace.upstream.close();
    }
  });

  it('refreshes the credential ahead of its expiry, and sessions use the new one', async () => {
    // A 90 s credential is due for refresh 25 s after it was minted (half its usable life: 90 s less the 40 s cutoff, halved; token-cache.ts refreshAtMs).
    const workspace = await startFakeWorkspace(server, { lifetimeMs: 90_000 });
    let offsetMs = 0;
    const gw = await lakebaseGateway(workspace, {}, undefined, () => Date.now() + offsetMs);
    try {
      const first = client(gw);
      await first.connect();
      await first.end();
      assert.equal(workspace.mints, 1);
      offsetMs = 30_000;
      const due = client(gw);
      await due.connect().catch(() => {});
      await due.end().catch(() => {});
      for (let i = 0; i < 200 && workspace.mints < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(workspace.mints, 2, 'no refresh ahead of expiry');
      const after = client(gw);
      await after.connect();
      await after.query('SELECT 1');
      await after.end();
      assert.equal(workspace.mints, 2);
    } finally {
      await gw.shutdown(0);
      await workspace.upstream.close();
    }
  });

  it('applies a reload to new sessions: a changed database', async () => {
    const workspace = await startFakeWorkspace(server);
    const gw = await lakebaseGateway(workspace);
    try {
      const before = client(gw);
      await before.connect();
      const next = { ...gw.config, routes: gw.config.routes.map((r) => ({ ...r, postgres: { ...r.postgres!, database: 'postgres' } })) };
      await gw.reload(next);
      const after = client(gw);
      await after.connect();
      const [was, now] = await Promise.all([before.query('SELECT current_database() AS db'), after.query('SELECT current_database() AS db')]);
      await Promise.all([before.end(), after.end()]);
      assert.equal(was.rows[0].db, 'databricks_postgres');
      assert.equal(now.rows[0].db, 'postgres');
    } finally {
      await gw.shutdown(0);
      await workspace.upstream.close();
    }
  });
});

async function waitForLog(gw: TestGateway, match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    const line = gw.logs.find(match);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no such log line in:\n${gw.logText()}`);
}
