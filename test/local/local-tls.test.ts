import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DBSQLClient } from '@databricks/sql';
import { LEAF_RENEW_BEFORE_MS, localCertificate } from '../../src/local/local-tls.js';
import { BIN, childEnv, NO_TOOLS_PATH } from '../helpers/cli.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { freePort } from '../helpers/ports.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

const PAT = 'dapi7171717171717171717171717171717171';

/** A GET over TLS trusting `ca` only; resolves with status and body, or rejects on a TLS failure. */
function tlsGet(url: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; cert: X509Certificate }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false, headers }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      const peer = (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cert: peer! }));
    });
    req.on('error', reject);
  });
}

describe("local TLS: listen.tls auto (--tls) with the gateway's own CA", () => {
  const home = mkdtempSync(join(tmpdir(), 'dbxgw-tls-home-'));
  const env = { HOME: home, XDG_CONFIG_HOME: join(home, '.config') };
  let upstream: FakeUpstream;
  let gw: SpawnedGateway;
  let routePort: number;
  let config: string;

  before(async () => {
    upstream = await startFakeUpstream();
    routePort = await freePort();
    config = join(home, 'gw.yaml');
    writeFileSync(
      config,
      `allowedHosts: [dbx-gateway.test]\nroutes:\n  prod: { host: ${upstream.url.origin}, caFile: ${testPki().caFile}, credential: { type: pat, token: ${PAT} }, port: ${routePort} }\n`,
    );
    gw = await spawnGateway(['--config', config, '--tls', '--no-profiles'], env, home);
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  const caPath = () => join(home, '.config', 'dbx-gateway', 'tls', 'ca.pem');

  it('serves https on the main port, with a CA made on first use whose key only the user can read', async () => {
    assert.match(gw.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = readFileSync(caPath(), 'utf8');
    if (process.platform !== 'win32') assert.equal(statSync(join(home, '.config', 'dbx-gateway', 'tls', 'ca.key')).mode & 0o777, 0o600);
    const res = await tlsGet(`${gw.url}/ws/prod/api/2.0/clusters/list`, ca);
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).authorization, `Bearer ${PAT}`);
    const san = res.cert.subjectAltName ?? '';
    for (const name of ['DNS:localhost', 'IP Address:127.0.0.1', 'DNS:dbx-gateway.test']) assert.ok(san.includes(name), `${name} in ${san}`);
    assert.ok(san.includes('IP Address:0:0:0:0:0:0:0:1') || san.includes('IP Address:::1'), san);
  });

  it('serves https on the per-route port too, and never plain HTTP on a TLS port', async () => {
    const ca = readFileSync(caPath(), 'utf8');
    const res = await tlsGet(`https://localhost:${routePort}/api/2.0/clusters/list`, ca);
    assert.equal(res.status, 200);
    const plain = await new Promise<string>((resolve) => {
      const s = net.connect(routePort, '127.0.0.1', () => s.write('GET /api/2.0/clusters/list HTTP/1.1\r\nHost: localhost\r\n\r\n'));
      let out = '';
      s.on('data', (d) => {
        out += d;
      });
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
      setTimeout(() => s.destroy(), 2000);
    });
    assert.doesNotMatch(plain, /^HTTP\/1\.1 200/);
  });

  it('is refused by a client that does not trust the CA', async () => {
    await assert.rejects(tlsGet(`${gw.url}/healthz`, testPki().ca), /self.signed|unable to verify|certificate/i);
  });

  it('dbx-gateway tls ca prints the CA path, and --pem the certificate that issued the served leaf', async () => {
    const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: childEnv(env) });
    const path = run(['tls', 'ca']);
    assert.equal(path.status, 0, path.stderr);
    assert.equal(path.stdout.trim(), caPath());
    const pem = run(['tls', 'ca', '--pem']);
    assert.match(pem.stdout, /^-----BEGIN CERTIFICATE-----/);
    const served = (await tlsGet(`${gw.url}/healthz`, pem.stdout)).cert;
    assert.ok(served.checkIssued(new X509Certificate(pem.stdout)));
  });

  it('lets the Databricks SQL driver (which only speaks https) reach the warehouse through a per-route port', async () => {
    const before = upstream.seen.length;
    const client = new DBSQLClient();
    // The fake upstream does not speak Thrift: the driver never gets an answer it understands, and
    // only its first request matters. It is stopped once that request has reached the upstream.
    void client
      .connect({
        host: 'localhost',
        port: routePort,
        path: '/sql/1.0/warehouses/abc123',
        token: 'placeholder-the-gateway-replaces',
        customCaCert: readFileSync(caPath()),
        retryMaxAttempts: 1,
      } as Parameters<DBSQLClient['connect']>[0])
      .then((c) => c.openSession())
      .catch(() => {});
    const thrift = await upstream.requested((s) => s.url.startsWith('/sql/1.0/warehouses/abc123'), { since: before });
    await client.close().catch(() => {});
    assert.equal(thrift.method, 'POST');
    assert.equal(thrift.headers.authorization, `Bearer ${PAT}`);
  });
});

describe('local TLS: the leaf certificate', () => {
  it('is reused while valid and renewed when less than 30 days are left or the names change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-leaf-'));
    const first = await localCertificate(dir, []);
    assert.equal((await localCertificate(dir, [])).cert, first.cert, 'reused');
    const dueAt = first.notAfterMs - LEAF_RENEW_BEFORE_MS + 1000;
    const renewed = await localCertificate(dir, [], dueAt);
    assert.notEqual(renewed.cert, first.cert, 'renewed before expiry');
    assert.ok(renewed.notAfterMs > first.notAfterMs);
    const named = await localCertificate(dir, ['team-gateway']);
    assert.notEqual(named.cert, renewed.cert);
    assert.ok(new X509Certificate(named.cert).subjectAltName?.includes('DNS:team-gateway'));
    // The same CA throughout.
    const ca = new X509Certificate(readFileSync(first.caFile));
    for (const c of [first, renewed, named]) assert.ok(new X509Certificate(c.cert).checkIssued(ca));
  });
});

describe("local TLS: listen.tls with an operator's certFile and keyFile", () => {
  it('serves that certificate', async () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-tls-files-'));
    const pki = testPki();
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-tls-pem-'));
    writeFileSync(join(dir, 'cert.pem'), pki.cert);
    writeFileSync(join(dir, 'key.pem'), pki.key);
    const config = join(home, 'gw.yaml');
    writeFileSync(config, `listen: { tls: { certFile: ${join(dir, 'cert.pem')}, keyFile: ${join(dir, 'key.pem')} } }\n`);
    const gw = await spawnGateway(['--config', config, '--no-profiles', '--demo'], { HOME: home }, home);
    try {
      const res = await tlsGet(`${gw.url}/ws/demo/api/2.0/clusters/list`, pki.ca);
      assert.equal(res.status, 200);
      assert.equal(res.cert.fingerprint256, new X509Certificate(pki.cert).fingerprint256);
    } finally {
      await gw.stop();
    }
  });

  it('is a config error when a file is missing', () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-tls-missing-'));
    const config = join(home, 'gw.yaml');
    writeFileSync(config, 'listen: { tls: { certFile: /nonexistent/cert.pem, keyFile: /nonexistent/key.pem } }\n');
    const res = spawnSync(process.execPath, [BIN, '--config', config, '--no-profiles'], {
      encoding: 'utf8',
      env: { PATH: NO_TOOLS_PATH, HOME: home },
    });
    assert.equal(res.status, 2);
    assert.match(res.stderr, /listen\.tls\.certFile: \/nonexistent\/cert\.pem does not exist/);
  });
});
