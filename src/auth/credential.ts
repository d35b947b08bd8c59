/** The one interface every credential type implements (one file each under credentials/). */

/** Which resource a token is for. */
export type Audience = 'databricks' | 'azure-management';

export interface AccessToken {
  token: string;
  /** Epoch milliseconds (wall clock). PATs use Number.POSITIVE_INFINITY. */
  expiresOnMs: number;
}

export interface GetTokenOptions {
  signal?: AbortSignal;
}

export interface Credential {
  /** The credential type name from README's "Credentials" table (azure-cli, pat, ...). */
  readonly type: string;
  /**
   * Identity key: two credentials with the same id yield the same tokens and share one cache entry;
   * different identities never do. Never contains a secret (hash secrets into it).
   */
  readonly id: string;
  /**
   * What a user should do when it fails, e.g. "run az login". Never a secret. Read when a fetch
   * fails, so a credential that runs a tool may make it a getter that looks at the machine then
   * (az installed since the start says "run az login", not "install the Azure CLI").
   */
  readonly hint: string;
  /** Why this credential was chosen for the route (reported at startup, /readyz, doctor). */
  readonly reason: string;
  /**
   * Service principals also send X-Databricks-Azure-SP-Management-Token, a token for the Azure
   * management endpoint (audience 'azure-management'), as the Databricks SDKs do.
   */
  readonly sendsManagementToken?: boolean;
  getToken(audience: Audience, options?: GetTokenOptions): Promise<AccessToken>;
}
