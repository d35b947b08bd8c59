import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { recordSparkCall } from '../../src/spark/call-log.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, logger: createLogger({ level: 'info', stream, pretty: false }) };
}

describe('Spark Connect call records', () => {
  test('a status outside 0-16 counts as UNKNOWN, so an upstream cannot mint metric series', async () => {
    const { lines, logger } = capture();
    const metrics = createMetrics();
    for (const grpcStatus of [99999, 17, 123456]) {
      recordSparkCall(logger, metrics, {
        route: 'prod',
        method: '/spark.connect.SparkConnectService/ExecutePlan',
        grpcStatus,
        durationMs: 1,
        requestBytes: 0,
        responseBytes: 0,
      });
    }
    const text = await metrics.registry.metrics();
    assert.match(text, /dbx_gateway_grpc_calls_total\{route="prod",method="\/spark\.connect\.SparkConnectService\/ExecutePlan",grpc_status="2",key="-"\} 3/);
    assert.doesNotMatch(text, /grpc_status="(99999|17|123456)"/);
    assert.deepEqual(
      lines.map((l) => l.status),
      ['UNKNOWN', 'UNKNOWN', 'UNKNOWN'],
    );
  });

  test('method paths become labels only while few and well-formed', async () => {
    const { logger } = capture();
    const metrics = createMetrics();
    for (let i = 0; i < 80; i++) {
      recordSparkCall(logger, metrics, {
        route: 'prod',
        method: `/spark.connect.SparkConnectService/M${i}`,
        grpcStatus: 0,
        durationMs: 1,
        requestBytes: 0,
        responseBytes: 0,
      });
    }
    recordSparkCall(logger, metrics, { route: 'prod', method: '/not a method', grpcStatus: 0, durationMs: 1, requestBytes: 0, responseBytes: 0 });
    const text = await metrics.registry.metrics();
    const methods = new Set([...text.matchAll(/grpc_calls_total\{route="prod",method="([^"]+)"/g)].map((m) => m[1]));
    assert.equal(methods.size, 65, '64 methods and "other"');
    assert.ok(methods.has('other'));
  });

  test('a client cancel is not a failure; other statuses are WARN with the scrubbed reason', () => {
    const { lines, logger } = capture();
    const metrics = createMetrics();
    const call = { route: 'prod', method: '/spark.connect.SparkConnectService/ExecutePlan', durationMs: 1, requestBytes: 0, responseBytes: 0 };
    recordSparkCall(logger, metrics, { ...call, grpcStatus: 1, reason: 'the client cancelled the call' });
    recordSparkCall(logger, metrics, { ...call, grpcStatus: 14, reason: 'upstream said access_token=abc.def.ghi' });
    assert.equal(lines[0]?.level, 30);
    assert.equal(lines[0]?.reason, undefined);
    assert.equal(lines[1]?.level, 40);
    assert.equal(lines[1]?.status, 'UNAVAILABLE');
    assert.ok(!String(lines[1]?.reason).includes('abc.def.ghi'), String(lines[1]?.reason));
  });
});
