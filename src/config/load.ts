import { resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { EnvValues } from './env-values.js';
import { assembleRoutes, toCredentialSpec, wantsProfiles } from './routes.js';
import { findConfigFile, readConfigFile, readProfiles } from './sources.js';
import { DEFAULT_LIMITS, DEFAULT_LISTEN, DEFAULT_TIMEOUTS, type GatewayConfig, type LoadConfigOptions } from './types.js';
import {
  checkCaFiles,
  checkCredentials,
  checkExposure,
  checkPortClashes,
  checkPostgresKeys,
  listenTls,
  logSettings,
  metadataServiceConfig,
  parseAllowedHosts,
  parseInboundKeys,
  parseOrigins,
  parsePort,
} from './validation.js';

/**
 * The configuration from flags, environment, config file and ~/.databrickscfg (sources.ts), routes
 * assembled from all three (routes.ts), checked across settings (validation.ts). Every problem is
 * collected in one pass and thrown as one ConfigError, so a user fixes them all at once.
 */
export function loadConfig(options: LoadConfigOptions = {}): GatewayConfig {
  const flags = options.flags ?? {};
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const problems: string[] = [];
  const warnings: string[] = [];

  const configFile = findConfigFile(flags, env, cwd, problems);
  const envValues = new EnvValues();
  const file = configFile ? readConfigFile(configFile, env, problems, envValues) : {};
  const credentialField = flags.credential !== undefined ? '--credential' : 'credential';
  const defaultCredential = toCredentialSpec(flags.credential ?? file.credential ?? 'default', credentialField, problems);
  const profiles = wantsProfiles(flags, file, env) ? readProfiles(env, problems) : undefined;
  const routes = assembleRoutes({ flags, file, env, configFile, profiles, defaultCredential }, problems, warnings);

  const host = flags.host ?? env.DBX_GATEWAY_HOST ?? file.listen?.host ?? DEFAULT_LISTEN.host;
  const hostField = flags.host !== undefined ? '--host' : env.DBX_GATEWAY_HOST !== undefined ? 'DBX_GATEWAY_HOST' : 'listen.host';
  const portText = flags.port ?? env.DBX_GATEWAY_PORT;
  const portField = flags.port !== undefined ? '--port' : env.DBX_GATEWAY_PORT !== undefined ? 'DBX_GATEWAY_PORT' : 'listen.port';
  const port = portText === undefined ? (file.listen?.port ?? DEFAULT_LISTEN.port) : parsePort(portText, problems, portField);
  checkPortClashes([...routes.values()], problems, port === 0 ? undefined : port, portField);
  const inboundKeys = parseInboundKeys(file.inboundKeys ?? {}, [...routes.keys()], problems);
  const allowedOrigins = parseOrigins(file.allowedOrigins ?? [], problems);
  const allowedHosts = parseAllowedHosts(file.allowedHosts ?? [], problems);
  const allowUnauthenticatedNetwork = flags.allowUnauthenticatedNetwork === true;
  const socket = flags.socket ?? env.DBX_GATEWAY_SOCKET;
  checkExposure(host, socket, [...routes.values()], inboundKeys.length > 0, allowUnauthenticatedNetwork, problems, hostField);
  const tls = listenTls(flags, file, env, cwd, problems);
  checkPostgresKeys([...routes.values()], inboundKeys.length > 0, tls.tls !== undefined, problems);
  const log = logSettings(flags, file, env, problems);
  checkCredentials(routes.values(), env, problems, { spec: defaultCredential, field: credentialField });
  checkCaFiles(routes.values(), problems);
  // Messages may echo a setting's value; one from ${VAR} is a secret by intent.
  if (problems.length > 0)
    throw new ConfigError(
      problems.map((p) => envValues.mask(p)),
      configFile,
    );

  return {
    listen: { host, port, ...tls },
    ...(socket !== undefined ? { socket: resolve(cwd, socket) } : {}),
    routes: [...routes.values()],
    allowedHosts,
    allowedOrigins,
    inboundKeys,
    limits: withDefaults(DEFAULT_LIMITS, file.limits),
    allowUnauthenticatedNetwork,
    timeouts: withDefaults(DEFAULT_TIMEOUTS, file.timeouts),
    demo: flags.demo === true || routes.size === 0,
    ...(configFile ? { configFile } : {}),
    ...log,
    ...metadataServiceConfig(flags, file, env),
    warnings: warnings.map((w) => envValues.mask(w)),
    envValues,
  };
}

/** The defaults with every setting the file gives (a setting left out keeps its default). */
function withDefaults<T extends object>(defaults: T, given: { [K in keyof T]?: T[K] | undefined } | undefined): T {
  const merged = { ...defaults };
  for (const [key, value] of Object.entries(given ?? {})) {
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  }
  return merged;
}
