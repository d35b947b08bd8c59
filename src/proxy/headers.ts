import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../errors.js';

/**
 * Hop-by-hop fields apply to one connection only and are never forwarded
 * (https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1). Transfer-Encoding is left to Node:
 * it re-frames each side itself.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade']);

/** Headers through which a client could present credentials of its own. */
const CLIENT_CREDENTIAL_HEADERS = ['authorization'];
/**
 * The gateway's own namespace: headers it reads itself (X-Dbx-Gateway-Key, the inbound key;
 * X-Dbx-Gateway-Control, the control secret) or sets (X-Dbx-Gateway-Error). The whole prefix, so a
 * header added later is never forwarded by default.
 */
const GATEWAY_HEADER_PREFIX = 'x-dbx-gateway-';
/** The SDKs' service-principal headers: the gateway sets them from its own credential, never the client's. */
const AZURE_SP_HEADER_PREFIX = 'x-databricks-azure-';

/**
 * Headers that claim to describe the client's view of the request (X-Forwarded-*, Forwarded,
 * X-Real-IP) or override its URL in some frameworks (X-Original-URL, X-Rewrite-URL). From a client
 * they are spoofs that could steer redirects or slip past the route policy: never forwarded (the
 * gateway adds no X-Forwarded-* of its own either).
 */
const SPOOFABLE_HEADERS = ['forwarded', 'x-real-ip', 'x-original-url', 'x-rewrite-url'];
const FORWARDED_PREFIX = 'x-forwarded-';

/** Headers that frame the message: Node re-frames them for the upstream, never drop them. */
const FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding', 'host']);

function connectionListed(value: string | string[] | undefined): string[] {
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return text
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

/** A hop-by-hop field (lower case), on every protocol the gateway forwards. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

/**
 * A field only the gateway may set (lower case): client credentials, the gateway's own
 * X-Dbx-Gateway-* headers (inbound key, control secret), the service-principal headers, and
 * spoofable forwarding headers. Dropped from HTTP requests,
 * upgrades and Spark Connect calls alike.
 */
export function isGatewayOnlyHeader(name: string): boolean {
  return (
    CLIENT_CREDENTIAL_HEADERS.includes(name) ||
    name.startsWith(GATEWAY_HEADER_PREFIX) ||
    name.startsWith(AZURE_SP_HEADER_PREFIX) ||
    name.startsWith(FORWARDED_PREFIX) ||
    SPOOFABLE_HEADERS.includes(name)
  );
}

/** A request header the client may not send on to the upstream (`listed`: named by Connection). */
function isDroppedRequestHeader(name: string, listed: readonly string[], upgrade: boolean): boolean {
  if (upgrade && (name === 'connection' || name === 'upgrade')) return false;
  return HOP_BY_HOP.has(name) || (listed.includes(name) && !FRAMING_HEADERS.has(name)) || isGatewayOnlyHeader(name);
}

/**
 * Request pass for WebSocket upgrades: removes what must not reach the upstream from the parsed
 * headers. The Connection and Upgrade fields are the handshake itself and stay.
 */
export function stripRequestHeaders(headers: IncomingHttpHeaders, upgrade = false): void {
  // Never the framing: a client listing Transfer-Encoding or Content-Length in Connection would
  // otherwise have its already-decoded body sent upstream unframed on a pooled keep-alive
  // connection, where it becomes the start of the next request (smuggling with our token).
  const listed = upgrade ? [] : connectionListed(headers.connection);
  for (const name of Object.keys(headers)) if (isDroppedRequestHeader(name, listed, upgrade)) delete headers[name];
}

/**
 * Request pass for proxied requests, on the raw header list (names as sent, repeats kept) and
 * straight into undici's flat array. Also dropped: Host (the upstream's is set), and the fields
 * undici frames itself: Transfer-Encoding (a body of unknown length goes chunked; Content-Length
 * is kept, so framing is never lost) and Expect (the gateway answers 100-continue itself, after
 * admission, so a refused request never has to send its body).
 */
export function forwardedRequestHeaders(rawHeaders: readonly string[]): string[] {
  let listed: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === 'connection') listed = listed.concat(connectionListed(rawHeaders[i + 1]));
  }
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'transfer-encoding' || lower === 'expect' || isDroppedRequestHeader(lower, listed, false)) continue;
    out.push(name, rawHeaders[i + 1] ?? '');
  }
  return out;
}

/**
 * Response pass: the upstream's raw header list (names as sent, repeats kept: every Set-Cookie)
 * minus hop-by-hop fields and Transfer-Encoding, which Node sets for the client connection.
 * `rewrite` may change a value, or drop the field by returning undefined. For a 101 handshake,
 * Connection and Upgrade are the handshake itself and stay.
 */
export function forwardableResponseHeaders(rawHeaders: string[], rewrite: (name: string, value: string) => string | undefined, handshake = false): string[] {
  const listed = new Set<string>();
  for (let i = 0; !handshake && i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === 'connection') for (const n of connectionListed(rawHeaders[i + 1])) listed.add(n);
  }
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    const lower = name.toLowerCase();
    const kept = handshake && (lower === 'connection' || lower === 'upgrade');
    if (!kept && (HOP_BY_HOP.has(lower) || lower === 'transfer-encoding' || listed.has(lower))) continue;
    const value = rewrite(lower, rawHeaders[i + 1] ?? '');
    if (value !== undefined) out.push(name, value);
  }
  return out;
}

/**
 * A status a response may be relayed with: three digits, 100-599 (RFC 9110 section 15). Node's
 * client parser accepts "099" as 99, and writeHead throws on it.
 */
export function isValidStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 100 && status <= 599;
}

/** The answer to a status isValidStatus refuses: the upstream's fault, 502, nothing of it relayed. */
export function invalidStatus(status: number, upstream: string): GatewayError {
  return new GatewayError('GATEWAY_UPSTREAM_UNREACHABLE', `${upstream} answered with an invalid HTTP status (${status}); nothing of that answer was relayed`);
}

/** True when the request carries no body, so it can be sent again (401 replay). */
export function hasNoBody(headers: IncomingHttpHeaders): boolean {
  return headers['transfer-encoding'] === undefined && (headers['content-length'] ?? '0') === '0';
}
