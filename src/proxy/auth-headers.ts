import type { TokenCache } from '../auth/token-cache.js';
import type { Route } from '../routing/route-table.js';

export interface AuthHeaders {
  /** The Databricks token sent as the bearer (a 401 rejects exactly this one). */
  token: string;
  headers: Record<string, string>;
}

/**
 * What the gateway adds to every proxied request, as the Databricks SDKs do (Go SDK
 * config/auth_azure_client_secret.go, auth_azure_msi.go): the bearer token; for Entra service
 * principals X-Databricks-Azure-SP-Management-Token, a token for the Azure management endpoint,
 * which lets a principal that is a Contributor on the workspace but not yet a workspace user in;
 * for Entra credentials with azureResourceId, X-Databricks-Azure-Workspace-Resource-Id. Both
 * tokens come from the same single-flight, refresh-ahead cache.
 */
export async function authHeaders(route: Route, tokens: TokenCache): Promise<AuthHeaders> {
  const { credential } = route;
  const [databricks, management] = await Promise.all([
    tokens.get(credential, 'databricks'),
    credential.sendsManagementToken ? tokens.get(credential, 'azure-management') : undefined,
  ]);
  return withTokens(route, databricks.token, management?.token);
}

/**
 * The same headers without a promise when every token they need is cached and fresh (no refresh
 * due); undefined otherwise, and the caller awaits authHeaders.
 */
export function cachedAuthHeaders(route: Route, tokens: TokenCache): AuthHeaders | undefined {
  const { credential } = route;
  const databricks = tokens.peekFresh(credential, 'databricks');
  if (!databricks) return undefined;
  const management = credential.sendsManagementToken ? tokens.peekFresh(credential, 'azure-management') : undefined;
  if (credential.sendsManagementToken && !management) return undefined;
  return withTokens(route, databricks.token, management?.token);
}

function withTokens(route: Route, token: string, managementToken: string | undefined): AuthHeaders {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (managementToken) headers['x-databricks-azure-sp-management-token'] = managementToken;
  if (route.config.azureResourceId && route.credential.type.startsWith('azure-')) {
    headers['x-databricks-azure-workspace-resource-id'] = route.config.azureResourceId;
  }
  return { token, headers };
}
