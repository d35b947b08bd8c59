import http from 'node:http';
import https from 'node:https';
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type ConnectionOptions, connect as connectTls, type TLSSocket } from 'node:tls';
import { ProxyError, UpstreamConnectError } from '../errors.js';
import { upstreamTrust } from '../security/ca-trust.js';
import type { EgressProxy } from './egress-proxy.js';

// The one place that opens a connection to an upstream, for every door (the HTTP pool, WebSocket
// upgrades, Spark Connect sessions, the Postgres door): directly, or through the egress proxy's
// CONNECT tunnel; then TLS with the host name verified (no SNI for IP literals, RFC 6066 section
// 3), the route's caFile (and the OS trust store where Node reads it) added to the public roots,
// and ALPN when the protocol needs it.

export { UpstreamConnectError };

/** Where to connect: a URL, or undici's connect options (https: means TLS; the port defaults to 443 / 80). */
export interface UpstreamTarget {
  protocol: string;
  hostname: string;
  port: string | number;
}

export interface ConnectUpstreamOptions {
  /** PEM file added to the public roots (corporate TLS inspection, a test CA). */
  caFile?: string;
  proxy?: EgressProxy;
  /** ALPN protocols to offer (h2 for Spark Connect, http/1.1 for the HTTP pool). */
  alpn?: string[];
  /** TCP (+ tunnel) + TLS together. */
  timeoutMs: number;
  /** Where the TLS session of the last connection is kept, for resumption on the next (as undici's own connector does). */
  tlsSession?: { session?: Buffer };
}

/**
 * A connection to `target`, through the proxy when there is one, TLS (verified) for https
 * targets, within `timeoutMs`. Rejects with ProxyError (the proxy refused or did not answer) or
 * UpstreamConnectError (the socket's own error as its cause, or `timeoutMs` set).
 */
export async function connectUpstream(target: UpstreamTarget, options: ConnectUpstreamOptions): Promise<Socket> {
  const tls = target.protocol === 'https:';
  const host = target.hostname.replace(/^\[|\]$/g, '');
  const port = Number(target.port) || (tls ? 443 : 80);
  const deadline = performance.now() + options.timeoutMs;
  const socket = await connectTcpUpstream(host, port, options);
  if (!tls) return socket;
  return upgradeToTls(socket, host, options, deadline);
}

/** A TCP connection (through the proxy when there is one), not yet TLS. */
export async function connectTcpUpstream(host: string, port: number, options: Pick<ConnectUpstreamOptions, 'proxy' | 'timeoutMs'>): Promise<Socket> {
  if (options.proxy) return openTunnel(options.proxy, host, port, options.timeoutMs);
  const socket = connectTcp({ host, port });
  await settle(socket, 'connect', performance.now() + options.timeoutMs, options.timeoutMs, `${host.includes(':') ? `[${host}]` : host}:${port}`);
  return socket;
}

/** TLS on an already-open socket (after a protocol's own negotiation, such as PostgreSQL's SSLRequest). */
export function startTls(socket: Socket, host: string, options: Omit<ConnectUpstreamOptions, 'proxy'>): Promise<TLSSocket> {
  return upgradeToTls(socket, host, options, performance.now() + options.timeoutMs);
}

async function upgradeToTls(socket: Socket, host: string, options: Omit<ConnectUpstreamOptions, 'proxy'>, deadline: number): Promise<TLSSocket> {
  const store = options.tlsSession;
  let trust: ReturnType<typeof upstreamTrust>;
  try {
    trust = upstreamTrust(options.caFile);
  } catch (err) {
    // caFile unreadable since the configuration was checked (config/validation.ts).
    socket.destroy();
    throw err;
  }
  const tlsOptions: ConnectionOptions = {
    socket,
    // Node checks the certificate against `host` either way; SNI takes host names only.
    host,
    ...(isIP(host) ? {} : { servername: host }),
    // A prebuilt context (public roots, the OS store where Node reads it, caFile): a per-connection
    // `ca` would parse every root again (security/ca-trust.ts).
    ...(trust ? { secureContext: trust } : {}),
    ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
    ...(store?.session ? { session: store.session } : {}),
  };
  const tls = connectTls(tlsOptions);
  if (store) tls.on('session', (session: Buffer) => (store.session = session));
  try {
    await settle(tls, 'secureConnect', deadline, options.timeoutMs, host);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return tls;
}

/** Resolves on `event`, rejects on error or at `deadline` (the socket is then destroyed). */
function settle(socket: Socket, event: string, deadline: number, timeoutMs: number, authority: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => {
        socket.destroy();
        reject(new UpstreamConnectError(authority, `${authority} did not connect within ${timeoutMs} ms (timeouts.connectMs)`, { timeoutMs }));
      },
      Math.max(deadline - performance.now(), 0),
    );
    timer.unref();
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new UpstreamConnectError(authority, `${authority}: ${err.code ?? ''} ${err.message}`.trim(), { cause: err }));
    };
    socket.once('error', onError);
    socket.once(event, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve();
    });
  });
}

/**
 * A CONNECT tunnel to host:port through the proxy (RFC 9110 section 9.3.6), with the proxy's
 * Basic credentials.
 */
export function openTunnel(proxy: EgressProxy, host: string, port: number, timeoutMs: number): Promise<Socket> {
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return new Promise((resolve, reject) => {
    const secure = proxy.url.protocol === 'https:';
    const req = (secure ? https : http).request({
      host: proxy.url.hostname.replace(/^\[|\]$/g, ''),
      port: proxy.url.port || (secure ? 443 : 80),
      method: 'CONNECT',
      path: authority,
      headers: { host: authority, ...(proxy.authorization ? { 'proxy-authorization': proxy.authorization } : {}) },
      agent: false,
    });
    const timer = setTimeout(
      () => req.destroy(new ProxyError(proxy.display, authority, `did not answer within ${timeoutMs} ms (timeouts.connectMs)`)),
      timeoutMs,
    );
    timer.unref();
    req.once('connect', (res: http.IncomingMessage, socket: Socket, head: Buffer) => {
      clearTimeout(timer);
      if (res.statusCode !== 200) {
        socket.destroy();
        const reason = res.statusCode === 407 ? ' (proxy authentication required: put user:password in the proxy URL)' : '';
        reject(new ProxyError(proxy.display, authority, `answered ${res.statusCode}${reason}`));
        return;
      }
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err instanceof ProxyError ? err : new ProxyError(proxy.display, authority, `could not be reached (${err.code ?? err.message})`, { cause: err }));
    });
    req.end();
  });
}
