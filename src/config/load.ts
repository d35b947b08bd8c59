import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { CfgSyntaxError, type DatabricksCfg, readDatabricksCfg } from './databrickscfg.js';
import { localTlsDir } from './paths.js';
import { profileRoute } from './profiles.js';
import { CREDENTIAL_TYPES, CredentialSetupError, createCredential } from '../auth/credentials/index.js';
import { parseProxyUrl, withoutCredentials } from '../proxy/egress-proxy.js';
import { isLoopbackHost, OPEN_LISTENER_FIX } from '../security/loopback.js';
import { fileConfigSchema, type FileConfig, type FileRoute, LOG_LEVELS, ROUTE_NAME_PATTERN, routeSchema } from './schema.js';
import { closest } from './suggest.js';
import { errorMessage } from '../errors.js';
import {
  type CredentialSpec,
  DEFAULT_LIMITS,
  DEFAULT_LISTEN,
  type InboundKey,
  DEFAULT_TIMEOUTS,
  type GatewayConfig,
  type RouteConfig,
} from './types.js';

export const DEFAULT_CONFIG_FILE = 'dbx-gateway.yaml';
export const DEFAULT_ACCOUNTS_HOST = 'https://accounts.azuredatabricks.net';

/** What the command line contributed; every field optional so tests can build it by hand. */
export interface CliFlags {
  config?: string;
  host?: string;
  port?: string;
  workspace?: string[];
  account?: string[];
  credential?: string;
  demo?: boolean;
  /** Serve the Databricks SDK metadata service at /metadata/SECRET. */
  metadataService?: boolean;
  /** Listen beyond loopback without inbound keys (logged as a warning). */
  allowUnauthenticatedNetwork?: boolean;
  /** Serve the main listener on this unix socket (mode 0600) instead of TCP. */
  socket?: string;
  /** Skip ~/.databrickscfg profiles (routes that name a profile still read it). */
  noProfiles?: boolean;
  /** HTTPS on every listener with the gateway's own local CA (listen.tls: auto). */
  tls?: boolean;
  /** text (one line per event) or json; default: text on a terminal. */
  logFormat?: string;
  /** Serve this ~/.databrickscfg profile only (else DATABRICKS_CONFIG_PROFILE, else every profile). */
  profile?: string;
}

export interface LoadConfigOptions {
  flags?: CliFlags;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Every problem found in one pass, so a user fixes them all at once (oauth2-proxy style). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly problems: string[],
    readonly file?: string,
  ) {
    super(
      `invalid configuration${file ? ` (${file})` : ''}:\n${problems.map((p) => `  ${p}`).join('\n')}`,
    );
  }
}

