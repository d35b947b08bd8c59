import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Demo tokens live an hour, like Entra ID tokens, so the refresh machinery behaves as in real use. */
const DEMO_TOKEN_LIFETIME_S = 3600;
const DEMO_CLIENT = 'demo-client:demo-secret';

export interface DemoWorkspace {
  url: URL;
  close(): Promise<void>;
  /** Stop accepting; requests in flight finish (a reload replaced this demo). */
  retire(): void;
}

const CLUSTERS = [
  {
    cluster_id: '0101-120000-demo1',
    cluster_name: 'shared-autoscaling',
    spark_version: '15.4.x-scala2.12',
    node_type_id: 'Standard_DS3_v2',
    state: 'RUNNING',
    autoscale: { min_workers: 1, max_workers: 4 },
  },
  {
    cluster_id: '0101-120000-demo2',
    cluster_name: 'etl-nightly',
    spark_version: '14.3.x-scala2.12',
    node_type_id: 'Standard_E8ds_v4',
    state: 'TERMINATED',
    num_workers: 8,
  },
];

/**
 * A small fake of the Databricks REST API with its own token endpoint, served on loopback.
 * It lets `npm start` show the whole path (token fetch, header injection, streaming) offline.
 */
export async function startDemoWorkspace(): Promise<DemoWorkspace> {
  const issued = new Map<string, number>();
  const server: Server = createServer((req, res) => handle(req, res, issued));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: new URL(`http://127.0.0.1:${port}`),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    retire: () => {
      server.close();
      server.closeIdleConnections();
    },
  };
}

function handle(req: IncomingMessage, res: ServerResponse, issued: Map<string, number>): void {
  const url = new URL(req.url ?? '/', 'http://demo.invalid');
  if (req.method === 'GET' && url.pathname === '/oidc/.well-known/oauth-authorization-server') {
    const origin = `http://${req.headers.host ?? '127.0.0.1'}`;
    json(res, 200, {
      issuer: `${origin}/oidc`,
      authorization_endpoint: `${origin}/oidc/v1/authorize`,
      token_endpoint: `${origin}/oidc/v1/token`,
    });
    return;
  }
  if (req.method === 'POST' && url.pathname === '/oidc/v1/token') {
    if (req.headers.authorization !== `Basic ${Buffer.from(DEMO_CLIENT).toString('base64')}`) {
      json(res, 401, { error: 'invalid_client', error_description: 'unknown demo client' });
      return;
    }
    const token = `demo.${randomBytes(24).toString('base64url')}`;
    issued.set(token, Date.now() + DEMO_TOKEN_LIFETIME_S * 1000);
    req.resume();
    json(res, 200, { access_token: token, token_type: 'Bearer', expires_in: DEMO_TOKEN_LIFETIME_S });
    return;
  }
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  const expiry = bearer ? issued.get(bearer) : undefined;
  if (!expiry || expiry <= Date.now()) {
    json(res, 401, { error_code: 'UNAUTHENTICATED', message: 'Invalid access token.' });
    return;
  }
  switch (`${req.method} ${url.pathname}`) {
    case 'GET /api/2.0/clusters/list':
      json(res, 200, { clusters: CLUSTERS });
      return;
    case 'GET /api/2.0/clusters/get': {
      const cluster = CLUSTERS.find((c) => c.cluster_id === url.searchParams.get('cluster_id'));
      if (cluster) json(res, 200, cluster);
      else json(res, 400, { error_code: 'INVALID_PARAMETER_VALUE', message: 'Cluster does not exist' });
      return;
    }
    case 'GET /api/2.0/preview/scim/v2/Me':
      json(res, 200, { userName: 'demo.user@example.com', displayName: 'Demo User', active: true });
      return;
    case 'GET /api/2.0/workspace/list':
      json(res, 200, {
        objects: [
          { path: '/Users/demo.user@example.com/quickstart', object_type: 'NOTEBOOK', language: 'PYTHON' },
          { path: '/Shared', object_type: 'DIRECTORY' },
        ],
      });
      return;
    default:
      json(res, 404, {
        error_code: 'ENDPOINT_NOT_FOUND',
        message: `No API found for '${req.method} ${url.pathname}' in the demo workspace; try GET /api/2.0/clusters/list`,
      });
      return;
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
