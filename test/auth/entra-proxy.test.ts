import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { namedPki, startConnectProxy } from '../helpers/connect-proxy.js';
import { jwtClaims, startFakeEntra, startFakeMsi } from '../helpers/fake-entra.js';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { request } from '../helpers/http.js';
import { spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

// Entra ID and managed identity behind a corporate proxy: real @azure/identity in a real gateway
// process, sending through the gateway's own HTTP client (src/auth/egress-http-client.ts).

const TENANT = '11111111-2222-3333-4444-555555555555';
const AUTHORITY = 'login.test.example';
const PROXY_PASSWORD = 'pr0xy-s3cret';

function setup(yaml: string) {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-entra-proxy-'));
  writeFileSync(join(dir, 'c.yaml'), yaml);
  // Node reads one extra CA file: the upstream's test CA and the authority's, together.
  const cas = join(dir, 'cas.pem');
  writeFileSync(cas, `${testPki().ca}\n${readFileSync(namedPki(AUTHORITY).caFile, 'utf8')}`);
  return { config: join(dir, 'c.yaml'), cas, home: dir };
}

describe('Entra ID through an egress proxy', () => {
  it('fetches the service principal token through the CONNECT proxy, with its credentials, named by host', async () => {
    const entra = await startFakeEntra({ pki: namedPki(AUTHORITY) });
    entra.apps.set('sp-client', { secret: 'sp-secret-value-0000' });
    const proxy = await startConnectProxy({ user: 'corp', password: PROXY_PASSWORD });
    const upstream = await startFakeUpstream((req, res) => {
      req.resume();
      res.end(JSON.stringify({ auth: req.headers.authorization }));
    });
    const { config, cas, home } = setup(
      `routes:\n  p: { host: ${upstream.url.origin}, caFile: ${testPki().caFile}, credential: { type: azure-client-secret, tenantId: ${TENANT}, clientId: sp-client, clientSecret: sp-secret-value-0000 } }\n`,
    );
    const gw = await spawnGateway(['--config', config], {
      HOME: home,
      NODE_EXTRA_CA_CERTS: cas,
      AZURE_AUTHORITY_HOST: `https://${AUTHORITY}:${entra.url.port}`,
      HTTPS_PROXY: `http://corp:${PROXY_PASSWORD}@127.0.0.1:${proxy.port}`,
    });
    try {
      const res = await request(`${gw.url}/ws/p/api/2.0/clusters/list`);
      assert.equal(res.status, 200, res.text);
      assert.equal(jwtClaims(res.json<{ auth: string }>().auth).appid, 'sp-client');
      const connects = proxy.connects.map((c) => c.target);
      assert.ok(connects.includes(`${AUTHORITY}:${entra.url.port}`), `the proxy saw ${JSON.stringify(connects)}`);
      // The route's upstream is on loopback: never through the proxy.
      assert.ok(!connects.some((t) => t.startsWith('127.0.0.1')), JSON.stringify(connects));
      const readyz = (await request(`${gw.url}/readyz`)).text;
      const metrics = (await request(`${gw.url}/metrics`)).text;
      for (const text of [gw.stdout(), gw.stderr(), readyz, metrics]) assert.ok(!text.includes(PROXY_PASSWORD));
    } finally {
      await gw.stop();
      await Promise.all([proxy.close(), upstream.close(), entra.close()]);
    }
  });

  it('never sends a managed-identity endpoint on loopback through the proxy', async () => {
    const msi = await startFakeMsi();
    const proxy = await startConnectProxy({ user: 'corp', password: PROXY_PASSWORD });
    const upstream = await startFakeUpstream((req, res) => {
      req.resume();
      res.end(JSON.stringify({ auth: req.headers.authorization }));
    });
    const { config, home } = setup(`routes:\n  m: { host: ${upstream.url.origin}, caFile: ${testPki().caFile}, credential: azure-msi }\n`);
    const gw = await spawnGateway(['--config', config], {
      HOME: home,
      IDENTITY_ENDPOINT: msi.endpoint,
      IDENTITY_HEADER: msi.identityHeader,
      // Azure core's own handling would send IMDS and IDENTITY_ENDPOINT calls here.
      HTTPS_PROXY: `http://corp:${PROXY_PASSWORD}@127.0.0.1:${proxy.port}`,
      HTTP_PROXY: `http://corp:${PROXY_PASSWORD}@127.0.0.1:${proxy.port}`,
    });
    try {
      const res = await request(`${gw.url}/ws/m/api/2.0/clusters/list`);
      assert.equal(res.status, 200, res.text);
      assert.ok(msi.requests.length >= 1);
      assert.equal(proxy.connects.length + proxy.plainRequests.length, 0, 'the proxy was used');
    } finally {
      await gw.stop();
      await Promise.all([proxy.close(), upstream.close(), msi.close()]);
    }
  });
});
