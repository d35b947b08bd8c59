import { resolveAzureEnvironment } from '../azure-cloud.js';
import type { Credential } from '../credential.js';
import { TOKEN_FETCH_TIMEOUT_MS } from '../token-cache.js';
import { type AzureIdentity, entraCredential } from './entra.js';
import { findOnPath } from './find-on-path.js';
import { type CredentialProvider, setting } from './provider.js';

/** Microsoft's install page for the Azure CLI (every platform). */
export const INSTALL_AZURE_CLI_URL = 'https://aka.ms/installazurecli';

/**
 * The signed-in Azure CLI user, through @azure/identity's AzureCliCredential, which runs
 * `az account get-access-token --resource R --output json` and prefers `expires_on` (epoch seconds,
 * az >= 2.54) over the zone-less `expiresOn`. Its process timeout has no default: set one.
 */
export const azureCliProvider: CredentialProvider = {
  type: 'azure-cli',
  lookedFor: 'az on PATH',
  detect(_spec, ctx) {
    const az = findOnPath('az', ctx.env);
    return az ? `the Azure CLI is installed (${az})` : undefined;
  },
  create(spec, ctx, reason): Credential {
    const tenantId = setting(spec, 'tenantId', ctx);
    const cli = (identity: AzureIdentity) => new identity.AzureCliCredential({ ...(tenantId ? { tenantId } : {}), processTimeoutInMs: TOKEN_FETCH_TIMEOUT_MS });
    return entraCredential(cli, {
      type: 'azure-cli',
      id: `azure-cli:${tenantId ?? 'default-tenant'}`,
      hint: () => azureCliHint(ctx.env, tenantId),
      reason,
      // The CLI signs in against its own configured cloud; the environment picks the management scope.
      environment: resolveAzureEnvironment(spec, ctx.env, ctx.route.upstream),
      // A signed-in user is a workspace user; the Python SDK sends it only for service principals.
      sendsManagementToken: false,
    });
  },
};

/** What to do about the Azure CLI, as the machine is now: install it, or sign in with it. */
export function azureCliHint(env: NodeJS.ProcessEnv, tenantId?: string): string {
  const login = `az login${tenantId ? ` --tenant ${tenantId}` : ''}`;
  return findOnPath('az', env) ? `run ${login}` : `install the Azure CLI (${INSTALL_AZURE_CLI_URL}) and run ${login}`;
}
