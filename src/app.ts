import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { Hono } from 'hono';
import type { TokenCache } from './auth/token-cache.js';
import { GatewayError, gatewayErrorResponse } from './errors.js';
import { localEndpoints } from './local/health.js';
import { metadataService, type MetadataServiceOptions } from './local/metadata-service.js';
import type { Logger } from './observability/logger.js';
import type { GatewayMetrics } from './observability/metrics.js';
import { recordOf } from './observability/request-record.js';
import { requestLog } from './observability/request-log.js';
import type { Forwarder } from './proxy/forward.js';
import { prefixResolver, type Resolver, type RouteTable } from './routing/route-table.js';
import { createHostGuard } from './security/host-guard.js';
import { assertSafeTarget } from './security/path-check.js';
import { assertAllowedByPolicy } from './security/route-policy.js';

export interface AppDeps {
  routes: RouteTable;
  tokens: TokenCache;
  forwarder: Forwarder;
  metrics: GatewayMetrics;
  logger: Logger;
  allowedHosts: readonly string[];
  isDraining: () => boolean;
  /**
   * A per-route port: every path goes to this resolver's route with no prefix, and there are no
   * local endpoints (the upstream's paths are all the client sees).
   */
  fixedResolver?: Resolver;
  /** Set when the metadata service is on (--metadata-service). */
  metadataService?: MetadataServiceOptions;
}

type Env = { Bindings: HttpBindings };

/** The Hono app: guards, local endpoints, and the proxy catch-all for /ws/NAME and /acct/NAME. */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const hostGuard = createHostGuard(deps.allowedHosts);

  app.use(requestLog(deps.logger, deps.metrics));
  app.use(async function guardHost(c, next) {
    hostGuard(c.env.incoming.headers.host);
    await next();
  });
  const resolve = deps.fixedResolver ?? prefixResolver(deps.routes);
  if (!deps.fixedResolver) {
    app.route('/', localEndpoints(deps));
    if (deps.metadataService) app.route('/', metadataService(deps.metadataService));
  }

  const proxy = async (c: { env: HttpBindings }) => {
    const { incoming, outgoing } = c.env;
    // The raw request target, not Hono's parsed URL: the upstream gets the path byte-for-byte.
    const rawUrl = incoming.url ?? '/';
    assertSafeTarget(rawUrl);
    const { route, upstreamPath, prefix } = resolve(rawUrl);
    // The raw Node method: Hono sees HEAD as GET (see dispatchHeadAsGet).
    assertAllowedByPolicy(route.config, incoming.method ?? 'GET');
    const record = recordOf(incoming);
    if (record) {
      record.route = route.name;
      record.path = upstreamPath.split('?', 1)[0];
    }
    await deps.forwarder.web(incoming, outgoing, route, upstreamPath, prefix, record ?? { startNs: 0n, bytesIn: 0, bytesOut: 0 });
    return RESPONSE_ALREADY_SENT;
  };
  if (deps.fixedResolver) {
    app.all('*', proxy);
  } else {
    app.all('/ws/*', proxy);
    app.all('/acct/*', proxy);
  }

  app.notFound((c) => gatewayErrorResponse(deps.routes.notFound(c.env.incoming.url ?? '/')));
  app.onError((err, c) => {
    if (err instanceof GatewayError) {
      const record = recordOf(c.env.incoming);
      if (record) record.error = err.code;
      return gatewayErrorResponse(err);
    }
    deps.logger.error({ err: { name: err.name, message: err.message } }, 'unexpected error');
    return c.json({ error_code: 'INTERNAL_ERROR', message: 'internal gateway error; see the gateway log' }, 500, {
      'x-dbx-gateway-error': '1',
    });
  });
  return app;
}
