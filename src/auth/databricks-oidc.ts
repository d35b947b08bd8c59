import type { RouteConfig } from '../config/types.js';
import { requestJson } from './https-json.js';

export interface OidcEndpoints {
  authorizationEndpoint: URL;
  tokenEndpoint: URL;
}

/**
 * Databricks OAuth endpoints of a route's host. Workspaces publish them at
 * {host}/oidc/.well-known/oauth-authorization-server; the account console's are
 * {host}/oidc/accounts/{account_id}/v1/authorize and /v1/token (Databricks Go SDK
 * credentials/u2m/endpoint_supplier.go, Python SDK oauth.py get_account_endpoints).
 * Endpoints on another host are refused: a client secret or refresh token goes only to the route's
 * own host. Discovered once per route (a failed discovery is tried again next time), so token
 * refreshes cost one request, not two.
 */
export function oidcEndpoints(route: RouteConfig, signal?: AbortSignal): Promise<OidcEndpoints> {
  let endpoints = discovered.get(route);
  if (!endpoints) {
    endpoints = discover(route, signal);
    discovered.set(route, endpoints);
    endpoints.catch(() => discovered.delete(route));
  }
  return endpoints;
}

const discovered = new WeakMap<RouteConfig, Promise<OidcEndpoints>>();

async function discover(route: RouteConfig, signal?: AbortSignal): Promise<OidcEndpoints> {
  if (route.kind === 'account') {
    if (!route.accountId) throw new Error(`account route ${route.name} has no accountId`);
    const base = `/oidc/accounts/${encodeURIComponent(route.accountId)}/v1`;
    return {
      authorizationEndpoint: new URL(`${base}/authorize`, route.upstream),
      tokenEndpoint: new URL(`${base}/token`, route.upstream),
    };
  }
  const wellKnown = new URL('/oidc/.well-known/oauth-authorization-server', route.upstream);
  const res = await requestJson(wellKnown, { ...(route.caFile ? { caFile: route.caFile } : {}), ...(signal ? { signal } : {}) });
  const body = res.body as { token_endpoint?: unknown; authorization_endpoint?: unknown } | undefined;
  if (res.status !== 200 || typeof body?.token_endpoint !== 'string') {
    throw new Error(
      `OAuth discovery at ${wellKnown.href} answered ${res.status} without a token_endpoint; is ${route.upstream.origin} a Databricks workspace URL?`,
    );
  }
  const tokenEndpoint = sameOrigin(body.token_endpoint, route, wellKnown);
  const authorizationEndpoint =
    typeof body.authorization_endpoint === 'string' ? sameOrigin(body.authorization_endpoint, route, wellKnown) : new URL('/oidc/v1/authorize', route.upstream);
  return { authorizationEndpoint, tokenEndpoint };
}

function sameOrigin(text: string, route: RouteConfig, wellKnown: URL): URL {
  const url = new URL(text);
  if (url.origin !== route.upstream.origin) {
    throw new Error(`OAuth discovery at ${wellKnown.href} named a token endpoint on another host (${url.origin}); refusing to send credentials there`);
  }
  return url;
}

export interface TokenResponse {
  accessToken: string;
  refreshToken?: string;
  expiresOnMs: number;
}

/**
 * POSTs a form to a Databricks token endpoint; errors carry the OAuth error code and description.
 * The expiry is expires_in from the answer, else `defaultExpiresOnMs` (a token exchange: the JWT's
 * exp), else one hour.
 */
export async function postTokenForm(
  endpoint: URL,
  form: Record<string, string>,
  options: { caFile?: string; signal?: AbortSignal; basicAuth?: [string, string]; defaultExpiresOnMs?: number } = {},
): Promise<TokenResponse> {
  const obtainedAt = Date.now();
  const res = await requestJson(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(options.basicAuth
        ? {
            authorization: `Basic ${Buffer.from(`${encodeURIComponent(options.basicAuth[0])}:${encodeURIComponent(options.basicAuth[1])}`).toString('base64')}`,
          }
        : {}),
    },
    body: new URLSearchParams(form).toString(),
    ...(options.caFile ? { caFile: options.caFile } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const body = res.body as { access_token?: unknown; refresh_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown } | undefined;
  if (res.status !== 200 || typeof body?.access_token !== 'string') {
    const detail = body?.error ? `${String(body.error)}${body.error_description ? `: ${String(body.error_description)}` : ''}` : res.text || 'no body';
    throw new OAuthError(
      `Databricks OAuth token endpoint ${endpoint.origin}${endpoint.pathname} answered ${res.status} (${detail})`,
      typeof body?.error === 'string' ? body.error : undefined,
    );
  }
  const expiresIn = body.expires_in === undefined || body.expires_in === null ? Number.NaN : Number(body.expires_in);
  const expiresOnMs = Number.isFinite(expiresIn) ? obtainedAt + expiresIn * 1000 : (options.defaultExpiresOnMs ?? obtainedAt + 3600 * 1000);
  return {
    accessToken: body.access_token,
    ...(typeof body.refresh_token === 'string' ? { refreshToken: body.refresh_token } : {}),
    expiresOnMs,
  };
}

export class OAuthError extends Error {
  override readonly name = 'OAuthError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}
