import type { CredentialSpec, RouteConfig } from '../../config/types.js';
import type { AccessToken, Credential } from '../credential.js';
import { oidcEndpoints, postTokenForm } from '../databricks-oidc.js';
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
  return {
    type: options.type,
    id: `${options.type}:${route.upstream.origin}:${route.accountId ?? ''}:${clientId}:${digest(clientSecret)}`,
    hint: options.hint,
    reason: options.reason,
    async getToken(_audience, getOptions): Promise<AccessToken> {
      const { tokenEndpoint } = await oidcEndpoints(route, getOptions?.signal);
      const token = await postTokenForm(
        tokenEndpoint,
        { grant_type: 'client_credentials', scope: 'all-apis' },
        {
          basicAuth: [clientId, clientSecret],
          ...(route.caFile ? { caFile: route.caFile } : {}),
          ...(getOptions?.signal ? { signal: getOptions.signal } : {}),
        },
      );
      return { token: token.accessToken, expiresOnMs: token.expiresOnMs };
    },
  };
}
