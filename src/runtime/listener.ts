import { chmodSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { connect, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { GatewayConfig } from '../config/types.js';
import { ConfigError, GatewayError, rawGatewayError, writeGatewayError } from '../errors.js';
import type { HttpDoor } from '../proxy/handler.js';
import { methodNotAllowed } from '../security/admission.js';
import { isLoopbackAddress, OPEN_LISTENER_FIX } from '../security/loopback.js';
import { createSameUserGuard } from '../security/peer-user.js';

// The listeners: TCP (HTTP or HTTPS), unix socket or named pipe, with the limits and answers every
// listener shares. What they serve comes from `door()`, asked per request so a reload takes effect.

export interface ListenerOptions {
  config: GatewayConfig;
  tls: ListenerTls | undefined;
  connections: ConnectionCounts;
  /** The current generation's door for this listener; undefined once a reload removed its route. */
  door: () => HttpDoor | undefined;
  /** For the answer when `door()` is gone. */
  routeName?: string;
  /**
   * True while no inbound keys are configured (asked per connection: a reload may change it): a
   * loopback listener then serves only this process's user, where the OS can tell (peer-user.ts).
   */
  sameUserOnly: () => boolean;
}

export function createListener({ config, tls, connections, door, routeName, sameUserOnly }: ListenerOptions): Server {
  const onRequest = (req: IncomingMessage, res: ServerResponse) =>
    sameUser.decide(req.socket, req.socket, (refusal) => {
      const current = door();
      if (current) current.request(req, res, refusal);
      else writeGatewayError(res, refusal ?? routeGone(routeName), { close: true });
    });
  // A port speaks either HTTP or HTTPS, never both (README, "Use it from the Databricks SDKs and CLI", on --tls).
  const server = tls
    ? createTlsServer({ maxHeaderSize: config.limits.maxHeaderBytes, key: tls.current.key, cert: tls.current.cert }, onRequest)
    : createServer({ maxHeaderSize: config.limits.maxHeaderBytes }, onRequest);
  const sameUser = createSameUserGuard(server, sameUserOnly);
  // Looked up as the connection arrives, while the client's end is surely still open; the socket that
  // carries requests is the TLS one on a TLS port.
  server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => sameUser.expect(socket, socket));
  if (tls) {
    answerPlaintext(server, config, 'https');
    // A client that fails the handshake (an untrusted CA, garbage) is closed.
    server.on('tlsClientError', (_err: Error, socket: Duplex) => socket.destroy());
  }
  // Expect: 100-continue is answered by the HTTP door once the request is admitted, so a
  // refused upload (401, 403) is refused before the client sends its body.
  server.on('checkContinue', onRequest);
  // Node's default requestTimeout (300 s) would cut a long upload; idle limits apply instead.
  server.requestTimeout = 0;
  // A client socket with no bytes either way for idleMs is closed. A client waiting for the
  // upstream's answer is quiet for up to connect + headers time: those timeouts answer first.
  const { idleMs, connectMs, headersMs } = config.timeouts;
  server.timeout = Math.max(idleMs, connectMs + headersMs + 1000);
  limitConnections(server, config.limits, connections);
  server.on('clientError', answerClientError);
  // CONNECT never reaches the request handler: Node emits it apart (and drops it unanswered).
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    socket.end(rawGatewayError(methodNotAllowed('CONNECT')));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    sameUser.decide(req.socket, req.socket, (refusal) => {
      const current = door();
      if (current) current.upgrade(req, socket, head, refusal);
      else {
        socket.on('error', () => socket.destroy());
        socket.end(rawGatewayError(refusal ?? routeGone(routeName)));
      }
    }),
  );
  return server;
}

