import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';

const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Two real gateways of one user (one HOME, so one run directory), as with `dbx-gateway` on 8080
// and `dbx-gateway --port 8090` in two terminals; ports here are the OS's.
describe('several running gateways: the one that serves the route answers', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let first: SpawnedGateway;
  let second: SpawnedGateway;

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'dbxgw-several-'));
    env = { HOME: home };
    const route = (name: string, token: string) =>
      `  ${name}: { host: https://adb-${name.length}.7.azuredatabricks.net, credential: { type: pat, token: ${token} } }\n`;
    writeFileSync(join(home, 'first.yaml'), `routes:\n${route('alpha', 'dapi-alpha')}${route('shared', 'dapi-shared-first')}`);
    writeFileSync(join(home, 'second.yaml'), `routes:\n${route('beta', 'dapi-beta')}${route('shared', 'dapi-shared-second')}`);
    [first, second] = await Promise.all([
      spawnGateway(['--config', join(home, 'first.yaml'), '--no-profiles'], env, home),
      spawnGateway(['--config', join(home, 'second.yaml'), '--no-profiles'], env, home),
    ]);
  });
  after(async () => {
    await Promise.all([first?.stop(), second?.stop()]);
  });

  it('token NAME asks the gateway that serves NAME and says which one answered', async () => {
    const alpha = await runCli(['token', 'alpha', '-o', 'raw'], env);
    assert.equal(alpha.status, 0, alpha.stderr);
    assert.equal(alpha.stdout, 'dapi-alpha\n');
    assert.match(alpha.stderr, new RegExp(`route alpha: the gateway running at ${literal(first.url)} answers`));
    const beta = await runCli(['token', 'beta', '-o', 'raw'], env);
    assert.equal(beta.status, 0, beta.stderr);
    assert.equal(beta.stdout, 'dapi-beta\n');
    assert.match(beta.stderr, new RegExp(`route beta: the gateway running at ${literal(second.url)} answers`));
  });

  it('a route both serve: exit 2 listing both, pick one with --url; --url picks', async () => {
    const both = await runCli(['token', 'shared'], env);
    assert.equal(both.status, 2);
    assert.equal(both.stdout, '');
    assert.match(both.stderr, /route shared is served by 2 running gateways: .*; pick one with --url/);
    assert.ok(both.stderr.includes(first.url) && both.stderr.includes(second.url), both.stderr);
    const picked = await runCli(['token', 'shared', '-o', 'raw', '--url', second.url], env);
    assert.equal(picked.status, 0, picked.stderr);
    assert.equal(picked.stdout, 'dapi-shared-second\n');
    const envBoth = await runCli(['env', 'shared'], env);
    assert.equal(envBoth.status, 2);
    assert.match(envBoth.stderr, /route shared is served by 2 running gateways/);
  });

  it('a route neither serves: says what each serves, then reads the configuration', async () => {
    const res = await runCli(['token', 'gamma', '--no-profiles'], env);
    assert.equal(res.status, 2);
    assert.match(res.stderr, /--no-profiles given, so fetching the token from the flags/);
    const plain = await runCli(['token', 'gamma'], env);
    assert.equal(plain.status, 2);
    assert.match(plain.stderr, /no running gateway serves route gamma \(/);
    assert.ok(plain.stderr.includes(`${first.url} serves alpha, shared`) && plain.stderr.includes(`${second.url} serves beta, shared`), plain.stderr);
    assert.match(plain.stderr, /fetching the token from the configuration directly/);
    assert.match(plain.stderr, /no route named gamma/);
  });

  it('status, doctor and reload without --url list the gateways instead of picking one', async () => {
    for (const command of ['status', 'doctor', 'reload']) {
      const res = await runCli([command], env);
      assert.equal(res.status, 2, `${command}: ${res.stderr}`);
      assert.match(res.stderr, /several gateways are running \(.*\); pick one with --url/);
    }
    const one = await runCli(['status', '--url', first.url], env);
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stdout, /alpha/);
  });

  it('route flags: used, and said so, instead of the running gateways; with --url, said to be unused', async () => {
    const flags = await runCli(['token', 'alpha', '-o', 'raw', '--workspace', 'alpha=https://adb-9.7.azuredatabricks.net', '--no-profiles'], {
      ...env,
      DATABRICKS_TOKEN: 'dapi-from-flags',
    });
    assert.equal(flags.status, 0, flags.stderr);
    assert.equal(flags.stdout, 'dapi-from-flags\n');
    assert.match(
      flags.stderr,
      new RegExp(`--workspace, --no-profiles given, so fetching the token from the flags, not the running gateways at .*${literal(first.url)}`),
    );
    const url = await runCli(['token', 'alpha', '-o', 'raw', '--workspace', 'alpha=https://adb-9.7.azuredatabricks.net', '--url', first.url], env);
    assert.equal(url.status, 0, url.stderr);
    assert.equal(url.stdout, 'dapi-alpha\n');
    assert.match(url.stderr, new RegExp(`--workspace not used: --url ${literal(first.url)} names the gateway that answers`));
    const doctor = await runCli(['doctor', '--workspace', 'x=https://adb-9.7.azuredatabricks.net', '--no-profiles'], { ...env, DATABRICKS_TOKEN: 'x' });
    assert.match(doctor.stderr, /--workspace, --no-profiles given, so checking the routes from the flags, not the running gateways/);
    assert.match(doctor.stdout, /\/ws\/x/);
  });
});
