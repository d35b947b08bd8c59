/**
 * npm run bench [-- --quick]
 *
 * Every scenario runs against five systems in the same run: direct (client to the fake upstream
 * with a static token), node-limit (bench/lib/node-limit.mjs: the least a Node proxy on undici does,
 * in its own process), the gateway (a real dbx-gateway process), and nginx (one worker) and Caddy
 * (one process, GOMAXPROCS=1) injecting a static header with upstream keepalive. The gateway's
 * figures are reported as ratios against node-limit (or direct) measured moments apart on the same
 * machine. When caddy is missing and cannot be installed, its column says so and the rest runs.
 * --quick is the CI smoke mode: tiny sizes, and it only checks that every system answered in every
 * scenario.
 */
import { type ChildProcess, execFile, execSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { judgePeersAsync } from '../src/security/peer-user.js';
import { installFakeAz } from '../test/helpers/fake-az.js';
import { freePort } from '../test/helpers/ports.js';
import { testPki } from '../test/helpers/tls.js';
import { startFakeSpark } from '../test/spark/fixtures/spark-grpc.js';
import { type Caddy, startCaddy } from './lib/caddy.js';
import { type Bar, ratioChart } from './lib/chart.js';
import { directClient, gatewayClient, measureGrpc } from './lib/grpc.js';
import { type Nginx, startNginx } from './lib/nginx.js';
import { benchPostgres, type PostgresRow } from './lib/postgres.js';
import { cpuMeter, ensureTool, memoryMiB, sampleRss } from './lib/proc.js';
import { startRelay } from './lib/relay.js';
import { startBenchUpstream } from './lib/upstream.js';
import { type WrkResult, wrk } from './lib/wrk.js';

const QUICK = process.argv.includes('--quick');
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/dbx-gateway.cjs');
const NODE_LIMIT = join(ROOT, 'bench/lib/node-limit.mjs');
const TOKEN = 'bench-static-token';
const WAN_DELAY_MS = 10;
const sizes = QUICK
  ? { seconds: 1, transferBytes: 8 << 20, transferRuns: 1, wanCalls: 3, cold: 50, warmup: 1, startRuns: 1 }
  : { seconds: 8, transferBytes: 1 << 30, transferRuns: 3, wanCalls: 30, cold: 500, warmup: 2, startRuns: 7 };

const say = (line: string) => process.stdout.write(`${line}\n`);

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

const stopChild = (child: ChildProcess) => (): Promise<void> =>
  new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) return r();
    child.once('exit', () => r());
    child.kill('SIGTERM');
  });

