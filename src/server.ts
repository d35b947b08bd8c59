import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createAdaptorServer } from '@hono/node-server';
import { createApp } from './app.js';
import type { GatewayConfig } from './config/types.js';
import { GatewayError, toGatewayError } from './errors.js';
import { type CoreOptions, createGatewayCore, type GatewayCore } from './gateway.js';
import type { Logger } from './observability/logger.js';
import { Forwarder } from './proxy/forward.js';
import { createHostGuard } from './security/host-guard.js';
import { assertSafeTarget } from './security/path-check.js';
import { assertAllowedByPolicy } from './security/route-policy.js';

export interface RunningGateway extends GatewayCore {
  server: Server;
  /** http://host:port of the main listener. */
  url: string;
  port: number;
  /** Stop accepting, let in-flight exchanges finish within drainMs, then close everything. */
  shutdown(drainMs?: number): Promise<void>;
}

export interface StartOptions extends CoreOptions {
  logger: Logger;
}

export async function startGateway(config: GatewayConfig, options: StartOptions): Promise<RunningGateway> {
  const core = await createGatewayCore(config, options);
  const forwarder = new Forwarder(core.tokens);
  let draining = false;
  const app = createApp({
    routes: core.routes,
    tokens: core.tokens,
    forwarder,
    metrics: core.metrics,
    logger: options.logger,
    allowedHosts: config.allowedHosts,
    isDraining: () => draining,
  });
  // autoCleanupIncoming off: the proxy owns request bodies and streams them upstream itself.
  const server = createAdaptorServer({ fetch: dispatchHeadAsGet(app.fetch), autoCleanupIncoming: false }) as Server;
  // Node's default requestTimeout (300 s) would cut a long upload; idle limits apply instead.
  server.requestTimeout = 0;
  // Upgraded sockets leave the HTTP server's bookkeeping: closeAllConnections() cannot see them.
  const tunnels = new Set<Duplex>();
  server.on('upgrade', upgradeHandler(core, forwarder, config.allowedHosts, options.logger, tunnels));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;

  return {
    ...core,
    server,
    port,
    url: `http://${host}:${port}`,
    async shutdown(drainMs = config.timeouts.drainMs) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => {
        server.closeAllConnections();
        for (const socket of tunnels) socket.destroy();
      }, drainMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
      await core.close();
    },
  };
}

/**
 * Hono answers HEAD by dispatching GET and copying the result into a new Response
 * (hono-base.js #dispatch). That copy loses RESPONSE_ALREADY_SENT, so @hono/node-server wrote a
 * second set of headers after the proxy had written the upstream's: an uncaught
 * ERR_HTTP_HEADERS_SENT on every proxied HEAD. Route HEAD as GET ourselves instead: the proxy
 * forwards the raw Node request (still HEAD), and Node's ServerResponse sends no body for a HEAD
 * request, so local endpoints stay correct too.
 */
function dispatchHeadAsGet<E>(fetch: (request: Request, env: E) => Response | Promise<Response>) {
  return (request: Request, env: E) =>
    request.method === 'HEAD' ? fetch(new Request(request.url, { method: 'GET', headers: request.headers }), env) : fetch(request, env);
}

/** WebSocket upgrades: same host guard, route resolution and token as plain requests. */
function upgradeHandler(
  core: GatewayCore,
  forwarder: Forwarder,
  allowedHosts: readonly string[],
  logger: Logger,
  tunnels: Set<Duplex>,
) {
  const hostGuard = createHostGuard(allowedHosts);
  return (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    tunnels.add(socket);
    socket.once('close', () => tunnels.delete(socket));
    socket.on('error', () => socket.destroy());
    let routeName = '-';
    const fail = (err: unknown) => {
      const gatewayError = err instanceof GatewayError ? err : toGatewayError(err, 'upstream');
      logger.info({ method: req.method, route: routeName, upgrade: true, status: gatewayError.status, error: gatewayError.code }, 'request');
      const body = JSON.stringify(gatewayError);
      socket.end(
        `HTTP/1.1 ${gatewayError.status} ${gatewayError.code}\r\ncontent-type: application/json\r\nx-dbx-gateway-error: 1\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    try {
      hostGuard(req.headers.host);
      assertSafeTarget(req.url ?? '/');
      const { route, upstreamPath } = core.routes.resolve(req.url ?? '/');
      routeName = route.name;
      assertAllowedByPolicy(route.config, req.method ?? 'GET');
      forwarder.ws(req, socket, head, route, upstreamPath).then(
        () => logger.info({ method: req.method, route: routeName, upgrade: true, forwarded: true }, 'request'),
        fail,
      );
    } catch (err) {
      fail(err);
    }
  };
}
