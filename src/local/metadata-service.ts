import { Hono } from 'hono';
import type { TokenCache } from '../auth/token-cache.js';
import { GatewayError } from '../errors.js';
import type { Route, RouteTable } from '../routing/route-table.js';
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
  now?: () => number;
}

/**
 * The Databricks SDK metadata-service protocol (the Go and Python SDKs' `metadata-service` auth,
 * as served by the Databricks VS Code extension): GET {url} with X-Databricks-Metadata-Version: 1
 * and X-Databricks-Host: the SDK's normalised host; answer {access_token, token_type, expires_on}
 * with expires_on a JSON number of epoch seconds, the token's real expiry (Python treats a token
 * with 40 s or less left as expired). A missing or unknown version and a host that matches no
 * route get 4xx (see ../shared/design/protocols.md, "Metadata-service protocol").
 * The URL carries a per-start secret compared in constant time.
 */
export function metadataService(options: MetadataServiceOptions): Hono {
  const app = new Hono();
  const now = options.now ?? Date.now;

  app.all('/metadata/*', async (c) => {
    const presented = c.req.path.slice('/metadata/'.length);
    if (!sameSecret(presented, options.secret)) {
      throw new GatewayError('GATEWAY_FORBIDDEN', 'wrong metadata-service URL; use DATABRICKS_METADATA_SERVICE_URL as printed when dbx-gateway started');
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
    if (!host) throw new GatewayError('GATEWAY_BAD_REQUEST', 'missing X-Databricks-Host header; send the workspace URL, e.g. https://adb-1234567890123456.7.azuredatabricks.net');
    const route = routeForHost(host, options.routes.routes, options.localOrigins());
    if (!route) {
      const known = options.routes.routes.map((r) => r.target.origin);
      throw new GatewayError('GATEWAY_ROUTE_NOT_FOUND', `no route serves host ${host}; served hosts: ${[...new Set(known)].join(', ') || 'none'}`);
    }
    const token = await options.tokens.get(route.credential, 'databricks');
    const expiresOnMs = Number.isFinite(token.expiresOnMs) ? token.expiresOnMs : now() + NON_EXPIRING_TTL_S * 1000;
    return c.json(
      { access_token: token.token, token_type: 'Bearer', expires_on: Math.floor(expiresOnMs / 1000) },
      200,
      { 'cache-control': 'no-store' },
    );
  });
  return app;
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
  const matches = routes.filter(
    (r) => r.target.origin.toLowerCase() === wanted || (localOrigins.get(r.name) ?? []).includes(wanted),
  );
  return matches.find((r) => r.config.kind === 'workspace') ?? matches[0];
}
