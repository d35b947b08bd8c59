import type { EnvValues } from './env-values.js';
import type { CliFlags } from './flags.js';

/** The resolved, validated configuration the rest of the gateway runs on. */

/** A credential as configured: its type plus that type's settings (tenantId, clientId, ...). */
export interface CredentialSpec {
  type: string;
  [setting: string]: unknown;
}

export type RouteKind = 'workspace' | 'account';

export interface RouteConfig {
  name: string;
  kind: RouteKind;
  /** scheme://host[:port] of the workspace or accounts console, no path. */
  upstream: URL;
  accountId?: string;
  credential: CredentialSpec;
  readOnly: boolean;
  /** Also serve this route without a prefix on 127.0.0.1:port. */
  port?: number;
  /** Extra CA bundle trusted for this upstream (corporate TLS inspection, tests). */
  caFile?: string;
  /** Egress proxy for this route: a proxy URL, or `none`; absent: HTTPS_PROXY / NO_PROXY. */
  proxy?: string;
  azureResourceId?: string;
  /** Only these methods are forwarded (upper case); absent: all. */
  allowMethods?: string[];
  /** Anchored regular expressions over the canonical upstream path; a match gets 403. */
  denyPaths?: string[];
  /** Forward calls that mint long-lived credentials (token/create, on-behalf-of tokens). */
  allowTokenCreation?: boolean;
  /**
   * Serve this route's raw token from the metadata service although the route has a policy
   * (readOnly, allowMethods, denyPaths): a raw token bypasses every policy, so this is opt-in.
   */
  metadataService?: boolean;
  /** An HTTP/2 listener on this port for Spark Connect (gRPC) clients, forwarded to the workspace. */
  sparkConnect?: { port: number };
  /** A PostgreSQL listener on this port for Lakebase, with the hourly database credential injected. */
  postgres?: PostgresSettings;
  /** The ~/.databrickscfg profile the route came from (databricks-cli logs in with it). */
  profile?: string;
  /** Where the route came from, for startup output and doctor. */
  source: string;
  /**
   * Set on routes read implicitly from ~/.databrickscfg: a broken profile makes its route
   * unavailable (503 saying why) instead of stopping the gateway.
   */
  lenient?: boolean;
}

/** A route's Lakebase door: exactly one of endpoint (Autoscaling) and instance (Provisioned). */
export interface PostgresSettings {
  port: number;
  /** projects/P/branches/B/endpoints/E (Lakebase Autoscaling). */
  endpoint?: string;
  /** A Provisioned database instance's name. */
  instance?: string;
  /** HOST or HOST:PORT of the server; absent: discovered from the endpoint or instance API. */
  host?: string;
  /** Used when the client names no database of its own. */
  database: string;
  /** The Postgres role to log in as; absent: the route identity's Databricks user name. */
  user?: string;
}

export interface Timeouts {
  connectMs: number;
  headersMs: number;
  idleMs: number;
  drainMs: number;
}

/** A named inbound key: only the SHA-256 of the key is kept. */
export interface InboundKey {
  name: string;
  sha256: Buffer;
  /** Routes this key may use; absent: all. */
  routes?: string[];
}

export interface Limits {
  /** Largest request head (request line + headers) accepted; bigger gets 431. */
  maxHeaderBytes: number;
  /** Open client connections across listeners; more get 503 and are closed. */
  maxConnections: number;
  /** Open client connections from one client address; more get 503 and are closed. */
  maxConnectionsPerClient: number;
  /** Per inbound key (or per client address without keys); absent: no rate limit. */
  requestsPerMinutePerKey?: number;
}

export const DEFAULT_LIMITS: Limits = {
  // Node's default (16 KiB) is too tight for some SSO cookies; 32 KiB is nginx's large buffer size.
  maxHeaderBytes: 32 * 1024,
  // A few thousand idle keep-alive sockets cost a few MiB; far above any team's dev traffic.
  maxConnections: 4096,
  // A quarter of the whole: one client (a stuck script, a trickling attacker) cannot take every
  // slot, and a tool with a big pool (wrk -c 512, a Spark job) still fits.
  maxConnectionsPerClient: 1024,
};

/** HTTPS on every listener: the gateway's own local CA (in `dir`), or an operator's files. */
export type ListenTls = { mode: 'auto'; dir: string } | { mode: 'files'; certFile: string; keyFile: string };

export interface GatewayConfig {
  listen: { host: string; port: number; tls?: ListenTls };
  /** A unix socket (mode 0600) served instead of the TCP main listener. */
  socket?: string;
  routes: RouteConfig[];
  allowedHosts: string[];
  /** Browser origins allowed to call the gateway (CORS); none by default. */
  allowedOrigins: string[];
  inboundKeys: InboundKey[];
  limits: Limits;
  /** Listening beyond loopback without inbound keys was asked for explicitly (warned at startup). */
  allowUnauthenticatedNetwork: boolean;
  timeouts: Timeouts;
  /** True when nothing was configured and the built-in demo workspace serves /ws/demo. */
  demo: boolean;
  /** The config file read, if any. */
  configFile?: string;
  logLevel: string;
  /** text or json; absent: text on a terminal, json otherwise. */
  logFormat?: 'text' | 'json';
  /** The Databricks SDK metadata service at /metadata/SECRET, when enabled. */
  metadataService?: { secret: string; generated: boolean };
  /** Problems worth a startup warning that do not stop the gateway (skipped profiles). */
  warnings: string[];
  /** The values the config file took from ${VAR}, to mask in messages (EnvValues.mask). */
  envValues?: EnvValues;
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  // TCP + TLS to a cloud front door takes well under a second; 10 s covers slow VPNs.
  connectMs: 10_000,
  // Databricks holds some calls (e.g. command status polling, SQL statements with wait_timeout) up to ~50 s.
  headersMs: 120_000,
  // Long enough for a slow export to pause, short enough that dead exchanges do not pile up.
  idleMs: 300_000,
  drainMs: 30_000,
};

export const DEFAULT_LISTEN = { host: '127.0.0.1', port: 8080 } as const;

export type { CliFlags };

export interface LoadConfigOptions {
  flags?: CliFlags;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}
