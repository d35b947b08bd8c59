import { mkdtempSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import type { CliFlags, GatewayConfig } from '../../src/config/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { type RunningGateway, type StartOptions, startGateway } from '../../src/runtime/server.js';
import { type FakeUpstream, type Handler, startFakeUpstream } from './fake-upstream.js';
import { testPki } from './tls.js';
import { within } from './wait.js';

export interface TestGateway extends RunningGateway {
  /** Every log line written so far, parsed. */
  logs: Array<Record<string, unknown>>;
  /** The raw log text (for leak checks). */
  logText(): string;
}

export interface TestGatewayOptions {
  flags?: CliFlags;
  /**
   * The gateway's environment; empty by default, never the test process's. @azure/identity runs
   * `az` from process.env.PATH whatever this says: a test with a fake az puts it there too.
   */
  env?: NodeJS.ProcessEnv;
  /** Adjust the loaded config (caFile, timeouts) before starting. */
  configure?: (config: GatewayConfig) => void;
  now?: () => number;
  tokenFetchTimeoutMs?: number;
  /** The token cache's backoff after a failed fetch (short, so a background retry comes soon). */
  tokenRetry?: { baseMs: number; maxMs: number };
  /** watchRoutes' SCIM Me timeout and upstream re-check backoff. */
  routeWatch?: StartOptions['routeWatch'];
}

/** A real gateway on 127.0.0.1:0 with logs captured in memory. */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const env = options.env ?? {};
  // Profiles are opt-in here, so a developer's own ~/.databrickscfg never leaks into a test.
  const config = loadConfig({ flags: { port: '0', noProfiles: true, ...options.flags }, env, cwd: '/nonexistent-dir-for-tests' });
  options.configure?.(config);
  let text = '';
  const logs: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = createLogger({ level: 'debug', stream, pretty: false });
  const gateway = await startGateway(config, {
    logger,
    env,
    ...(options.now ? { now: options.now } : {}),
    ...(options.tokenFetchTimeoutMs ? { tokenFetchTimeoutMs: options.tokenFetchTimeoutMs } : {}),
    ...(options.tokenRetry ? { tokenRetry: options.tokenRetry } : {}),
    ...(options.routeWatch ? { routeWatch: options.routeWatch } : {}),
  });
  return Object.assign(gateway, { logs, logText: () => text });
}

/** Sets caFile on every route (the fake upstreams use the test CA). */
export function trustCa(caFile: string) {
  return (config: GatewayConfig) => {
    for (const r of config.routes) r.caFile = caFile;
  };
}

/** A gateway with one PAT route "prod" in front of `upstream` (trusting the test CA); `configure` adjusts limits etc. */
export function startPatGateway(upstream: { url: URL }, pat: string, configure?: (config: GatewayConfig) => void): Promise<TestGateway> {
  return startTestGateway({
    flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'pat' },
    env: { DATABRICKS_TOKEN: pat },
    configure: (config) => {
      trustCa(testPki().caFile)(config);
      configure?.(config);
    },
  });
}

/** A gateway from a YAML config text (written to a temp file), trusting the test CA. */
export function startYamlGateway(yaml: string, options: Omit<TestGatewayOptions, 'flags'> & { flags?: CliFlags } = {}): Promise<TestGateway> {
  const file = join(mkdtempSync(join(tmpdir(), 'dbxgw-yaml-')), 'dbx-gateway.yaml');
  writeFileSync(file, yaml);
  return startTestGateway({
    ...options,
    flags: { config: file, ...options.flags },
    configure: (config) => {
      trustCa(testPki().caFile)(config);
      options.configure?.(config);
    },
  });
}

/** The token usePatGateway's gateway sends, unless told another. */
export const TEST_PAT = 'dapi0123456789abcdef0123456789abcdef';

/** What usePatGateway can put in front of the gateway: a FakeUpstream, or anything else with a URL that closes. */
export interface UpstreamLike {
  url: URL;
  close(): Promise<void>;
}