export function loadConfig(options: LoadConfigOptions = {}): GatewayConfig {
  const flags = options.flags ?? {};
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const problems: string[] = [];

  const configFile = findConfigFile(flags, env, cwd, problems);
  const file = configFile ? readConfigFile(configFile, env, problems) : {};

  const defaultCredential = toCredentialSpec(
    flags.credential ?? file.credential ?? 'default',
    flags.credential !== undefined ? '--credential' : 'credential',
    problems,
  );
  const routes = new Map<string, RouteConfig>();
  const warnings: string[] = [];
  const fileRoutes = Object.entries(file.routes ?? {});
  // --profile NAME (or DATABRICKS_CONFIG_PROFILE, as the Databricks CLI reads it) picks one profile.
  const chosen = flags.profile ?? (flags.noProfiles ? undefined : env.DATABRICKS_CONFIG_PROFILE);
  const wantsProfiles = !flags.noProfiles || chosen !== undefined || fileRoutes.some(([, r]) => r.profile !== undefined);
  const cfg = wantsProfiles ? readProfiles(env, problems) : undefined;
  if (chosen !== undefined) {
    const keys = cfg?.profiles.get(chosen);
    const known = [...(cfg?.profiles.keys() ?? [])].filter((n) => cfg?.profiles.get(n)?.host);
    const where = flags.profile !== undefined ? '--profile' : 'DATABRICKS_CONFIG_PROFILE';
    if (!keys?.host) {
      const guess = closest(chosen, known);
      problems.push(`${where} ${chosen}: no such profile with a host in ~/.databrickscfg${guess ? `; did you mean ${guess}?` : ''} (profiles: ${known.join(', ') || 'none'})`);
    } else {
      // Asked for by name: its problems are configuration errors, not skipped warnings.
      const { route, problem } = profileRoute(chosen, cfg!, (host) => parseProfileHost(host));
      if (route) routes.set(chosen, route);
      else if (problem) problems.push(`${where} ${chosen}: ${problem}`);
    }
  }
  // Profiles first: the config file and then the flags win over a profile with the same name.
  if (cfg && !flags.noProfiles && chosen === undefined) {
    for (const name of cfg.profiles.keys()) {
      const keys = cfg.profiles.get(name)!;
      if (!keys.host) continue; // [DEFAULT] holding only shared settings, etc.
      const { route, problem } = profileRoute(name, cfg, (host) => parseProfileHost(host));
      if (route) routes.set(name, { ...route, lenient: true });
      else if (problem) warnings.push(`skipped profile: ${problem}`);
    }
  }
  for (const [name, route] of fileRoutes) {
    const built = buildFileRoute(name, route, defaultCredential, configFile ?? 'config', cfg, problems);
    if (built) routes.set(name, built);
  }
  // Command-line flags win over the file (contract: "Command-line flags win over the file").
  // Two flags naming the same route are a mistake, not last-wins.
  const fromFlags = new Map<string, string>();
  for (const [kind, specs] of [['workspace', flags.workspace ?? []], ['account', flags.account ?? []]] as const) {
    for (const spec of specs) {
      const built = buildFlagRoute(kind, spec, defaultCredential, problems);
      if (!built) continue;
      const earlier = fromFlags.get(built.name);
      if (earlier !== undefined) {
        problems.push(`--${kind} ${spec}: route ${built.name} is already given by ${earlier}; give each route its own name`);
        continue;
      }
      fromFlags.set(built.name, `--${kind} ${spec}`);
      routes.set(built.name, built);
    }
  }

  const host = flags.host ?? env.DBX_GATEWAY_HOST ?? file.listen?.host ?? DEFAULT_LISTEN.host;
  const portText = flags.port ?? env.DBX_GATEWAY_PORT;
  const port = portText === undefined ? (file.listen?.port ?? DEFAULT_LISTEN.port) : parsePort(portText, problems);
  checkPortClashes([...routes.values()], problems, port === 0 ? undefined : port);

  const inboundKeys = parseInboundKeys(file.inboundKeys ?? {}, [...routes.keys()], problems);
  const allowedOrigins = parseOrigins(file.allowedOrigins ?? [], problems);
  const allowUnauthenticatedNetwork = flags.allowUnauthenticatedNetwork === true;
  const socket = flags.socket ?? env.DBX_GATEWAY_SOCKET;
  // Every TCP listener obeys the rule: the main one, and the per-route ports in socket mode too.
  const tcp = socket === undefined || [...routes.values()].some((r) => r.port !== undefined);
  if (tcp && !isLoopbackHost(host) && inboundKeys.length === 0 && !allowUnauthenticatedNetwork) {
    problems.push(
      `listen.host: ${host} is reachable from other machines, and anyone who reaches it would act as your Databricks identity; ` +
        OPEN_LISTENER_FIX,
    );
  }

  const tls = listenTls(flags, file, env, cwd, problems);
  const logLevel = env.DBX_GATEWAY_LOG_LEVEL ?? file.logLevel ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`DBX_GATEWAY_LOG_LEVEL: "${logLevel}" is not a log level; use one of ${LOG_LEVELS.join(', ')}`);
  }
  const logFormat = flags.logFormat ?? env.DBX_GATEWAY_LOG_FORMAT ?? file.logFormat;
  if (logFormat !== undefined && logFormat !== 'text' && logFormat !== 'json') {
    problems.push(`${flags.logFormat ? '--log-format' : env.DBX_GATEWAY_LOG_FORMAT ? 'DBX_GATEWAY_LOG_FORMAT' : 'logFormat'}: "${logFormat}" is not a log format; use text (one line per event) or json`);
  }
  // Credential settings in the same pass, so one report lists everything (a profile the user did
  // not ask for is served as unavailable instead: createGatewayCore warns about it).
  if (problems.length === 0) {
    for (const route of routes.values()) {
      if (route.lenient) continue;
      try {
        createCredential(route.credential, { env, route });
      } catch (err) {
        if (err instanceof CredentialSetupError) problems.push(`routes.${route.name}.credential (${route.source}): ${err.message}`);
        else throw err;
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems, configFile);

  const demo = flags.demo === true || routes.size === 0;
  return {
    listen: { host, port, ...tls },
    ...(socket !== undefined ? { socket: resolve(cwd, socket) } : {}),
    routes: [...routes.values()],
    allowedHosts: file.allowedHosts ?? [],
    allowedOrigins,
    inboundKeys,
    limits: { ...DEFAULT_LIMITS, ...file.limits },
    allowUnauthenticatedNetwork,
    timeouts: { ...DEFAULT_TIMEOUTS, ...file.timeouts },
    demo,
    ...(configFile ? { configFile } : {}),
    logLevel,
    ...(logFormat === 'text' || logFormat === 'json' ? { logFormat } : {}),
    ...metadataServiceConfig(flags, file, env),
    warnings,
  };
}

const KEY_HASH = /^sha256:([0-9a-f]{64})$/;

/** Inbound keys as stored: only `sha256:<hex>` hashes, optionally limited to some routes. */
function parseInboundKeys(raw: Record<string, string | { hash: string; routes?: string[] | undefined }>, routeNames: string[], problems: string[]): InboundKey[] {
  const keys: InboundKey[] = [];
  for (const [name, value] of Object.entries(raw)) {
    const spec = typeof value === 'string' ? { hash: value } : value;
    const m = KEY_HASH.exec(spec.hash.trim().toLowerCase());
    if (!m) {
      problems.push(`inboundKeys.${name}: expected "sha256:" and 64 hex digits (the key itself is never stored); create keys with dbx-gateway keys add ${name}`);
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
function parseOrigins(raw: string[], problems: string[]): string[] {
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
 * On with --metadata-service or `metadataService:` in the file. The secret in the URL is random per
 * start unless DBX_GATEWAY_METADATA_SECRET or `metadataService.secret` fixes it.
 */
function metadataServiceConfig(flags: CliFlags, file: FileConfig, env: NodeJS.ProcessEnv): Pick<GatewayConfig, 'metadataService'> {
  const fromFile = file.metadataService;
  if (!flags.metadataService && !fromFile) return {};
  const configured = env.DBX_GATEWAY_METADATA_SECRET || (typeof fromFile === 'object' ? fromFile.secret : undefined);
  return { metadataService: configured ? { secret: configured, generated: false } : { secret: randomUUID(), generated: true } };
}

function findConfigFile(flags: CliFlags, env: NodeJS.ProcessEnv, cwd: string, problems: string[]): string | undefined {
  // An empty DBX_GATEWAY_CONFIG (e.g. `-e DBX_GATEWAY_CONFIG=` to clear an image default) means none.
  const explicit = flags.config ?? (env.DBX_GATEWAY_CONFIG || undefined);
  if (explicit !== undefined) {
    const path = resolve(cwd, explicit);
    if (!existsSync(path)) {
      const origin = flags.config !== undefined ? '--config' : 'DBX_GATEWAY_CONFIG';
      problems.push(`${origin}: ${path} does not exist; create it or point ${origin} at an existing file`);
      return undefined;
    }
    return path;
  }
  const implicit = resolve(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(implicit) ? implicit : undefined;
}

function readConfigFile(path: string, env: NodeJS.ProcessEnv, problems: string[]): FileConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`cannot read ${path}: ${errorMessage(err)}`);
    return {};
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    // The yaml library's message names the line and column and quotes the line with a caret.
    for (const e of doc.errors) problems.push(`YAML syntax: ${e.message.trimEnd().replace(/\n/g, '\n    ')}`);
    return {};
  }
  const raw: unknown = expandEnv(doc.toJS() ?? {}, env, '', problems);
  const parsed = fileConfigSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(describeIssue(issue));
    return validParts(raw);
  }
  return parsed.data;
}

/**
 * The parts of an invalid file that are valid on their own (each route, listen, credential), so
 * the checks after the schema (credential types and settings, ports, hosts) report in the same
 * pass instead of in a second round after the first fix.
 */
function validParts(raw: unknown): FileConfig {
  if (raw === null || typeof raw !== 'object') return {};
  const object = raw as Record<string, unknown>;
  const partial: Record<string, unknown> = {};
  const shape = fileConfigSchema.shape as Record<string, { safeParse(v: unknown): { success: boolean; data?: unknown } }>;
  for (const key of ['listen', 'credential', 'allowedHosts'] as const) {
    const part = shape[key]?.safeParse(object[key]);
    if (object[key] !== undefined && part?.success) partial[key] = part.data;
  }
  if (object.routes !== null && typeof object.routes === 'object') {
    const routes: Record<string, unknown> = {};
    const known = new Set(Object.keys(routeSchema.shape));
    for (const [name, route] of Object.entries(object.routes as Record<string, unknown>)) {
      // Unknown settings are reported already: check the rest of the route as if they were not there.
      const kept = route !== null && typeof route === 'object' ? Object.fromEntries(Object.entries(route).filter(([k]) => known.has(k))) : route;
      const one = routeSchema.safeParse(kept);
      if (one.success) routes[name] = one.data;
    }
    partial.routes = routes;
  }
  return partial as FileConfig;
}

/**
 * A zod issue in the contract's words, with the fix: an unknown setting names the closest known
 * one ("did you mean readOnly?"), a wrong type says what the setting takes ("readOnly must be true
 * or false") instead of zod's "expected boolean, received string".
 */
function describeIssue(issue: { path: PropertyKey[]; message: string; code: string; keys?: string[]; expected?: string }): string {
  const at = issue.path.map(String).join('.') || '(top level)';
  if (issue.code === 'unrecognized_keys' && issue.keys) {
    const known = knownKeys(issue.path);
    return issue.keys
      .map((k) => {
        const guess = closest(k, known);
        return `${at === '(top level)' ? '' : `${at}.`}${k}: unknown setting${guess ? `; did you mean ${guess}?` : `; known here: ${known.join(', ')}`}`;
      })
      .join('\n  ');
  }
  if (issue.code === 'invalid_type' && issue.expected && TYPE_WORDS[issue.expected]) {
    return `${at} must be ${TYPE_WORDS[issue.expected]}`;
  }
  return `${at}: ${issue.message}`;
}

const TYPE_WORDS: Record<string, string> = {
  boolean: 'true or false',
  number: 'a number',
  string: 'a string (quote it if it looks like a number or true/false)',
  array: 'a list, e.g. [GET, HEAD]',
  object: 'a mapping of settings',
};

/** The settings allowed at a place of the config file, for "did you mean". */
function knownKeys(path: PropertyKey[]): string[] {
  const shapeOf = (schema: unknown): string[] => Object.keys((schema as { shape?: Record<string, unknown> }).shape ?? {});
  if (path.length === 0) return shapeOf(fileConfigSchema);
  if (path[0] === 'routes' && path.length === 2) return shapeOf(routeSchema);
  const top = (fileConfigSchema.shape as Record<string, unknown>)[String(path[0])];
  const inner = (top as { unwrap?: () => unknown } | undefined)?.unwrap?.() ?? top;
  return shapeOf(inner);
}

/** `${VAR}` in any string value is read from the environment, so secrets stay out of the file. */
function expandEnv(value: unknown, env: NodeJS.ProcessEnv, path: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined) {
        problems.push(`${path}: \${${name}} is not set in the environment; export ${name} or write the value in the file`);
        return '';
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, `${path}[${i}]`, problems));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, path ? `${path}.${k}` : k, problems)]),
    );
  }
  return value;
}