/** bench/lib/node-limit.mjs in its own plain Node process, forwarding /ws/prod/... to the upstream. */
async function startNodeLimit(upstreamPort: number, caFile: string): Promise<Gateway> {
  const port = await freePort();
  const child = spawn(process.execPath, [NODE_LIMIT, String(port), `https://127.0.0.1:${upstreamPort}`, caFile, TOKEN], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { PATH: process.env.PATH ?? '' },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/ws/prod/api/2.0/clusters/list`, (s) => s === 200);
  return { url, child, stop: stopChild(child) };
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
    stop: stopChild(child),
  };
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--fail', ...args], { maxBuffer: 1 << 20, timeout: 600_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`curl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

const SYSTEMS = ['direct', 'node-limit', 'gateway', 'nginx', 'caddy'] as const;
type System = (typeof SYSTEMS)[number];
/** A result per system (no 'caddy' entry when Caddy is skipped). */
type Systems<T> = Record<System, T>;
/** The Caddy column's cells when caddy is not there and apt-get could not install it. */
const CADDY_SKIPPED = 'skipped: caddy not installed or did not start';

/** Median wall time of spawnSync(command) over `runs` runs, each checked for exit 0 and `check`. */
function startupMs(
  runs: number,
  commands: Record<string, { args: string[]; env: NodeJS.ProcessEnv; check?: (stdout: string) => boolean }>,
): Record<string, number> {
  const times: Record<string, number[]> = {};
  // One unmeasured run each (page cache), then the measured runs interleaved so drift hits all alike.
  for (let i = -1; i < runs; i++) {
    for (const [name, { args, env, check }] of Object.entries(commands)) {
      const started = performance.now();
      const r = spawnSync(process.execPath, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
      const ms = performance.now() - started;
      if (r.status !== 0 || (check && !check(r.stdout)))
        throw new Error(`start-up: ${name} exited ${r.status}: ${r.stdout.slice(0, 200)}${r.stderr.slice(0, 500)}`);
      if (i >= 0) {
        times[name] ??= [];
        times[name].push(ms);
      }
    }
  }
  return Object.fromEntries(Object.entries(times).map(([name, t]) => [name, t.sort((a, b) => a - b)[Math.floor(t.length / 2)]!]));
}

interface Row {
  scenario: string;
  direct: string;
  limit: string;
  gateway: string;
  nginx: string;
  caddy: string;
  ratio: string;
  target: string;
  met?: boolean;
}

async function main(): Promise<void> {
  for (const [bin, pkg] of [
    ['wrk', 'wrk'],
    ['nginx', 'nginx-light'],
    ['curl', 'curl'],
  ] as const) {
    if (!ensureTool(bin, pkg)) throw new Error(`${bin} is not available and could not be installed (apt-get install ${pkg})`);
  }
  // Caddy is optional: without it the Caddy column says it was skipped.
  const haveCaddy = ensureTool('caddy', 'caddy');
  if (!haveCaddy) process.stderr.write(`bench: caddy is not available and could not be installed (apt-get install caddy); the Caddy column is skipped\n`);
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-bench-'));
  const pki = testPki();
  const upstream = await startBenchUpstream(pki);
  const wanUpstream = await startBenchUpstream(pki);
  const relayGateway = await startRelay({ host: '127.0.0.1', port: wanUpstream.port }, WAN_DELAY_MS);
  const relayDirect = await startRelay({ host: '127.0.0.1', port: wanUpstream.port }, WAN_DELAY_MS);
  const relayNginx = await startRelay({ host: '127.0.0.1', port: wanUpstream.port }, WAN_DELAY_MS);
  const relayLimit = await startRelay({ host: '127.0.0.1', port: wanUpstream.port }, WAN_DELAY_MS);
  const relayCaddy = await startRelay({ host: '127.0.0.1', port: wanUpstream.port }, WAN_DELAY_MS);

  const routeYaml = (name: string, port: number, credential = `{ type: pat, token: ${TOKEN} }`) =>
    `  ${name}:\n    host: https://127.0.0.1:${port}\n    caFile: ${pki.caFile}\n    credential: ${credential}\n`;
  const gwConfig = `routes:\n${routeYaml('prod', upstream.port)}${routeYaml('wan', relayGateway.port)}`;
  const gateway = await startGateway(gwConfig, dir);
  const limit = await startNodeLimit(upstream.port, pki.caFile);
  const limitWan = await startNodeLimit(relayLimit.port, pki.caFile);
  const nginx: Nginx = await startNginx({
    dir: join(dir, 'nginx'),
    port: await freePort(),
    caFile: pki.caFile,
    token: TOKEN,
    workers: 1,
    upstreams: { prod: upstream.port, wan: relayNginx.port },
  });
  const nginxUrl = `http://127.0.0.1:${nginx.port}`;
  // A Caddy that is installed but does not start (a release that rejects the config) is skipped
  // too, with its reason, rather than ending the run with every other process left behind.
  const caddy: Caddy | undefined = haveCaddy
    ? await startCaddy({
        dir: join(dir, 'caddy'),
        port: await freePort(),
        caFile: pki.caFile,
        token: TOKEN,
        procs: 1,
        upstreams: { prod: upstream.port, wan: relayCaddy.port },
      }).catch((err: unknown) => {
        process.stderr.write(`bench: caddy did not start (${err instanceof Error ? err.message : String(err)}); the Caddy column is skipped\n`);
        return undefined;
      })
    : undefined;
  const systems: readonly System[] = caddy ? SYSTEMS : SYSTEMS.filter((s) => s !== 'caddy');
  const caddyUrl = `http://127.0.0.1:${caddy?.port ?? 0}`;
  const path = '/api/2.0/clusters/list';
  const urls: Systems<string> = {
    direct: `${upstream.origin}${path}`,
    'node-limit': `${limit.url}/ws/prod${path}`,
    gateway: `${gateway.url}/ws/prod${path}`,
    nginx: `${nginxUrl}/ws/prod${path}`,
    caddy: `${caddyUrl}/ws/prod${path}`,
  };
  const auth = { Authorization: `Bearer ${TOKEN}` };
  const rows: Row[] = [];
  const bars: Bar[] = [];
  const answered: string[] = [];
  let postgresRows: PostgresRow[] | string = 'not run';
  const extra: Gateway[] = [];
  const x = (n: number) => `${n.toFixed(2)}x`;
  /** A Caddy cell: the figure, or why there is none. */
  const caddyFmt = (n: number | undefined, digits: number) => (caddy ? fmt(n ?? Number.NaN, digits) : CADDY_SKIPPED);
  /** A row's five system cells from each system's figure (Caddy's, or why it has none). */
  const cells = (of: (system: System) => number | undefined, digits: number) => ({
    direct: fmt(of('direct') ?? Number.NaN, digits),
    limit: fmt(of('node-limit') ?? Number.NaN, digits),
    gateway: fmt(of('gateway') ?? Number.NaN, digits),
    nginx: fmt(of('nginx') ?? Number.NaN, digits),
    caddy: caddyFmt(of('caddy'), digits),
  });
  /** "0.80x Caddy" (gateway over Caddy), or that Caddy was skipped. */
  const vsCaddy = (gatewayValue: number, caddyValue: number | undefined) => (caddy ? `${x(gatewayValue / (caddyValue ?? Number.NaN))} Caddy` : 'Caddy skipped');

  try {
    // Every system answers before anything is measured.
    for (const system of systems) {
      const body = await curl(['--cacert', pki.caFile, '-H', `Authorization: Bearer ${TOKEN}`, urls[system]]);
      if (!body.includes('"clusters"')) throw new Error(`${system} did not answer with the clusters list: ${body.slice(0, 200)}`);
      answered.push(system);
    }
    say(`all systems answered: ${answered.join(', ')}`);
    const idleGateway = memoryMiB(gateway.child.pid!).rss;
    const idleLimit = memoryMiB(limit.child.pid!).rss;
    // nginx and Caddy at the same moment: started, one request answered, no load yet.
    const idleNginx = nginx.pids().reduce((a, p) => a + (memoryMiB(p).rss || 0), 0);
    const idleCaddy = caddy?.pids().reduce((a, p) => a + (memoryMiB(p).rss || 0), 0);

    // 1. Throughput: small JSON GET at 64 connections, with the CPU each proxy process used for it.
    const tput = {} as Systems<WrkResult>;
    const cpuPer1k = { direct: Number.NaN } as Systems<number>;
    const loaded = { gateway: 0, 'node-limit': 0 };
    const proxyPids = (system: System): number[] =>
      system === 'gateway'
        ? [gateway.child.pid!]
        : system === 'node-limit'
          ? [limit.child.pid!]
          : system === 'nginx'
            ? nginx.pids()
            : system === 'caddy'
              ? (caddy?.pids() ?? [])
              : [];
    for (const system of systems) {
      await wrk(urls[system], { connections: 64, seconds: sizes.warmup, headers: auth });
      const pids = proxyPids(system);
      const stopSampling = system === 'gateway' || system === 'node-limit' ? sampleRss(pids[0]!) : undefined;
      const cpu = cpuMeter(pids);
      tput[system] = await wrk(urls[system], { connections: 64, seconds: sizes.seconds, headers: auth });
      if (pids.length > 0) cpuPer1k[system] = (cpu() / tput[system].requests) * 1000;
      if (stopSampling) loaded[system as 'gateway' | 'node-limit'] = stopSampling();
    }
    checkErrors('throughput', tput);
    const tputRatio = tput.gateway.rps / tput['node-limit'].rps;
    rows.push({
      scenario: 'Small JSON GET, 64 connections (req/s)',
      ...cells((s) => tput[s]?.rps, 0),
      ratio: `${x(tputRatio)} node-limit, ${vsCaddy(tput.gateway.rps, tput.caddy?.rps)} (${x(tput.gateway.rps / tput.nginx.rps)} nginx, ${x(tput.gateway.rps / tput.direct.rps)} direct)`,
      target: caddy ? ">= 0.75x node-limit and >= Caddy's" : '>= 0.75x node-limit',
      met: tputRatio >= 0.75 && (!caddy || tput.gateway.rps >= tput.caddy.rps),
    });
    const cpuRatio = cpuPer1k.gateway / cpuPer1k['node-limit'];
    rows.push({
      scenario: 'CPU per 1,000 requests in that run (ms)',
      direct: '-',
      limit: fmt(cpuPer1k['node-limit'], 0),
      gateway: fmt(cpuPer1k.gateway, 0),
      nginx: fmt(cpuPer1k.nginx, 0),
      caddy: caddyFmt(cpuPer1k.caddy, 0),
      ratio: `${x(cpuRatio)} node-limit (${x(cpuPer1k.gateway / cpuPer1k.nginx)} nginx, ${vsCaddy(cpuPer1k.gateway, cpuPer1k.caddy)})`,
      target: '<= 1.2x node-limit',
      met: cpuRatio <= 1.2,
    });
    bars.push({ label: 'throughput vs node-limit', value: tputRatio, target: 0.75, higherIsBetter: true });
    bars.push({ label: 'CPU per request vs node-limit', value: cpuRatio, target: 1.3, higherIsBetter: false });
    if (caddy) bars.push({ label: 'throughput vs Caddy', value: tput.gateway.rps / tput.caddy.rps, target: 1, higherIsBetter: true });

    // 2. Latency at 4 connections.
    const lat = {} as Systems<WrkResult>;
    for (const system of systems) {
      await wrk(urls[system], { connections: 4, seconds: sizes.warmup, headers: auth });
      lat[system] = await wrk(urls[system], { connections: 4, seconds: sizes.seconds, headers: auth });
    }
    checkErrors('latency', lat);
    const p50Over = lat.gateway.p50ms - lat.direct.p50ms;
    const p50OverLimit = lat['node-limit'].p50ms - lat.direct.p50ms;
    const p99Over = lat.gateway.p99ms - lat.direct.p99ms;
    const p99OverLimit = lat['node-limit'].p99ms - lat.direct.p99ms;
    const plus = (ms: number) => `${ms >= 0 ? '+' : ''}${ms.toFixed(3)} ms`;
    rows.push({
      scenario: 'Latency p50, 4 connections (ms)',
      ...cells((s) => lat[s]?.p50ms, 3),
      ratio: `${plus(p50Over)} over direct (node-limit ${plus(p50OverLimit)})`,
      target: "<= node-limit's +0.25 ms",
      met: p50Over <= p50OverLimit + 0.25,
    });
    rows.push({
      scenario: 'Latency p99, 4 connections (ms)',
      ...cells((s) => lat[s]?.p99ms, 3),
      ratio: `${plus(p99Over)} over direct (node-limit ${plus(p99OverLimit)})`,
      target: '<= +2 ms',
      met: p99Over <= 2,
    });
    bars.push({ label: 'p50 latency vs node-limit', value: lat.gateway.p50ms / lat['node-limit'].p50ms, higherIsBetter: false });
    bars.push({ label: 'p99 latency vs node-limit', value: lat.gateway.p99ms / lat['node-limit'].p99ms, higherIsBetter: false });

    // 3. A sequential curl loop over a 20 ms RTT link: direct pays TCP + TLS per call. Each system
    // has its own relay (node-limit a second process whose upstream is its relay). Before 2b, whose
    // closed connections fill /proc/net/tcp (see there).
    const wanUrls: Systems<string> = {
      direct: `https://127.0.0.1:${relayDirect.port}${path}`,
      'node-limit': `${limitWan.url}/ws/prod${path}`,
      gateway: `${gateway.url}/ws/wan${path}`,
      nginx: `${nginxUrl}/ws/wan${path}`,
      caddy: `${caddyUrl}/ws/wan${path}`,
    };
    const wan = {} as Systems<number>;
    for (const system of systems) {
      await curl(['--cacert', pki.caFile, '-H', `Authorization: Bearer ${TOKEN}`, '-o', '/dev/null', wanUrls[system]]); // warm
      const started = performance.now();
      for (let i = 0; i < sizes.wanCalls; i++) {
        await curl(['--cacert', pki.caFile, '-H', `Authorization: Bearer ${TOKEN}`, '-o', '/dev/null', wanUrls[system]]);
      }
      wan[system] = (performance.now() - started) / sizes.wanCalls;
    }
    await limitWan.stop();
    const wanSpeedup = wan.direct / wan.gateway;
    rows.push({
      scenario: `curl loop over a ${2 * WAN_DELAY_MS} ms RTT link (ms per call)`,
      ...cells((s) => wan[s], 1),
      ratio: `${x(wanSpeedup)} faster than direct (node-limit ${x(wan.direct / wan['node-limit'])})`,
      target: '>= 2.2x faster',
      met: wanSpeedup >= 2.2,
    });
    bars.push({ label: 'WAN curl loop speed-up vs direct', value: wanSpeedup, target: 2.2, higherIsBetter: true });

    // 2b. A new connection per request (Connection: close), where the gateway looks up every
    // connection's user in /proc/net/tcp (loopback without inbound keys, Linux); and that lookup
    // alone, in this process, on a real loopback connection.
    // The gateway goes first: every closed connection leaves a TIME_WAIT row in that table for
    // 60 s, and the others' runs leave tens of thousands, which the gateway's lookups would then
    // walk (the lookup row below is measured before and after, with the table's size).
    const lookupBefore = await peerLookupMs(QUICK ? 5 : 50);
    const rowsBefore = procNetRows();
    const fresh = {} as Systems<WrkResult>;
    const closeEach = { ...auth, Connection: 'close' };
    for (const system of ['gateway', ...systems.filter((s) => s !== 'gateway')] as const) {
      fresh[system] = await wrk(urls[system], { connections: 4, seconds: sizes.seconds, headers: closeEach });
    }
    checkErrors('new connection per request', fresh);
    rows.push({
      scenario: 'New connection per request, 4 connections (req/s)',
      ...cells((s) => fresh[s]?.rps, 0),
      ratio: `${x(fresh.gateway.rps / fresh['node-limit'].rps)} node-limit`,
      target: '',
    });
    const lookupAfter = await peerLookupMs(QUICK ? 5 : 50);
    const rowsAfter = procNetRows();
    rows.push({
      scenario: `Same-user lookup of one loopback connection in /proc/net/tcp (ms, median of ${QUICK ? 5 : 50}; before / after those runs)`,
      direct: '-',
      limit: '-',
      gateway: lookupBefore === undefined || lookupAfter === undefined ? 'n/a (not Linux)' : `${fmt(lookupBefore, 2)} / ${fmt(lookupAfter, 2)}`,
      nginx: '-',
      caddy: '-',
      ratio: lookupBefore === undefined ? '' : `${rowsBefore} / ${rowsAfter} rows in /proc/net/tcp`,
      target: '',
    });

    // 4. 1 GiB download and upload, with the proxies' peak RSS (fresh processes for a clean peak).
    await gateway.stop();
    await limit.stop();
    const transferGateway = await startGateway(gwConfig, dir);
    const transferLimit = await startNodeLimit(upstream.port, pki.caFile);
    extra.push(transferGateway, transferLimit);
    const big = join(dir, 'upload.bin');
    writeFileSync(big, '');
    truncateSync(big, sizes.transferBytes);
    const mb = sizes.transferBytes / (1 << 20);
    const down = {} as Systems<number>;
    const up = {} as Systems<number>;
    const tUrls: Systems<string> = {
      direct: upstream.origin,
      'node-limit': `${transferLimit.url}/ws/prod`,
      gateway: `${transferGateway.url}/ws/prod`,
      nginx: `${nginxUrl}/ws/prod`,
      caddy: `${caddyUrl}/ws/prod`,
    };
    const receivedBefore = upstream.bytesReceived();
    // The client sends the same token to every system (node-limit, nginx and Caddy inject theirs); -w follows.
    const transferArgs = ['--cacert', pki.caFile, '-H', `Authorization: Bearer ${TOKEN}`, '-o', '/dev/null', '-w'];
    // The transfers' idle baseline: each proxy has answered a request, and nothing has moved yet.
    await getWithHeaders(`${tUrls.gateway}${path}`, {});
    await getWithHeaders(`${tUrls['node-limit']}${path}`, {});
    await new Promise((r) => setTimeout(r, 1000));
    const idleBeforeTransfer = memoryMiB(transferGateway.child.pid!).rss;
    // VmHWM from here on, not since start-up: writing 5 to clear_refs resets it to the current RSS.
    for (const pid of [transferGateway.child.pid!, transferLimit.child.pid!]) writeFileSync(`/proc/${pid}/clear_refs`, '5');
    // Each system moves the file `transferRuns` times in turn, and its median counts: one transfer
    // of a few seconds on two shared cores moves by a fifth between runs.
    const downRuns = Object.fromEntries(systems.map((s) => [s, [] as number[]])) as unknown as Systems<number[]>;
    const upRuns = Object.fromEntries(systems.map((s) => [s, [] as number[]])) as unknown as Systems<number[]>;
    for (let run = 0; run < sizes.transferRuns; run++) {
      for (const system of systems) {
        const d = await curl([...transferArgs, '%{time_total} %{size_download}', `${tUrls[system]}/big?bytes=${sizes.transferBytes}`]);
        if (Number(d.split(' ')[1]) !== sizes.transferBytes)
          throw new Error(`download: ${system} delivered ${d.split(' ')[1]} of ${sizes.transferBytes} bytes`);
        downRuns[system].push(mb / Number(d.split(' ')[0]));
        const u = await curl([...transferArgs, '%{time_total}', '-T', big, `${tUrls[system]}/upload`]);
        upRuns[system].push(mb / Number(u));
      }
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
    for (const system of systems) {
      down[system] = median(downRuns[system]);
      up[system] = median(upRuns[system]);
    }
    if (upstream.bytesReceived() - receivedBefore !== systems.length * sizes.transferRuns * sizes.transferBytes) {
      throw new Error(
        `upload: the upstream received ${upstream.bytesReceived() - receivedBefore} bytes, not ${systems.length * sizes.transferRuns} x ${sizes.transferBytes}`,
      );
    }
    const peak = memoryMiB(transferGateway.child.pid!).peak;
    const peakLimit = memoryMiB(transferLimit.child.pid!).peak;
    await transferGateway.stop();
    await transferLimit.stop();
    rmSync(big);
    const downRatio = down.gateway / down['node-limit'];
    const upRatio = up.gateway / up['node-limit'];
    const sizeLabel = mb >= 1024 ? `${mb / 1024} GiB` : `${mb} MiB`;
    rows.push({
      scenario: `${sizeLabel} download (MiB/s)`,
      ...cells((s) => down[s], 0),
      ratio: `${x(downRatio)} node-limit, ${vsCaddy(down.gateway, down.caddy)} (${x(down.gateway / down.direct)} direct; nginx ${x(down.nginx / down.direct)} direct${caddy ? `; Caddy ${x(down.caddy / down.direct)} direct` : ''})`,
      target: '>= 1.0x node-limit',
      met: downRatio >= 1,
    });
    rows.push({
      scenario: `${sizeLabel} upload (MiB/s)`,
      ...cells((s) => up[s], 0),
      ratio: `${x(upRatio)} node-limit, ${vsCaddy(up.gateway, up.caddy)} (${x(up.gateway / up.direct)} direct; nginx ${x(up.nginx / up.direct)} direct${caddy ? `; Caddy ${x(up.caddy / up.direct)} direct` : ''})`,
      target: '>= 1.0x node-limit',
      met: upRatio >= 1,
    });
    rows.push({
      scenario: 'Peak RSS over the transfers (MiB)',
      direct: '-',
      limit: fmt(peakLimit, 1),
      gateway: fmt(peak, 1),
      nginx: '-',
      caddy: '-',
      ratio: `+${fmt(peak - idleBeforeTransfer, 1)} MiB over the gateway's idle before them (${fmt(idleBeforeTransfer, 1)} MiB); ${x(peak / peakLimit)} node-limit`,
      target: '<= idle + 20 MB',
      met: peak - idleBeforeTransfer <= 20e6 / 2 ** 20,
    });
    bars.push({ label: 'download vs node-limit', value: downRatio, target: 1, higherIsBetter: true });
    bars.push({ label: 'upload vs node-limit', value: upRatio, target: 1, higherIsBetter: true });

    // 5. Cold start: process start to first proxied response (token fetched on the way), and
    // 500 concurrent requests on a cold cache.
    const coldConfig = `routes:\n${routeYaml('cold', upstream.port, `{ type: databricks-m2m, clientId: bench, clientSecret: bench-secret }`)}`;
    const coldPort = await freePort();
    const coldFile = join(dir, 'cold.yaml');
    writeFileSync(coldFile, coldConfig);
    const startedCold = performance.now();
    const coldChild = spawn(process.execPath, [BIN, '--config', coldFile, '--port', String(coldPort), '--no-profiles'], {
      stdio: 'ignore',
      env: { PATH: process.env.PATH ?? '', HOME: dir },
    });
    let coldMs: number;
    try {
      await waitFor(`http://127.0.0.1:${coldPort}/ws/cold${path}`, (s) => s === 200);
      coldMs = performance.now() - startedCold;
    } finally {
      coldChild.kill('SIGTERM');
    }
    const startedLimitCold = performance.now();
    const coldLimit = await startNodeLimit(upstream.port, pki.caFile);
    const limitColdMs = performance.now() - startedLimitCold;
    extra.push(coldLimit);
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
      limit: fmt(limitColdMs, 0),
      gateway: fmt(coldMs, 0),
      nginx: '-',
      caddy: '-',
      ratio: `${x(coldMs / limitColdMs)} node-limit; ${x(coldMs / refMs)} a bare Node HTTP server's start (${refMs.toFixed(0)} ms)`,
      target: '',
    });

    const fetchesBefore = upstream.tokenFetches();
    const cold2 = await startGateway(coldConfig, dir);
    extra.push(cold2);
    const burst = async (url: string) => {
      const started = performance.now();
      const statuses = await Promise.all(Array.from({ length: sizes.cold }, () => getWithHeaders(url, auth)));
      if (statuses.some((s) => s !== 200)) throw new Error(`cold burst: ${statuses.filter((s) => s !== 200).length} failed`);
      return performance.now() - started;
    };
    const burstGateway = await burst(`${cold2.url}/ws/cold${path}`);
    const fetches = upstream.tokenFetches() - fetchesBefore;
    await cold2.stop();
    // A fresh node-limit: no upstream connections yet, like the cold gateway (which also fetched a token).
    const freshLimit = await startNodeLimit(upstream.port, pki.caFile);
    extra.push(freshLimit);
    await coldLimit.stop();
    const burstLimit = await burst(`${freshLimit.url}/ws/prod${path}`);
    await freshLimit.stop();
    const burstDirect = await burst(urls.direct);
    const burstNginx = await burst(urls.nginx);
    const burstCaddy = caddy ? await burst(urls.caddy) : undefined;
    rows.push({
      scenario: `${sizes.cold} concurrent requests on a cold cache (ms)`,
      direct: fmt(burstDirect, 0),
      limit: fmt(burstLimit, 0),
      gateway: fmt(burstGateway, 0),
      nginx: fmt(burstNginx, 0),
      caddy: caddyFmt(burstCaddy, 0),
      ratio: `${x(burstGateway / burstLimit)} node-limit's time; ${fetches} token fetch${fetches === 1 ? '' : 'es'}`,
      target: '1 token fetch',
      met: fetches === 1,
    });

    // 6. Memory.
    rows.push({
      scenario: 'Idle RSS (MiB)',
      direct: '-',
      limit: fmt(idleLimit, 1),
      gateway: fmt(idleGateway, 1),
      nginx: fmt(idleNginx, 1),
      caddy: caddyFmt(idleCaddy, 1),
      ratio: `${x(idleGateway / idleLimit)} node-limit; ${x(idleGateway / idleRef)} a bare Node HTTP server (${idleRef.toFixed(1)} MiB)`,
      target: '< 80 MiB',
      met: idleGateway < 80,
    });
    rows.push({
      scenario: 'Loaded RSS, during the 64-connection run (MiB)',
      direct: '-',
      limit: fmt(loaded['node-limit'], 1),
      gateway: fmt(loaded.gateway, 1),
      nginx: '-',
      caddy: '-',
      ratio: `${x(loaded.gateway / loaded['node-limit'])} node-limit`,
      target: '',
    });

    // 7. Spark Connect (gRPC): a server stream and unary calls, direct (TLS) vs through the
    // gateway's h2c Spark Connect port. node-limit, nginx and Caddy are not set up for it: no column for them.
    const spark = await startFakeSpark(pki);
    const sparkPort = await freePort();
    const sparkGateway = await startGateway(`routes:\n${routeYaml('spark', spark.port)}    sparkConnect: { port: ${sparkPort} }\n`, dir);
    extra.push(sparkGateway);
    const grpcSizes = QUICK
      ? { count: 16, size: 64 << 10, seconds: 0.5, concurrency: 8 }
      : { count: 1024, size: 256 << 10, seconds: sizes.seconds, concurrency: 32 };
    const direct = directClient(spark.port, pki.ca);
    const through = gatewayClient(sparkPort);
    try {
      const d = await measureGrpc(direct, grpcSizes);
      const g = await measureGrpc(through, grpcSizes);
      answered.push('spark-connect');
      const grpcRow = (scenario: string, dv: number, gv: number, digits: number) =>
        rows.push({
          scenario,
          direct: fmt(dv, digits),
          limit: '-',
          gateway: fmt(gv, digits),
          nginx: '-',
          caddy: '-',
          ratio: `${x(gv / dv)} direct`,
          target: '',
        });
      grpcRow(`Spark Connect ExecutePlan stream (MB/s, ${grpcSizes.count} x ${grpcSizes.size >> 10} KiB)`, d.streamMBps, g.streamMBps, 0);
      grpcRow('Spark Connect ExecutePlan stream (messages/s)', d.messagesPerSecond, g.messagesPerSecond, 0);
      grpcRow(`Spark Connect AnalyzePlan (calls/s, ${grpcSizes.concurrency} concurrent)`, d.unaryPerSecond, g.unaryPerSecond, 0);
    } finally {
      direct.close();
      through.close();
      await sparkGateway.stop();
      await spark.close();
    }

    // 8. Lakebase (PostgreSQL): pgbench and a COPY, direct vs pgbouncer vs the gateway's door.
    postgresRows = await benchPostgres({ quick: QUICK, startGateway: (yaml) => startGateway(yaml, dir) });
    if (typeof postgresRows !== 'string') answered.push('postgres');

    // 9. Start-up and footprint of the CLI: median of `startRuns` runs, spawn to exit. The
    // node-limit column holds `node -e 0`, the floor of any Node program.
    const tokenFile = join(dir, 'token.yaml');
    writeFileSync(tokenFile, `routes:\n  prod:\n    host: https://127.0.0.1:${upstream.port}\n    credential: { type: pat, token: ${TOKEN} }\n`);
    const cliEnv = { PATH: process.env.PATH ?? '', HOME: dir };
    const start = startupMs(sizes.startRuns, {
      node: { args: ['-e', '0'], env: cliEnv },
      version: { args: [BIN, '--version'], env: cliEnv, check: (out) => /^\d+\.\d+\.\d+/.test(out) },
      help: { args: [BIN, '--help'], env: cliEnv, check: (out) => out.includes('Usage:') },
      token: { args: [BIN, 'token', 'prod', '--config', tokenFile, '--no-profiles'], env: cliEnv, check: (out) => out.includes(`"access_token":"${TOKEN}"`) },
    });
    const startRow = (scenario: string, ms: number, target: number) => {
      const ratio = ms / start.node!;
      rows.push({
        scenario,
        direct: '-',
        limit: fmt(start.node!, 0),
        gateway: fmt(ms, 0),
        nginx: '-',
        caddy: '-',
        ratio: `${x(ratio)} node -e 0`,
        target: `< ${target}x node -e 0`,
        met: ratio < target,
      });
      return ratio;
    };
    const runs = `median of ${sizes.startRuns}`;
    bars.push({
      label: '--version start-up vs node -e 0',
      value: startRow(`dbx-gateway --version (ms, ${runs})`, start.version!, 1.6),
      target: 1.6,
      higherIsBetter: false,
    });
    bars.push({
      label: '--help start-up vs node -e 0',
      value: startRow(`dbx-gateway --help (ms, ${runs})`, start.help!, 1.6),
      target: 1.6,
      higherIsBetter: false,
    });
    bars.push({
      label: 'token (PAT) vs node -e 0',
      value: startRow(`dbx-gateway token prod, PAT (ms, ${runs})`, start.token!, 2),
      target: 2,
      higherIsBetter: false,
    });

    // The gateway idle after its first azure-cli token (@azure/identity loaded, one az run).
    const az = installFakeAz({ delayMs: 0 });
    try {
      const azGateway = await startGateway(`routes:\n${routeYaml('prod', upstream.port, 'azure-cli')}`, dir, { PATH: az.path });
      extra.push(azGateway);
      const status = await getWithHeaders(`${azGateway.url}/ws/prod${path}`, {});
      if (status !== 200 || az.calls() !== 1) throw new Error(`azure-cli gateway answered ${status} after ${az.calls()} az runs`);
      // Two readings: 1 s after the token, while V8 still holds the young generation start-up
      // grew to (16 MiB committed), and at rest, after V8's memory reducer has run (it starts
      // about 8 s after the last full GC and gives the young generation back): what a gateway
      // left in the background of a session holds.
      const mb = () => (memoryMiB(azGateway.child.pid!).rss * 2 ** 20) / 1e6;
      await new Promise((r) => setTimeout(r, 1000));
      const azRssMb = mb();
      await new Promise((r) => setTimeout(r, QUICK ? 0 : 14_000));
      const azRestMb = mb();
      await azGateway.stop();
      rows.push({
        scenario: `Idle RSS after the first token, azure-cli (MB, 1 s / ${QUICK ? '1 s' : '15 s'})`,
        direct: '-',
        limit: '-',
        gateway: `${fmt(azRssMb, 1)} / ${fmt(azRestMb, 1)}`,
        nginx: '-',
        caddy: '-',
        ratio: `${((azRssMb * 1e6) / 2 ** 20).toFixed(1)} / ${((azRestMb * 1e6) / 2 ** 20).toFixed(1)} MiB`,
        target: '< 60 MB',
        met: azRssMb < 60,
      });
    } finally {
      rmSync(az.dir, { recursive: true, force: true });
    }
  } finally {
    await Promise.all([gateway.stop(), limit.stop(), limitWan.stop(), ...extra.map((g) => g.stop())]);
    await Promise.all([nginx.stop(), caddy?.stop()]);
    await Promise.all([
      upstream.close(),
      wanUpstream.close(),
      relayGateway.close(),
      relayDirect.close(),
      relayNginx.close(),
      relayLimit.close(),
      relayCaddy.close(),
    ]);
    rmSync(dir, { recursive: true, force: true });
  }

  printTable(rows);
  if (typeof postgresRows === 'string') say(`Postgres: ${postgresRows}`);
  else
    for (const r of postgresRows)
      say(`${r.scenario}: direct ${r.direct}, pgbouncer ${r.pgbouncer}, gateway ${r.gateway} (${r.ratio}; target ${r.target}${r.met ? ', met' : ', NOT MET'})`);
  if (QUICK) {
    say(
      `quick mode: every system answered in every scenario (${answered.join(', ')}${caddy ? '' : `; Caddy ${CADDY_SKIPPED}`}); figures above are not meaningful at this size`,
    );
    return;
  }
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}, ${execSyncSafe('nginx -v 2>&1')}, ${haveCaddy ? `Caddy ${execSyncSafe('caddy version')}` : 'Caddy: not installed'}, ${execSyncSafe('wrk -v 2>&1 | head -1')}`;
  mkdirSync(join(ROOT, 'docs'), { recursive: true });
  writeFileSync(join(ROOT, 'docs/benchmarks.svg'), ratioChart('dbx-gateway: ratios from one run (see docs/benchmarks.md)', bars));
  writeFileSync(join(ROOT, 'docs/benchmarks.md'), report(rows, machine, postgresRows));
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

/** Rows in /proc/net/tcp now (TIME_WAIT ones included), or '-' off Linux. */
function procNetRows(): number | string {
  try {
    return readFileSync('/proc/net/tcp', 'latin1').split('\n').length - 2;
  } catch {
    return '-';
  }
}

/** The gateway's per-connection same-user lookup (security/peer-user.ts) on a real loopback connection, median ms. */
async function peerLookupMs(times: number): Promise<number | undefined> {
  if (process.platform !== 'linux') return undefined;
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [socket] = await accepted;
  try {
    const ms: number[] = [];
    for (let i = 0; i < times; i++) {
      const started = performance.now();
      const [refusal] = await judgePeersAsync([socket]);
      ms.push(performance.now() - started);
      if (refusal) throw new Error(`the lookup refused this process's own connection: ${refusal.message}`);
    }
    return ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)];
  } finally {
    client.destroy();
    socket.destroy();
    server.close();
  }
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
  const header = ['scenario', 'direct', 'node-limit', 'gateway', 'nginx', 'Caddy', 'gateway ratio', 'target', 'met'];
  const lines = rows.map((r) => [
    r.scenario,
    r.direct,
    r.limit,
    r.gateway,
    r.nginx,
    r.caddy,
    r.ratio,
    r.target,
    r.met === undefined ? '' : r.met ? 'met' : 'NOT MET',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  for (const l of [header, ...lines]) say(l.map((c, i) => c.padEnd(widths[i]!)).join('  '));
}

function postgresTable(pg: PostgresRow[] | string): string {
  if (typeof pg === 'string') return `Lakebase (PostgreSQL): ${pg}.`;
  return [
    'Lakebase (PostgreSQL), against a real PostgreSQL server with TLS and password roles: **direct** is pgbench/psql',
    'over TLS (verify-full) with the current database credential; **pgbouncer** is pgbouncer in session mode (TLS',
    "verify-full to the server, one process as the postgres user); **gateway** is the route's Postgres port",
    '(plain locally, TLS to the server, the credential minted once and cached).',
    '',
    '| scenario | direct | pgbouncer | gateway | gateway ratio | target | met |',
    '|---|---:|---:|---:|---|---|---|',
    ...pg.map((r) => `| ${r.scenario} | ${r.direct} | ${r.pgbouncer} | ${r.gateway} | ${r.ratio} | ${r.target} | ${r.met ? 'met' : '**not met**'} |`),
  ].join('\n');
}

function report(rows: Row[], machine: string, pg: PostgresRow[] | string): string {
  const table = [
    '| scenario | direct | node-limit | gateway | nginx | Caddy | gateway ratio | target | met |',
    '|---|---:|---:|---:|---:|---:|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.direct} | ${r.limit} | ${r.gateway} | ${r.nginx} | ${r.caddy} | ${r.ratio} | ${r.target} | ${r.met === undefined ? '' : r.met ? 'met' : '**not met**'} |`,
    ),
  ].join('\n');
  return `# Benchmarks

Generated by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}; every figure is from the same run.

Machine: ${machine}.

Systems: **direct** is the client talking HTTPS to the fake upstream with a static token (a new
connection per curl call); **node-limit** is the least a Node reverse proxy can do, and the
reference the gateway's targets are set against: [bench/lib/node-limit.mjs](../bench/lib/node-limit.mjs),
about 60 lines of plain JavaScript in its own \`node\` process, an undici \`Pool\` (keep-alive 60 s,
the test CA) driven with \`pool.dispatch()\`, a fixed \`/ws/prod\` prefix strip, a static
Authorization header, hop-by-hop headers dropped both ways, both bodies streamed with
backpressure, and nothing else (no routing, policy, token cache, logs or metrics): what the
gateway costs beyond it is the gateway's own code; **gateway** is a dbx-gateway process (PAT
credential, logging at info to /dev/null); **nginx** is nginx (1 worker, the same single core the
gateway's event loop gets) proxying to the same upstream over HTTPS with keepalive and a static
Authorization header; **Caddy** is the Go reverse proxy a user could pick instead, set up the same
way ([bench/lib/caddy.ts](../bench/lib/caddy.ts)): one process with \`GOMAXPROCS=1\`, \`reverse_proxy\`
over HTTPS verified against the test CA, a static Authorization header, 128 idle upstream
connections kept, \`flush_interval -1\`, request bodies streamed, no admin endpoint, no access log
(nginx has none either). The upstream is a Node HTTPS server with fixed bodies. Load: wrk (1
thread), curl for transfers and the WAN loop, all on the same ${cpus().length} cores.

CPU per 1,000 requests is utime + stime of the proxy's processes (\`/proc/PID/stat\`, all nginx
processes, the one Caddy process) across the measured 64-connection wrk run, divided by the
requests wrk counted. Idle RSS is VmRSS of each proxy's processes (nginx's master and worker
together) once it has answered one request, before any load. For the start-up rows (spawn to
exit, median of ${sizes.startRuns}, \`HOME\` an empty directory, \`--no-profiles\`) the node-limit
column is \`node -e 0\`, the floor of any Node program. The azure-cli row is a
gateway whose route uses \`credential: azure-cli\` with a fake \`az\` on PATH, one request
through it (the first token), then VmRSS after 1 s idle and again at 15 s, once V8's memory
reducer has given back the young generation start-up grew (the target is judged at 1 s). The
transfers run ${sizes.transferRuns} times per system, in turn, and each system's median counts;
their peak is VmHWM of fresh gateway and node-limit processes, against the gateway's VmRSS after
one request and 1 s idle, just before the transfers.

${table}

${postgresTable(pg)}

![ratios](benchmarks.svg)

The WAN scenario runs each system through its own user-space TCP relay that delays every chunk by
${WAN_DELAY_MS} ms each way (${2 * WAN_DELAY_MS} ms RTT) between the proxy (or the direct client)
and the upstream.

Reproduce: \`npm run bench\` (a few minutes; installs wrk, nginx and caddy with apt-get when missing;
without caddy the Caddy column says it was skipped).

${readFileSync(join(ROOT, 'bench/ANALYSIS.md'), 'utf8')}`;
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exit(1);
});
