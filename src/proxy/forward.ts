import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import type { TokenCache } from '../auth/token-cache.js';
import type { Timeouts } from '../config/types.js';
import { GatewayError, toGatewayError, writeGatewayError } from '../errors.js';
import type { RequestRecord } from '../observability/request-record.js';
import type { Route } from '../routing/route-table.js';
import { corsHeaders } from '../security/browser-guard.js';
import { authHeaders } from './auth-headers.js';
import { hasNoBody, isValidStatus, stripRequestHeaders } from './headers.js';
import { responseHeaderPass } from './response-pass.js';
import { forwardUpgrade, invalidStatus } from './upgrade.js';

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
 * here (selfHandleResponse) as a short list of passes: 401 replay, status check, the header pass
 * (response-pass.ts), then a streamed body. WebSocket upgrades go through upgrade.ts.
 */
export class Forwarder {
  // No constructor options: http-proxy merges per-call options over them shallowly, so every
  // per-request value (target, agent, headers) is passed per call (see protocols.md).
  readonly #proxy = createProxyServer({});
  readonly #exchanges = new WeakMap<IncomingMessage, Exchange>();

  constructor(
    private readonly tokens: TokenCache,
    private readonly timeouts: Timeouts,
  ) {
    this.#proxy.on('proxyRes', (proxyRes, req, res) => this.#onResponse(proxyRes, req, res));
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

  ws(req: IncomingMessage, socket: Duplex, head: Buffer, route: Route, upstreamPath: string, prefix: string): Promise<void> {
    return forwardUpgrade(req, socket, head, { route, upstreamPath, prefix }, this.tokens, this.timeouts);
  }

  async #send(req: IncomingMessage, res: ServerResponse, exchange: Exchange): Promise<void> {
    const { route } = exchange;
    let auth: Awaited<ReturnType<typeof authHeaders>>;
    try {
      auth = await authHeaders(route, this.tokens);
    } catch (err) {
      exchange.record.error = err instanceof GatewayError ? err.code : 'ERROR';
      writeGatewayError(res, toGatewayError(err, route.target.origin), { close: true });
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
    const status = proxyRes.statusCode ?? 0;
    // A rejected token is dropped, and the request replayed once with a new one (the cached one
    // may have been revoked early), unless the cache is backing off: then the 401 is the answer.
    if (status === 401 && exchange.token && this.tokens.reject(exchange.route.credential, 'databricks', exchange.token) && exchange.replayable) {
      exchange.replayable = false;
      exchange.record.replayed = true;
      proxyRes.resume();
      void this.#send(req, res, exchange);
      return;
    }
    if (!isValidStatus(status)) {
      proxyRes.destroy();
      exchange.record.error = 'GATEWAY_UPSTREAM_UNREACHABLE';
      writeGatewayError(res, invalidStatus(status, exchange.route.target.origin), { close: !req.complete });
      return;
    }
    const headers = responseHeaderPass(proxyRes.rawHeaders, exchange.route, exchange.prefix);
    if (exchange.record.corsOrigin) {
      for (const [k, v] of Object.entries(corsHeaders(exchange.record.corsOrigin))) headers.push(k, v);
    }
    // The upstream's Date (if any) passes through; do not add a second one.
    res.sendDate = false;
    try {
      // Node's own reason phrase, never the upstream's: free text nothing needs, whose control
      // bytes would make writeHead throw.
      res.writeHead(status, headers);
    } catch (err) {
      // Whatever Node still refuses of upstream bytes must not escape the response path.
      proxyRes.destroy();
      exchange.record.error = 'GATEWAY_UPSTREAM_UNREACHABLE';
      writeGatewayError(res, toGatewayError(err, exchange.route.target.origin), { close: !req.complete });
      return;
    }
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
    writeGatewayError(res, gatewayError, { close: !req.complete });
  }
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
