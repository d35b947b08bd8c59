import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { formatEvent } from '../../src/observability/text-format.js';
import { recordPostgresSession } from '../../src/postgres/session-log.js';
import { recordSparkCall } from '../../src/spark/call-log.js';

/** A text logger (as on a terminal, without colours) whose lines are collected. */
function textLogger() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { text: () => text, logger: createLogger({ level: 'info', stream, format: 'text', colour: false }) };
}

describe('text log lines name their route', () => {
  test('a Spark Connect call and a Postgres session say which route they went through', () => {
    const { text, logger } = textLogger();
    const metrics = createMetrics();
    recordSparkCall(logger, metrics, {
      route: 'prod',
      method: '/spark.connect.SparkConnectService/ExecutePlan',
      grpcStatus: 0,
      durationMs: 25,
      requestBytes: 10,
      responseBytes: 387,
    });
    recordPostgresSession(logger, metrics, {
      route: 'lake',
      user: 'dana@contoso.com',
      database: 'databricks_postgres',
      durationMs: 1200,
      bytesFromClient: 50,
      bytesFromServer: 2048,
      outcome: 'ok',
    });
    const [grpc, pg] = text().trimEnd().split('\n');
    assert.match(grpc!, /^\d\d:\d\d:\d\d gRPC \/spark\.connect\.SparkConnectService\/ExecutePlan OK 25ms 387B route=prod$/);
    assert.match(pg!, /INFO +session method=PG route=lake user=dana@contoso\.com database=databricks_postgres outcome=ok/);
  });

  test('a request on a per-route port names its route; one under /ws/NAME and a local page do not repeat it', () => {
    const line = (event: Record<string, unknown>) =>
      formatEvent({ level: 30, time: 0, msg: 'request', method: 'GET', status: 200, ms: 1, bytes: 2, ...event }, false);
    assert.match(line({ route: 'prod', path: '/api/2.0/clusters/list' }), /GET \/api\/2\.0\/clusters\/list 200 1ms 2B route=prod$/);
    assert.match(line({ route: 'prod', prefix: '/ws/prod', path: '/api/2.0/clusters/list' }), /GET \/ws\/prod\/api\/2\.0\/clusters\/list 200 1ms 2B$/);
    assert.match(line({ route: '-', path: '/healthz' }), /GET \/healthz 200 1ms 2B$/);
  });
});
