import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeFileAtomic } from '../config/paths.js';

/**
 * The gateway's own local CA, for clients that insist on https (SQL drivers, JDBC, Spark Connect
 * with a token): created on first use in `<config dir>/tls`, its key readable by the user only,
 * and a leaf for localhost, 127.0.0.1, ::1 and every allowedHosts name, renewed before it expires.
 *
 * The CA can vouch for this machine only: its certificate carries critical X.509 name constraints
 * (RFC 5280 4.2.1.10) permitting localhost, 127.0.0.1/32, ::1/128 and the allowedHosts names it was
 * made for, so that its key, if it leaked, could not mint a certificate for another host that a
 * client trusting the CA (NODE_EXTRA_CA_CERTS, a truststore) would accept. A dNSName constraint
 * also permits the name's subdomains (RFC 5280: "constructed by adding zero or more labels").
 *
 * The files are made and checked under a lock file, so that concurrent first uses (several
 * gateways, `tls ca` while one starts) never leave a key that does not match its certificate.
 *
 * Certificates are made with @peculiar/x509 over Node's WebCrypto: Node's crypto makes keys and
 * reads certificates (X509Certificate) but cannot issue one. It is a small, maintained X.509
 * library with no native code (pkijs/asn1js-based), where node-forge would bring its own RSA and
 * a much larger surface. It has no NameConstraints helper: that extension is built from
 * @peculiar/asn1-x509's schema classes (the ones @peculiar/x509 itself is made of).
 */

/** The CA lives ten years: renewing it means every client re-imports it. */
const CA_LIFETIME_DAYS = 3650;
/**
 * Leaves live 90 days (clients such as Chrome refuse longer ones from some CAs) and are renewed
 * when less than 30 days are left, at start and by the running gateway's daily check.
 */
const LEAF_LIFETIME_DAYS = 90;
export const LEAF_RENEW_BEFORE_MS = 30 * 86_400_000;

/** The names every leaf and the CA's constraints carry. */
const LOCAL_NAMES = ['localhost', '127.0.0.1', '::1'] as const;
const NAME_CONSTRAINTS_OID = '2.5.29.30';

/**
 * How long a process waits for another one that is making the files: making them takes well
 * under a second, so this is only reached when the lock's holder hangs.
 */
const LOCK_WAIT_MS = 30_000;
/** A lock older than this is a crashed holder's, whatever its process id says (ids are reused). */
const LOCK_STALE_MS = 60_000;
const LOCK_POLL_MS = 20;

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

export interface LocalTlsOptions {
  /** "Now" in ms since the epoch (tests move it to a leaf's renewal time). */
  now?: number;
  /** Where a replaced CA or a broken pair is reported; default stderr. */
  warn?: (message: string) => void;
  /** Where a CA made for the first time is reported, with its path (the gateway's log); default nowhere. */
  info?: (message: string) => void;
}

interface Libraries {
  x509: typeof import('@peculiar/x509');
  asn1: typeof import('@peculiar/asn1-x509');
  schema: typeof import('@peculiar/asn1-schema');
}
let libraries: Libraries | undefined;

/** @peculiar/x509 only when TLS is on: `serve` without it never loads the library. */
async function loadLibraries(): Promise<Libraries> {
  if (!libraries) {
    // @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the
    // Reflect metadata API (the reflect-metadata polyfill, loaded only here).
    await import('reflect-metadata');
    const [x509, asn1, schema] = await Promise.all([import('@peculiar/x509'), import('@peculiar/asn1-x509'), import('@peculiar/asn1-schema')]);
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<Libraries['x509']['cryptoProvider']['set']>[0]);
    libraries = { x509, asn1, schema };
  }
  return libraries;
}

/** The CA certificate's file in a local TLS directory (clients trust it; the run file names it). */
export function caFileIn(dir: string): string {
  return join(dir, 'ca.pem');
}

/**
 * The CA certificate's path, creating the CA when it does not exist yet (`dbx-gateway tls ca`).
 * A CA whose constraints cover localhost is kept whatever allowedHosts names it also covers.
 */
