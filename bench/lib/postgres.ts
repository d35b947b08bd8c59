import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_PAT } from '../../test/helpers/gateway.js';
import { LAKEBASE_USER, startFakeWorkspace } from '../../test/helpers/lakebase.js';
import { freePort } from '../../test/helpers/ports.js';
import { ident, postgresBinDir, startPostgres } from '../../test/helpers/postgres.js';
import { testPki } from '../../test/helpers/tls.js';
import { portOpen } from './proc.js';

// The Lakebase door against the reference a user would put in front of a database instead: a real
// PostgreSQL server with TLS and password roles, reached directly (TLS, the current credential),
// through pgbouncer in session mode (TLS to the server) and through the gateway, in one run.

export interface PostgresRow {
  scenario: string;
  direct: string;
  pgbouncer: string;
  gateway: string;
  ratio: string;
  target: string;
  met?: boolean;
}

export interface PostgresBenchOptions {
  quick: boolean;
  /** Starts a gateway process with this YAML (bench/run.ts's startGateway). */
  startGateway(yaml: string): Promise<{ stop(): Promise<void> }>;
}

const DATABASE = 'databricks_postgres';

export async function benchPostgres({ quick, startGateway }: PostgresBenchOptions): Promise<PostgresRow[] | string> {
  const bin = postgresBinDir();
  if (!bin) return 'skipped: needs postgresql (apt-get install postgresql)';
  const pgbouncerBin = '/usr/sbin/pgbouncer';
  const seconds = quick ? 2 : 10;
  const copyMiB = quick ? 16 : 1024;
  const server = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-bench-pg-'));
  const stops: Array<() => Promise<void>> = [];
  try {
    await server.query(`CREATE ROLE ${ident(LAKEBASE_USER)} LOGIN`);
    await server.query(`CREATE DATABASE ${DATABASE} OWNER ${ident(LAKEBASE_USER)}`);
    // pgbench's tables, made as their owner over the superuser's socket.
    await run(join(bin, 'pgbench'), ['-i', '-s', '1', '-q', '-h', server.socketDir, '-p', String(server.port), '-U', 'postgres', DATABASE]);
    await run(join(bin, 'psql'), [
      '-X',
      '-q',
      '-h',
      server.socketDir,
      '-p',
      String(server.port),
      '-U',
      'postgres',
      '-d',
      DATABASE,
      '-c',
      `GRANT ALL ON ALL TABLES IN SCHEMA public TO ${ident(LAKEBASE_USER)}`,
    ]);
    const workspace = await startFakeWorkspace(server);
    stops.push(() => workspace.upstream.close());
    const gwPort = await freePort();
    const gateway = await startGateway(
      `routes:\n  lake:\n    host: ${workspace.upstream.url.origin}\n    caFile: ${testPki().caFile}\n    credential: { type: pat, token: ${TEST_PAT} }\n    postgres: { port: ${gwPort}, endpoint: projects/p1/branches/main/endpoints/ep1 }\n`,
    );
    stops.push(() => gateway.stop());
    // Warm: the first session mints the credential; later ones (and direct, with it) reuse it.
    await run(join(bin, 'psql'), ['-X', '-c', 'SELECT 1', `host=127.0.0.1 port=${gwPort} user=x dbname=${DATABASE} sslmode=disable`]);
    const credential = workspace.lastCredential ?? '';
    const bouncerPort = await freePort();
    stops.push(await startPgbouncer(pgbouncerBin, dir, bouncerPort, server.port, credential));

    const systems = {
      // The gateway first: pgbench -C through the others leaves tens of thousands of TIME_WAIT
      // rows in /proc/net/tcp, which the gateway's same-user lookup of each connection would walk.
      gateway: { conn: `host=127.0.0.1 port=${gwPort} user=x dbname=${DATABASE} sslmode=disable`, env: {} },
      direct: {
        conn: `host=localhost port=${server.port} user=${LAKEBASE_USER} dbname=${DATABASE} sslmode=verify-full sslrootcert=${testPki().caFile}`,
        env: { PGPASSWORD: credential },
      },
      pgbouncer: { conn: `host=127.0.0.1 port=${bouncerPort} user=${LAKEBASE_USER} dbname=${DATABASE} sslmode=disable`, env: {} },
    };
    type System = keyof typeof systems;
    const each = async <T>(work: (s: System) => Promise<T>): Promise<Record<System, T>> => {
      const out = {} as Record<System, T>;
      for (const s of Object.keys(systems) as System[]) out[s] = await work(s);
      return out;
    };
    const pgbench = (extra: string[]) =>
      each(async (s) => {
        const text = await run(join(bin, 'pgbench'), ['-n', '-S', '-c', '8', '-j', '2', '-T', String(seconds), ...extra, systems[s].conn], systems[s].env);
        const tps = /tps = ([\d.]+)/.exec(text)?.[1];
        if (!tps) throw new Error(`pgbench through ${s} printed no tps:\n${text}`);
        return Number(tps);
      });
    const steady = await pgbench([]);
    const connect = await pgbench(['-C']);
    const rowBytes = 1024;
    const rowsCopied = Math.round((copyMiB * 2 ** 20) / (rowBytes + 1));
    const copy = await each(async (s) => {
      const started = performance.now();
      await run(
        join(bin, 'psql'),
        ['-X', '-q', '-o', '/dev/null', '-c', `COPY (SELECT repeat('x', ${rowBytes}) FROM generate_series(1, ${rowsCopied})) TO STDOUT`, systems[s].conn],
        systems[s].env,
      );
      return (rowsCopied * (rowBytes + 1)) / 2 ** 20 / ((performance.now() - started) / 1000);
    });
    const x = (n: number) => `${n.toFixed(2)}x`;
    return [
      {
        scenario: `pgbench -S -c 8, steady sessions (TPS, ${seconds} s)`,
        direct: steady.direct.toFixed(0),
        pgbouncer: steady.pgbouncer.toFixed(0),
        gateway: steady.gateway.toFixed(0),
        ratio: `${x(steady.gateway / steady.pgbouncer)} pgbouncer`,
        target: '>= 0.9x pgbouncer',
        met: steady.gateway / steady.pgbouncer >= 0.9,
      },
      {
        scenario: `pgbench -S -C -c 8, a connection per transaction (TPS, ${seconds} s)`,
        direct: connect.direct.toFixed(0),
        pgbouncer: connect.pgbouncer.toFixed(0),
        gateway: connect.gateway.toFixed(0),
        ratio: `${x(connect.gateway / connect.direct)} direct (pgbouncer reuses server connections)`,
        target: '>= 0.8x direct',
        met: connect.gateway / connect.direct >= 0.8,
      },
      {
        scenario: `${copyMiB} MiB COPY TO STDOUT (MiB/s)`,
        direct: copy.direct.toFixed(0),
        pgbouncer: copy.pgbouncer.toFixed(0),
        gateway: copy.gateway.toFixed(0),
        ratio: `${x(copy.gateway / copy.pgbouncer)} pgbouncer`,
        target: '>= 1.0x pgbouncer',
        met: copy.gateway / copy.pgbouncer >= 1.0,
      },
    ];
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** pgbouncer in session mode, TLS (verify-full) to the server with the credential, trusting local clients. */
async function startPgbouncer(bin: string, dir: string, port: number, serverPort: number, credential: string): Promise<() => Promise<void>> {
  const ini = join(dir, 'pgbouncer.ini');
  const users = join(dir, 'users.txt');
  // A copy the postgres user can read (the test CA's own directory is private).
  const ca = join(dir, 'ca.pem');
  writeFileSync(ca, testPki().ca);
  writeFileSync(users, `"${LAKEBASE_USER}" ""\n`);
  writeFileSync(
    ini,
    [
      '[databases]',
      `${DATABASE} = host=127.0.0.1 port=${serverPort} dbname=${DATABASE} user=${LAKEBASE_USER} password=${credential}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      "unix_socket_dir = ''",
      'auth_type = trust',
      `auth_file = ${users}`,
      'pool_mode = session',
      'max_client_conn = 200',
      'default_pool_size = 20',
      'server_tls_sslmode = verify-full',
      `server_tls_ca_file = ${ca}`,
      'logfile = /dev/null',
    ].join('\n'),
  );
  // pgbouncer refuses to run as root, like the server: as root it runs as the postgres user.
  const user =
    process.getuid?.() === 0
      ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) }
      : {};
  if (user.uid !== undefined && user.gid !== undefined) for (const f of [dir, ini, users, ca]) chownSync(f, user.uid, user.gid);
  const child: ChildProcess = spawn(bin, [ini], { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir, env: { PATH: '/usr/bin:/bin' }, ...user });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  for (let i = 0; !(await portOpen(port)); i++) {
    if (child.exitCode !== null || i > 100) throw new Error(`pgbouncer did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  process.on('exit', () => {
    if (process.env.DBX_GATEWAY_BENCH_DEBUG) process.stderr.write(log);
  });
  return async () => {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
  };
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: { PATH: '/usr/bin:/bin', ...env }, maxBuffer: 16 << 20, timeout: 900_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(`${stdout}${stderr}`),
    );
  });
}
