import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { type SecureContext, TLSSocket } from 'node:tls';
import type { Credential } from '../auth/credential.js';
import type { TokenCache } from '../auth/token-cache.js';
import type { PostgresSettings } from '../config/types.js';
import { errorMessage, GatewayError } from '../errors.js';
import type { EgressProxy } from '../proxy/egress-proxy.js';
import type { Route } from '../routing/route-table.js';
import { assertKeyMayUse, type KeyAuthenticator } from '../security/inbound-keys.js';
import type { ServerAddress } from './credential.js';
import { postgresErrorFor } from './errors.js';
import { type RelayCounts, relayBoth, ServerMessageTracker } from './relay.js';
import { loginUpstream, openServerTls } from './upstream-login.js';
import {
  CANCEL_REQUEST_CODE,
  cleartextPasswordRequest,
  errorResponse,
  GSSENC_REQUEST_CODE,
  MAX_PASSWORD_MESSAGE_BYTES,
  MAX_STARTUP_PACKET_BYTES,
  PROTOCOL_3,
  ProtocolError,
  parseStartup,
  readExactly,
  readMessage,
  readUntypedPacket,
  SSL_REQUEST_CODE,
  type StartupMessage,
} from './wire.js';

// One client connection of a route's Postgres listener, from its first byte to its last: the
// client's negotiation (SSLRequest, GSSENCRequest, direct TLS, CancelRequest, StartupMessage), the
// inbound key when keys are configured, the login to the server with the database credential,
// then the relay. Contract: "Lakebase (PostgreSQL)".

/** A client must finish its start-up within this (the server's authentication_timeout is 60 s). */
export const STARTUP_TIMEOUT_MS = 60_000;
/** Past Lakebase's own 24 h idle close, so the server always ends a quiet session first. */
const IDLE_LIMIT_MS = 25 * 3600_000;
/** Keep-alive probes on both sockets: a laptop that went away is noticed within minutes. */
const KEEPALIVE_MS = 60_000;
/** The first byte of a TLS ClientHello: a PostgreSQL 17 client with sslnegotiation=direct. */
const TLS_HANDSHAKE_BYTE = 0x16;

/** What a session needs from the generation that serves it (a reload gives new sessions a new one). */
export interface PostgresDoor {
  route: Route;
  settings: PostgresSettings;
  tokens: TokenCache;
  /** The database credential (cached in `tokens` under its own key). */
  credential: Credential;
  authenticate?: KeyAuthenticator;
  proxyFor(address: ServerAddress): EgressProxy | undefined;
  connectTimeoutMs: number;
  /** Discovered once per generation: the server's address and the role to log in as. */
  server(): Promise<ServerAddress>;
  user(): Promise<string>;
}

/** What the listener keeps across sessions: the local TLS leaf, open sessions and their cancel keys. */
export interface SessionHost {
  tls?: () => SecureContext;
  /** Registers an open session; the returned function removes it. */
  open(session: OpenSession): () => void;
  /** The server that issued this cancel key, if one of the open sessions has it. */
  cancelTarget(key: Buffer): { server: ServerAddress; door: PostgresDoor } | undefined;
}

export interface OpenSession {
  /** Ends the session with a FATAL 57P01 at the next message boundary of the server's stream. */
  shutdown(): void;
  cancelKey?: Buffer;
  server?: ServerAddress;
  door: PostgresDoor;
}

export interface SessionRecord {
  route: string;
  user?: string;
  database?: string;
  key?: string;
  durationMs: number;
  bytesFromClient: number;
  bytesFromServer: number;
  outcome: string;
  reason?: string;
}

export async function handleConnection(raw: Socket, door: PostgresDoor, host: SessionHost, record: (r: SessionRecord) => void): Promise<void> {
  const started = performance.now();
  const log: SessionRecord = { route: door.route.name, durationMs: 0, bytesFromClient: 0, bytesFromServer: 0, outcome: 'ok' };
  let finished = false;
  const finish = (outcome: string, reason?: string) => {
    if (finished) return;
    finished = true;
    log.outcome = outcome;
    if (reason) log.reason = reason;
    log.durationMs = performance.now() - started;
    record(log);
  };
  raw.on('error', () => raw.destroy());
  const startupTimer = setTimeout(() => raw.destroy(), STARTUP_TIMEOUT_MS);
  startupTimer.unref();
  let client: Socket = raw;
  try {
    const startup = await negotiate(raw, host, (tls) => {
      client = tls;
    });
    if (!startup) {
      finish('cancel');
      return;
    }
    const clientUser = param(startup, 'user');
    const key = door.authenticate ? await checkKey(client, door) : undefined;
    if (key) log.key = key;
    const [user, server, password] = await Promise.all([
      withFix(door.user(), door, "find the route identity's user name"),
      withFix(door.server(), door, 'find the Lakebase server'),
      door.tokens.get(door.credential, 'databricks'),
    ]);
    const database = chooseDatabase(startup, clientUser, door.settings.database);
    log.user = user;
    log.database = database;
    const rewritten: StartupMessage = {
      version: startup.version,
      params: [['user', user], ['database', database], ...startup.params.filter(([k]) => k !== 'user' && k !== 'database')],
    };
    let login: Awaited<ReturnType<typeof loginUpstream>>;
    try {
      login = await loginUpstream(server, rewritten, password.token, {
        ...proxyOption(door.proxyFor(server)),
        ...caOption(door),
        timeoutMs: door.connectTimeoutMs,
      });
    } catch (err) {
      // As an HTTP 401 drops a token: a refused credential is not offered again (with backoff).
      if (isAuthRefusal(err)) door.tokens.reject(door.credential, 'databricks', password.token);
      throw err;
    }
    clearTimeout(startupTimer);
    for (const m of login.forClient) client.write(m);
    relaySession(client, login.socket, door, server, host, log, finish);
  } catch (err) {
    clearTimeout(startupTimer);
    const pg = postgresErrorFor(err, err instanceof GatewayError ? undefined : serverLabel(door));
    if (!client.destroyed && client.writable) client.end(errorResponse(pg));
    finish(pg.outcome, err instanceof ProtocolError ? err.message : pg.message);
  }
}

