import { outboundPool } from '../proxy/transport.js';

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
  /** Where HTTPS_PROXY / NO_PROXY are read (the gateway's environment by default). */
  env?: NodeJS.ProcessEnv;
}

/** Token responses are a few KiB; an unexpectedly huge body is refused, not buffered. */
const MAX_BODY_BYTES = 1 << 20;
const TIMEOUT_MS = 30_000;

/**
 * A small JSON-over-HTTPS call for token endpoints on the route's own host (Databricks OAuth),
 * honouring the route's caFile and the egress proxy the way proxied traffic does. http:// only
 * reaches loopback hosts (config validation guarantees it).
 */
export async function requestJson(url: URL, options: JsonRequestOptions = {}): Promise<JsonResponse> {
  const res = await outboundPool(url, options.env ?? process.env, options.caFile).request({
    origin: url.origin,
    path: `${url.pathname}${url.search}`,
    method: options.method ?? 'GET',
    headers: { accept: 'application/json', ...options.headers },
    ...(options.body !== undefined ? { body: options.body } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    headersTimeout: TIMEOUT_MS,
    bodyTimeout: TIMEOUT_MS,
  });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      res.body.destroy();
      throw new Error(`${url.origin}${url.pathname} sent more than 1 MiB`);
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.statusCode, body, text: text.slice(0, 300) };
}
