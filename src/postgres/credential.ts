import { randomUUID } from 'node:crypto';
import type { AccessToken, Credential } from '../auth/credential.js';
import type { TokenCache } from '../auth/token-cache.js';
import type { PostgresSettings } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { scrubSecrets } from '../observability/redact.js';
import { authHeaders } from '../proxy/auth-headers.js';
import { type EgressProxy, resolveProxy } from '../proxy/egress-proxy.js';
import type { Route } from '../routing/route-table.js';

// The Lakebase database credential and what it logs in as, all asked of the workspace with the
// route's own token through the route's own pool (its caFile, timeouts and egress proxy).
// API facts: databricks-sdk-go service/postgres (Autoscaling) and service/database (Provisioned).

/** Lakebase listens on the standard port unless the host names another. */
export const DEFAULT_POSTGRES_PORT = 5432;
/** A workspace answer larger than this is not one of these small JSON documents. */
const MAX_ANSWER_BYTES = 256 * 1024;
const API_TIMEOUT_MS = 30_000;

export interface ServerAddress {
  host: string;
  port: number;
}

/** The egress proxy to the server: its own NO_PROXY entry may differ from the workspace's. */
export function serverProxy(route: Route, address: ServerAddress): EgressProxy | undefined {
  return resolveProxy(new URL(`https://${address.host}:${address.port}`), process.env, route.config.proxy);
}

/** HOST or HOST:PORT. */
export function parseServerAddress(text: string): ServerAddress {
  const m = /^(.+?)(?::(\d{1,5}))?$/.exec(text.trim());
  return { host: m?.[1] ?? text, port: m?.[2] ? Number(m[2]) : DEFAULT_POSTGRES_PORT };
}

/**
 * The database credential as a Credential, so the token cache keeps it by the same rules as every
 * token (one mint at a time, refresh ahead, the 40 s floor, backoff, dropped when refused). Its id
 * names the workspace identity and the database: two routes with both in common share one.
 */
export function databaseCredential(route: Route, settings: PostgresSettings, tokens: TokenCache): Credential {
  const what = settings.endpoint ?? `instance ${settings.instance}`;
  return {
    type: 'lakebase',
    id: `lakebase\u0000${route.credential.id}\u0000${route.target.origin}\u0000${settings.endpoint ?? ''}\u0000${settings.instance ?? ''}`,
    get hint() {
      return route.credential.hint;
    },
    reason: `database credential for ${what}, minted with route ${route.name}'s ${route.credential.type} token`,
    async getToken(): Promise<AccessToken> {
      if (settings.endpoint !== undefined) {
        const answer = await workspaceJson(route, tokens, 'POST', '/api/2.0/postgres/credentials', { endpoint: settings.endpoint });
        return credentialFrom(answer, 'expire_time');
      }
      const answer = await workspaceJson(route, tokens, 'POST', '/api/2.0/database/credentials', {
        instance_names: [settings.instance],
        request_id: randomUUID(),
      });
      return credentialFrom(answer, 'expiration_time');
    },
  };
}

function credentialFrom(answer: Record<string, unknown>, expiryField: string): AccessToken {
  const token = answer.token;
  const expiry = Date.parse(String(answer[expiryField] ?? ''));
  if (typeof token !== 'string' || token === '') throw new Error('the workspace answered without a database credential (no token field)');
  // Without an expiry, assume the documented hour rather than forever.
  return { token, expiresOnMs: Number.isFinite(expiry) ? expiry : Date.now() + 60 * 60_000 };
}

/** The server's address: configured, or discovered from the endpoint or instance. */
export async function discoverServer(route: Route, settings: PostgresSettings, tokens: TokenCache): Promise<ServerAddress> {
  if (settings.host !== undefined) return parseServerAddress(settings.host);
  if (settings.endpoint !== undefined) {
    const answer = await workspaceJson(route, tokens, 'GET', `/api/2.0/postgres/${settings.endpoint}`);
    const host = (answer.status as { hosts?: { host?: unknown } } | undefined)?.hosts?.host;
    if (typeof host !== 'string' || host === '') throw new Error(`endpoint ${settings.endpoint} has no host yet (status.hosts.host); is it running?`);
    return parseServerAddress(host);
  }
  const answer = await workspaceJson(route, tokens, 'GET', `/api/2.0/database/instances/${encodeURIComponent(settings.instance ?? '')}`);
  const host = answer.read_write_dns;
  if (typeof host !== 'string' || host === '') throw new Error(`instance ${settings.instance} has no read_write_dns yet; is it available?`);
  return parseServerAddress(host);
}

/**
 * The role to log in as: configured, else the identity's Databricks user name (SCIM Me userName:
 * a user's email, a service principal's application id), else the credential's clientId.
 */
export async function loginUser(route: Route, settings: PostgresSettings, tokens: TokenCache): Promise<string> {
  if (settings.user !== undefined) return settings.user;
  const me = await workspaceJson(route, tokens, 'GET', '/api/2.0/preview/scim/v2/Me');
  const name = me.userName ?? me.applicationId;
  const clientId = route.config.credential.clientId;
  if (typeof name === 'string' && name !== '') return name;
  if (typeof clientId === 'string' && clientId !== '') return clientId;
  throw new Error(`the workspace did not say who the route's identity is (no userName in SCIM Me); set routes.${route.name}.postgres.user`);
}

/** A workspace API call with the route's headers; non-2xx answers become errors that say so. */
async function workspaceJson(route: Route, tokens: TokenCache, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>> {
  const auth = await authHeaders(route, tokens);
  const res = await route.pool.request({
    origin: route.target.origin,
    path,
    method,
    headers: { ...auth.headers, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    headersTimeout: API_TIMEOUT_MS,
    bodyTimeout: API_TIMEOUT_MS,
  });
  let text = '';
  for await (const chunk of res.body) {
    if (text.length < MAX_ANSWER_BYTES) text += (chunk as Buffer).toString('utf8');
  }
  if (res.statusCode === 401) tokens.reject(route.credential, 'databricks', auth.token);
  if (res.statusCode < 200 || res.statusCode >= 300) {
    let detail = text.slice(0, 300);
    try {
      const parsed = JSON.parse(text) as { error_code?: string; message?: string };
      detail = [parsed.error_code, parsed.message].filter(Boolean).join(': ') || detail;
    } catch {
      // not JSON: the start of the text
    }
    throw new Error(`${method} ${path} answered ${res.statusCode}${detail ? ` (${scrubSecrets(detail)})` : ''}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${method} ${path} did not answer JSON: ${errorMessage(err)}`);
  }
}
