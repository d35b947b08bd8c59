import { createHash } from 'node:crypto';
import type { Credential } from '../credential.js';
import { type CredentialProvider, setting } from './provider.js';

/** A Databricks personal access token: static, never refreshed. */
export const patProvider: CredentialProvider = {
  type: 'pat',
  lookedFor: 'token (DATABRICKS_TOKEN)',
  detect(spec, ctx) {
    if (typeof spec.token === 'string' && spec.token !== '') return spec.profile ? 'the profile has a token' : 'token is set in the config';
    return setting(spec, 'token', ctx, 'DATABRICKS_TOKEN') ? 'DATABRICKS_TOKEN is set' : undefined;
  },
  create(spec, ctx, reason): Credential {
    const token = setting(spec, 'token', ctx, 'DATABRICKS_TOKEN');
    return {
      type: 'pat',
      id: `pat:${token ? createHash('sha256').update(token).digest('hex').slice(0, 16) : 'missing'}`,
      hint: 'set credential.token (or DATABRICKS_TOKEN) to a valid personal access token',
      reason,
      async getToken() {
        if (!token) throw new Error('no personal access token is configured (token or DATABRICKS_TOKEN)');
        return { token, expiresOnMs: Number.POSITIVE_INFINITY };
      },
    };
  },
};
