/**
 * Spark Connect (gRPC over HTTP/2) forwarding: the calls of one route's Spark Connect listener go
 * to the route's workspace over one multiplexed HTTP/2 + TLS session, with the route's bearer
 * token in place of whatever the client sent. Independent of the gateway's config and listeners:
 *
 *   const forwarder = createSparkConnectForwarder(target, (call) => log(call));
 *   h2Server.on('stream', (stream, headers) => forwarder.handleStream(stream, headers));
 *   ...
 *   forwarder.retire();   // reload: upstream sessions close once their calls end
 *   forwarder.close();    // shutdown: everything now
 *
 * `handleStream` never throws and handles every 'error' event, so nothing a client or the upstream
 * does can take the listener (or the process) down: a failure ends that one call with a gRPC
 * status. Each call is reported once through `onCall`, when the client's stream closes.
 *
 * Per call, in order: browsers refused; the inbound key (when keys are configured); POST +
 * application/grpc; the rate limit; a Spark Connect method; the bound on calls in flight (anything
 * refused is never forwarded with the token); the route's auth headers; then a stream on the
 * shared session. That session is made on first use, made again after it closes, fails or
 * gets a GOAWAY, and closed after idleTimeoutMs without calls.
 *
 * Protocol facts (gRPC PROTOCOL-HTTP2.md, https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
 * - A call is a POST with content-type application/grpc[+...]; `te: trailers` is required.
 * - Response -> (Response-Headers *Length-Prefixed-Message Trailers) / Trailers-Only, where
 *   Trailers-Only is one HEADERS frame with END_STREAM holding :status 200, content-type and
 *   grpc-status [grpc-message]: what the gateway answers when it fails a call before any response
 *   headers went out (and what an upstream's Trailers-Only answer stays on its way through).
 * - An RST_STREAM or GOAWAY error code maps to a status ("Errors"), see grpc-status.ts; so does a
 *   non-200 HTTP status without grpc-status (http-grpc-status-mapping.md).
 * Node's http2 (https://nodejs.org/docs/latest-v20.x/api/http2.html): `waitForTrailers` +
 * 'wantTrailers' + `sendTrailers` for trailers; a client stream's 'response' event carries the
 * flags (END_STREAM marks a Trailers-Only answer) and 'trailers' the trailing HEADERS; readable
 * streams that are not read stop the HTTP/2 window updates, so `pipe` gives end-to-end flow control
 * (test/spark/flow-control.test.ts holds a 128 MiB stream back with it).
 */
import http2, { constants } from 'node:http2';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { errorMessage, GatewayError, toGatewayError } from '../errors.js';
import type { AuthHeaders } from '../proxy/auth-headers.js';
import { connectUpstream } from '../proxy/connector.js';
import type { EgressProxy } from '../proxy/egress-proxy.js';
import { isGatewayOnlyHeader, isHopByHop } from '../proxy/headers.js';
import { assertKeyMayUse, type KeyAuthenticator } from '../security/inbound-keys.js';
import { decodeGrpcMessage, GrpcStatus, parseGrpcStatus, statusForHttp2Error, statusForHttpStatus, statusTrailers } from './grpc-status.js';

/** One forwarded call, reported once its client stream has closed. */
export interface SparkCall {
  route: string;
  /** The :path, e.g. /spark.connect.SparkConnectService/ExecutePlan. */
  method: string;
  /** The grpc-status the client was sent (CANCELLED when it left before getting one). */
  grpcStatus: number;
  durationMs: number;
  /** Bytes of the request body (gRPC frames) from the client, and of the response body to it. */
  requestBytes: number;
  responseBytes: number;
  /** The inbound key's name, when keys are configured. */
  keyName?: string;
  /** Why the call did not end OK (the status message, or what the gateway saw). */
  reason?: string;
}

