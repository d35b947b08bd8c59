import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CREDENTIAL_TYPES, CredentialSetupError, createCredential } from '../auth/credentials/index.js';
import { isLoopbackHost, OPEN_LISTENER_FIX } from '../security/loopback.js';
import { localTlsDir } from './paths.js';
import { type FileConfig, LOG_LEVELS } from './schema.js';
import type { CliFlags, GatewayConfig, InboundKey, RouteConfig } from './types.js';

// The checks across settings, after each source is read: keys, origins, ports, exposure, TLS, log
// settings and credential settings. Each adds to `problems`, so one report says everything.

const KEY_HASH = /^sha256:([0-9a-f]{64})$/;

/** Inbound keys as stored: only `sha256:<hex>` hashes, optionally limited to some routes. */
export function parseInboundKeys(
  raw: Record<string, string | { hash: string; routes?: string[] | undefined }>,
  routeNames: string[],
  problems: string[],
): InboundKey[] {
  const keys: InboundKey[] = [];
  for (const [name, value] of Object.entries(raw)) {
    const spec = typeof value === 'string' ? { hash: value } : value;
    const m = KEY_HASH.exec(spec.hash.trim().toLowerCase());
    if (!m) {
      problems.push(
        `inboundKeys.${name}: expected "sha256:" and 64 hex digits (the key itself is never stored); create keys with dbx-gateway keys add ${name}`,
      );
      continue;
    }
    for (const r of spec.routes ?? []) {
      if (!routeNames.includes(r)) problems.push(`inboundKeys.${name}.routes: no route named ${r}; routes: ${routeNames.join(', ') || 'none'}`);
    }
    keys.push({ name, sha256: Buffer.from(m[1]!, 'hex'), ...(spec.routes ? { routes: spec.routes } : {}) });
  }
  return keys;
}

/** Browser origins as the Origin header carries them: scheme://host[:port], nothing else. */
export function parseOrigins(raw: string[], problems: string[]): string[] {
  return raw.flatMap((text, i) => {
    try {
      const url = new URL(text);
      if (url.origin === 'null' || url.pathname !== '/' || url.search || url.username) throw new Error('not an origin');
      return [url.origin];
    } catch {
      problems.push(`allowedOrigins[${i}]: "${text}" is not an origin; write scheme://host[:port], e.g. http://localhost:3000`);
      return [];
    }
  });
}

/**
 * Host names accepted besides the loopback ones, each an exact name: the Host check compares
 * exactly, and the local CA's name constraints permit exactly these names (a wildcard there
 * would let its key vouch for every host under it).
 */
export function parseAllowedHosts(raw: string[], problems: string[]): string[] {
  return raw.filter((host, i) => {
    if (!host.includes('*')) return true;
    const example = /^\*\.[^*]+$/.test(host) ? `dev${host.slice(1)}` : 'dev.example.com';
    problems.push(`allowedHosts[${i}]: "${host}" has a wildcard; allowedHosts takes exact host names only: list each name clients use, e.g. ${example}`);
    return false;
  });
}

/**
 * On with --metadata-service or `metadataService:` in the file. The secret in the URL is random per
 * start unless DBX_GATEWAY_METADATA_SECRET or `metadataService.secret` fixes it.
 */
export function metadataServiceConfig(flags: CliFlags, file: FileConfig, env: NodeJS.ProcessEnv): Pick<GatewayConfig, 'metadataService'> {
  const fromFile = file.metadataService;
  if (!flags.metadataService && !fromFile) return {};
  const configured = env.DBX_GATEWAY_METADATA_SECRET || (typeof fromFile === 'object' ? fromFile.secret : undefined);
  return { metadataService: configured ? { secret: configured, generated: false } : { secret: randomUUID(), generated: true } };
}

/**
 * `listen.tls: auto` (or --tls): the gateway's own CA in the config dir; `{ certFile, keyFile }`:
 * the operator's certificate, read at start so a bad file is a config error, not a TLS failure.
 */
