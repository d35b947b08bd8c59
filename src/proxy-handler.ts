import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage, GatewayError, internalError, writeGatewayError } from './errors.js';
import type { Logger } from './observability/logger.js';
import type { GatewayMetrics } from './observability/metrics.js';
import { trackRequest } from './observability/request-log.js';
import type { Forwarder } from './proxy/forward.js';
import type { Resolver } from './routing/route-table.js';
import type { Admission } from './security/admission.js';
import { corsHeaders, preflightHeaders } from './security/browser-guard.js';

export interface ProxyHandlerDeps {
  admission: Admission;
  forwarder: Forwarder;
  logger: Logger;
  metrics: GatewayMetrics;
}

/**
 * Proxied traffic on the raw Node request and response: the same admission checks, request log
 * and error shape as the Hono app, without building a fetch Request, an AbortController and a
 * Response per request (a fifth of the CPU per proxied request in the profile; docs/benchmarks.md).
 */
export function createProxyHandler(deps: ProxyHandlerDeps, resolve: Resolver): (req: IncomingMessage, res: ServerResponse) => void {
  return function handleProxy(req, res) {
    const record = trackRequest(req, res, deps.logger, deps.metrics);
    let corsOrigin: string | undefined;
    const fail = (err: unknown) => {
      const gatewayError = err instanceof GatewayError ? err : internalError();
      if (!(err instanceof GatewayError)) deps.logger.error({ err: { name: (err as Error).name, message: errorMessage(err) } }, 'unexpected error');
      record.error = gatewayError.code;
      record.reason = gatewayError.message;
      writeGatewayError(res, gatewayError, { close: true, ...(corsOrigin ? { extraHeaders: corsHeaders(corsOrigin) } : {}) });
    };
    try {
      corsOrigin = deps.admission.checkClient(req).corsOrigin;
      if (corsOrigin) {
        record.corsOrigin = corsOrigin;
        // A CORS preflight from an allowed origin is answered here: no key, never forwarded.
        if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
          res.writeHead(204, preflightHeaders(corsOrigin, req.headers));
          res.end();
          return;
        }
      }
      const { route, upstreamPath, prefix } = deps.admission.admitProxy(req, resolve, (name) => {
        record.key = name;
      });
      record.route = route.name;
      if (prefix) record.prefix = prefix;
      // Admitted: now the client may send its body (the server answers no 100 Continue itself;
      // see the checkContinue listener in server.ts).
      if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
      record.path = upstreamPath.split('?', 1)[0];
      deps.forwarder.web(req, res, route, upstreamPath, prefix, record);
    } catch (err) {
      fail(err);
    }
  };
}

/** Whether the main listener hands this target to the proxy handler (the Hono app gets the rest). */
export function isProxiedTarget(rawUrl: string | undefined): boolean {
  return rawUrl !== undefined && (rawUrl.startsWith('/ws/') || rawUrl.startsWith('/acct/'));
}