/** A TLS record of type handshake (RFC 8446 5.1, ContentType 22): how every TLS client starts. */
const TLS_HANDSHAKE_RECORD = 0x16;
/** The HTTP/2 client connection preface (RFC 9113 3.4), as h2c with prior knowledge sends it. */
const H2_PREFACE_START = 'PRI ';
/** HTTP/2 error code INADEQUATE_SECURITY (RFC 9113 7): the port asks for TLS. */
const H2_INADEQUATE_SECURITY = 0xc;

/**
 * Plain HTTP (or h2c) to a TLS port gets an answer in its own protocol instead of a closed
 * connection, as nginx answers 497 "plain HTTP request sent to HTTPS port": HTTP/1 a 400 saying
 * the port speaks HTTPS, h2c prior knowledge a GOAWAY whose debug data says it.
 *
 * The first bytes decide: a TLS client starts with a handshake record (0x16), an HTTP one with an
 * ASCII method. Node's TLS server wraps each raw socket in its 'connection' listener
 * (tlsConnectionListener), which is deferred here until the first bytes are read; they are put
 * back (unshift) and the TLS socket takes them from the buffer ("Socket already has some buffered
 * data", lib/_tls_wrap.js). Where that listener is not found, nothing changes: plain HTTP is closed.
 */
export function answerPlaintext(server: NetServer, config: GatewayConfig, speaks: 'https' | 'h2'): void {
  const tlsListener = server.listeners('connection').find((l) => l.name === 'tlsConnectionListener') as ((socket: Socket) => void) | undefined;
  if (!tlsListener) return;
  server.removeListener('connection', tlsListener);
  const trust =
    config.listen.tls?.mode === 'auto' ? "trust the gateway's local CA (dbx-gateway tls ca prints its path)" : "trust the CA of the gateway's certificate";
  server.prependListener('connection', (socket: Socket) => {
    let head = Buffer.alloc(0);
    const done = () => {
      socket.off('readable', onReadable);
      socket.setTimeout(0);
    };
    const onReadable = () => {
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) head = Buffer.concat([head, chunk]);
      // "P" may start PRI (h2c), POST, PUT or PATCH: one more byte tells.
      if (head.length === 0 || (head.length < 2 && head[0] === 0x50)) return;
      done();
      const plain = head[0] !== TLS_HANDSHAKE_RECORD && /^[A-Z]/.test(String.fromCharCode(head[0] ?? 0));
      if (!plain) {
        socket.unshift(head);
        tlsListener.call(server, socket);
        return;
      }
      const text = head.toString('latin1');
      const port = socket.localPort;
      socket.on('error', () => socket.destroy());
      if (text.startsWith(H2_PREFACE_START) || (head.length < H2_PREFACE_START.length && H2_PREFACE_START.startsWith(text))) {
        const url = speaks === 'h2' ? `sc://localhost:${port}/;use_ssl=true` : `https://localhost:${port}/`;
        socket.end(goAway(`this port speaks TLS (h2 over TLS), not h2c: connect with TLS (${url}) and ${trust}`));
      } else {
        // The Host the client used, when it is a plain host[:port] (it goes into the answer).
        const host = /\r\nhost:[ \t]*([A-Za-z0-9.\-:[\]]{1,255})[ \t]*\r\n/i.exec(text)?.[1] ?? `localhost:${port}`;
        const message = `this port speaks HTTPS, not plain HTTP: use https://${host}/ and ${trust}`;
        socket.end(rawGatewayError(new GatewayError('GATEWAY_BAD_REQUEST', message)));
      }
      // Whatever else the client sends is read and dropped until it closes (or goes quiet).
      socket.resume();
      socket.setTimeout(config.timeouts.idleMs, () => socket.destroy());
    };
    socket.on('readable', onReadable);
    // A client that sends nothing is closed after idleMs, as an idle connection is.
    socket.setTimeout(config.timeouts.idleMs, () => socket.destroy());
    socket.once('end', () => {
      if (head.length === 0) socket.destroy();
    });
  });
}

