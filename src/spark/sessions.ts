/**
 * A route's upstream HTTP/2 sessions for Spark Connect: one shared session, opened through the
 * one connector (egress proxy, caFile, ALPN h2) on first use, made again after it closes, fails or
 * gets a GOAWAY, and closed after idleTimeoutMs without calls. retire() lets open sessions finish
 * their calls (later calls get sessions of their own); close() destroys them all.
 */
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { errorMessage, GatewayError, toGatewayError } from '../errors.js';
import { connectUpstream } from '../proxy/connector.js';
import type { EgressProxy } from '../proxy/egress-proxy.js';

/**
 * Flow-control windows the gateway advertises to the upstream (RFC 9113 section 6.9). Node's
 * default, 64 KiB, caps a stream at 64 KiB per round trip (about 3 MB/s at 20 ms); 1 MiB per
 * stream keeps Arrow batches moving (50 MB/s per stream at 20 ms) while bounding what a
 * stalled client can make the gateway hold to that much per call.
 */
const STREAM_WINDOW_BYTES = 1 << 20;
const SESSION_WINDOW_BYTES = 16 << 20;
/**
 * An upstream session without calls closes after this long by default: well before Azure Load
 * Balancer's default 4-minute idle timeout, after which it drops a flow without telling either
 * end (https://learn.microsoft.com/azure/load-balancer/load-balancer-tcp-idle-timeout), so no
 * call is sent on a connection that is silently dead.
 */
const IDLE_TIMEOUT_MS = 60_000;

/** Errors of session.request that mean the session is gone (a retry on a new one may work). */
const SESSION_GONE = new Set(['ERR_HTTP2_INVALID_SESSION', 'ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_OUT_OF_STREAMS']);

export interface SessionPoolOptions {
  /** https://adb-xxx.azuredatabricks.net (port 443 unless the URL names one). */
  upstream: URL;
  caFile?: string;
  proxy?: EgressProxy;
  /** TCP + proxy tunnel + TLS handshake budget for a new session. */
  connectTimeoutMs: number;
  /** A session with no call open closes after this long (default 60 s). */
  idleTimeoutMs?: number;
}

export interface UpstreamStream {
  up: http2.ClientHttp2Stream;
  session: http2.ClientHttp2Session;
}

export interface SessionPool {
  /**
   * A stream for one call, or undefined when `wanted()` turned false while connecting. Rejects
   * with a GatewayError (GATEWAY_UPSTREAM_UNREACHABLE) when no session could be had. A session
   * that went away between its 'connect' and the request (GOAWAY, idle close) is retried once on
   * a new one.
   */
  openStream(request: http2.OutgoingHttpHeaders, wanted: () => boolean): Promise<UpstreamStream | undefined>;
  /** Open sessions close once their streams end; later calls get sessions of their own. Resolves when none is left. */
  retire(): Promise<void>;
  /** Destroys every session now (calls on them end with UNAVAILABLE). */
  close(): void;
}

