import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type FakeDatabricksOidc, startFakeDatabricksOidc } from '../helpers/fake-databricks-oidc.js';
import type { FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';

const CLIENT_ID = 'sp-app-0001';
const SECRET = 'dose0123456789abcdef0123456789abcdef';

describe('databricks-m2m credential (fake Databricks OIDC over HTTPS)', () => {
  let oidc: FakeDatabricksOidc;
  let upstream: FakeUpstream;
  let gw: TestGateway;
  const calls = () => oidc.tokenCalls;

  before(async () => {
    oidc = await startFakeDatabricksOidc({ m2mClients: { [CLIENT_ID]: SECRET } });
    upstream = oidc.upstream;
    const accountsHost = upstream.url.origin.replace('127.0.0.1', 'localhost');
    gw = await startTestGateway({
      flags: {
        workspace: [`ws=${upstream.url.origin}`, `ws2=${upstream.url.origin.replace('127.0.0.1', 'localhost')}`],
        account: [`acct=0a1b2c3d-0000-4000-8000-000000000001@${accountsHost}`],
      },
      env: { DATABRICKS_CLIENT_ID: CLIENT_ID, DATABRICKS_CLIENT_SECRET: SECRET, DATABRICKS_TOKEN: '' },
      configure: trustCa(testPki().caFile),
    });
  });
  after(async () => {
    await gw.shutdown(100);
    await upstream.close();
  });

  it('is chosen by the default chain from DATABRICKS_CLIENT_ID/SECRET', async () => {
    const ready = (await request(`${gw.url}/readyz`)).json<{ routes: Record<string, { credential: string; reason: string }> }>();
    assert.equal(ready.routes.ws?.credential, 'databricks-m2m');
    assert.match(ready.routes.ws?.reason ?? '', /default chain: a Databricks OAuth client id and secret are configured/);
  });

  it('discovers the workspace token endpoint and posts client credentials in HTTP Basic with scope all-apis', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => request(`${gw.url}/ws/ws/api/2.0/clusters/list`)));
    assert.ok(results.every((r) => r.status === 200));
    const auth = results[0]?.json<{ auth: string }>().auth;
    assert.match(auth ?? '', /^Bearer m2m-\d+-workspace$/);
    const workspaceCalls = calls().filter((c) => c.path === '/oidc/v1/token');
    assert.ok(workspaceCalls.length >= 1);
    assert.deepEqual(workspaceCalls[0]?.form, { grant_type: 'client_credentials', scope: 'all-apis' });
    assert.equal(workspaceCalls[0]?.authorization, `Basic ${Buffer.from(`${CLIENT_ID}:${SECRET}`).toString('base64')}`);
    assert.ok(upstream.seen.some((s) => s.url === '/oidc/.well-known/oauth-authorization-server'));
  });

  it('uses /oidc/accounts/{id}/v1/token for an account route', async () => {
    const res = await request(`${gw.url}/acct/acct/api/2.0/accounts/0a1b2c3d-0000-4000-8000-000000000001/workspaces`);
    assert.equal(res.status, 200, res.text);
    assert.match(res.json<{ auth: string }>().auth, /^Bearer m2m-\d+-account$/);
    assert.ok(calls().some((c) => c.path === '/oidc/accounts/0a1b2c3d-0000-4000-8000-000000000001/v1/token'));
  });

  it('keeps hosts apart: one fetch per host, each token only for its host', async () => {
    const a = (await request(`${gw.url}/ws/ws/api/2.0/clusters/list`)).json<{ auth: string }>().auth;
    const b = (await request(`${gw.url}/ws/ws2/api/2.0/clusters/list`)).json<{ auth: string }>().auth;
    assert.notEqual(a, b);
    // /readyz, 20 concurrent requests and these two: still one fetch per host.
    assert.equal(calls().filter((c) => c.path === '/oidc/v1/token').length, 2);
  });
});

describe('databricks-m2m failures', () => {
  it('answers 503 with the OAuth error and never the secret when the secret is wrong', async () => {
    const oidc = await startFakeDatabricksOidc({ m2mClients: { [CLIENT_ID]: SECRET } });
    const upstream = oidc.upstream;
    const wrong = 'dose9999999999999999999999999999999999';
    const gw = await startTestGateway({
      flags: { workspace: [`ws=${upstream.url.origin}`], credential: 'databricks-m2m' },
      env: { DATABRICKS_CLIENT_ID: CLIENT_ID, DATABRICKS_CLIENT_SECRET: wrong },
      configure: trustCa(testPki().caFile),
    });
    try {
      const res = await request(`${gw.url}/ws/ws/api/2.0/clusters/list`);
      assert.equal(res.status, 503);
      assert.match(
        res.json<{ message: string }>().message,
        /answered 401 \(invalid_client: Client authentication failed\).*Fix: check the service principal's OAuth client id and secret/,
      );
      assert.ok(!res.text.includes(wrong) && !gw.logText().includes(wrong));
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });

  it('refuses to send the secret to a token endpoint on another host', async () => {
    const oidc = await startFakeDatabricksOidc({
      m2mClients: { [CLIENT_ID]: SECRET },
      discovery: () => ({ token_endpoint: 'https://evil.example/oidc/v1/token' }),
    });
    const upstream = oidc.upstream;
    const gw = await startTestGateway({
      flags: { workspace: [`ws=${upstream.url.origin}`], credential: 'databricks-m2m' },
      env: { DATABRICKS_CLIENT_ID: CLIENT_ID, DATABRICKS_CLIENT_SECRET: SECRET },
      configure: trustCa(testPki().caFile),
    });
    try {
      const res = await request(`${gw.url}/ws/ws/api/2.0/clusters/list`);
      assert.equal(res.status, 503);
      assert.match(res.json<{ message: string }>().message, /token endpoint on another host \(https:\/\/evil\.example\); refusing/);
      assert.equal(oidc.tokenCalls.length, 0);
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });
});
