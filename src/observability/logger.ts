import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

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
    // JSON to stdout through sonic-boom, asynchronously: lines written while one write is in flight
    // are coalesced into the next, instead of one write(2) per request on the event loop. pino
    // flushes it on exit.
    return pino({ ...baseOptions(options) }, pino.destination({ dest: 1, sync: false }));
  }
  const base = baseOptions(options);
  return readable
    ? pino(base, pretty({ destination: stream, colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' }))
    : pino(base, stream);
}
