import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
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
    const renewed = await localCertificate(dir, [], { now: dueAt });
    assert.notEqual(renewed.cert, first.cert, 'renewed before expiry');
    assert.ok(renewed.notAfterMs > first.notAfterMs);
    // The same CA while the names stay within its name constraints.
    const ca = new X509Certificate(readFileSync(first.caFile));
    for (const c of [first, renewed]) assert.ok(new X509Certificate(c.cert).checkIssued(ca));
    const named = await localCertificate(dir, ['team-gateway'], { warn: () => {} });
    assert.notEqual(named.cert, renewed.cert);
    assert.ok(new X509Certificate(named.cert).subjectAltName?.includes('DNS:team-gateway'));
    assert.ok(new X509Certificate(named.cert).checkIssued(new X509Certificate(readFileSync(first.caFile))));
  });
});

/** Whether `keyPem` is the private key of `certPem`. */
function keyMatches(certPem: string, keyPem: string): boolean {
  const ofKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  return new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }).equals(ofKey);
}

/** The first certificate of a PEM bundle (the leaf of localhost.pem, which also holds its CA). */
function firstPem(bundle: string): string {
  return bundle.slice(0, bundle.indexOf('-----END CERTIFICATE-----') + '-----END CERTIFICATE-----'.length);
}

