import type { Logger } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { scrubSecrets } from '../observability/redact.js';
import type { SessionRecord } from './session.js';

/** Outcomes that are the normal end of a session, not a failure. */
const QUIET_OUTCOMES = new Set(['ok', 'cancel', 'shutdown']);

/**
 * One log line and one count per Postgres session, as every exchange gets: route, user, database,
 * duration, bytes each way and how it ended; failures at WARN with the reason.
 */
export function recordPostgresSession(logger: Logger, metrics: GatewayMetrics, session: SessionRecord): void {
  metrics.postgresSessionsTotal.labels(session.route, session.outcome).inc();
  const meter = metrics.meter(session.route);
  meter.responseBytes.inc(session.bytesFromServer);
  meter.requestBytes.inc(session.bytesFromClient);
  const failed = !QUIET_OUTCOMES.has(session.outcome);
  metrics.stats.record(
    session.route,
    'PG',
    session.database ?? '-',
    failed ? 503 : 200,
    failed ? session.outcome : undefined,
    failed && session.reason ? scrubSecrets(session.reason) : undefined,
  );
  const line = {
    method: 'PG',
    route: session.route,
    ...(session.key ? { key: session.key } : {}),
    ...(session.user ? { user: session.user } : {}),
    ...(session.database ? { database: session.database } : {}),
    outcome: session.outcome,
    ms: Math.round(session.durationMs * 10) / 10,
    bytes: session.bytesFromServer,
    bytesIn: session.bytesFromClient,
    ...(failed && session.reason ? { reason: scrubSecrets(session.reason) } : {}),
  };
  if (failed) logger.warn(line, 'session');
  else logger.info(line, 'session');
}
