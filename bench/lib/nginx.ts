import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Nginx {
  port: number;
  pids(): number[];
  stop(): Promise<void>;
}

/**
 * nginx as the alternative a user could pick: a reverse proxy that injects a static
 * Authorization header, with upstream keepalive, TLS verification on, and no buffering (streams
 * both ways, like the gateway). `workers` processes (1 = the same single core the gateway uses).
 */
export async function startNginx(options: {
  dir: string;
  port: number;
  caFile: string;
  token: string;
  workers: number;
  upstreams: Record<string, number>;
}): Promise<Nginx> {
  const { dir } = options;
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const upstreamBlocks = Object.entries(options.upstreams)
    .map(([name, port]) => `  upstream u_${name} { server 127.0.0.1:${port}; keepalive 128; }`)
    .join('\n');
  const locations = Object.keys(options.upstreams)
    .map(
      (name) => `    location /ws/${name}/ {
      proxy_pass https://u_${name}/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host 127.0.0.1:${options.upstreams[name]};
      proxy_set_header Authorization "Bearer ${options.token}";
      proxy_ssl_trusted_certificate ${options.caFile};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
      proxy_buffering off;
      proxy_request_buffering off;
    }`,
    )
    .join('\n');
  const tmp = join(dir, 'tmp');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes ${options.workers};
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${tmp}; proxy_temp_path ${tmp}; fastcgi_temp_path ${tmp}; uwsgi_temp_path ${tmp}; scgi_temp_path ${tmp};
  keepalive_requests 100000;
${upstreamBlocks}
  server {
    listen 127.0.0.1:${options.port};
    client_max_body_size 0;
${locations}
  }
}
`,
  );
  const child: ChildProcess = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  await new Promise((r) => setTimeout(r, 300));
  if (child.exitCode !== null) throw new Error(`nginx did not start: ${err}`);
  return {
    port: options.port,
    pids: () => {
      try {
        return execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' })
          .split('\n')
          .filter(Boolean)
          .map(Number)
          .concat(child.pid ?? 0);
      } catch {
        return [child.pid ?? 0];
      }
    },
    stop: () =>
      new Promise((r) => {
        if (child.exitCode !== null) return r();
        child.once('exit', () => r());
        child.kill('SIGQUIT');
      }),
  };
}
