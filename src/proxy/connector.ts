import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { type ConnectionOptions, connect as connectTls, type TLSSocket } from 'node:tls';
import { trustWithCaFile } from '../security/ca-trust.js';
import type { EgressProxy } from './egress-proxy.js';
import { openTunnel } from './transport.js';

// Opening a connection to an upstream: directly, or through the egress proxy's CONNECT tunnel;
// then TLS with the host name verified (no SNI for IP literals, RFC 6066 section 3), the
// route's caFile added to the public roots, and ALPN when the protocol needs it.

export interface ConnectUpstreamOptions {
  /** PEM file added to the public roots (corporate TLS inspection, a test CA). */
  caFile?: string;
  proxy?: EgressProxy;
  /** ALPN protocols to offer (h2 for Spark Connect). */
  alpn?: string[];
  /** TCP (+ tunnel) + TLS together. */
  timeoutMs: number;
}

export class UpstreamConnectError extends Error {
  constructor(
    readonly authority: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'UpstreamConnectError';
  }
}

/** A TCP connection (through the proxy when there is one), not yet TLS. */
export async function connectTcpUpstream(host: string, port: number, options: Pick<ConnectUpstreamOptions, 'proxy' | 'timeoutMs'>): Promise<Socket> {
  if (options.proxy) return openTunnel(options.proxy, host, port, options.timeoutMs);
  const socket = connectTcp({ host, port });
  await settle(socket, 'connect', options.timeoutMs, `${host}:${port}`);
  return socket;
}

/** TLS on an already-open socket (after a protocol's own negotiation, such as PostgreSQL's SSLRequest). */
export async function startTls(socket: Socket, host: string, options: Pick<ConnectUpstreamOptions, 'caFile' | 'alpn' | 'timeoutMs'>): Promise<TLSSocket> {
  const tlsOptions: ConnectionOptions = {
    socket,
    ...(isIP(host) ? {} : { servername: host }),
    ...(options.caFile ? { secureContext: trustWithCaFile(options.caFile) } : {}),
    ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
  };
  const tls = connectTls(tlsOptions);
  try {
    await settle(tls, 'secureConnect', options.timeoutMs, host);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return tls;
}

/** Resolves on `event`, rejects on error or after the timeout (the socket is then destroyed). */
function settle(socket: Socket, event: string, timeoutMs: number, authority: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new UpstreamConnectError(authority, `${authority} did not connect within ${timeoutMs} ms (timeouts.connectMs)`));
    }, timeoutMs);
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
