import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { TokenCache } from '../auth/token-cache.js';
import type { Timeouts } from '../config/types.js';
import { asError, GatewayError, transportFailure, writeGatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { countOwnBody, failureAnswer } from '../observability/request-log.js';
import type { RequestRecord } from '../observability/request-record.js';
import type { Route } from '../routing/route-table.js';
import { corsHeaders } from '../security/browser-guard.js';
import { type AuthHeaders, authHeaders, cachedAuthHeaders } from './auth-headers.js';
import { forwardedRequestHeaders, hasNoBody, invalidStatus, isValidStatus } from './headers.js';
import { responseHeaderPass } from './response-pass.js';
import { forwardUpgrade } from './upgrade.js';

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  route: Route;
  upstreamPath: string;
  /** Local prefix the client used ("" on a per-route port). */
  prefix: string;
  record: RequestRecord;
  /** The client's headers after the request pass, without the gateway's auth headers. */
  headers: string[];
  /** A request without a body may be sent once more after a 401 with a fresh token. */
  replayable: boolean;
}

/**
 * Forwards requests over undici (`Pool.dispatch`, the lowest-level and cheapest undici API: no
 * fetch Request/Response, no promise per chunk), attaching the route's token. The response side
 * is an ordered list of passes (ResponseHandler.onHeaders): 401 replay, status check, the header
 * pass (response-pass.ts), the head; then the body, written as it arrives with backpressure.
 * WebSocket upgrades go through upgrade.ts.
 */
export class Forwarder {
  constructor(
    private readonly tokens: TokenCache,
    private readonly timeouts: Timeouts,
    private readonly logger: Logger,
  ) {}

  web(req: IncomingMessage, res: ServerResponse, route: Route, upstreamPath: string, prefix: string, record: RequestRecord): void {
    const exchange: Exchange = {
      req,
      res,
      route,
      upstreamPath,
      prefix,
      record,
      headers: forwardedRequestHeaders(req.rawHeaders),
      // Decided on the request as the client sent it.
      replayable: hasNoBody(req.headers),
    };
    this.#send(exchange);
  }

  ws(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    route: Route,
    upstreamPath: string,
    prefix: string,
    onAnswer: (status: number, error?: GatewayError) => void,
  ): Promise<void> {
    return forwardUpgrade(req, socket, head, { route, upstreamPath, prefix }, this.tokens, this.timeouts, onAnswer, (err) => this.#answerFor(err, route));
  }

  /** A failure once the exchange started: a transport error as the upstream's, anything else a 500 (failureAnswer). */
  #answerFor(err: unknown, route: Route): GatewayError {
    return failureAnswer(transportFailure(err, route.target.origin, this.timeouts) ?? err, this.logger);
  }

  #send(exchange: Exchange): void {
    const auth = cachedAuthHeaders(exchange.route, this.tokens);
    if (auth) {
      this.#dispatch(exchange, auth);
      return;
    }
    authHeaders(exchange.route, this.tokens).then(
      (fetched) => {
        // The client may have gone while the token was fetched: send nothing upstream then.
        if (!exchange.res.destroyed && !exchange.req.socket.destroyed) this.#dispatch(exchange, fetched);
      },
      // Refused before anything was forwarded: the connection closes (README, "Security").
      (err: unknown) => answerWith(exchange, this.#answerFor(err, exchange.route), true),
    );
  }

  #dispatch(exchange: Exchange, auth: AuthHeaders): void {
    const { req, route } = exchange;
    const headers = exchange.headers.slice();
    for (const name in auth.headers) headers.push(name, auth.headers[name] as string);
    headers.push('host', route.target.host);
    const handler = new ResponseHandler(
      exchange,
      auth.token,
      this.tokens,
      (err) => this.#answerFor(err, exchange.route),
      () => this.#send(exchange),
    );
    try {
      route.pool.dispatch(
        {
          origin: route.target.origin,
          // The raw path and query, byte-for-byte: undici sends `path` as given.
          path: exchange.upstreamPath,
          method: req.method ?? 'GET',
          headers,
          body: exchange.replayable ? null : requestBody(req, exchange.record),
        },
        handler,
      );
    } catch (err) {
      // undici validates before sending (a header value it will not write, say): nothing went out.
      handler.onError(asError(err));
    }
  }
}

/**
 * One upstream exchange's response, on undici's dispatch handler interface: raw header pairs as
 * Buffers (names as sent, repeats kept), body chunks with `false` as the pause signal.
 */
class ResponseHandler implements Dispatcher.DispatchHandler {
  #abort: ((err?: Error) => void) | undefined;
  #replay = false;
  #done = false;

  constructor(
    private readonly exchange: Exchange,
    private readonly token: string,
    private readonly tokens: TokenCache,
    /** The gateway's answer to a failure (Forwarder's #answerFor). */
    private readonly answerFor: (err: unknown) => GatewayError,
    private readonly resend: () => void,
  ) {
    // A client that goes away aborts the upstream exchange (the body stream too).
    exchange.res.once('close', () => {
      if (!this.#done) this.#abort?.(new Error('client closed the connection'));
    });
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.exchange.res.destroyed) abort(new Error('client closed the connection'));
  }

