import { GatewayError } from '../errors.js';

/** A dot-dot segment, raw or percent-encoded in any mix ("..", "%2e%2e", ".%2E"). */
const DOT_DOT_SEGMENT = /(^|\/)(\.|%2e){2}(\/|$)/i;

/**
 * Only origin-form targets ("/path?query") are accepted: an absolute-form target
 * ("GET http://evil/ HTTP/1.1") is refused rather than interpreted. Dot-dot segments are refused
 * because the upstream (or something between) would resolve them and reach a path the route
 * policy never saw.
 */
export function assertSafeTarget(rawUrl: string): void {
  if (!rawUrl.startsWith('/') || rawUrl.startsWith('//')) {
    throw new GatewayError('GATEWAY_BAD_REQUEST', 'the request target must be a path such as /ws/NAME/api/2.0/...');
  }
  const path = rawUrl.split('?', 1)[0] ?? '';
  if (DOT_DOT_SEGMENT.test(path)) {
    throw new GatewayError('GATEWAY_BAD_REQUEST', 'paths with ".." segments (raw or percent-encoded) are not forwarded');
  }
}
