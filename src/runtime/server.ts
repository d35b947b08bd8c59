import type { Server } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TokenCache } from '../auth/token-cache.js';
import { packageVersion } from '../config/package-version.js';
import type { GatewayConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';
import type { ControlOptions } from '../local/control.js';
import type { Logger } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { PostgresListener } from '../postgres/listener.js';
import { preloadTransport } from '../proxy/transport.js';
import type { Route, RouteTable } from '../routing/route-table.js';
import { describeSameUser } from '../security/peer-user.js';
import { type CoreOptions, createGatewayCore } from './core.js';
import { buildGeneration, type Generation } from './generation.js';
import { type ConnectionCounts, createListener, type ListenerOptions, listen, listenerTls, listenOnSocket, unsafeListeners } from './listener.js';
import { clockTime, type RouteUsage, type RouteWatch, type RouteWatchOptions, watchRoutes } from './route-watch.js';
import type { SparkListener } from './spark-listener.js';

/** A serving gateway: its listeners, and the generation (config, routes, tokens) they currently serve. */
export interface RunningGateway {
  /** The current generation's configuration, routes and warnings (a reload replaces them). */
  readonly config: GatewayConfig;
  readonly routes: RouteTable;
  readonly warnings: string[];
  /** Kept across reloads. */
  readonly tokens: TokenCache;
  readonly metrics: GatewayMetrics;
  server: Server;
  /** http://host:port of the main listener, or unix:PATH with --socket. */
  url: string;
  port: number;
  /** Per-route ports actually bound (route name -> port), for routes with `port`. */
  routePorts: Map<string, number>;
  /** Spark Connect ports actually bound (route name -> port), for routes with `sparkConnect`. */
  sparkPorts: Map<string, number>;
  /** Lakebase (PostgreSQL) ports actually bound (route name -> port), for routes with `postgres`. */
  postgresPorts: Map<string, number>;
  /** Open Lakebase sessions per route. */
  postgresSessions(): Map<string, number>;
  /**
   * Without inbound keys, with a TCP loopback listener: whether only this user's processes are
   * served (Linux) or why not, for the startup line.
   */
  sameUser: { enforced: boolean; message: string } | undefined;
  /**
   * Applies a new configuration without dropping connections: new requests use the new routes,
   * credentials and policy; requests in flight finish on the old ones. Listen addresses, per-route
   * ports and limits are fixed at start: `notes` says which changes need a restart. A config that
   * cannot be built throws, and the running one stays.
   */
  reload(config: GatewayConfig): Promise<{ notes: string[] }>;
  /**
   * Starts saying, per route, whether it works and how to use it (route-watch.ts): one block each
   * once its first token is in, failing routes retried in the background. serve calls it after its
   * own startup lines; it never holds up the listeners.
   */
  watchRoutes(): void;
  /** Stop accepting, let in-flight exchanges finish within drainMs, then close every generation. */
  shutdown(drainMs?: number): Promise<void>;
}

export interface StartOptions extends CoreOptions {
  logger: Logger;
  /** The /-/ control endpoints (serve): the run file's secret and what a reload does. */
  control?: Pick<ControlOptions, 'secret' | 'reload'>;
  /** The SCIM Me timeout and upstream re-check backoff of watchRoutes (tests shorten them). */
  routeWatch?: Pick<RouteWatchOptions, 'identityTimeoutMs' | 'recheck'>;
}

/**
 * The lifecycle: build the first generation, open the listeners (checked against the
 * loopback-or-keys rule as bound), swap generations on reload (the old one retired, released once
 * its connections have closed), and drain on shutdown.
 */
/** A token refresh of the routes that share `credential`: one line (none for an unused credential). */
type OnToken = NonNullable<CoreOptions['onToken']>;

function logRefresh(
  logger: Logger,
  routes: readonly Route[],
  credential: Parameters<OnToken>[0],
  audience: Parameters<OnToken>[1],
  token: Parameters<OnToken>[2],
): void {
  const names = routes.filter((r) => r.credential.id === credential.id).map((r) => r.name);
  if (names.length === 0) return;
  const until = Number.isFinite(token.expiresOnMs) ? `, until ${clockTime(token.expiresOnMs)}` : '';
  logger.info(
    {
      routes: names,
      credential: credential.type,
      audience,
      ...(Number.isFinite(token.expiresOnMs) ? { expires_at: new Date(token.expiresOnMs).toISOString() } : {}),
    },
    `${names.join(', ')}: ${audience === 'databricks' ? 'token' : 'Azure management token'} refreshed (${credential.type})${until}`,
  );
}

/** How a person reaches `route` through this gateway (curl, DATABRICKS_HOST, sc://, psql), for the route-watch block. */
function routeUsage(
  route: Route,
  config: GatewayConfig,
  main: { scheme: string; reachable: string; port: number },
  ports: { routePorts: Map<string, number>; sparkPorts: Map<string, number>; postgresPorts: Map<string, number> },
): RouteUsage {
  const routePort = ports.routePorts.get(route.name);
  const sparkPort = ports.sparkPorts.get(route.name);
  const pgPort = ports.postgresPorts.get(route.name);
  const prefixUrl = `${main.scheme}://${main.reachable}:${main.port}${route.prefix}`;
  return {
    curl: config.socket ? `curl --unix-socket ${config.socket} http://localhost${route.prefix}/api/2.0/...` : `curl ${prefixUrl}/api/2.0/...`,
    ...(routePort !== undefined ? { databricksHost: `${main.scheme}://${main.reachable}:${routePort}` } : config.socket ? {} : { databricksHost: prefixUrl }),
    ...(sparkPort !== undefined ? { spark: `sc://localhost:${sparkPort}` } : {}),
    ...(pgPort !== undefined ? { psql: `psql "host=localhost port=${pgPort}"` } : {}),
  };
}

/** The listeners of one gateway and the ports they got (route name -> port). */
interface BoundListeners {
  servers: NetServer[];
  sparkListeners: SparkListener[];
  postgresListeners: Map<string, PostgresListener>;
  routePorts: Map<string, number>;
  sparkPorts: Map<string, number>;
  postgresPorts: Map<string, number>;
}

/**
 * The per-route listeners (a route's own port, Spark Connect, Lakebase), each asking the current
 * generation for its door. Returns the listeners TLS renewal swaps contexts on.
 */
async function openRouteListeners(
  base: Omit<ListenerOptions, 'door' | 'routeName'>,
  current: () => Generation,
  logger: Logger,
  { servers, sparkListeners, postgresListeners, routePorts, sparkPorts, postgresPorts }: BoundListeners,
): Promise<NetServer[]> {
  const { config, tls, connections, sameUserOnly } = base;
  const routes = current().core.routes.all;
  // Per-route ports: the same route with no prefix, for tools that take only host:port.
  for (const route of routes) {
    if (route.config.port === undefined) continue;
    const routeServer = createListener({ config, tls, connections, door: () => current().routeDoors.get(route.name), routeName: route.name, sameUserOnly });
    servers.push(routeServer);
    await listen(routeServer, route.config.port, config.listen.host);
    routePorts.set(route.name, (routeServer.address() as AddressInfo).port);
  }
  // Spark Connect and Lakebase: each door's modules load with the first route that has one, so a
  // gateway without them never loads their doors (nor pg-protocol).
  const spark = routes.some((r) => r.config.sparkConnect) ? await import('./spark-listener.js') : undefined;
  const postgres = routes.some((r) => r.config.postgres)
    ? await Promise.all([import('../postgres/listener.js'), import('../postgres/session-log.js')])
    : undefined;
  // Spark Connect: an HTTP/2 listener per route that asks for one.
  for (const route of routes) {
    if (!route.config.sparkConnect || !spark) continue;
    const sparkListener = spark.createSparkListener({
      config,
      tls,
      connections,
      door: () => current().sparkDoors.get(route.name),
      routeName: route.name,
      sameUserOnly,
    });
    sparkListeners.push(sparkListener);
    servers.push(sparkListener.server);
    await listen(sparkListener.server, route.config.sparkConnect.port, config.listen.host);
    sparkPorts.set(route.name, (sparkListener.server.address() as AddressInfo).port);
  }
  // TLS renewal swaps the HTTP listeners' contexts; Postgres listeners read the leaf per session.
  const renewable = [...servers];
  // Lakebase: a PostgreSQL listener per route that asks for one.
  for (const route of routes) {
    if (!route.config.postgres || !postgres) continue;
    const [{ createPostgresListener }, { recordPostgresSession }] = postgres;
    const pg = createPostgresListener({
      config,
      tls,
      connections,
      door: () => current().postgresDoors.get(route.name),
      routeName: route.name,
      record: (session) => recordPostgresSession(logger, current().core.metrics, session),
      gauge: current().core.metrics.postgresSessions.labels(route.name),
      sameUserOnly,
    });
    postgresListeners.set(route.name, pg);
    servers.push(pg.server);
    await listen(pg.server, route.config.postgres.port, config.listen.host);
    postgresPorts.set(route.name, (pg.server.address() as AddressInfo).port);
  }
  return renewable;
}

export async function startGateway(config: GatewayConfig, options: StartOptions): Promise<RunningGateway> {
  preloadTransport();
  let draining = false;
  const tunnels = new Set<Duplex>();
  const routePorts = new Map<string, number>();
  const sparkPorts = new Map<string, number>();
  const postgresPorts = new Map<string, number>();
  const postgresListeners = new Map<string, PostgresListener>();
  const connections: ConnectionCounts = { open: 0, byClient: new Map() };
  const context = {
    logger: options.logger,
    ...(options.control ? { control: options.control } : {}),
    version: packageVersion(),
    isDraining: () => draining,
    routePorts,
    sparkPorts,
    postgresPorts,
    postgresSessions: () => new Map([...postgresListeners].map(([name, l]) => [name, l.openSessions()])),
    tunnels,
  };
  const tls = config.listen.tls
    ? await listenerTls(
        config.listen.tls,
        config.allowedHosts,
        (message) => options.logger.warn(message),
        (message) => options.logger.info(message),
      )
    : undefined;
  let watch: RouteWatch | undefined;
  // A refresh is one line; a first token (a request fetched it) lets a failing route turn ready now.
  const onToken: OnToken = (credential, audience, token, replaced) => {
    if (!replaced) {
      // The cache stores the token once this returns.
      setImmediate(() => watch?.tokenArrived(credential.id));
      return;
    }
    logRefresh(options.logger, current.core.routes.all, credential, audience, token);
  };
  let current: Generation = await buildGeneration(config, await createGatewayCore(config, { ...options, onToken }), context);
  const retired = new Set<Generation>();
  let reloads: Promise<unknown> = Promise.resolve();
  const reloadNow = async (requested: GatewayConfig): Promise<{ notes: string[] }> => {
    let next = requested;
    const previous = current;
    // Judged against the sockets actually bound: a new file that drops the keys (and says
    // 127.0.0.1) must not leave a 0.0.0.0 listener serving without them.
    const unsafe = unsafeListeners(servers, next);
    if (unsafe.length > 0)
      throw new ConfigError(
        unsafe.map((p) => `${next.envValues?.mask(p) ?? p}; the reload was refused and the previous configuration stays`),
        next.configFile,
      );
    // A metadata-service URL handed to SDKs stays valid across reloads unless a secret is configured.
    if (next.metadataService?.generated && previous.config.metadataService) {
      next = { ...next, metadataService: previous.config.metadataService };
    }
    const { metrics } = previous.core;
    const expirySource = metrics.tokenExpirySource;
    const core = await createGatewayCore(next, { ...options, reuse: { tokens: previous.core.tokens, metrics } });
    let generation: Generation | undefined;
    try {
      generation = await buildGeneration(next, core, context);
      if (draining) throw new Error('the gateway is shutting down; the reload was not applied');
    } catch (err) {
      // Nothing of the new generation stays: its pools close, and /metrics reads the old routes again.
      metrics.tokenExpirySource = expirySource;
      await (generation ?? core).close();
      throw err;
    }
    current = generation;
    watch?.sync();
    // In-flight exchanges keep the old generation's connections until they finish, however long;
    // each closes as it frees up. The generation is released then; shutdown closes what is left.
    retired.add(previous);
    void previous.retire().then(() => retired.delete(previous));
    return { notes: [...restartOnlyChanges(config, next, routePorts, sparkPorts), ...postgresRestartNotes(next, postgresPorts)] };
  };

  const servers: NetServer[] = [];
  const sparkListeners: SparkListener[] = [];
  const httpServers = () => servers.filter((s): s is Server => 'closeAllConnections' in s);
  const closeAll = () => Promise.all(servers.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
  const sameUserOnly = () => current.config.inboundKeys.length === 0;
  const server = createListener({ config, tls, connections, door: () => current.main, sameUserOnly });
  try {
    servers.push(server);
    if (config.socket) await listenOnSocket(server, config.socket);
    else await listen(server, config.listen.port, config.listen.host);
    const renewable = await openRouteListeners({ config, tls, connections, sameUserOnly }, () => current, options.logger, {
      servers,
      sparkListeners,
      postgresListeners,
      routePorts,
      sparkPorts,
      postgresPorts,
    });
    const unsafe = unsafeListeners(servers, config);
    if (unsafe.length > 0)
      throw new ConfigError(
        unsafe.map((p) => config.envValues?.mask(p) ?? p),
        config.configFile,
      );
    tls?.renewOn(renewable);
  } catch (err) {
    await closeAll();
    await current.close();
    throw err;
  }
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  const port = config.socket ? 0 : (server.address() as AddressInfo).port;
  const url = config.socket ? `unix:${config.socket}` : `${tls ? 'https' : 'http'}://${host}:${port}`;
  // What a person types: an unspecified address (0.0.0.0, ::) is reached on loopback.
  const reachable = config.listen.host === '0.0.0.0' ? '127.0.0.1' : config.listen.host === '::' ? '[::1]' : host;
  const usage = (route: Route) => routeUsage(route, config, { scheme: tls ? 'https' : 'http', reachable, port }, { routePorts, sparkPorts, postgresPorts });

  return {
    get config() {
      return current.core.config;
    },
    get routes() {
      return current.core.routes;
    },
    get warnings() {
      return current.core.warnings;
    },
    get tokens() {
      return current.core.tokens;
    },
    get metrics() {
      return current.core.metrics;
    },
    server,
    port,
    routePorts,
    sparkPorts,
    sameUser: config.inboundKeys.length === 0 ? describeSameUser(servers) : undefined,
    postgresPorts,
    postgresSessions: context.postgresSessions,
    url,
    watchRoutes() {
      watch ??= watchRoutes({
        routes: () => current.core.routes,
        tokens: () => current.core.tokens,
        stats: () => current.core.metrics.stats,
        logger: options.logger,
        usage,
        connectTimeouts: () => current.config.timeouts,
        ...options.routeWatch,
      });
      watch.sync();
    },
    reload(next) {
      // One reload at a time: SIGHUP and POST /-/reload may overlap, and each must start from the
      // generation the one before it left (else the slower one wins with an older file, and a
      // generation is never retired).
      const turn = reloads.then(() => reloadNow(next));
      reloads = turn.catch(() => {});
      return turn;
    },
    async shutdown(drainMs = current.config.timeouts.drainMs) {
      draining = true;
      watch?.stop();
      tls?.stop();
      const closed = closeAll();
      for (const s of httpServers()) s.closeIdleConnections();
      // HTTP/2 clients get a GOAWAY: calls in flight finish, new ones go elsewhere.
      for (const spark of sparkListeners) spark.drain();
      const timer = setTimeout(() => {
        // Lakebase sessions end with FATAL 57P01 at a message boundary, as a server shutting down ends them.
        for (const pg of postgresListeners.values()) pg.destroy();
        for (const s of httpServers()) s.closeAllConnections();
        for (const spark of sparkListeners) spark.destroy();
        for (const socket of tunnels) socket.destroy();
      }, drainMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
      await current.close();
      await Promise.all([...retired].map((g) => g.close()));
    },
  };
}

/** What a reload cannot change on a running process (sockets are bound, limits are set). */
function restartOnlyChanges(started: GatewayConfig, next: GatewayConfig, routePorts: Map<string, number>, sparkPorts: Map<string, number>): string[] {
  const notes: string[] = [];
  if (next.listen.host !== started.listen.host || next.listen.port !== started.listen.port || next.socket !== started.socket) {
    notes.push('the listen address changed: restart to apply it');
  }
  for (const route of next.routes) {
    if (route.port !== undefined && routePorts.get(route.name) !== route.port && !(route.port === 0 && routePorts.has(route.name))) {
      notes.push(`routes.${route.name}.port changed or is new: restart to open it`);
    }
  }
  for (const name of routePorts.keys()) {
    const route = next.routes.find((r) => r.name === name);
    if (!route) notes.push(`route ${name} was removed: its port ${routePorts.get(name)} answers 404 until a restart closes it`);
    else if (route.port === undefined) notes.push(`routes.${name}.port was removed: the route stays on port ${routePorts.get(name)} until a restart`);
  }
  for (const route of next.routes) {
    const bound = sparkPorts.get(route.name);
    if (route.sparkConnect && bound !== route.sparkConnect.port && !(route.sparkConnect.port === 0 && bound !== undefined)) {
      notes.push(`routes.${route.name}.sparkConnect changed or is new: restart to open its port`);
    }
  }
  for (const [name, port] of sparkPorts) {
    if (!next.routes.find((r) => r.name === name)?.sparkConnect)
      notes.push(`route ${name}'s Spark Connect port ${port} stays open until a restart (its calls fail NOT_FOUND if the route is gone)`);
  }
  if (JSON.stringify(next.limits) !== JSON.stringify(started.limits)) notes.push('limits changed: restart to apply them');
  return notes;
}

/** Postgres ports are bound at start, like every port. */
function postgresRestartNotes(next: GatewayConfig, postgresPorts: Map<string, number>): string[] {
  const notes: string[] = [];
  for (const route of next.routes) {
    const bound = postgresPorts.get(route.name);
    if (route.postgres && bound !== route.postgres.port && !(route.postgres.port === 0 && bound !== undefined)) {
      notes.push(`routes.${route.name}.postgres changed or is new: restart to open its port`);
    }
  }
  for (const [name, port] of postgresPorts) {
    if (!next.routes.find((r) => r.name === name)?.postgres)
      notes.push(`route ${name}'s Postgres port ${port} stays open until a restart (new sessions are refused if the route is gone)`);
  }
  return notes;
}
