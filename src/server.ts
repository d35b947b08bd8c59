import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createAdaptorServer } from '@hono/node-server';
import { createApp } from './app.js';
import type { GatewayConfig } from './config/types.js';
import { GatewayError, toGatewayError } from './errors.js';
import { type CoreOptions, createGatewayCore, type GatewayCore } from './gateway.js';
import { fixedResolver, prefixResolver, type Resolver } from './routing/route-table.js';
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
  /** Per-route ports actually bound (route name -> port), for routes with `port`. */
  routePorts: Map<string, number>;
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
  // Upgraded sockets leave the HTTP server's bookkeeping: closeAllConnections() cannot see them.
  const tunnels = new Set<Duplex>();
  const routePorts = new Map<string, number>();
  const deps = {
    ...(config.metadataService
      ? {
          metadataService: {
            secret: config.metadataService.secret,
            routes: core.routes,
            tokens: core.tokens,
            localOrigins: () => new Map([...routePorts].map(([name, p]) => [name, [`http://127.0.0.1:${p}`, `http://localhost:${p}`]])),
          },
        }
      : {}),
    routes: core.routes,
    tokens: core.tokens,
    forwarder,
    metrics: core.metrics,
    logger: options.logger,
    allowedHosts: config.allowedHosts,
    isDraining: () => draining,
  };
  const makeServer = (resolve: Resolver, fixed: boolean): Server => {
    const app = createApp({ ...deps, ...(fixed ? { fixedResolver: resolve } : {}) });
    // autoCleanupIncoming off: the proxy owns request bodies and streams them upstream itself.
    const server = createAdaptorServer({ fetch: dispatchHeadAsGet(app.fetch), autoCleanupIncoming: false }) as Server;
    // Node's default requestTimeout (300 s) would cut a long upload; idle limits apply instead.
    server.requestTimeout = 0;
    server.on('upgrade', upgradeHandler(resolve, forwarder, config.allowedHosts, options.logger, tunnels));
    return server;
  };

  const servers: Server[] = [];
  const closeAll = () => Promise.all(servers.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
  const server = makeServer(prefixResolver(core.routes), false);
  try {
    servers.push(server);
    await listen(server, config.listen.port, config.listen.host);
    // Per-route ports: the same route with no prefix, for tools that take only host:port.
    for (const route of core.routes.routes) {
      if (route.config.port === undefined) continue;
      const routeServer = makeServer(fixedResolver(route), true);
      servers.push(routeServer);
      await listen(routeServer, route.config.port, config.listen.host);
      routePorts.set(route.name, (routeServer.address() as AddressInfo).port);
    }
  } catch (err) {
    await closeAll();
    await core.close();
    throw err;
  }
  const { port } = server.address() as AddressInfo;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;

  return {
    ...core,
    server,
    port,
    routePorts,
    url: `http://${host}:${port}`,
    async shutdown(drainMs = config.timeouts.drainMs) {
      draining = true;
      const closed = closeAll();
      for (const s of servers) s.closeIdleConnections();
      const timer = setTimeout(() => {
        for (const s of servers) s.closeAllConnections();
        for (const socket of tunnels) socket.destroy();
      }, drainMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
      await core.close();
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
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
  resolve: Resolver,
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
      const { route, upstreamPath } = resolve(req.url ?? '/');
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
