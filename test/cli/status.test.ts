import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { type FakeAz, installFakeAz } from '../helpers/fake-az.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { request } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

const PAT = 'dapi0123456789abcdef0123456789abcdef';

describe('dbx-gateway status', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let az: FakeAz;
  let upstream: FakeUpstream;
  let gw: SpawnedGateway;

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'dbxgw-status-'));
    az = installFakeAz();
    upstream = await startFakeUpstream();
    env = { PATH: az.path, HOME: home };
    const config = join(home, 'gw.yaml');
    writeFileSync(
      config,
      `routes:\n  prod: { host: ${upstream.url.origin}, caFile: ${testPki().caFile}, credential: azure-cli }\n` +
        `  team: { host: ${upstream.url.origin}, port: ${await freePort()}, caFile: ${testPki().caFile}, credential: { type: pat, token: ${PAT} } }\n`,
    );
    gw = await spawnGateway(['--config', config, '--no-profiles'], env, home);
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it('lists what the running gateway serves: local URL, upstream, credential, token state and counts', async () => {
    assert.equal((await request(`${gw.url}/ws/prod/api/2.0/clusters/list`)).status, 200);
    const res = await runCli(['status'], env);
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`^dbx-gateway \\S+ at ${gw.url.replace(/[.]/g, '\\.')} \\(pid ${gw.child.pid}\\): serving for \\d+s`));
    assert.match(res.stdout, /^ROUTE +LOCAL +UPSTREAM +CREDENTIAL +TOKEN +REQUESTS +ERRORS$/m);
    assert.match(
      res.stdout,
      new RegExp(
        `^prod +${gw.url.replace(/[.]/g, '\\.')}/ws/prod/ +${upstream.url.origin.replace(/[.]/g, '\\.')} +azure-cli +ready \\((\\d+h )?\\d+m left\\) +1 +0$`,
        'm',
      ),
    );
    // A per-route port is listed with its route; a PAT never expires.
    assert.match(res.stdout, /^team +\S+\/ws\/team\/ http:\/\/127\.0\.0\.1:\d+\/ +\S+ +pat +(ready|not fetched yet) +0 +0$/m);
    assert.ok(!res.stdout.includes(PAT), 'no token in the output');
  });

  it('--output json prints the status page data with the pid', async () => {
    const res = await runCli(['status', '--output', 'json'], env);
    assert.equal(res.status, 0, res.stderr);
    const data = JSON.parse(res.stdout) as { pid: number; status: string; routes: Array<{ name: string; token: string; requests: number }> };
    assert.equal(data.pid, gw.child.pid);
    assert.equal(data.status, 'serving');
    assert.deepEqual(
      data.routes.map((r) => r.name),
      ['prod', 'team'],
    );
    assert.equal(data.routes[0]?.token, 'ready');
  });

  it('says when no gateway runs, and how to start one', async () => {
    const res = await runCli(['status'], { ...env, HOME: mkdtempSync(join(tmpdir(), 'dbxgw-status-none-')) });
    assert.equal(res.status, 1);
    assert.match(res.stderr, /no running gateway found; start one with dbx-gateway serve/);
  });

  it('refuses an unknown --output', async () => {
    const res = await runCli(['status', '--output', 'yaml'], env);
    assert.equal(res.status, 2);
    assert.match(res.stderr, /--output yaml: use text or json/);
  });
});
