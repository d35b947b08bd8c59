import type { CliFlags, GatewayConfig } from '../config/types.js';
import { printErr } from './output.js';
import { findServing, type RunningStatus, useRouteFlags } from './running.js';
import { load } from './shared.js';
import { assignCmd, assignFish, assignPosix, assignPowerShell, UnsafeValueError } from './token-output.js';

export const ENV_SHELLS = ['bash', 'powershell', 'cmd', 'fish'] as const;
export type EnvShell = (typeof ENV_SHELLS)[number];
/** Other names people type for the same forms. */
const SHELL_ALIASES: Record<string, EnvShell> = { sh: 'bash', zsh: 'bash', posix: 'bash', pwsh: 'powershell' };

/**
 * The value of DATABRICKS_TOKEN for tools on a gateway without inbound keys: the gateway replaces
 * whatever Authorization a client sends with the route's token (proxy/auth-headers.ts), so any
 * value works; this one says where it came from.
 */
export const PLACEHOLDER_TOKEN = 'dbx-gateway';

/**
 * Without --shell: POSIX sh (bash, zsh, Git Bash) except on Windows, where PowerShell is the
 * default shell of Windows Terminal and VS Code; Git Bash and MSYS2 set MSYSTEM, so they get sh
 * there too. cmd is never guessed (PSModulePath, the usual hint, is set for cmd as well): --shell cmd.
 */
export function defaultShell(platform: NodeJS.Platform = process.platform, env: NodeJS.ProcessEnv = process.env): EnvShell {
  return platform === 'win32' && !env.MSYSTEM ? 'powershell' : 'bash';
}

/** How one route is reached, from a running gateway's status or from the configuration. */
export interface RouteAccess {
  name: string;
  /** /ws/NAME or /acct/NAME */
  prefix: string;
  /** The workspace or accounts console origin. */
  upstream: string;
  accountId?: string;
  /** The main listener (http(s)://host:port); undefined for a unix socket or named pipe. */
  mainUrl?: string;
  tls: boolean;
  /** The host the route's own ports are reached at. */
  portHost: string;
  port?: number;
  sparkPort?: number;
  postgresPort?: number;
  inboundKeys: boolean;
  /** The metadata service's full URL, when it is on and serves this route. */
  metadataUrl?: string;
  /** Things to say on stderr that the source already knows (a port only a start can pick). */
  notes: string[];
}

/**
 * The variables that send a tool through the gateway, in order, and what to say about them on
 * stderr (never on stdout, which the shell evaluates).
 */
