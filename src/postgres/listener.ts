import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { GatewayConfig } from '../config/types.js';
import type { ConnectionCounts, ListenerTls } from '../runtime/listener.js';
import { limitConnections } from '../runtime/listener.js';
import { createSameUserGuard } from '../security/peer-user.js';
import { postgresErrorFor } from './errors.js';
import { handleConnection, type OpenSession, type PostgresDoor, type SessionRecord } from './session.js';
import { errorResponse } from './wire.js';

export interface PostgresListener {
  server: Server;
  /** Open sessions now (status page, `status`). */
  openSessions(): number;
  /** After the drain: every session ends with FATAL 57P01 at a message boundary of the server's stream. */
  destroy(): void;
}

export interface PostgresListenerOptions {
  config: GatewayConfig;
  tls: ListenerTls | undefined;
  connections: ConnectionCounts;
  /** The current generation's door for this route; undefined once a reload removed the route. */
  door: () => PostgresDoor | undefined;
  routeName: string;
  record: (session: SessionRecord) => void;
  /** Loopback without inbound keys: only this user's processes are served (security/peer-user.ts). */
  sameUserOnly: () => boolean;
  /** The open-sessions gauge of this route. */
  gauge?: { inc(): void; dec(): void };
}

/** How long a session that was told to end may take to reach a message boundary before it is cut. */
const SHUTDOWN_CUT_MS = 5_000;

/**
 * A route's PostgreSQL listener: plain TCP, with TLS when the client asks for it (SSLRequest or a
 * direct handshake) and listen.tls is on. The same connection limits as every listener, answered
 * with 53300 too_many_connections; the loopback-or-keys rule is checked by the caller on the
 * bound address.
 */
export function createPostgresListener({ config, tls, connections, door, routeName, record, gauge, sameUserOnly }: PostgresListenerOptions): PostgresListener {
  const sessions = new Set<OpenSession>();
  const sockets = new Set<Socket>();
  let leafContext: { leaf: unknown; context: SecureContext } | undefined;
  // Built once per leaf (renewed leaves get a new context at their first use).
  const secureContext = tls
    ? () => {
        const leaf = tls.current;
        if (leafContext?.leaf !== leaf) leafContext = { leaf, context: createSecureContext({ key: leaf.key, cert: leaf.cert }) };
        return leafContext.context;
      }
    : undefined;
  const host = {
    ...(secureContext ? { tls: secureContext } : {}),
    open(session: OpenSession) {
      sessions.add(session);
      gauge?.inc();
      return () => {
        if (sessions.delete(session)) gauge?.dec();
      };
    },
    cancelTarget(key: Buffer) {
      for (const s of sessions) if (s.cancelKey?.equals(key) && s.server) return { server: s.server, door: s.door };
      return undefined;
    },
  };
  const server = createServer();
  const sameUser = createSameUserGuard(server, sameUserOnly);
  const refused = new WeakSet<Socket>();
  limitConnections(server, config.limits, connections, (socket, over) => {
    refused.add(socket);
    socket.on('error', () => socket.destroy());
    socket.end(errorResponse({ severity: 'FATAL', code: '53300', message: `${over}; retry later` }));
  });
  server.on('connection', (socket: Socket) => {
    if (refused.has(socket)) return;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    sameUser.expect(socket, socket);
    // Loopback means you: another local user's connection is refused before a byte is read.
    sameUser.decide(socket, socket, (refusal) => {
      if (refusal) {
        socket.end(errorResponse(postgresErrorFor(refusal)));
        return;
      }
      const current = door();
      if (!current) {
        socket.end(
          errorResponse({ severity: 'FATAL', code: '08004', message: `route ${routeName} is no longer configured; restart the gateway to close this port` }),
        );
        return;
      }
      void handleConnection(socket, current, host, record);
    });
  });
  return {
    server,
    openSessions: () => sessions.size,
    destroy() {
      for (const s of sessions) s.shutdown();
      const cut = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, SHUTDOWN_CUT_MS);
      cut.unref();
    },
  };
}