/** Normalises `credential: TYPE` to `{ type }` and checks the type exists, reporting at `field`. */
function toCredentialSpec(value: string | { type: string; [k: string]: unknown }, field: string, problems: string[]): CredentialSpec {
  const spec = typeof value === 'string' ? { type: value } : { ...value };
  if (!CREDENTIAL_TYPES.includes(spec.type)) {
    // 'demo' is the built-in demo workspace's own source: accepted, not advertised.
    const advertised = CREDENTIAL_TYPES.filter((t) => t !== 'demo').join(', ');
    const guess = closest(spec.type, CREDENTIAL_TYPES.filter((t) => t !== 'demo'));
    problems.push(`${field}: unknown credential type "${spec.type}"; ${guess ? `did you mean ${guess}? Types: ` : 'use one of '}${advertised}`);
  }
  return spec;
}

function readProfiles(env: NodeJS.ProcessEnv, problems: string[]): DatabricksCfg | undefined {
  try {
    return readDatabricksCfg(env);
  } catch (err) {
    if (err instanceof CfgSyntaxError) {
      problems.push(err.message);
      return undefined;
    }
    problems.push(`cannot read the Databricks config file: ${errorMessage(err)}; fix it or pass --no-profiles`);
    return undefined;
  }
}

function parseProfileHost(host: string): URL | string {
  const problems: string[] = [];
  return parseUpstream(host, '', problems) ?? problems[0]!.replace(/^: /, '');
}

