import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createCredential } from '../../src/auth/credentials/index.js';
import { parseDatabricksCfg } from '../../src/config/databrickscfg.js';
import { profileRoute } from '../../src/config/profiles.js';
import type { CredentialSpec, RouteConfig } from '../../src/config/types.js';
import { type FakeDatabricksOidc, type FederationPolicy, makeJwt, startFakeDatabricksOidc } from '../helpers/fake-databricks-oidc.js';
import { AZURE_DEVOPS_ACCESS_TOKEN, AZURE_DEVOPS_AUDIENCE, GITHUB_REQUEST_TOKEN, startFakeIdp } from '../helpers/fake-oidc-idp.js';
import { startTestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { routeConfig } from '../helpers/route-config.js';
import { testPki } from '../helpers/tls.js';

const CLIENT_ID = 'fed-sp-0001';
const ACCOUNT_ID = '0a1b2c3d-0000-4000-8000-000000000009';
const nowS = () => Math.floor(Date.now() / 1000);

/** A Databricks OIDC fake with this federation policy, and routes on it. */
async function databricks(policy: FederationPolicy) {
  const oidc = await startFakeDatabricksOidc({ federation: policy });
  const workspace = routeConfig({ upstream: oidc.upstream.url, caFile: testPki().caFile });
  const account = routeConfig({ name: 'acct', kind: 'account', accountId: ACCOUNT_ID, upstream: oidc.upstream.url, caFile: testPki().caFile });
  return { oidc, workspace, account };
}

const exchanges = (oidc: FakeDatabricksOidc) => oidc.tokenCalls.filter((c) => c.form.grant_type === 'urn:ietf:params:oauth:grant-type:token-exchange');
const token = (spec: CredentialSpec, env: NodeJS.ProcessEnv, route: RouteConfig) => createCredential(spec, { env, route }).getToken('databricks');

describe('token federation: the exchange (fake Databricks OIDC over HTTPS)', () => {
  it('env-oidc with a client id exchanges the JWT at the workspace token endpoint (audience: that endpoint)', async () => {
    const { oidc, workspace } = await databricks({ clientId: CLIENT_ID });
    try {
      const jwt = makeJwt({ sub: 'ci', aud: `${oidc.upstream.url.origin}/oidc/v1/token`, exp: nowS() + 600 });
      const t = await token({ type: 'env-oidc' }, { DATABRICKS_OIDC_TOKEN: jwt, DATABRICKS_CLIENT_ID: CLIENT_ID }, workspace);
      assert.match(t.token, /^fed-\d+-workspace-ci$/);
      const [call] = exchanges(oidc);
      assert.equal(call?.path, '/oidc/v1/token');
      assert.deepEqual(call?.form, {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: jwt,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        scope: 'all-apis',
        client_id: CLIENT_ID,
      });
      assert.equal(call?.authorization, undefined, 'no client secret, no Basic auth');
    } finally {
      await oidc.close();
    }
  });

  it('follows the JWT lifetime: expires_in when given, else the JWT exp', async () => {
    for (const omitExpiresIn of [false, true]) {
      const { oidc, workspace } = await databricks({ omitExpiresIn });
      try {
        const exp = nowS() + 900;
        const jwt = makeJwt({ sub: 'k8s', aud: `${oidc.upstream.url.origin}/oidc/v1/token`, exp });
        const t = await token({ type: 'env-oidc' }, { DATABRICKS_OIDC_TOKEN: jwt }, workspace);
        // expires_in is whole seconds from the server's clock: within a few seconds of exp.
        assert.ok(Math.abs(t.expiresOnMs - exp * 1000) <= 5_000, `omitExpiresIn=${omitExpiresIn}: ${t.expiresOnMs} vs ${exp * 1000}`);
        if (omitExpiresIn) assert.equal(t.expiresOnMs, exp * 1000);
      } finally {
        await oidc.close();
      }
    }
  });

  it('reads the variable named by DATABRICKS_OIDC_TOKEN_ENV, and an account route uses the account id as audience without client_id', async () => {
    const { oidc, account } = await databricks({});
    try {
      const jwt = makeJwt({ sub: 'acct-wide', aud: ACCOUNT_ID, exp: nowS() + 600 });
      const t = await token({ type: 'env-oidc' }, { DATABRICKS_OIDC_TOKEN_ENV: 'MY_IDP_TOKEN', MY_IDP_TOKEN: jwt }, account);
      assert.match(t.token, /^fed-\d+-account-acct-wide$/);
      const [call] = exchanges(oidc);
      assert.equal(call?.path, `/oidc/accounts/${ACCOUNT_ID}/v1/token`);
      assert.equal('client_id' in (call?.form ?? {}), false, 'account-wide federation sends no client_id');
    } finally {
      await oidc.close();
    }
  });

  it('DATABRICKS_TOKEN_AUDIENCE overrides the audience asked of the IdP', async () => {
    const idp = await startFakeIdp();
    const { oidc, workspace } = await databricks({ clientId: CLIENT_ID, audience: () => 'custom-aud' });
    try {
      const env = { ACTIONS_ID_TOKEN_REQUEST_URL: idp.githubRequestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: GITHUB_REQUEST_TOKEN, DATABRICKS_CLIENT_ID: CLIENT_ID };
      await token({ type: 'github-oidc' }, { ...env, DATABRICKS_TOKEN_AUDIENCE: 'custom-aud' }, workspace);
      assert.equal(idp.calls.at(-1)?.query.audience, 'custom-aud');
    } finally {
      await oidc.close();
      await idp.close();
    }
  });

  it('file-oidc re-reads the file at every exchange (a projected token rotates)', async () => {
    const { oidc, workspace } = await databricks({ clientId: CLIENT_ID });
    try {
      const dir = mkdtempSync(join(tmpdir(), 'dbxgw-oidc-'));
      const file = join(dir, 'token');
      const aud = `${oidc.upstream.url.origin}/oidc/v1/token`;
      writeFileSync(file, `${makeJwt({ sub: 'first', aud, exp: nowS() + 600 })}\n`);
      const cred = createCredential({ type: 'file-oidc', oidcTokenFilePath: file, clientId: CLIENT_ID }, { env: {}, route: workspace });
      assert.match((await cred.getToken('databricks')).token, /-first$/);
      writeFileSync(file, makeJwt({ sub: 'second', aud, exp: nowS() + 600 }));
      assert.match((await cred.getToken('databricks')).token, /-second$/);
    } finally {
      await oidc.close();
    }
  });

  it('github-oidc asks the Actions endpoint for the token endpoint audience with its bearer token', async () => {
    const idp = await startFakeIdp();
    const { oidc, workspace } = await databricks({ clientId: CLIENT_ID });
    try {
      const env = { ACTIONS_ID_TOKEN_REQUEST_URL: idp.githubRequestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: GITHUB_REQUEST_TOKEN, DATABRICKS_CLIENT_ID: CLIENT_ID };
      const t = await token({ type: 'default' }, env, workspace);
      assert.match(t.token, /^fed-\d+-workspace-repo:org\/repo/);
      const call = idp.calls.at(-1);
      assert.equal(call?.method, 'GET');
      assert.equal(call?.query['api-version'], '2.0');
      assert.equal(call?.query.audience, `${oidc.upstream.url.origin}/oidc/v1/token`);
      assert.equal(call?.authorization, `Bearer ${GITHUB_REQUEST_TOKEN}`);
    } finally {
      await oidc.close();
      await idp.close();
    }
  });

  it("azure-devops-oidc POSTs to the pipeline's oidctoken endpoint with SYSTEM_ACCESSTOKEN (audience fixed by Azure DevOps)", async () => {
    const idp = await startFakeIdp();
    const { oidc, account } = await databricks({ clientId: CLIENT_ID, audience: () => AZURE_DEVOPS_AUDIENCE });
    try {
      const t = await token({ type: 'default' }, { ...idp.azureDevopsEnv, DATABRICKS_CLIENT_ID: CLIENT_ID }, account);
      assert.match(t.token, /^fed-\d+-account-p:\/\/org/);
      const call = idp.calls.at(-1);
      assert.equal(call?.method, 'POST');
      assert.equal(call?.path, '/org/proj-1/_apis/distributedtask/hubs/build/plans/plan-2/jobs/job-3/oidctoken');
      assert.equal(call?.query['api-version'], '7.2-preview.1');
      assert.equal(call?.authorization, `Bearer ${AZURE_DEVOPS_ACCESS_TOKEN}`);
    } finally {
      await oidc.close();
      await idp.close();
    }
  });
});

describe('token federation: errors say what to do and never show a token', () => {
  it('an expired subject token is refused before any exchange', async () => {
    const { oidc, workspace } = await databricks({});
    try {
      const jwt = makeJwt({ sub: 'old', aud: 'x', exp: nowS() - 60 });
      await assert.rejects(token({ type: 'env-oidc' }, { DATABRICKS_OIDC_TOKEN: jwt }, workspace), (err: Error) => {
        assert.match(err.message, /the OIDC token from the variable DATABRICKS_OIDC_TOKEN expired at \d{4}-.*Z; put a current OIDC token/);
        assert.ok(!err.message.includes(jwt));
        return true;
      });
      assert.equal(exchanges(oidc).length, 0);
    } finally {
      await oidc.close();
    }
  });

  it('an unreadable subject token or a missing file says so', async () => {
    const { oidc, workspace } = await databricks({});
    try {
      await assert.rejects(token({ type: 'env-oidc' }, { DATABRICKS_OIDC_TOKEN: 'not-a-jwt-secret-value' }, workspace), (err: Error) => {
        assert.match(err.message, /is not a JWT \(header\.payload\.signature, base64url\)/);
        assert.ok(!err.message.includes('not-a-jwt-secret-value'));
        return true;
      });
      await assert.rejects(
        token({ type: 'file-oidc', oidcTokenFilePath: '/nonexistent/token' }, {}, workspace),
        /cannot read the OIDC token file \/nonexistent\/token \(it does not exist\); make .* check the pod's serviceAccountToken volume/,
      );
    } finally {
      await oidc.close();
    }
  });

  it('an unreachable IdP is named without its bearer token', async () => {
    const idp = await startFakeIdp();
    const deadUrl = idp.githubRequestUrl;
    await idp.close();
    const { oidc, workspace } = await databricks({ clientId: CLIENT_ID });
    try {
      const env = { ACTIONS_ID_TOKEN_REQUEST_URL: deadUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: GITHUB_REQUEST_TOKEN, DATABRICKS_CLIENT_ID: CLIENT_ID };
      await assert.rejects(token({ type: 'github-oidc' }, env, workspace), (err: Error) => {
        assert.match(err.message, /could not reach the GitHub Actions ID token endpoint at http:\/\/127\.0\.0\.1:\d+\/github\/idtoken/);
        assert.ok(!err.message.includes(GITHUB_REQUEST_TOKEN));
        return true;
      });
    } finally {
      await oidc.close();
    }
  });

  it('refuses to send a bearer token to a plain-http IdP off this machine', () => {
    const env = { ACTIONS_ID_TOKEN_REQUEST_URL: 'http://idp.example/x?api-version=2.0', ACTIONS_ID_TOKEN_REQUEST_TOKEN: GITHUB_REQUEST_TOKEN };
    assert.throws(() => createCredential({ type: 'github-oidc' }, { env, route: routeConfig() }), /must be an https URL.*refusing to send its bearer token/);
  });

  it('through the gateway: 503 with the fix, a cached token, and no JWT or token in the answer or the logs', async () => {
    const idp = await startFakeIdp();
    const { oidc } = await databricks({ clientId: CLIENT_ID });
    const refusing = await startFakeDatabricksOidc({ federation: { clientId: 'someone-else' } });
    const env = { ACTIONS_ID_TOKEN_REQUEST_URL: idp.githubRequestUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: GITHUB_REQUEST_TOKEN, DATABRICKS_CLIENT_ID: CLIENT_ID };
    const gw = await startTestGateway({
      flags: { workspace: [`ok=${oidc.upstream.url.origin}`, `refused=${refusing.upstream.url.origin}`] },
      env,
      configure: trustCa(testPki().caFile),
    });
    try {
      const ready = (await request(`${gw.url}/readyz`)).json<{ routes: Record<string, { credential: string; reason: string }> }>();
      assert.equal(ready.routes.ok?.credential, 'github-oidc');
      assert.match(ready.routes.ok?.reason ?? '', /default chain: a GitHub Actions OIDC token.*service principal fed-sp-0001/);
      const a = await request(`${gw.url}/ws/ok/api/2.0/clusters/list`);
      const b = await request(`${gw.url}/ws/ok/api/2.0/clusters/list`);
      assert.equal(a.status, 200, a.text);
      const auth = a.json<{ auth: string }>().auth;
      assert.match(auth, /^Bearer fed-\d+-workspace-/);
      assert.equal(b.json<{ auth: string }>().auth, auth, 'the exchanged token is cached');
      assert.equal(exchanges(oidc).length, 1);

      const refused = await request(`${gw.url}/ws/refused/api/2.0/clusters/list`);
      assert.equal(refused.status, 503);
      assert.match(
        refused.json<{ message: string }>().message,
        /token exchange of the OIDC token from GitHub Actions failed: .*invalid_client.*Fix: .*federation policy/,
      );
      const output = `${refused.text}${gw.logText()}`;
      for (const secret of [GITHUB_REQUEST_TOKEN, ...idp.issued, auth.slice('Bearer '.length)]) {
        assert.ok(!output.includes(secret), 'no JWT, request token or Databricks token in errors or logs');
      }
    } finally {
      await gw.shutdown(100);
      await oidc.close();
      await refusing.close();
      await idp.close();
    }
  });
});

describe('token federation: the default chain and ~/.databrickscfg', () => {
  const route = routeConfig();
  const chosen = (env: NodeJS.ProcessEnv) => createCredential({ type: 'default' }, { env, route }).type;
  const github = { ACTIONS_ID_TOKEN_REQUEST_URL: 'https://gh.example/x?api-version=2.0', ACTIONS_ID_TOKEN_REQUEST_TOKEN: 't' };
  const ado = {
    SYSTEM_ACCESSTOKEN: 'a',
    SYSTEM_TEAMFOUNDATIONCOLLECTIONURI: 'https://dev.azure.com/org/',
    SYSTEM_TEAMPROJECTID: 'p',
    SYSTEM_HOSTTYPE: 'build',
    SYSTEM_PLANID: 'pl',
    SYSTEM_JOBID: 'j',
  };
  const fed = { DATABRICKS_OIDC_TOKEN: 'x', DATABRICKS_OIDC_TOKEN_FILEPATH: '/t' };
  const sp = { ARM_TENANT_ID: 't', ARM_CLIENT_ID: 'c', ARM_CLIENT_SECRET: 's' };

  it("tries them in the Go SDK's order: after M2M, github, azure-devops, env, file, before Entra", () => {
    const id = { DATABRICKS_CLIENT_ID: 'i' };
    assert.equal(chosen({ ...id, DATABRICKS_CLIENT_SECRET: 's', ...github, ...ado, ...fed }), 'databricks-m2m');
    assert.equal(chosen({ ...id, ...github, ...ado, ...fed, ...sp }), 'github-oidc');
    assert.equal(chosen({ ...id, ...ado, ...fed, ...sp }), 'azure-devops-oidc');
    assert.equal(chosen({ ...id, ...fed, ...sp }), 'env-oidc');
    assert.equal(chosen({ DATABRICKS_OIDC_TOKEN_FILEPATH: '/t', ...sp }), 'file-oidc');
  });

  it('takes a CI runner identity only for a named service principal (DATABRICKS_CLIENT_ID), as the Python SDK', () => {
    assert.equal(chosen({ ...github, ...ado, ...sp }), 'azure-client-secret');
    assert.equal(createCredential({ type: 'github-oidc' }, { env: github, route }).type, 'github-oidc', 'named, it does account-wide federation');
  });

  it('makes routes of profiles with each auth type, client_id and the SDKs’ key names', () => {
    const cfg = parseDatabricksCfg(
      [
        '[gh]',
        'host = https://adb-1.1.azuredatabricks.net',
        'auth_type = github-oidc',
        'client_id = sp-gh',
        '[ado]',
        'host = https://adb-1.1.azuredatabricks.net',
        'auth_type = azure-devops-oidc',
        'client_id = sp-ado',
        '[env]',
        'host = https://adb-1.1.azuredatabricks.net',
        'auth_type = env-oidc',
        'oidc_token_env = MY_TOKEN',
        'token_audience = aud-1',
        '[file]',
        'host = https://accounts.azuredatabricks.net',
        `account_id = ${ACCOUNT_ID}`,
        'databricks_id_token_filepath = /var/run/secrets/databricks/token',
        'client_id = sp-file',
      ].join('\n'),
      '/cfg',
    );
    const credential = (name: string) => profileRoute(name, cfg, (h) => new URL(h)).route?.credential;
    assert.deepEqual(credential('gh'), { type: 'github-oidc', profile: 'gh', clientId: 'sp-gh' });
    assert.deepEqual(credential('ado'), { type: 'azure-devops-oidc', profile: 'ado', clientId: 'sp-ado' });
    assert.deepEqual(credential('env'), { type: 'env-oidc', profile: 'env', oidcTokenEnv: 'MY_TOKEN', audience: 'aud-1' });
    assert.deepEqual(credential('file'), { type: 'file-oidc', profile: 'file', oidcTokenFilePath: '/var/run/secrets/databricks/token', clientId: 'sp-file' });
    const fromProfile = createCredential(credential('env')!, { env: { MY_TOKEN: 'jwt', DATABRICKS_TOKEN_AUDIENCE: 'ignored' }, route });
    assert.equal(fromProfile.type, 'env-oidc');
    assert.match(fromProfile.id, /:aud-1:MY_TOKEN$/);
  });
});
