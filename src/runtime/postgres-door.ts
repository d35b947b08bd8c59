import type { GatewayConfig } from '../config/types.js';
import { databaseCredential, discoverServer, loginUser, serverProxy } from '../postgres/credential.js';
import type { PostgresDoor } from '../postgres/session.js';
import type { Route } from '../routing/route-table.js';
import type { Admission } from '../security/admission.js';
import type { GatewayCore } from './core.js';

// The Lakebase door of a generation, in its own module: generation.ts imports it only when a
// route has `postgres`.

/**
 * A route's Lakebase door for this generation: its database credential, and the server address
 * and login role, each found once (a failure is not kept: the next session asks again).
 */
export function postgresDoor(
  route: Route,
  settings: NonNullable<Route['config']['postgres']>,
  core: GatewayCore,
  admission: Admission,
  config: GatewayConfig,
): PostgresDoor {
  const { tokens } = core;
  const once = <T>(work: () => Promise<T>) => {
    let pending: Promise<T> | undefined;
    return () => {
      pending ??= work().catch((err: unknown) => {
        pending = undefined;
        throw err;
      });
      return pending;
    };
  };
  return {
    route,
    settings,
    tokens,
    credential: databaseCredential(route, settings, tokens),
    ...(admission.authenticate ? { authenticate: admission.authenticate } : {}),
    proxyFor: (address) => serverProxy(route, address),
    connectTimeoutMs: config.timeouts.connectMs,
    server: once(() => discoverServer(route, settings, tokens)),
    user: once(() => loginUser(route, settings, tokens)),
  };
}
