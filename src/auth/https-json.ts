import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { trustWithCaFile } from '../security/ca-trust.js';

export interface JsonResponse {
  status: number;
  body: unknown;
  /** The raw body when it was not JSON (error pages), cut short. */
  text: string;
}

export interface JsonRequestOptions {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** Extra CA bundle (the route's caFile), added to the public roots; verification stays on. */
  caFile?: string;
  signal?: AbortSignal;
}

/**
 * A small JSON-over-HTTPS call for token endpoints on the route's own host (Databricks OAuth),
 * honouring the route's caFile the way proxied traffic does. http:// only reaches loopback hosts
 * (config validation guarantees it).
 */
export function requestJson(url: URL, options: JsonRequestOptions = {}): Promise<JsonResponse> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    const req = send(
      url,
      {
        method: options.method ?? 'GET',
        headers: { accept: 'application/json', ...options.headers },
        ...(options.caFile && url.protocol === 'https:' ? { secureContext: trustWithCaFile(options.caFile) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          // Token responses are a few KiB; refuse to buffer an unexpected huge body.
          if (size > 1 << 20) req.destroy(new Error(`${url.origin}${url.pathname} sent more than 1 MiB`));
          else chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body, text: text.slice(0, 300) });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url.origin} did not answer within 30 s`)));
    req.on('error', reject);
    req.end(options.body);
  });
}