function buildFileRoute(
  name: string,
  route: FileRoute,
  defaultCredential: CredentialSpec,
  source: string,
  cfg: DatabricksCfg | undefined,
  problems: string[],
): RouteConfig | undefined {
  const field = `routes.${name}`;
  if (!ROUTE_NAME_PATTERN.test(name)) {
    problems.push(`${field}: route names may use letters, digits, ".", "_" and "-" only (it becomes /ws/${name})`);
    return undefined;
  }
  if (route.profile !== undefined) return buildProfileFileRoute(name, route, source, cfg, problems);
  if (route.host === undefined) {
    problems.push(`${field}.host: missing; set it to the workspace URL, e.g. https://adb-1234567890123456.7.azuredatabricks.net, or name a ~/.databrickscfg profile`);
    return undefined;
  }
  const upstream = parseUpstream(route.host, `${field}.host`, problems);
  if (!upstream) return undefined;
  const kind = isAccountsHost(upstream) ? 'account' : 'workspace';
  if (kind === 'account' && route.accountId === undefined) {
    problems.push(`${field}.accountId: missing; an accounts console route needs the account id (a UUID)`);
  }
  return {
    name,
    kind,
    upstream,
    ...(route.accountId !== undefined ? { accountId: route.accountId } : {}),
    credential:
      route.credential !== undefined ? toCredentialSpec(route.credential, `${field}.credential`, problems) : defaultCredential,
    readOnly: route.readOnly ?? false,
    ...policySettings(route, `routes.${name}`, problems),
    ...(route.port !== undefined ? { port: route.port } : {}),
    ...(route.caFile !== undefined ? { caFile: route.caFile } : {}),
    ...proxySetting(route, field, problems),
    ...(route.azureResourceId !== undefined ? { azureResourceId: route.azureResourceId } : {}),
    source,
  };
}