export async function ensureLocalCa(dir: string, options: LocalTlsOptions = {}): Promise<string> {
  await withLock(dir, () => loadCa(dir, localNames([]), warnOf(options)));
  return caFileIn(dir);
}

/**
 * The leaf for `names` (localhost, 127.0.0.1 and ::1 are always in), reusing the stored one while
 * it is intact, covers the names and has more than LEAF_RENEW_BEFORE_MS left; else a new one, stored.
 */
export async function localCertificate(dir: string, extraNames: readonly string[], options: LocalTlsOptions = {}): Promise<LocalCertificate> {
  const names = localNames(extraNames);
  const now = options.now ?? Date.now();
  const warn = warnOf(options);
  return withLock(dir, async () => {
    const ca = await loadCa(dir, names, warn, options.info);
    const stored = readLeaf(dir, ca, names, now, warn);
    return stored ?? (await createLeaf(dir, ca, names, now));
  });
}

function localNames(extraNames: readonly string[]): string[] {
  return [...new Set([...LOCAL_NAMES, ...extraNames.map((n) => (isIP(n) ? normaliseIp(n) : n.toLowerCase()))])];
}

function warnOf(options: LocalTlsOptions): (message: string) => void {
  return options.warn ?? ((message) => process.stderr.write(`dbx-gateway: ${message}\n`));
}

function leafFiles(dir: string): { certFile: string; keyFile: string } {
  return { certFile: join(dir, 'localhost.pem'), keyFile: join(dir, 'localhost.key') };
}

/** The stored leaf when it can be served as is; undefined (with a warning when it is broken) when not. */
function readLeaf(dir: string, ca: Ca, names: readonly string[], now: number, warn: (message: string) => void): LocalCertificate | undefined {
  const { certFile, keyFile } = leafFiles(dir);
  if (!existsSync(certFile) || !existsSync(keyFile)) return undefined;
  const cert = readFileSync(certFile, 'utf8');
  const key = readFileSync(keyFile, 'utf8');
  const broken = pairProblem(cert, key);
  if (broken) {
    warn(`local TLS: ${certFile} and ${keyFile} ${broken}; issuing a new leaf certificate`);
    return undefined;
  }
  const leaf = new X509Certificate(cert);
  const caCert = new X509Certificate(ca.certPem);
  // A leaf of a CA made since (the CA was replaced) is re-issued quietly: the CA's replacement
  // was the news. One of this CA that does not verify against it is a broken file.
  if (!leaf.checkIssued(caCert)) return undefined;
  if (!leaf.verify(caCert.publicKey)) {
    if (!ca.created) warn(`local TLS: ${certFile} is not signed by the local CA's key (${caFileIn(dir)}); issuing a new leaf certificate`);
    return undefined;
  }
  const notAfterMs = Date.parse(leaf.validTo);
  if (notAfterMs - now <= LEAF_RENEW_BEFORE_MS || !covers(leaf, names)) return undefined;
  return { cert, key, caFile: caFileIn(dir), notAfterMs };
}

async function createLeaf(dir: string, ca: Ca, names: readonly string[], now: number): Promise<LocalCertificate> {
  const { x509: lib } = await loadLibraries();
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const notBefore = new Date(now - 3_600_000);
  const notAfter = new Date(now + LEAF_LIFETIME_DAYS * 86_400_000);
  const leaf = await lib.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
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
  const { certFile, keyFile } = leafFiles(dir);
  writePrivate(keyFile, key);
  writeFileAtomic(certFile, cert, 0o644);
  return { cert, key, caFile: caFileIn(dir), notAfterMs: notAfter.getTime() };
}

interface Ca {
  cert: import('@peculiar/x509').X509Certificate;
  certPem: string;
  keys: { privateKey: webcrypto.CryptoKey; publicKey: webcrypto.CryptoKey };
  /** Made by this call: its old leaf is re-issued without a warning of its own. */
  created: boolean;
}

/**
 * The stored CA when it is intact and its name constraints cover `names`; else a new one (with a
 * warning saying why: clients that trusted the old one must trust the new ca.pem).
 */
