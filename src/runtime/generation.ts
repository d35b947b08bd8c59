import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { getRequestListener } from '@hono/node-server';
import type { GatewayConfig } from '../config/types.js';
import { createApp } from '../local/app.js';
import type { ControlOptions } from '../local/control.js';
import { metadataRoutes } from '../local/metadata-service.js';
import { statusJson } from '../local/status-page.js';
import type { Logger } from '../observability/logger.js';
import type { PostgresDoor } from '../postgres/session.js';
import { Forwarder } from '../proxy/forward.js';
import { createHttpDoor, type HttpDoor } from '../proxy/handler.js';
import { fixedResolver, prefixResolver } from '../routing/route-table.js';
import { type Admission, createAdmission } from '../security/admission.js';
import type { SparkConnectForwarder } from '../spark/forwarder.js';
import type { GatewayCore } from './core.js';

/** Everything a reload replaces: built from one config, used by every listener. */
export interface Generation {
  config: GatewayConfig;
  core: GatewayCore;
  admission: Admission;
  /** The main listener's door: /ws/ and /acct/ proxied, the rest local endpoints. */
  main: HttpDoor;
  /** Per-route ports' doors, by route name. */
  routeDoors: Map<string, HttpDoor>;
  /** Spark Connect forwarders of the routes with `sparkConnect`, by route name. */
  sparkDoors: Map<string, SparkConnectForwarder>;
  /** Lakebase doors of the routes with `postgres`, by route name. */
  postgresDoors: Map<string, PostgresDoor>;
  /** Replaced by a reload: upstream connections close as their exchanges end; resolves when all have. */
  retire(): Promise<void>;
  /** Shutdown, after the drain: everything now. */
  close(): Promise<void>;
}

/** What outlives a generation: the listeners' shared state. */
export interface GenerationContext {
  logger: Logger;
  control?: Pick<ControlOptions, 'secret' | 'reload'>;
  version: string;
  isDraining: () => boolean;
  /** Route name -> bound port, filled in as the per-route listeners open. */
  routePorts: Map<string, number>;
  /** Route name -> bound Spark Connect port. */
  sparkPorts: Map<string, number>;
  /** Route name -> bound Lakebase (PostgreSQL) port. */
  postgresPorts: Map<string, number>;
  /** Route name -> open Lakebase sessions. */
  postgresSessions: () => Map<string, number>;
  tunnels: Set<Duplex>;
}

export async function buildGeneration(config: GatewayConfig, core: GatewayCore, context: GenerationContext): Promise<Generation> {
  const { logger, routePorts, tunnels } = context;
  const forwarder = new Forwarder(core.tokens, config.timeouts, logger);
  const admission = createAdmission(config);
  // What the status page shows, for the Hono app and `/-/status` alike.
  const status = {
    routes: core.routes,
    tokens: core.tokens,
    metrics: core.metrics,
    isDraining: context.isDraining,
    routePorts: () => routePorts,
    sparkPorts: () => context.sparkPorts,
    postgresPorts: () => context.postgresPorts,
    postgresSessions: context.postgresSessions,
    version: context.version,
  };
  const app = createApp({
    ...(config.metadataService
      ? {
          metadataService: {
            secret: config.metadataService.secret,
            routes: core.routes,
            tokens: core.tokens,
            localOrigins: () => new Map([...routePorts].map(([name, p]) => [name, [`http://127.0.0.1:${p}`, `http://localhost:${p}`]])),
            ...(admission.authenticate ? { authenticate: admission.authenticate } : {}),
          },
        }
      : {}),
    ...(context.control
      ? {
          control: {
            ...context.control,
            routes: () => core.routes,
            tokens: core.tokens,
            warnings: () => core.warnings,
            status: () => statusJson(status),
            doctor: async () => (await import('./diagnose.js')).doctorReport(core),
            clientSetup: () => ({
              listen_host: config.listen.host,
              inbound_keys: config.inboundKeys.length > 0,
              ...(config.metadataService && config.inboundKeys.length === 0
                ? { metadata_service: { path: `/metadata/${config.metadataService.secret}`, routes: metadataRoutes(core.routes.all).map((r) => r.name) } }
                : {}),
              account_ids: Object.fromEntries(core.routes.all.flatMap((r) => (r.config.accountId ? [[r.name, r.config.accountId]] : []))),
            }),
          },
        }
      : {}),
    ...status,
    logger,
    admission,
  });
  const local: (req: IncomingMessage, res: ServerResponse) => Promise<void> = getRequestListener(app.fetch, { autoCleanupIncoming: false });
  const doorDeps = { admission, forwarder, logger, metrics: core.metrics, tunnels };
  const routeDoors = new Map<string, HttpDoor>();
  for (const route of core.routes.all) routeDoors.set(route.name, createHttpDoor(doorDeps, fixedResolver(route)));
  // The Spark Connect and Lakebase doors' modules load with the first route that has one.
  const sparkDoors = new Map<string, SparkConnectForwarder>();
  if (core.routes.all.some((route) => route.config.sparkConnect)) {
    const { sparkForwarder } = await import('./spark-door.js');
    for (const route of core.routes.all) {
      if (route.config.sparkConnect) sparkDoors.set(route.name, sparkForwarder(route, core, admission, config, logger));
    }
  }
  const postgresDoors = new Map<string, PostgresDoor>();
  if (core.routes.all.some((route) => route.config.postgres)) {
    const { postgresDoor } = await import('./postgres-door.js');
    for (const route of core.routes.all) {
      if (route.config.postgres) postgresDoors.set(route.name, postgresDoor(route, route.config.postgres, core, admission, config));
    }
  }
  return {
    config,
    core,
    admission,
    postgresDoors,
    main: createHttpDoor({ ...doorDeps, local }, prefixResolver(core.routes)),
    routeDoors,
    sparkDoors,
    async retire() {
      await Promise.all([core.retire(), ...[...sparkDoors.values()].map((spark) => spark.retire())]);
    },
    async close() {
      for (const spark of sparkDoors.values()) spark.close();
      await core.close();
    },
  };
}
