import type { IncomingMessage } from 'node:http';

/** What one request's log line and metrics are made of; filled in along the way. */
export interface RequestRecord {
  startNs: bigint;
  route?: string;
  /** The local prefix of a proxied request (/ws/NAME), absent on a per-route port. */
  prefix?: string;
  /** Upstream path for proxied requests (query string dropped: it may carry ids users consider private). */
  path?: string;
  bytesIn: number;
  bytesOut: number;
  error?: string;
  /** The gateway's own message for a failure it answered (says what to do; never a secret). */
  reason?: string;
  replayed?: boolean;
  /** The inbound key's name (never the key). */
  key?: string;
  /** An allowed browser origin: the response carries CORS headers for it. */
  corsOrigin?: string;
}

const records = new WeakMap<IncomingMessage, RequestRecord>();

export function startRecord(req: IncomingMessage): RequestRecord {
  const record: RequestRecord = { startNs: process.hrtime.bigint(), bytesIn: 0, bytesOut: 0 };
  records.set(req, record);
  return record;
}

export function recordOf(req: IncomingMessage): RequestRecord | undefined {
  return records.get(req);
}
