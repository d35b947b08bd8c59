import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage, GatewayError, internalError } from '../errors.js';
import type { Logger } from './logger.js';
import type { GatewayMetrics } from './metrics.js';
import { redactMetadataSecret, scrubSecrets } from './redact.js';
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
 * Any failure as the answer the client gets: a GatewayError as it is; anything else is a bug,
 * logged (scrubbed) and answered 500 GATEWAY_INTERNAL_ERROR with no detail. Noted on the record,
 * so the request line says why. The one error mapping of the HTTP door (proxied, upgrade, local;
 * Spark and Postgres map a GatewayError with grpcStatusForGatewayError and postgresErrorFor).
 */
export function failureAnswer(err: unknown, logger: Logger, record?: RequestRecord): GatewayError {
  let answer: GatewayError;
  if (err instanceof GatewayError) answer = err;
  else {
    logger.error({ err: { name: err instanceof Error ? err.name : typeof err, message: scrubSecrets(errorMessage(err)) } }, 'unexpected error');
    answer = internalError();
  }
  if (record) {
    record.error = answer.code;
    record.reason = answer.message;
  }
  return answer;
}

export interface Outcome {
  /** 0 when no response head was sent. */
  status: number;
  /** Response body bytes the client got. */
  bytes: number;
  upgrade?: boolean;
  aborted?: boolean;
}

/**
 * One log line and one metrics update for a finished exchange. Fields are chosen, never raw
 * headers; the query is never logged; failures are at WARN with the gateway's reason.
 */
export function writeRequestLine(logger: Logger, metrics: GatewayMetrics, incoming: IncomingMessage, record: RequestRecord, outcome: Outcome): void {
  const seconds = Number(process.hrtime.bigint() - record.startNs) / 1e9;
  const route = record.route ?? '-';
  const { status } = outcome;
  // The metadata-service URL carries its secret: never log it, nor the reason that quotes it (a
  // 404's "no route for PATH"). Upstream paths (record.path) are left alone.
  let path = record.path;
  let reason = record.reason;
  if (path === undefined || reason !== undefined) {
    const rawPath = (incoming.url ?? '').split('?', 1)[0] ?? '';
    const localPath = redactMetadataSecret(rawPath);
    path ??= localPath;
    if (reason !== undefined && localPath !== rawPath) reason = reason.split(rawPath).join(localPath);
  }
  const meter = metrics.meter(route);
  meter.request(incoming.method ?? '-', status, record.key ?? '-');
  if (!QUIET_PATHS.has(path) && path !== '/') metrics.stats.record(route, incoming.method ?? '-', path, status, record.error, reason);
  if (record.route && !outcome.upgrade) {
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
    ...(outcome.upgrade ? { upgrade: true } : { bytes: outcome.bytes, bytesIn: record.bytesIn }),
    ...(record.prefix ? { prefix: record.prefix } : {}),
    ...(record.error ? { error: record.error } : {}),
    ...(reason ? { reason } : {}),
    ...(record.replayed ? { replayed: true } : {}),
    ...(outcome.aborted ? { aborted: true } : {}),
  };
  const lines = requestLogger(logger);
  if (QUIET_PATHS.has(path) || isStatusPoll(incoming, path, status)) lines.debug(line, 'request');
  else if (record.error !== undefined || status >= 500) lines.warn(line, 'request');
  else lines.info(line, 'request');
}

/**
 * The status page's own refresh (its script fetches `/` as JSON every 5 s, and so do monitors):
 * at debug, as probes are. Opening the page (HTML) stays a request line.
 */
function isStatusPoll(incoming: IncomingMessage, path: string, status: number): boolean {
  if (path !== '/' || incoming.method !== 'GET' || status !== 200) return false;
  const accept = incoming.headers.accept ?? '';
  return accept.includes('application/json') && !accept.includes('text/html');
}

/** The record of one request/response exchange; its line is written when the response closes (streams to their end). */
export function trackRequest(incoming: IncomingMessage, outgoing: ServerResponse, logger: Logger, metrics: GatewayMetrics): RequestRecord {
  const record = startRecord(incoming);
  outgoing.once('close', () => {
    writeRequestLine(logger, metrics, incoming, record, {
      status: outgoing.headersSent ? outgoing.statusCode : 0,
      bytes: record.bytesOut,
      aborted: !outgoing.writableFinished,
    });
  });
  return record;
}

const counted = new WeakSet<ServerResponse>();

/**
 * Counts a body the gateway writes itself (its errors, the local endpoints) into record.bytesOut,
 * as forward.ts counts a proxied one, so the log says what the client got. Content-Length is no
 * measure: writeHead's headers are not readable back, and a streamed answer has none. Proxied
 * bodies are never wrapped (the hot path); a HEAD answer's body is dropped by Node, so not counted.
 */
export function countOwnBody(res: ServerResponse, record: RequestRecord): void {
  if (counted.has(res) || res.req?.method === 'HEAD') return;
  counted.add(res);
  const count = (chunk: unknown, encoding: unknown) => {
    if (typeof chunk === 'string') record.bytesOut += Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
    else if (chunk instanceof Uint8Array) record.bytesOut += chunk.byteLength;
  };
  const { write, end } = res;
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    count(chunk, rest[0]);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as ServerResponse['write'];
  res.end = function (this: ServerResponse, ...args: unknown[]) {
    if (typeof args[0] !== 'function') count(args[0], args[1]);
    return (end as (...args: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['end'];
}
