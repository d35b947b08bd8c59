import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type FakeEntra, type FakeMsi, jwtClaims, startFakeEntra, startFakeMsi } from '../helpers/fake-entra.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { request } from '../helpers/http.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';
import { testClientCertificate, testPki } from '../helpers/tls.js';

// Real @azure/identity in a real gateway process, against a fake Entra authority over HTTPS
// (AZURE_AUTHORITY_HOST, instance discovery off) and a fake App Service identity endpoint.

const TENANT = '11111111-2222-3333-4444-555555555555';
const DATABRICKS = '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d';
// With its trailing slash: the resource every Databricks SDK asks for (v2 scope ".../" + "/.default").
const MANAGEMENT = /^https:\/\/management\.core\.windows\.net\/$/;
const RESOURCE_ID = '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/ws1';
const SECRET_1 = 'sp1-secret~Qx8Q~abcdefghijklmnopqrstuvwxyz0';
const SECRET_2 = 'sp2-secret~Zz9Z~abcdefghijklmnopqrstuvwxyz0';
const WRONG_SECRET = 'wrong-secret~Ww1W~abcdefghijklmnop';

interface Seen {
  authorization?: string;
  management?: string;
  resourceId?: string;
}

/** An upstream that answers with the auth headers it received. */
function echoAuth(): Promise<FakeUpstream> {
  return startFakeUpstream((req, res) => {
    req.resume();
    const seen: Seen = {
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      ...(typeof req.headers['x-databricks-azure-sp-management-token'] === 'string'
        ? { management: req.headers['x-databricks-azure-sp-management-token'] }
        : {}),
      ...(typeof req.headers['x-databricks-azure-workspace-resource-id'] === 'string'
        ? { resourceId: req.headers['x-databricks-azure-workspace-resource-id'] }
        : {}),
    };
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(seen));
  });
}

function writeConfig(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-entra-'));
  const file = join(dir, 'dbx-gateway.yaml');
  writeFileSync(file, yaml);
  return file;
}

const baseEnv = (entra: FakeEntra) => ({
  HOME: mkdtempSync(join(tmpdir(), 'dbxgw-home-')),
  NODE_EXTRA_CA_CERTS: testPki().caFile,
  AZURE_AUTHORITY_HOST: entra.url.origin,
});

