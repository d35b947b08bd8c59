import { readFile } from 'node:fs/promises';
import type { CredentialSpec } from '../../config/types.js';
import { errorMessage } from '../../errors.js';
import { isLoopbackHost } from '../../security/loopback.js';
import type { AccessToken, Credential } from '../credential.js';
import { oidcEndpoints, postTokenForm } from '../databricks-oidc.js';
import { requestJson } from '../https-json.js';
import { type CredentialContext, type CredentialProvider, digest, setting } from './provider.js';

/**
 * Databricks token federation: a JWT from a trusted identity provider exchanged for a Databricks
 * token (RFC 8693) at the route's token endpoint, as the Databricks SDKs do it (Go SDK
 * config/auth_oidc.go and config/experimental/auth/oidc/*.go; Python SDK credentials_provider.py
 * and oidc_token_supplier.py). Four sources of the JWT, one exchange.
 */

const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const SUBJECT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const DEFAULT_TOKEN_ENV = 'DATABRICKS_OIDC_TOKEN';
/** Azure DevOps' OIDC token API (Go SDK oidc/azuredevops.go, Python SDK oidc_token_supplier.py). */
const AZURE_DEVOPS_API_VERSION = '7.2-preview.1';
const AZURE_DEVOPS_VARIABLES = ['SYSTEM_TEAMFOUNDATIONCOLLECTIONURI', 'SYSTEM_TEAMPROJECTID', 'SYSTEM_HOSTTYPE', 'SYSTEM_PLANID', 'SYSTEM_JOBID'] as const;
const FEDERATION_POLICY_FIX = `the service principal's (or the account's) federation policy must accept its issuer, subject and audience (README "Token federation")`;

/** Where the JWT comes from: read afresh at every exchange (projected and CI tokens rotate). */
interface SubjectSource {
  /** e.g. "the file /var/run/...": names the source, never its content. */
  readonly what: string;
  /** What to do when its token is missing, unreadable or expired. */
  readonly fix: string;
  /** Identity part of the credential id (no secret). */
  readonly key: string;
  read(audience: string, signal?: AbortSignal): Promise<string>;
}

function common(spec: CredentialSpec, ctx: CredentialContext) {
  return {
    clientId: setting(spec, 'clientId', ctx, 'DATABRICKS_CLIENT_ID'),
    audience: setting(spec, 'audience', ctx, 'DATABRICKS_TOKEN_AUDIENCE'),
  };
}

function withClientId(clientId: string | undefined): string {
  return clientId ? `service principal ${clientId} (workload identity federation)` : 'account-wide token federation';
}

/** The exchange shared by the four types. */
function federatedCredential(type: string, spec: CredentialSpec, ctx: CredentialContext, reason: string, source: SubjectSource): Credential {
  const { route } = ctx;
  const { clientId, audience: configuredAudience } = common(spec, ctx);
  return {
    type,
    id: `${type}:${route.upstream.origin}:${route.accountId ?? ''}:${clientId ?? ''}:${configuredAudience ?? ''}:${source.key}`,
    hint: `${source.fix}; ${FEDERATION_POLICY_FIX}`,
    reason: `${reason} (${withClientId(clientId)})`,
    async getToken(_audience, options): Promise<AccessToken> {
      const signal = options?.signal;
      const { tokenEndpoint } = await oidcEndpoints(route, signal);
      // Go SDK oidc/tokensource.go determineAudience: the configured audience, else the account id
      // for an account, else the workspace's token endpoint.
      const audience = configuredAudience ?? (route.kind === 'account' && route.accountId ? route.accountId : tokenEndpoint.href);
      const jwt = await source.read(audience, signal);
      const expMs = subjectExpiry(jwt, source);
      try {
        const token = await postTokenForm(
          tokenEndpoint,
          {
            grant_type: GRANT_TYPE,
            subject_token: jwt,
            subject_token_type: SUBJECT_TOKEN_TYPE,
            scope: 'all-apis',
            ...(clientId ? { client_id: clientId } : {}),
          },
          {
            ...(route.caFile ? { caFile: route.caFile } : {}),
            ...(signal ? { signal } : {}),
            ...(expMs !== undefined ? { defaultExpiresOnMs: expMs } : {}),
          },
        );
        return { token: token.accessToken, expiresOnMs: token.expiresOnMs };
      } catch (err) {
        throw new Error(without(`token exchange of the OIDC token from ${source.what} failed: ${errorMessage(err)}`, jwt), { cause: err });
      }
    },
  };
}

