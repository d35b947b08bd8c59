/**
 * npm run bench [-- --quick]
 *
 * Every scenario runs against three systems in the same run: direct (client to the fake upstream
 * with a static token), the gateway (a real dbx-gateway process), and nginx injecting a static
 * header with upstream keepalive. Figures are reported as ratios against direct or nginx measured
 * moments apart on the same machine. --quick is the CI smoke mode: tiny sizes, and it only checks
 * that every system answered.
 */
import { type ChildProcess, execFile, execSync, spawn } from 'node:child_process';
import { openSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, closeSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testPki } from '../test/helpers/tls.js';
import { type Bar, ratioChart } from './lib/chart.js';
import { ensureTool, type Nginx, startNginx } from './lib/nginx.js';
import { memoryMiB, sampleRss } from './lib/proc.js';
import { startRelay } from './lib/relay.js';
import { startBenchUpstream } from './lib/upstream.js';
import { wrk, type WrkResult } from './lib/wrk.js';

const QUICK = process.argv.includes('--quick');
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/dbx-gateway.js');
const TOKEN = 'bench-static-token';
const WAN_DELAY_MS = 10;
const sizes = QUICK
  ? { seconds: 1, transferBytes: 8 << 20, wanCalls: 3, cold: 50, warmup: 1 }
  : { seconds: 8, transferBytes: 1 << 30, wanCalls: 30, cold: 500, warmup: 2 };

