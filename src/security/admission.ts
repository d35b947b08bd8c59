import type { IncomingMessage } from 'node:http';
import type { GatewayConfig, InboundKey } from '../config/types.js';
import { GatewayError } from '../errors.js';
import type { ResolvedRequest, Resolver } from '../routing/route-table.js';
import { type BrowserVerdict, createBrowserGuard } from './browser-guard.js';
import { createHostGuard } from './host-guard.js';
import { assertKeyMayUse, createKeyAuthenticator, type KeyAuthenticator } from './inbound-keys.js';
import { assertSafeTarget } from './path-check.js';
import { createRateLimiter } from './rate-limit.js';
import { assertAllowedByPolicy, assertNoMethodOverride } from './route-policy.js';

export interface Admitted extends ResolvedRequest {
  prefix: string;
  key?: InboundKey;
}

export interface Admission {
  /**
   * Every request, local endpoints included: TRACE, TRACK and CONNECT (405), Host allowlist (403)
   * and cross-site browsers (403).
   */
  checkClient(req: IncomingMessage): BrowserVerdict;
  /**
   * Set when inbound keys are configured: the key some headers present (401 without a valid one).
   * The one authenticator of a generation, for proxied traffic, local endpoints and the metadata service.
   */
  readonly authenticate?: KeyAuthenticator;
  /**
   * Set with limits.requestsPerMinutePerKey: takes one request from the key's budget, or the client
   * address's without keys (429 over it). Spark Connect calls count too.
   */
  readonly rateLimit?: (key: InboundKey | undefined, address: string | undefined) => void;
  /**
   * Proxied requests and upgrades, in this order: target shape (400), method-override headers
   * (400), inbound key (401), rate limit (429), route (404), the key's routes (403), route policy
   * (403). `onKey` learns the key's name as soon as it is known, for the log line.
   */
  admitProxy(req: IncomingMessage, resolve: Resolver, onKey?: (name: string) => void): Admitted;
}

/** Methods that echo or tunnel: never forwarded, never answered by a local endpoint. */
const REFUSED_METHODS = new Set(['TRACE', 'TRACK', 'CONNECT']);

export function methodNotAllowed(method: string): GatewayError {
  return new GatewayError('GATEWAY_METHOD_NOT_ALLOWED', `${method} is refused by the gateway (it would echo or tunnel the gateway's credentials)`, {
    headers: { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' },
  });
}

/** The security checks of one gateway, shared by HTTP requests and WebSocket upgrades. */
export function createAdmission(config: Pick<GatewayConfig, 'allowedHosts' | 'allowedOrigins' | 'inboundKeys' | 'limits'>): Admission {
  const hostGuard = createHostGuard(config.allowedHosts);
  const browserGuard = createBrowserGuard(config.allowedOrigins);
  const authenticate = createKeyAuthenticator(config.inboundKeys);
  const perMinute = config.limits.requestsPerMinutePerKey;
  const take = perMinute ? createRateLimiter(perMinute) : undefined;
  const rateLimit = take && ((key: InboundKey | undefined, address: string | undefined) => take(key ? `key ${key.name}` : `client ${address ?? '-'}`));
  return {
    ...(authenticate ? { authenticate } : {}),
    ...(rateLimit ? { rateLimit } : {}),
    checkClient(req) {
      // A reflecting upstream would echo the request, our bearer token included, back to the client.
      if (req.method !== undefined && REFUSED_METHODS.has(req.method)) throw methodNotAllowed(req.method);
      hostGuard(req.headers.host);
      return browserGuard(req.headers);
    },
    admitProxy(req, resolve, onKey) {
      // The raw request target, not a parsed URL: the upstream gets the path byte-for-byte.
      const rawUrl = req.url ?? '/';
      assertSafeTarget(rawUrl);
      assertNoMethodOverride(req.headers);
      const key = authenticate?.(req.headers);
      if (key) onKey?.(key.name);
      rateLimit?.(key, req.socket.remoteAddress);
      const resolved = resolve(rawUrl);
      assertKeyMayUse(key, resolved.route.name);
      assertAllowedByPolicy(resolved.route.config, req.method ?? 'GET', resolved.upstreamPath);
      // The resolver's object is this request's own: add the key to it instead of copying.
      if (key) (resolved as Admitted).key = key;
      return resolved as Admitted;
    },
  };
}
