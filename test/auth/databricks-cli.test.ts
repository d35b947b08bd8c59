import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { type FakeDatabricksCli, installFakeDatabricksCli } from '../helpers/fake-databricks-cli.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';

const cli: FakeDatabricksCli = installFakeDatabricksCli();

describe('databricks-cli credential (fake databricks on PATH)', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway | undefined;

  before(async () => {
    upstream = await startFakeUpstream((req, res) => {
      req.resume();
      res.end(JSON.stringify({ auth: req.headers.authorization }));
    });
  });
  beforeEach(async () => {
    await gw?.shutdown(100);
    gw = undefined;
    cli.set({ mode: 'ok', expiresInSec: 3600 });
  });
  after(async () => {
    await gw?.shutdown(100);
    await upstream.close();
  });

  const start = (env: NodeJS.ProcessEnv, tokenFetchTimeoutMs?: number) =>
    startTestGateway({
      flags: {
        workspace: [`ws=${upstream.url.origin}`],
        account: [`acct=0000abcd-0000-4000-8000-000000000123@${upstream.url.origin.replace('127.0.0.1', 'localhost')}`],
      },
      env,
      configure: trustCa(testPki().caFile),
      ...(tokenFetchTimeoutMs ? { tokenFetchTimeoutMs } : {}),
    });

  it('is chosen by the default chain and runs databricks auth token --host (with --account-id for accounts)', async () => {
    gw = await start({ PATH: cli.path });
    const ready = (await request(`${gw.url}/readyz`)).json<{ routes: Record<string, { credential: string; reason: string }> }>();
    assert.equal(ready.routes.ws?.credential, 'databricks-cli');
    assert.match(ready.routes.ws?.reason ?? '', /the Databricks CLI is installed/);
    const ws = await request(`${gw.url}/ws/ws/api/2.0/clusters/list`);
    assert.equal(ws.status, 200, ws.text);
    assert.match(ws.json<{ auth: string }>().auth, /^Bearer dbcli-token-\d+-/);
    assert.ok(cli.argv().includes(`auth token --host ${upstream.url.origin}`), cli.argv().join('\n'));
    const acct = await request(`${gw.url}/acct/acct/api/2.0/accounts/0000abcd-0000-4000-8000-000000000123/workspaces`);
    assert.equal(acct.status, 200);
    assert.ok(
      cli.argv().some((a) => /^auth token --host https:\/\/localhost:\d+ --account-id 0000abcd-0000-4000-8000-000000000123$/.test(a)),
      cli.argv().join('\n'),
    );
  });

  it('reads the RFC 3339 expiry (nanoseconds, zone) and reports it in /readyz', async () => {
    gw = await start({ PATH: cli.path });
    const before = Date.now();
    const ready = (await request(`${gw.url}/readyz`)).json<{ routes: Record<string, { expires_on: number }> }>();
    const expiresOn = ready.routes.ws?.expires_on ?? 0;
    assert.ok(Math.abs(expiresOn - (before / 1000 + 3600)) < 10, `expires_on ${expiresOn}`);
  });

  it('says to run databricks auth login when the refresh token is dead', async () => {
    cli.set({ mode: 'expired' });
    gw = await start({ PATH: cli.path });
    const res = await request(`${gw.url}/ws/ws/api/2.0/clusters/list`);
    assert.equal(res.status, 503);
    assert.match(
      res.json<{ message: string }>().message,
      new RegExp(`no valid login.*Refresh token is invalid.*run databricks auth login --host ${upstream.url.origin.replace(/[.]/g, '\\.')}`),
    );
  });

  it('is bounded when the CLI hangs: 503 after the fetch timeout, not a hung request', async () => {
    cli.set({ mode: 'hang' });
    gw = await start({ PATH: cli.path }, 1000);
    const res = await request(`${gw.url}/ws/ws/api/2.0/clusters/list`);
    assert.equal(res.status, 503);
    assert.match(res.json<{ message: string }>().message, /did not answer within 1 s.*Fix: run databricks auth login/);
  });

  it('says to install the CLI (or set DATABRICKS_CLI_PATH) when it is missing', async () => {
    gw = await startTestGateway({
      flags: { workspace: [`ws=${upstream.url.origin}`], credential: 'databricks-cli' },
      env: { PATH: '/nonexistent' },
      configure: trustCa(testPki().caFile),
    });
    const res = await request(`${gw.url}/ws/ws/api/2.0/clusters/list`);
    assert.equal(res.status, 503);
    assert.match(res.json<{ message: string }>().message, /Databricks CLI was not found on PATH; install it .* or set DATABRICKS_CLI_PATH/);
  });

  it('uses DATABRICKS_CLI_PATH when set', async () => {
    gw = await startTestGateway({
      flags: { workspace: [`ws=${upstream.url.origin}`], credential: 'databricks-cli' },
      env: { PATH: '/nonexistent', DATABRICKS_CLI_PATH: `${cli.dir}/databricks` },
      configure: trustCa(testPki().caFile),
    });
    const res = await request(`${gw.url}/ws/ws/api/2.0/clusters/list`);
    assert.equal(res.status, 200, res.text);
  });
});