export function listenTls(flags: CliFlags, file: FileConfig, env: NodeJS.ProcessEnv, cwd: string, problems: string[]): Pick<GatewayConfig['listen'], 'tls'> {
  const setting = flags.tls ? 'auto' : file.listen?.tls;
  if (setting === undefined) return {};
  if (setting === 'auto') {
    const dir = localTlsDir(env);
    if (!dir) {
      problems.push(
        'listen.tls: auto keeps its CA in the config directory, and there is no home directory (set HOME, or APPDATA on Windows, or XDG_CONFIG_HOME)',
      );
      return {};
    }
    return { tls: { mode: 'auto', dir } };
  }
  const certFile = resolve(cwd, setting.certFile);
  const keyFile = resolve(cwd, setting.keyFile);
  for (const [field, path] of [
    ['certFile', certFile],
    ['keyFile', keyFile],
  ] as const) {
    if (!existsSync(path))
      problems.push(`listen.tls.${field}: ${path} does not exist; give the PEM file of your certificate and its key, or use listen.tls: auto`);
  }
  return { tls: { mode: 'files', certFile, keyFile } };
}

/** A port from `origin` (--port or DBX_GATEWAY_PORT), which the problem names. */
export function parsePort(text: string, problems: string[], origin = '--port'): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < 0 || n > 65535) {
    problems.push(`${origin}: "${text}" is not a port number; use 1-65535 (or 0 for any free port)`);
    return 0;
  }
  return n;
}

export function checkPortClashes(routes: RouteConfig[], problems: string[], mainPort?: number, mainField = 'listen.port'): void {
  // Every port a route opens: its own (HTTP) and its Spark Connect (HTTP/2) listener.
  const ports = routes.flatMap((r) => [
    ...(r.port !== undefined ? [{ port: r.port, field: `routes.${r.name}.port`, owner: `route ${r.name}` }] : []),
    ...(r.sparkConnect ? [{ port: r.sparkConnect.port, field: `routes.${r.name}.sparkConnect.port`, owner: `route ${r.name}'s Spark Connect` }] : []),
    ...(r.postgres ? [{ port: r.postgres.port, field: `routes.${r.name}.postgres.port`, owner: `route ${r.name}'s Postgres listener` }] : []),
  ]);
  const seen = new Map<number, string>();
  for (const { port, field, owner } of ports) {
    // 0 asks for any free port: many listeners may ask for it.
    if (port === 0) continue;
    if (port === mainPort) problems.push(`${field}: ${port} is the main port (${mainField}); give it another port, e.g. ${mainPort + 1}`);
    const other = seen.get(port);
    if (other) problems.push(`${field}: ${port} is already used by ${other}; give each listener its own port`);
    seen.set(port, owner);
  }
}

/** Every TCP listener obeys the loopback-or-keys rule: the main one, and the per-route ports in socket mode too. */
export function checkExposure(
  host: string,
  socket: string | undefined,
  routes: readonly RouteConfig[],
  keyed: boolean,
  allowed: boolean,
  problems: string[],
  hostField = 'listen.host',
): void {
  const tcp = socket === undefined || routes.some((r) => r.port !== undefined || r.sparkConnect !== undefined || r.postgres !== undefined);
  if (tcp && !isLoopbackHost(host) && !keyed && !allowed) {
    problems.push(
      `${hostField}: ${host} is reachable from other machines, and anyone who reaches it would act as your Databricks identity; ${OPEN_LISTENER_FIX}`,
    );
  }
}

/**
 * With inbound keys, a Postgres client's password is the key, and a password may only cross TLS
 * (a cleartext password over a plain socket is readable by anyone on the path).
 */
export function checkPostgresKeys(routes: readonly RouteConfig[], keyed: boolean, tls: boolean, problems: string[]): void {
  if (!keyed || tls) return;
  for (const r of routes) {
    if (r.postgres)
      problems.push(
        `routes.${r.name}.postgres: with inboundKeys, Postgres clients send their key as the password, which must travel over TLS; set listen.tls: auto (or --tls) and connect with sslmode=require`,
      );
  }
}