const say = (line: string) => process.stdout.write(`${line}\n`);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(url: string, ok: (status: number) => boolean, timeoutMs = 20_000): Promise<number> {
  const started = performance.now();
  for (;;) {
    const status = await get(url).catch(() => 0);
    if (ok(status)) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`${url} did not answer in time`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

interface Gateway {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

async function startGateway(config: string, dir: string, env: NodeJS.ProcessEnv = {}): Promise<Gateway & { readyMs: number }> {
  const port = await freePort();
  const file = join(dir, `gw-${port}.yaml`);
  writeFileSync(file, config);
  const out = openSync('/dev/null', 'w');
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, '--config', file, '--port', String(port), '--no-profiles'], {
    stdio: ['ignore', out, 'inherit'],
    env: { PATH: process.env.PATH ?? '', HOME: dir, ...env },
  });
  closeSync(out);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/healthz`, (s) => s === 200);
  return {
    url,
    child,
    readyMs: performance.now() - started,
    stop: () =>
      new Promise((r) => {
        if (child.exitCode !== null) return r();
        child.once('exit', () => r());
        child.kill('SIGTERM');
      }),
  };
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--fail', ...args], { maxBuffer: 1 << 20, timeout: 600_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`curl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

/** Runs `fn` per system and returns its results keyed by system. */
type Systems<T> = { direct: T; gateway: T; nginx: T };

interface Row {
  scenario: string;
  direct: string;
  gateway: string;
  nginx: string;
  ratio: string;
  target: string;
  met?: boolean;
}

async function main(): Promise<void> {
  for (const [bin, pkg] of [['wrk', 'wrk'], ['nginx', 'nginx-light'], ['curl', 'curl']] as const) {
    if (!ensureTool(bin, pkg)) throw new Error(`${bin} is not available and could not be installed (apt-get install ${pkg})`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-bench-'));
  const pki = testPki();
  const upstream = await startBenchUpstream(pki);
  const wanUpstream = await startBenchUpstream(pki);
  const relayGateway = await startRelay({ host: '127.0.0.1', port: wanUpstream.port }, WAN_DELAY_MS);
  const relayDirect = await startRelay({ host: '127.0.0.1', port: wanUpstream.port }, WAN_DELAY_MS);
  const relayNginx = await startRelay({ host: '127.0.0.1', port: wanUpstream.port }, WAN_DELAY_MS);

  const routeYaml = (name: string, port: number, credential = `{ type: pat, token: ${TOKEN} }`) =>
    `  ${name}:\n    host: https://127.0.0.1:${port}\n    caFile: ${pki.caFile}\n    credential: ${credential}\n`;
  const gwConfig = `routes:\n${routeYaml('prod', upstream.port)}${routeYaml('wan', relayGateway.port)}`;
  const gateway = await startGateway(gwConfig, dir);
  const nginx: Nginx = await startNginx({
    dir: join(dir, 'nginx'),
    port: await freePort(),
    caFile: pki.caFile,
    token: TOKEN,
    workers: 1,
    upstreams: { prod: upstream.port, wan: relayNginx.port },
  });
  const nginxUrl = `http://127.0.0.1:${nginx.port}`;
  const path = '/api/2.0/clusters/list';
  const urls: Systems<string> = { direct: `${upstream.origin}${path}`, gateway: `${gateway.url}/ws/prod${path}`, nginx: `${nginxUrl}/ws/prod${path}` };
  const auth = { Authorization: `Bearer ${TOKEN}` };
  const rows: Row[] = [];
  const bars: Bar[] = [];
  const answered: string[] = [];

  try {
    // Every system answers before anything is measured.
    for (const [system, url] of Object.entries(urls)) {
      const body = await curl(['--cacert', pki.caFile, '-H', `Authorization: Bearer ${TOKEN}`, url]);
      if (!body.includes('"clusters"')) throw new Error(`${system} did not answer with the clusters list: ${body.slice(0, 200)}`);
      answered.push(system);
    }
    say(`all systems answered: ${answered.join(', ')}`);
    const idleGateway = memoryMiB(gateway.child.pid!).rss;

    // 1. Throughput: small JSON GET at 64 connections.
    const tput = {} as Systems<WrkResult>;
    let loadedGateway = 0;
    for (const system of ['direct', 'gateway', 'nginx'] as const) {
      await wrk(urls[system], { connections: 64, seconds: sizes.warmup, headers: auth });
      const stopSampling = system === 'gateway' ? sampleRss(gateway.child.pid!) : undefined;
      tput[system] = await wrk(urls[system], { connections: 64, seconds: sizes.seconds, headers: auth });
      if (stopSampling) loadedGateway = stopSampling();
    }
    checkErrors('throughput', tput);
    const tputVsNginx = tput.gateway.rps / tput.nginx.rps;
    rows.push({
      scenario: 'Small JSON GET, 64 connections (req/s)',
      direct: fmt(tput.direct.rps, 0),
      gateway: fmt(tput.gateway.rps, 0),
      nginx: fmt(tput.nginx.rps, 0),
      ratio: `${tputVsNginx.toFixed(2)}x nginx, ${(tput.gateway.rps / tput.direct.rps).toFixed(2)}x direct`,
      target: '>= 0.5x nginx',
      met: tputVsNginx >= 0.5,
    });
    bars.push({ label: 'throughput vs nginx', value: tputVsNginx, target: 0.5, higherIsBetter: true });

    // 2. Latency at 4 connections.
    const lat = {} as Systems<WrkResult>;
    for (const system of ['direct', 'gateway', 'nginx'] as const) {
      await wrk(urls[system], { connections: 4, seconds: sizes.warmup, headers: auth });
      lat[system] = await wrk(urls[system], { connections: 4, seconds: sizes.seconds, headers: auth });
    }
    checkErrors('latency', lat);
    const p50Over = lat.gateway.p50ms - lat.direct.p50ms;
    const p99Over = lat.gateway.p99ms - lat.direct.p99ms;
    rows.push({
      scenario: 'Latency p50, 4 connections (ms)',
      direct: fmt(lat.direct.p50ms, 3),
      gateway: fmt(lat.gateway.p50ms, 3),
      nginx: fmt(lat.nginx.p50ms, 3),
      ratio: `+${p50Over.toFixed(3)} ms over direct`,
      target: '<= +0.25 ms',
      met: p50Over <= 0.25,
    });
    rows.push({
      scenario: 'Latency p99, 4 connections (ms)',
      direct: fmt(lat.direct.p99ms, 3),
      gateway: fmt(lat.gateway.p99ms, 3),
      nginx: fmt(lat.nginx.p99ms, 3),
      ratio: `+${p99Over.toFixed(3)} ms over direct`,
      target: '<= +2 ms',
      met: p99Over <= 2,
    });
    bars.push({ label: 'p50 latency vs direct', value: lat.gateway.p50ms / lat.direct.p50ms, higherIsBetter: false });
    bars.push({ label: 'p99 latency vs direct', value: lat.gateway.p99ms / lat.direct.p99ms, higherIsBetter: false });

    // 3. A sequential curl loop over a 20 ms RTT link: direct pays TCP + TLS per call.
    const wanUrls: Systems<string> = {
      direct: `https://127.0.0.1:${relayDirect.port}${path}`,
      gateway: `${gateway.url}/ws/wan${path}`,
      nginx: `${nginxUrl}/ws/wan${path}`,
    };
    const wan = {} as Systems<number>;
    for (const system of ['direct', 'gateway', 'nginx'] as const) {
      await curl(['--cacert', pki.caFile, '-H', `Authorization: Bearer ${TOKEN}`, '-o', '/dev/null', wanUrls[system]]); // warm
      const started = performance.now();
      for (let i = 0; i < sizes.wanCalls; i++) {
        await curl(['--cacert', pki.caFile, '-H', `Authorization: Bearer ${TOKEN}`, '-o', '/dev/null', wanUrls[system]]);
      }
      wan[system] = (performance.now() - started) / sizes.wanCalls;
    }
    const wanSpeedup = wan.direct / wan.gateway;
    rows.push({
      scenario: `curl loop over a ${2 * WAN_DELAY_MS} ms RTT link (ms per call)`,
      direct: fmt(wan.direct, 1),
      gateway: fmt(wan.gateway, 1),
      nginx: fmt(wan.nginx, 1),
      ratio: `${wanSpeedup.toFixed(2)}x faster than direct`,
      target: '>= 2.5x faster',
      met: wanSpeedup >= 2.5,
    });
    bars.push({ label: 'WAN curl loop speed-up vs direct', value: wanSpeedup, target: 2.5, higherIsBetter: true });

    // 4. 1 GiB download and upload, with the gateway's peak RSS (a fresh process for a clean peak).
    await gateway.stop();
    const transferGateway = await startGateway(gwConfig, dir);
    const big = join(dir, 'upload.bin');
    writeFileSync(big, '');
    truncateSync(big, sizes.transferBytes);
    const mb = sizes.transferBytes / (1 << 20);
    const down = {} as Systems<number>;
    const up = {} as Systems<number>;
    const tUrls: Systems<string> = { direct: upstream.origin, gateway: `${transferGateway.url}/ws/prod`, nginx: `${nginxUrl}/ws/prod` };
    for (const system of ['direct', 'gateway', 'nginx'] as const) {
      const d = await curl(['--cacert', pki.caFile, '-H', `Authorization: Bearer ${TOKEN}`, '-o', '/dev/null', '-w', '%{time_total}', `${tUrls[system]}/big?bytes=${sizes.transferBytes}`]);
      down[system] = mb / Number(d);
      const u = await curl(['--cacert', pki.caFile, '-H', `Authorization: Bearer ${TOKEN}`, '-o', '/dev/null', '-w', '%{time_total}', '-T', big, `${tUrls[system]}/upload`]);
      up[system] = mb / Number(u);
    }
    const peak = memoryMiB(transferGateway.child.pid!).peak;
    await transferGateway.stop();
    rmSync(big);
    const downRatio = down.gateway / down.direct;
    const upRatio = up.gateway / up.direct;
    const sizeLabel = mb >= 1024 ? `${mb / 1024} GiB` : `${mb} MiB`;
    rows.push({
      scenario: `${sizeLabel} download (MiB/s)`,
      direct: fmt(down.direct, 0),
      gateway: fmt(down.gateway, 0),
      nginx: fmt(down.nginx, 0),
      ratio: `${downRatio.toFixed(2)}x direct (nginx ${(down.nginx / down.direct).toFixed(2)}x)`,
      target: '>= 0.8x direct',
      met: downRatio >= 0.8,
    });
    rows.push({
      scenario: `${sizeLabel} upload (MiB/s)`,
      direct: fmt(up.direct, 0),
      gateway: fmt(up.gateway, 0),
      nginx: fmt(up.nginx, 0),
      ratio: `${upRatio.toFixed(2)}x direct (nginx ${(up.nginx / up.direct).toFixed(2)}x)`,
      target: '>= 0.8x direct',
      met: upRatio >= 0.8,
    });
    rows.push({ scenario: 'Gateway peak RSS over both transfers (MiB)', direct: '-', gateway: fmt(peak, 1), nginx: '-', ratio: '', target: '< 120 MiB', met: peak < 120 });
    bars.push({ label: 'download vs direct', value: downRatio, target: 0.8, higherIsBetter: true });
    bars.push({ label: 'upload vs direct', value: upRatio, target: 0.8, higherIsBetter: true });

    // 5. Cold start: process start to first proxied response (token fetched on the way), and
    // 500 concurrent requests on a cold cache.
    const coldConfig = `routes:\n${routeYaml('cold', upstream.port, `{ type: databricks-m2m, clientId: bench, clientSecret: bench-secret }`)}`;
    const coldPort = await freePort();
    const coldFile = join(dir, 'cold.yaml');
    writeFileSync(coldFile, coldConfig);
    const startedCold = performance.now();
    const coldChild = spawn(process.execPath, [BIN, '--config', coldFile, '--port', String(coldPort), '--no-profiles'], { stdio: 'ignore', env: { PATH: process.env.PATH ?? '', HOME: dir } });
    await waitFor(`http://127.0.0.1:${coldPort}/ws/cold${path}`, (s) => s === 200);
    const coldMs = performance.now() - startedCold;
    coldChild.kill('SIGTERM');
    const refPort = await freePort();
    const startedRef = performance.now();
    const ref = spawn(process.execPath, ['-e', `require('http').createServer((q,s)=>s.end('ok')).listen(${refPort},'127.0.0.1')`], { stdio: 'ignore' });
    await waitFor(`http://127.0.0.1:${refPort}/`, (s) => s === 200);
    const refMs = performance.now() - startedRef;
    const idleRef = memoryMiB(ref.pid!).rss;
    ref.kill();
    rows.push({
      scenario: 'Cold start to first proxied response (ms)',
      direct: '-',
      gateway: fmt(coldMs, 0),
      nginx: '-',
      ratio: `${(coldMs / refMs).toFixed(2)}x a bare Node HTTP server's start (${refMs.toFixed(0)} ms)`,
      target: '',
    });

    const fetchesBefore = upstream.tokenFetches();
    const cold2 = await startGateway(coldConfig, dir);
    const burst = async (url: string) => {
      const started = performance.now();
      const statuses = await Promise.all(Array.from({ length: sizes.cold }, () => getWithHeaders(url, auth)));
      if (statuses.some((s) => s !== 200)) throw new Error(`cold burst: ${statuses.filter((s) => s !== 200).length} failed`);
      return performance.now() - started;
    };
    const burstGateway = await burst(`${cold2.url}/ws/cold${path}`);
    const fetches = upstream.tokenFetches() - fetchesBefore;
    await cold2.stop();
    const burstDirect = await burst(urls.direct);
    const burstNginx = await burst(urls.nginx);
    rows.push({
      scenario: `${sizes.cold} concurrent requests on a cold cache (ms)`,
      direct: fmt(burstDirect, 0),
      gateway: fmt(burstGateway, 0),
      nginx: fmt(burstNginx, 0),
      ratio: `${(burstGateway / burstDirect).toFixed(2)}x direct's time; ${fetches} token fetch${fetches === 1 ? '' : 'es'}`,
      target: '1 token fetch',
      met: fetches === 1,
    });

    // 6. Memory.
    const nginxRss = nginx.pids().reduce((a, p) => a + (memoryMiB(p).rss || 0), 0);
    rows.push({
      scenario: 'Idle RSS (MiB)',
      direct: '-',
      gateway: fmt(idleGateway, 1),
      nginx: fmt(nginxRss, 1),
      ratio: `${(idleGateway / idleRef).toFixed(2)}x a bare Node HTTP server (${idleRef.toFixed(1)} MiB)`,
      target: '< 80 MiB',
      met: idleGateway < 80,
    });
    rows.push({ scenario: 'Loaded RSS, during the 64-connection run (MiB)', direct: '-', gateway: fmt(loadedGateway, 1), nginx: '-', ratio: '', target: '' });
  } finally {
    await gateway.stop();
    await nginx.stop();
    await Promise.all([upstream.close(), wanUpstream.close(), relayGateway.close(), relayDirect.close(), relayNginx.close()]);
  }

  printTable(rows);
  if (QUICK) {
    say(`quick mode: every system answered in every scenario (${answered.join(', ')}); figures above are not meaningful at this size`);
    return;
  }
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}, ${execSyncSafe('nginx -v 2>&1')}, ${execSyncSafe('wrk -v 2>&1 | head -1')}`;
  mkdirSync(join(ROOT, 'docs'), { recursive: true });
  writeFileSync(join(ROOT, 'docs/benchmarks.svg'), ratioChart('dbx-gateway: ratios from one run (see docs/benchmarks.md)', bars));
  writeFileSync(join(ROOT, 'docs/benchmarks.md'), report(rows, machine));
  say('wrote docs/benchmarks.md and docs/benchmarks.svg');
}

function getWithHeaders(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const lib = url.startsWith('https') ? import('node:https') : Promise.resolve(http);
    void lib.then((m) =>
      m
        .get(url, { agent: false, headers, ...(url.startsWith('https') ? { ca: readFileSync(testPki().caFile) } : {}) }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        })
        .on('error', reject),
    );
  });
}

function execSyncSafe(command: string): string {
  try {
    return execSync(command, { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function checkErrors(scenario: string, results: Systems<WrkResult>): void {
  for (const [system, r] of Object.entries(results)) {
    if (r.requests === 0 || r.errors > 0) throw new Error(`${scenario}: ${system} answered ${r.requests} requests with ${r.errors} errors`);
  }
}

function fmt(n: number, digits: number): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a';
}

function printTable(rows: Row[]): void {
  const header = ['scenario', 'direct', 'gateway', 'nginx', 'gateway ratio', 'target', ''];
  const lines = rows.map((r) => [r.scenario, r.direct, r.gateway, r.nginx, r.ratio, r.target, r.met === undefined ? '' : r.met ? 'met' : 'NOT MET']);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  for (const l of [header, ...lines]) say(l.map((c, i) => c.padEnd(widths[i]!)).join('  '));
}

function report(rows: Row[], machine: string): string {
  const table = [
    '| scenario | direct | gateway | nginx | gateway ratio | target | |',
    '|---|---:|---:|---:|---|---|---|',
    ...rows.map((r) => `| ${r.scenario} | ${r.direct} | ${r.gateway} | ${r.nginx} | ${r.ratio} | ${r.target} | ${r.met === undefined ? '' : r.met ? 'met' : '**not met**'} |`),
  ].join('\n');
  return `# Benchmarks

Generated by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}; every figure is from the same run.

Machine: ${machine}.

Systems: **direct** is the client talking HTTPS to the fake upstream with a static token (a new
connection per curl call); **gateway** is a dbx-gateway process (PAT credential, logging at info
to /dev/null); **nginx** is nginx (1 worker, the same single core the gateway's event loop gets)
proxying to the same upstream over HTTPS with keepalive and a static Authorization header. The
upstream is a Node HTTPS server with fixed bodies. Load: wrk (1 thread), curl for transfers and
the WAN loop, all on the same 2 cores.

${table}

![ratios](benchmarks.svg)

The WAN scenario runs each system through its own user-space TCP relay that delays every chunk by
${WAN_DELAY_MS} ms each way (${2 * WAN_DELAY_MS} ms RTT) between the proxy (or the direct client)
and the upstream.

Reproduce: \`npm run bench\` (about two minutes; installs wrk and nginx with apt-get when missing).

${readFileSync(join(ROOT, 'bench/ANALYSIS.md'), 'utf8')}`;
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exit(1);
});