/**
 * `listen.tls: auto` (or --tls): the gateway's own CA in the config dir; `{ certFile, keyFile }`:
 * the operator's certificate, read at start so a bad file is a config error, not a TLS failure.
 */
function listenTls(flags: CliFlags, file: FileConfig, env: NodeJS.ProcessEnv, cwd: string, problems: string[]): Pick<GatewayConfig['listen'], 'tls'> {
  const setting = flags.tls ? 'auto' : file.listen?.tls;
  if (setting === undefined) return {};
  if (setting === 'auto') {
    const dir = localTlsDir(env);
    if (!dir) {
      problems.push('listen.tls: auto keeps its CA in the config directory, and there is no home directory (set HOME, or APPDATA on Windows, or XDG_CONFIG_HOME)');
      return {};
    }
    return { tls: { mode: 'auto', dir } };
  }
  const certFile = resolve(cwd, setting.certFile);
  const keyFile = resolve(cwd, setting.keyFile);
  for (const [field, path] of [['certFile', certFile], ['keyFile', keyFile]] as const) {
    if (!existsSync(path)) problems.push(`listen.tls.${field}: ${path} does not exist; give the PEM file of your certificate and its key, or use listen.tls: auto`);
  }
  return { tls: { mode: 'files', certFile, keyFile } };
}

