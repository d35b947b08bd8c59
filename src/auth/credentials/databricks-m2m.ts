import type { CredentialSpec, RouteConfig } from '../../config/types.js';
import type { AccessToken, Credential } from '../credential.js';
import { requestJson } from '../https-json.js';
import { type CredentialContext, type CredentialProvider, digest, setting } from './provider.js';

function read(spec: CredentialSpec, ctx: CredentialContext) {
  return {
    clientId: setting(spec, 'clientId', ctx, 'DATABRICKS_CLIENT_ID'),
    clientSecret: setting(spec, 'clientSecret', ctx, 'DATABRICKS_CLIENT_SECRET'),
  };
}

/**
 * Databricks OAuth machine-to-machine (client credentials) for a Databricks service principal.
 * Workspace: the token endpoint comes from {host}/oidc/.well-known/oauth-authorization-server;
 * account: {host}/oidc/accounts/{account_id}/v1/token. POST with the client id and secret in HTTP
 * Basic, grant_type=client_credentials, scope=all-apis; expiry from expires_in (Databricks Go SDK
 * config/auth_m2m.go, Python SDK oauth.py).
 */
export const databricksM2mProvider: CredentialProvider = {
  type: 'databricks-m2m',
  lookedFor: 'clientId and clientSecret (DATABRICKS_CLIENT_ID, DATABRICKS_CLIENT_SECRET)',
  detect(spec, ctx) {
    const s = read(spec, ctx);
    return s.clientId && s.clientSecret ? 'a Databricks OAuth client id and secret are configured' : undefined;
  },
  create(spec, ctx, reason): Credential {
    const { clientId, clientSecret } = read(spec, ctx);
    if (!clientId || !clientSecret) {
      throw new Error(
        `databricks-m2m needs ${[!clientId && 'clientId (DATABRICKS_CLIENT_ID)', !clientSecret && 'clientSecret (DATABRICKS_CLIENT_SECRET)'].filter(Boolean).join(' and ')}`,
      );
    }
    return databricksClientCredentials({
      type: 'databricks-m2m',
      route: ctx.route,
      clientId,
      clientSecret,
      reason,
      hint: `check the service principal's OAuth client id and secret (clientId/clientSecret or DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET); a secret can be expired or deleted: create a new one in the account console`,
    });
  },
};

export interface ClientCredentialsOptions {
  type: string;
  route: RouteConfig;
  clientId: string;
  clientSecret: string;
  reason: string;
  hint: string;
}

/** The client-credentials flow against a Databricks host (also used by the built-in demo workspace). */
export function databricksClientCredentials(options: ClientCredentialsOptions): Credential {
  const { route, clientId, clientSecret } = options;
  const caFile = route.caFile;
  let tokenEndpoint: Promise<URL> | undefined;

  const discover = async (signal?: AbortSignal): Promise<URL> => {
    if (route.kind === 'account') {
      if (!route.accountId) throw new Error(`account route ${route.name} has no accountId`);
      return new URL(`/oidc/accounts/${encodeURIComponent(route.accountId)}/v1/token`, route.upstream);
    }
    const wellKnown = new URL('/oidc/.well-known/oauth-authorization-server', route.upstream);
    const res = await requestJson(wellKnown, { ...(caFile ? { caFile } : {}), ...(signal ? { signal } : {}) });
    const endpoint = (res.body as { token_endpoint?: unknown } | undefined)?.token_endpoint;
    if (res.status !== 200 || typeof endpoint !== 'string') {
      throw new Error(`OAuth discovery at ${wellKnown.href} answered ${res.status} without a token_endpoint; is ${route.upstream.origin} a Databricks workspace URL?`);
    }
    const url = new URL(endpoint);
    // The client secret goes only to the route's own host, whatever discovery says.
    if (url.origin !== route.upstream.origin) {
      throw new Error(`OAuth discovery at ${wellKnown.href} named a token endpoint on another host (${url.origin}); refusing to send the client secret there`);
    }
    return url;
  };

  return {
    type: options.type,
    id: `${options.type}:${route.upstream.origin}:${route.accountId ?? ''}:${clientId}:${digest(clientSecret)}`,
    hint: options.hint,
    reason: options.reason,
    async getToken(_audience, getOptions): Promise<AccessToken> {
      tokenEndpoint ??= discover(getOptions?.signal);
      let url: URL;
      try {
        url = await tokenEndpoint;
      } catch (err) {
        tokenEndpoint = undefined; // retry discovery next time
        throw err;
      }
      const obtainedAt = Date.now();
      const res = await requestJson(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
        },
        body: 'grant_type=client_credentials&scope=all-apis',
        ...(caFile ? { caFile } : {}),
        ...(getOptions?.signal ? { signal: getOptions.signal } : {}),
      });
      const body = res.body as { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown } | undefined;
      if (res.status !== 200 || typeof body?.access_token !== 'string') {
        const detail = body?.error
          ? `${String(body.error)}${body.error_description ? `: ${String(body.error_description)}` : ''}`
          : res.text || 'no body';
        throw new Error(`Databricks OAuth token endpoint ${url.origin}${url.pathname} answered ${res.status} (${detail})`);
      }
      const expiresIn = Number(body.expires_in);
      return { token: body.access_token, expiresOnMs: obtainedAt + (Number.isFinite(expiresIn) ? expiresIn : 3600) * 1000 };
    },
  };
}