/** logLevel (-q/-v) and logFormat from the flag, the environment or the file. */
export function logSettings(flags: CliFlags, file: FileConfig, env: NodeJS.ProcessEnv, problems: string[]): Pick<GatewayConfig, 'logLevel' | 'logFormat'> {
  const logLevel = flags.logLevel ?? env.DBX_GATEWAY_LOG_LEVEL ?? file.logLevel ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`DBX_GATEWAY_LOG_LEVEL: "${logLevel}" is not a log level; use one of ${LOG_LEVELS.join(', ')}`);
  }
  const logFormat = flags.logFormat ?? env.DBX_GATEWAY_LOG_FORMAT ?? file.logFormat;
  if (logFormat !== undefined && logFormat !== 'text' && logFormat !== 'json') {
    const from = flags.logFormat ? '--log-format' : env.DBX_GATEWAY_LOG_FORMAT ? 'DBX_GATEWAY_LOG_FORMAT' : 'logFormat';
    problems.push(`${from}: "${logFormat}" is not a log format; use text (one line per event) or json`);
  }
  return { logLevel, ...(logFormat === 'text' || logFormat === 'json' ? { logFormat } : {}) };
}

/**
 * Credential settings in the same pass as everything else, so one report lists them all (a
 * profile the user did not ask for is served as unavailable instead: createGatewayCore warns).
 * Each problem is said once, blamed where the credential was set: the shared default (`--credential`
 * or the file's `credential`) once for all its routes, and an unknown type not again (toCredentialSpec
 * reported it where it was read).
 */
export function checkCredentials(
  routes: Iterable<RouteConfig>,
  env: NodeJS.ProcessEnv,
  problems: string[],
  shared?: { spec: RouteConfig['credential']; field: string },
): void {
  const found = new Map<string, string[]>();
  for (const route of routes) {
    if (route.lenient || !CREDENTIAL_TYPES.includes(route.credential.type)) continue;
    try {
      createCredential(route.credential, { env, route });
    } catch (err) {
      if (!(err instanceof CredentialSetupError)) throw err;
      const field =
        route.credential === shared?.spec
          ? shared.field
          : route.source.startsWith('--')
            ? `${route.source} ${route.name}: credential`
            : route.profile !== undefined && !route.source.includes('(profile ')
              ? `${route.source}: credential`
              : `routes.${route.name}.credential (${route.source})`;
      const key = `${field}\0${err.message}`;
      found.set(key, [...(found.get(key) ?? []), route.name]);
    }
  }
  for (const [key, names] of found) {
    const [field, message] = key.split('\0') as [string, string];
    const whose = field === shared?.field ? ` (route${names.length === 1 ? '' : 's'} ${names.join(', ')})` : '';
    problems.push(`${field}${whose}: ${message}`);
  }
}

/**
 * Each route's caFile (or --ca-file) read now, so a wrong path or a DER file is a config error
 * naming the route, not a TLS failure at its first request.
 */
export function checkCaFiles(routes: Iterable<RouteConfig>, problems: string[]): void {
  for (const route of routes) {
    if (route.caFile === undefined) continue;
    const field = route.source.startsWith('--') ? `--ca-file ${route.caFile} (route ${route.name})` : `routes.${route.name}.caFile`;
    let text: string;
    try {
      text = readFileSync(route.caFile, 'utf8');
    } catch (err) {
      problems.push(`${field}: cannot read ${route.caFile} (${(err as NodeJS.ErrnoException).code ?? 'error'}); give the path of the root CA's PEM file`);
      continue;
    }
    if (!text.includes('-----BEGIN CERTIFICATE-----')) {
      problems.push(`${field}: ${route.caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----); export the root CA as Base-64 (PEM), not DER`);
    }
  }
}
