import http, { type IncomingMessage, STATUS_CODES } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TokenCache } from '../auth/token-cache.js';
import type { Timeouts } from '../config/types.js';
import { GatewayError, rawGatewayError, UpstreamTimeoutError } from '../errors.js';
import type { Route } from '../routing/route-table.js';
import { authHeaders } from './auth-headers.js';
import { connectUpstream } from './connector.js';
import { invalidStatus, isValidStatus, stripRequestHeaders } from './headers.js';
import { responseHeaderPass } from './response-pass.js';

export interface UpgradeTarget {
  route: Route;
  upstreamPath: string;
  /** Local prefix the client used ("" on a per-route port). */
  prefix: string;
}

/**
 * A WebSocket handshake carries no body. One that declares one (Content-Length, Transfer-Encoding)
 * is refused: forwarded, an upstream that ignores Upgrade would wait for those bytes and take them
 * from whatever is sent next on the connection (request smuggling with the gateway's token).
 */
export function assertUpgradeShape(req: IncomingMessage): void {
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) {
    throw new GatewayError(
      'GATEWAY_BAD_REQUEST',
      'a WebSocket upgrade request must not carry a body (Content-Length or Transfer-Encoding); nothing was forwarded',
    );
  }
  if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
    throw new GatewayError('GATEWAY_BAD_REQUEST', 'only WebSocket upgrades (GET with Upgrade: websocket) are proxied');
  }
}

/**
 * Forwards one WebSocket upgrade with the route's token, on an upstream connection of its own
 * (`agent: false`): a connection that carried an upgrade attempt is never pooled, whatever the
 * upstream answered, so a refused upgrade can never leave bytes that a later request would read.
 * A refused upgrade (an ordinary response) gets the response passes of proxied traffic and ends
 * the client connection.
 */
export async function forwardUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  { route, upstreamPath, prefix }: UpgradeTarget,
  tokens: TokenCache,
  timeouts: Timeouts,
  /** The outcome, once: 101, the refusing upstream's status, or the gateway's error. */
  onAnswer: (status: number, error?: GatewayError) => void,
  /** The gateway's answer to a failure: a transport error as the upstream's, anything else a 500. */
  answerFor: (err: unknown) => GatewayError,
): Promise<void> {
  assertUpgradeShape(req);
  stripRequestHeaders(req.headers, true);
  const auth = await authHeaders(route, tokens);
  if (socket.destroyed) return;
  const target = route.target;
  const tls = target.protocol === 'https:';
  const headers: http.OutgoingHttpHeaders = { ...req.headers, ...auth.headers, host: target.host };
  delete headers['content-length'];
  const answerError = (gatewayError: GatewayError) => {
    onAnswer(gatewayError.status, gatewayError);
    socket.end(rawGatewayError(gatewayError));
  };
  let upstreamSocket: Socket;
  try {
    upstreamSocket = await openUpstream(route, timeouts);
  } catch (err) {
    const gatewayError = answerFor(err);
    onAnswer(gatewayError.status, gatewayError);
    if (!socket.destroyed) socket.end(rawGatewayError(gatewayError));
    return;
  }
  if (socket.destroyed) {
    upstreamSocket.destroy();
    return;
  }
  const proxyReq = (tls ? https : http).request({
    host: target.hostname.replace(/^\[|\]$/g, ''),
    port: Number(target.port) || (tls ? 443 : 80),
    path: upstreamPath,
    method: 'GET',
    headers,
    // Node uses createConnection only when no agent is given at all: a connection of its own, never pooled.
    createConnection: () => upstreamSocket,
  });
  let answered = false;
  // The connection is open (connectUpstream bounds TCP, tunnel and TLS): what is left is the answer.
  proxyReq.setTimeout(timeouts.headersMs, () => proxyReq.destroy(new UpstreamTimeoutError('headers', timeouts.headersMs)));
  proxyReq.on('error', (err: unknown) => {
    if (answered || socket.destroyed) {
      socket.destroy();
      return;
    }
    answered = true;
    answerError(answerFor(err));
  });
  socket.once('close', () => proxyReq.destroy());
  proxyReq.on('upgrade', (proxyRes: IncomingMessage, upstream: Socket, upstreamHead: Buffer) => {
    answered = true;
    onAnswer(101);
    proxyReq.setTimeout(0);
    tunnel(socket, head, upstream, upstreamHead, responseHead(101, proxyRes.rawHeaders, route, prefix));
  });
  proxyReq.on('response', (proxyRes: IncomingMessage) => {
    answered = true;
    proxyReq.setTimeout(timeouts.idleMs);
    if (proxyRes.statusCode === 401) tokens.reject(route.credential, 'databricks', auth.token);
    const status = proxyRes.statusCode ?? 0;
    if (!isValidStatus(status)) {
      proxyReq.destroy();
      answerError(invalidStatus(status, target.origin));
      return;
    }
    onAnswer(status);
    relayRefusal(socket, proxyReq, proxyRes, status, route, prefix);
  });
  proxyReq.end();
}

/**
 * The upgrade's own connection to the upstream. Every connection to the upstream is opened by the
 * one connector (through the egress proxy's CONNECT tunnel when there is one: the token travels
 * inside TLS to the route's host only).
 */
function openUpstream(route: Route, timeouts: Timeouts): Promise<Socket> {
  return connectUpstream(route.target, {
    timeoutMs: timeouts.connectMs,
    ...(route.config.caFile ? { caFile: route.config.caFile } : {}),
    ...(route.proxy ? { proxy: route.proxy } : {}),
  });
}

/** After the 101: its head, the bytes each side sent early, then both ways until either end closes. */
function tunnel(socket: Duplex, head: Buffer, upstream: Socket, upstreamHead: Buffer, responseHeadText: string): void {
  upstream.on('error', () => socket.destroy());
  socket.on('error', () => upstream.destroy());
  upstream.once('close', () => socket.destroy());
  socket.once('close', () => upstream.destroy());
  socket.write(responseHeadText, 'latin1');
  if (upstreamHead.length > 0) socket.write(upstreamHead);
  if (head.length > 0) upstream.write(head);
  upstream.pipe(socket).pipe(upstream);
}

/** A refused upgrade: the upstream's response, through the response passes; the client connection ends with it. */
function relayRefusal(socket: Duplex, proxyReq: http.ClientRequest, proxyRes: IncomingMessage, status: number, route: Route, prefix: string): void {
  // Delimited by the close, so no re-framing.
  socket.write(responseHead(status, proxyRes.rawHeaders, route, prefix, true), 'latin1');
  proxyRes.pipe(socket);
  proxyRes.once('error', () => socket.destroy());
  proxyRes.once('end', () => proxyReq.destroy());
}

/**
 * The status line with Node's own reason phrase (never the upstream's: a reason phrase is free
 * text that nothing needs, and control bytes in it are not ours to relay), then the header pass.
 */
function responseHead(status: number, rawHeaders: string[], route: Route, prefix: string, close = false): string {
  const headers = responseHeaderPass(rawHeaders, route, prefix, status === 101);
  let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  for (let i = 0; i < headers.length; i += 2) {
    // A response that ends with the connection is delimited by the close: no length.
    if (close && headers[i]?.toLowerCase() === 'content-length') continue;
    text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  }
  if (close) text += 'connection: close\r\n';
  return `${text}\r\n`;
}
