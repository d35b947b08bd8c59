import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { portOpen } from './proc.js';

export interface Caddy {
  port: number;
  pids(): number[];
  stop(): Promise<void>;
}

/**
 * Caddy as the Go reverse proxy a user could pick instead: one process (GOMAXPROCS=`procs`; 1 = the
 * same single core the gateway's event loop and one nginx worker get), set up like bench/lib/nginx.ts.
 * Each upstream is a route /ws/NAME/* with the prefix stripped, `reverse_proxy` over HTTPS verified
 * against `caFile` (server name localhost), a static Authorization header and the upstream's Host,
 * upstream keep-alive (128 idle connections, like nginx's `keepalive 128`), responses flushed as
 * they come (flush_interval -1) and request bodies streamed (Caddy buffers none unless told to).
 * No admin endpoint, no automatic HTTPS, no access log (nginx has `access_log off`), other logs
 * at WARN; HOME, XDG_DATA_HOME and XDG_CONFIG_HOME and Caddy's storage are under `dir`.
 */
export async function startCaddy(options: {
  dir: string;
  port: number;
  caFile: string;
  token: string;
  procs: number;
  upstreams: Record<string, number>;
}): Promise<Caddy> {
  const { dir } = options;
  for (const sub of ['data', 'config']) mkdirSync(join(dir, sub), { recursive: true });
  const routes = Object.entries(options.upstreams).map(([name, port]) => ({
    match: [{ path: [`/ws/${name}/*`] }],
    handle: [
      { handler: 'rewrite', strip_path_prefix: `/ws/${name}` },
      {
        handler: 'reverse_proxy',
        upstreams: [{ dial: `127.0.0.1:${port}` }],
        flush_interval: -1,
        headers: { request: { set: { Host: [`127.0.0.1:${port}`], Authorization: [`Bearer ${options.token}`] } } },
        transport: {
          protocol: 'http',
          tls: { root_ca_pem_files: [options.caFile], server_name: 'localhost' },
          keep_alive: { enabled: true, max_idle_conns_per_host: 128, idle_timeout: 60_000_000_000 },
        },
      },
    ],
    terminal: true,
  }));
  const config = {
    admin: { disabled: true, config: { persist: false } },
    logging: { logs: { default: { level: 'WARN', writer: { output: 'stderr' } } } },
    storage: { module: 'file_system', root: join(dir, 'data') },
    apps: {
      http: {
        servers: {
          bench: {
            listen: [`127.0.0.1:${options.port}`],
            automatic_https: { disable: true },
            routes,
          },
        },
      },
    },
  };
  const file = join(dir, 'caddy.json');
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  const child: ChildProcess = spawn('caddy', ['run', '--config', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      HOME: dir,
      XDG_DATA_HOME: join(dir, 'data'),
      XDG_CONFIG_HOME: join(dir, 'config'),
      GOMAXPROCS: String(options.procs),
    },
  });
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const started = performance.now();
  while (!(await portOpen(options.port))) {
    if (child.exitCode !== null) throw new Error(`caddy did not start: ${err}`);
    if (performance.now() - started > 10_000) {
      child.kill('SIGKILL');
      throw new Error(`caddy did not listen on 127.0.0.1:${options.port} within 10 s: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port: options.port,
    pids: () => [child.pid ?? 0],
    stop: () =>
      new Promise((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        // SIGTERM is Caddy's graceful stop; it waits for connections in flight, so not forever.
        const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(kill);
          r();
        });
        child.kill('SIGTERM');
      }),
  };
}
