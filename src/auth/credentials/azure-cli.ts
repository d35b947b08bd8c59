import { AzureCliCredential } from '@azure/identity';
import { entraScope } from '../audience.js';
import type { Credential } from '../credential.js';
import { TOKEN_FETCH_TIMEOUT_MS } from '../token-cache.js';
import { findOnPath } from './find-on-path.js';
import { type CredentialProvider, setting } from './provider.js';

/**
 * The signed-in Azure CLI user, through @azure/identity's AzureCliCredential, which runs
 * `az account get-access-token --resource R --output json` and prefers `expires_on` (epoch seconds,
 * az >= 2.54) over the zone-less `expiresOn`. Its process timeout has no default: set one.
 */
export const azureCliProvider: CredentialProvider = {
  type: 'azure-cli',
  detect(_spec, ctx) {
    const az = findOnPath('az', ctx.env);
    return az ? `the Azure CLI is installed (${az})` : undefined;
  },
  create(spec, ctx, reason): Credential {
    const tenantId = setting(spec, 'tenantId', ctx);
    const cli = new AzureCliCredential({
      ...(tenantId ? { tenantId } : {}),
      processTimeoutInMs: TOKEN_FETCH_TIMEOUT_MS,
    });
    return {
      type: 'azure-cli',
      id: `azure-cli:${tenantId ?? 'default-tenant'}`,
      hint: `run az login${tenantId ? ` --tenant ${tenantId}` : ''}`,
      reason,
      async getToken(audience, options) {
        const token = await cli.getToken(entraScope(audience), {
          ...(options?.signal ? { abortSignal: options.signal } : {}),
        });
        return { token: token.token, expiresOnMs: token.expiresOnTimestamp };
      },
    };
  },
};
