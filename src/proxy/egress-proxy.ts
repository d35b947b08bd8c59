import { BlockList, isIP } from 'node:net';
import { isLoopbackHost } from '../security/loopback.js';

/** An egress proxy as the gateway uses it: where it is, how to log it, and its Basic credentials. */
export interface EgressProxy {
  /** scheme://host:port, without credentials. */
  url: URL;
  /** For logs, errors, /readyz and doctor: the URL without userinfo. */
  display: string;
  /** `Basic ...` from the URL's userinfo (percent-decoded), when it has one. */
  authorization?: string;
}

/**
 * Managed-identity endpoints answer on the link-local IMDS address or a loopback IDENTITY_ENDPOINT;
 * a corporate proxy cannot reach either, so they never go through one (README, "Behind a corporate proxy").
 */
const NEVER_PROXIED = ['169.254.169.254'];

/**
 * The proxy for connections to `target`: the route's own setting (`proxy: URL` or `none`) wins;
 * else HTTPS_PROXY (https targets) or HTTP_PROXY (http targets), lower-case forms first as curl
 * reads them, unless NO_PROXY matches. Loopback and managed-identity hosts are never proxied.
 */
export function resolveProxy(target: URL, env: NodeJS.ProcessEnv, override?: string): EgressProxy | undefined {
  const host = target.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (isLoopbackHost(host) || NEVER_PROXIED.includes(host)) return undefined;
  if (override === 'none') return undefined;
  const configured = override ?? (target.protocol === 'https:' ? (env.https_proxy ?? env.HTTPS_PROXY) : (env.http_proxy ?? env.HTTP_PROXY));
  if (!configured) return undefined;
  if (override === undefined && bypassesProxy(target, env.no_proxy ?? env.NO_PROXY ?? '')) return undefined;
  return parseProxyUrl(configured);
}

/** `http://user:p%40ss@proxy:3128` -> the proxy without credentials, and `Basic` of user:p@ss. */
export function parseProxyUrl(text: string): EgressProxy {
  const url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`proxy ${url.protocol}//${url.host}: only http:// and https:// proxies are supported`);
  }
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  const display = url.origin;
  return {
    url: new URL(display),
    display,
    ...(user || password ? { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } : {}),
  };
}

/**
 * NO_PROXY as curl and most tools read it: a comma (or space) list of `*` (everything), host
 * names (which also match their subdomains), `.suffix` and `*.suffix`, `host:port`, IP addresses
 * and CIDR ranges (IPv4 and IPv6).
 */
export function bypassesProxy(target: URL, noProxy: string): boolean {
  const host = target.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = target.port || (target.protocol === 'https:' ? '443' : '80');
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      if (inCidr(host, entry)) return true;
      continue;
    }
    const { name, entryPort } = splitHostPort(entry);
    if (entryPort !== undefined && entryPort !== port) continue;
    const bare = name.replace(/^\*?\./, '');
    if (host === bare || host.endsWith(`.${bare}`)) return true;
  }
  return false;
}

function splitHostPort(entry: string): { name: string; entryPort?: string } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return { name: bracketed[1] ?? '', ...(bracketed[2] ? { entryPort: bracketed[2] } : {}) };
  // A bare IPv6 address has several colons and no port.
  if (isIP(entry) === 6) return { name: entry };
  const colon = entry.lastIndexOf(':');
  return colon > 0 && /^\d+$/.test(entry.slice(colon + 1)) ? { name: entry.slice(0, colon), entryPort: entry.slice(colon + 1) } : { name: entry };
}

function inCidr(host: string, cidr: string): boolean {
  const [network = '', bits = ''] = cidr.split('/');
  const family = isIP(network);
  const hostFamily = isIP(host);
  if (family === 0 || hostFamily !== family || !/^\d+$/.test(bits)) return false;
  const list = new BlockList();
  try {
    list.addSubnet(network, Number(bits), family === 6 ? 'ipv6' : 'ipv4');
  } catch {
    return false;
  }
  return list.check(host, family === 6 ? 'ipv6' : 'ipv4');
}

/** Removes userinfo from any URL in `text`, for messages that may quote a proxy URL. */
export function withoutCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1');
}
