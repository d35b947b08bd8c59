import { readFileSync } from 'node:fs';

/**
 * `tls ca [--pem]`: the local CA certificate's path (created on first use), or the PEM itself,
 * for NODE_EXTRA_CA_CERTS, a driver's custom CA option or a Java truststore.
 */
export async function tlsCommand(args: string[], pem: boolean): Promise<number> {
  if (args[0] !== 'ca') {
    process.stderr.write('dbx-gateway: usage: dbx-gateway tls ca [--pem]\n');
    return 2;
  }
  const [{ localTlsDir }, { ensureLocalCa }] = await Promise.all([import('../config/paths.js'), import('../local/local-tls.js')]);
  const dir = localTlsDir(process.env);
  if (!dir) {
    process.stderr.write('dbx-gateway: no home directory for the local CA (set HOME, or APPDATA on Windows)\n');
    return 1;
  }
  const file = await ensureLocalCa(dir);
  process.stdout.write(pem ? readFileSync(file, 'utf8') : `${file}\n`);
  return 0;
}
