import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { Hono } from 'hono';
import type { TokenCache } from '../auth/token-cache.js';
import { gatewayErrorResponse, hasRepeatedHeader, writeGatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { failureAnswer } from '../observability/request-log.js';
import { recordOf } from '../observability/request-record.js';
import type { RouteTable } from '../routing/route-table.js';
import type { Admission } from '../security/admission.js';
import { corsHeaders, preflightAnswer } from '../security/browser-guard.js';
import { type ControlOptions, controlEndpoints } from './control.js';
import { localEndpoints } from './health.js';
import { type MetadataServiceOptions, metadataService } from './metadata-service.js';
import { statusPage } from './status-page.js';

export interface AppDeps {
  routes: RouteTable;
  tokens: TokenCache;
  metrics: GatewayMetrics;
  logger: Logger;
  admission: Admission;
  isDraining: () => boolean;
  version?: string;
  routePorts?: () => Map<string, number>;
  sparkPorts?: () => Map<string, number>;
  /** Set when the metadata service is on (--metadata-service). */
  metadataService?: MetadataServiceOptions;
  /** Set by `serve`: the /-/ control endpoints (run file secret). */
  control?: ControlOptions;
}

type Env = { Bindings: HttpBindings };

/** Local endpoints that answer without an inbound key: liveness and readiness probes. */
const OPEN_PATHS = new Set(['/healthz', '/readyz']);

/**
 * The Hono app for everything the gateway answers itself: guards, /healthz, /readyz, /metrics,
 * the metadata service and the not-found answer. Proxied traffic never enters it, and the front
 * door (proxy/handler.ts) has started each request's record before handing it over.
 */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const { admission } = deps;

  app.use(async function guardClient(c, next) {
    const { incoming } = c.env;
    const { corsOrigin } = admission.checkClient(incoming);
    if (corsOrigin === undefined) return next();
    const record = recordOf(incoming);
    if (record) record.corsOrigin = corsOrigin;
    const preflight = preflightAnswer(incoming.method, incoming.headers, corsOrigin);
    if (preflight) return c.body(null, 204, preflight);
    await next();
    // An error answered on the raw response (onError) already carries them.
    if (c.env.outgoing.headersSent) return;
    for (const [k, v] of Object.entries(corsHeaders(corsOrigin))) c.res.headers.set(k, v);
  });
  app.use(async function requireKey(c, next) {
    // The status page and /metrics show upstreams, error paths and key names: with inbound keys
    // they need one. Probes stay open; the metadata service checks keys itself, and the control
    // endpoints need the run file's secret instead.
    if (admission.authenticate && !OPEN_PATHS.has(c.req.path) && !c.req.path.startsWith('/metadata/') && !c.req.path.startsWith('/-/')) {
      const key = admission.authenticate(c.env.incoming.headers);
      const record = recordOf(c.env.incoming);
      if (record) record.key = key.name;
    }
    return next();
  });
  app.route('/', localEndpoints(deps));
  app.route('/', statusPage({ ...deps, version: deps.version ?? '0.0.0' }));
  if (deps.metadataService) app.route('/', metadataService(deps.metadataService));
  if (deps.control) app.route('/', controlEndpoints(deps.control));

  // The listener has already refused unsafe targets (server.ts), so what is left is unknown.
  app.notFound((c) => gatewayErrorResponse(deps.routes.unmatched(c.env.incoming.url ?? '/')));
  app.onError((err, c) => {
    const record = recordOf(c.env.incoming);
    const answer = failureAnswer(err, deps.logger, record);
    if (!hasRepeatedHeader(answer)) return gatewayErrorResponse(answer);
    // Fetch Headers join a repeated field into one line, and the 401's WWW-Authenticate needs a
    // line per challenge (inbound-keys.ts): written on the Node response, as proxied errors are.
    const corsOrigin = record?.corsOrigin;
    writeGatewayError(c.env.outgoing, answer, { close: true, ...(corsOrigin ? { extraHeaders: corsHeaders(corsOrigin) } : {}) });
    return RESPONSE_ALREADY_SENT;
  });
  return app;
}
