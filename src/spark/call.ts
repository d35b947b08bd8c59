/**
 * One Spark Connect call: the checks (admit-call.ts), the route's auth headers, a stream on the
 * shared session (sessions.ts), then both bodies piped (HTTP/2 flow control is the backpressure
 * end to end), the response headers and trailers relayed, and whatever goes wrong mapped to the
 * call's one grpc-status (grpc-status.ts). The call is reported once through onCall, when the
 * client's stream closes; nothing a client or the upstream does escapes as an exception.
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
import type http2 from 'node:http2';
import { constants } from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { InboundKey } from '../config/types.js';
import { errorMessage, GatewayError, internalError } from '../errors.js';
import type { AuthHeaders } from '../proxy/auth-headers.js';
import { isGatewayOnlyHeader, isHopByHop } from '../proxy/headers.js';
import { type CallAdmission, NotGrpcCallError } from './admit-call.js';
import {
  decodeGrpcMessage,
  GrpcStatus,
  grpcStatusForGatewayError,
  parseGrpcStatus,
  statusForHttp2Error,
  statusForHttpStatus,
  statusTrailers,
} from './grpc-status.js';
import type { SessionPool, UpstreamStream } from './sessions.js';

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

/** What one call needs of its route and forwarder. */
export interface CallContext {
  routeName: string;
  /** The upstream's :authority (URL.host: no default port). */
  authority: string;
  admission: CallAdmission;
  sessions: SessionPool;
  /** The route's auth headers; rejects (a GatewayError with the credential's hint) when there is no token. */
  authHeaders(): Promise<AuthHeaders>;
  /** The upstream refused `token` (grpc-status 16 UNAUTHENTICATED, or HTTP 401). */
  rejectToken(token: string): void;
  /** timeouts.idleMs: a call with no data either way for this long ends UNAVAILABLE (none when absent). */
  callIdleMs?: number;
  onCall(call: SparkCall): void;
}

/** How long a client may go on sending a request the gateway has already answered. */
const DRAIN_MS = 5_000;
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

/**
 * Ends, relays and reports one call. Never throws: every 'error' event is handled, and a failure
 * ends this one call with a gRPC status.
 */
export function relayCall(ctx: CallContext, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  const started = performance.now();
  const method = String(headers[':path'] ?? '');
  /** The client's connection (a closed stream no longer knows it). */
  const connection = stream.session;
  let key: InboundKey | undefined;
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

  /** Ends the call with the gateway error's status (grpc-status.ts); `logged` is what the log says, if not the message. */
  const failWith = (err: GatewayError, logged = err.message) => fail(grpcStatusForGatewayError(err), logged, err.message);

  const internal = (err: unknown) => {
    try {
      failWith(internalError(), `internal gateway error: ${describe(err)}`);
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
    if (token !== undefined && (code === GrpcStatus.UNAUTHENTICATED || httpStatus === 401)) ctx.rejectToken(token);
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
      fail(code ?? statusForHttpStatus(httpStatus), `${ctx.authority} answered HTTP ${httpStatus}${message ? `: ${message}` : ''}`);
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
      fail(statusForHttp2Error(up.rstCode), `${ctx.authority} closed the connection (HTTP/2 GOAWAY ${name})`);
    } else if (session.destroyed) {
      // The connection closed or failed under the call (Node reports CANCEL for its streams).
      fail(GrpcStatus.UNAVAILABLE, `the connection to ${ctx.authority} was lost during the call${error ? `: ${describe(error)}` : ''}`);
    } else if (up.rstCode !== constants.NGHTTP2_NO_ERROR) {
      // An RST_STREAM for this one call.
      const name = HTTP2_ERROR_NAMES[up.rstCode] ?? String(up.rstCode);
      fail(statusForHttp2Error(up.rstCode), `${ctx.authority} reset the stream (HTTP/2 ${name})`);
    } else {
      // PROTOCOL-HTTP2.md "Errors": NO_ERROR without a status is INTERNAL.
      fail(GrpcStatus.INTERNAL, `${ctx.authority} ended the stream without a grpc-status`);
    }
  };

  /** Ends the call once no data has moved either way for `idleMs`; a call that only waits cannot hold its slot for good. */
  const watchIdle = (idleMs: number, delayMs: number) => {
    idleTimer = setTimeout(
      guard(() => {
        const quiet = performance.now() - active;
        if (quiet < idleMs) watchIdle(idleMs, idleMs - quiet);
        else failWith(new GatewayError('GATEWAY_UPSTREAM_TIMEOUT', `no data either way for ${idleMs} ms (timeouts.idleMs); the gateway ended the call`));
      }),
      delayMs,
    ).unref();
  };

  /** A call the client left before any answer: counted against its connection and key, which are cut off over budget. */
  const countEarlyCancel = () => {
    if (ctx.admission.recordEarlyCancel(connection, key) && connection && !connection.destroyed) {
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
    const admission = ctx.admission.admit(headers, connection);
    key = admission.key;
    if (!admission.admitted) {
      const { refusal } = admission;
      if (refusal instanceof NotGrpcCallError) {
        reason = refusal.message;
        answer({ ':status': refusal.httpStatus, ...(refusal.httpStatus === 405 ? { allow: 'POST' } : {}) }, statusForHttpStatus(refusal.httpStatus));
      } else {
        failWith(refusal);
      }
      return;
    }
    admitted = true;
    stream.once('close', admission.release);
    if (ctx.callIdleMs) watchIdle(ctx.callIdleMs, ctx.callIdleMs);

    let auth: AuthHeaders;
    try {
      auth = await ctx.authHeaders();
    } catch (err) {
      failWith(err instanceof GatewayError ? err : new GatewayError('GATEWAY_TOKEN_UNAVAILABLE', errorMessage(err), { cause: err }));
      return;
    }
    if (over()) return;

    let opened: UpstreamStream | undefined;
    try {
      const request = {
        ...passHeaders(headers, droppedRequestHeader),
        ...auth.headers,
        ':method': 'POST',
        ':scheme': 'https',
        ':authority': ctx.authority,
        ':path': method,
        te: 'trailers',
      };
      opened = await ctx.sessions.openStream(request, () => !over());
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      failWith(err);
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
        ctx.onCall({
          route: ctx.routeName,
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
