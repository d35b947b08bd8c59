import type { CredentialSpec } from '../../config/types.js';
import { resolveAzureEnvironment } from '../azure-cloud.js';
import type { Credential } from '../credential.js';
import { type AzureIdentity, entraCredential, identityOptions } from './entra.js';
import { type CredentialContext, type CredentialProvider, digest, setting } from './provider.js';

/** Entra ID service principal settings, with the env names the Databricks SDKs and Azure SDKs use. */
function read(spec: CredentialSpec, ctx: CredentialContext) {
  return {
    tenantId: setting(spec, 'tenantId', ctx, 'ARM_TENANT_ID', 'AZURE_TENANT_ID'),
    clientId: setting(spec, 'clientId', ctx, 'ARM_CLIENT_ID', 'AZURE_CLIENT_ID'),
    clientSecret: setting(spec, 'clientSecret', ctx, 'ARM_CLIENT_SECRET', 'AZURE_CLIENT_SECRET'),
    certificatePath: setting(spec, 'clientCertificatePath', ctx, 'ARM_CLIENT_CERTIFICATE_PATH', 'AZURE_CLIENT_CERTIFICATE_PATH'),
    certificatePassword: setting(spec, 'clientCertificatePassword', ctx, 'ARM_CLIENT_CERTIFICATE_PASSWORD', 'AZURE_CLIENT_CERTIFICATE_PASSWORD'),
  };
}

/**
 * An Entra ID service principal with a client secret or a client certificate (PEM with the
 * private key), through @azure/identity's ClientSecretCredential / ClientCertificateCredential.
 */
export const azureClientSecretProvider: CredentialProvider = {
  type: 'azure-client-secret',
  lookedFor: 'tenantId, clientId and clientSecret or clientCertificatePath (ARM_* or AZURE_*)',
  detect(spec, ctx) {
    const s = read(spec, ctx);
    if (!s.tenantId || !s.clientId || !(s.clientSecret || s.certificatePath)) return undefined;
    return s.clientSecret ? 'a service principal client secret is configured' : 'a service principal client certificate is configured';
  },
  create(spec, ctx, reason): Credential {
    const s = read(spec, ctx);
    const missing = [
      !s.tenantId && 'tenantId (ARM_TENANT_ID)',
      !s.clientId && 'clientId (ARM_CLIENT_ID)',
      !s.clientSecret && !s.certificatePath && 'clientSecret (ARM_CLIENT_SECRET) or clientCertificatePath',
    ].filter(Boolean);
    if (missing.length > 0 || !s.tenantId || !s.clientId) {
      throw new Error(`azure-client-secret needs ${missing.join(', ')}`);
    }
    const environment = resolveAzureEnvironment(spec, ctx.env, ctx.route.upstream);
    const common = identityOptions(environment, ctx.env, ctx.route.caFile);
    const { tenantId, clientId, clientSecret, certificatePath, certificatePassword } = s;
    const source = (identity: AzureIdentity) =>
      clientSecret
        ? new identity.ClientSecretCredential(tenantId, clientId, clientSecret, common)
        : new identity.ClientCertificateCredential(
            tenantId,
            clientId,
            { certificatePath: certificatePath!, ...(certificatePassword ? { certificatePassword } : {}) },
            common,
          );
    return entraCredential(source, {
      type: 'azure-client-secret',
      // The secret is part of the identity (a rotated secret is a new credential), hashed.
      id: `azure-client-secret:${s.tenantId}:${s.clientId}:${digest(s.clientSecret, s.certificatePath)}`,
      hint: `check the service principal's tenantId, clientId and ${s.clientSecret ? 'clientSecret (it may have expired: create a new one in Entra ID)' : 'certificate'}`,
      reason,
      environment,
      sendsManagementToken: true,
    });
  },
};