export interface SparkConnectTarget {
  routeName: string;
  /** https://adb-xxx.azuredatabricks.net (port 443 unless the URL names one). */
  upstream: URL;
  /** A PEM file of extra CAs trusted for the upstream, besides the public roots. */
  caFile?: string;
  /** Connect through this proxy's CONNECT tunnel, then TLS (ALPN h2) inside it. */
  proxy?: EgressProxy;
  /** The route's auth headers; rejects (a GatewayError with the credential's hint) when there is no token. */
  authHeaders(): Promise<AuthHeaders>;
  /** The upstream refused `token` (grpc-status 16 UNAUTHENTICATED, or HTTP 401). */
  rejectToken(token: string): void;
  /** With inbound keys: checks the client's `authorization: Bearer <key>` metadata (throws GatewayError). */
  authenticate?: KeyAuthenticator;
  /** limits.requestsPerMinutePerKey: takes one call from the key's (or the client address's) budget; throws GatewayError over it. */
  rateLimit?: (key: ReturnType<KeyAuthenticator> | undefined, address: string | undefined) => void;
  /** TCP + proxy tunnel + TLS handshake budget for a new upstream session. */
  connectTimeoutMs: number;
  /** An upstream session with no call open closes after this long (default 60 s). */
  idleTimeoutMs?: number;
  /** timeouts.idleMs: a call with no data either way for this long ends UNAVAILABLE (none when absent). */
  callIdleMs?: number;
}

export interface SparkConnectForwarder {
  /** For an http2.Http2Server / Http2SecureServer 'stream' event. Never throws. */
  handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void;
  /** Reload: open upstream sessions close once their streams end; later calls get sessions of their own. Resolves when none is left. */
  retire(): Promise<void>;
  /** Shutdown: destroys every upstream session now (calls on them end with UNAVAILABLE). */
  close(): void;
}

/**
 * Flow-control windows the gateway advertises to the upstream (RFC 9113 section 6.9). Node's
 * default, 64 KiB, caps a stream at 64 KiB per round trip (about 3 MB/s at 20 ms); 1 MiB per
 * stream keeps Arrow batches moving (50 MB/s per stream at 20 ms) while bounding what a
 * stalled client can make the gateway hold to that much per call.
 */
const STREAM_WINDOW = 1 << 20;
const SESSION_WINDOW = 16 << 20;
/** How long a client may go on sending a request the gateway has already answered. */
const DRAIN_MS = 5_000;
/** Calls in flight per route: with STREAM_WINDOW each, what stalled clients can make the gateway hold is bounded (128 MiB). */
const MAX_OPEN_CALLS = 128;
/**
 * A client connection's share of those, and an inbound key's: no one client can take them all. The
 * listener advertises the per-connection share as SETTINGS_MAX_CONCURRENT_STREAMS, so gRPC clients
 * queue their calls rather than have them refused.
 */
export const MAX_CALLS_PER_CONNECTION = 32;
const MAX_CALLS_PER_KEY = 64;
/**
 * Calls a client may cancel before the upstream answered them, in a burst and then per second, per
 * connection and per key. Each may have cost a stream on the session every user of the route
 * shares; a client resetting them in a loop (the HTTP/2 "Rapid Reset", CVE-2023-44487) would get
 * that session a GOAWAY from the workspace. Over the budget its connection is closed with GOAWAY
 * ENHANCE_YOUR_CALM (RFC 9113 section 7), and the key's new calls are refused while it refills.
 */
const EARLY_CANCELS_PER_CONNECTION = { burst: 32, perSecond: 1 };
const EARLY_CANCELS_PER_KEY = { burst: 64, perSecond: 2 };
/** The methods of Spark Connect's one service (spark/connect/base.proto: ExecutePlan, AnalyzePlan, Config, ...). */
const SPARK_CONNECT_METHOD = /^\/spark\.connect\.SparkConnectService\/[A-Za-z]\w*$/;
/**
 * An upstream session without calls closes after this long by default: well before Azure Load
 * Balancer's default 4-minute idle timeout, after which it drops a flow without telling either
 * end (https://learn.microsoft.com/azure/load-balancer/load-balancer-tcp-idle-timeout), so no
 * call is sent on a connection that is silently dead.
 */
const IDLE_TIMEOUT_MS = 60_000;

/**
 * Request headers never forwarded: the hop-by-hop fields and what only the gateway may set
 * (src/proxy/headers.ts, the same rules as HTTP/1), plus what HTTP/2 forbids or sets itself (RFC
 * 9113 section 8.2.2: Transfer-Encoding, HTTP2-Settings; Host and the pseudo-headers are set
 * explicitly; `te: trailers` is re-added).
 */
const HTTP2_REQUEST_HEADERS = new Set(['transfer-encoding', 'host', 'http2-settings']);
/** Response headers and trailers never passed back: connection-specific fields and pseudo-headers. */
const DROPPED_RESPONSE_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings']);

