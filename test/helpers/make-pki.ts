/**
 * Makes the throwaway test PKI without openssl, so `npm test` runs on a machine that has none:
 *   node --import tsx test/helpers/make-pki.ts OUTDIR
 * scripts/run-tests.mjs runs it once per test run and passes OUTDIR as DBX_GATEWAY_TEST_PKI;
 * tls.ts and connect-proxy.ts read it (and fall back to openssl without it). Certificates come
 * from @peculiar/x509 over Node's WebCrypto, the library the gateway's local CA uses, but with
 * separate code: the tests' CA does not depend on the code under test.
 */
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const EC_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const RSA = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as const;
const DAY = 86_400_000;

const serial = () =>
  randomBytes(16)
    .toString('hex')
    .replace(/^[89a-f]/, '1');

async function pkcs8(key: webcrypto.CryptoKey): Promise<string> {
  const b64 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key))
    .toString('base64')
    .replace(/.{64}/g, '$&\n');
  return `-----BEGIN PRIVATE KEY-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END PRIVATE KEY-----\n`;
}

/** A CA and a server certificate for `names` (DNS names and IPs), in dir: ca.pem, server.key, server.pem. */
async function serverPki(dir: string, caName: string, names: string[]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const now = Date.now();
  const caKeys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${caName}`,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 2 * DAY),
    signingAlgorithm: EC_SIGN,
    keys: caKeys,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names[0]}`,
    issuer: ca.subject,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 2 * DAY),
    signingAlgorithm: EC_SIGN,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.SubjectAlternativeNameExtension(
        names.map((n) => (/^[\d.]+$|:/.test(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n })),
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ],
  });
  writeFileSync(join(dir, 'ca.pem'), ca.toString('pem'));
  writeFileSync(join(dir, 'server.key'), await pkcs8(keys.privateKey));
  writeFileSync(join(dir, 'server.pem'), leaf.toString('pem'));
}

/** An RSA key and self-signed certificate (a service principal's certificate credential): sp.crt, sp.pem (key + cert). */
async function clientCertificate(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const now = Date.now();
  const keys = await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=dbx-gateway test service principal',
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 2 * DAY),
    signingAlgorithm: RSA,
    keys,
  });
  const certPem = cert.toString('pem');
  writeFileSync(join(dir, 'sp.crt'), certPem);
  writeFileSync(join(dir, 'sp.pem'), (await pkcs8(keys.privateKey)) + certPem);
}

/** The PKIs the tests use: tls.ts's shared one, connect-proxy.ts's named ones, the client certificate. */
const NAMED_PKI_NAMES = ['adb-test.example', 'login.test.example'];

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: make-pki OUTDIR\n');
  process.exit(2);
}
await serverPki(join(out, 'default'), 'dbx-gateway test CA', ['127.0.0.1', 'localhost']);
for (const name of NAMED_PKI_NAMES) await serverPki(join(out, `named-${name}`), `dbx-gateway test CA for ${name}`, [name]);
await clientCertificate(join(out, 'client'));