/** An empty server SETTINGS frame and a GOAWAY (INADEQUATE_SECURITY) carrying `text` (RFC 9113 6.5, 6.8). */
function goAway(text: string): Buffer {
  const frame = (type: number, payload: Buffer) => {
    const header = Buffer.alloc(9);
    header.writeUIntBE(payload.length, 0, 3);
    header.writeUInt8(type, 3);
    return Buffer.concat([header, payload]);
  };
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(0, 0); // last stream id: none was processed
  payload.writeUInt32BE(H2_INADEQUATE_SECURITY, 4);
  return Buffer.concat([frame(0x4, Buffer.alloc(0)), frame(0x7, Buffer.concat([payload, Buffer.from(text, 'utf8')]))]);
}

export function routeGone(routeName: string | undefined): GatewayError {
  return new GatewayError('GATEWAY_ROUTE_NOT_FOUND', `route ${routeName ?? '?'} is no longer configured (removed by a reload); restart to free its port`);
}

/** How often a running gateway checks whether its local leaf certificate is due for renewal. */
const TLS_RENEW_CHECK_MS = 12 * 3_600_000;

export interface ListenerTls {
  current: { key: string; cert: string };
  /** Local CA only: re-issue the leaf before it expires, on every listener, without a restart. */
  renewOn(servers: readonly NetServer[]): void;
  stop(): void;
}

