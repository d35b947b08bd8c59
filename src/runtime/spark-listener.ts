import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { createSameUserGuard } from '../security/peer-user.js';
import { MAX_CALLS_PER_CONNECTION } from '../spark/forwarder.js';
import { grpcStatusForGatewayError, statusTrailers } from '../spark/grpc-status.js';
import { answerPlaintext, type ListenerOptions, limitConnections, routeGone } from './listener.js';

// A route's Spark Connect listener, in its own module so that the Spark door's modules load only
// with a route that has `sparkConnect` (runtime/server.ts imports it then).

/** What a Spark Connect listener hands each HTTP/2 stream to (the route's forwarder in the current generation). */
export interface SparkDoor {
  handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void;
}

export interface SparkListener {
  server: http2.Http2Server | http2.Http2SecureServer;
  /** Shutdown: GOAWAY to every client session (calls in flight finish), then destroyed after the drain. */
  drain(): void;
  destroy(): void;
}

/**
 * A route's Spark Connect listener: HTTP/2 with prior knowledge (h2c), or h2 over TLS with ALPN
 * when listen.tls is on, so a client may pass an inbound key as `token=` (the Spark Connect
 * client sends a token only over TLS). The same connection limits as every listener; the
 * loopback-or-keys rule is checked by the caller on the bound address, and the same-user rule per
 * connection (a refused client's calls end PERMISSION_DENIED, then GOAWAY).
 */
export function createSparkListener({
  config,
  tls,
  connections,
  door,
  routeName,
  sameUserOnly,
}: Omit<ListenerOptions, 'door'> & { door: () => SparkDoor | undefined }): SparkListener {
  // One connection may not open unbounded calls (each can hold a stream window of data): its share
  // of the route's calls, advertised so that gRPC clients queue beyond it rather than be refused.
  const settings = { maxHeaderListSize: config.limits.maxHeaderBytes, maxConcurrentStreams: MAX_CALLS_PER_CONNECTION };
  const server = tls
    ? http2.createSecureServer({ key: tls.current.key, cert: tls.current.cert, ALPNProtocols: ['h2'], settings })
    : http2.createServer({ settings });
  const sessions = new Map<http2.ServerHttp2Session, { streams: number }>();
  const sameUser = createSameUserGuard(server, sameUserOnly);
  server.on('session', (session) => {
    // Emitted as the connection (or its TLS handshake) completes; session.socket forwards the addresses.
    sameUser.expect(session, session.socket);
    sessions.set(session, { streams: 0 });
    session.once('close', () => sessions.delete(session));
    session.on('error', () => session.destroy());
  });
  // A connection quiet for idleMs with no call open is closed, so silent clients cannot hold
  // connection slots (a call in flight keeps its connection, however quiet its query).
  // Node passes the session to the server's 'timeout' listener (its types say no argument).
  server.setTimeout(config.timeouts.idleMs);
  server.on('timeout', ((session: http2.ServerHttp2Session) => {
    if ((sessions.get(session)?.streams ?? 0) === 0) session.close();
  }) as () => void);
  server.on('stream', (stream, headers) => {
    const state = sessions.get(stream.session as http2.ServerHttp2Session);
    if (state) {
      state.streams++;
      stream.once('close', () => state.streams--);
    }
    const session = stream.session as http2.ServerHttp2Session;
    sameUser.decide(session, session.socket, (refusal) => {
      if (stream.destroyed) return;
      const current = door();
      if (refusal) {
        stream.on('error', () => stream.destroy());
        stream.respond(
          { ':status': 200, 'content-type': 'application/grpc', ...statusTrailers(grpcStatusForGatewayError(refusal), refusal.message) },
          { endStream: true },
        );
        // Deferred: the verdict may arrive inside the 'stream' handler, within nghttp2's receive loop
        // (ending a session there can abort Node 22+, nodejs/node#64850).
        setImmediate(() => session.close());
      } else if (current) current.handleStream(stream, headers);
      else {
        const gone = routeGone(routeName);
        stream.on('error', () => stream.destroy());
        stream.respond(
          { ':status': 200, 'content-type': 'application/grpc', ...statusTrailers(grpcStatusForGatewayError(gone), gone.message) },
          { endStream: true },
        );
      }
    });
  });
  if (tls) {
    answerPlaintext(server, config, 'h2');
    server.on('tlsClientError', (_err: Error, socket: Duplex) => socket.destroy());
  }
  // Over the limit, the connection is closed: an HTTP/1 answer would be garbage inside HTTP/2 or TLS.
  limitConnections(server, config.limits, connections, false);
  return {
    server,
    drain() {
      for (const session of sessions.keys()) session.close();
    },
    destroy() {
      for (const session of sessions.keys()) session.destroy();
    },
  };
}