export interface PatGatewayOptions<U extends UpstreamLike> {
  /** The PAT the gateway sends (DATABRICKS_TOKEN); TEST_PAT by default. */
  pat?: string;
  /** The fake upstream's handler (startFakeUpstream's echo by default). */
  handler?: Handler;
  /** Another upstream than a FakeUpstream (a raw TLS one, say); `handler` is then ignored. */
  upstream?: () => Promise<U>;
  /**
   * The gateway's YAML config for this upstream (routes with `credential: pat` send the PAT); by
   * default one route "prod" from `--workspace prod=UPSTREAM --credential pat`.
   */
  yaml?: (upstream: U) => string;
  /** Adjusts the loaded config (limits, route flags) before the gateway starts. */
  configure?: (config: GatewayConfig) => void;
}

/** Filled in by usePatGateway's before hook: read it inside tests and hooks, never at describe time. */
export interface PatGatewaySetup<U extends UpstreamLike> {
  readonly gw: TestGateway;
  readonly upstream: U;
}

/**
 * The setup most proxy and security suites share: registers a before hook that starts a fake
 * upstream and a PAT gateway in front of it (trusting the test CA), and an after hook that shuts
 * both down. Call it in a describe body; the returned object's `gw` and `upstream` are there from
 * the first test on.
 */
export function usePatGateway<U extends UpstreamLike = FakeUpstream>(options: PatGatewayOptions<U> = {}): PatGatewaySetup<U> {
  let gw: TestGateway | undefined;
  let upstream: U | undefined;
  before(async () => {
    upstream = options.upstream ? await options.upstream() : ((await startFakeUpstream(options.handler)) as unknown as U);
    const pat = options.pat ?? TEST_PAT;
    gw = options.yaml
      ? await startYamlGateway(options.yaml(upstream), { env: { DATABRICKS_TOKEN: pat }, ...(options.configure ? { configure: options.configure } : {}) })
      : await startPatGateway(upstream, pat, options.configure);
  });
  after(async () => {
    await gw?.shutdown(100);
    await upstream?.close();
  });
  const started = <T>(value: T | undefined, name: string): T => {
    if (value === undefined) throw new Error(`usePatGateway: ${name} is set by the before hook; read it inside a test`);
    return value;
  };
  return {
    get gw() {
      return started(gw, 'gw');
    },
    get upstream() {
      return started(upstream, 'upstream');
    },
  };
}

/**
 * Resolves once `server` has answered and closed `count` more requests (the gateway writes a
 * request's log line and metrics when its response closes): create it before sending them.
 */
export function responsesClosed(server: Server, count: number, timeoutMs = 5_000): Promise<void> {
  let left = count;
  let onRequest: (req: IncomingMessage, res: ServerResponse) => void = () => {};
  const closed = new Promise<void>((resolve) => {
    onRequest = (_req, res) => {
      res.once('close', () => {
        if (--left === 0) resolve();
      });
    };
    server.on('request', onRequest);
  });
  return within(closed, { timeoutMs, what: () => `${count} responses to close on the gateway (${count - left} did)` }).finally(() =>
    server.off('request', onRequest),
  );
}

/**
 * Resolves once `server` has closed `count` more client connections on its side (the gateway frees a
 * connection slot then): create it before connecting.
 */
export function connectionsClosed(server: Server, count: number, timeoutMs = 5_000): Promise<void> {
  let left = count;
  let onConnection: (socket: Socket) => void = () => {};
  const closed = new Promise<void>((resolve) => {
    onConnection = (socket) => {
      socket.once('close', () => {
        if (--left === 0) resolve();
      });
    };
    server.on('connection', onConnection);
  });
  return within(closed, { timeoutMs, what: () => `${count} client connections to be closed by the gateway (${count - left} were)` }).finally(() =>
    server.off('connection', onConnection),
  );
}
