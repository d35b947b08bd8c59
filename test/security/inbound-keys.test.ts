import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { BIN, childEnv } from '../helpers/cli.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startPatGateway, startTestGateway, type TestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';

const PAT = 'dapi6666666666666666666666666666bbbb';

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function keysAdd(file: string, name: string) {
  return spawnSync(process.execPath, [BIN, 'keys', 'add', name, '--config', file], { encoding: 'utf8', env: childEnv() });
}

describe('inbound keys (shared dev containers)', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let file: string;
  let alice: string;
  let bob: string;

  before(async () => {
    upstream = await startFakeUpstream();
    file = join(mkdtempSync(join(tmpdir(), 'dbxgw-keys-')), 'dbx-gateway.yaml');
    writeFileSync(
      file,
      `# team gateway\nroutes:\n  prod: { host: ${upstream.url.origin}, credential: pat }\n  dev: { host: ${upstream.url.origin.replace('127.0.0.1', 'localhost')}, credential: pat }\nlimits: { requestsPerMinutePerKey: 600 }\n`,
    );
    const a = keysAdd(file, 'alice');
    assert.equal(a.status, 0, a.stderr);
    alice = a.stdout.trim();
    const b = keysAdd(file, 'bob');
    bob = b.stdout.trim();
    // Bob may use dev only: edit the stored hash into the object form.
    const text = readFileSync(file, 'utf8').replace(/bob: (sha256:[0-9a-f]+)/, 'bob: { hash: $1, routes: [dev] }');
    writeFileSync(file, text);
    gw = await startTestGateway({ flags: { config: file }, env: { DATABRICKS_TOKEN: PAT }, configure: trustCa(testPki().caFile) });
  });
  after(async () => {
    await gw.shutdown(100);
    await upstream.close();
  });

  it('keys add prints the key once and stores only its hash, keeping the file', () => {
    assert.match(alice, /^dgw_[A-Za-z0-9_-]{43}$/);
    const text = readFileSync(file, 'utf8');
    assert.ok(!text.includes(alice) && !text.includes(bob), 'the key itself is never stored');
    assert.match(text, /alice: sha256:[0-9a-f]{64}/);
    assert.match(text, /^# team gateway/, 'comments survive');
    const again = keysAdd(file, 'alice');
    assert.equal(again.status, 2);
    assert.match(again.stderr, /already exists/);
    const fresh = join(mkdtempSync(join(tmpdir(), 'dbxgw-keys-')), 'new.yaml');
    assert.equal(keysAdd(fresh, 'carol').status, 0);
    assert.equal(statSync(fresh).mode & 0o777, 0o600);
  });

  it('answers 401 with WWW-Authenticate without a key or with a wrong one, forwarding nothing', async () => {
    const before = upstream.seen.length;
    for (const headers of [
      {},
      { authorization: 'Bearer dgw_wrong' },
      { 'x-dbx-gateway-key': `${alice}x` },
      { authorization: `Basic ${Buffer.from(`admin:${alice}`).toString('base64')}` },
    ]) {
      const res = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`, { headers });
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.equal(res.json<{ error_code: string }>().error_code, 'GATEWAY_UNAUTHENTICATED');
      assert.match(String(res.headers['www-authenticate']), /^Bearer realm="dbx-gateway"/);
    }
    assert.equal(upstream.seen.length, before);
  });

  it('accepts the key as Bearer, as Basic with user token, and as X-Dbx-Gateway-Key; never forwards it', async () => {
    for (const headers of [
      { authorization: `Bearer ${alice}` },
      { authorization: `Basic ${Buffer.from(`token:${alice}`).toString('base64')}` },
      { 'x-dbx-gateway-key': alice, authorization: 'Bearer placeholder-pat' },
    ]) {
      const res = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`, { headers });
      assert.equal(res.status, 200, JSON.stringify(headers));
      const seen = upstream.seen.at(-1)!;
      assert.equal(seen.headers.authorization, `Bearer ${PAT}`);
      assert.equal(seen.headers['x-dbx-gateway-key'], undefined);
      assert.ok(!JSON.stringify(seen.rawHeaders).includes(alice));
    }
  });

  it('limits a key to its routes', async () => {
    const prod = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`, { headers: { authorization: `Bearer ${bob}` } });
    assert.equal(prod.status, 403);
    assert.match(prod.json<{ message: string }>().message, /key bob may not use route prod \(inboundKeys\.bob\.routes: dev\)/);
    const dev = await request(`${gw.url}/ws/dev/api/2.0/clusters/list`, { headers: { authorization: `Bearer ${bob}` } });
    assert.equal(dev.status, 200);
  });

  it('keeps probes open without a key', async () => {
    assert.equal((await request(`${gw.url}/healthz`)).status, 200);
    assert.equal((await request(`${gw.url}/readyz`)).status, 200);
  });

  it('names the key in the log line and in the metrics, and never logs a key or token', async () => {
    const line = gw.logs.find((l) => l.msg === 'request' && l.key === 'alice');
    assert.ok(line, 'a request line names alice');
    const metrics = await request(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${alice}` } });
    assert.match(metrics.text, /dbx_gateway_requests_total\{route="prod",method="GET",status="200",key="alice"\} 3/);
    for (const secret of [alice, bob, PAT]) {
      assert.ok(!gw.logText().includes(secret), 'log');
      assert.ok(!metrics.text.includes(secret), 'metrics');
    }
  });
});

