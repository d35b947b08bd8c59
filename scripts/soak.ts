/**
 * Soak test (not part of `npm test`): a gateway process under mixed traffic for 10 minutes, with
 * Databricks OAuth tokens that live 60 seconds, so the refresh-ahead cache turns over about 40
 * times. It reports errors, requests that reached the upstream with an expired (or <= 30 s left,
 * which Databricks rejects) token, token fetches, and the gateway's RSS drift; results go to
 * docs/reliability.md.
 *
 *   npm run build && node --import tsx scripts/soak.ts [--minutes 10]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testPki } from '../test/helpers/tls.js';

const minutesArg = process.argv.indexOf('--minutes');
const MINUTES = minutesArg > 0 ? Number(process.argv[minutesArg + 1]) : 10;
const TOKEN_LIFETIME_S = 60;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const issued = new Map<string, number>();
const upstreamSeen = { requests: 0, expired: 0, nearExpiry: 0, unknown: 0 };
let tokenFetches = 0;

const pki = testPki();
const upstream = createHttpsServer({ key: pki.key, cert: pki.cert }, (req, res) => {
  const url = req.url ?? '/';
  if (url.startsWith('/oidc/.well-known/')) {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ token_endpoint: `https://${req.headers.host}/oidc/v1/token` }));
  }
  if (url === '/oidc/v1/token') {
    req.resume();
    tokenFetches++;
    const token = `soak-${randomBytes(16).toString('hex')}`;
    issued.set(token, Date.now() + TOKEN_LIFETIME_S * 1000);
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: TOKEN_LIFETIME_S }));
  }
  upstreamSeen.requests++;
  const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
  const expiry = issued.get(token);
  if (expiry === undefined) upstreamSeen.unknown++;
  else if (Date.now() >= expiry) upstreamSeen.expired++;
  else if (expiry - Date.now() <= 30_000) upstreamSeen.nearExpiry++;
  if (expiry === undefined || Date.now() >= expiry - 30_000) {
    req.resume();
    res.writeHead(401, { 'content-type': 'application/json' });
    return res.end('{"error_code":"401","message":"Invalid access token."}');
  }
  if (url.startsWith('/download')) {
    const chunk = Buffer.alloc(64 * 1024, 97);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 160 * chunk.length });
    let left = 160;
    const pump = () => {
      while (left > 0) {
        left--;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  if (url.startsWith('/events')) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let n = 0;
    const timer = setInterval(() => {
      res.write(`data: ${n++}\n\n`);
      if (n === 5) {
        clearInterval(timer);
        res.end();
      }
    }, 50);
    res.on('close', () => clearInterval(timer));
    return;
  }
  let bytes = 0;
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ clusters: [{ cluster_id: 'c1' }], bytes }));
  });
});

const outcomes = new Map<string, number>();
const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

function call(base: string, kind: string): Promise<void> {
  return new Promise((resolve) => {
    const abortEarly = kind === 'abort';
    const path = kind === 'download' || abortEarly ? '/download' : kind === 'events' ? '/events' : '/api/2.0/clusters/list';
    const body = kind === 'upload' ? Buffer.alloc(1 << 20, 98) : undefined;
    const req = http.request(`${base}${path}`, { method: body ? 'POST' : 'GET', agent, headers: body ? { 'content-length': body.length } : {} }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (abortEarly && n > 256 * 1024) req.destroy();
      });
      res.on('end', () => {
        count(res.statusCode === 200 ? `${kind} ok` : `${kind} HTTP ${res.statusCode}`);
        resolve();
      });
      res.on('error', () => {
        count(abortEarly ? 'abort ok (client aborted)' : `${kind} stream error`);
        resolve();
      });
      res.on('aborted', () => {
        if (!abortEarly) count(`${kind} aborted by gateway`);
      });
    });
    req.on('error', (err) => {
      count(abortEarly ? 'abort ok (client aborted)' : `${kind} error ${(err as NodeJS.ErrnoException).code ?? err.message}`);
      resolve();
    });
    req.end(body);
  });
}

function rss(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

async function main(): Promise<void> {
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = (upstream.address() as AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-soak-'));
  writeFileSync(
    join(dir, 'dbx-gateway.yaml'),
    `routes:\n  soak:\n    host: https://127.0.0.1:${port}\n    caFile: ${pki.caFile}\n    credential: { type: databricks-m2m, clientId: soak, clientSecret: soak-secret }\n`,
  );
  const gwPort = 18000 + Math.floor(Math.random() * 1000);
  const gw = spawn(
    process.execPath,
    [join(ROOT, 'bin/dbx-gateway.cjs'), '--config', join(dir, 'dbx-gateway.yaml'), '--port', String(gwPort), '--no-profiles'],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { PATH: process.env.PATH ?? '', HOME: dir },
    },
  );
  await new Promise((r) => setTimeout(r, 1500));
  const base = `http://127.0.0.1:${gwPort}/ws/soak`;
  const kinds = ['get', 'get', 'get', 'get', 'upload', 'download', 'events', 'abort'];
  const samples: Array<{ t: number; rss: number }> = [];
  const started = Date.now();
  const end = started + MINUTES * 60_000;
  const sampler = setInterval(() => samples.push({ t: (Date.now() - started) / 1000, rss: rss(gw.pid!) }), 5000);
  let sent = 0;
  // Each worker walks the mix round-robin from its own offset, so every kind keeps flowing.
  await Promise.all(
    Array.from({ length: 8 }, async (_, worker) => {
      for (let i = worker; Date.now() < end; i++) {
        await call(base, kinds[i % kinds.length]!);
        sent++;
      }
    }),
  );
  clearInterval(sampler);
  samples.push({ t: (Date.now() - started) / 1000, rss: rss(gw.pid!) });
  gw.kill('SIGTERM');
  upstream.close();
  agent.destroy();

  const afterWarmup = samples.find((s) => s.t >= 60) ?? samples[0]!;
  const last = samples.at(-1)!;
  const peak = Math.max(...samples.map((s) => s.rss));
  const failures = [...outcomes].filter(([k]) => !k.includes(' ok')).reduce((a, [, n]) => a + n, 0);
  const lines = [
    '# Reliability: soak test',
    '',
    `Generated by \`node --import tsx scripts/soak.ts --minutes ${MINUTES}\` on ${new Date().toISOString().slice(0, 10)}`,
    `(${cpus().length} cores, Node ${process.version}). A gateway process with a Databricks OAuth M2M route whose`,
    `tokens live ${TOKEN_LIFETIME_S} s served 8 concurrent clients for ${MINUTES} minutes. The traffic mix: small GETs,`,
    '1 MiB uploads, 10 MiB downloads, server-sent events, and downloads the client aborts halfway. The fake',
    'upstream checks every token it receives against its real expiry.',
    '',
    '| figure | value |',
    '|---|---:|',
    `| requests sent | ${sent} |`,
    `| failed requests (not counting deliberate client aborts) | ${failures} |`,
    `| requests that reached the upstream with an expired token | ${upstreamSeen.expired} |`,
    `| requests that reached the upstream with 30 s or less left (Databricks would reject) | ${upstreamSeen.nearExpiry} |`,
    `| requests with a token the upstream never issued | ${upstreamSeen.unknown} |`,
    `| token fetches (${TOKEN_LIFETIME_S} s tokens over ${MINUTES} min) | ${tokenFetches} |`,
    `| gateway RSS after 1 min / at the end / peak (MiB) | ${afterWarmup.rss.toFixed(1)} / ${last.rss.toFixed(1)} / ${peak.toFixed(1)} |`,
    `| RSS drift from minute 1 to the end (MiB) | ${(last.rss - afterWarmup.rss).toFixed(1)} |`,
    '',
    'Outcomes by kind:',
    '',
    ...[...outcomes].sort().map(([k, n]) => `- ${k}: ${n}`),
    '',
  ];
  writeFileSync(join(ROOT, 'docs/reliability.md'), lines.join('\n'));
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`soak failed: ${err.message}\n`);
  process.exit(1);
});
