import { GatewayError } from '../errors.js';

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];
const MAX_REMEMBERED_HOSTS = 256;

/** The host part of a Host header value, lower-cased; undefined when it is malformed. */
export function hostName(hostHeader: string): string | undefined {
  const value = hostHeader.trim().toLowerCase();
  const match = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/.exec(value);
  return match?.[1];
}

/**
 * DNS-rebinding guard: a web page can point its own name at 127.0.0.1, but it cannot make the
 * browser send a Host header other than its own name. Exact (anchored) matches only, any port.
 */
export function createHostGuard(allowedHosts: readonly string[]): (hostHeader: string | undefined) => void {
  const allowed = new Set([...LOOPBACK_NAMES, ...allowedHosts.map((h) => h.toLowerCase())]);
  // Host values already accepted ("localhost:8080"): clients send the same few again and again,
  // so the common path is one Set lookup. Bounded: cleared when full.
  const accepted = new Set<string>();
  return function hostGuard(hostHeader) {
    if (hostHeader !== undefined && accepted.has(hostHeader)) return;
    const name = hostHeader === undefined ? undefined : hostName(hostHeader);
    if (name !== undefined && allowed.has(name)) {
      if (accepted.size >= MAX_REMEMBERED_HOSTS) accepted.clear();
      accepted.add(hostHeader as string);
      return;
    }
    throw new GatewayError(
      'GATEWAY_FORBIDDEN',
      `Host "${hostHeader ?? ''}" is not allowed; use localhost or 127.0.0.1, or add the name to allowedHosts in the config`,
    );
  };
}
