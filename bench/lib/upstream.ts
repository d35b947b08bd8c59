import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface BenchUpstream {
  port: number;
  origin: string;
  /** Token endpoint calls (cold-start scenario counts them). */
  tokenFetches(): number;
  bytesReceived(): number;
  close(): Promise<void>;
}

const CLUSTERS = JSON.stringify({
  clusters: [
    {
      cluster_id: '0123-456789-abcdefgh',
      cluster_name: 'shared',
      state: 'RUNNING',
      spark_version: '15.4.x-scala2.12',
      node_type_id: 'Standard_DS3_v2',
      num_workers: 2,
    },
  ],
});
const CHUNK = Buffer.alloc(1 << 20, 120);

/**
 * A fake Databricks workspace over HTTPS, built to never be the bottleneck: a fixed small JSON body,
 * downloads written from one reused 1 MiB buffer with backpressure, uploads counted and dropped,
 * and a Databricks OAuth token endpoint for the cold-start scenario.
 */
export async function startBenchUpstream(pki: { key: string; cert: string }, tls = true): Promise<BenchUpstream> {
  let fetches = 0;
  let received = 0;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (url.startsWith('/oidc/.well-known/')) {
      const origin = `https://${req.headers.host}`;
      return json(res, JSON.stringify({ token_endpoint: `${origin}/oidc/v1/token`, authorization_endpoint: `${origin}/oidc/v1/authorize` }));
    }
    if (url === '/oidc/v1/token') {
      fetches++;
      req.resume();
      // A real token endpoint takes tens of milliseconds.
      setTimeout(() => json(res, JSON.stringify({ access_token: `bench-token-${fetches}`, token_type: 'Bearer', expires_in: 3600 })), 30);
      return;
    }
    if (url.startsWith('/big')) {
      const total = Number(new URL(url, 'http://x').searchParams.get('bytes') ?? 0);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
      let left = total;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, CHUNK.length);
          left -= n;
          if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      return pump();
    }
    if (req.method === 'PUT' || req.method === 'POST') {
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
      });
      req.on('end', () => {
        received += n;
        json(res, JSON.stringify({ bytes: n }));
      });
      return;
    }
    req.resume();
    json(res, CLUSTERS);
  };
  const server = tls ? createHttpsServer({ key: pki.key, cert: pki.cert }, handler) : createServer(handler);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    tokenFetches: () => fetches,
    bytesReceived: () => received,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function json(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