export function routeEnv(r: RouteAccess): { vars: Array<[string, string]>; notes: string[] } {
  const vars: Array<[string, string]> = [];
  const notes = [...r.notes];
  const portUrl = (port: number) => `${r.tls ? 'https' : 'http'}://${r.portHost}:${port}`;
  const account: Array<[string, string]> = r.accountId ? [['DATABRICKS_ACCOUNT_ID', r.accountId]] : [];
  if (r.metadataUrl) {
    // The SDK asks the metadata service for the token (X-Databricks-Host picks the route: its
    // workspace URL or its own port) and calls that host itself.
    vars.push(['DATABRICKS_HOST', r.port !== undefined ? portUrl(r.port) : r.upstream], ...account);
    vars.push(['DATABRICKS_METADATA_SERVICE_URL', r.metadataUrl], ['DATABRICKS_AUTH_TYPE', 'metadata-service']);
  } else if (r.port !== undefined || r.mainUrl !== undefined) {
    if (r.port !== undefined) vars.push(['DATABRICKS_HOST', portUrl(r.port)]);
    else {
      vars.push(['DATABRICKS_HOST', `${r.mainUrl}${r.prefix}`]);
      notes.push(
        `route ${r.name} has no port of its own: the Databricks CLI, Terraform and the Go and Java SDKs drop the path of DATABRICKS_HOST (curl and the Python SDK keep it); give the route one (routes.${r.name}.port) for them`,
      );
    }
    vars.push(...account);
    // auth_type pat: a DATABRICKS_CLIENT_ID or ARM_* already in the shell does not compete with it.
    vars.push(['DATABRICKS_AUTH_TYPE', 'pat']);
    if (r.inboundKeys) notes.push('this gateway takes inbound keys: set DATABRICKS_TOKEN to your key (the gateway checks it, then replaces it with the token)');
    else vars.push(['DATABRICKS_TOKEN', PLACEHOLDER_TOKEN]);
  } else {
    notes.push(
      `route ${r.name} has no port of its own and the gateway listens on a socket, which DATABRICKS_HOST cannot name: give the route one (routes.${r.name}.port)`,
    );
  }
  if (r.sparkPort !== undefined) {
    const host = r.portHost === '127.0.0.1' ? 'localhost' : r.portHost;
    vars.push(['SPARK_REMOTE', `sc://${host}:${r.sparkPort}/${r.tls ? ';use_ssl=true' : ''}`]);
    notes.push(
      `SPARK_REMOTE: add ;x-databricks-cluster-id=CLUSTER_ID for a cluster${r.inboundKeys ? ', and ;token=YOUR_KEY (this gateway takes inbound keys)' : ''}${r.tls ? "; the port speaks TLS: trust the gateway's CA (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=$(dbx-gateway tls ca))" : ''}`,
    );
  }
  if (r.postgresPort !== undefined) {
    vars.push(['PGHOST', r.portHost], ['PGPORT', String(r.postgresPort)]);
    if (r.inboundKeys) notes.push('PostgreSQL: your inbound key is the password (PGPASSWORD), over TLS only (PGSSLMODE=require)');
  }
  return { vars, notes };
}

/** The variables in `shell`'s own assignment syntax; an UnsafeValueError for a value it cannot hold. */
export function formatEnv(vars: Array<[string, string]>, shell: EnvShell): string {
  const assign = { bash: assignPosix, powershell: assignPowerShell, cmd: assignCmd, fish: assignFish }[shell];
  return vars.map(([k, v]) => assign(k, v, `--shell ${shell}`)).join('');
}

/** Listen hosts that mean "every address" are reached at loopback; an IPv6 literal gets brackets. */
function reachableHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

function fromStatus(status: RunningStatus, runUrl: string, name: string): RouteAccess | string {
  const route = status.routes.find((r) => r.name === name);
  if (!route) return `the gateway at ${runUrl} serves no route ${name}; it serves ${status.routes.map((r) => r.name).join(', ') || 'none'}`;
  const setup = status.client_setup;
  const unix = runUrl.startsWith('unix:');
  const main = unix ? undefined : new URL(runUrl);
  const portHost = reachableHost(setup?.listen_host ?? main?.hostname ?? '127.0.0.1');
  const notes: string[] = [];
  if (!setup) notes.push(`the gateway at ${runUrl} is an older version: restart it for the metadata service and account settings`);
  const metadata = setup?.metadata_service;
  // The Go SDK takes a metadata-service URL on localhost or 127.0.0.1 only.
  const metadataUrl = metadata && main && metadata.routes.includes(name) ? `${main.protocol}//127.0.0.1:${main.port}${metadata.path}` : undefined;
  const accountId = setup?.account_ids[name];
  return {
    name,
    prefix: route.prefix,
    upstream: route.upstream,
    ...(accountId ? { accountId } : {}),
    ...(main ? { mainUrl: runUrl.replace(/\/+$/, '') } : {}),
    tls: runUrl.startsWith('https:'),
    portHost,
    ...(route.port !== undefined ? { port: route.port } : {}),
    ...(route.spark_connect_port !== undefined ? { sparkPort: route.spark_connect_port } : {}),
    ...(route.postgres_port !== undefined ? { postgresPort: route.postgres_port } : {}),
    inboundKeys: setup?.inbound_keys ?? false,
    ...(metadataUrl ? { metadataUrl } : {}),
    notes,
  };
}