/** RFC 9113 section 7: the error codes 0x0-0xd, by code. */
const HTTP2_ERROR_NAMES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
];

type Headers = Record<string, string | string[]>;

function passHeaders(from: http2.IncomingHttpHeaders, dropped: (name: string) => boolean): Headers {
  const out: Headers = {};
  for (const [name, value] of Object.entries(from)) {
    if (value !== undefined && !dropped(name)) out[name] = value;
  }
  return out;
}

/** The gateway's own headers (the inbound key, the control secret): never from a client to an upstream. */
const GATEWAY_HEADER_PREFIX = 'x-dbx-gateway-';
/**
 * gRPC binary metadata is the same field with a `-bin` suffix (PROTOCOL-HTTP2.md "Requests",
 * Binary-Header), so `authorization-bin` is dropped as `authorization` is.
 */
const gatewayOnly = (name: string) => name.startsWith(GATEWAY_HEADER_PREFIX) || isGatewayOnlyHeader(name.endsWith('-bin') ? name.slice(0, -4) : name);
const droppedRequestHeader = (name: string) => name.startsWith(':') || isHopByHop(name) || HTTP2_REQUEST_HEADERS.has(name) || gatewayOnly(name);
const droppedResponseHeader = (name: string) => name.startsWith(':') || DROPPED_RESPONSE_HEADERS.has(name);

/** grpc-message as a person reads it, for `reason`. */
function messageOf(headers: http2.IncomingHttpHeaders): string | undefined {
  const raw = headers['grpc-message'];
  const text = Array.isArray(raw) ? raw[0] : raw;
  return text ? decodeGrpcMessage(text) : undefined;
}

function describe(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = errorMessage(err);
  return code && !message.includes(code) ? `${code} (${message})` : message;
}

/** Errors of session.request that mean the session is gone (a retry on a new one may work). */
const SESSION_GONE = new Set(['ERR_HTTP2_INVALID_SESSION', 'ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_OUT_OF_STREAMS']);

/** No upstream session could be had: the call ends UNAVAILABLE with this message. */
class Unreachable extends Error {}

/** A token bucket: `burst` takes at once, refilled at `perSecond`. */
class Budget {
  private tokens: number;
  private at = performance.now();
  constructor(private readonly limit: { burst: number; perSecond: number }) {
    this.tokens = limit.burst;
  }
  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.at) / 1000) * this.limit.perSecond);
    this.at = now;
  }
  /** Takes one; false when none was left. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
  empty(): boolean {
    this.refill();
    return this.tokens < 1;
  }
}

function budgetOf<K>(budgets: { get(k: K): Budget | undefined; set(k: K, b: Budget): unknown }, k: K, limit: { burst: number; perSecond: number }): Budget {
  const found = budgets.get(k);
  if (found) return found;
  const made = new Budget(limit);
  budgets.set(k, made);
  return made;
}

/** Calls in flight per client connection or key name; an entry goes when its count is back to 0. */
function tally<K>() {
  const map = new Map<K, number>();
  return {
    count: (k: K) => map.get(k) ?? 0,
    add: (k: K, n: number) => {
      const next = (map.get(k) ?? 0) + n;
      if (next === 0) map.delete(k);
      else map.set(k, next);
    },
  };
}