  /** The response passes, in order; each returns false once it has answered the client itself. */
  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (this.#replayAfterRejection(status)) return true;
    if (!this.#checkStatus(status)) return false;
    if (!this.#writeHead(status, this.#headerPass(rawHeaders))) return false;
    this.exchange.res.on('drain', resume);
    return true;
  }

  /**
   * 1. A rejected token is dropped, and the request replayed once with a new one (the cached one
   * may have been revoked early), unless the cache is backing off: then the 401 is the answer.
   */
  #replayAfterRejection(status: number): boolean {
    const { exchange } = this;
    if (status !== 401 || !this.tokens.reject(exchange.route.credential, 'databricks', this.token) || !exchange.replayable) return false;
    exchange.replayable = false;
    exchange.record.replayed = true;
    this.#replay = true;
    return true;
  }

  /** 2. A status outside 100-599 (or 101 to a plain request) is an upstream fault: 502. */
  #checkStatus(status: number): boolean {
    if (isValidStatus(status)) return true;
    this.#giveUp(new Error('invalid status'), invalidStatus(status, this.exchange.route.target.origin));
    return false;
  }

  /** 3. The header pass (response-pass.ts), plus the gateway's CORS headers for an allowed origin. */
  #headerPass(rawHeaders: Buffer[]): string[] {
    const { route, prefix, record } = this.exchange;
    const raw: string[] = new Array(rawHeaders.length);
    for (let i = 0; i < rawHeaders.length; i++) raw[i] = (rawHeaders[i] as Buffer).toString('latin1');
    const headers = responseHeaderPass(raw, route, prefix);
    if (record.corsOrigin) {
      const cors = corsHeaders(record.corsOrigin);
      for (const name in cors) headers.push(name, cors[name] as string);
    }
    return headers;
  }

  /** 4. The head, with Node's own reason phrase: never the upstream's free text, whose control bytes would make writeHead throw. */
  #writeHead(status: number, headers: string[]): boolean {
    const { res, route } = this.exchange;
    // The upstream's Date (if any) passes through; do not add a second one.
    res.sendDate = false;
    try {
      res.writeHead(status, headers);
      return true;
    } catch (err) {
      // Whatever Node still refuses of upstream bytes must not escape the response path: the
      // upstream's fault (Node's message names the header, never its value).
      const answer = new GatewayError(
        'GATEWAY_UPSTREAM_UNREACHABLE',
        `${route.target.origin} answered with a header the gateway cannot relay: ${asError(err).message}`,
        {
          cause: err,
        },
      );
      this.#giveUp(asError(err), answer);
      return false;
    }
  }

  /** Abort the upstream exchange and answer the client with the gateway's error instead. */
  #giveUp(cause: Error, answer: GatewayError): void {
    this.#finish();
    this.#abort?.(cause);
    answerWith(this.exchange, answer);
  }

  onData(chunk: Buffer): boolean {
    if (this.#replay) return true;
    this.exchange.record.bytesOut += chunk.length;
    return this.exchange.res.write(chunk);
  }

  onComplete(): void {
    if (this.#replay) {
      this.#finish();
      this.resend();
      return;
    }
    this.#finish();
    this.exchange.res.end();
  }

  onError(err: Error): void {
    if (this.#done) return;
    this.#finish();
    const { exchange } = this;
    // undici sets req.socket to null when it destroys a request body it was sending (core/util.js
    // destroy), leaving the client's connection open: the client is still there to be answered.
    if (exchange.res.destroyed || exchange.req.socket?.destroyed) {
      if (!exchange.res.headersSent) exchange.record.error = 'CLIENT_ABORTED';
      return;
    }
    // Mid-stream (headers sent), the answer aborts the response: an upstream reset reaches the
    // client as a reset, never as a silently short body.
    answerWith(exchange, this.answerFor(err));
  }

  #finish(): void {
    this.#done = true;
  }
}

/**
 * The gateway's own answer, noted on the record. The connection closes when asked, and whenever
 * the client's request was not read whole (its body must not be parsed as the next request).
 */
function answerWith(exchange: Exchange, answer: GatewayError, close = false): void {
  exchange.record.error = answer.code;
  exchange.record.reason = answer.message;
  countOwnBody(exchange.res, exchange.record);
  writeGatewayError(exchange.res, answer, { close: close || !exchange.req.complete });
}

/**
 * The client's body for undici, counted for the log and metrics. With a Content-Length the stream
 * goes as it is (undici enforces the length, so the count is exact); a chunked body is counted as
 * it passes. Never a 'data' listener on the request: that would start the flow before undici
 * reads, and lose what arrives in between.
 */
function requestBody(req: IncomingMessage, record: RequestRecord): Readable {
  const length = Number(req.headers['content-length']);
  if (Number.isSafeInteger(length)) {
    record.bytesIn = length;
    return req;
  }
  const counted = (async function* countBytes() {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      record.bytesIn += chunk.length;
      yield chunk;
    }
  })();
  // undici writes any async iterable as a chunked body (core/util isIterable); its types list streams only.
  return counted as unknown as Readable;
}
