import type { HttpClient, PipelineRequest, PipelineResponse } from '@azure/core-rest-pipeline';
import { outboundPool } from '../proxy/transport.js';

/** Entra ID answers in well under a second; a stuck authority must not hold a token fetch forever. */
const DEFAULT_TIMEOUT_MS = 30_000;

/** The last transport failure per origin (TLS, connect), kept briefly for transportFailureSince. */
const lastFailures = new Map<string, { atMs: number; error: unknown }>();

/**
 * The transport error of a call to `origin` that failed at or after `sinceMs`, if any. MSAL reports
 * a failed call to the authority as `endpoints_resolution_error` and drops its cause: without this
 * a certificate from TLS inspection would read as a wrong client secret.
 */
export function transportFailureSince(origin: string, sinceMs: number): unknown {
  const last = lastFailures.get(origin);
  return last && last.atMs >= sinceMs ? last.error : undefined;
}

/**
 * The HTTP client @azure/identity sends Entra ID and managed-identity calls with: undici, with the
 * gateway's egress-proxy rules (README, "Behind a corporate proxy") instead of Azure core's own env
 * handling, which reads HTTPS_PROXY for every scheme, knows no CIDR, port or `*` in NO_PROXY and
 * would send IMDS (169.254.169.254) through a corporate proxy. Its TLS trusts what route traffic
 * trusts (security/ca-trust.ts), plus the route's caFile: behind TLS inspection one corporate root
 * signs the sign-in endpoint and the workspace alike. Loaded with @azure/identity only.
 */
export function egressHttpClient(env: NodeJS.ProcessEnv, caFile?: string): HttpClient {
  return {
    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      const { createHttpHeaders } = await import('@azure/core-rest-pipeline');
      const url = new URL(request.url);
      const timeout = request.timeout > 0 ? request.timeout : DEFAULT_TIMEOUT_MS;
      const body = request.body;
      if (body !== undefined && body !== null && typeof body !== 'string' && !Buffer.isBuffer(body)) {
        throw new Error('the gateway sends Entra ID requests with string or Buffer bodies only');
      }
      let res: Awaited<ReturnType<ReturnType<typeof outboundPool>['request']>>;
      try {
        res = await outboundPool(url, env, caFile).request({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: request.method,
          headers: request.headers.toJSON(),
          ...(body !== undefined && body !== null ? { body } : {}),
          ...(request.abortSignal ? { signal: request.abortSignal } : {}),
          headersTimeout: timeout,
          bodyTimeout: timeout,
        });
      } catch (err) {
        lastFailures.set(url.origin, { atMs: Date.now(), error: err });
        throw err;
      }
      lastFailures.delete(url.origin);
      const headers = createHttpHeaders();
      for (const [name, value] of Object.entries(res.headers)) {
        if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
      }
      return { request, status: res.statusCode, headers, bodyAsText: await res.body.text() };
    },
  };
}
