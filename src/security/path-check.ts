import { GatewayError } from '../errors.js';

/** A dot-dot segment, raw or percent-encoded in any mix ("..", "%2e%2e", ".%2E"). */
const DOT_DOT_SEGMENT = /(^|\/)(\.|%2e){2}(\/|$)/i;
/** A '%' not followed by two hex digits: parsers disagree on what it means (or throw). */
const INVALID_ESCAPE = /%(?![0-9a-f]{2})/i;
/**
 * Encoded characters that end or split a path for some parser and not for another: '?' and '#'
 * (query, fragment), NUL (C strings) and '\' (a slash to WHATWG URL parsers and some servers).
 */
const ENCODED_SEPARATOR = /%(3f|23|00|5c)/i;
const NEEDS_BYTE_CHECK = /[%\u0080-\u00ff]/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Only origin-form targets ("/path?query") are accepted: an absolute-form target
 * ("GET http://evil/ HTTP/1.1") is refused rather than interpreted. Dot-dot segments are refused
 * because the upstream (or something between) would resolve them and reach a path the route
 * policy never saw. Invalid escapes, encoded separators and escapes that decode to invalid or
 * overlong UTF-8 (%ff, %c0%ae) are refused for the same reason: the policy reads the path one
 * way, and the upstream might read it another.
 */
export function assertSafeTarget(rawUrl: string): void {
  if (!rawUrl.startsWith('/') || rawUrl.startsWith('//')) {
    throw new GatewayError('GATEWAY_BAD_REQUEST', 'the request target must be a path such as /ws/NAME/api/2.0/...');
  }
  const query = rawUrl.indexOf('?');
  const path = query === -1 ? rawUrl : rawUrl.slice(0, query);
  if (DOT_DOT_SEGMENT.test(path)) {
    throw new GatewayError('GATEWAY_BAD_REQUEST', 'paths with ".." segments (raw or percent-encoded) are not forwarded');
  }
  if (!NEEDS_BYTE_CHECK.test(path)) return;
  if (INVALID_ESCAPE.test(path)) {
    throw new GatewayError('GATEWAY_BAD_REQUEST', 'the path has a "%" that is not followed by two hex digits; encode a literal % as %25');
  }
  if (ENCODED_SEPARATOR.test(path)) {
    throw new GatewayError(
      'GATEWAY_BAD_REQUEST',
      'encoded "?", "#", NUL or "\\" (%3F, %23, %00, %5C) in the path are not forwarded; send them unencoded in the query, or not at all',
    );
  }
  try {
    utf8.decode(Buffer.from(percentDecode(path), 'latin1'));
  } catch {
    throw new GatewayError('GATEWAY_BAD_REQUEST', 'the path decodes to invalid or overlong UTF-8 (e.g. %FF, %C0%AE); percent-encode UTF-8 bytes only');
  }
}

/**
 * Local endpoints (/healthz, /metrics, /metadata/SECRET, ...) have no name that needs encoding.
 * An encoded spelling (/%6detadata/SECRET) would be decoded by the router but not by the log's
 * redaction: refused instead.
 */
export function assertLocalTarget(rawUrl: string): void {
  assertSafeTarget(rawUrl);
  const query = rawUrl.indexOf('?');
  if ((query === -1 ? rawUrl : rawUrl.slice(0, query)).includes('%')) {
    throw new GatewayError('GATEWAY_BAD_REQUEST', 'local endpoints take no percent-encoded characters in the path');
  }
}

/**
 * %XX escapes to the bytes they stand for, one char per byte (latin1), never throwing: unlike
 * decodeURIComponent, which throws on %ff and so once left a path undecoded for the policy.
 */
export function percentDecode(text: string): string {
  return text.includes('%') ? text.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))) : text;
}
