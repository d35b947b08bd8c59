import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN } from '../helpers/cli.js';
import { installFakeDatabricksCli } from '../helpers/fake-databricks-cli.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { request } from '../helpers/http.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

const PAT = 'dapi0123456789abcdef0123456789abcdef';

/** Runs the CLI without blocking this process (the fake upstream answers from here). */
function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

describe('zero-config from ~/.databrickscfg (gateway process, no flags)', () => {
  let upstream: FakeUpstream;
  let gw: SpawnedGateway;
  let env: NodeJS.ProcessEnv;
  const cli = installFakeDatabricksCli();

  before(async () => {
    upstream = await startFakeUpstream((req, res) => {
      const origin = `https://${req.headers.host}`;
      req.resume();
      res.setHeader('content-type', 'application/json');
      if (req.url === '/oidc/.well-known/oauth-authorization-server') return res.end(JSON.stringify({ token_endpoint: `${origin}/oidc/v1/token` }));
      if (req.url === '/oidc/v1/token') return res.end(JSON.stringify({ access_token: 'm2m-access-token', expires_in: 3600 }));
      res.end(JSON.stringify({ auth: req.headers.authorization ?? null }));
    });
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-home-'));
    const port = upstream.url.port;
    writeFileSync(
      join(home, '.databrickscfg'),
      `[__settings__]\ndefault_profile = dev\n\n[dev]\nhost = https://127.0.0.1:${port}\ntoken = ${PAT}\n\n` +
        `[robot]\nhost = https://localhost:${port}   # service principal\nclient_id = robot-app\nclient_secret = robot-secret-value\n\n` +
        `[me]\nhost = https://127.0.0.1:${port}\nauth_type = databricks-cli\n\n[conflict]\nhost = https://127.0.0.1:${port}\ntoken = ${PAT}\nclient_id = a\nclient_secret = b\n`,
    );
    env = { HOME: home, NODE_EXTRA_CA_CERTS: testPki().caFile, PATH: cli.path };
    gw = await spawnGateway([], env);
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it('serves one route per usable profile, each with its own credential', async () => {
    const auth = async (name: string) => (await request(`${gw.url}/ws/${name}/api/2.0/clusters/list`)).json<{ auth: string }>().auth;
    assert.equal(await auth('dev'), `Bearer ${PAT}`);
    assert.equal(await auth('robot'), 'Bearer m2m-access-token');
    assert.match(await auth('me'), /^Bearer dbcli-token-/);
    assert.ok(cli.argv().includes('auth token --profile me'), cli.argv().join('\n'));
    assert.equal((await request(`${gw.url}/ws/conflict/`)).status, 404);
    assert.equal((await request(`${gw.url}/ws/demo/api/2.0/clusters/list`)).status, 404, 'no demo when profiles exist');
  });

  it('logs each route with its credential and why, and warns about skipped profiles', () => {
    const lines = gw
      .stdout()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const route = lines.find((l) => l.route === 'robot');
    assert.equal(route?.credential, 'databricks-m2m');
    assert.match(String(route?.why), /credential: databricks-m2m is configured \(profile robot\)/);
    assert.ok(lines.some((l) => /skipped profile: .*\[conflict\]: more than one authorization method/.test(String(l.msg))));
    assert.ok(!gw.stdout().includes(PAT) && !gw.stdout().includes('robot-secret-value'));
  });

  it('doctor prints a line per route and exits 0 only when every route has a token', async () => {
    // Another home with the same profiles: no run file there, so doctor reads the configuration
    // itself instead of asking the gateway running above (running-gateway.test.ts covers that).
    const direct = { ...env, HOME: mkdtempSync(join(tmpdir(), 'dbxgw-home2-')), DATABRICKS_CONFIG_FILE: join(String(env.HOME), '.databrickscfg') };
    const ok = await runCli(['doctor'], direct);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /PASS {2}\/ws\/robot {2}->/);
    assert.match(ok.stdout, /credential: databricks-m2m \(credential: databricks-m2m is configured \(profile robot\)\)/);
    assert.match(ok.stdout, /all 3 routes ok/);
    assert.match(ok.stderr, /warning: skipped profile/);
    assert.ok(!ok.stdout.includes(PAT));
    cli.set({ mode: 'expired' });
    try {
      const bad = await runCli(['doctor'], direct);
      assert.equal(bad.status, 1);
      assert.match(bad.stdout, /FAIL {2}\/ws\/me .*\n.*\n.*\n +error: +.*run databricks auth login --profile me/);
      assert.match(bad.stdout, /1 of 3 routes failed/);
    } finally {
      cli.set({ mode: 'ok' });
    }
  });

  it('--profile NAME (or DATABRICKS_CONFIG_PROFILE) serves that profile only, as the Databricks CLI picks one', async () => {
    for (const [args, extra] of [
      [['--profile', 'robot'], {}],
      [[], { DATABRICKS_CONFIG_PROFILE: 'robot' }],
    ] as const) {
      const one = await spawnGateway([...args], { ...env, ...extra });
      try {
        assert.equal((await request(`${one.url}/ws/robot/api/2.0/clusters/list`)).status, 200);
        assert.equal((await request(`${one.url}/ws/dev/api/2.0/clusters/list`)).status, 404);
      } finally {
        await one.stop();
      }
    }
    const typo = await runCli(['--profile', 'robt', '--port', '0'], env);
    assert.equal(typo.status, 2);
    assert.match(typo.stderr, /--profile robt: no such profile with a host in ~\/\.databrickscfg; did you mean robot\?/);
    const broken = await runCli(['--profile', 'conflict', '--port', '0'], env);
    assert.equal(broken.status, 2, 'a profile asked for by name is an error when it cannot be used');
    assert.match(broken.stderr, /--profile conflict: .*more than one authorization method/);
  });

  it('--no-profiles serves the demo instead', async () => {
    const demo = await spawnGateway(['--no-profiles'], env);
    try {
      assert.equal((await request(`${demo.url}/ws/demo/api/2.0/clusters/list`)).status, 200);
      assert.equal((await request(`${demo.url}/ws/dev/api/2.0/clusters/list`)).status, 404);
    } finally {
      await demo.stop();
    }
  });
});
