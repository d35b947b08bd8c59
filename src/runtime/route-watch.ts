import type { TokenCache } from '../auth/token-cache.js';
import { errorMessage, GatewayError, toGatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { scrubSecrets } from '../observability/redact.js';
import type { RequestStats } from '../observability/request-stats.js';
import { authHeaders } from '../proxy/auth-headers.js';
import type { Route, RouteTable } from '../routing/route-table.js';
import { getViaRoute, identityOf, scimMePath } from './diagnose.js';

/** The SCIM Me call that names the identity at startup; it never holds anything up. */
export const IDENTITY_TIMEOUT_MS = 10_000;
/**
 * First re-check of a failing route (an upstream that could not be reached; at least this long for
 * a credential too), doubling up to the ceiling.
 */
export const UPSTREAM_RECHECK_BASE_MS = 3_000;
export const UPSTREAM_RECHECK_MAX_MS = 60_000;
/** How much of a refusing upstream's body the failing line quotes. */
const REFUSAL_EXCERPT_CHARS = 200;

/** How a person's tools reach a route through this gateway (startup block, status). */
export interface RouteUsage {
  curl: string;
  /** For the Databricks CLI and SDKs: the route's own port, else its prefix URL; absent on a unix socket. */
  databricksHost?: string;
  spark?: string;
  psql?: string;
}

export interface RouteWatchOptions {
  /** The current generation's routes (a reload replaces them). */
  routes: () => RouteTable;
  tokens: () => TokenCache;
  stats: () => RequestStats;
  logger: Logger;
  usage: (route: Route) => RouteUsage;
  connectTimeouts: () => { connectMs: number; headersMs: number; idleMs: number };
  identityTimeoutMs?: number;
  recheck?: { baseMs: number; maxMs: number };
}

/**
 * Says, per route, whether it works and how to use it, once its first token is in (or failed),
 * and keeps failing routes under watch: a credential that failed is asked again when the token
 * cache's backoff allows, an upstream that could not be reached is called again with its own
 * backoff, so a route turns ready after `az login` (or when the network is back) without a
 * request, and the log says so.
 */
export interface RouteWatch {
  /** Checks every route it has not checked with its current credential and upstream (start, reload). */
  sync(): void;
  /** A first token arrived for a credential (a request fetched it): its failing routes are checked now. */
  tokenArrived(credentialId: string): void;
  stop(): void;
}

interface Watched {
  route: Route;
  state: 'checking' | 'ready' | 'failing';
  timer?: NodeJS.Timeout;
  /** Consecutive failed checks, for the re-check backoff. */
  failures: number;
  /** The last check failed on the upstream, not the credential. */
  upstreamFailing: boolean;
}

type Outcome =
  | { ok: true; message: string; fields: Record<string, unknown> }
  | { ok: false; reason: string; fix: string; retryInMs: number; upstream?: boolean };

export function watchRoutes(options: RouteWatchOptions): RouteWatch {
  const { logger } = options;
  const identityTimeoutMs = options.identityTimeoutMs ?? IDENTITY_TIMEOUT_MS;
  const recheck = options.recheck ?? { baseMs: UPSTREAM_RECHECK_BASE_MS, maxMs: UPSTREAM_RECHECK_MAX_MS };
  const watched = new Map<string, Watched>();
  let stopped = false;

  const current = (name: string) => options.routes().all.find((r) => r.name === name);
  /** The wait before the next check of a failing route: doubling per consecutive failure, capped. */
  const backoff = (route: Route) => Math.min(recheck.baseMs * 2 ** (watched.get(route.name)?.failures ?? 0), recheck.maxMs);

  const check = (entry: Watched) => {
    clearTimeout(entry.timer);
    const previous = entry.state;
    entry.state = 'checking';
    const route = entry.route;
    void outcomeOf(route).then((outcome) => {
      if (stopped) return;
      const now = current(route.name);
      if (now !== route) {
        // A reload replaced the route while it was checked: check the one now served, if any.
        if (now && watched.get(route.name) === entry) {
          entry.route = now;
          check(entry);
        }
        return;
      }
      if (outcome.ok) {
        entry.failures = 0;
        entry.upstreamFailing = false;
        entry.state = 'ready';
        options.stats().noteUpstream(route.name, undefined);
        logger.info(outcome.fields, outcome.message);
        return;
      }
      entry.state = 'failing';
      entry.failures++;
      entry.upstreamFailing = outcome.upstream === true;
      if (outcome.upstream) options.stats().noteUpstream(route.name, outcome.reason);
      const fields = { route: route.name, state: 'failing', credential: route.credential.type, reason: outcome.reason, fix: outcome.fix };
      const message = `${route.name}  FAILING: ${outcome.reason}${/[.!?]$/.test(outcome.reason) ? '' : '.'} Fix: ${outcome.fix}`;
      // Said once per failure; the retries in between are debug lines.
      if (previous === 'failing') logger.debug({ ...fields, retry_in_ms: outcome.retryInMs }, message);
      else logger.warn({ ...fields, lines: ['retried in the background: this log says when the route is ready'] }, message);
      entry.timer = setTimeout(() => {
        const latest = current(route.name);
        if (!latest || stopped) return;
        entry.route = latest;
        check(entry);
      }, outcome.retryInMs);
      entry.timer.unref();
    });
  };

  const outcomeOf = async (route: Route): Promise<Outcome> => {
    const tokens = options.tokens();
    let headers: Record<string, string>;
    try {
      headers = (await authHeaders(route, tokens)).headers;
    } catch (err) {
      const { reason, fix } = splitFix(errorMessage(err), route.credential.hint);
      // The token cache's backoff, and never sooner than our own: a token refused after a
      // successful fetch (too close to expiry) leaves the cache no backoff to go by.
      const retryAt = Math.max(tokens.status(route.credential, 'databricks').retryAtMs, tokens.status(route.credential, 'azure-management').retryAtMs);
      return { ok: false, reason, fix, retryInMs: Math.max(retryAt - Date.now(), backoff(route)) };
    }
    const token = tokens.status(route.credential, 'databricks').token;
    const until = token && Number.isFinite(token.expiresOnMs) ? `token until ${clockTime(token.expiresOnMs)}` : 'token does not expire';
    let identity: string | undefined;
    let note = '';
    try {
      const probe = await getViaRoute(route, scimMePath(route), headers, identityTimeoutMs);
      if (probe.status === 401 || (probe.status === 403 && route.config.kind === 'workspace')) {
        const body = scrubSecrets(probe.body.slice(0, REFUSAL_EXCERPT_CHARS)).replace(/\s+/g, ' ').trim();
        return {
          ok: false,
          reason: `${route.target.origin} refused the token of credential ${route.credential.type} (HTTP ${probe.status}${body ? `: ${body}` : ''})`,
          fix: `check that this identity is a user of the workspace, or sign in as one (${route.credential.hint}); dbx-gateway doctor shows who it is`,
          retryInMs: backoff(route),
        };
      }
      if (probe.status >= 200 && probe.status < 300) identity = identityOf(probe.body);
      else note = ` (SCIM Me answered ${probe.status}: identity not known)`;
    } catch (err) {
      const gatewayError = toGatewayError(err, route.target.origin, options.connectTimeouts());
      if (gatewayError.code === 'GATEWAY_UPSTREAM_UNREACHABLE') {
        return {
          ok: false,
          reason: scrubSecrets(gatewayError.message),
          fix: `check routes.${route.name}.host, your network and proxy (HTTPS_PROXY, NO_PROXY), and for TLS inspection routes.${route.name}.caFile or NODE_EXTRA_CA_CERTS`,
          retryInMs: backoff(route),
          upstream: true,
        };
      }
      // Slow, not refusing: the token is there and the upstream answers connections.
      note = ` (SCIM Me: ${scrubSecrets(gatewayError instanceof GatewayError ? gatewayError.message : errorMessage(err))})`;
    }
    const usage = options.usage(route);
    const who = identity ? ` as ${identity}` : '';
    return {
      ok: true,
      message: `${route.name}  ready${who} (${route.credential.type}), ${until}${note}`,
      fields: {
        route: route.name,
        state: 'ready',
        ...(identity ? { identity } : {}),
        credential: route.credential.type,
        ...(token && Number.isFinite(token.expiresOnMs) ? { expires_at: new Date(token.expiresOnMs).toISOString() } : {}),
        curl: usage.curl,
        ...(usage.databricksHost ? { databricks_host: usage.databricksHost } : {}),
        ...(usage.spark ? { spark_connect: usage.spark } : {}),
        ...(usage.psql ? { psql: usage.psql } : {}),
        lines: [
          usage.curl,
          ...(usage.databricksHost ? [`DATABRICKS_HOST=${usage.databricksHost}`] : []),
          ...(usage.spark ? [`Spark Connect: ${usage.spark}`] : []),
          ...(usage.psql ? [`Postgres: ${usage.psql}`] : []),
        ],
      },
    };
  };

  return {
    sync() {
      if (stopped) return;
      const routes = options.routes().all;
      for (const [name, entry] of watched) {
        if (!routes.some((r) => r.name === name)) {
          clearTimeout(entry.timer);
          watched.delete(name);
        }
      }
      for (const route of routes) {
        const entry = watched.get(route.name);
        if (entry && entry.route.credential.id === route.credential.id && entry.route.target.href === route.target.href) {
          entry.route = route;
          continue;
        }
        if (entry) clearTimeout(entry.timer);
        const fresh: Watched = { route, state: 'checking', failures: 0, upstreamFailing: false };
        watched.set(route.name, fresh);
        check(fresh);
      }
    },
    tokenArrived(credentialId) {
      if (stopped) return;
      for (const entry of watched.values()) {
        if (entry.state !== 'failing' || entry.route.credential.id !== credentialId || entry.upstreamFailing) continue;
        const latest = current(entry.route.name);
        if (!latest) continue;
        entry.route = latest;
        check(entry);
      }
    },
    stop() {
      stopped = true;
      for (const entry of watched.values()) clearTimeout(entry.timer);
    },
  };
}

/** A token error's text ends with "Fix: ..." (token-cache.ts): the reason and the fix, apart. */
function splitFix(message: string, hint: string): { reason: string; fix: string } {
  const at = message.lastIndexOf(' Fix: ');
  if (at < 0) return { reason: message, fix: hint };
  return { reason: message.slice(0, at).replace(/\.$/, ''), fix: message.slice(at + ' Fix: '.length) };
}

/** Local wall-clock time, HH:MM, with the date when it is not today. */
export function clockTime(ms: number, now = Date.now()): string {
  const at = new Date(ms);
  const hhmm = at.toTimeString().slice(0, 5);
  if (at.toDateString() === new Date(now).toDateString()) return hhmm;
  const date = `${at.getFullYear()}-${String(at.getMonth() + 1).padStart(2, '0')}-${String(at.getDate()).padStart(2, '0')}`;
  return `${date} ${hhmm}`;
}
