import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../errors.js';

export interface BrowserVerdict {
  /** Set when the Origin is in allowedOrigins: the response carries CORS headers for it. */
  corsOrigin?: string;
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Cross-site browser requests are refused (403): a web page must not be able to use the gateway's
 * identity through the user's browser (CSRF, cross-site WebSocket hijacking). A request is let
 * through when it carries no browser marks (curl, SDKs), when its Origin is the gateway itself, or
 * when the Origin is listed in allowedOrigins, which is also the only case that gets CORS headers.
 * Sec-Fetch-Site catches navigations and no-cors requests that carry no Origin (an <img> or a form
 * GET from another site).
 */
/** The verdict of a request with no browser marks (curl, SDKs): shared, so the common path allocates nothing. */
const NOT_A_BROWSER: BrowserVerdict = Object.freeze({});

export function createBrowserGuard(allowedOrigins: readonly string[]): (headers: IncomingHttpHeaders) => BrowserVerdict {
  const allowed = new Set(allowedOrigins);
  return function browserGuard(headers) {
    const origin = one(headers.origin);
    if (origin !== undefined && allowed.has(origin)) return { corsOrigin: origin };
    if (origin !== undefined && !isSameOrigin(origin, one(headers.host))) {
      throw new GatewayError(
        'GATEWAY_FORBIDDEN',
        `browser request from Origin "${origin}" refused; to let a web app call the gateway, add its origin to allowedOrigins`,
      );
    }
    const site = one(headers['sec-fetch-site']);
    if (origin === undefined && site === undefined) return NOT_A_BROWSER;
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      throw new GatewayError(
        'GATEWAY_FORBIDDEN',
        `${site} browser request refused (Sec-Fetch-Site: ${site}); to let a web app call the gateway, add its origin to allowedOrigins`,
      );
    }
    return NOT_A_BROWSER;
  };
}

/** The page is served by the gateway itself: http://<the Host it was reached at>. */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (origin === 'null' || host === undefined) return false;
  try {
    const url = new URL(origin);
    // http or https: the gateway serves one of them per port (listen.tls), and either is itself.
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host === host.toLowerCase() && origin === url.origin;
  } catch {
    return false;
  }
}

/** Headers for an allowed origin: added to every response, upstream CORS headers dropped. */
export function corsHeaders(origin: string): Record<string, string> {
  return { 'access-control-allow-origin': origin, vary: 'Origin' };
}

/**
 * The headers of the 204 answer when this is a CORS preflight from an allowed origin (answered by
 * the gateway: never forwarded, no key, no token); undefined for any other request.
 */
export function preflightAnswer(method: string | undefined, headers: IncomingHttpHeaders, corsOrigin: string | undefined): Record<string, string> | undefined {
  if (corsOrigin === undefined || method !== 'OPTIONS' || headers['access-control-request-method'] === undefined) return undefined;
  return preflightHeaders(corsOrigin, headers);
}

function preflightHeaders(origin: string, headers: IncomingHttpHeaders): Record<string, string> {
  const method = one(headers['access-control-request-method']) ?? 'GET';
  const requested = one(headers['access-control-request-headers']);
  return {
    ...corsHeaders(origin),
    'access-control-allow-methods': method,
    ...(requested ? { 'access-control-allow-headers': requested } : {}),
    'access-control-max-age': '600',
  };
}