describe('keys list, rotate and remove (team habits)', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [BIN, 'keys', ...args], { encoding: 'utf8', env: childEnv() });

  it('writes a new file in block style, lists names and routes, rotates keeping the routes, and removes', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'dbxgw-keys-')), 'team.yaml');
    const first = run(['add', 'alice', '--config', file]);
    assert.equal(first.status, 0, first.stderr);
    assert.match(readFileSync(file, 'utf8'), /^inboundKeys:\n {2}alice: sha256:[0-9a-f]{64}\n$/);
    assert.match(first.stderr, /dbx-gateway reload \(or SIGHUP\)/);
    assert.equal(run(['add', 'bob', '--config', file]).status, 0);
    writeFileSync(file, readFileSync(file, 'utf8').replace(/bob: (sha256:[0-9a-f]+)/, 'bob: { hash: $1, routes: [dev] }'));
    assert.equal(run(['list', '--config', file]).stdout, 'alice\tall routes\nbob\troutes: dev\n');
    const before = readFileSync(file, 'utf8');
    const rotated = run(['rotate', 'bob', '--config', file]);
    assert.equal(rotated.status, 0, rotated.stderr);
    const key = rotated.stdout.trim();
    assert.match(key, /^dgw_/);
    const after = readFileSync(file, 'utf8');
    assert.notEqual(after, before);
    assert.ok(after.includes(createHash('sha256').update(key).digest('hex')), 'the new hash is stored');
    assert.match(after, /routes: \[ dev \]|routes: \[dev\]/);
    assert.equal(run(['remove', 'alice', '--config', file]).status, 0);
    assert.equal(run(['list', '--config', file]).stdout, 'bob\troutes: dev\n');
    assert.equal(run(['remove', 'alice', '--config', file]).status, 2);
  });
  it('keys add says which config file it created or changed, and why that one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-keys-'));
    const file = join(dir, 'dbx-gateway.yaml');
    const here = (args: string[]) => spawnSync(process.execPath, [BIN, 'keys', ...args], { encoding: 'utf8', env: childEnv(), cwd: dir });
    const created = here(['add', 'alice']);
    assert.equal(created.status, 0, created.stderr);
    assert.match(
      created.stderr,
      new RegExp(
        `^Created ${escapeRegExp(file)} with inboundKeys\\.alice \\(its SHA-256 only\\)\\. No --config was given, so that is dbx-gateway\\.yaml in this folder\\.`,
      ),
    );
    assert.match(created.stderr, new RegExp(`A gateway started with --config ${escapeRegExp(file)} \\(or in this folder\\) uses it`));
    const changed = here(['add', 'bob', '--config', file]);
    assert.equal(changed.status, 0, changed.stderr);
    assert.match(changed.stderr, new RegExp(`^Added inboundKeys\\.bob \\(its SHA-256 only\\) to ${escapeRegExp(file)}\\. This is the only time`));
    assert.match(changed.stderr, /dbx-gateway reload \(or SIGHUP\)/);
    const named = join(dir, 'team.yaml');
    const fromEnv = spawnSync(process.execPath, [BIN, 'keys', 'add', 'carol'], { encoding: 'utf8', env: childEnv({ DBX_GATEWAY_CONFIG: named }), cwd: dir });
    assert.match(fromEnv.stderr, new RegExp(`^Created ${escapeRegExp(named)} with inboundKeys\\.carol .*the file DBX_GATEWAY_CONFIG names`));
  });

  it('keys rotate keeps the routes of a key entry that is a YAML alias (rotate widened an aliased key to every route)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'dbxgw-keys-')), 'team.yaml');
    const shared = `sha256:${'0'.repeat(64)}`;
    const text = `inboundKeys:\n  bob: &k { hash: ${shared}, routes: [dev] }\n  carol: *k\n`;
    writeFileSync(file, text);
    const refused = run(['rotate', 'bob', '--config', file]);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /inboundKeys\.bob .* is anchored \(&k\) and used elsewhere \(\*k\).*write them out separately/);
    assert.equal(readFileSync(file, 'utf8'), text, 'a refused rotation leaves the file alone');
    const rotated = run(['rotate', 'carol', '--config', file]);
    assert.equal(rotated.status, 0, rotated.stderr);
    const hash = createHash('sha256').update(rotated.stdout.trim()).digest('hex');
    assert.equal(run(['list', '--config', file]).stdout, 'bob\troutes: dev\ncarol\troutes: dev\n');
    assert.deepEqual(parse(readFileSync(file, 'utf8')), {
      inboundKeys: { bob: { hash: shared, routes: ['dev'] }, carol: { hash: `sha256:${hash}`, routes: ['dev'] } },
    });
    assert.equal(run(['rotate', 'bob', '--config', file]).status, 0, 'bob is its own entry now');
    assert.equal(run(['list', '--config', file]).stdout, 'bob\troutes: dev\ncarol\troutes: dev\n');
  });
});

describe('request rate per key', () => {
  it('answers 429 with Retry-After past the budget', async () => {
    const upstream = await startFakeUpstream();
    const gw = await startPatGateway(upstream, PAT, (c) => {
      c.limits.requestsPerMinutePerKey = 3;
    });
    try {
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await request(`${gw.url}/ws/prod/x`)).status);
      assert.deepEqual(statuses, [200, 200, 200, 429]);
      const limited = await request(`${gw.url}/ws/prod/x`);
      assert.equal(limited.json<{ error_code: string }>().error_code, 'GATEWAY_RATE_LIMITED');
      assert.ok(Number(limited.headers['retry-after']) >= 1);
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });
});