/** The certificate every listener serves: the local CA's leaf (auto), or the operator's files. */
export async function listenerTls(
  setting: NonNullable<GatewayConfig['listen']['tls']>,
  allowedHosts: readonly string[],
  warn: (message: string) => void,
  info?: (message: string) => void,
): Promise<ListenerTls> {
  if (setting.mode === 'files') {
    const current = { key: readFileSync(setting.keyFile, 'utf8'), cert: readFileSync(setting.certFile, 'utf8') };
    return { current, renewOn: () => {}, stop: () => {} };
  }
  const { LEAF_RENEW_BEFORE_MS, localCertificate } = await import('../local/local-tls.js');
  let leaf = await localCertificate(setting.dir, allowedHosts, { warn, ...(info ? { info } : {}) });
  let timer: NodeJS.Timeout | undefined;
  return {
    get current() {
      return leaf;
    },
    renewOn(servers) {
      timer = setInterval(() => {
        if (leaf.notAfterMs - Date.now() > LEAF_RENEW_BEFORE_MS) return;
        localCertificate(setting.dir, allowedHosts, { warn }).then(
          (fresh) => {
            leaf = fresh;
            for (const s of servers)
              (s as unknown as { setSecureContext(o: { key: string; cert: string }): void }).setSecureContext({ key: fresh.key, cert: fresh.cert });
          },
          () => {
            // Retried at the next check; the current leaf stays valid for weeks.
          },
        );
      }, TLS_RENEW_CHECK_MS);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}

/**
 * The main listener on a unix socket, mode 0600 from its creation (umask), so only this user can
 * connect. A stale socket from a crashed run is replaced; a live one is an error, and so is
 * anything at PATH that is not a socket (it is never deleted).
 */
export async function listenOnSocket(server: Server, path: string): Promise<void> {
  if (process.platform === 'win32' || path.startsWith('\\\\.\\pipe\\')) {
    // A Windows named pipe (\\.\pipe\NAME): no file to replace and no POSIX mode. Its default
    // security gives the creating user, SYSTEM and Administrators full access, and others read
    // access only, which cannot send a request (CreateNamedPipe, "Named Pipe Security").
    await listen(server, path);
    return;
  }
  const existing = lstatSync(path, { throwIfNoEntry: false });
  if (existing) {
    if (!existing.isSocket()) {
      throw new ConfigError([
        `--socket ${path}: a file that is not a socket is in the way; remove it yourself or choose another path (the gateway only ever replaces a stale socket)`,
      ]);
    }
    if (await socketAnswers(path)) throw Object.assign(new Error(`${path} is in use by another process`), { code: 'EADDRINUSE' });
    unlinkSync(path);
  }
  const previous = process.umask(0o177);
  try {
    await listen(server, path);
  } finally {
    process.umask(previous);
  }
  chmodSync(path, 0o600);
}

/**
 * The loopback-or-keys rule against the address each TCP listener is actually bound to (a name
 * such as "localhost" or "::" says less than the bound address). Problems, for a ConfigError.
 */
export function unsafeListeners(servers: readonly NetServer[], config: GatewayConfig): string[] {
  if (config.inboundKeys.length > 0 || config.allowUnauthenticatedNetwork) return [];
  return servers.flatMap((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string' || isLoopbackAddress(address.address)) return [];
    return [
      `listen.host: a listener is bound to ${address.address}:${address.port}, reachable from other machines, and there are no inboundKeys; ` +
        OPEN_LISTENER_FIX,
    ];
  });
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

export interface ConnectionCounts {
  open: number;
  byClient: Map<string, number>;
}

/**
 * More than limits.maxConnections open client connections, or more than
 * limits.maxConnectionsPerClient from one address: the new one gets 503 GATEWAY_OVERLOADED and is
 * closed, instead of silently queueing (a clear answer beats a hang). The per-address cap keeps
 * one misbehaving client from taking every slot.
 */
/**
 * Counts every connection against limits.maxConnections and maxConnectionsPerClient; one over is
 * answered (HTTP 503 by default, or in the listener's own protocol) and closed.
 */
export function limitConnections(
  server: NetServer,
  limits: GatewayConfig['limits'],
  connections: ConnectionCounts,
  answer: boolean | ((socket: Socket, over: string) => void) = true,
): void {
  server.on('connection', (socket: Socket) => {
    const client = socket.remoteAddress ?? '-';
    const fromClient = (connections.byClient.get(client) ?? 0) + 1;
    connections.open++;
    connections.byClient.set(client, fromClient);
    socket.once('close', () => {
      connections.open--;
      const left = (connections.byClient.get(client) ?? 1) - 1;
      if (left === 0) connections.byClient.delete(client);
      else connections.byClient.set(client, left);
    });
    const over =
      connections.open > limits.maxConnections
        ? `more than ${limits.maxConnections} open connections (limits.maxConnections)`
        : fromClient > limits.maxConnectionsPerClient
          ? `more than ${limits.maxConnectionsPerClient} open connections from ${client} (limits.maxConnectionsPerClient)`
          : undefined;
    if (over && !answer) socket.destroy();
    else if (over && typeof answer === 'function') answer(socket, over);
    else if (over) {
      socket.on('error', () => socket.destroy());
      socket.write(rawGatewayError(new GatewayError('GATEWAY_OVERLOADED', `${over}; retry later`)), () => socket.destroy());
    }
  });
}

/**
 * Requests Node's parser refuses never reach the app: oversized heads (431), and smuggling shapes
 * such as Content-Length with Transfer-Encoding, conflicting lengths or obs-fold (400). They get a
 * gateway error body instead of Node's bare reply, and nothing is forwarded.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || (err as { code?: string }).code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const gatewayError =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new GatewayError('GATEWAY_HEADERS_TOO_LARGE', 'the request head is larger than limits.maxHeaderBytes; send fewer or smaller headers (large cookies?)')
      : err.code === 'HPE_INVALID_METHOD'
        ? // TRACK and other methods Node does not know: the same answer as TRACE.
          new GatewayError('GATEWAY_METHOD_NOT_ALLOWED', 'this HTTP method is refused by the gateway; nothing was forwarded')
        : new GatewayError('GATEWAY_BAD_REQUEST', `malformed HTTP request refused (${err.code ?? 'parse error'}); nothing was forwarded`);
  socket.write(rawGatewayError(gatewayError), () => socket.destroy());
}

export function listen(server: NetServer, port: number | string, host?: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if (typeof port === 'string') server.listen(port, done);
    else server.listen(port, host, done);
  });
}
