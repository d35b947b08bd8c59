import type { Logger } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { scrubSecrets } from '../observability/redact.js';
import type { SparkCall } from './forwarder.js';
import { GrpcStatus } from './grpc-status.js';

const STATUS_NAMES = new Map<number, string>(Object.entries(GrpcStatus).map(([name, code]) => [code, name]));

/** A grpc-status as its name (UNAVAILABLE), as gRPC clients print it. */
export function grpcStatusName(code: number): string {
  return STATUS_NAMES.get(code) ?? String(code);
}

/**
 * One request line and one metrics count per Spark Connect call, like every exchange: the method
 * path, the grpc-status the client got (by name), time and bytes; failures at WARN with the
 * reason. A client's own cancel is not a failure (an interrupted query, a closed notebook).
 */
export function recordSparkCall(logger: Logger, metrics: GatewayMetrics, { grpcStatus, ...call }: SparkCall): void {
  // An upstream may send any digits: outside 0-16 it is UNKNOWN (the metrics label stays bounded).
  const code = STATUS_NAMES.has(grpcStatus) ? grpcStatus : GrpcStatus.UNKNOWN;
  const status = grpcStatusName(code);
  const failed = code !== GrpcStatus.OK && code !== GrpcStatus.CANCELLED;
  metrics.grpcCalls.labels(call.route, metrics.grpcMethodLabel(call.method), String(code), call.keyName ?? '-').inc();
  metrics.grpcDuration.labels(call.route).observe(call.durationMs / 1000);
  const meter = metrics.meter(call.route);
  meter.responseBytes.inc(call.responseBytes);
  meter.requestBytes.inc(call.requestBytes);
  metrics.stats.record(call.route, 'gRPC', call.method, 200, failed ? status : undefined, failed && call.reason ? scrubSecrets(call.reason) : undefined);
  const line = {
    method: 'gRPC',
    route: call.route,
    ...(call.keyName ? { key: call.keyName } : {}),
    path: call.method,
    status,
    grpcStatus: code,
    ms: Math.round(call.durationMs * 10) / 10,
    bytes: call.responseBytes,
    bytesIn: call.requestBytes,
    ...(failed && call.reason ? { reason: scrubSecrets(call.reason) } : {}),
  };
  if (failed) logger.warn(line, 'request');
  else logger.info(line, 'request');
}
