import { CREDENTIAL_TYPES } from '../auth/credentials/index.js';
import { errorMessage } from '../errors.js';
import { parseProxyUrl, withoutCredentials } from '../proxy/egress-proxy.js';
import { isLoopbackHost } from '../security/loopback.js';
import type { DatabricksCfg } from './databrickscfg.js';
import { isAccountsHost, profileRoute } from './profiles.js';
import { ACCOUNT_ID_HINT, ACCOUNT_ID_PATTERN, type FileConfig, type FileRoute, ROUTE_NAME_PATTERN } from './schema.js';
import type { ProfileSource } from './sources.js';
import { closest } from './suggest.js';
import type { CliFlags, CredentialSpec, RouteConfig } from './types.js';

// Route assembly from the three sources, in the order that lets the later win: ~/.databrickscfg
// profiles, then the config file's routes, then --workspace / --account flags.

export const DEFAULT_ACCOUNTS_HOST = 'https://accounts.azuredatabricks.net';
/** The upstream of a route whose host was unusable (and reported): only for checking the rest. */
const UNKNOWN_HOST = 'https://host.invalid';

export interface RouteSources {
  flags: CliFlags;
  file: FileConfig;
  env: NodeJS.ProcessEnv;
  /** The config file's path, for each route's `source`. */
  configFile: string | undefined;
  profiles: ProfileSource | undefined;
  defaultCredential: CredentialSpec;
}