async function loadCa(dir: string, names: readonly string[], warn: (message: string) => void, info?: (message: string) => void): Promise<Ca> {
  const libs = await loadLibraries();
  const lib = libs.x509;
  const certFile = caFileIn(dir);
  const keyFile = join(dir, 'ca.key');
  let permitted: readonly string[] = names;
  if (existsSync(certFile) || existsSync(keyFile)) {
    const certPem = existsSync(certFile) ? readFileSync(certFile, 'utf8') : '';
    const keyPem = existsSync(keyFile) ? readFileSync(keyFile, 'utf8') : '';
    const broken = pairProblem(certPem, keyPem, true);
    const constraints = broken ? undefined : permittedNames(new lib.X509Certificate(certPem), libs);
    const missing = constraints ? names.filter((n) => !constraints.includes(constraintOf(n))) : [];
    if (constraints && missing.length === 0) {
      const cert = new lib.X509Certificate(certPem);
      const privateKey = await webcrypto.subtle.importKey('pkcs8', derOf(keyPem), ALGORITHM, true, ['sign']);
      return { cert, certPem, keys: { privateKey, publicKey: await cert.publicKey.export(ALGORITHM, ['verify']) }, created: false };
    }
    const why = broken
      ? `${certFile} and ${keyFile} ${broken}`
      : !constraints
        ? `${certFile} was made by an older dbx-gateway without name constraints (a CA that could vouch for any host)`
        : `allowedHosts now names ${missing.join(', ')}, which the name constraints of ${certFile} do not permit`;
    warn(`local TLS: ${why}; made a new local CA: clients that trusted the old one must trust ${certFile} again`);
    // Names the old CA was made for stay permitted, so that two configurations sharing this
    // directory do not replace each other's CA in turn.
    if (constraints) permitted = [...new Set([...constraints.map(nameOfConstraint), ...names])];
  } else {
    // A new trust anchor on this machine is news: where it is, and how clients come to trust it.
    info?.(
      `local TLS: made a local CA at ${certFile} (key readable by you only); clients trust it with NODE_EXTRA_CA_CERTS="$(dbx-gateway tls ca)" or your OS trust store`,
    );
  }
  return createCa(dir, permitted);
}

