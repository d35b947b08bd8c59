import { createServer, type IncomingMessage } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { serverPki } from './tls.js';

/** One CONNECT request as the proxy received it. */
export interface SeenConnect {
  /** The request target, e.g. `adb-test.example:8443`. */
  target: string;
  /** The Host header of the CONNECT request. */
  host: string | undefined;
  /** The Proxy-Authorization header, verbatim. */
  proxyAuthorization: string | undefined;
  /** The status the proxy answered (200, 407, 403, 502, 400). */
  status: number;
}

export interface ConnectProxyOptions {
  /** Credentials the proxy requires as `Proxy-Authorization: Basic base64(user:password)`. */
  user?: string;
  password?: string;
  /** Answer every CONNECT with 403 Forbidden (a proxy policy that refuses the destination). */
  refuse?: boolean;
}

export interface ConnectProxy {
  /** http://127.0.0.1:PORT, without credentials. */
  url: URL;
  port: number;
  /** Every CONNECT received, in order. */
  connects: SeenConnect[];
  /** Non-CONNECT requests received (each answered 405). */
  plainRequests: Array<{ method: string; url: string }>;
  /** Tunnels established (CONNECT answered 200 and piped to the destination). */
  tunnels(): number;
  /** Every byte relayed through tunnels, both directions, in arrival order (what the proxy could read). */
  relayed(): Buffer;
  close(): Promise<void>;
}

const RELAY_CAP = 8 << 20;

/**
 * A real HTTP CONNECT proxy on 127.0.0.1:0 that requires Basic proxy credentials. Any requested
 * host is resolved to 127.0.0.1 (CONNECT adb-test.example:P opens 127.0.0.1:P), so tests can use
 * a non-loopback name (loopback upstreams are never proxied) for a local fake upstream.
 */
export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const user = options.user ?? 'user';
  const password = options.password ?? 's3cret!';
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const connects: SeenConnect[] = [];
  const plainRequests: ConnectProxy['plainRequests'] = [];
  const sockets = new Set<Duplex>();
  const relayedChunks: Buffer[] = [];
  let relayedBytes = 0;
  let tunnels = 0;

  const track = (s: Duplex) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const tap = (chunk: Buffer) => {
    if (relayedBytes >= RELAY_CAP) return;
    relayedChunks.push(Buffer.from(chunk));
    relayedBytes += chunk.length;
  };

  const server = createServer((req, res) => {
    plainRequests.push({ method: req.method ?? '', url: req.url ?? '' });
    req.resume();
    res.writeHead(405, { allow: 'CONNECT', 'content-type': 'text/plain', connection: 'close' });
    res.end('this proxy only tunnels (CONNECT)\n');
  });
  server.on('connection', track);

  server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    track(client);
    client.on('error', () => client.destroy());
    const seen: SeenConnect = {
      target: req.url ?? '',
      host: req.headers.host,
      proxyAuthorization: req.headers['proxy-authorization'],
      status: 0,
    };
    connects.push(seen);
    const answer = (status: number, reason: string, extra = '') => {
      seen.status = status;
      client.end(`HTTP/1.1 ${status} ${reason}\r\n${extra}Content-Length: 0\r\nConnection: close\r\n\r\n`);
    };
    if (seen.proxyAuthorization !== expected) {
      answer(407, 'Proxy Authentication Required', 'Proxy-Authenticate: Basic realm="test"\r\n');
      return;
    }
    if (options.refuse) {
      answer(403, 'Forbidden');
      return;
    }
    const port = targetPort(seen.target);
    if (port === undefined) {
      answer(400, 'Bad Request');
      return;
    }
    const upstream = net.connect(port, '127.0.0.1');
    track(upstream);
    upstream.once('error', () => {
      if (seen.status === 0) answer(502, 'Bad Gateway');
      else client.destroy();
    });
    upstream.once('connect', () => {
      seen.status = 200;
      tunnels++;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) {
        tap(head);
        upstream.write(head);
      }
      client.on('data', tap);
      upstream.on('data', tap);
      client.pipe(upstream);
      upstream.pipe(client);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: new URL(`http://127.0.0.1:${port}`),
    port,
    connects,
    plainRequests,
    tunnels: () => tunnels,
    relayed: () => Buffer.concat(relayedChunks),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The port of a CONNECT target `host:port` or `[v6]:port`, when it has a valid one. */
function targetPort(target: string): number | undefined {
  const match = /^(?:\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(target);
  const port = match ? Number(match[1]) : Number.NaN;
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
}

export interface NamedPki {
  /** PEM file of the CA (a route's caFile). */
  caFile: string;
  key: string;
  cert: string;
}

const pkis = new Map<string, NamedPki>();

/**
 * A throwaway CA of its own and a server certificate for DNS name `name` (the shared test CA in
 * tls.ts covers 127.0.0.1 and localhost only), made with openssl as tls.ts does.
 */
export function namedPki(name: string): NamedPki {
  const cached = pkis.get(name);
  if (cached) return cached;
  const pki = serverPki(`named-${name}`, `dbx-gateway test CA for ${name}`, [`DNS:${name}`]);
  pkis.set(name, pki);
  return pki;
}
