/**
 * Log lines for a person at a terminal: one line per event, never the nine of a pretty-printed
 * object. A request is `12:04:05 GET /ws/prod/api/2.0/clusters/list 200 25ms 387B` (with
 * `route=prod` after it when the path does not name the route: gRPC, per-route ports); anything
 * else is the time, the level and the message, then its fields as key=value. Colours only on a
 * terminal and without NO_COLOR (https://no-color.org). Every piece of an event is shown with its
 * control characters escaped (terminal-text.ts): messages and fields carry upstream text.
 */
import { escapeControl, escapeControlLines } from './terminal-text.js';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const COLOURS: Record<number, string> = { 40: '\u001b[33m', 50: '\u001b[31m', 60: '\u001b[31m' };
const RESET = '\u001b[0m';
const DIM = '\u001b[2m';
/** Fields every event has: shown as the time, the level and the message. */
const EVENT_FIELDS = new Set(['level', 'time', 'msg']);
/** Fields shown in the request line itself, or not at all. */
const REQUEST_FIELDS = new Set(['level', 'time', 'msg', 'method', 'route', 'prefix', 'path', 'status', 'grpcStatus', 'ms', 'bytes', 'bytesIn']);
/** The same, when the path does not name the route (a gRPC call, a per-route port): route=NAME is shown. */
const UNPREFIXED_REQUEST_FIELDS = new Set([...REQUEST_FIELDS].filter((f) => f !== 'route'));

export interface TextStreamOptions {
  out: { write(text: string): boolean };
  colour: boolean;
}

/** A stream pino writes its JSON lines to, which writes them on `out` as text. */
export function textStream({ out, colour }: TextStreamOptions): { write(line: string): boolean } {
  return {
    write(line) {
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return out.write(escapeControlLines(line));
      }
      return out.write(`${formatEvent(event, colour)}\n`);
    },
  };
}

export function formatEvent(event: Record<string, unknown>, colour: boolean): string {
  const level = Number(event.level);
  const time = typeof event.time === 'number' ? new Date(event.time).toTimeString().slice(0, 8) : '';
  const paint = (text: string, code: string | undefined) => (colour && code ? `${code}${text}${RESET}` : text);
  const stamp = paint(time, DIM);
  if (event.msg === 'request' && typeof event.method === 'string') {
    const size = typeof event.bytes === 'number' ? ` ${humanBytes(event.bytes)}` : '';
    const named = event.prefix !== undefined || event.route === undefined || event.route === '-';
    const extra = fields(event, named ? REQUEST_FIELDS : UNPREFIXED_REQUEST_FIELDS);
    const text = `${escapeControl(`${event.method} ${String(event.prefix ?? '')}${String(event.path ?? '')} ${String(event.status ?? '-')} ${String(event.ms ?? '-')}ms`)}${size}${extra}`;
    return `${stamp} ${paint(text, COLOURS[level])}`;
  }
  const name = LEVELS[level] ?? String(event.level);
  const head = `${stamp} ${paint(escapeControl(name).padEnd(5), COLOURS[level])} ${escapeControl(String(event.msg ?? ''))}`;
  // A block (a route's startup state and how to use it): its lines under the message say it all;
  // the same values are the event's fields in JSON.
  if (Array.isArray(event.lines)) {
    const indent = ' '.repeat(time.length + 9);
    return `${head}${event.lines.map((line) => `\n${indent}${escapeControl(String(line))}`).join('')}`;
  }
  return `${head}${fields(event, EVENT_FIELDS)}`;
}

function fields(event: Record<string, unknown>, skip: Set<string>): string {
  let out = '';
  for (const [key, value] of Object.entries(event)) {
    if (skip.has(key) || value === undefined) continue;
    // A string with spaces is quoted to stay one field; JSON.stringify leaves C1 raw, so escape after.
    const text = typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value);
    out += ` ${escapeControl(key)}=${escapeControl(text)}`;
  }
  return out;
}

function humanBytes(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)}KiB`;
  return `${(n / 1024 / 1024).toFixed(1)}MiB`;
}
