import type { GatewayConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { authHeaders } from '../proxy/auth-headers.js';
import type { Route } from '../routing/route-table.js';
import type { Admission } from '../security/admission.js';
import { recordSparkCall } from '../spark/call-log.js';
import { createSparkConnectForwarder, type SparkConnectForwarder } from '../spark/forwarder.js';
import type { GatewayCore } from './core.js';

// The Spark Connect door of a generation, in its own module: generation.ts imports it only when a
// route has `sparkConnect`.

/** A route's Spark Connect forwarder: its token, its upstream (port 443 unless the host names one), its proxy and caFile. */
export function sparkForwarder(route: Route, core: GatewayCore, admission: Admission, config: GatewayConfig, logger: Logger): SparkConnectForwarder {
  const { tokens, metrics } = core;
  return createSparkConnectForwarder(
    {
      routeName: route.name,
      upstream: route.target,
      ...(route.config.caFile ? { caFile: route.config.caFile } : {}),
      ...(route.proxy ? { proxy: route.proxy } : {}),
      authHeaders: () => authHeaders(route, tokens),
      // As an HTTP 401 does (token-cache.ts): dropped, with the same backoff against a hostile upstream.
      rejectToken: (token) => void tokens.reject(route.credential, 'databricks', token),
      ...(admission.authenticate ? { authenticate: admission.authenticate } : {}),
      ...(admission.rateLimit ? { rateLimit: admission.rateLimit } : {}),
      connectTimeoutMs: config.timeouts.connectMs,
      callIdleMs: config.timeouts.idleMs,
    },
    (call) => recordSparkCall(logger, metrics, call),
  );
}
