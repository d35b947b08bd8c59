import { resolveAzureEnvironment } from '../azure-cloud.js';
import type { Credential } from '../credential.js';
import { egressHttpClient } from '../egress-http-client.js';
import { type AzureIdentity, entraCredential } from './entra.js';
import { type CredentialProvider, isTruthy, setting } from './provider.js';

/**
 * An Azure managed identity through @azure/identity's ManagedIdentityCredential: IMDS on VMs, or
 * the App Service / Container Apps form when IDENTITY_ENDPOINT and IDENTITY_HEADER are set.
 * `clientId` selects a user-assigned identity. Chosen by the default chain when ARM_USE_MSI is
 * true (the Databricks SDKs' azure_use_msi), never by guessing that IMDS might answer.
 */
export const azureMsiProvider: CredentialProvider = {
  type: 'azure-msi',
  lookedFor: 'ARM_USE_MSI=true',
  detect(spec, ctx) {
    if (isTruthy(setting(spec, 'useMsi', ctx, 'ARM_USE_MSI'))) return 'managed identity is enabled (ARM_USE_MSI)';
    return undefined;
  },
  create(spec, ctx, reason): Credential {
    const clientId = setting(spec, 'clientId', ctx, 'ARM_CLIENT_ID');
    const environment = resolveAzureEnvironment(spec, ctx.env, ctx.route.upstream);
    // The gateway's HTTP client: it never sends IMDS or a loopback IDENTITY_ENDPOINT through a proxy.
    const transport = { httpClient: egressHttpClient(ctx.env) };
    const source = (identity: AzureIdentity) => new identity.ManagedIdentityCredential({ ...(clientId ? { clientId } : {}), ...transport });
    const where = ctx.env.IDENTITY_ENDPOINT ? 'the App Service / Container Apps identity endpoint' : 'the instance metadata service (IMDS)';
    return entraCredential(source, {
      type: 'azure-msi',
      id: `azure-msi:${clientId ?? 'system-assigned'}`,
      hint: `check that this machine has a ${clientId ? `user-assigned identity with client id ${clientId}` : 'system-assigned managed identity'} and that ${where} is reachable`,
      reason,
      environment,
      sendsManagementToken: true,
    });
  },
};
