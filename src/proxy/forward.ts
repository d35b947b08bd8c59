import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import type { TokenCache } from '../auth/token-cache.js';
import { GatewayError, toGatewayError, writeGatewayError } from '../errors.js';
import type { RequestRecord } from '../observability/request-record.js';
import type { Route } from '../routing/route-table.js';
import { corsHeaders } from '../security/browser-guard.js';
import { authHeaders } from './auth-headers.js';
import { forwardableResponseHeaders, hasNoBody, stripRequestHeaders } from './headers.js';
import { rewriteLocation } from './location.js';

interface Exchange {
  route: Route;
  upstreamPath: string;
  /** Local prefix the client used ("" on a per-route port). */
  prefix: string;
  record: RequestRecord;
  token?: string;
  /** A request without a body may be sent once more after a 401 with a fresh token. */
  replayable: boolean;
}

/**
 * Forwards requests with http-proxy-3, attaching the route's token. The response side is handled
 * here (selfHandleResponse) as a short list of passes: 401 replay, status, headers with the
 * Location rewrite, then a streamed body.
 */
export class Forwarder {
  // No constructor options: http-proxy merges per-call options over them shallowly, so every
  // per-request value (target, agent, headers) is passed per call (see protocols.md).
  readonly #proxy = createProxyServer({});
  readonly #exchanges = new WeakMap<IncomingMessage, Exchange>();

  readonly #upgrades = new WeakMap<IncomingMessage, { route: Route; prefix: string; token: string }>();

  constructor(private readonly tokens: TokenCache) {
    this.#proxy.on('proxyRes', (proxyRes, req, res) => this.#onResponse(proxyRes, req, res));
    // An upstream that refuses an upgrade answers with a plain HTTP response, which http-proxy-3
    // relays itself. This listener runs before its own (it is added when the request is made), so
    // that response gets the same passes as any other: 401 rejects the token, upstream CORS
    // headers go, and a Location to the upstream is rewritten.
    this.#proxy.on('proxyReqWs', (proxyReq: ClientRequest, req: IncomingMessage) => {
      const upgrade = this.#upgrades.get(req);
      if (!upgrade) return;
      proxyReq.on('response', (proxyRes: IncomingMessage) => this.#onRefusedUpgrade(proxyRes, upgrade));
    });
  }

  #onRefusedUpgrade(proxyRes: IncomingMessage, upgrade: { route: Route; prefix: string; token: string }): void {
    if (proxyRes.statusCode === 401) this.tokens.reject(upgrade.route.credential, 'databricks', upgrade.token);
    // http-proxy-3 writes this response from proxyRes.headers (web-outgoing writeHeaders).
    for (const [name, value] of Object.entries(proxyRes.headers)) {
      if (typeof value !== 'string') continue;
      const rewritten = rewriteResponseHeader(name, value, upgrade.route, upgrade.prefix);
      if (rewritten === undefined) delete proxyRes.headers[name];
      else proxyRes.headers[name] = rewritten;
    }
  }

  async web(req: IncomingMessage, res: ServerResponse, route: Route, upstreamPath: string, prefix: string, record: RequestRecord): Promise<void> {
    // Whether a 401 may be replayed is decided on the request as the client sent it.
    const replayable = hasNoBody(req.headers);
    stripRequestHeaders(req.headers);
    // The request log, http-proxy and the body stream each watch 'close'; a 401 replay
    // adds a second round. Bounded per response, so not a leak: lift Node's warning threshold.
    res.setMaxListeners(32);
    const exchange: Exchange = { route, upstreamPath, prefix, record, replayable };
    this.#exchanges.set(req, exchange);
    await this.#send(req, res, exchange);
  }

  async ws(req: IncomingMessage, socket: Duplex, head: Buffer, route: Route, upstreamPath: string, prefix: string): Promise<void> {
    stripRequestHeaders(req.headers, true);
    const { headers, token } = await authHeaders(route, this.tokens);
    if (socket.destroyed) return;
    this.#upgrades.set(req, { route, prefix, token });
    req.url = upstreamPath;
    this.#proxy.ws(req, socket, head, {
      target: route.target,
      agent: route.agent,
      changeOrigin: true,
      toProxy: true,
      headers,
    }, (err) => {
      if (!socket.destroyed) socket.destroy(err);
    });
  }

  async #send(req: IncomingMessage, res: ServerResponse, exchange: Exchange): Promise<void> {
    const { route } = exchange;
    let auth: Awaited<ReturnType<typeof authHeaders>>;
    try {
      auth = await authHeaders(route, this.tokens);
    } catch (err) {
      exchange.record.error = err instanceof GatewayError ? err.code : 'ERROR';
      writeGatewayError(res, toGatewayError(err, route.target.origin));
      return;
    }
    // The client may have gone while the token was fetched: send nothing upstream then.
    if (res.destroyed || req.socket.destroyed) return;
    exchange.token = auth.token;
    // toProxy: the path goes out exactly as received; without it http-proxy re-parses it with
    // the WHATWG URL parser, which resolves dot segments and re-encodes characters.
    req.url = exchange.upstreamPath;
    this.#proxy.web(
      req,
      res,
      {
        target: route.target,
        agent: route.agent,
        changeOrigin: true,
        toProxy: true,
        selfHandleResponse: true,
        // Per-call headers, not the proxyReq event: that event is skipped for Expect: 100-continue.
        headers: auth.headers,
      },
      (err) => this.#onError(err, req, res, exchange),
    );
    countRequestBytes(req, exchange.record);
  }

  #onResponse(proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse): void {
    const exchange = this.#exchanges.get(req);
    if (!exchange) {
      proxyRes.destroy();
      return;
    }
    const status = proxyRes.statusCode ?? 502;
    if (status === 401 && exchange.token) {
      this.tokens.reject(exchange.route.credential, 'databricks', exchange.token);
      if (exchange.replayable) {
        // Replay once with a new token: the cached one may have been revoked early.
        exchange.replayable = false;
        exchange.record.replayed = true;
        proxyRes.resume();
        void this.#send(req, res, exchange);
        return;
      }
    }
    const headers = forwardableResponseHeaders(proxyRes.rawHeaders, (name, value) =>
      rewriteResponseHeader(name, value, exchange.route, exchange.prefix),
    );
    if (exchange.record.corsOrigin) {
      for (const [k, v] of Object.entries(corsHeaders(exchange.record.corsOrigin))) headers.push(k, v);
    }
    // The upstream's Date (if any) passes through; do not add a second one.
    res.sendDate = false;
    res.writeHead(status, proxyRes.statusMessage, headers);
    proxyRes.on('data', (chunk: Buffer) => {
      exchange.record.bytesOut += chunk.length;
    });
    streamBody(proxyRes, res);
  }

  #onError(err: Error, req: IncomingMessage, res: ServerResponse, exchange: Exchange): void {
    if (req.socket.destroyed && !res.headersSent) {
      // The client left; http-proxy has already destroyed the upstream request.
      exchange.record.error = 'CLIENT_ABORTED';
      return;
    }
    const gatewayError = toGatewayError(err, exchange.route.target.origin);
    exchange.record.error = gatewayError.code;
    writeGatewayError(res, gatewayError);
  }
}

