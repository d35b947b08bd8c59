import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { getRequestListener } from '@hono/node-server';
import type { GatewayConfig } from '../config/types.js';
import { createApp } from '../local/app.js';
import type { ControlOptions } from '../local/control.js';
import { statusJson } from '../local/status-page.js';
import type { Logger } from '../observability/logger.js';
import { Forwarder } from '../proxy/forward.js';
import { createFrontDoor, type FrontDoor } from '../proxy/handler.js';
import { fixedResolver, prefixResolver } from '../routing/route-table.js';
import { type Admission, createAdmission } from '../security/admission.js';
import type { GatewayCore } from './core.js';

/** Everything a reload replaces: built from one config, used by every listener. */
export interface Generation {
  config: GatewayConfig;
  core: GatewayCore;
  admission: Admission;
  /** The main listener's door: /ws/ and /acct/ proxied, the rest local endpoints. */
  main: FrontDoor;
  /** Per-route ports' doors, by route name. */
  routeDoors: Map<string, FrontDoor>;
}

/** What outlives a generation: the listeners' shared state. */
export interface GenerationContext {
  logger: Logger;
  control?: Pick<ControlOptions, 'secret' | 'reload'>;
  version: string;
  isDraining: () => boolean;
  /** Route name -> bound port, filled in as the per-route listeners open. */
  routePorts: Map<string, number>;
  tunnels: Set<Duplex>;
}

export function buildGeneration(config: GatewayConfig, core: GatewayCore, context: GenerationContext): Generation {
  const { logger, routePorts, tunnels } = context;
  const forwarder = new Forwarder(core.tokens, config.timeouts);
  const admission = createAdmission(config);
  const status = { routes: core.routes, tokens: core.tokens, metrics: core.metrics, isDraining: context.isDraining, routePorts: () => routePorts };
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
            status: () => statusJson({ ...status, version: context.version }),
          },
        }
      : {}),
    routes: core.routes,
    tokens: core.tokens,
    metrics: core.metrics,
    logger,
    admission,
    isDraining: context.isDraining,
    version: context.version,
    routePorts: () => routePorts,
  });
  const local: (req: IncomingMessage, res: ServerResponse) => Promise<void> = getRequestListener(app.fetch, { autoCleanupIncoming: false });
  const doorDeps = { admission, forwarder, logger, metrics: core.metrics, tunnels };
  const routeDoors = new Map<string, FrontDoor>();
  for (const route of core.routes.routes) routeDoors.set(route.name, createFrontDoor(doorDeps, fixedResolver(route)));
  return { config, core, admission, main: createFrontDoor({ ...doorDeps, local }, prefixResolver(core.routes)), routeDoors };
}
