import { CONFIG_FLAGS } from '../config/flags.js';
import type { CliFlags, GatewayConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';
import { printErr } from './output.js';

// What every command shares: its flags as CliFlags, loading a configuration and the core.
// Only node:fs is loaded here; the rest is imported by the command that needs it, so `--version` and
// `--help` load no config, credential or server code (zod, yaml, hono, undici, pino are most of the
// start-up time).

/** What commander collects for the configuration options: CliFlags, with --no-profiles as `profiles: false`. */
export type ConfigOptions = Omit<CliFlags, 'noProfiles' | 'logLevel'> & { profiles?: boolean; quiet?: boolean; verbose?: boolean };

/** The flags a command was given (commander's other options, such as --output, are left out). */
export function toFlags(options: ConfigOptions): CliFlags {
  const flags: Record<string, unknown> = {};
  const given = options as Record<string, unknown>;
  for (const flag of CONFIG_FLAGS) {
    if (flag.kind === 'negated') {
      if (given[flag.commanderKey] === false) flags[flag.key] = true;
      continue;
    }
    const value = given[flag.key];
    if (value !== undefined && value !== false) flags[flag.key] = value;
  }
  if (options.quiet) flags.logLevel = 'warn';
  if (options.verbose) flags.logLevel = 'debug';
  return flags as CliFlags;
}

/** Runs a setup step; a ConfigError is printed for the user and becomes undefined (exit 2). */
export async function orConfigError<T>(step: () => T | Promise<T>): Promise<T | undefined> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof ConfigError) {
      printErr(`dbx-gateway: ${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}

export const load = (flags: CliFlags) => orConfigError(async () => (await import('../config/load.js')).loadConfig({ flags }));
export const createCore = (config: GatewayConfig) => orConfigError(async () => (await import('../runtime/core.js')).createGatewayCore(config));