/**
 * The header pass every upstream response gets (proxied, or a refused upgrade). Upstream CORS
 * headers speak for the upstream's origin, not the gateway's: they go (an origin in allowedOrigins
 * gets the gateway's own). A Location pointing at the route's upstream becomes local.
 */
function rewriteResponseHeader(name: string, value: string, route: Route, prefix: string): string | undefined {
  if (name.startsWith('access-control-')) return undefined;
  return name === 'location' ? rewriteLocation(value, route.target, prefix) : value;
}

/**
 * The response body with backpressure (pipe), and failures passed on both ways: an upstream reset
 * aborts the client response instead of leaving it hanging, and a client that goes away stops the
 * upstream response. Not stream.pipeline: it builds and aborts an AbortController per call, and
 * the DOMException that costs was ~5% of the CPU per proxied request.
 */
function streamBody(proxyRes: IncomingMessage, res: ServerResponse): void {
  proxyRes.pipe(res);
  const abortClient = () => {
    if (!res.writableFinished) res.destroy();
  };
  proxyRes.once('error', abortClient);
  proxyRes.once('aborted', abortClient);
  proxyRes.once('close', () => {
    if (!proxyRes.complete) abortClient();
  });
  res.once('close', () => {
    if (!proxyRes.complete) proxyRes.destroy();
  });
}

function countRequestBytes(req: IncomingMessage, record: RequestRecord): void {
  // http-proxy has piped req by now; a second 'data' listener does not change its flow.
  req.on('data', (chunk: Buffer) => {
    record.bytesIn += chunk.length;
  });
}