/** Every route by name; problems and skipped-profile warnings are collected. */
export function assembleRoutes(sources: RouteSources, problems: string[], warnings: string[]): Map<string, RouteConfig> {
  const { flags, file, env, profiles, defaultCredential } = sources;
  const cfg = profiles?.cfg;
  const routes = new Map<string, RouteConfig>();
  // --profile NAME (or DATABRICKS_CONFIG_PROFILE, as the Databricks CLI reads it) picks one profile.
  const chosen = selectedProfile(flags, env);
  if (chosen !== undefined) {
    const keys = cfg?.profiles.get(chosen);
    const known = [...(cfg?.profiles.keys() ?? [])].filter((n) => cfg?.profiles.get(n)?.host);
    const where = flags.profile !== undefined ? '--profile' : 'DATABRICKS_CONFIG_PROFILE';
    if (!cfg || !keys?.host) {
      const guess = closest(chosen, known);
      problems.push(
        `${where} ${chosen}: no such profile with a host in ~/.databrickscfg${guess ? `; did you mean ${guess}?` : ''} (profiles: ${known.join(', ') || 'none'})`,
      );
    } else {
      // Asked for by name: its problems are configuration errors, not skipped warnings.
      const { route, problem } = profileRoute(chosen, cfg, parseProfileHost);
      if (route) routes.set(chosen, route);
      else if (problem) problems.push(`${where} ${chosen}: ${problem}`);
    }
  }
  // Profiles first: the config file and then the flags win over a profile with the same name.
  if (cfg && !flags.noProfiles && chosen === undefined) {
    for (const [name, keys] of cfg.profiles) {
      if (!keys.host) continue; // [DEFAULT] holding only shared settings, etc.
      const { route, problem } = profileRoute(name, cfg, parseProfileHost);
      if (route) routes.set(name, { ...route, lenient: true });
      else if (problem) warnings.push(`skipped profile: ${problem}`);
    }
  }
  for (const [name, route] of Object.entries(file.routes ?? {})) {
    const built = buildFileRoute(name, route, defaultCredential, sources.configFile ?? 'config', profiles, problems, warnings);
    if (built) routes.set(name, built);
  }
  // Command-line flags win over the file (README, "Command line").
  // Two flags naming the same route are a mistake, not last-wins.
  const fromFlags = new Map<string, string>();
  for (const [kind, specs] of [
    ['workspace', flags.workspace ?? []],
    ['account', flags.account ?? []],
  ] as const) {
    for (const spec of specs) {
      const built = buildFlagRoute(kind, spec, defaultCredential, problems, warnings, flags.caFile);
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
  if (flags.caFile !== undefined && fromFlags.size === 0) {
    problems.push(
      `--ca-file ${flags.caFile}: applies to the routes given with --workspace or --account, and there are none; set caFile on a route in the config file instead`,
    );
  }
  return routes;
}

/** The profile named by --profile or DATABRICKS_CONFIG_PROFILE (the latter not with --no-profiles). */
export function selectedProfile(flags: CliFlags, env: NodeJS.ProcessEnv): string | undefined {
  return flags.profile ?? (flags.noProfiles ? undefined : env.DATABRICKS_CONFIG_PROFILE);
}

/** Whether ~/.databrickscfg must be read at all. */
export function wantsProfiles(flags: CliFlags, file: FileConfig, env: NodeJS.ProcessEnv): boolean {
  return !flags.noProfiles || selectedProfile(flags, env) !== undefined || Object.values(file.routes ?? {}).some((r) => r.profile !== undefined);
}

/**
 * Names people type for a credential type, from the tools they know (`az` is the Azure CLI, the
 * SDKs' auth_type values): suggested, never accepted, so a config keeps one spelling.
 */
const CREDENTIAL_ALIASES: Readonly<Record<string, string>> = {
  az: 'azure-cli',
  'az-cli': 'azure-cli',
  azcli: 'azure-cli',
  'az-login': 'azure-cli',
  msi: 'azure-msi',
  'managed-identity': 'azure-msi',
  'azure-managed-identity': 'azure-msi',
  token: 'pat',
  'personal-access-token': 'pat',
  'oauth-m2m': 'databricks-m2m',
  'oauth-u2m': 'databricks-u2m',
  'external-browser': 'databricks-u2m',
  'service-principal': 'azure-client-secret',
  'client-secret': 'azure-client-secret',
  'workload-identity': 'azure-workload-identity',
  'databricks-cli-login': 'databricks-cli',
};

/** Normalises `credential: TYPE` to `{ type }` and checks the type exists, reporting at `field`. */
export function toCredentialSpec(value: string | { type: string; [k: string]: unknown }, field: string, problems: string[]): CredentialSpec {
  const spec = typeof value === 'string' ? { type: value } : { ...value };
  if (!CREDENTIAL_TYPES.includes(spec.type)) {
    // 'demo' is the built-in demo workspace's own source: accepted, not advertised.
    const advertised = CREDENTIAL_TYPES.filter((t) => t !== 'demo').join(', ');
    const guess =
      CREDENTIAL_ALIASES[spec.type.toLowerCase().replace(/[_\s]/g, '-')] ??
      closest(
        spec.type,
        CREDENTIAL_TYPES.filter((t) => t !== 'demo'),
      );
    problems.push(`${field}: unknown credential type "${spec.type}"; ${guess ? `did you mean ${guess}? Types: ` : 'use one of '}${advertised}`);
  }
  return spec;
}

function parseProfileHost(host: string): URL | string {
  const problems: string[] = [];
  return parseUpstream(host, '', problems) ?? problems[0]!.replace(/^: /, '');
}

/**
 * `routes.NAME`: host and settings from the file; with `profile: P`, host, account and
 * credential from that ~/.databrickscfg profile, each overridable in the route.
 */
function buildFileRoute(
  name: string,
  route: FileRoute,
  defaultCredential: CredentialSpec,
  source: string,
  profiles: ProfileSource | undefined,
  problems: string[],
  warnings: string[],
): RouteConfig | undefined {
  const field = `routes.${name}`;
  if (!ROUTE_NAME_PATTERN.test(name)) {
    problems.push(`${field}: route names may use letters, digits, ".", "_" and "-" only (it becomes /ws/${name})`);
    return undefined;
  }
  const base = route.profile !== undefined ? profileBase(name, route, route.profile, profiles, problems) : undefined;
  if (route.host === undefined && !base && route.profile === undefined) {
    problems.push(
      `${field}.host: missing; set it to the workspace URL, e.g. https://adb-1234567890123456.7.azuredatabricks.net, or name a ~/.databrickscfg profile`,
    );
  }
  const upstream = route.host !== undefined ? parseUpstream(route.host, `${field}.host`, problems, warnings) : base?.upstream;
  // Without a usable host (reported above) the rest of the route is still checked, so its other
  // problems (credential, ports, policy) come in the same report, not a round later. Such a
  // route is never served: a reported problem fails the whole configuration.
  const target = upstream ?? new URL(route.accountId !== undefined ? DEFAULT_ACCOUNTS_HOST : UNKNOWN_HOST);
  const kind = isAccountsHost(target) ? 'account' : 'workspace';
  const accountId = route.accountId ?? base?.accountId;
  if (upstream && kind === 'account' && accountId === undefined) {
    problems.push(`${field}.accountId: missing; an accounts console route needs the account id (a UUID)`);
  }
  const azureResourceId = route.azureResourceId ?? base?.azureResourceId;
  const ownCredential = route.credential !== undefined ? toCredentialSpec(route.credential, `${field}.credential`, problems) : undefined;
  return {
    name,
    kind,
    upstream: target,
    ...(accountId !== undefined ? { accountId } : {}),
    credential: base ? (ownCredential ? { ...ownCredential, profile: route.profile! } : base.credential) : (ownCredential ?? defaultCredential),
    readOnly: route.readOnly ?? false,
    ...policySettings(route, field, problems),
    ...(route.port !== undefined ? { port: route.port } : {}),
    ...sparkConnectSetting(route, target, kind, field, problems),
    ...postgresSetting(route, kind, field, problems),
    ...(route.caFile !== undefined ? { caFile: route.caFile } : {}),
    ...proxySetting(route, field, problems),
    ...(azureResourceId !== undefined ? { azureResourceId } : {}),
    ...(base ? { profile: route.profile!, source: `${source} (profile ${base.source})` } : { source }),
  };
}

/** The route a `profile: P` setting starts from; undefined (with the problem reported) if there is none. */
function profileBase(name: string, route: FileRoute, profile: string, profiles: ProfileSource | undefined, problems: string[]): RouteConfig | undefined {
  const field = `routes.${name}.profile`;
  const cfg: DatabricksCfg | undefined = profiles?.cfg;
  if (!cfg) {
    // An unreadable file is reported already; a missing one is reported here, whatever else is wrong.
    if (!profiles?.unreadable)
      problems.push(
        `${field}: no Databricks config file found (~/.databrickscfg or DATABRICKS_CONFIG_FILE); run databricks auth login or set routes.${name}.host`,
      );
    return undefined;
  }
  if (!cfg.profiles.has(profile)) {
    const known = [...cfg.profiles.keys()];
    problems.push(`${field}: ${cfg.path} has no profile [${profile}]${known.length ? `; it has ${known.map((k) => `[${k}]`).join(', ')}` : ''}`);
    return undefined;
  }
  const base = profileRoute(profile, cfg, (host) => parseProfileHost(route.host ?? host));
  if (!base.route) problems.push(`${field}: ${base.problem}`);
  return base.route;
}

/**
 * `sparkConnect: { port }`, for workspace routes without a policy: a Spark Connect call carries a
 * whole query plan, which readOnly, allowMethods and denyPaths cannot see into.
 */
function sparkConnectSetting(route: FileRoute, upstream: URL, kind: RouteConfig['kind'], field: string, problems: string[]): Pick<RouteConfig, 'sparkConnect'> {
  if (route.sparkConnect === undefined) return {};
  if (upstream.protocol !== 'https:') problems.push(`${field}.sparkConnect: Spark Connect goes to the workspace over HTTP/2 + TLS; the host must be https://`);
  if (kind === 'account') problems.push(`${field}.sparkConnect: Spark Connect is served by workspaces, not the accounts console; set it on a workspace route`);
  const policy = (['readOnly', 'allowMethods', 'denyPaths'] as const).filter((k) => route[k] !== undefined && route[k] !== false);
  if (policy.length > 0) {
    problems.push(
      `${field}.sparkConnect: the route has ${policy.join(', ')}, which Spark Connect calls cannot be held to (a call carries a whole query plan); ` +
        'serve Spark Connect from a route of its own without a policy',
    );
  }
  return { sparkConnect: { port: route.sparkConnect.port } };
}

/** Lakebase's default database (Databricks docs, oltp/projects/authentication). */
export const DEFAULT_POSTGRES_DATABASE = 'databricks_postgres';
const ENDPOINT_PATTERN = /^projects\/[^/]+\/branches\/[^/]+\/endpoints\/[^/]+$/;

/**
 * `postgres: { port, endpoint | instance, host?, database?, user? }`: the credential is minted with
 * the workspace token, so the route must be a workspace route.
 */
function postgresSetting(route: FileRoute, kind: RouteConfig['kind'], field: string, problems: string[]): Pick<RouteConfig, 'postgres'> {
  const pg = route.postgres;
  if (pg === undefined) return {};
  const where = `${field}.postgres`;
  if (kind === 'account') problems.push(`${where}: Lakebase credentials are minted by a workspace, not the accounts console; set it on a workspace route`);
  if ((pg.endpoint === undefined) === (pg.instance === undefined)) {
    problems.push(
      `${where}: set exactly one of endpoint (Lakebase Autoscaling: projects/P/branches/B/endpoints/E) and instance (a Provisioned instance's name)`,
    );
  }
  if (pg.endpoint !== undefined && !ENDPOINT_PATTERN.test(pg.endpoint)) {
    problems.push(`${where}.endpoint: "${pg.endpoint}" is not an endpoint name; use projects/P/branches/B/endpoints/E as the Lakebase UI shows it`);
  }
  if (pg.host !== undefined && !/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(pg.host)) {
    problems.push(`${where}.host: "${pg.host}" is not HOST or HOST:PORT; use the endpoint's host, e.g. ep-example.database.azuredatabricks.net`);
  }
  return {
    postgres: {
      port: pg.port,
      ...(pg.endpoint !== undefined ? { endpoint: pg.endpoint } : {}),
      ...(pg.instance !== undefined ? { instance: pg.instance } : {}),
      ...(pg.host !== undefined ? { host: pg.host } : {}),
      database: pg.database ?? DEFAULT_POSTGRES_DATABASE,
      ...(pg.user !== undefined ? { user: pg.user } : {}),
    },
  };
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

function buildFlagRoute(
  kind: 'workspace' | 'account',
  spec: string,
  credential: CredentialSpec,
  problems: string[],
  warnings: string[],
  caFile: string | undefined,
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
    const upstream = parseUpstream(value, `${flag} ${name}`, problems, warnings);
    if (!upstream) return undefined;
    return {
      name,
      kind: isAccountsHost(upstream) ? 'account' : 'workspace',
      upstream,
      credential,
      readOnly: false,
      ...(caFile !== undefined ? { caFile } : {}),
      source: flag,
    };
  }
  const at = value.indexOf('@');
  const accountId = at >= 0 ? value.slice(0, at) : value;
  if (!ACCOUNT_ID_PATTERN.test(accountId)) {
    problems.push(`${flag} ${spec}: ${accountId} is not a UUID; ${ACCOUNT_ID_HINT}`);
    return undefined;
  }
  const upstream = parseUpstream(at >= 0 ? value.slice(at + 1) : DEFAULT_ACCOUNTS_HOST, `${flag} ${name}`, problems, warnings);
  if (!upstream) return undefined;
  return { name, kind: 'account', upstream, accountId, credential, readOnly: false, ...(caFile !== undefined ? { caFile } : {}), source: flag };
}

/**
 * Upstreams are https:// origins. Plain http:// is allowed only on loopback (the demo and tests),
 * because the token would otherwise cross the network in clear text. What people paste is cleaned
 * up, with a note in `warnings`: a bare host name gets https://, and a URL copied from the browser
 * (`.../browse?o=123`) is cut to its origin.
 */
export function parseUpstream(text: string, field: string, problems: string[], warnings?: string[]): URL | undefined {
  const example = 'e.g. https://adb-1234567890123456.7.azuredatabricks.net';
  let url: URL;
  try {
    // No scheme: a dotted host name (adb-123.4.azuredatabricks.net, maybe with :port or a path),
    // which new URL() would refuse or read "host:port" as a scheme.
    const bare = !/^[a-z][a-z0-9+.-]*:\/\//i.test(text) && /^[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?([/?#].*)?$/i.test(text.trim());
    url = new URL(bare ? `https://${text.trim()}` : text);
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
  // Only the origin is used: "?o=<workspace id>" and the page's path, as copied from the browser,
  // address nothing the gateway forwards to.
  const extra = (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '';
  if (warnings && (extra || !/^https?:\/\//i.test(text))) {
    warnings.push(`${field}: using ${url.origin} for "${text}" (a workspace URL is https://HOST only${extra ? '; the path and query were left out' : ''})`);
  }
  return new URL(url.origin);
}
