import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './ports.js';
import { testPki } from './tls.js';

// A real PostgreSQL server (Debian's `postgresql`) in a temporary directory, with TLS from the test
// CA on 127.0.0.1 and roles that log in with a password, as Lakebase's do. The server refuses to
// run as root, so as root it runs as the `postgres` user (runuser).

/** The directory of postgres, initdb, psql and pgbench, or undefined when the package is missing. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : undefined;
}

export const POSTGRES_SKIP = postgresBinDir() ? false : 'needs postgresql (Debian package postgresql: apt-get install postgresql)';

export interface TestPostgres {
  host: string;
  port: number;
  bin: string;
  /** The directory of the server's unix socket (the superuser logs in there, trusted). */
  socketDir: string;
  /** SQL as the superuser over the unix socket. */
  query(sql: string): Promise<pg.QueryResult>;
  stop(): Promise<void>;
}

const asRoot = process.getuid?.() === 0;

/** As root, the server's processes run as the `postgres` user (the same as runuser -u postgres, without a process between). */
function serverUser(): { uid?: number; gid?: number } {
  if (!asRoot) return {};
  return { uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()) };
}

/**
 * Starts a server: `password` roles (plaintext over TLS, what Lakebase asks), plus whatever hba
 * lines the test adds (scram-sha-256, md5).
 */
export async function startPostgres(hba: string[] = []): Promise<TestPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('postgresql is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-pg-'));
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  const pki = testPki();
  writeFileSync(join(dir, 'server.key'), pki.key, { mode: 0o600 });
  writeFileSync(join(dir, 'server.pem'), pki.cert);
  const user = serverUser();
  if (user.uid !== undefined && user.gid !== undefined) {
    for (const f of [dir, join(dir, 'server.key'), join(dir, 'server.pem')]) chownSync(f, user.uid, user.gid);
  }
  // Its own environment: no HOME or PG* variables of the developer's.
  const env = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' };
  execFileSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], { stdio: 'pipe', env, cwd: dir, ...user });
  const port = await freePort();
  writeFileSync(
    join(data, 'pg_hba.conf'),
    [
      'local all postgres trust',
      ...hba,
      // Lakebase asks for the credential as a plaintext password, over TLS only.
      'hostssl all all 127.0.0.1/32 password',
      'host all all 127.0.0.1/32 reject',
    ].join('\n'),
  );
  const args = [
    '-D',
    data,
    '-c',
    `port=${port}`,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    `unix_socket_directories=${dir}`,
    '-c',
    'ssl=on',
    '-c',
    `ssl_cert_file=${join(dir, 'server.pem')}`,
    '-c',
    `ssl_key_file=${join(dir, 'server.key')}`,
    '-c',
    'fsync=off',
    '-c',
    'max_connections=60',
  ];
  const child: ChildProcess = spawn(join(bin, 'postgres'), args, { stdio: ['ignore', 'ignore', 'pipe'], env, cwd: dir, ...user });
  let log = '';
  child.stderr?.on('data', (c: Buffer) => {
    log += c.toString();
  });
  const admin = () => new pg.Client({ host: dir, port, user: 'postgres', database: 'postgres' });
  for (let attempt = 0; ; attempt++) {
    const probe = admin();
    try {
      await probe.connect();
      await probe.end();
      break;
    } catch {
      if (child.exitCode !== null || attempt > 200) throw new Error(`postgres did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const client = admin();
  await client.connect();
  return {
    host: '127.0.0.1',
    port,
    bin,
    socketDir: dir,
    query: (sql) => client.query(sql),
    async stop() {
      await client.end().catch(() => {});
      child.kill('SIGINT');
      await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A role name quoted as an SQL identifier, and a literal. */
export const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
export const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
