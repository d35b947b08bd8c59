import { Hono } from 'hono';
import type { TokenCache } from '../auth/token-cache.js';
import { errorMessage } from '../errors.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { RouteTable } from '../routing/route-table.js';

export interface LocalEndpointsOptions {
  routes: RouteTable;
  tokens: TokenCache;
  metrics: GatewayMetrics;
  /** True once shutdown has begun: readiness goes false so load balancers stop sending. */
  isDraining: () => boolean;
}

export interface RouteReadiness {
  ready: boolean;
  credential: string;
  reason: string;
  expires_on: number | null;
  error?: string;
}

/** /healthz (alive), /readyz (every route has or can get a token), /metrics (Prometheus). */
export function localEndpoints({ routes, tokens, metrics, isDraining }: LocalEndpointsOptions): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const entries = await Promise.all(routes.all.map(async (route) => [route.name, await readiness(route, tokens)] as const));
    const draining = isDraining();
    const ready = !draining && entries.every(([, r]) => r.ready);
    return c.json({ status: draining ? 'draining' : ready ? 'ready' : 'not ready', routes: Object.fromEntries(entries) }, ready ? 200 : 503);
  });
  app.get('/metrics', async (c) => {
    return c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType });
  });
  return app;
}

async function readiness(route: RouteTable['all'][number], tokens: TokenCache): Promise<RouteReadiness> {
  const base = { credential: route.credential.type, reason: route.credentialReason };
  try {
    const token = await tokens.get(route.credential, 'databricks');
    return { ...base, ready: true, expires_on: Number.isFinite(token.expiresOnMs) ? Math.floor(token.expiresOnMs / 1000) : null };
  } catch (err) {
    return { ...base, ready: false, expires_on: null, error: errorMessage(err) };
  }
}