function relaySession(
  client: Socket,
  server: TLSSocket,
  door: PostgresDoor,
  address: ServerAddress,
  host: SessionHost,
  log: SessionRecord,
  finish: (outcome: string, reason?: string) => void,
): void {
  const counts: RelayCounts = { fromClient: 0, fromServer: 0 };
  let stopping = false;
  let stopped = false;
  const session: OpenSession = {
    door,
    server: address,
    shutdown() {
      stopping = true;
      if (tracker.atBoundary) endNow();
    },
  };
  const tracker = new ServerMessageTracker((key) => {
    session.cancelKey = key;
  });
  const remove = host.open(session);
  // A quiet psql session may idle until the server's own limit (Lakebase closes idle connections
  // after 24 h), never the gateway's first; TCP keep-alive finds peers that vanished without a FIN.
  client.setTimeout(IDLE_LIMIT_MS, () => client.destroy());
  client.setKeepAlive(true, KEEPALIVE_MS);
  server.setKeepAlive(true, KEEPALIVE_MS);
  const endNow = () => {
    if (stopped) return;
    stopped = true;
    client.end(errorResponse({ severity: 'FATAL', code: '57P01', message: 'the gateway is shutting down; reconnect to continue' }));
    server.destroy();
  };
  relayBoth(
    client,
    server,
    counts,
    (chunk) => {
      if (stopped) return chunk.subarray(0, 0);
      if (!stopping) {
        tracker.feed(chunk);
        return chunk;
      }
      const upTo = tracker.feed(chunk, true);
      const out = chunk.subarray(0, upTo);
      if (tracker.atBoundary) queueMicrotask(endNow);
      return out;
    },
    (why, err) => {
      remove();
      log.bytesFromClient = counts.fromClient;
      log.bytesFromServer = counts.fromServer;
      if (stopped) finish('shutdown');
      else if (why === 'error') finish('error', errorMessage(err));
      else finish('ok');
    },
  );
}

/**
 * The client's first packets: TLS when it asks and the listener has it, `N` to GSSAPI encryption,
 * a cancel forwarded, until the StartupMessage (returned; undefined after a cancel).
 */
async function negotiate(raw: Socket, host: SessionHost, onTls: (tls: TLSSocket) => void): Promise<StartupMessage | undefined> {
  let stream: Duplex = raw;
  let encrypted = false;
  const first = await readExactly(raw, 1);
  raw.unshift(first);
  if (first[0] === TLS_HANDSHAKE_BYTE) {
    if (!host.tls) throw new ProtocolError('a TLS handshake arrived on a plain listener; connect with sslmode=disable, or set listen.tls');
    // The peeked byte is in the socket's JS buffer, which a TLSSocket over the raw handle would
    // skip: TLS runs over a stream view of the socket instead (this path only).
    stream = await serverTls(streamView(raw), host.tls(), ['postgresql']);
    encrypted = true;
    onTls(stream as TLSSocket);
  }
  for (;;) {
    const body = await readUntypedPacket(stream, MAX_STARTUP_PACKET_BYTES);
    const code = body.readInt32BE(0);
    if (code === SSL_REQUEST_CODE && !encrypted) {
      if (!host.tls) {
        stream.write('N');
        continue;
      }
      // Bytes pipelined behind the request would be taken as if they came over TLS (CVE-2021-23214).
      if (raw.readableLength > 0) throw new ProtocolError('data arrived after the SSLRequest before TLS');
      stream.write('S');
      stream = await serverTls(raw, host.tls(), undefined);
      encrypted = true;
      onTls(stream as TLSSocket);
      continue;
    }
    if (code === GSSENC_REQUEST_CODE && !encrypted) {
      stream.write('N');
      continue;
    }
    if (code === CANCEL_REQUEST_CODE) {
      await forwardCancel(body, host);
      stream.end();
      return undefined;
    }
    if (code >> 16 === PROTOCOL_3) return parseStartup(body);
    throw new ProtocolError(`unsupported frontend protocol ${code >> 16}.${code & 0xffff}: the gateway speaks protocol 3`);
  }
}