/**
 * The JWT's exp in epoch ms (undefined when it has none), read without verifying it: Databricks
 * verifies it; the gateway only turns an expired or malformed token into an error with a fix
 * instead of an opaque invalid_grant.
 */
export function subjectExpiry(jwt: string, source: Pick<SubjectSource, 'what' | 'fix'>): number | undefined {
  const parts = jwt.split('.');
  let claims: unknown;
  try {
    if (parts.length !== 3) throw new Error('not three parts');
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    throw new Error(`the OIDC token from ${source.what} is not a JWT (header.payload.signature, base64url); ${source.fix}`);
  }
  if (typeof claims !== 'object' || claims === null) {
    throw new Error(`the OIDC token from ${source.what} is not a JWT (its payload is not a JSON object); ${source.fix}`);
  }
  const exp = (claims as { exp?: unknown }).exp;
  if (typeof exp !== 'number') return undefined;
  const expMs = exp * 1000;
  if (expMs <= Date.now()) {
    throw new Error(`the OIDC token from ${source.what} expired at ${new Date(expMs).toISOString()}; ${source.fix}`);
  }
  return expMs;
}

/** A message with the given secrets cut out (an IdP or a token endpoint may echo them). */
function without(text: string, ...secrets: Array<string | undefined>): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('[REDACTED]');
  return out;
}

/** A bearer token goes to https, or to http only on this machine (tests, local IdPs). */
function checkIdpUrl(text: string, variable: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`${variable} is not a URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw new Error(`${variable} must be an https URL (got ${url.protocol}//${url.host}); refusing to send its bearer token there`);
  }
  return url;
}

async function fetchIdpToken(
  url: URL,
  what: string,
  init: { method: 'GET' | 'POST'; bearer: string; field: string; signal: AbortSignal | undefined; body?: string },
): Promise<string> {
  const shown = `${url.origin}${url.pathname}`;
  let res: Awaited<ReturnType<typeof requestJson>>;
  try {
    res = await requestJson(url, {
      method: init.method,
      headers: { authorization: `Bearer ${init.bearer}`, ...(init.method === 'POST' ? { 'content-type': 'application/json' } : {}) },
      ...(init.body !== undefined ? { body: init.body } : {}),
      ...(init.signal ? { signal: init.signal } : {}),
    });
  } catch (err) {
    throw new Error(without(`could not reach ${what} at ${shown}: ${errorMessage(err)}`, init.bearer), { cause: err });
  }
  const value = (res.body as Record<string, unknown> | undefined)?.[init.field];
  if (res.status !== 200 || typeof value !== 'string' || value === '') {
    const detail = res.status === 200 ? `no "${init.field}" in the answer` : `answered ${res.status}`;
    throw new Error(`${what} at ${shown} ${detail}`);
  }
  return value.trim();
}

export const envOidcProvider: CredentialProvider = {
  type: 'env-oidc',
  lookedFor: `an OIDC token in ${DEFAULT_TOKEN_ENV} (or the variable named by DATABRICKS_OIDC_TOKEN_ENV)`,
  detect(spec, ctx) {
    const name = tokenEnvName(spec, ctx);
    return ctx.env[name] ? `an OIDC token is in ${name}` : undefined;
  },
  create(spec, ctx, reason) {
    const name = tokenEnvName(spec, ctx);
    const fix = `put a current OIDC token (a JWT) from your identity provider in ${name}`;
    return federatedCredential('env-oidc', spec, ctx, reason, {
      what: `the variable ${name}`,
      fix,
      key: name,
      async read() {
        const value = ctx.env[name]?.trim();
        if (!value) throw new Error(`${name} is not set or empty; ${fix}`);
        return value;
      },
    });
  },
};

