import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { testPki } from './tls.js';
import { within } from './wait.js';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface FakeUpstream {
  url: URL;
  seen: SeenRequest[];
  /** Replace the handler for the next requests. */
  handle(handler: Handler): void;
  /**
   * Resolves with the first request (from `seen[since]` on) that `match` accepts, as soon as it
   * arrives; fails after the timeout. The request may still be waiting for its answer.
   */
  requested(match?: (request: SeenRequest) => boolean, options?: { since?: number; timeoutMs?: number }): Promise<SeenRequest>;
  /** TCP connections accepted so far (keep-alive check). */
  connections(): number;
  close(): Promise<void>;
}

/** A fake Databricks workspace over real HTTPS (test CA) on 127.0.0.1:0 that records what it got. */
export async function startFakeUpstream(handler: Handler = defaultHandler, options: { tls?: boolean } = {}): Promise<FakeUpstream> {
  const seen: SeenRequest[] = [];
  let current = handler;
  let connections = 0;
  const arrivals = new EventEmitter();
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    arrivals.emit('request');
    current(req, res);
  };
  const tls = options.tls ?? true;
  const pki = testPki();
  const server: Server | ReturnType<typeof createServer> = tls ? createHttpsServer({ key: pki.key, cert: pki.cert }, listener) : createServer(listener);
  server.on(tls ? 'secureConnection' : 'connection', () => connections++);
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: new URL(`${tls ? 'https' : 'http'}://127.0.0.1:${port}`),
    seen,
    handle(h) {
      current = h;
    },
    requested(match = () => true, options = {}) {
      const since = options.since ?? 0;
      const found = () => seen.slice(since).find(match);
      const arrived = new Promise<SeenRequest>((resolve) => {
        const check = () => {
          const request = found();
          if (!request) return;
          arrivals.off('request', check);
          resolve(request);
        };
        arrivals.on('request', check);
        check();
      });
      return within(arrived, {
        timeoutMs: options.timeoutMs ?? 5_000,
        what: () => `the request to reach the upstream; it got: ${JSON.stringify(seen.slice(since).map((r) => `${r.method} ${r.url}`))}`,
      });
    },
    connections: () => connections,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function defaultHandler(req: IncomingMessage, res: ServerResponse): void {
  let bytes = 0;
  req.on('data', (c: Buffer) => {
    bytes += c.length;
  });
  req.on('end', () => {
    const body = JSON.stringify({ method: req.method, url: req.url, bodyBytes: bytes, authorization: req.headers.authorization ?? null });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}
