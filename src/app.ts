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
import type { Admission } from './security/admission.js';
import { corsHeaders, preflightHeaders } from './security/browser-guard.js';
import { assertSafeTarget } from './security/path-check.js';

export interface AppDeps {
  routes: RouteTable;
  tokens: TokenCache;
  forwarder: Forwarder;
  metrics: GatewayMetrics;
  logger: Logger;
  admission: Admission;
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
  const { admission } = deps;

  app.use(requestLog(deps.logger, deps.metrics));
  app.use(async function guardClient(c, next) {
    const { incoming } = c.env;
    const { corsOrigin } = admission.checkClient(incoming);
    if (corsOrigin === undefined) return next();
    const record = recordOf(incoming);
    if (record) record.corsOrigin = corsOrigin;
    // A CORS preflight from an allowed origin is answered here: it carries no key and is never forwarded.
    if (incoming.method === 'OPTIONS' && incoming.headers['access-control-request-method'] !== undefined) {
      return c.body(null, 204, preflightHeaders(corsOrigin, incoming.headers));
    }
    await next();
    if (c.res !== RESPONSE_ALREADY_SENT) {
      for (const [k, v] of Object.entries(corsHeaders(corsOrigin))) c.res.headers.set(k, v);
    }
  });
  const resolve = deps.fixedResolver ?? prefixResolver(deps.routes);
  if (!deps.fixedResolver) {
    app.route('/', localEndpoints(deps));
    if (deps.metadataService) app.route('/', metadataService(deps.metadataService));
  }

  const proxy = async (c: { env: HttpBindings }) => {
    const { incoming, outgoing } = c.env;
    const record = recordOf(incoming) ?? { startNs: 0n, bytesIn: 0, bytesOut: 0 };
    const { route, upstreamPath, prefix } = admission.admitProxy(incoming, resolve, (name) => {
      record.key = name;
    });
    record.route = route.name;
    record.path = upstreamPath.split('?', 1)[0];
    await deps.forwarder.web(incoming, outgoing, route, upstreamPath, prefix, record);
    return RESPONSE_ALREADY_SENT;
  };
  if (deps.fixedResolver) {
    app.all('*', proxy);
  } else {
    app.all('/ws/*', proxy);
    app.all('/acct/*', proxy);
  }

  app.notFound((c) => {
    const rawUrl = c.env.incoming.url ?? '/';
    // Targets Hono's router could not place (it decodes "%2e%2e"): a bad path is still a 400.
    try {
      assertSafeTarget(rawUrl);
    } catch (err) {
      return gatewayErrorResponse(err as GatewayError);
    }
    return gatewayErrorResponse(deps.routes.unmatched(rawUrl));
  });
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