async function createCa(dir: string, names: readonly string[]): Promise<Ca> {
  const libs = await loadLibraries();
  const lib = libs.x509;
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await lib.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=dbx-gateway local CA (${process.env.USER ?? process.env.USERNAME ?? 'this user'})`,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + CA_LIFETIME_DAYS * 86_400_000),
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new lib.BasicConstraintsExtension(true, 0, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign | lib.KeyUsageFlags.cRLSign, true),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey),
      nameConstraintsExtension(names, libs),
    ],
  });
  // The key first, readable by the user only: a CA key others can read would let them mint
  // certificates every client that trusts this CA accepts.
  const certFile = caFileIn(dir);
  writePrivate(join(dir, 'ca.key'), pemOf('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)));
  const certPem = cert.toString('pem');
  writeFileAtomic(certFile, certPem, 0o644);
  return { cert, certPem, keys, created: true };
}

/**
 * Critical name constraints permitting exactly `names` (dNSName; iPAddress as a /32 or /128
 * network). RFC 5280 4.2.1.10: "Conforming CAs MUST mark this extension as critical", and a
 * client that cannot process it must then refuse the chain rather than ignore the limit.
 */
function nameConstraintsExtension(names: readonly string[], { x509, asn1, schema }: Libraries): import('@peculiar/x509').Extension {
  const subtrees = names.map((n) => {
    const c = constraintOf(n);
    return new asn1.GeneralSubtree({ base: new asn1.GeneralName(isIP(n) ? { iPAddress: c } : { dNSName: c }) });
  });
  const value = schema.AsnConvert.serialize(new asn1.NameConstraints({ permittedSubtrees: new asn1.GeneralSubtrees(subtrees) }));
  return new x509.Extension(NAME_CONSTRAINTS_OID, true, value);
}

/** A name as its permitted subtree: a DNS name as is, an address as a single-host network. */
function constraintOf(name: string): string {
  const v = isIP(name);
  return v === 4 ? `${name}/32` : v === 6 ? `${normaliseIp(name)}/128` : name;
}

function nameOfConstraint(constraint: string): string {
  return constraint.replace(/\/(32|128)$/, '');
}

/**
 * The permitted subtrees of a CA certificate, as constraintOf writes them; undefined when it has
 * no critical name constraints, or ones this code did not write (excluded subtrees, other types).
 */
function permittedNames(cert: import('@peculiar/x509').X509Certificate, { asn1, schema }: Libraries): string[] | undefined {
  const ext = cert.getExtension(NAME_CONSTRAINTS_OID);
  if (!ext?.critical) return undefined;
  try {
    const nc = schema.AsnConvert.parse(ext.value, asn1.NameConstraints);
    if (nc.excludedSubtrees || !nc.permittedSubtrees) return undefined;
    return nc.permittedSubtrees.map(({ base }) => {
      if (base.dNSName !== undefined) return base.dNSName.toLowerCase();
      const m = base.iPAddress === undefined ? null : /^(.*)\/(32|128)$/.exec(base.iPAddress);
      if (!m) throw new Error('not a constraint of this CA');
      return `${normaliseIp(m[1]!)}/${m[2]}`;
    });
  } catch {
    return undefined;
  }
}

/**
 * Why a certificate and key read from disk cannot be served together (unreadable, a key that
 * does not match, for a CA a self-signature that does not verify), or undefined when they can.
 */
function pairProblem(certPem: string, keyPem: string, selfSigned = false): string | undefined {
  let cert: X509Certificate;
  let publicOfKey: Buffer;
  try {
    cert = new X509Certificate(certPem);
    publicOfKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  } catch {
    return 'cannot be read (a missing or damaged file)';
  }
  if (!cert.publicKey.export({ type: 'spki', format: 'der' }).equals(publicOfKey)) return 'do not match (the key is not the certificate’s)';
  if (selfSigned && !cert.verify(cert.publicKey)) return 'do not match (the certificate’s signature does not verify)';
  return undefined;
}

/**
 * Runs `make` holding `<dir>/lock`, created exclusively ('wx': O_CREAT|O_EXCL, CREATE_NEW on
 * Windows), so that one process at a time reads, checks and writes the files. A lock whose holder
 * is gone (its process no longer exists, or the lock is older than LOCK_STALE_MS) is removed.
 */
async function withLock<T>(dir: string, make: () => Promise<T>): Promise<T> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lock = join(dir, 'lock');
  const mine = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      writeFileSync(lock, mine, { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const held = readLock(lock);
    if (held && isStale(held)) {
      // Removed only while it still holds what was judged stale, never a lock taken since.
      if (readLock(lock)?.text === held.text) rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `local TLS: ${lock} is held by process ${held?.pid ?? 'unknown'} for more than ${LOCK_WAIT_MS / 1000} s; if no dbx-gateway is making its certificates, delete that file`,
      );
    }
    await sleep(LOCK_POLL_MS + Math.floor(Math.random() * LOCK_POLL_MS));
  }
  try {
    return await make();
  } finally {
    if (readLock(lock)?.text === mine) rmSync(lock, { force: true });
  }
}

function readLock(lock: string): { text: string; pid: number; ageMs: number } | undefined {
  try {
    const text = readFileSync(lock, 'utf8');
    return { text, pid: Number.parseInt(text, 10), ageMs: Date.now() - statSync(lock).mtimeMs };
  } catch {
    return undefined;
  }
}

function isStale(held: { text: string; pid: number; ageMs: number }): boolean {
  if (held.ageMs > LOCK_STALE_MS) return true;
  // An empty lock is one being written this instant: only its age can make it stale.
  if (!Number.isInteger(held.pid) || held.pid <= 0) return false;
  try {
    // Signal 0 checks that the process exists (on Windows too); EPERM means it exists.
    process.kill(held.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function serialNumber(): string {
  // Positive and 16 bytes (RFC 5280 4.1.2.2: at most 20 octets, non-negative).
  return randomBytes(16)
    .toString('hex')
    .replace(/^[89a-f]/, '1');
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

/** An IPv6 address in its canonical short form (RFC 5952, as the WHATWG URL parser writes it). */
function normaliseIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
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
