import type { Route } from '../routing/route-table.js';
import { forwardableResponseHeaders } from './headers.js';
import { rewriteLocation } from './location.js';

/**
 * Media types a browser runs script in. Served from the gateway's origin, such a document (an
 * exported notebook, an SVG) could call the gateway with the user's identity, same-origin.
 */
const ACTIVE_CONTENT = /^\s*(text\/html|application\/xhtml\+xml|image\/svg\+xml)\s*(;|$)/i;

/**
 * The header pass every upstream response gets (proxied, a refused upgrade, a 101): hop-by-hop
 * fields dropped; upstream CORS headers dropped, since they speak for the upstream's origin, not
 * the gateway's (an origin in allowedOrigins gets the gateway's own); a Location that points at
 * the route's upstream made local. And the one deliberate change to upstream headers (README,
 * "Security"): active content gets `Content-Security-Policy: sandbox` (an opaque origin:
 * no script access to the gateway's origin) and nosniff. An upstream CSP stays; browsers enforce
 * every policy present.
 */
export function responseHeaderPass(rawHeaders: string[], route: Route, prefix: string, handshake = false): string[] {
  let active = false;
  let nosniff = false;
  const headers = forwardableResponseHeaders(
    rawHeaders,
    (name, value) => {
      if (name.startsWith('access-control-')) return undefined;
      if (name === 'location') return rewriteLocation(value, route.target, prefix);
      if (name === 'content-type' && ACTIVE_CONTENT.test(value)) active = true;
      if (name === 'x-content-type-options') nosniff = true;
      return value;
    },
    handshake,
  );
  if (active) {
    headers.push('content-security-policy', 'sandbox');
    if (!nosniff) headers.push('x-content-type-options', 'nosniff');
  }
  return headers;
}