async function peculiar(): Promise<typeof import('@peculiar/x509')> {
  await import('reflect-metadata');
  const lib = await import('@peculiar/x509');
  lib.cryptoProvider.set(webcrypto as unknown as Parameters<typeof lib.cryptoProvider.set>[0]);
  return lib;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const EC_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

/**
 * A server leaf for `san` (none: only a subject CN) issued in the name of `caPem` and signed with
 * `caKeyPem`: what someone holding a leaked local CA key would mint.
 */
async function mintLeaf(caPem: string, caKeyPem: string, cn: string, san: readonly string[]): Promise<{ cert: string; key: string }> {
  const lib = await peculiar();
  const ca = new lib.X509Certificate(caPem);
  const caKey = await webcrypto.subtle.importKey('pkcs8', createPrivateKey(caKeyPem).export({ type: 'pkcs8', format: 'der' }), EC, false, ['sign']);
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const leaf = await lib.X509CertificateGenerator.create({
    serialNumber: '01',
    subject: `CN=${cn}`,
    issuer: ca.subject,
    notBefore: new Date(Date.now() - 3_600_000),
    notAfter: new Date(Date.now() + 30 * 86_400_000),
    signingAlgorithm: EC_SIGN,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new lib.BasicConstraintsExtension(false, undefined, true),
      new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth], false),
      ...(san.length > 0 ? [new lib.SubjectAlternativeNameExtension(san.map((value) => ({ type: 'dns' as const, value })))] : []),
      await lib.AuthorityKeyIdentifierExtension.create(ca, false),
    ],
  });
  const key = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' });
  return { cert: leaf.toString('pem'), key: key.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/** Serves `cert` over TLS on 127.0.0.1 and connects as a client trusting `ca` only, naming `servername`. */
async function handshake(cert: { cert: string; key: string }, ca: string, servername: string): Promise<void> {
  const server = tls.createServer({ cert: cert.cert, key: cert.key }, (s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve, reject) => {
      // An address is checked against the IP entries; SNI carries names only (RFC 6066 3).
      const named = net.isIP(servername) ? { host: servername } : { host: '127.0.0.1', servername };
      const socket = tls.connect({ ...named, port, ca }, () => {
        socket.end();
        resolve();
      });
      socket.on('error', reject);
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

const OPENSSL = spawnSync('openssl', ['version']).status === 0;

describe('local TLS: the CA can only vouch for this machine (name constraints)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-ca-nc-'));
  let real: { cert: string; key: string };
  let caPem: string;
  let evil: { cert: string; key: string };
  let evilCnOnly: { cert: string; key: string };

  before(async () => {
    real = await localCertificate(dir, ['dbx-gateway.test']);
    caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
    const caKey = readFileSync(join(dir, 'ca.key'), 'utf8');
    evil = await mintLeaf(caPem, caKey, 'login.microsoftonline.com', ['login.microsoftonline.com']);
    evilCnOnly = await mintLeaf(caPem, caKey, 'login.microsoftonline.com', []);
  });

  it('a leaked CA key cannot mint a leaf for login.microsoftonline.com that Node accepts', async () => {
    // OpenSSL's X509_V_ERR_PERMITTED_VIOLATION; with only a subject CN, OpenSSL checks the CN
    // against the DNS constraints (NAME_CONSTRAINTS_check_CN) as hosts that fall back to it would.
    await assert.rejects(handshake(evil, caPem, 'login.microsoftonline.com'), /permitted subtree violation/);
    await assert.rejects(handshake(evilCnOnly, caPem, 'login.microsoftonline.com'), /permitted subtree violation/);
  });

  it("accepts the gateway's own leaf for localhost, 127.0.0.1 and the allowedHosts names", async () => {
    for (const name of ['localhost', '127.0.0.1', 'dbx-gateway.test']) await handshake(real, caPem, name);
  });

  it('openssl verify refuses the minted leaf and accepts the real one', { skip: OPENSSL ? false : 'openssl is not on PATH: install openssl to run it' }, () => {
    const files = mkdtempSync(join(tmpdir(), 'dbxgw-ca-nc-openssl-'));
    writeFileSync(join(files, 'evil.pem'), evil.cert);
    writeFileSync(join(files, 'real.pem'), firstPem(real.cert));
    const verify = (file: string) => spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), join(files, file)], { encoding: 'utf8' });
    const refused = verify('evil.pem');
    assert.notEqual(refused.status, 0);
    assert.match(refused.stdout + refused.stderr, /permitted subtree violation/);
    const accepted = verify('real.pem');
    assert.equal(accepted.status, 0, accepted.stdout + accepted.stderr);
  });

  it('replaces a CA made by an older version (no name constraints), saying why', async () => {
    const old = mkdtempSync(join(tmpdir(), 'dbxgw-ca-old-'));
    const lib = await peculiar();
    const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
    const unconstrained = await lib.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=dbx-gateway local CA (old)',
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 365 * 86_400_000),
      signingAlgorithm: EC_SIGN,
      keys,
      extensions: [new lib.BasicConstraintsExtension(true, 0, true), new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign, true)],
    });
    const oldPem = unconstrained.toString('pem');
    const oldKey = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' });
    writeFileSync(join(old, 'ca.pem'), oldPem);
    writeFileSync(join(old, 'ca.key'), oldKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const warnings: string[] = [];
    const leaf = await localCertificate(old, [], { warn: (m) => warnings.push(m) });
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /made by an older dbx-gateway without name constraints.*made a new local CA/);
    const fresh = readFileSync(join(old, 'ca.pem'), 'utf8');
    assert.notEqual(fresh, oldPem);
    assert.ok(new lib.X509Certificate(fresh).getExtension('2.5.29.30')?.critical, 'critical name constraints');
    await handshake(leaf, fresh, 'localhost');
    const minted = await mintLeaf(fresh, readFileSync(join(old, 'ca.key'), 'utf8'), 'login.microsoftonline.com', ['login.microsoftonline.com']);
    await assert.rejects(handshake(minted, fresh, 'login.microsoftonline.com'), /subtree violation/);
  });

  it('re-creates the CA and leaf when allowedHosts names a host its constraints do not cover, and keeps it otherwise', async () => {
    const grown = mkdtempSync(join(tmpdir(), 'dbxgw-ca-grown-'));
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);
    await localCertificate(grown, ['dbx-gateway.test'], { warn });
    const before = readFileSync(join(grown, 'ca.pem'), 'utf8');
    await localCertificate(grown, [], { warn });
    assert.equal(readFileSync(join(grown, 'ca.pem'), 'utf8'), before, 'a CA that covers the names is kept');
    assert.deepEqual(warnings, []);
    const leaf = await localCertificate(grown, ['dbx-gateway.test', 'team-gateway'], { warn });
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /allowedHosts now names team-gateway, which the name constraints of .*ca\.pem do not permit; made a new local CA/);
    const after = readFileSync(join(grown, 'ca.pem'), 'utf8');
    assert.notEqual(after, before);
    for (const name of ['team-gateway', 'dbx-gateway.test', 'localhost']) await handshake(leaf, after, name);
  });

  it('an allowedHosts entry with a wildcard is a config error naming the field and the fix', () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-tls-wildcard-'));
    const config = join(home, 'gw.yaml');
    writeFileSync(config, 'allowedHosts: [dbx-gateway, "*.example.com"]\n');
    // `config check`: the same validation as serve, without serving when the check is missing.
    const res = spawnSync(process.execPath, [BIN, 'config', 'check', '--config', config, '--no-profiles'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: home },
    });
    assert.equal(res.status, 2, res.stderr);
    assert.ok(res.stderr.includes(config), res.stderr);
    assert.match(res.stderr, /allowedHosts\[1\]: "\*\.example\.com" has a wildcard; .*exact host names only.*e\.g\. dev\.example\.com/);
  });
});