/** `proxy: http://host:port` (credentials allowed in the URL) or `proxy: none`. */
function proxySetting(route: FileRoute, field: string, problems: string[]): Pick<RouteConfig, 'proxy'> {
  if (route.proxy === undefined) return {};
  if (route.proxy === 'none') return { proxy: 'none' };
  try {
    parseProxyUrl(route.proxy);
  } catch (err) {
    problems.push(`${field}.proxy: ${withoutCredentials(errorMessage(err))}; use an http:// proxy URL such as http://proxy.corp:3128, or none`);
  }
  return { proxy: route.proxy };
}

/** allowMethods (upper-cased), denyPaths (each must compile), allowTokenCreation. */
function policySettings(
  route: FileRoute,
  field: string,
  problems: string[],
): Pick<RouteConfig, 'allowMethods' | 'denyPaths' | 'allowTokenCreation' | 'metadataService'> {
  for (const [i, pattern] of (route.denyPaths ?? []).entries()) {
    try {
      new RegExp(pattern);
    } catch (err) {
      problems.push(`${field}.denyPaths[${i}]: not a regular expression (${errorMessage(err)})`);
    }
  }
  return {
    ...(route.allowMethods ? { allowMethods: route.allowMethods.map((m) => m.toUpperCase()) } : {}),
    ...(route.denyPaths ? { denyPaths: route.denyPaths } : {}),
    ...(route.allowTokenCreation !== undefined ? { allowTokenCreation: route.allowTokenCreation } : {}),
    ...(route.metadataService !== undefined ? { metadataService: route.metadataService } : {}),
  };
}

/** `routes.NAME.profile: P`: host and auth from the profile, each overridable in the route. */
function buildProfileFileRoute(
  name: string,
  route: FileRoute,
  source: string,
  cfg: DatabricksCfg | undefined,
  problems: string[],
): RouteConfig | undefined {
  const field = `routes.${name}.profile`;
  const profile = route.profile!;
  if (!cfg) {
    // Either the file is absent or it failed to parse (that problem is already reported).
    if (problems.length === 0) problems.push(`${field}: no Databricks config file found (~/.databrickscfg or DATABRICKS_CONFIG_FILE); run databricks auth login or set ${'routes.' + name}.host`);
    return undefined;
  }
  if (!cfg.profiles.has(profile)) {
    const known = [...cfg.profiles.keys()];
    problems.push(`${field}: ${cfg.path} has no profile [${profile}]${known.length ? `; it has ${known.map((k) => `[${k}]`).join(', ')}` : ''}`);
    return undefined;
  }
  const base = profileRoute(profile, cfg, (host) => parseProfileHost(route.host ?? host));
  if (!base.route) {
    problems.push(`${field}: ${base.problem}`);
    return undefined;
  }
  const upstream = route.host !== undefined ? parseUpstream(route.host, `routes.${name}.host`, problems) : base.route.upstream;
  if (!upstream) return undefined;
  const kind = isAccountsHost(upstream) ? 'account' : 'workspace';
  const accountId = route.accountId ?? base.route.accountId;
  if (kind === 'account' && accountId === undefined) {
    problems.push(`routes.${name}.accountId: missing; an accounts console route needs the account id (a UUID)`);
  }
  const azureResourceId = route.azureResourceId ?? base.route.azureResourceId;
  return {
    name,
    kind,
    upstream,
    ...(accountId !== undefined ? { accountId } : {}),
    credential:
      route.credential !== undefined
        ? { ...toCredentialSpec(route.credential, `routes.${name}.credential`, problems), profile }
        : base.route.credential,
    readOnly: route.readOnly ?? false,
    ...policySettings(route, `routes.${name}`, problems),
    ...(route.port !== undefined ? { port: route.port } : {}),
    ...(route.caFile !== undefined ? { caFile: route.caFile } : {}),
    ...proxySetting(route, `routes.${name}`, problems),
    ...(azureResourceId !== undefined ? { azureResourceId } : {}),
    profile,
    source: `${source} (profile ${base.route.source})`,
  };
}

