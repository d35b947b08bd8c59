import { resolveAzureEnvironment } from '../azure-cloud.js';
import type { Credential } from '../credential.js';
import { TOKEN_FETCH_TIMEOUT_MS } from '../token-cache.js';
import { type AzureIdentity, entraCredential, identityOptions } from './entra.js';
import { type CredentialProvider, setting } from './provider.js';

/**
 * @azure/identity's DefaultAzureCredential (environment, workload identity, managed identity,
 * Azure CLI, Azure Developer CLI, Azure PowerShell). Only when named: as a catch-all it would
 * hide which source is really used, which the default chain reports per route.
 */
export const azureDefaultProvider: CredentialProvider = {
  type: 'azure-default',
  lookedFor: 'named explicitly only',
  detect: () => undefined,
  create(spec, ctx, reason): Credential {
    const tenantId = setting(spec, 'tenantId', ctx);
    const clientId = setting(spec, 'clientId', ctx);
    const environment = resolveAzureEnvironment(spec, ctx.env, ctx.route.upstream);
    const source = (identity: AzureIdentity) =>
      new identity.DefaultAzureCredential({
        ...identityOptions(environment, ctx.env, ctx.route.caFile),
        ...(tenantId ? { tenantId } : {}),
        ...(clientId ? { managedIdentityClientId: clientId, workloadIdentityClientId: clientId } : {}),
        processTimeoutInMs: TOKEN_FETCH_TIMEOUT_MS,
      });
    return entraCredential(source, {
      type: 'azure-default',
      id: `azure-default:${tenantId ?? ''}:${clientId ?? ''}`,
      hint: 'sign in with az login, or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, or run where a managed identity is available',
      reason,
      environment,
      // Whether this is a user or a service principal is only known at run time.
      sendsManagementToken: false,
    });
  },
};
