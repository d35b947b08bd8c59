import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  caFile: string;
  ca: string;
  key: string;
  cert: string;
}

let cached: TestPki | undefined;

/**
 * The PKI that scripts/run-tests.mjs made for this run without openssl (make-pki.ts), if any:
 * DBX_GATEWAY_TEST_PKI/<part>. Without it (a test file run directly), openssl makes one.
 */
export function preparedPki(part: string): string | undefined {
  const root = process.env.DBX_GATEWAY_TEST_PKI;
  const dir = root ? join(root, part) : undefined;
  return dir && existsSync(dir) ? dir : undefined;
}

/** A throwaway CA and a server certificate for 127.0.0.1 and localhost. */
export function testPki(): TestPki {
  cached ??= serverPki('default', 'dbx-gateway test CA', ['IP:127.0.0.1', 'DNS:localhost']);
  return cached;
}

/**
 * A CA and a server certificate for `san` (openssl subjectAltName entries): the one make-pki.ts
 * prepared for this run as DBX_GATEWAY_TEST_PKI/<part>, else made here with openssl.
 */
export function serverPki(part: string, caName: string, san: string[]): TestPki {
  let dir = preparedPki(part);
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'dbxgw-pki-'));
    const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    const newEcKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    run(
      'req',
      '-x509',
      ...newEcKey,
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      `/CN=${caName}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
    );
    run('req', ...newEcKey, '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${san[0]?.replace(/^\w+:/, '')}`);
    writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=${san.join(',')}\nextendedKeyUsage=serverAuth\n`);
    run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf');
  }
  return {
    caFile: join(dir, 'ca.pem'),
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    key: readFileSync(join(dir, 'server.key'), 'utf8'),
    cert: readFileSync(join(dir, 'server.pem'), 'utf8'),
  };
}

let clientCert: { pemFile: string; certPem: string } | undefined;

/**
 * An RSA key and self-signed certificate in one PEM file, the form @azure/identity's
 * ClientCertificateCredential reads (the service principal's certificate credential).
 */
export function testClientCertificate(): { pemFile: string; certPem: string } {
  if (clientCert) return clientCert;
  const prepared = preparedPki('client');
  if (prepared) {
    clientCert = { pemFile: join(prepared, 'sp.pem'), certPem: readFileSync(join(prepared, 'sp.crt'), 'utf8') };
    return clientCert;
  }
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-sp-cert-'));
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'sp.key', '-out', 'sp.crt', '-days', '2', '-subj', '/CN=dbx-gateway test service principal'],
    { cwd: dir, stdio: 'pipe' },
  );
  const certPem = readFileSync(join(dir, 'sp.crt'), 'utf8');
  const pemFile = join(dir, 'sp.pem');
  writeFileSync(pemFile, readFileSync(join(dir, 'sp.key'), 'utf8') + certPem);
  clientCert = { pemFile, certPem };
  return clientCert;
}
