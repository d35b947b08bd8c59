import type { AccessToken } from '../auth/credential.js';

/** A route's token as `/-/token/NAME` answers it and `dbx-gateway token NAME` prints it. */
export interface TokenJson {
  access_token: string;
  token_type: 'Bearer';
  /** Unix seconds; null for a token that does not expire (a PAT). */
  expires_on: number | null;
  host: string;
  account_id?: string;
}

export function tokenJson(token: AccessToken, upstream: URL, accountId: string | undefined): TokenJson {
  return {
    access_token: token.token,
    token_type: 'Bearer',
    expires_on: Number.isFinite(token.expiresOnMs) ? Math.floor(token.expiresOnMs / 1000) : null,
    host: upstream.origin,
    ...(accountId ? { account_id: accountId } : {}),
  };
}