/** The socket as a plain Duplex (buffered bytes first), for TLS over what was already read. */
function streamView(raw: Socket): Duplex {
  const view = new Duplex({
    read() {
      raw.resume();
    },
    write(chunk, encoding, callback) {
      raw.write(chunk, encoding, callback);
    },
    final(callback) {
      raw.end();
      callback();
    },
    destroy(err, callback) {
      raw.destroy();
      callback(err);
    },
  });
  raw.on('data', (chunk: Buffer) => {
    if (!view.push(chunk)) raw.pause();
  });
  raw.on('end', () => view.push(null));
  raw.on('close', () => view.destroy());
  return view;
}

function serverTls(raw: Duplex, secureContext: SecureContext, alpn: string[] | undefined): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tls = new TLSSocket(raw, { isServer: true, secureContext, ...(alpn ? { ALPNProtocols: alpn } : {}) });
    tls.once('secure', () => resolve(tls));
    // Every later error (a reset mid-login, EPIPE) ends the connection; none may go unhandled.
    tls.on('error', (err) => {
      raw.destroy();
      tls.destroy();
      reject(new ProtocolError(`the TLS connection failed: ${err.message}`));
    });
  });
}

/** CancelRequest: the process id and secret key, sent on to the server that issued them, over TLS. */
async function forwardCancel(body: Buffer, host: SessionHost): Promise<void> {
  const key = body.subarray(4);
  const target = host.cancelTarget(key);
  // Unknown keys get what a server gives them: nothing (the connection closes).
  if (!target) return;
  const { door, server } = target;
  const packet = Buffer.alloc(body.length + 4);
  packet.writeInt32BE(body.length + 4, 0);
  body.copy(packet, 4);
  const socket = await openServerTls(server, { ...proxyOption(door.proxyFor(server)), ...caOption(door), timeoutMs: door.connectTimeoutMs });
  socket.on('error', () => socket.destroy());
  socket.end(packet);
}

/** With inbound keys: the password is a key, asked for only over TLS and checked before anything goes upstream. */
async function checkKey(client: Socket, door: PostgresDoor): Promise<string> {
  if (!(client instanceof TLSSocket)) {
    throw new GatewayError(
      'GATEWAY_FORBIDDEN',
      'this gateway needs an inbound key as the password, sent only over TLS: connect with sslmode=require (or verify-full with sslrootcert from dbx-gateway tls ca)',
    );
  }
  client.write(cleartextPasswordRequest());
  const msg = await readMessage(client, MAX_PASSWORD_MESSAGE_BYTES);
  if (msg.type !== 'p') throw new ProtocolError(`expected a password message, got ${JSON.stringify(msg.type)}`);
  const nul = msg.body.indexOf(0);
  const presented = msg.body.toString('utf8', 0, nul < 0 ? msg.body.length : nul);
  const key = door.authenticate?.({ 'x-dbx-gateway-key': presented });
  if (!key) throw new GatewayError('GATEWAY_UNAUTHENTICATED', 'the inbound key is not valid');
  assertKeyMayUse(key, door.route.name);
  return key.name;
}

function param(startup: StartupMessage, name: string): string | undefined {
  return startup.params.find(([k]) => k === name)?.[1];
}

/** The client's database; when it named none, libpq sends its user name, which means the route's default. */
function chooseDatabase(startup: StartupMessage, clientUser: string | undefined, fallback: string): string {
  const asked = param(startup, 'database');
  return asked === undefined || asked === '' || asked === clientUser ? fallback : asked;
}

/** 28P01 invalid_password and 28000 invalid_authorization_specification: the credential was refused. */
function isAuthRefusal(err: unknown): boolean {
  return typeof (err as { sqlState?: unknown }).sqlState === 'string' && /^28/.test((err as { sqlState: string }).sqlState);
}

async function withFix<T>(work: Promise<T>, door: PostgresDoor, what: string): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw new GatewayError(
      'GATEWAY_TOKEN_UNAVAILABLE',
      `could not ${what} for route ${door.route.name}: ${errorMessage(err)}. Fix: ${door.route.credential.hint}`,
      {
        cause: err,
      },
    );
  }
}

function serverLabel(door: PostgresDoor): string | undefined {
  return door.settings.host ?? door.settings.endpoint ?? door.settings.instance;
}

function proxyOption(proxy: EgressProxy | undefined): { proxy?: EgressProxy } {
  return proxy ? { proxy } : {};
}

function caOption(door: PostgresDoor): { caFile?: string } {
  return door.route.config.caFile ? { caFile: door.route.config.caFile } : {};
}
