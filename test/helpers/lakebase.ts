import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayConfig, PostgresSettings } from '../../src/config/types.js';
import { type FakeUpstream, startFakeUpstream } from './fake-upstream.js';
import { startTestGateway, TEST_PAT, type TestGateway } from './gateway.js';
import { ident, literal, type TestPostgres } from './postgres.js';
import { testPki } from './tls.js';

// A fake workspace for the Lakebase door: it mints database credentials (setting the role's
// password to each new one on a real server, so only the newest logs in), tells the endpoint's
// host and who the identity is, as the Lakebase and SCIM APIs do.

export const LAKEBASE_USER = 'dana@contoso.com';
export const ENDPOINT = 'projects/p1/branches/main/endpoints/ep1';
export const INSTANCE = 'lake-instance';

export interface FakeWorkspace {
  upstream: FakeUpstream;
  mints: number;
  /** The next mint fails with this status (then minting works again). */
  failNext?: number;
  lastCredential?: string;
}

export interface FakeWorkspaceOptions {
  userName?: string;
  /** How the role's password is stored: scram-sha-256 (the default) or md5. */
  encryption?: 'scram-sha-256' | 'md5';
  /** How long each minted credential lives (an hour by default, as Lakebase's do). */
  lifetimeMs?: number;
}

export async function startFakeWorkspace(server: TestPostgres, options: FakeWorkspaceOptions = {}): Promise<FakeWorkspace> {
  const state: FakeWorkspace = { upstream: undefined as unknown as FakeUpstream, mints: 0 };
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.authorization !== `Bearer ${TEST_PAT}`) return json(res, 401, { error_code: 'UNAUTHENTICATED', message: 'bad token' });
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      void (async () => {
        const autoscaling = req.method === 'POST' && req.url === '/api/2.0/postgres/credentials';
        const provisioned = req.method === 'POST' && req.url === '/api/2.0/database/credentials';
        if (autoscaling || provisioned) {
          const asked = JSON.parse(body) as { endpoint?: string; instance_names?: string[]; request_id?: string };
          if (autoscaling && asked.endpoint !== ENDPOINT) return json(res, 404, { error_code: 'NOT_FOUND', message: 'no such endpoint' });
          if (provisioned && (asked.instance_names?.[0] !== INSTANCE || !asked.request_id))
            return json(res, 404, { error_code: 'NOT_FOUND', message: 'no such instance' });
          if (state.failNext) {
            const status = state.failNext;
            delete state.failNext;
            return json(res, status, { error_code: 'PERMISSION_DENIED', message: 'no access to the endpoint' });
          }
          state.mints++;
          const token = `eyJlake.${randomBytes(24).toString('base64url')}`;
          await server.query(
            `SET password_encryption = ${literal(options.encryption ?? 'scram-sha-256')}; ALTER ROLE ${ident(options.userName ?? LAKEBASE_USER)} PASSWORD ${literal(token)}`,
          );
          state.lastCredential = token;
          const expiry = new Date(Date.now() + (options.lifetimeMs ?? 3600_000)).toISOString();
          return json(res, 200, autoscaling ? { token, expire_time: expiry } : { token, expiration_time: expiry });
        }
        if (req.method === 'GET' && req.url === `/api/2.0/postgres/${ENDPOINT}`) {
          return json(res, 200, { name: ENDPOINT, status: { hosts: { host: `${'localhost'}:${server.port}` } } });
        }
        if (req.method === 'GET' && req.url === `/api/2.0/database/instances/${INSTANCE}`) {
          return json(res, 200, { name: INSTANCE, state: 'AVAILABLE', read_write_dns: `localhost:${server.port}` });
        }
        if (req.method === 'GET' && req.url === '/api/2.0/preview/scim/v2/Me') return json(res, 200, { userName: options.userName ?? LAKEBASE_USER });
        json(res, 404, { error_code: 'NOT_FOUND', message: req.url });
      })();
    });
  };
  state.upstream = await startFakeUpstream(handler);
  return state;
}

export function lakebaseGateway(
  workspace: FakeWorkspace,
  settings: Partial<PostgresSettings> = {},
  configure?: (c: GatewayConfig) => void,
  now?: () => number,
): Promise<TestGateway> {
  return startTestGateway({
    ...(now ? { now } : {}),
    flags: { workspace: [`prod=${workspace.upstream.url.origin}`], credential: 'pat' },
    env: { DATABRICKS_TOKEN: TEST_PAT },
    configure: (config) => {
      for (const r of config.routes) {
        r.caFile = testPki().caFile;
        r.postgres = { port: 0, ...(settings.instance ? {} : { endpoint: ENDPOINT }), database: 'databricks_postgres', ...settings };
      }
      configure?.(config);
    },
  });
}