describe('Entra ID service principals (client secret, certificate)', () => {
  let entra: FakeEntra;
  let upstream: FakeUpstream;
  let gw: SpawnedGateway;
  const cert = testClientCertificate();

  before(async () => {
    entra = await startFakeEntra();
    entra.apps.set('client-1', { secret: SECRET_1 });
    entra.apps.set('client-2', { secret: SECRET_2 });
    entra.apps.set('client-cert', { certPem: cert.certPem });
    entra.apps.set('client-4', { secret: 'the-right-one' });
    upstream = await echoAuth();
    const host = upstream.url.origin;
    const ca = testPki().caFile;
    const config = writeConfig(`
routes:
  a: { host: ${host}, caFile: ${ca}, azureResourceId: ${RESOURCE_ID} }
  b: { host: ${host}, caFile: ${ca} }
  c:
    host: ${host}
    caFile: ${ca}
    credential:
      type: azure-client-secret
      tenantId: ${TENANT}
      clientId: client-2
      clientSecret: "\${OTHER_SECRET}"
  cert:
    host: ${host}
    caFile: ${ca}
    credential:
      type: azure-client-secret
      tenantId: ${TENANT}
      clientId: client-cert
      clientCertificatePath: ${cert.pemFile}
  dflt:
    host: ${host}
    caFile: ${ca}
    credential: azure-default
  bad:
    host: ${host}
    caFile: ${ca}
    credential:
      type: azure-client-secret
      tenantId: ${TENANT}
      clientId: client-4
      clientSecret: "${WRONG_SECRET}"
`);
    gw = await spawnGateway(['--config', config], {
      ...baseEnv(entra),
      ARM_TENANT_ID: TENANT,
      ARM_CLIENT_ID: 'client-1',
      ARM_CLIENT_SECRET: SECRET_1,
      OTHER_SECRET: SECRET_2,
      // For azure-default's EnvironmentCredential (DefaultAzureCredential reads AZURE_*).
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: 'client-2',
      AZURE_CLIENT_SECRET: SECRET_2,
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await entra?.close();
  });

  it('is chosen by the default chain from ARM_* and says so in /readyz', async () => {
    const ready = await request(`${gw.url}/readyz`);
    const routes = ready.json<{ routes: Record<string, { credential: string; reason: string }> }>().routes;
    assert.equal(routes.a?.credential, 'azure-client-secret');
    assert.match(routes.a?.reason ?? '', /default chain: a service principal client secret is configured/);
    assert.match(routes.c?.reason ?? '', /credential: azure-client-secret is configured/);
  });

  it('sends the Databricks token, the management token and the workspace resource id', async () => {
    const res = await request(`${gw.url}/ws/a/api/2.0/clusters/list`);
    assert.equal(res.status, 200);
    const seen = res.json<Seen>();
    assert.equal(jwtClaims(seen.authorization).aud, DATABRICKS);
    assert.equal(jwtClaims(seen.authorization).appid, 'client-1');
    assert.match(String(jwtClaims(seen.management).aud), MANAGEMENT);
    assert.equal(jwtClaims(seen.management).appid, 'client-1');
    assert.ok(
      entra.requests.some((r) => r.clientId === 'client-1' && r.scope.split(' ').includes('https://management.core.windows.net//.default')),
      `scopes asked: ${entra.requests.map((r) => r.scope).join(' | ')}`,
    );
    assert.equal(seen.resourceId, RESOURCE_ID);
    const b = (await request(`${gw.url}/ws/b/api/2.0/clusters/list`)).json<Seen>();
    assert.equal(b.resourceId, undefined, 'no resource id header without azureResourceId');
    assert.ok(b.management);
  });

  it('fetches once per identity and audience, shared by every route of that identity', async () => {
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => request(`${gw.url}/ws/${i % 2 ? 'a' : 'b'}/api/2.0/clusters/list`)));
    assert.ok(results.every((r) => r.status === 200));
    assert.equal(new Set(results.map((r) => r.json<Seen>().authorization)).size, 1);
    const forClient1 = entra.requests.filter((r) => r.clientId === 'client-1');
    assert.deepEqual(forClient1.map((r) => r.scope.split(' ').find((s) => s.endsWith('/.default'))).sort(), [
      `${DATABRICKS}/.default`,
      'https://management.core.windows.net//.default',
    ]);
    assert.ok(forClient1.every((r) => r.grantType === 'client_credentials' && r.clientSecret === SECRET_1 && r.tenant === TENANT));
  });

  it('never shares a token between different identities', async () => {
    const a = (await request(`${gw.url}/ws/a/api/2.0/clusters/list`)).json<Seen>();
    const c = (await request(`${gw.url}/ws/c/api/2.0/clusters/list`)).json<Seen>();
    assert.notEqual(a.authorization, c.authorization);
    assert.equal(jwtClaims(c.authorization).appid, 'client-2');
    assert.equal(jwtClaims(c.management).appid, 'client-2');
  });

  it('signs in with a client certificate (assertion signature verified by the authority)', async () => {
    const res = await request(`${gw.url}/ws/cert/api/2.0/clusters/list`);
    assert.equal(res.status, 200, res.text);
    assert.equal(jwtClaims(res.json<Seen>().authorization).appid, 'client-cert');
    const seen = entra.requests.filter((r) => r.clientId === 'client-cert');
    assert.ok(seen.length > 0 && seen.every((r) => r.clientAssertionType === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'));
  });

  it('azure-default signs in through DefaultAzureCredential (environment credential here)', async () => {
    const ready = (await request(`${gw.url}/readyz`)).json<{ routes: Record<string, { credential: string }> }>();
    assert.equal(ready.routes.dflt?.credential, 'azure-default');
    const seen = (await request(`${gw.url}/ws/dflt/api/2.0/clusters/list`)).json<Seen>();
    assert.equal(jwtClaims(seen.authorization).appid, 'client-2');
    assert.equal(jwtClaims(seen.authorization).aud, DATABRICKS);
  });

  it('answers 503 with the Entra error code, description and correlation id, never the secret', async () => {
    const res = await request(`${gw.url}/ws/bad/api/2.0/clusters/list`);
    assert.equal(res.status, 503);
    const body = res.json<{ error_code: string; message: string }>();
    assert.equal(body.error_code, 'GATEWAY_TOKEN_UNAVAILABLE');
    assert.match(body.message, /^no usable token from credential azure-client-secret: Entra ID error invalid_client: AADSTS7000215: Invalid client secret/);
    assert.match(body.message, /Correlation ID: 3f2d1c0b-aaaa-4bbb-8ccc-0123456789ab/);
    assert.match(body.message, /Fix: check the service principal's tenantId, clientId and clientSecret/);
    assert.equal(upstream.seen.filter((s) => s.url.includes('/bad/')).length, 0);
    for (const secret of [WRONG_SECRET, SECRET_1, SECRET_2]) {
      assert.ok(!res.text.includes(secret), 'secret in error body');
      assert.ok(!gw.stdout().includes(secret) && !gw.stderr().includes(secret), 'secret in logs');
    }
    const metrics = await request(`${gw.url}/metrics`);
    assert.ok(![WRONG_SECRET, SECRET_1, SECRET_2].some((s) => metrics.text.includes(s)));
  });
});

describe('Entra ID workload identity and sovereign clouds', () => {
  let entra: FakeEntra;
  let upstream: FakeUpstream;
  let gw: SpawnedGateway;
  const federated = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGJ4In0.c2ln';

  before(async () => {
    entra = await startFakeEntra();
    entra.apps.set('wi-client', { federatedToken: federated });
    upstream = await echoAuth();
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-wi-'));
    const tokenFile = join(dir, 'azure-identity-token');
    writeFileSync(tokenFile, federated);
    const config = writeConfig(`routes:\n  w: { host: ${upstream.url.origin}, caFile: ${testPki().caFile} }\n`);
    gw = await spawnGateway(['--config', config], {
      ...baseEnv(entra),
      AZURE_CLIENT_ID: 'wi-client',
      AZURE_TENANT_ID: TENANT,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
      ARM_ENVIRONMENT: 'USGOVERNMENT',
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await entra?.close();
  });

  it('exchanges the federated token file as a client assertion (default chain)', async () => {
    const ready = (await request(`${gw.url}/readyz`)).json<{ routes: Record<string, { credential: string }> }>();
    assert.equal(ready.routes.w?.credential, 'azure-workload-identity');
    const seen = (await request(`${gw.url}/ws/w/api/2.0/clusters/list`)).json<Seen>();
    assert.equal(jwtClaims(seen.authorization).appid, 'wi-client');
    const reqs = entra.requests.filter((r) => r.clientId === 'wi-client');
    assert.ok(reqs.length >= 1 && reqs.every((r) => r.clientAssertion === federated));
  });

  it('takes the management endpoint from ARM_ENVIRONMENT and the authority from AZURE_AUTHORITY_HOST', async () => {
    const seen = (await request(`${gw.url}/ws/w/api/2.0/clusters/list`)).json<Seen>();
    assert.match(String(jwtClaims(seen.management).aud), /^https:\/\/management\.core\.usgovcloudapi\.net\/$/);
    assert.ok(entra.requests.some((r) => r.scope.includes('https://management.core.usgovcloudapi.net//.default')));
  });
});

describe('Azure managed identity (App Service / Container Apps endpoint)', () => {
  let msi: FakeMsi;
  let upstream: FakeUpstream;
  let gw: SpawnedGateway;

  before(async () => {
    msi = await startFakeMsi();
    upstream = await echoAuth();
    const ca = testPki().caFile;
    const config = writeConfig(`
routes:
  system: { host: ${upstream.url.origin}, caFile: ${ca} }
  user:
    host: ${upstream.url.origin}
    caFile: ${ca}
    credential:
      type: azure-msi
      clientId: 99999999-8888-7777-6666-555555555555
`);
    gw = await spawnGateway(['--config', config], {
      HOME: mkdtempSync(join(tmpdir(), 'dbxgw-home-')),
      ARM_USE_MSI: 'true',
      IDENTITY_ENDPOINT: msi.endpoint,
      IDENTITY_HEADER: msi.identityHeader,
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await msi?.close();
  });

  it('is chosen by ARM_USE_MSI and fetches both audiences with the identity header', async () => {
    const ready = (await request(`${gw.url}/readyz`)).json<{ routes: Record<string, { credential: string; reason: string }> }>();
    assert.equal(ready.routes.system?.credential, 'azure-msi');
    assert.match(ready.routes.system?.reason ?? '', /ARM_USE_MSI/);
    const seen = (await request(`${gw.url}/ws/system/api/2.0/clusters/list`)).json<Seen>();
    assert.equal(jwtClaims(seen.authorization).aud, DATABRICKS);
    assert.match(String(jwtClaims(seen.management).aud), MANAGEMENT);
    const system = msi.requests.filter((r) => r.clientId === undefined);
    assert.equal(system.length, 2);
    assert.ok(system.some((r) => r.resource === DATABRICKS) && system.some((r) => MANAGEMENT.test(r.resource)));
    assert.ok(system.every((r) => r.identityHeader === msi.identityHeader));
  });

  it('asks for the user-assigned identity by client id', async () => {
    const seen = (await request(`${gw.url}/ws/user/api/2.0/clusters/list`)).json<Seen>();
    assert.equal(jwtClaims(seen.authorization).oid, '99999999-8888-7777-6666-555555555555');
    assert.ok(msi.requests.some((r) => r.clientId === '99999999-8888-7777-6666-555555555555' && r.resource === DATABRICKS));
  });
});