export function createSessionPool(options: SessionPoolOptions): SessionPool {
  /** URL.host leaves out the default port, as :authority should (RFC 9113 section 8.3.1). */
  const authority = options.upstream.host;
  /** Every session, with its open streams and idle timer. */
  const sessions = new Map<http2.ClientHttp2Session, { streams: number; idle?: NodeJS.Timeout }>();
  let shared: Promise<http2.ClientHttp2Session> | undefined;
  let retired = false;
  let closed = false;
  /** Connections being opened for sessions (not in `sessions` until TLS is up). */
  let connecting = 0;
  /** retire()'s waiters, told when the last session has closed. */
  const emptied: Array<() => void> = [];

  /** Tells retire()'s waiters once no session is open or being connected. */
  function notifyIfEmpty(): void {
    if (sessions.size === 0 && connecting === 0) for (const done of emptied.splice(0)) done();
  }

  /** With no stream left: a retired session closes now, another after idleTimeoutMs. */
  function whenIdle(session: http2.ClientHttp2Session): void {
    const state = sessions.get(session);
    if (!state || state.streams > 0) return;
    if (retired) {
      session.close();
      return;
    }
    clearTimeout(state.idle);
    state.idle = setTimeout(() => session.close(), options.idleTimeoutMs ?? IDLE_TIMEOUT_MS).unref();
  }

  /** A new session, resolved once TLS is up and h2 negotiated (TCP, tunnel and TLS within connectTimeoutMs). */
  async function connect(): Promise<http2.ClientHttp2Session> {
    let socket: Socket;
    connecting++;
    try {
      socket = await connectUpstream(options.upstream, {
        timeoutMs: options.connectTimeoutMs,
        alpn: ['h2'],
        ...(options.caFile ? { caFile: options.caFile } : {}),
        ...(options.proxy ? { proxy: options.proxy } : {}),
      });
    } finally {
      connecting--;
      // A failed connect may have been the last thing retire() waited for.
      queueMicrotask(notifyIfEmpty);
    }
    if (closed) {
      socket.destroy();
      throw new Error('the forwarder is closed');
    }
    const alpn = (socket as TLSSocket).alpnProtocol;
    if (alpn !== 'h2') {
      socket.destroy();
      throw new Error(`it did not agree to HTTP/2 (ALPN: ${alpn || 'none'})`);
    }
    const session = http2.connect(options.upstream.origin, {
      createConnection: () => socket,
      settings: { initialWindowSize: STREAM_WINDOW_BYTES, enablePush: false },
    });
    sessions.set(session, { streams: 0 });
    session.on('error', () => {}); // the calls on it see their streams fail; 'close' follows
    session.once('close', () => {
      clearTimeout(sessions.get(session)?.idle);
      sessions.delete(session);
      notifyIfEmpty();
    });
    return new Promise((resolve, reject) => {
      session.once('connect', () => {
        session.setLocalWindowSize(SESSION_WINDOW_BYTES);
        if (!retired) whenIdle(session); // a retired one is for a call about to start
        resolve(session);
      });
      session.once('error', reject);
      session.once('close', () => reject(new Error('the connection closed during the handshake')));
    });
  }

  /** The shared session (made on first use, made again once it closes, errs or is told to go away). */
  function session(): Promise<http2.ClientHttp2Session> {
    if (closed) return Promise.reject(new Error('the forwarder is closed'));
    if (retired) return connect(); // one of its own per call, closed after it (whenIdle)
    const cached = shared;
    if (cached) return cached;
    const made = connect();
    shared = made;
    const forget = () => {
      if (shared === made) shared = undefined;
    };
    made.then((s) => {
      if (s.closed || s.destroyed) forget();
      s.once('close', forget);
      s.once('goaway', forget);
      s.once('error', forget);
    }, forget);
    return made;
  }

  async function openStream(request: http2.OutgoingHttpHeaders, wanted: () => boolean): Promise<UpstreamStream | undefined> {
    for (let attempt = 1; ; attempt++) {
      let current: http2.ClientHttp2Session;
      try {
        current = await session();
      } catch (err) {
        // The connector's failures read as the HTTP door's do (the socket's own error, the connect timeout, the proxy's answer).
        throw toGatewayError(err, authority);
      }
      if (!wanted()) {
        whenIdle(current);
        return undefined;
      }
      try {
        const up = current.request(request, { endStream: false });
        const state = sessions.get(current);
        if (state) {
          state.streams++;
          clearTimeout(state.idle);
          up.once('close', () => {
            state.streams--;
            whenIdle(current);
          });
        }
        return { up, session: current };
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (!SESSION_GONE.has(code)) throw err;
        if (attempt === 2) throw new GatewayError('GATEWAY_UPSTREAM_UNREACHABLE', `the connection to ${authority} closed: ${code} (${errorMessage(err)})`);
      }
    }
  }

  return {
    openStream,
    retire() {
      retired = true;
      shared = undefined;
      for (const s of sessions.keys()) {
        // One still connecting has calls waiting for it: it closes once they are done.
        if (s.connecting) s.once('connect', () => whenIdle(s));
        else s.close(); // Node: open streams finish, then it closes
      }
      return sessions.size === 0 && connecting === 0 ? Promise.resolve() : new Promise<void>((resolve) => emptied.push(resolve));
    },
    close() {
      closed = true;
      shared = undefined;
      for (const s of sessions.keys()) s.destroy();
    },
  };
}
