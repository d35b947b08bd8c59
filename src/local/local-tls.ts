import { randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/paths.js';

/**
 * The gateway's own local CA, for clients that insist on https (SQL drivers, JDBC, Spark Connect
 * with a token): created on first use in `<config dir>/tls`, its key readable by the user only,
 * and a leaf for localhost, 127.0.0.1, ::1 and every allowedHosts name, renewed before it expires.
 *
 * Certificates are made with @peculiar/x509 over Node's WebCrypto: Node's crypto makes keys and
 * reads certificates (X509Certificate) but cannot issue one. It is a small, maintained X.509
 * library with no native code (pkijs/asn1js-based), where node-forge would bring its own RSA and
 * a much larger surface.
 */

/** The CA lives ten years: renewing it means every client re-imports it. */
const CA_LIFETIME_DAYS = 3650;
/**
 * Leaves live 90 days (clients such as Chrome refuse longer ones from some CAs) and are renewed
 * when less than 30 days are left, at start and by the running gateway's daily check.
 */
const LEAF_LIFETIME_DAYS = 90;
export const LEAF_RENEW_BEFORE_MS = 30 * 86_400_000;

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface LocalCertificate {
  /** PEM of the leaf (and its CA, so clients get the whole chain). */
  cert: string;
  key: string;
  caFile: string;
  /** When the leaf expires (ms since the epoch). */
  notAfterMs: number;
}

type X509 = typeof import('@peculiar/x509');
let x509: X509 | undefined;

/** @peculiar/x509 only when TLS is on: `serve` without it never loads the library. */
async function loadX509(): Promise<X509> {
  if (!x509) {
    // @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the
    // Reflect metadata API (the reflect-metadata polyfill, loaded only here).
    await import('reflect-metadata');
    x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<X509['cryptoProvider']['set']>[0]);
  }
  return x509;
}

/** The CA certificate's file in a local TLS directory (clients trust it; the run file names it). */
export function caFileIn(dir: string): string {
  return join(dir, 'ca.pem');
}

/** The CA certificate's path, creating the CA when it does not exist yet (`dbx-gateway tls ca`). */
export async function ensureLocalCa(dir: string): Promise<string> {
  await loadCa(dir);
  return caFileIn(dir);
}

/**
 * The leaf for `names` (localhost, 127.0.0.1 and ::1 are always in), reusing the stored one while
 * it covers the names and has more than LEAF_RENEW_BEFORE_MS left; else a new one, stored.
 */
export async function localCertificate(dir: string, extraNames: readonly string[], now = Date.now()): Promise<LocalCertificate> {
  const names = [...new Set(['localhost', '127.0.0.1', '::1', ...extraNames.map((n) => n.toLowerCase())])];
  const caFile = caFileIn(dir);
  const leafFile = join(dir, 'localhost.pem');
  const leafKeyFile = join(dir, 'localhost.key');
  const ca = await loadCa(dir);
  if (existsSync(leafFile) && existsSync(leafKeyFile)) {
    const pem = readFileSync(leafFile, 'utf8');
    const leaf = new X509Certificate(pem);
    const notAfterMs = Date.parse(leaf.validTo);
    if (notAfterMs - now > LEAF_RENEW_BEFORE_MS && covers(leaf, names) && leaf.checkIssued(new X509Certificate(ca.certPem))) {
      return { cert: pem, key: readFileSync(leafKeyFile, 'utf8'), caFile, notAfterMs };
    }
  }
  const lib = await loadX509();
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const notBefore = new Date(now - 3_600_000);
  const notAfter = new Date(now + LEAF_LIFETIME_DAYS * 86_400_000);
  const leaf = await lib.X509CertificateGenerator.create({
    serialNumber: randomBytes(16)
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    subject: 'CN=localhost',
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new lib.BasicConstraintsExtension(false, undefined, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.digitalSignature, true),
      new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth], false),
      new lib.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))),
      await lib.AuthorityKeyIdentifierExtension.create(ca.cert, false),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const cert = `${leaf.toString('pem')}\n${ca.certPem}`;
  const key = pemOf('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  writePrivate(leafKeyFile, key);
  writeFileAtomic(leafFile, cert, 0o644);
  return { cert, key, caFile, notAfterMs: notAfter.getTime() };
}

interface Ca {
  cert: import('@peculiar/x509').X509Certificate;
  certPem: string;
  keys: { privateKey: webcrypto.CryptoKey; publicKey: webcrypto.CryptoKey };
}

async function loadCa(dir: string): Promise<Ca> {
  const lib = await loadX509();
  const certFile = caFileIn(dir);
  const keyFile = join(dir, 'ca.key');
  if (existsSync(certFile) && existsSync(keyFile)) {
    const certPem = readFileSync(certFile, 'utf8');
    const cert = new lib.X509Certificate(certPem);
    const privateKey = await webcrypto.subtle.importKey('pkcs8', derOf(readFileSync(keyFile, 'utf8')), ALGORITHM, true, ['sign']);
    return { cert, certPem, keys: { privateKey, publicKey: await cert.publicKey.export(ALGORITHM, ['verify']) } };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await lib.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(16)
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    name: `CN=dbx-gateway local CA (${process.env.USER ?? process.env.USERNAME ?? 'this user'})`,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + CA_LIFETIME_DAYS * 86_400_000),
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new lib.BasicConstraintsExtension(true, 0, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign | lib.KeyUsageFlags.cRLSign, true),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  // The key first, readable by the user only: a CA key others can read would let them mint
  // certificates every client that trusts this CA accepts.
  writePrivate(keyFile, pemOf('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)));
  const certPem = cert.toString('pem');
  writeFileAtomic(certFile, certPem, 0o644);
  return { cert, certPem, keys };
}

function covers(leaf: X509Certificate, names: readonly string[]): boolean {
  const san = leaf.subjectAltName ?? '';
  const entries = san.split(', ');
  return names.every((n) => (isIP(n) ? sanHasIp(entries, n) : entries.includes(`DNS:${n}`)));
}

/** Node prints IPv6 SAN entries expanded (0:0:0:0:0:0:0:1); compare them as addresses. */
function sanHasIp(entries: readonly string[], ip: string): boolean {
  const wanted = normaliseIp(ip);
  return entries.some((entry) => entry.startsWith('IP Address:') && normaliseIp(entry.slice('IP Address:'.length)) === wanted);
}

function normaliseIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const url = new URL(`http://[${ip}]/`);
  return url.hostname;
}

function pemOf(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

function derOf(pem: string): ArrayBuffer {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s+/g, ''), 'base64');
  return der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer;
}

/** A file only its user can read (0600; on Windows, the profile's ACL: see writeFileAtomic). */
function writePrivate(file: string, text: string): void {
  writeFileAtomic(file, text, 0o600);
}
