import type { IncomingMessage, ServerResponse } from 'node:http';
import { makeJwt } from './fake-databricks-oidc.js';
import { type FakeUpstream, startFakeUpstream } from './fake-upstream.js';

export interface IdpCall {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization: string | undefined;
}

export interface FakeIdp {
  upstream: FakeUpstream;
  calls: IdpCall[];
  /** ACTIONS_ID_TOKEN_REQUEST_URL as a GitHub runner sets it (with ?api-version=). */
  githubRequestUrl: string;
  /** SYSTEM_* variables as an Azure Pipelines job sets them. */
  azureDevopsEnv: Record<string, string>;
  /** JWTs issued so far, to assert they never reach output. */
  issued: string[];
  close(): Promise<void>;
}

export const GITHUB_REQUEST_TOKEN = 'ghs_requesttoken0123456789abcdefghijklmnop';
export const AZURE_DEVOPS_ACCESS_TOKEN = 'adoaccesstoken0123456789abcdefghijklmnopqrst';
export const AZURE_DEVOPS_AUDIENCE = 'api://AzureADTokenExchange';

/**
 * The GitHub Actions ID token endpoint and Azure DevOps' oidctoken endpoint over plain HTTP on
 * 127.0.0.1 (as real HTTP servers): GitHub answers GET ...&audience=A with {"value": JWT aud A},
 * Azure DevOps answers POST .../oidctoken?api-version=7.2-preview.1 with {"oidcToken": JWT aud
 * api://AzureADTokenExchange}; both check their bearer token.
 */
export async function startFakeIdp(options: { lifetimeSeconds?: number } = {}): Promise<FakeIdp> {
  const calls: IdpCall[] = [];
  const issued: string[] = [];
  const ado = { project: 'proj-1', hub: 'build', plan: 'plan-2', job: 'job-3' };
  const mint = (aud: string, sub: string) => {
    const jwt = makeJwt({ iss: 'https://idp.test', sub, aud, exp: Math.floor(Date.now() / 1000) + (options.lifetimeSeconds ?? 300) });
    issued.push(jwt);
    return jwt;
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://idp');
    calls.push({ method: req.method ?? '', path: url.pathname, query: Object.fromEntries(url.searchParams), authorization: req.headers.authorization });
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    req.resume();
    req.on('end', () => {
      if (url.pathname === '/github/idtoken' && req.method === 'GET') {
        if (req.headers.authorization !== `Bearer ${GITHUB_REQUEST_TOKEN}`) return json(401, { message: 'bad request token' });
        if (url.searchParams.get('api-version') !== '2.0' || !url.searchParams.get('audience')) return json(400, { message: 'audience required' });
        return json(200, { count: 1, value: mint(url.searchParams.get('audience')!, 'repo:org/repo:ref:refs/heads/main') });
      }
      const adoPath = `/org/${ado.project}/_apis/distributedtask/hubs/${ado.hub}/plans/${ado.plan}/jobs/${ado.job}/oidctoken`;
      if (url.pathname === adoPath && req.method === 'POST') {
        if (req.headers.authorization !== `Bearer ${AZURE_DEVOPS_ACCESS_TOKEN}`) return json(401, { message: 'bad access token' });
        if (url.searchParams.get('api-version') !== '7.2-preview.1') return json(400, { message: 'api-version' });
        return json(200, { oidcToken: mint(AZURE_DEVOPS_AUDIENCE, 'p://org/proj/pipeline') });
      }
      json(404, { message: `no route ${url.pathname}` });
    });
  };
  const upstream = await startFakeUpstream(handler, { tls: false });
  const origin = upstream.url.origin;
  return {
    upstream,
    calls,
    issued,
    githubRequestUrl: `${origin}/github/idtoken?api-version=2.0`,
    azureDevopsEnv: {
      SYSTEM_ACCESSTOKEN: AZURE_DEVOPS_ACCESS_TOKEN,
      SYSTEM_TEAMFOUNDATIONCOLLECTIONURI: `${origin}/org/`,
      SYSTEM_TEAMPROJECTID: ado.project,
      SYSTEM_HOSTTYPE: ado.hub,
      SYSTEM_PLANID: ado.plan,
      SYSTEM_JOBID: ado.job,
    },
    close: () => upstream.close(),
  };
}