async function fromConfig(config: GatewayConfig, name: string): Promise<RouteAccess | string> {
  const route = config.routes.find((r) => r.name === name);
  if (!route) return `no route named ${name}; routes: ${config.routes.map((r) => r.name).join(', ') || 'none (configure one with --workspace NAME=URL)'}`;
  const notes: string[] = [];
  const tls = config.listen.tls !== undefined;
  const mainPort = config.listen.port;
  // Port 0 is picked by the OS at start: only the running gateway knows it.
  if (mainPort === 0 && !config.socket) notes.push('the main listener port is 0 (picked at start): start the gateway, then run env again');
  const mainUrl = config.socket || mainPort === 0 ? undefined : `${tls ? 'https' : 'http'}://${reachableHost(config.listen.host)}:${mainPort}`;
  let metadataUrl: string | undefined;
  if (config.metadataService && config.inboundKeys.length === 0 && mainUrl) {
    const { servesRouteConfig } = await import('../local/metadata-service.js');
    if (config.metadataService.generated)
      notes.push('the metadata service secret is random per start: start the gateway and run env again (or fix it with DBX_GATEWAY_METADATA_SECRET)');
    else if (servesRouteConfig(route)) metadataUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${mainPort}/metadata/${config.metadataService.secret}`;
  }
  const { port } = route;
  const sparkPort = route.sparkConnect?.port;
  const postgresPort = route.postgres?.port;
  return {
    name,
    prefix: `/${route.kind === 'account' ? 'acct' : 'ws'}/${name}`,
    upstream: route.upstream.origin,
    ...(route.accountId ? { accountId: route.accountId } : {}),
    ...(mainUrl ? { mainUrl } : {}),
    tls,
    portHost: reachableHost(config.listen.host),
    ...(port !== undefined ? { port } : {}),
    ...(sparkPort !== undefined ? { sparkPort } : {}),
    ...(postgresPort !== undefined ? { postgresPort } : {}),
    inboundKeys: config.inboundKeys.length > 0,
    ...(metadataUrl ? { metadataUrl } : {}),
    notes,
  };
}

/**
 * `env NAME`: the environment that sends the Databricks CLI, Terraform, the SDKs, Spark Connect
 * and PostgreSQL clients through the gateway, as assignments for `shell`, from the running
 * gateway that serves the route (its actual ports), else from the configuration.
 */
export async function printEnv(flags: CliFlags, name: string, shellOption: string | undefined, url: string | undefined): Promise<number> {
  const shell =
    shellOption === undefined
      ? defaultShell()
      : (((ENV_SHELLS as readonly string[]).includes(shellOption) ? shellOption : SHELL_ALIASES[shellOption]) as EnvShell | undefined);
  if (!shell) {
    printErr(`dbx-gateway: --shell ${shellOption}: use one of ${ENV_SHELLS.join(', ')}\n`);
    return 2;
  }
  let access: RouteAccess | string;
  if (await useRouteFlags(flags, url, 'reading the route')) {
    const config = await load(flags);
    if (!config) return 2;
    access = await fromConfig(config, name);
  } else {
    const serving = await findServing(url, name);
    if ('failed' in serving) return serving.failed;
    if ('found' in serving) access = fromStatus(serving.found.status, serving.found.run.url, name);
    else {
      if (url) {
        printErr(`dbx-gateway: ${serving.none}\n`);
        return 1;
      }
      printErr(`dbx-gateway: ${serving.none}: reading the route from the configuration (its ports as configured)\n`);
      const config = await load(flags);
      if (!config) return 2;
      access = await fromConfig(config, name);
    }
  }
  if (typeof access === 'string') {
    printErr(`dbx-gateway: ${access}\n`);
    return 2;
  }
  const { vars, notes } = routeEnv(access);
  let text: string;
  try {
    text = formatEnv(vars, shell);
  } catch (err) {
    if (!(err instanceof UnsafeValueError)) throw err;
    printErr(`dbx-gateway: ${err.message}\n`);
    return 1;
  }
  for (const note of notes) printErr(`note: ${note}\n`);
  if (vars.length === 0) return 1;
  process.stdout.write(text);
  return 0;
}
