import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CONTROL_HEADER, signControlRequest } from '../../src/security/control-proof.js';
import { BIN, NO_TOOLS_PATH, runCli } from '../helpers/cli.js';
import { type FakeAz, fakeAzToken, installFakeAz } from '../helpers/fake-az.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { request } from '../helpers/http.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';
import { waitFor } from '../helpers/wait.js';

describe('working from the running gateway: run file, token, reload', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let az: FakeAz;
  let upstream: FakeUpstream;
  let gw: SpawnedGateway;
  let config: string;
  const runDir = () => join(home, '.config', 'dbx-gateway', 'run');

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'dbxgw-run-'));
    az = installFakeAz();
    upstream = await startFakeUpstream();
    env = { PATH: az.path, HOME: home };
    config = join(home, 'gw.yaml');
    writeFileSync(config, `routes:\n  prod: { host: ${upstream.url.origin}, caFile: ${testPki().caFile}, credential: azure-cli }\n`);
    gw = await spawnGateway(['--config', config, '--no-profiles'], env, home);
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it('writes a run file with its URL and a control secret, readable by the user only', () => {
    const files = readdirSync(runDir()).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 1);
    const file = join(runDir(), files[0]!);
    const run = JSON.parse(readFileSync(file, 'utf8')) as { url: string; secret: string; pid: number };
    assert.equal(run.url, gw.url);
    assert.equal(run.pid, gw.child.pid);
    assert.match(run.secret, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(!gw.stdout().includes(run.secret) && !gw.stderr().includes(run.secret), 'the secret is never logged');
  });

  it('a second gateway on its port says this one holds it, and how to use or stop it; a foreign holder is "another process"', async () => {
    await waitFor(() => readdirSync(runDir()).some((f) => f.endsWith('.json')), { what: 'the run file' });
    const port = new URL(gw.url).port;
    const second = await runCli(['--demo', '--no-profiles', '--port', port], env);
    assert.equal(second.status, 1);
    const pid = gw.child.pid!;
    const stop = process.platform === 'win32' ? `taskkill /PID ${pid}` : `kill ${pid}`;
    assert.match(
      second.stderr,
      new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*; another dbx-gateway serves ${gw.url} \\(pid ${pid}, started `),
    );
    assert.ok(
      second.stderr.includes(`use it (dbx-gateway status --url ${gw.url}; token, doctor and reload take --url too), stop it (${stop}), or pass --port N\n`),
      second.stderr,
    );
    const foreign = createServer();
    await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
    try {
      const taken = String((foreign.address() as AddressInfo).port);
      const res = await runCli(['--demo', '--no-profiles', '--port', taken], env);
      assert.equal(res.status, 1);
      assert.match(res.stderr, new RegExp(`another process uses port ${taken}: stop it or pass --port N\n$`));
    } finally {
      foreign.close();
    }
  });

  it('token NAME prints the token the gateway holds, without a second az call', async () => {
    assert.equal((await request(`${gw.url}/ws/prod/api/2.0/clusters/list`)).status, 200);
    const calls = az.calls();
    const res = await runCli(['token', 'prod'], env);
    assert.equal(res.status, 0, res.stderr);
    assert.equal(JSON.parse(res.stdout).access_token, fakeAzToken(calls));
    assert.equal(az.calls(), calls, 'no second az call');
    assert.doesNotMatch(res.stderr, /no gateway is running/);
  });

  it('prints raw, env, powershell and cmd forms', async () => {
    const token = fakeAzToken(az.calls());
    assert.equal((await runCli(['token', 'prod', '--output', 'raw'], env)).stdout, `${token}\n`);
    assert.match(
      (await runCli(['token', 'prod', '-o', 'env'], env)).stdout,
      new RegExp(`^export DATABRICKS_HOST='${upstream.url.origin}'\\nexport DATABRICKS_TOKEN='${token}'\\n$`),
    );
    assert.equal(
      (await runCli(['token', 'prod', '-o', 'powershell'], env)).stdout,
      `$env:DATABRICKS_HOST = '${upstream.url.origin}'\n$env:DATABRICKS_TOKEN = '${token}'\n`,
    );
    assert.equal((await runCli(['token', 'prod', '-o', 'cmd'], env)).stdout, `set "DATABRICKS_HOST=${upstream.url.origin}"\nset "DATABRICKS_TOKEN=${token}"\n`);
    const bad = await runCli(['token', 'prod', '-o', 'yaml'], env);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /use one of json, env, raw, powershell, cmd/);
  });

  it('doctor checks the routes the running gateway serves', async () => {
    const res = await runCli(['doctor'], env);
    assert.equal(res.status, 0, res.stderr + res.stdout);
    assert.match(res.stderr, new RegExp(`checking the gateway running at ${gw.url.replace(/[.]/g, '\\.')}`));
    assert.match(res.stdout, /PASS {2}\/ws\/prod {2}->/);
    assert.match(res.stdout, /\nthe route is ok\n$/);
  });

  it('the control endpoints refuse a request without the secret, and browsers', async () => {
    assert.equal((await request(`${gw.url}/-/token/prod`)).status, 401);
    assert.equal((await request(`${gw.url}/-/reload`, { method: 'POST', headers: { [CONTROL_HEADER]: 'guess' } })).status, 401);
    const run = JSON.parse(readFileSync(join(runDir(), readdirSync(runDir())[0]!), 'utf8')) as { secret: string };
    const signed = (method: string, path: string) => signControlRequest(run.secret, method, path).header;
    const fromPage = await request(`${gw.url}/-/token/prod`, { headers: { [CONTROL_HEADER]: signed('GET', '/-/token/prod'), origin: 'http://evil.example' } });
    assert.equal(fromPage.status, 403);
    assert.ok(!fromPage.text.includes('eyJ'));
    // The secret itself never travels, so it is no credential either; a proof is for its own request only.
    assert.equal((await request(`${gw.url}/-/token/prod`, { headers: { [CONTROL_HEADER]: run.secret } })).status, 401);
    assert.equal((await request(`${gw.url}/-/token/prod`, { headers: { [CONTROL_HEADER]: signed('GET', '/-/status') } })).status, 401);
    assert.equal((await request(`${gw.url}/-/status`, { headers: { [CONTROL_HEADER]: signed('GET', '/-/status') } })).status, 200);
  });

  it('reload re-reads the configuration; an invalid one is refused and the old one stays', async () => {
    writeFileSync(
      config,
      `routes:\n  prod: { host: ${upstream.url.origin}, caFile: ${testPki().caFile}, credential: azure-cli }\n  second: { host: ${upstream.url.origin.replace('127.0.0.1', 'localhost')}, caFile: ${testPki().caFile}, credential: azure-cli }\n`,
    );
    const ok = await runCli(['reload'], env);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stderr, /reloaded .*routes prod, second/);
    assert.equal((await request(`${gw.url}/ws/second/api/2.0/clusters/list`)).status, 200);
    writeFileSync(config, 'routes:\n  prod: { host: ftp://nope }\n');
    const refused = await runCli(['reload'], env);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /refused; the previous configuration stays/);
    assert.equal((await request(`${gw.url}/ws/second/api/2.0/clusters/list`)).status, 200);
  });

  it('removes the run file on exit; then token says no gateway runs and uses the configuration', async () => {
    writeFileSync(config, `routes:\n  prod: { host: ${upstream.url.origin}, caFile: ${testPki().caFile}, credential: azure-cli }\n`);
    await gw.stop();
    assert.deepEqual(
      readdirSync(runDir()).filter((f) => f.endsWith('.json')),
      [],
    );
    const res = await runCli(['token', 'prod', '--config', config, '--no-profiles', '-o', 'raw'], env);
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stderr, /--config, --no-profiles given, so fetching the token from the flags\n/);
    assert.match(res.stdout, /^eyJ/);
    const reload = await runCli(['reload'], env);
    assert.equal(reload.status, 1);
    assert.match(reload.stderr, /no running gateway found/);
  });
});

describe('a stale run file', () => {
  it('is ignored when its process is gone', () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-stale-'));
    const dir = join(home, '.config', 'dbx-gateway', 'run');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'http-127.0.0.1-1.json'), JSON.stringify({ url: 'http://127.0.0.1:1', secret: 'x', pid: 2 ** 22 + 12345 }));
    const res = spawnSync(process.execPath, [BIN, 'reload'], { encoding: 'utf8', env: { PATH: NO_TOOLS_PATH, HOME: home } });
    assert.equal(res.status, 1);
    assert.match(res.stderr, /no running gateway found/);
    assert.ok(existsSync(join(dir, 'http-127.0.0.1-1.json')));
  });
});

describe('a stale run file whose address another program answers (control secret sent to an impostor)', () => {
  it('sends the impostor no secret, prints nothing it says, and says the run file is stale', async () => {
    const seen: string[] = [];
    const impostor = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        seen.push(`${req.method} ${req.url}\n${req.rawHeaders.join('\n')}\n${body}`);
        res.writeHead(200, { 'content-type': 'application/json', 'x-dbx-gateway-proof': 'forged' });
        res.end(JSON.stringify({ access_token: 'IMPOSTOR-TOKEN', ok: true, text: 'IMPOSTOR-TEXT', routes: ['IMPOSTOR'], notes: [], message: 'IMPOSTOR' }));
      });
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(impostor.address() as AddressInfo).port}`;
      const home = mkdtempSync(join(tmpdir(), 'dbxgw-impostor-'));
      const dir = join(home, '.config', 'dbx-gateway', 'run');
      mkdirSync(dir, { recursive: true });
      const secret = 'stale-control-secret-0123456789abcdefghijklmnop';
      const file = join(dir, 'http-127.0.0.1-impostor.json');
      // A live pid that is no gateway (this test runner's): the pid was reused.
      writeFileSync(file, JSON.stringify({ url, secret, pid: process.pid, version: '0.0.0', startedAt: new Date().toISOString() }));
      const env = { PATH: NO_TOOLS_PATH, HOME: home };
      for (const args of [['token', 'prod'], ['reload'], ['status'], ['doctor']]) {
        const res = await runCli(args, env);
        assert.equal(res.status, 1, `${args.join(' ')}: ${res.stderr}`);
        assert.equal(res.stdout, '', `${args.join(' ')} prints nothing from the impostor`);
        assert.doesNotMatch(res.stderr, /IMPOSTOR/);
        assert.match(res.stderr, /cannot prove it holds the secret of the run file/);
        assert.ok(res.stderr.includes(`remove ${file}`), res.stderr);
        assert.match(res.stderr, /--url/);
      }
      assert.equal(seen.length, 4, 'each command asked the impostor once');
      for (const request of seen) assert.ok(!request.includes(secret), `the impostor never sees the secret: ${request}`);
    } finally {
      impostor.close();
    }
  });
});
