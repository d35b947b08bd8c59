import type { HttpBindings } from '@hono/node-server';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import type { Logger } from './logger.js';
import type { GatewayMetrics } from './metrics.js';
import { type RequestRecord, startRecord } from './request-record.js';

/** Local endpoints polled by probes and scrapers: logged at debug so they do not drown real traffic. */
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

const requestLoggers = new WeakMap<Logger, Logger>();

/**
 * The request line is built from fixed scalar fields only (never headers, never the query), so it
 * skips pino's path redaction, which cost ~4% of the CPU per proxied request. Other log calls keep it.
 */
function requestLogger(logger: Logger): Logger {
  let child = requestLoggers.get(logger);
  if (!child) {
    child = logger.child({}, { redact: { paths: [], censor: '[REDACTED]' } });
    requestLoggers.set(logger, child);
  }
  return child;
}

/**
 * One log line and one metrics update per request, written when the response closes (so streamed
 * proxy responses are measured to their end). Fields are chosen, never raw headers.
 */
export function trackRequest(incoming: IncomingMessage, outgoing: ServerResponse, logger: Logger, metrics: GatewayMetrics): RequestRecord {
  const record = startRecord(incoming);
  const lines = requestLogger(logger);
  outgoing.once('close', () => {
    const seconds = Number(process.hrtime.bigint() - record.startNs) / 1e9;
    const route = record.route ?? '-';
    const status = outgoing.headersSent ? outgoing.statusCode : 0;
    const bytes = record.route ? record.bytesOut : Number(outgoing.getHeader('content-length') ?? 0);
    // The metadata-service URL carries its secret: never log it (upstream paths are left alone).
    const path = record.path ?? ((incoming.url ?? '').split('?', 1)[0] ?? '').replace(/\/metadata\/.*/s, '/metadata/[REDACTED]');
    const meter = metrics.meter(route);
    meter.request(incoming.method ?? '-', status, record.key ?? '-');
    if (!QUIET_PATHS.has(path) && path !== '/') metrics.stats.record(route, incoming.method ?? '-', path, status, record.error);
    if (record.route) {
      meter.duration.observe(seconds);
      meter.responseBytes.inc(record.bytesOut);
      meter.requestBytes.inc(record.bytesIn);
    }
    const line = {
      method: incoming.method,
      route,
      ...(record.key ? { key: record.key } : {}),
      path,
      status,
      ms: Math.round(seconds * 10_000) / 10,
      bytes,
      bytesIn: record.bytesIn,
      ...(record.prefix ? { prefix: record.prefix } : {}),
      ...(record.error ? { error: record.error } : {}),
      ...(record.reason ? { reason: record.reason } : {}),
      ...(record.replayed ? { replayed: true } : {}),
      ...(outgoing.writableFinished ? {} : { aborted: true }),
    };
    if (QUIET_PATHS.has(path)) lines.debug(line, 'request');
    // Failures at WARN, with the gateway's reason when it answered them itself.
    else if (record.error !== undefined || status >= 500) lines.warn(line, 'request');
    else lines.info(line, 'request');
  });
  return record;
}

/** The same, as Hono middleware for the local endpoints. */
export function requestLog(logger: Logger, metrics: GatewayMetrics): MiddlewareHandler<{ Bindings: HttpBindings }> {
  return async function requestLog(c, next) {
    trackRequest(c.env.incoming, c.env.outgoing as ServerResponse, logger, metrics);
    await next();
  };
}
