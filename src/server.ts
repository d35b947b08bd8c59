import { chmodSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { getRequestListener } from '@hono/node-server';
import { createApp } from './app.js';
import { ConfigError } from './config/load.js';
import type { ControlOptions } from './local/control.js';
import type { GatewayConfig } from './config/types.js';
import { errorMessage, GatewayError, internalError, rawGatewayError, writeGatewayError } from './errors.js';
import { type CoreOptions, createGatewayCore, type GatewayCore } from './gateway.js';
import type { Logger } from './observability/logger.js';
import type { GatewayMetrics } from './observability/metrics.js';
import { Forwarder } from './proxy/forward.js';
import { preloadTransport } from './proxy/transport.js';
import { createProxyHandler, isProxiedTarget } from './proxy-handler.js';
import { fixedResolver, prefixResolver, type Resolver } from './routing/route-table.js';
import { type Admission, createAdmission, methodNotAllowed } from './security/admission.js';
import { isLoopbackAddress, OPEN_LISTENER_FIX } from './security/loopback.js';
import { assertLocalTarget } from './security/path-check.js';

export interface RunningGateway extends GatewayCore {
  server: Server;
  /** http://host:port of the main listener, or unix:PATH with --socket. */
  url: string;
  port: number;
  /** Per-route ports actually bound (route name -> port), for routes with `port`. */
  routePorts: Map<string, number>;
  /**
   * Applies a new configuration without dropping connections: new requests use the new routes,
   * credentials and policy; requests in flight finish on the old ones. Listen addresses, per-route
   * ports and limits are fixed at start: `notes` says which changes need a restart. A config that
   * cannot be built throws, and the running one stays.
   */
  reload(config: GatewayConfig): Promise<{ notes: string[] }>;
  /** Stop accepting, let in-flight exchanges finish within drainMs, then close everything. */
  shutdown(drainMs?: number): Promise<void>;
}

export interface StartOptions extends CoreOptions {
  logger: Logger;
  /** The /-/ control endpoints (serve): the run file's secret and what a reload does. */
  control?: Pick<ControlOptions, 'secret' | 'reload'>;
}

/** Everything that a reload replaces: built from one config, used by every listener. */
interface Generation {
  config: GatewayConfig;
  core: GatewayCore;
  admission: Admission;
  forwarder: Forwarder;
  local: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  mainProxy: (req: IncomingMessage, res: ServerResponse) => void;
  mainUpgrade: UpgradeListener;
  routeProxies: Map<string, (req: IncomingMessage, res: ServerResponse) => void>;
  routeUpgrades: Map<string, UpgradeListener>;
}

type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export async function startGateway(config: GatewayConfig, options: StartOptions): Promise<RunningGateway> {
  preloadTransport();
  let draining = false;
  // Upgraded sockets leave the HTTP server's bookkeeping: closeAllConnections() cannot see them.
  const tunnels = new Set<Duplex>();
  const routePorts = new Map<string, number>();
  const connections: ConnectionCounts = { open: 0, byClient: new Map() };
  const version = packageVersion();

  const build = (genConfig: GatewayConfig, core: GatewayCore): Generation => {
    const forwarder = new Forwarder(core.tokens, genConfig.timeouts);
    const admission = createAdmission(genConfig);
    const deps = {
      ...(genConfig.metadataService
        ? {
            metadataService: {
              secret: genConfig.metadataService.secret,
              routes: core.routes,
              tokens: core.tokens,
              localOrigins: () => new Map([...routePorts].map(([name, p]) => [name, [`http://127.0.0.1:${p}`, `http://localhost:${p}`]])),
              ...(admission.authenticate ? { authenticate: admission.authenticate } : {}),
            },
          }
        : {}),
      ...(options.control ? { control: { ...options.control, routes: () => core.routes, tokens: core.tokens, warnings: () => core.warnings } } : {}),
      routes: core.routes,
      tokens: core.tokens,
      forwarder,
      metrics: core.metrics,
      logger: options.logger,
      admission,
      isDraining: () => draining,
      version,
      routePorts: () => routePorts,
    };
    const main = prefixResolver(core.routes);
    const routeProxies = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
    const routeUpgrades = new Map<string, UpgradeListener>();
    for (const route of core.routes.routes) {
      routeProxies.set(route.name, createProxyHandler(deps, fixedResolver(route)));
      routeUpgrades.set(route.name, upgradeHandler(fixedResolver(route), forwarder, admission, options.logger, core.metrics, tunnels));
    }
    return {
      config: genConfig,
      core,
      admission,
      forwarder,
      // Local endpoints go through Hono; proxied traffic goes straight to the proxy handler.
      local: getRequestListener(createApp(deps).fetch, { autoCleanupIncoming: false }),
      mainProxy: createProxyHandler(deps, main),
      mainUpgrade: upgradeHandler(main, forwarder, admission, options.logger, core.metrics, tunnels),
      routeProxies,
      routeUpgrades,
    };
  };

  const tls = config.listen.tls ? await listenerTls(config.listen.tls, config.allowedHosts) : undefined;
  let current = build(config, await createGatewayCore(config, options));

  /** `routeName`: a per-route port's listener, which finds its route in the current generation. */
  const makeServer = (routeName?: string): Server => {
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      if (routeName === undefined) {
        if (isProxiedTarget(req.url)) return current.mainProxy(req, res);
        // Local endpoints get the same target rules: Hono would otherwise resolve an absolute-form
        // or dot-segment target to /metadata/SECRET and the like.
        try {
          assertLocalTarget(req.url ?? '/');
        } catch (err) {
          return writeGatewayError(res, err as GatewayError, { close: true });
        }
        if (req.headers.expect !== undefined) res.writeContinue();
        void current.local(req, res);
        return;
      }
      const proxy = current.routeProxies.get(routeName);
      if (proxy) proxy(req, res);
      else writeGatewayError(res, new GatewayError('GATEWAY_ROUTE_NOT_FOUND', `route ${routeName} is no longer configured (removed by a reload); restart to free its port`), { close: true });
    };
    // A port speaks either HTTP or HTTPS, never both (contract, "Local TLS").
    const server = tls
      ? createTlsServer({ maxHeaderSize: config.limits.maxHeaderBytes, key: tls.current.key, cert: tls.current.cert }, onRequest)
      : createServer({ maxHeaderSize: config.limits.maxHeaderBytes }, onRequest);
    if (tls) {
      // A client that fails the handshake (plain HTTP on the TLS port, an untrusted CA) is closed.
      server.on('tlsClientError', (_err: Error, socket: Duplex) => socket.destroy());
    }
    // Expect: 100-continue is answered by the proxy handler once the request is admitted, so a
    // refused upload (401, 403) is refused before the client sends its body.
    server.on('checkContinue', onRequest);
    // Node's default requestTimeout (300 s) would cut a long upload; idle limits apply instead.
    server.requestTimeout = 0;
    // A client socket with no bytes either way for idleMs is closed. A client waiting for the
    // upstream's answer is quiet for up to connect + headers time: those timeouts answer first.
    const { idleMs, connectMs, headersMs } = config.timeouts;
    server.timeout = Math.max(idleMs, connectMs + headersMs + 1000);
    limitConnections(server, config.limits, connections);
    server.on('clientError', answerClientError);
    // CONNECT never reaches the request handler: Node emits it apart (and drops it unanswered).
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      socket.on('error', () => socket.destroy());
      socket.end(rawGatewayError(methodNotAllowed('CONNECT')));
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const handler = routeName === undefined ? current.mainUpgrade : current.routeUpgrades.get(routeName);
      if (handler) handler(req, socket, head);
      else socket.destroy();
    });
    return server;
  };

  const servers: Server[] = [];
  const closeAll = () => Promise.all(servers.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
  const server = makeServer();
  try {
    servers.push(server);
    if (config.socket) await listenOnSocket(server, config.socket);
    else await listen(server, config.listen.port, config.listen.host);
    // Per-route ports: the same route with no prefix, for tools that take only host:port.
    for (const route of current.core.routes.routes) {
      if (route.config.port === undefined) continue;
      const routeServer = makeServer(route.name);
      servers.push(routeServer);
      await listen(routeServer, route.config.port, config.listen.host);
      routePorts.set(route.name, (routeServer.address() as AddressInfo).port);
    }
    const unsafe = unsafeListeners(servers, config);
    if (unsafe.length > 0) throw new ConfigError(unsafe, config.configFile);
    tls?.renewOn(servers);
  } catch (err) {
    await closeAll();
    await current.core.close();
    throw err;
  }
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  const port = config.socket ? 0 : (server.address() as AddressInfo).port;
  const retired = new Set<GatewayCore>();

  const gateway: RunningGateway = {
    ...current.core,
    server,
    port,
    routePorts,
    url: config.socket ? `unix:${config.socket}` : `${tls ? 'https' : 'http'}://${host}:${port}`,
    async reload(next) {
      const previous = current;
      // Judged against the sockets actually bound: a new file that drops the keys (and says
      // 127.0.0.1) must not leave a 0.0.0.0 listener serving without them.
      const unsafe = unsafeListeners(servers, next);
      if (unsafe.length > 0) throw new ConfigError(unsafe.map((p) => `${p}; the reload was refused and the previous configuration stays`), next.configFile);
      // A metadata-service URL handed to SDKs stays valid across reloads unless a secret is configured.
      if (next.metadataService?.generated && previous.config.metadataService) {
        next = { ...next, metadataService: previous.config.metadataService };
      }
      const core = await createGatewayCore(next, { ...options, reuse: { tokens: previous.core.tokens, metrics: previous.core.metrics } });
      current = build(next, core);
      Object.assign(gateway, { config: core.config, routes: core.routes, warnings: core.warnings });
      // In-flight exchanges keep the old agents' connections until they finish, however long;
      // each is closed as it frees up. Shutdown closes whatever is still open.
      retired.add(previous.core);
      previous.core.retire();
      return { notes: restartOnlyChanges(config, next, routePorts) };
    },
    async shutdown(drainMs = current.config.timeouts.drainMs) {
      draining = true;
      tls?.stop();
      const closed = closeAll();
      for (const s of servers) s.closeIdleConnections();
      const timer = setTimeout(() => {
        for (const s of servers) s.closeAllConnections();
        for (const socket of tunnels) socket.destroy();
      }, drainMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
      await current.core.close();
      await Promise.all([...retired].map((c) => c.close()));
    },
  };
  return gateway;
}

/** How often a running gateway checks whether its local leaf certificate is due for renewal. */
const TLS_RENEW_CHECK_MS = 12 * 3_600_000;

interface ListenerTls {
  current: { key: string; cert: string };
  /** Local CA only: re-issue the leaf before it expires, on every listener, without a restart. */
  renewOn(servers: readonly Server[]): void;
  stop(): void;
}

/** The certificate every listener serves: the local CA's leaf (auto), or the operator's files. */
async function listenerTls(setting: NonNullable<GatewayConfig['listen']['tls']>, allowedHosts: readonly string[]): Promise<ListenerTls> {
  if (setting.mode === 'files') {
    const current = { key: readFileSync(setting.keyFile, 'utf8'), cert: readFileSync(setting.certFile, 'utf8') };
    return { current, renewOn: () => {}, stop: () => {} };
  }
  const { LEAF_RENEW_BEFORE_MS, localCertificate } = await import('./local/local-tls.js');
  let leaf = await localCertificate(setting.dir, allowedHosts);
  let timer: NodeJS.Timeout | undefined;
  return {
    get current() {
      return leaf;
    },
    renewOn(servers) {
      timer = setInterval(() => {
        if (leaf.notAfterMs - Date.now() > LEAF_RENEW_BEFORE_MS) return;
        localCertificate(setting.dir, allowedHosts).then(
          (fresh) => {
            leaf = fresh;
            for (const s of servers) (s as unknown as { setSecureContext(o: { key: string; cert: string }): void }).setSecureContext({ key: fresh.key, cert: fresh.cert });
          },
          () => {
            // Retried at the next check; the current leaf stays valid for weeks.
          },
        );
      }, TLS_RENEW_CHECK_MS);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}

/** What a reload cannot change on a running process (sockets are bound, limits are set). */
function restartOnlyChanges(started: GatewayConfig, next: GatewayConfig, routePorts: Map<string, number>): string[] {
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
  if (JSON.stringify(next.limits) !== JSON.stringify(started.limits)) notes.push('limits changed: restart to apply them');
  return notes;
}

/**
 * The main listener on a unix socket, mode 0600 from its creation (umask), so only this user can
 * connect. A stale socket from a crashed run is replaced; a live one is an error, and so is
 * anything at PATH that is not a socket (it is never deleted).
 */
async function listenOnSocket(server: Server, path: string): Promise<void> {
  if (process.platform === 'win32' || path.startsWith('\\\\.\\pipe\\')) {
    // A Windows named pipe (\\.\pipe\NAME): no file to replace and no POSIX mode. Its default
    // security gives the creating user, SYSTEM and Administrators full access, and others read
    // access only, which cannot send a request (CreateNamedPipe, "Named Pipe Security").
    await listen(server, path);
    return;
  }
  const existing = lstatSync(path, { throwIfNoEntry: false });
  if (existing) {
    if (!existing.isSocket()) {
      throw new ConfigError([`--socket ${path}: a file that is not a socket is in the way; remove it yourself or choose another path (the gateway only ever replaces a stale socket)`]);
    }
    if (await socketAnswers(path)) throw Object.assign(new Error(`${path} is in use by another process`), { code: 'EADDRINUSE' });
    unlinkSync(path);
  }
  const previous = process.umask(0o177);
  try {
    await listen(server, path);
  } finally {
    process.umask(previous);
  }
  chmodSync(path, 0o600);
}

/**
 * The loopback-or-keys rule against the address each TCP listener is actually bound to (a name
 * such as "localhost" or "::" says less than the bound address). Problems, for a ConfigError.
 */
function unsafeListeners(servers: readonly Server[], config: GatewayConfig): string[] {
  if (config.inboundKeys.length > 0 || config.allowUnauthenticatedNetwork) return [];
  return servers.flatMap((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string' || isLoopbackAddress(address.address)) return [];
    return [
      `listen.host: a listener is bound to ${address.address}:${address.port}, reachable from other machines, and there are no inboundKeys; ` +
        OPEN_LISTENER_FIX,
    ];
  });
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

interface ConnectionCounts {
  open: number;
  byClient: Map<string, number>;
}

/**
 * More than limits.maxConnections open client connections, or more than
 * limits.maxConnectionsPerClient from one address: the new one gets 503 GATEWAY_OVERLOADED and is
 * closed, instead of silently queueing (a clear answer beats a hang). The per-address cap keeps
 * one misbehaving client from taking every slot.
 */
function limitConnections(server: Server, limits: GatewayConfig['limits'], connections: ConnectionCounts): void {
  server.on('connection', (socket: Socket) => {
    const client = socket.remoteAddress ?? '-';
    const fromClient = (connections.byClient.get(client) ?? 0) + 1;
    connections.open++;
    connections.byClient.set(client, fromClient);
    socket.once('close', () => {
      connections.open--;
      const left = (connections.byClient.get(client) ?? 1) - 1;
      if (left === 0) connections.byClient.delete(client);
      else connections.byClient.set(client, left);
    });
    const over =
      connections.open > limits.maxConnections
        ? `more than ${limits.maxConnections} open connections (limits.maxConnections)`
        : fromClient > limits.maxConnectionsPerClient
          ? `more than ${limits.maxConnectionsPerClient} open connections from ${client} (limits.maxConnectionsPerClient)`
          : undefined;
    if (over) {
      socket.on('error', () => socket.destroy());
      socket.write(rawGatewayError(new GatewayError('GATEWAY_OVERLOADED', `${over}; retry later`)), () => socket.destroy());
    }
  });
}

/**
 * Requests Node's parser refuses never reach the app: oversized heads (431), and smuggling shapes
 * such as Content-Length with Transfer-Encoding, conflicting lengths or obs-fold (400). They get a
 * gateway error body instead of Node's bare reply, and nothing is forwarded.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || (err as { code?: string }).code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const gatewayError =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new GatewayError('GATEWAY_HEADERS_TOO_LARGE', 'the request head is larger than limits.maxHeaderBytes; send fewer or smaller headers (large cookies?)')
      : err.code === 'HPE_INVALID_METHOD'
        ? // TRACK and other methods Node does not know: the same answer as TRACE.
          new GatewayError('GATEWAY_METHOD_NOT_ALLOWED', 'this HTTP method is refused by the gateway; nothing was forwarded')
        : new GatewayError('GATEWAY_BAD_REQUEST', `malformed HTTP request refused (${err.code ?? 'parse error'}); nothing was forwarded`);
  socket.write(rawGatewayError(gatewayError), () => socket.destroy());
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function listen(server: Server, port: number | string, host?: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if (typeof port === 'string') server.listen(port, done);
    else server.listen(port, host, done);
  });
}

/**
 * WebSocket upgrades: the same admission checks and token as plain requests, and the same one
 * log line and metrics series, written once the outcome is known (101, the upstream's refusal,
 * or the gateway's error).
 */
function upgradeHandler(resolve: Resolver, forwarder: Forwarder, admission: Admission, logger: Logger, metrics: GatewayMetrics, tunnels: Set<Duplex>) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    tunnels.add(socket);
    socket.once('close', () => tunnels.delete(socket));
    socket.on('error', () => socket.destroy());
    const started = process.hrtime.bigint();
    let routeName = '-';
    let keyName: string | undefined;
    let done = false;
    const finish = (status: number, error?: GatewayError) => {
      if (done) return;
      done = true;
      metrics.meter(routeName).request(req.method ?? '-', status, keyName ?? '-');
      const line = {
        method: req.method,
        route: routeName,
        ...(keyName ? { key: keyName } : {}),
        path: (req.url ?? '').split('?', 1)[0],
        status,
        ms: Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10,
        upgrade: true,
        ...(error ? { error: error.code, reason: error.message } : {}),
      };
      if (error || status >= 500) logger.warn(line, 'request');
      else logger.info(line, 'request');
    };
    const fail = (err: unknown) => {
      const gatewayError = err instanceof GatewayError ? err : internalError();
      if (!(err instanceof GatewayError)) logger.error({ err: { name: (err as Error).name, message: errorMessage(err) } }, 'unexpected error');
      finish(gatewayError.status, gatewayError);
      // Written, then destroyed: an upgrade socket has no idle timeout, and a half-open one would
      // hold a connection slot forever.
      if (!socket.destroyed) socket.write(rawGatewayError(gatewayError), () => socket.destroy());
    };
    try {
      admission.checkClient(req);
      const { route, upstreamPath, prefix } = admission.admitProxy(req, resolve, (name) => {
        keyName = name;
      });
      routeName = route.name;
      forwarder.ws(req, socket, head, route, upstreamPath, prefix, finish).catch(fail);
    } catch (err) {
      fail(err);
    }
  };
}
