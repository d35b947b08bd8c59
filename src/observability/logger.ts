import pino, { type Logger } from 'pino';
import { escapeJsonText } from './terminal-text.js';
import { textStream } from './text-format.js';

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
  /** Destination; defaults to stdout. */
  stream?: NodeJS.WritableStream;
  /** text: one line per event for a person; json: JSON lines. Default: text on a terminal. */
  format?: 'text' | 'json';
  /** Override of the text colours (default: a terminal without NO_COLOR). */
  colour?: boolean;
  /** @deprecated the same as format: 'text'. */
  pretty?: boolean;
}

function baseOptions(options: LoggerOptions) {
  return {
    level: options.level ?? 'info',
    base: null,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
  };
}

export function createLogger(options: LoggerOptions = {}, env: NodeJS.ProcessEnv = process.env): Logger {
  const stream = options.stream ?? process.stdout;
  const tty = stream === process.stdout && process.stdout.isTTY === true;
  const format = options.format ?? (options.pretty === true || (options.pretty === undefined && tty) ? 'text' : 'json');
  const base = baseOptions(options);
  if (format === 'text') {
    const colour = options.colour ?? (tty && !env.NO_COLOR);
    return pino(base, textStream({ out: stream === process.stdout ? guardedStdout() : stream, colour }));
  }
  // JSON lines may be read at a terminal (`serve | less`, --log-format json): pino escapes C0 as
  // JSON does but leaves DEL, C1 and the bidi controls raw (terminal-text.ts).
  const json = { ...base, hooks: { streamWrite: escapeJsonText } };
  if (options.stream === undefined) {
    // JSON to stdout through sonic-boom, asynchronously and in batches (4 KiB or 50 ms per
    // write(2)) instead of a write per request line. pino flushes it on exit.
    const destination = pino.destination({ dest: 1, sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_FLUSH_MS });
    destination.on('error', (err: NodeJS.ErrnoException) => {
      stopWriting(destination);
      noteStdoutLost(err);
    });
    const logger = pino(json, destination);
    stdoutDestinations.set(logger, destination);
    return logger;
  }
  return pino(json, stream);
}

type Destination = ReturnType<typeof pino.destination>;

/** The sonic-boom stdout destination of each logger that has one (flushLogs gives up on it). */
const stdoutDestinations = new WeakMap<Logger, Destination>();

/**
 * No more writes, and no final flush: sonic-boom's flushSync (pino's exit hook) retries every
 * error but EAGAIN forever, 100 ms apart, so a closed stdout (`dbx-gateway ... | head -1`, EPIPE)
 * or a full pipe nobody reads kept the process alive after SIGTERM. pino does the same on EPIPE
 * (buildSafeSonicBoom); this covers every other error and the timeout of flushLogs.
 */
function stopWriting(destination: Destination): void {
  destination.write = () => true;
  destination.flushSync = () => {};
}

let stdoutLostNoted = false;

/** Once, on stderr (stdout is gone): why the log stops. */
function noteStdoutLost(err: NodeJS.ErrnoException): void {
  if (stdoutLostNoted) return;
  stdoutLostNoted = true;
  try {
    process.stderr.write(`dbx-gateway: the log on stdout is closed (${err.code ?? err.message}); further log lines are dropped\n`);
  } catch {
    // stderr gone too: nothing left to tell.
  }
}

/**
 * process.stdout for the text log, until it fails: a write after EPIPE would raise an unhandled
 * 'error' (a crash, on a closed `| head -1` pipe) instead of dropping the line.
 */
function guardedStdout(): { write(text: string): boolean } {
  let lost = false;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    lost = true;
    noteStdoutLost(err);
  });
  return { write: (text) => lost || process.stdout.write(text) };
}

/**
 * Writes what the logger has buffered, for at most `timeoutMs`: the last step before exit. On a
 * timeout or a write error the rest is dropped, so that pino's synchronous flush on exit has
 * nothing it could wait on forever.
 */
export function flushLogs(logger: Logger, timeoutMs: number): Promise<void> {
  const destination = stdoutDestinations.get(logger);
  return new Promise((resolve) => {
    const giveUp = () => {
      if (destination) stopWriting(destination);
      resolve();
    };
    const timer = setTimeout(giveUp, timeoutMs);
    timer.unref();
    logger.flush((err) => {
      clearTimeout(timer);
      if (err) giveUp();
      else resolve();
    });
  });
}
