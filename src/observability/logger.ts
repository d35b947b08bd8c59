import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';

/** pino-pretty (and its dependencies) only when the output is for a person: ~5 MiB and 15 ms otherwise. */
type Pretty = typeof import('pino-pretty');
function loadPretty(): Pretty {
  const mod = createRequire(import.meta.url)('pino-pretty') as Pretty & { default?: Pretty };
  return mod.default ?? mod;
}

export type { Logger };

/**
 * Paths pino blanks out wherever they appear. Log lines are built from chosen fields (no raw
 * headers), so this is a second line of defence against a careless `logger.info({ headers })`.
 */
const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  '*.headers.authorization',
  '*.headers["x-dbx-gateway-key"]',
  '*.headers["x-databricks-azure-sp-management-token"]',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'refresh_token',
  '*.refresh_token',
  'clientSecret',
  '*.clientSecret',
  'client_secret',
  '*.client_secret',
];

/** A log batch is written once it holds this much... */
const LOG_BATCH_BYTES = 4096;
/** ...or this long after its first line: a line on a quiet gateway is never late by more. */
const LOG_FLUSH_MS = 50;

export interface LoggerOptions {
  level?: string;
  /** Destination; defaults to stdout. JSON lines, or readable lines when it is a TTY. */
  stream?: NodeJS.WritableStream;
  pretty?: boolean;
}

function baseOptions(options: LoggerOptions) {
  return {
    level: options.level ?? 'info',
    base: undefined,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
  };
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stdout;
  const readable = options.pretty ?? (stream === process.stdout && process.stdout.isTTY === true);
  if (!readable && options.stream === undefined) {
    // JSON to stdout through sonic-boom, asynchronously and in batches: lines collect until 4 KiB
    // or 50 ms have passed, then go in one write(2). One write per request line was about a third
    // of the gateway's CPU per request under load (docs/benchmarks.md). pino flushes it on exit.
    return pino({ ...baseOptions(options) }, pino.destination({ dest: 1, sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_FLUSH_MS }));
  }
  const base = baseOptions(options);
  return readable
    ? pino(base, loadPretty()({ destination: stream, colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' }))
    : pino(base, stream);
}
