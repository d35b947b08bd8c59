import { serialize } from 'pg-protocol';
import type { TokenCache } from '../auth/token-cache.js';
import type { PostgresSettings } from '../config/types.js';
import type { Route } from '../routing/route-table.js';
import { databaseCredential, discoverServer, loginUser, serverProxy } from './credential.js';
import { loginUpstream, ServerRefusedError } from './upstream-login.js';
import { MAX_LOGIN_MESSAGE_BYTES, readMessage } from './wire.js';

/** Protocol 3.0 (PostgreSQL docs 55.7, StartupMessage). */
const PROTOCOL_3_0 = 196608;
const PROBE_TIMEOUT_MS = 15_000;

/**
 * doctor's check of a route's Lakebase door, end to end as a client would go: mint (or reuse) the
 * database credential, find the server, log in over TLS and run SELECT 1. Says who it logged in as.
 */
export async function probePostgres(route: Route, settings: PostgresSettings, tokens: TokenCache, connectTimeoutMs: number): Promise<string> {
  const credential = databaseCredential(route, settings, tokens);
  const [password, server, user] = await Promise.all([
    tokens.get(credential, 'databricks'),
    discoverServer(route, settings, tokens),
    loginUser(route, settings, tokens),
  ]);
  const proxy = serverProxy(route, server);
  const started = performance.now();
  const { socket } = await loginUpstream(
    server,
    {
      version: PROTOCOL_3_0,
      params: [
        ['user', user],
        ['database', settings.database],
        ['application_name', 'dbx-gateway doctor'],
      ],
    },
    password.token,
    { ...(route.config.caFile ? { caFile: route.config.caFile } : {}), ...(proxy ? { proxy } : {}), timeoutMs: connectTimeoutMs },
  );
  const timer = setTimeout(() => socket.destroy(new Error(`no answer to SELECT 1 within ${PROBE_TIMEOUT_MS / 1000} s`)), PROBE_TIMEOUT_MS);
  try {
    socket.write(serialize.query('SELECT 1'));
    for (;;) {
      // Large messages are not expected here: SELECT 1's row, parameters, notices.
      const msg = await readMessage(socket, MAX_LOGIN_MESSAGE_BYTES);
      if (msg.type === 'E') throw new ServerRefusedError(new Map([['M', 'SELECT 1 failed']]));
      if (msg.type === 'Z') break;
    }
    socket.end(serialize.end());
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
  return `logged in to ${server.host}:${server.port} as ${user}, database ${settings.database}; SELECT 1 in ${Math.round(performance.now() - started)} ms`;
}