function tokenEnvName(spec: CredentialSpec, ctx: CredentialContext): string {
  return setting(spec, 'oidcTokenEnv', ctx, 'DATABRICKS_OIDC_TOKEN_ENV') ?? DEFAULT_TOKEN_ENV;
}

export const fileOidcProvider: CredentialProvider = {
  type: 'file-oidc',
  lookedFor: 'DATABRICKS_OIDC_TOKEN_FILEPATH',
  detect(spec, ctx) {
    const path = tokenFilePath(spec, ctx);
    return path ? `an OIDC token file is configured (${path})` : undefined;
  },
  create(spec, ctx, reason) {
    const path = tokenFilePath(spec, ctx);
    if (!path) throw new Error('file-oidc needs oidcTokenFilePath (DATABRICKS_OIDC_TOKEN_FILEPATH)');
    const fix = `make ${path} hold a current OIDC token (a Kubernetes projected service-account token is rewritten by the kubelet: check the pod's serviceAccountToken volume)`;
    return federatedCredential('file-oidc', spec, ctx, reason, {
      what: `the file ${path}`,
      fix,
      key: path,
      async read() {
        let text: string;
        try {
          text = await readFile(path, 'utf8');
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          throw new Error(`cannot read the OIDC token file ${path} (${code === 'ENOENT' ? 'it does not exist' : (code ?? errorMessage(err))}); ${fix}`);
        }
        const token = text.trim();
        if (!token) throw new Error(`the OIDC token file ${path} is empty; ${fix}`);
        return token;
      },
    });
  },
};

function tokenFilePath(spec: CredentialSpec, ctx: CredentialContext): string | undefined {
  // DATABRICKS_OIDC_TOKEN_FILE: the Python SDK's older name, still read there.
  return setting(spec, 'oidcTokenFilePath', ctx, 'DATABRICKS_OIDC_TOKEN_FILEPATH', 'DATABRICKS_OIDC_TOKEN_FILE');
}

/**
 * GitHub Actions: GET ACTIONS_ID_TOKEN_REQUEST_URL&audience=... with ACTIONS_ID_TOKEN_REQUEST_TOKEN
 * as bearer, answer {"value": JWT}. Both variables exist in a job with `permissions: id-token: write`;
 * they are the runner's, not a principal's, so they come from the environment whatever the spec says.
 */
export const githubOidcProvider: CredentialProvider = {
  type: 'github-oidc',
  lookedFor: 'ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN with DATABRICKS_CLIENT_ID',
  detect(spec, ctx) {
    // As the Python SDK: the chain takes GitHub OIDC only for a named service principal; account-wide
    // federation from a GitHub job is named explicitly (credential: github-oidc).
    return ctx.env.ACTIONS_ID_TOKEN_REQUEST_URL && ctx.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN && common(spec, ctx).clientId
      ? 'a GitHub Actions OIDC token can be requested (ACTIONS_ID_TOKEN_REQUEST_URL)'
      : undefined;
  },
  create(spec, ctx, reason) {
    const requestUrl = ctx.env.ACTIONS_ID_TOKEN_REQUEST_URL;
    const requestToken = ctx.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
    if (!requestUrl || !requestToken) {
      throw new Error('github-oidc needs ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN: give the job `permissions: id-token: write`');
    }
    const base = checkIdpUrl(requestUrl, 'ACTIONS_ID_TOKEN_REQUEST_URL');
    return federatedCredential('github-oidc', spec, ctx, reason, {
      what: 'GitHub Actions',
      fix: 'run in a GitHub Actions job with `permissions: id-token: write`',
      key: digest(base.href),
      read(audience, signal) {
        // The SDKs append "&audience=" to the URL as given (it already has ?api-version=).
        const url = new URL(`${base.href}${base.search ? '&' : '?'}audience=${encodeURIComponent(audience)}`);
        return fetchIdpToken(url, 'the GitHub Actions ID token endpoint', { method: 'GET', bearer: requestToken, field: 'value', signal });
      },
    });
  },
};