describe('local TLS: the files are made under a lock and checked on load', () => {
  it('twelve concurrent first uses in separate processes leave one matching CA pair and one leaf', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-ca-race-'));
    const helper = fileURLToPath(new URL('../helpers/local-certificate.ts', import.meta.url));
    const runs = await Promise.all(
      Array.from({ length: 12 }, () => {
        return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, ['--import', 'tsx', helper, dir], { env: { PATH: process.env.PATH ?? '' } });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d) => {
            stdout += d;
          });
          child.stderr.on('data', (d) => {
            stderr += d;
          });
          child.on('close', (status) => resolve({ status, stdout, stderr }));
        });
      }),
    );
    for (const run of runs) assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(
      runs.map((r) => r.stderr),
      runs.map(() => ''),
      'no process found a broken pair',
    );
    const caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
    assert.ok(keyMatches(caPem, readFileSync(join(dir, 'ca.key'), 'utf8')), 'ca.key is the key of ca.pem');
    const leafPem = readFileSync(join(dir, 'localhost.pem'), 'utf8');
    assert.ok(keyMatches(leafPem, readFileSync(join(dir, 'localhost.key'), 'utf8')), 'localhost.key is the key of localhost.pem');
    const ca = new X509Certificate(caPem);
    for (const run of runs) {
      const got = JSON.parse(run.stdout) as { cert: string; key: string };
      assert.equal(got.cert, leafPem, 'every process serves the stored leaf');
      assert.ok(keyMatches(got.cert, got.key));
      const leaf = new X509Certificate(got.cert);
      assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), 'issued by the stored CA');
    }
    assert.equal(existsSync(join(dir, 'lock')), false, 'the lock is released');
  });

  it('regenerates a CA whose key does not match its certificate, with a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-ca-mismatch-'));
    await localCertificate(dir, []);
    const before = readFileSync(join(dir, 'ca.pem'), 'utf8');
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    writeFileSync(join(dir, 'ca.key'), other);
    const warnings: string[] = [];
    const leaf = await localCertificate(dir, [], { warn: (m) => warnings.push(m) });
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /ca\.pem and .*ca\.key do not match .*made a new local CA/);
    const caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
    assert.notEqual(caPem, before);
    assert.ok(keyMatches(caPem, readFileSync(join(dir, 'ca.key'), 'utf8')));
    await handshake(leaf, caPem, 'localhost');
  });

  it('regenerates a damaged leaf, a leaf whose key does not match, and one not signed by the CA key, with a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-leaf-broken-'));
    const first = await localCertificate(dir, []);
    const caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
    const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    // Issued in the CA's name (issuer and authority key id) but signed with another key.
    const forged = await mintLeaf(caPem, otherKey, 'localhost', ['localhost']);
    const breakages: Array<[string, () => void, RegExp]> = [
      ['damaged', () => writeFileSync(join(dir, 'localhost.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n'), /cannot be read/],
      ['key mismatch', () => writeFileSync(join(dir, 'localhost.key'), otherKey), /do not match/],
      [
        'forged',
        () => {
          writeFileSync(join(dir, 'localhost.pem'), forged.cert);
          writeFileSync(join(dir, 'localhost.key'), forged.key);
        },
        /is not signed by the local CA's key/,
      ],
    ];
    for (const [what, breakIt, why] of breakages) {
      breakIt();
      const warnings: string[] = [];
      const leaf = await localCertificate(dir, [], { warn: (m) => warnings.push(m) });
      assert.equal(warnings.length, 1, `${what}: ${warnings.join('\n')}`);
      assert.match(warnings[0]!, why, what);
      assert.match(warnings[0]!, /issuing a new leaf certificate/, what);
      assert.notEqual(leaf.cert, first.cert, what);
      assert.ok(keyMatches(leaf.cert, leaf.key), what);
      assert.equal(readFileSync(join(dir, 'ca.pem'), 'utf8'), caPem, `${what}: the CA is kept`);
      await handshake(leaf, caPem, 'localhost');
    }
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
