import type { CredentialSpec } from '../config/types.js';
import type { Audience } from './credential.js';

/**
 * The Azure Databricks first-party application; the same in the public, US Government and China
 * clouds (Databricks Go SDK config/azure.go, "Azure Databricks resource").
 */
export const AZURE_DATABRICKS_RESOURCE = '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d';

/**
 * Azure clouds by their ARM_ENVIRONMENT names (Databricks Go SDK config/azure.go: PUBLIC,
 * USGOVERNMENT, CHINA): where to sign in, and which management endpoint the
 * X-Databricks-Azure-SP-Management-Token is for.
 */
export interface AzureCloud {
  name: string;
  authorityHost: string;
  managementEndpoint: string;
  /** Workspace hosts in this cloud end with this (used when no environment is named). */
  workspaceSuffix: string;
}

export const AZURE_CLOUDS: Readonly<Record<string, AzureCloud>> = {
  PUBLIC: {
    name: 'PUBLIC',
    authorityHost: 'https://login.microsoftonline.com',
    managementEndpoint: 'https://management.core.windows.net/',
    workspaceSuffix: '.azuredatabricks.net',
  },
  USGOVERNMENT: {
    name: 'USGOVERNMENT',
    authorityHost: 'https://login.microsoftonline.us',
    managementEndpoint: 'https://management.core.usgovcloudapi.net/',
    workspaceSuffix: '.databricks.azure.us',
  },
  CHINA: {
    name: 'CHINA',
    authorityHost: 'https://login.chinacloudapi.cn',
    managementEndpoint: 'https://management.core.chinacloudapi.cn/',
    workspaceSuffix: '.databricks.azure.cn',
  },
};

/** A cloud plus the authority actually used (AZURE_AUTHORITY_HOST may point elsewhere). */
export interface AzureEnvironment {
  cloud: AzureCloud;
  authorityHost: string;
  /**
   * Off only for the three known clouds: any other authority (Azure Stack, ADFS, a test
   * authority) is used as given, which MSAL allows only with instance discovery disabled.
   */
  disableInstanceDiscovery: boolean;
}

/**
 * The route's Azure environment: `azureEnvironment` in the credential, else ARM_ENVIRONMENT, else
 * the cloud the workspace host belongs to, else PUBLIC. `authorityHost` / AZURE_AUTHORITY_HOST
 * override the sign-in host. Throws with the accepted names on an unknown environment.
 */
export function resolveAzureEnvironment(spec: CredentialSpec, env: NodeJS.ProcessEnv, upstream: URL): AzureEnvironment {
  const named = stringSetting(spec.azureEnvironment) ?? (spec.profile === undefined ? nonEmpty(env.ARM_ENVIRONMENT) : undefined);
  let cloud: AzureCloud | undefined;
  if (named !== undefined) {
    cloud = AZURE_CLOUDS[named.toUpperCase()];
    if (!cloud) {
      throw new Error(`unknown Azure environment "${named}"; use one of ${Object.keys(AZURE_CLOUDS).join(', ')} (azureEnvironment or ARM_ENVIRONMENT)`);
    }
  } else {
    cloud = Object.values(AZURE_CLOUDS).find((c) => upstream.hostname.endsWith(c.workspaceSuffix)) ?? AZURE_CLOUDS.PUBLIC!;
  }
  const authorityHost = (stringSetting(spec.authorityHost) ?? nonEmpty(env.AZURE_AUTHORITY_HOST) ?? cloud.authorityHost).replace(/\/+$/, '');
  const known = Object.values(AZURE_CLOUDS).some((c) => c.authorityHost === authorityHost);
  return { cloud, authorityHost, disableInstanceDiscovery: !known };
}

/** The Entra ID scope for an audience in a cloud (v2 endpoints take `<resource>/.default`). */
export function azureScope(audience: Audience, cloud: AzureCloud): string {
  // The management resource keeps its trailing slash, as every Databricks SDK asks for it: Entra
  // takes everything before the last "/" as the resource, so the v2 scope is
  // "https://management.core.windows.net//.default" (azure-cli-core auth/util.py maps it the same
  // way). Managed identity strips
  // "/.default" and asks for the resource with its slash.
  return audience === 'databricks' ? `${AZURE_DATABRICKS_RESOURCE}/.default` : `${cloud.managementEndpoint}/.default`;
}

function stringSetting(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}
