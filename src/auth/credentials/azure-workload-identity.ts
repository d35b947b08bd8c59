import type { CredentialSpec } from '../../config/types.js';
import { resolveAzureEnvironment } from '../azure-cloud.js';
import type { Credential } from '../credential.js';
import { type AzureIdentity, entraCredential, identityOptions } from './entra.js';
import { type CredentialContext, type CredentialProvider, setting } from './provider.js';

function read(spec: CredentialSpec, ctx: CredentialContext) {
  return {
    tenantId: setting(spec, 'tenantId', ctx, 'AZURE_TENANT_ID', 'ARM_TENANT_ID'),
    clientId: setting(spec, 'clientId', ctx, 'AZURE_CLIENT_ID', 'ARM_CLIENT_ID'),
    tokenFile: setting(spec, 'tokenFilePath', ctx, 'AZURE_FEDERATED_TOKEN_FILE'),
  };
}

/**
 * Federated identity from a projected token file (AKS workload identity sets AZURE_CLIENT_ID,
 * AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST), exchanged for an Entra
 * token as a client assertion by @azure/identity's WorkloadIdentityCredential.
 */
export const azureWorkloadIdentityProvider: CredentialProvider = {
  type: 'azure-workload-identity',
  lookedFor: 'AZURE_FEDERATED_TOKEN_FILE with AZURE_CLIENT_ID and AZURE_TENANT_ID',
  detect(spec, ctx) {
    const s = read(spec, ctx);
    return s.tenantId && s.clientId && s.tokenFile ? `a federated token file is configured (${s.tokenFile})` : undefined;
  },
  create(spec, ctx, reason): Credential {
    const s = read(spec, ctx);
    if (!s.tenantId || !s.clientId || !s.tokenFile) {
      const missing = [
        !s.tenantId && 'tenantId (AZURE_TENANT_ID)',
        !s.clientId && 'clientId (AZURE_CLIENT_ID)',
        !s.tokenFile && 'tokenFilePath (AZURE_FEDERATED_TOKEN_FILE)',
      ].filter(Boolean);
      throw new Error(`azure-workload-identity needs ${missing.join(', ')}`);
    }
    const environment = resolveAzureEnvironment(spec, ctx.env, ctx.route.upstream);
    const { tenantId, clientId, tokenFile } = s;
    const source = (identity: AzureIdentity) =>
      new identity.WorkloadIdentityCredential({ tenantId, clientId, tokenFilePath: tokenFile, ...identityOptions(environment, ctx.env, ctx.route.caFile) });
    return entraCredential(source, {
      type: 'azure-workload-identity',
      id: `azure-workload-identity:${s.tenantId}:${s.clientId}:${s.tokenFile}`,
      hint: `check that ${s.tokenFile} holds a current service account token and that client ${s.clientId} has a federated credential for it`,
      reason,
      environment,
      sendsManagementToken: true,
    });
  },
};
