import type { HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import type { TokenCache } from '../auth/token-cache.js';
import { GatewayError } from '../errors.js';
import type { RouteTable } from '../routing/route-table.js';
import { CONTROL_HEADER, CONTROL_PROOF_HEADER, proveControlAnswer, verifyControlRequest } from '../security/control-proof.js';
import type { StatusData } from './status-page.js';

export { CONTROL_HEADER } from '../security/control-proof.js';

import { tokenJson } from './token-json.js';

export interface ReloadResult {
  ok: boolean;
  /** What a reload cannot change, or why it was refused. */
  notes: string[];
  routes: string[];
}

/**
 * What `dbx-gateway env` needs beyond the status page's data (control answers only: the metadata
 * path holds that service's secret, no more secret than the tokens /-/token hands to the same caller).
 */
export interface ClientSetup {
  /** The address every listener binds (per-route, Spark Connect and Postgres ports). */
  listen_host: string;
  inbound_keys: boolean;
  /** /metadata/SECRET and the routes it serves; absent when off, or with inbound keys (the key is the secret then). */
  metadata_service?: { path: string; routes: string[] };
  account_ids: Record<string, string>;
}

export interface ControlOptions {
  secret: string;
  /** Re-reads the configuration the gateway was started with and applies it (as SIGHUP does). */
  reload(): Promise<ReloadResult>;
  routes: () => RouteTable;
  tokens: TokenCache;
  /** Problems that did not stop the gateway (skipped profiles), for doctor. */
  warnings: () => string[];
  /** The status page's data, for `dbx-gateway status`. */
  status: () => StatusData;
  /** doctor's checks of the routes this gateway serves, run from inside it (its tokens, pools and proxies). */
  doctor: () => Promise<{ ok: boolean; text: string }>;
  clientSetup?: () => ClientSetup;
}

/**
 * Control endpoints under /-/ on the main listener (README, "Use it from the Databricks SDKs and
 * CLI"): never proxied, refused to browsers like every local endpoint (and to any request
 * with an Origin), and answered only to a request that proves the run file's control secret, with
 * a proof of the same secret on the answer (security/control-proof.ts): the secret never travels.
 *   POST /-/reload        reload the configuration (where there is no SIGHUP: Windows)
 *   GET  /-/token/NAME    the token the gateway holds for route NAME (no second az call)
 *   GET  /-/doctor        doctor's checks of the routes this gateway serves
 *   GET  /-/status        the status page's data, with the process's pid (dbx-gateway status)
 *                         and the client setup (dbx-gateway env)
 */
export function controlEndpoints(options: ControlOptions): Hono<{ Bindings: HttpBindings }> {
  const app = new Hono<{ Bindings: HttpBindings }>();
  app.use('/-/*', async function requireControlSecret(c, next) {
    if (c.env.incoming.headers.origin !== undefined) {
      throw new GatewayError('GATEWAY_FORBIDDEN', 'control endpoints do not answer browsers');
    }
    const { incoming } = c.env;
    const nonce = verifyControlRequest(options.secret, c.req.header(CONTROL_HEADER), incoming.method ?? '', incoming.url ?? '');
    if (nonce === undefined) {
      throw new GatewayError(
        'GATEWAY_UNAUTHENTICATED',
        `control endpoints need a proof of the gateway's run file secret in ${CONTROL_HEADER}; use the dbx-gateway commands (token, reload)`,
      );
    }
    await next();
    // Errors of the handler (404 for an unknown route) are answers too: app.onError has set c.res.
    const body = new Uint8Array(await c.res.clone().arrayBuffer());
    c.res.headers.set(CONTROL_PROOF_HEADER, proveControlAnswer(options.secret, nonce, c.res.status, body));
  });
  app.post('/-/reload', async (c) => {
    const result = await options.reload();
    return c.json(result, result.ok ? 200 : 409, { 'cache-control': 'no-store' });
  });
  app.get('/-/doctor', async (c) => {
    const { ok, text } = await options.doctor();
    return c.json({ ok, text, warnings: options.warnings() }, 200, { 'cache-control': 'no-store' });
  });
  app.get('/-/status', (c) =>
    c.json({ ...options.status(), pid: process.pid, ...(options.clientSetup ? { client_setup: options.clientSetup() } : {}) }, 200, {
      'cache-control': 'no-store',
    }),
  );
  app.get('/-/token/:name', async (c) => {
    const name = c.req.param('name');
    const route = options.routes().all.find((r) => r.name === name);
    if (!route) throw options.routes().notFound(`/ws/${name}`);
    const token = await options.tokens.get(route.credential, 'databricks');
    return c.json(tokenJson(token, route.target, route.config.accountId), 200, { 'cache-control': 'no-store' });
  });
  return app;
}