function buildFlagRoute(
  kind: 'workspace' | 'account',
  spec: string,
  credential: CredentialSpec,
  problems: string[],
): RouteConfig | undefined {
  const flag = `--${kind}`;
  const eq = spec.indexOf('=');
  const name = eq > 0 ? spec.slice(0, eq) : '';
  const value = eq > 0 ? spec.slice(eq + 1) : '';
  if (!name || !value) {
    problems.push(
      kind === 'workspace'
        ? `${flag} ${spec}: expected NAME=URL, e.g. --workspace prod=https://adb-1234567890123456.7.azuredatabricks.net`
        : `${flag} ${spec}: expected NAME=ACCOUNT_ID[@HOST], e.g. --account main=00000000-0000-0000-0000-000000000000`,
    );
    return undefined;
  }
  if (!ROUTE_NAME_PATTERN.test(name)) {
    problems.push(`${flag} ${spec}: route names may use letters, digits, ".", "_" and "-" only`);
    return undefined;
  }
  if (kind === 'workspace') {
    const upstream = parseUpstream(value, `${flag} ${name}`, problems);
    if (!upstream) return undefined;
    return { name, kind: isAccountsHost(upstream) ? 'account' : 'workspace', upstream, credential, readOnly: false, source: flag };
  }
  const at = value.indexOf('@');
  const accountId = at >= 0 ? value.slice(0, at) : value;
  const upstream = parseUpstream(at >= 0 ? value.slice(at + 1) : DEFAULT_ACCOUNTS_HOST, `${flag} ${name}`, problems);
  if (!upstream) return undefined;
  return { name, kind: 'account', upstream, accountId, credential, readOnly: false, source: flag };
}

/**
 * Upstreams are https:// origins. Plain http:// is allowed only on loopback (the demo and tests),
 * because the token would otherwise cross the network in clear text.
 */
export function parseUpstream(text: string, field: string, problems: string[]): URL | undefined {
  const example = 'e.g. https://adb-1234567890123456.7.azuredatabricks.net';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    problems.push(`${field}: "${text}" is not a URL; write the full workspace URL, ${example}`);
    return undefined;
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    problems.push(`${field}: must be an https:// URL (${example}); http:// is accepted only for loopback hosts`);
    return undefined;
  }
  if (url.username || url.password) {
    problems.push(`${field}: must not contain credentials; configure a credential instead`);
    return undefined;
  }
  if (url.pathname !== '/' && url.pathname !== '') {
    problems.push(`${field}: must be the workspace URL without a path (got "${url.pathname}"), ${example}`);
    return undefined;
  }
  // "?o=<workspace id>" as copied from the browser is harmless: only the origin is used.
  return new URL(url.origin);
}

export function isAccountsHost(url: URL): boolean {
  return url.hostname.startsWith('accounts.');
}

function parsePort(text: string, problems: string[]): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    problems.push(`port: "${text}" is not a port number; use 1-65535 (or 0 for any free port)`);
    return 0;
  }
  return n;
}

function checkPortClashes(routes: RouteConfig[], problems: string[], mainPort?: number): void {
  const seen = new Map<number, string>();
  for (const r of routes) {
    if (r.port !== undefined && r.port === mainPort) {
      problems.push(`routes.${r.name}.port: ${r.port} is the main port (listen.port); give the route another port, e.g. ${mainPort + 1}`);
    }
  }
  for (const r of routes) {
    if (r.port === undefined) continue;
    const other = seen.get(r.port);
    if (other) problems.push(`routes.${r.name}.port: ${r.port} is already used by route ${other}; give each route its own port`);
    seen.set(r.port, r.name);
  }
}
