import type { Credential } from '../credential.js';
import type { CredentialProvider } from './provider.js';

/**
 * The built-in demo workspace's own token source: client credentials against its
 * /oidc/v1/token endpoint, the same shape as Databricks OAuth M2M.
 */
export const demoProvider: CredentialProvider = {
  type: 'demo',
  detect: () => undefined,
  create(_spec, ctx, reason): Credential {
    const tokenUrl = new URL('/oidc/v1/token', ctx.route.upstream);
    return {
      type: 'demo',
      id: `demo:${tokenUrl.origin}`,
      hint: 'restart dbx-gateway (the demo workspace is built in)',
      reason,
      async getToken(_audience, options) {
        const res = await fetch(tokenUrl, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from('demo-client:demo-secret').toString('base64')}`,
          },
          body: 'grant_type=client_credentials&scope=all-apis',
          ...(options?.signal ? { signal: options.signal } : {}),
        });
        if (!res.ok) throw new Error(`demo token endpoint answered ${res.status}`);
        const body = (await res.json()) as { access_token: string; expires_in: number };
        return { token: body.access_token, expiresOnMs: Date.now() + body.expires_in * 1000 };
      },
    };
  },
};
