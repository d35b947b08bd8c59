/**
 * Rewrites a redirect that points at the route's own upstream so the client stays on the gateway.
 * Redirects anywhere else pass untouched: the token only ever goes to the route's host, and a
 * client following a redirect off the gateway sends no token at all.
 */
export function rewriteLocation(location: string, upstream: URL, prefix: string): string {
  // Path-absolute ("/login") resolves against the upstream's origin. Browsers read "/\\host" as
  // "//host", so a backslash after the first slash is kept out of the local form too.
  if (location.startsWith('/') && !location.startsWith('//') && !location.startsWith('/\\')) return prefix + location;
  const absolute = location.startsWith('//') ? `${upstream.protocol}${location}` : location;
  let url: URL;
  try {
    url = new URL(absolute);
  } catch {
    return location;
  }
  if (url.origin !== upstream.origin) return location;
  // Keep the path and query exactly as the upstream wrote them (URL would re-encode them).
  const rest = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(.*)$/is.exec(absolute)?.[1] ?? '';
  // Leading slashes (and backslashes) collapse to one: "https://upstream//evil.example/x" must not
  // become the scheme-relative "//evil.example/x" on a per-route port, where the prefix is "".
  return prefix + rest.replace(/^[/\\]*/, '/');
}