export function createSparkConnectForwarder(target: SparkConnectTarget, onCall: (call: SparkCall) => void): SparkConnectForwarder {
  if (target.upstream.protocol !== 'https:') throw new TypeError(`Spark Connect upstream ${target.upstream.origin}: only https:// is supported`);
  /** URL.host leaves out the default port, as :authority should (RFC 9113 section 8.3.1). */
  const authority = target.upstream.host;

  /** Every upstream session, with its open streams and idle timer. */
  const sessions = new Map<http2.ClientHttp2Session, { streams: number; idle?: NodeJS.Timeout }>();
  let shared: Promise<http2.ClientHttp2Session> | undefined;
  let retired = false;
  let closed = false;
  let openCalls = 0;
  const callsByConnection = tally<http2.Http2Session>();
  const callsByKey = tally<string>();
  const cancelsByConnection = new WeakMap<http2.Http2Session, Budget>();
  const cancelsByKey = new Map<string, Budget>();
  /** retire()'s waiters, told when the last session has closed. */
  const emptied: Array<() => void> = [];
  /** Connections being opened for sessions (not in `sessions` until TLS is up). */
  let connecting = 0;

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
    state.idle = setTimeout(() => session.close(), target.idleTimeoutMs ?? IDLE_TIMEOUT_MS).unref();
  }

  /** A new session, resolved once TLS is up and h2 negotiated (TCP, tunnel and TLS within connectTimeoutMs). */
  async function connect(): Promise<http2.ClientHttp2Session> {
    let socket: Socket;
    connecting++;
    try {
      socket = await connectUpstream(target.upstream, {
        timeoutMs: target.connectTimeoutMs,
        alpn: ['h2'],
        ...(target.caFile ? { caFile: target.caFile } : {}),
        ...(target.proxy ? { proxy: target.proxy } : {}),
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
    const session = http2.connect(target.upstream.origin, {
      createConnection: () => socket,
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
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
        session.setLocalWindowSize(SESSION_WINDOW);
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

  /**
   * A stream for one call, or undefined when `wanted()` turned false while connecting. Rejects
   * with Unreachable when no session could be had. A session that went away between its
   * 'connect' and the request (GOAWAY, idle close) is retried once on a new one.
   */
  async function openStream(request: Headers, wanted: () => boolean): Promise<{ up: http2.ClientHttp2Stream; session: http2.ClientHttp2Session } | undefined> {
    for (let attempt = 1; ; attempt++) {
      let current: http2.ClientHttp2Session;
      try {
        current = await session();
      } catch (err) {
        // The connector's failures read as the HTTP door's do (the socket's own error, the connect timeout, the proxy's answer).
        throw new Unreachable(toGatewayError(err, authority).message);
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
        if (!SESSION_GONE.has((err as { code?: string }).code ?? '')) throw err;
        if (attempt === 2) throw new Unreachable(`the connection to ${authority} closed: ${describe(err)}`);
      }
    }
  }

  function handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const started = performance.now();
    const method = String(headers[':path'] ?? '');
    /** The client's connection (a closed stream no longer knows it). */
    const connection = stream.session;
    let key: ReturnType<KeyAuthenticator> | undefined;
    let upstream: http2.ClientHttp2Stream | undefined;
    let token: string | undefined;
    let requestBytes = 0;
    let responseBytes = 0;
    let reason: string | undefined;
    /** The grpc-status the client was sent; set when it goes out. */
    let sent: number | undefined;
    /** The upstream's call ended with a status of its own (trailers, Trailers-Only or an HTTP status). */
    let upstreamDone = false;
    /** What 'wantTrailers' sends, and whether it fired. */
    let trailers: Headers | undefined;
    let trailersWanted = false;
    /** The call took a slot; the upstream sent its response headers. */
    let admitted = false;
    let answered = false;
    /** When data last moved either way, for callIdleMs. */
    let active = performance.now();
    let idleTimer: NodeJS.Timeout | undefined;

    const over = () => sent !== undefined || stream.destroyed || stream.closed;

    const closeUpstream = () => {
      if (upstream && !upstream.closed && !upstream.destroyed) upstream.close(constants.NGHTTP2_CANCEL);
    };

    const sendTrailers = () => {
      if (!trailersWanted || !trailers || sent !== undefined || stream.destroyed || stream.closed) return;
      try {
        stream.sendTrailers(trailers);
      } catch {
        // Trailers Node refuses (an upstream's connection-specific field, say): the client must not
        // wait for a status forever, so the stream is reset (the client reports INTERNAL).
        stream.close(constants.NGHTTP2_INTERNAL_ERROR);
        sent = GrpcStatus.INTERNAL;
        return;
      }
      sent = parseGrpcStatus(trailers['grpc-status']) ?? GrpcStatus.UNKNOWN;
    };

    /**
     * The rest of the request is read and dropped, once nothing takes it any more. RFC 9113
     * section 8.1 lets a server reset the stream instead (RST_STREAM NO_ERROR), but on Node 22 and
     * later a reset sent right after respond() overtakes the HEADERS, and the client sees a call
     * without a status. A client still sending after DRAIN_MS gets that reset. A stream left
     * paused (as unpipe leaves it) would never see its 'end', so never close: its slot and its
     * connection would be held for good.
     */
    let draining = false;
    const drain = () => {
      if (draining || stream.readableEnded || stream.destroyed) return;
      draining = true;
      if (upstream) stream.unpipe(upstream);
      stream.resume();
      // Not before the client has its status: a reset would cut off what is still queued for it.
      const timer = setTimeout(() => {
        if (sent === undefined) timer.refresh();
        else if (!stream.closed) stream.close(constants.NGHTTP2_NO_ERROR);
      }, DRAIN_MS).unref();
      stream.once('close', () => clearTimeout(timer));
    };

    /** A whole answer in one HEADERS frame with END_STREAM; `code` is what the client was told. */
    const answer = (response: http2.OutgoingHttpHeaders, code: number) => {
      stream.respond(response, { endStream: true });
      sent = code;
      drain();
    };

    /** Ends the call with `code`: Trailers-Only if no response headers went out, else trailers. */
    const fail = (code: number, message: string, publicMessage = message) => {
      closeUpstream();
      // Once the client has its status, or the upstream's trailers are on their way, it stands.
      if (over() || trailers !== undefined) return;
      reason = message;
      if (!stream.headersSent) {
        answer({ ':status': 200, 'content-type': 'application/grpc', ...statusTrailers(code, publicMessage) }, code);
        return;
      }
      trailers = statusTrailers(code, publicMessage);
      upstream?.unpipe(stream);
      if (!stream.writableEnded) stream.end(); // -> 'wantTrailers'
      sendTrailers();
    };

    const internal = (err: unknown) => {
      try {
        fail(GrpcStatus.INTERNAL, `internal gateway error: ${describe(err)}`, 'internal gateway error; see the gateway log');
      } catch {
        stream.destroy();
      }
    };

    const guard =
      <A extends unknown[]>(fn: (...args: A) => void) =>
      (...args: A) => {
        try {
          fn(...args);
        } catch (err) {
          internal(err);
        }
      };

    const rejected = (code: number | undefined, httpStatus?: number) => {
      if (token !== undefined && (code === GrpcStatus.UNAUTHENTICATED || httpStatus === 401)) target.rejectToken(token);
    };

    const onResponse = (response: http2.IncomingHttpHeaders, flags: number) => {
      answered = true;
      const httpStatus = Number(response[':status']);
      const code = parseGrpcStatus(response['grpc-status']);
      if (httpStatus !== 200) {
        upstreamDone = true;
        rejected(code, httpStatus);
        // http-grpc-status-mapping.md: the table applies only when grpc-status is absent.
        const message = messageOf(response);
        fail(code ?? statusForHttpStatus(httpStatus), `${authority} answered HTTP ${httpStatus}${message ? `: ${message}` : ''}`);
        return;
      }
      if (over()) return;
      if (flags & constants.NGHTTP2_FLAG_END_STREAM) {
        // Trailers-Only: passed on as one HEADERS frame with END_STREAM.
        upstreamDone = true;
        rejected(code);
        if (code !== GrpcStatus.OK) reason = messageOf(response) ?? `grpc-status ${code ?? 'missing'}`;
        answer({ ...passHeaders(response, droppedResponseHeader), ':status': 200 }, code ?? GrpcStatus.UNKNOWN);
        return;
      }
      stream.respond({ ...passHeaders(response, droppedResponseHeader), ':status': 200 }, { waitForTrailers: true });
      upstream!.pipe(stream);
      upstream!.on('data', (chunk: Buffer) => {
        responseBytes += chunk.length;
        active = performance.now();
      });
    };

    const onTrailers = (received: http2.IncomingHttpHeaders) => {
      upstreamDone = true;
      const code = parseGrpcStatus(received['grpc-status']);
      rejected(code);
      if (code !== GrpcStatus.OK) reason = messageOf(received) ?? `grpc-status ${code ?? 'missing'}`;
      trailers ??= passHeaders(received, droppedResponseHeader);
      sendTrailers();
    };

    /** The upstream stream closed; without a status of its own, the client gets the matching one. */
    const onUpstreamClose = (up: http2.ClientHttp2Stream, session: http2.ClientHttp2Session, error: unknown) => {
      if (upstreamDone) return;
      if ((error as { code?: string } | undefined)?.code === 'ERR_HTTP2_SESSION_ERROR') {
        // A GOAWAY with an error code: Node destroys the session, its streams get that code.
        const name = HTTP2_ERROR_NAMES[up.rstCode] ?? String(up.rstCode);
        fail(statusForHttp2Error(up.rstCode), `${authority} closed the connection (HTTP/2 GOAWAY ${name})`);
      } else if (session.destroyed) {
        // The connection closed or failed under the call (Node reports CANCEL for its streams).
        fail(GrpcStatus.UNAVAILABLE, `the connection to ${authority} was lost during the call${error ? `: ${describe(error)}` : ''}`);
      } else if (up.rstCode !== constants.NGHTTP2_NO_ERROR) {
        // An RST_STREAM for this one call.
        const name = HTTP2_ERROR_NAMES[up.rstCode] ?? String(up.rstCode);
        fail(statusForHttp2Error(up.rstCode), `${authority} reset the stream (HTTP/2 ${name})`);
      } else {
        // PROTOCOL-HTTP2.md "Errors": NO_ERROR without a status is INTERNAL.
        fail(GrpcStatus.INTERNAL, `${authority} ended the stream without a grpc-status`);
      }
    };

    /** Ends the call once no data has moved either way for `idleMs`; a call that only waits cannot hold its slot for good. */
    const watchIdle = (idleMs: number, delayMs: number) => {
      idleTimer = setTimeout(
        guard(() => {
          const quiet = performance.now() - active;
          if (quiet < idleMs) watchIdle(idleMs, idleMs - quiet);
          else fail(GrpcStatus.UNAVAILABLE, `no data either way for ${idleMs} ms (timeouts.idleMs); the gateway ended the call`);
        }),
        delayMs,
      ).unref();
    };

    /** A call the client left before any answer: counted against its connection and key, which are cut off over budget. */
    const countEarlyCancel = () => {
      let over = false;
      if (connection) over = !budgetOf(cancelsByConnection, connection, EARLY_CANCELS_PER_CONNECTION).take();
      if (key) over = !budgetOf(cancelsByKey, key.name, EARLY_CANCELS_PER_KEY).take() || over;
      if (over && connection && !connection.destroyed) {
        reason = 'the client cancelled too many calls before the workspace answered; its connection was closed (GOAWAY ENHANCE_YOUR_CALM)';
        // Not from inside nghttp2's receive loop: destroying a session there while the peer's DATA
        // frames are still buffered aborts Node 22+ (nodejs/node#64850, onread->IsFunction()).
        const session = connection;
        const why = reason;
        setImmediate(() => {
          if (!session.destroyed) session.destroy(new Error(why), constants.NGHTTP2_ENHANCE_YOUR_CALM);
        });
      }
    };

    const forward = async () => {
      // Browsers are refused, as on every local endpoint: no gRPC client sends Origin or Sec-Fetch-Site.
      if (headers.origin !== undefined || headers['sec-fetch-site'] !== undefined) {
        fail(GrpcStatus.PERMISSION_DENIED, 'Spark Connect does not answer browsers; connect with a Spark Connect client');
        return;
      }
      if (target.authenticate) {
        try {
          key = target.authenticate(headers);
          assertKeyMayUse(key, target.routeName);
        } catch (err) {
          const forbidden = err instanceof GatewayError && err.code === 'GATEWAY_FORBIDDEN';
          fail(forbidden ? GrpcStatus.PERMISSION_DENIED : GrpcStatus.UNAUTHENTICATED, errorMessage(err));
          return;
        }
      }
      // PROTOCOL-HTTP2.md "Requests": a call is a POST; other content types get HTTP 415.
      const contentType = String(headers['content-type'] ?? '');
      if (headers[':method'] !== 'POST' || !/^application\/grpc([+;]|$)/.test(contentType)) {
        const httpStatus = headers[':method'] !== 'POST' ? 405 : 415;
        reason = `not a gRPC call (${headers[':method']} ${contentType || 'without content-type'})`;
        answer({ ':status': httpStatus, ...(httpStatus === 405 ? { allow: 'POST' } : {}) }, statusForHttpStatus(httpStatus));
        return;
      }

      if (target.rateLimit) {
        try {
          target.rateLimit(key, connection?.socket?.remoteAddress);
        } catch (err) {
          fail(GrpcStatus.RESOURCE_EXHAUSTED, errorMessage(err));
          return;
        }
      }
      // Only Spark Connect's own service: any other path would carry the route's token to a REST
      // endpoint (token/create, say) past the HTTP route policy. UNIMPLEMENTED, as for an unknown method.
      if (!SPARK_CONNECT_METHOD.test(method)) {
        fail(GrpcStatus.UNIMPLEMENTED, `${method.slice(0, 200)} is not a Spark Connect method; this port forwards /spark.connect.SparkConnectService/* only`);
        return;
      }
      // A bound on the calls in flight: each can hold up to a stream window of response data.
      if (openCalls >= MAX_OPEN_CALLS) {
        fail(GrpcStatus.RESOURCE_EXHAUSTED, `more than ${MAX_OPEN_CALLS} Spark Connect calls are in flight on route ${target.routeName}; retry later`);
        return;
      }
      if (connection && callsByConnection.count(connection) >= MAX_CALLS_PER_CONNECTION) {
        fail(GrpcStatus.RESOURCE_EXHAUSTED, `more than ${MAX_CALLS_PER_CONNECTION} Spark Connect calls are in flight on this connection; retry later`);
        return;
      }
      if (key && callsByKey.count(key.name) >= MAX_CALLS_PER_KEY) {
        fail(
          GrpcStatus.RESOURCE_EXHAUSTED,
          `more than ${MAX_CALLS_PER_KEY} Spark Connect calls of key ${key.name} are in flight on route ${target.routeName}; retry later`,
        );
        return;
      }
      if (key && cancelsByKey.get(key.name)?.empty()) {
        fail(GrpcStatus.RESOURCE_EXHAUSTED, `key ${key.name} cancelled too many Spark Connect calls before the workspace answered; slow down`);
        return;
      }
      openCalls++;
      if (connection) callsByConnection.add(connection, 1);
      if (key) callsByKey.add(key.name, 1);
      admitted = true;
      stream.once('close', () => {
        openCalls--;
        if (connection) callsByConnection.add(connection, -1);
        if (key) callsByKey.add(key.name, -1);
      });
      if (target.callIdleMs) watchIdle(target.callIdleMs, target.callIdleMs);

      let auth: AuthHeaders;
      try {
        auth = await target.authHeaders();
      } catch (err) {
        fail(GrpcStatus.UNAUTHENTICATED, errorMessage(err));
        return;
      }
      if (over()) return;

      let opened: Awaited<ReturnType<typeof openStream>>;
      try {
        const request = {
          ...passHeaders(headers, droppedRequestHeader),
          ...auth.headers,
          ':method': 'POST',
          ':scheme': 'https',
          ':authority': authority,
          ':path': method,
          te: 'trailers',
        };
        opened = await openStream(request, () => !over());
      } catch (err) {
        if (!(err instanceof Unreachable)) throw err;
        fail(GrpcStatus.UNAVAILABLE, err.message);
        return;
      }
      if (!opened) return; // the client left while the session was being made
      const { up, session: s } = opened;
      upstream = up;
      token = auth.token;
      let error: unknown;
      up.on('error', (err) => (error ??= err));
      up.once('response', guard(onResponse));
      up.once('trailers', guard(onTrailers));
      up.once(
        'close',
        guard(() => {
          // Before pipe's own 'close' handler, whose unpipe would pause the client stream.
          drain();
          onUpstreamClose(up, s, error);
        }),
      );
      stream.pipe(up);
      stream.on('data', (chunk: Buffer) => {
        requestBytes += chunk.length;
        active = performance.now();
      });
    };

    try {
      stream.on('error', () => {}); // a client reset or a write after it: 'close' follows
      stream.on(
        'wantTrailers',
        guard(() => {
          trailersWanted = true;
          sendTrailers();
        }),
      );
      stream.once(
        'close',
        guard(() => {
          clearTimeout(idleTimer);
          closeUpstream();
          if (sent === undefined && admitted && !answered) countEarlyCancel();
          if (sent === undefined) reason ??= 'the client cancelled the call (or its deadline passed)';
          onCall({
            route: target.routeName,
            method,
            grpcStatus: sent ?? GrpcStatus.CANCELLED,
            durationMs: performance.now() - started,
            requestBytes,
            responseBytes,
            ...(key ? { keyName: key.name } : {}),
            ...(reason !== undefined ? { reason } : {}),
          });
        }),
      );
      forward().catch(internal);
    } catch (err) {
      internal(err);
    }
  }

  return {
    handleStream,
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
