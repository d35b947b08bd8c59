import type { RouteConfig } from '../../config/types.js';
import type { AccessToken, Credential } from '../credential.js';
import { OAuthError, oidcEndpoints, postTokenForm } from '../databricks-oidc.js';
import { loginFile, readLogin, writeLogin } from '../login-store.js';
import type { CredentialProvider } from './provider.js';

/** The Databricks CLI's public OAuth client, pre-registered in every account (no secret). */
export const U2M_CLIENT_ID = 'databricks-cli';

/**
 * Databricks OAuth user-to-machine from the gateway's own login (`dbx-gateway login NAME`, PKCE):
 * the stored refresh token is exchanged for access tokens (grant_type=refresh_token) and a rotated
 * refresh token is stored again. Read at every fetch, so a new login is used without a restart.
 */
export const databricksU2mProvider: CredentialProvider = {
  type: 'databricks-u2m',
  lookedFor: 'a login stored by dbx-gateway login NAME',
  detect(_spec, ctx) {
    const file = loginFile(ctx.env, ctx.route.upstream, ctx.route.accountId);
    try {
      return file && readLogin(file) ? `a dbx-gateway login is stored for ${ctx.route.upstream.origin}` : undefined;
    } catch {
      return undefined;
    }
  },
  create(_spec, ctx, reason): Credential {
    const route = ctx.route;
    const file = loginFile(ctx.env, route.upstream, route.accountId);
    const login = `dbx-gateway login ${route.name}`;
    return {
      type: 'databricks-u2m',
      id: `databricks-u2m:${route.upstream.origin}:${route.accountId ?? ''}`,
      hint: `run ${login}`,
      reason,
      async getToken(_audience, options): Promise<AccessToken> {
        if (!file) throw new Error('no home directory to read dbx-gateway logins from (set HOME or XDG_CONFIG_HOME; on Windows APPDATA or USERPROFILE)');
        const stored = readLogin(file);
        if (!stored) throw new Error(`nobody has signed in to ${route.upstream.origin} through dbx-gateway yet`);
        const { tokenEndpoint } = await oidcEndpoints(route, options?.signal);
        try {
          const token = await postTokenForm(
            tokenEndpoint,
            { grant_type: 'refresh_token', refresh_token: stored.refreshToken, client_id: stored.clientId },
            { ...(route.caFile ? { caFile: route.caFile } : {}), ...(options?.signal ? { signal: options.signal } : {}) },
          );
          if (token.refreshToken && token.refreshToken !== stored.refreshToken) {
            writeLogin(file, { ...stored, refreshToken: token.refreshToken, savedAt: new Date().toISOString() });
          }
          return { token: token.accessToken, expiresOnMs: token.expiresOnMs };
        } catch (err) {
          if (err instanceof OAuthError && err.code === 'invalid_grant') {
            throw new Error(`the stored sign-in for ${route.upstream.origin} was revoked or has expired (${err.message})`);
          }
          throw err;
        }
      },
    };
  },
};

export function u2mLoginFile(env: NodeJS.ProcessEnv, route: RouteConfig): string | undefined {
  return loginFile(env, route.upstream, route.accountId);
}
