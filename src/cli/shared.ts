import { readFileSync } from 'node:fs';
import type { CliFlags, GatewayConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';

// What every command shares: the configuration options, loading a configuration and the version.
// Only node:fs is loaded here; the rest is imported by the command that needs it, so `--version` and
// `--help` load no config, credential or server code (zod, yaml, hono, undici, pino are most of the
// start-up time).

/** What commander collects for the options every configuration-reading command takes. */
export interface ConfigOptions {
  config?: string;
  host?: string;
  port?: string;
  workspace?: string[];
  account?: string[];
  credential?: string;
  demo?: boolean;
  profiles?: boolean;
  metadataService?: boolean;
  allowUnauthenticatedNetwork?: boolean;
  socket?: string;
  tls?: boolean;
  logFormat?: string;
  profile?: string;
}

export function toFlags(o: ConfigOptions): CliFlags {
  return {
    ...(o.config !== undefined ? { config: o.config } : {}),
    ...(o.host !== undefined ? { host: o.host } : {}),
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.workspace ? { workspace: o.workspace } : {}),
    ...(o.account ? { account: o.account } : {}),
    ...(o.credential !== undefined ? { credential: o.credential } : {}),
    ...(o.demo ? { demo: true } : {}),
    ...(o.profiles === false ? { noProfiles: true } : {}),
    ...(o.metadataService ? { metadataService: true } : {}),
    ...(o.allowUnauthenticatedNetwork ? { allowUnauthenticatedNetwork: true } : {}),
    ...(o.socket !== undefined ? { socket: o.socket } : {}),
    ...(o.tls ? { tls: true } : {}),
    ...(o.logFormat !== undefined ? { logFormat: o.logFormat } : {}),
    ...(o.profile !== undefined ? { profile: o.profile } : {}),
  };
}

/** Runs a setup step; a ConfigError is printed for the user and becomes undefined (exit 2). */
export async function orConfigError<T>(step: () => T | Promise<T>): Promise<T | undefined> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dbx-gateway: ${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}

export const load = (flags: CliFlags) => orConfigError(async () => (await import('../config/load.js')).loadConfig({ flags }));
export const createCore = (config: GatewayConfig) => orConfigError(async () => (await import('../runtime/core.js')).createGatewayCore(config));

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