/**
 * Azure DevOps pipelines: POST {SYSTEM_TEAMFOUNDATIONCOLLECTIONURI}{SYSTEM_TEAMPROJECTID}/_apis/
 * distributedtask/hubs/{SYSTEM_HOSTTYPE}/plans/{SYSTEM_PLANID}/jobs/{SYSTEM_JOBID}/oidctoken
 * ?api-version=7.2-preview.1 with SYSTEM_ACCESSTOKEN as bearer, answer {"oidcToken": JWT}. Its
 * audience is always api://AzureADTokenExchange (the requested one is ignored, as in the SDKs).
 */
export const azureDevopsOidcProvider: CredentialProvider = {
  type: 'azure-devops-oidc',
  lookedFor: 'SYSTEM_ACCESSTOKEN and the pipeline variables (SYSTEM_TEAMFOUNDATIONCOLLECTIONURI, ...) with DATABRICKS_CLIENT_ID',
  detect(spec, ctx) {
    return ctx.env.SYSTEM_ACCESSTOKEN && AZURE_DEVOPS_VARIABLES.every((v) => ctx.env[v]) && common(spec, ctx).clientId
      ? 'an Azure DevOps pipeline OIDC token can be requested (SYSTEM_ACCESSTOKEN)'
      : undefined;
  },
  create(spec, ctx, reason) {
    const accessToken = ctx.env.SYSTEM_ACCESSTOKEN;
    if (!accessToken) {
      throw new Error('azure-devops-oidc needs SYSTEM_ACCESSTOKEN: map it in the pipeline step (env: SYSTEM_ACCESSTOKEN: $(System.AccessToken))');
    }
    const missing = AZURE_DEVOPS_VARIABLES.filter((v) => !ctx.env[v]);
    if (missing.length > 0) throw new Error(`azure-devops-oidc needs ${missing.join(', ')} (set by Azure Pipelines): run it in a pipeline job`);
    const e = ctx.env as Record<(typeof AZURE_DEVOPS_VARIABLES)[number], string>;
    // The collection URI ends with "/" (https://dev.azure.com/org/); the Python SDK appends the
    // project directly, the Go SDK adds a "/": one slash either way.
    const collection = e.SYSTEM_TEAMFOUNDATIONCOLLECTIONURI.replace(/\/*$/, '/');
    const path = [e.SYSTEM_TEAMPROJECTID, '_apis/distributedtask/hubs', e.SYSTEM_HOSTTYPE, 'plans', e.SYSTEM_PLANID, 'jobs', e.SYSTEM_JOBID, 'oidctoken']
      .map((p, i) => (i === 1 ? p : encodeURIComponent(p)))
      .join('/');
    const url = checkIdpUrl(`${collection}${path}?api-version=${AZURE_DEVOPS_API_VERSION}`, 'SYSTEM_TEAMFOUNDATIONCOLLECTIONURI');
    return federatedCredential('azure-devops-oidc', spec, ctx, reason, {
      what: 'Azure DevOps',
      fix: 'run in an Azure Pipelines job that maps SYSTEM_ACCESSTOKEN ($(System.AccessToken))',
      key: digest(url.href),
      read(_audience, signal) {
        return fetchIdpToken(url, 'the Azure DevOps OIDC token endpoint', { method: 'POST', bearer: accessToken, field: 'oidcToken', signal, body: '' });
      },
    });
  },
};
