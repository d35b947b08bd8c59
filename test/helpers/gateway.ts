import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/load.js';
import type { CliFlags, GatewayConfig } from '../../src/config/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { type RunningGateway, startGateway } from '../../src/runtime/server.js';
import { testPki } from './tls.js';

export interface TestGateway extends RunningGateway {
  /** Every log line written so far, parsed. */
  logs: Array<Record<string, unknown>>;
  /** The raw log text (for leak checks). */
  logText(): string;
}

export interface TestGatewayOptions {
  flags?: CliFlags;
  env?: NodeJS.ProcessEnv;
  /** Adjust the loaded config (caFile, timeouts) before starting. */
  configure?: (config: GatewayConfig) => void;
  now?: () => number;
  tokenFetchTimeoutMs?: number;
}

/** A real gateway on 127.0.0.1:0 with logs captured in memory. */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const env = options.env ?? process.env;
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
