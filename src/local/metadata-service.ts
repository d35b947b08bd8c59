import type { HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import type { TokenCache } from '../auth/token-cache.js';
import type { InboundKey, RouteConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';
import type { Route, RouteTable } from '../routing/route-table.js';
import { assertKeyMayUse, type KeyAuthenticator } from '../security/inbound-keys.js';
import { sameSecret } from '../security/same-secret.js';

/** The one protocol version the Databricks SDKs speak. */
export const METADATA_VERSION = '1';
/** A PAT has no expiry; SDKs need a number, so they are told to ask again within the hour. */
const NON_EXPIRING_TTL_S = 3600;

export interface MetadataServiceOptions {
  secret: string;
  routes: RouteTable;
  tokens: TokenCache;
  /** Local origins of per-route ports (route name -> http://127.0.0.1:N), also accepted as hosts. */
  localOrigins: () => Map<string, string[]>;
  /**
   * Set when inbound keys are configured: the key a request presents (headers, or the URL's last
   * segment), 401 without one. Undefined without keys.
   */
  authenticate?: KeyAuthenticator;
  now?: () => number;
}

/**
 * Whether the metadata service hands out this route's raw token: a raw token bypasses every
 * policy (readOnly, allowMethods, denyPaths), so a route with one is served only when it opts in.
 */
export function servesRoute(route: Route): boolean {
  return servesRouteConfig(route.config);
}

/** servesRoute on a route's configuration (what `dbx-gateway env` reads without a running gateway). */
export function servesRouteConfig(c: RouteConfig): boolean {
  const hasPolicy = c.readOnly || c.allowMethods !== undefined || (c.denyPaths?.length ?? 0) > 0;
  return !hasPolicy || c.metadataService === true;
}

/** The routes whose raw token the metadata service hands out. */
export function metadataRoutes(routes: readonly Route[]): Route[] {
  return routes.filter(servesRoute);
}

/**
 * The Databricks SDK metadata-service protocol (the Go and Python SDKs' `metadata-service` auth,
 * as served by the Databricks VS Code extension): GET {url} with X-Databricks-Metadata-Version: 1
 * and X-Databricks-Host: the SDK's normalised host; answer {access_token, token_type, expires_on}
 * with expires_on a JSON number of epoch seconds, the token's real expiry (Python treats a token
 * with 40 s or less left as expired). A missing or unknown version and a host that matches no
 * route get 4xx.
 * The URL carries a per-start secret compared in constant time.
 */
export function metadataService(options: MetadataServiceOptions): Hono<{ Bindings: HttpBindings }> {
  const app = new Hono<{ Bindings: HttpBindings }>();
  const now = options.now ?? Date.now;

  app.all('/metadata/*', async (c) => {
    const presented = c.req.path.slice('/metadata/'.length);
    const headers = c.env.incoming.headers;
    // A raw token never goes to a browser, not even to an origin in allowedOrigins: a page
    // holding it could call Databricks directly, past every policy of the gateway.
    if (headers.origin !== undefined || headers['sec-fetch-site'] !== undefined || headers['sec-fetch-mode'] !== undefined) {
      throw new GatewayError('GATEWAY_FORBIDDEN', 'the metadata service does not answer browsers: it hands out raw tokens');
    }
    let key: InboundKey | undefined;
    if (options.authenticate) {
      // With keys, the URL may carry the client's key instead of the per-start secret
      // (DATABRICKS_METADATA_SERVICE_URL=.../metadata/<key>), since SDKs send no other header.
      key = presented.startsWith('dgw_') ? options.authenticate({ 'x-dbx-gateway-key': presented }) : undefined;
      if (!key) {
        if (!sameSecret(presented, options.secret)) throw wrongUrl();
        key = options.authenticate(headers);
      }
    } else if (!sameSecret(presented, options.secret)) {
      throw wrongUrl();
    }
    if (c.req.method !== 'GET') {
      throw new GatewayError('GATEWAY_BAD_REQUEST', 'the metadata service answers GET only');
    }
    const version = c.req.header('x-databricks-metadata-version');
    if (version !== METADATA_VERSION) {
      throw new GatewayError(
        'GATEWAY_BAD_REQUEST',
        version === undefined
          ? 'missing X-Databricks-Metadata-Version header; send X-Databricks-Metadata-Version: 1'
          : `unsupported X-Databricks-Metadata-Version "${version}"; this gateway speaks version 1`,
      );
    }
    const host = c.req.header('x-databricks-host');
    if (!host)
      throw new GatewayError(
        'GATEWAY_BAD_REQUEST',
        'missing X-Databricks-Host header; send the workspace URL, e.g. https://adb-1234567890123456.7.azuredatabricks.net',
      );
    const route = routeForHost(host, options.routes.all, options.localOrigins());
    if (!route) {
      const known = options.routes.all.map((r) => r.target.origin);
      throw new GatewayError('GATEWAY_ROUTE_NOT_FOUND', `no route serves host ${host}; served hosts: ${[...new Set(known)].join(', ') || 'none'}`);
    }
    assertKeyMayUse(key, route.name);
    if (!servesRoute(route)) {
      throw new GatewayError(
        'GATEWAY_FORBIDDEN',
        `route ${route.name} has a policy (readOnly, allowMethods or denyPaths) that a raw token would bypass, so the metadata service does not serve it; set routes.${route.name}.metadataService: true to serve it anyway`,
      );
    }
    const token = await options.tokens.get(route.credential, 'databricks');
    const expiresOnMs = Number.isFinite(token.expiresOnMs) ? token.expiresOnMs : now() + NON_EXPIRING_TTL_S * 1000;
    return c.json({ access_token: token.token, token_type: 'Bearer', expires_on: Math.floor(expiresOnMs / 1000) }, 200, { 'cache-control': 'no-store' });
  });
  return app;
}

function wrongUrl(): GatewayError {
  return new GatewayError('GATEWAY_FORBIDDEN', 'wrong metadata-service URL; use DATABRICKS_METADATA_SERVICE_URL as printed when dbx-gateway started');
}

/** scheme://host[:port] in lower case, default ports dropped, trailing slash and path ignored. */
export function normaliseHost(text: string): string | undefined {
  try {
    const url = new URL(/^https?:\/\//i.test(text) ? text : `https://${text}`);
    return url.origin.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * The route whose upstream (or per-route local port) is this host. Workspace routes win over
 * account routes; among equals the first configured wins.
 */
function routeForHost(host: string, routes: readonly Route[], localOrigins: Map<string, string[]>): Route | undefined {
  const wanted = normaliseHost(host);
  if (!wanted) return undefined;
  const matches = routes.filter((r) => r.target.origin.toLowerCase() === wanted || (localOrigins.get(r.name) ?? []).includes(wanted));
  return matches.find((r) => r.config.kind === 'workspace') ?? matches[0];
}
