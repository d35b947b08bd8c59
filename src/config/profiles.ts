import type { DatabricksCfg } from './databrickscfg.js';
import { ACCOUNT_ID_HINT, ACCOUNT_ID_PATTERN, ROUTE_NAME_PATTERN } from './schema.js';
import type { CredentialSpec, RouteConfig } from './types.js';

/** auth_type values of the Databricks SDKs, mapped to the gateway's credential types. */
const AUTH_TYPES: Readonly<Record<string, string>> = {
  pat: 'pat',
  'oauth-m2m': 'databricks-m2m',
  'azure-client-secret': 'azure-client-secret',
  'azure-msi': 'azure-msi',
  'azure-cli': 'azure-cli',
  'databricks-cli': 'databricks-cli',
  'github-oidc': 'github-oidc',
  'azure-devops-oidc': 'azure-devops-oidc',
  'env-oidc': 'env-oidc',
  'file-oidc': 'file-oidc',
  // The SDKs' U2M browser flow reads the Databricks CLI's login: the CLI is the way to it.
  'external-browser': 'databricks-cli',
  'oauth-u2m': 'databricks-cli',
  // The gateway's own names are accepted too.
  'databricks-m2m': 'databricks-m2m',
  'azure-workload-identity': 'azure-workload-identity',
  'azure-default': 'azure-default',
};

/** Token federation types: their client id is the Databricks service principal's (client_id). */
const OIDC_TYPES = new Set(['github-oidc', 'azure-devops-oidc', 'env-oidc', 'file-oidc']);

export interface ProfileRouteResult {
  route?: RouteConfig;
  /** Why the profile gives no route (or an incomplete one); said without any secret. */
  problem?: string;
}

/**
 * A profile as a route: named after the profile, its host and auth from the profile's keys as the
 * Databricks SDKs read them. Keys of several auth methods without auth_type are refused, as the
 * SDKs refuse "more than one authorization method configured".
 */
export function profileRoute(name: string, cfg: DatabricksCfg, parseHost: (host: string) => URL | string): ProfileRouteResult {
  const keys = cfg.profiles.get(name);
  const where = `${cfg.path} [${name}]`;
  if (!keys) return { problem: `${where}: no such profile` };
  if (!keys.host) return { problem: `${where}: no host; add host = https://adb-....azuredatabricks.net` };
  if (!ROUTE_NAME_PATTERN.test(name)) {
    return {
      problem: `${where}: the profile name cannot be a route name (letters, digits, ".", "_", "-"); rename the profile or add a route for it in the config file`,
    };
  }
  const host = /^https?:\/\//i.test(keys.host) ? keys.host : `https://${keys.host}`;
  const upstream = parseHost(host);
  if (typeof upstream === 'string') return { problem: `${where}: host ${upstream}` };
  // Same rule as every other route: an https://accounts.* host is the account console.
  const isAccount = isAccountsHost(upstream);
  if (isAccount && !keys.account_id) return { problem: `${where}: an accounts console host needs account_id` };
  if (isAccount && !ACCOUNT_ID_PATTERN.test(keys.account_id!)) return { problem: `${where}: account_id is not a UUID; ${ACCOUNT_ID_HINT}` };

  const credential = profileCredential(name, keys);
  if (typeof credential === 'string') return { problem: `${where}: ${credential}` };
  return {
    route: {
      name,
      kind: isAccount ? 'account' : 'workspace',
      upstream,
      ...(isAccount && keys.account_id ? { accountId: keys.account_id } : {}),
      credential,
      readOnly: false,
      ...(keys.azure_workspace_resource_id ? { azureResourceId: keys.azure_workspace_resource_id } : {}),
      profile: name,
      source: where,
    },
  };
}

/** The credential a profile's keys describe; a string says what is wrong. */
export function profileCredential(name: string, keys: Record<string, string>): CredentialSpec | string {
  const settings: Record<string, string> = { profile: name };
  const put = (key: string, value: string | undefined) => {
    if (value !== undefined && value !== '') settings[key] = value;
  };
  put('token', keys.token);
  put('azureEnvironment', keys.azure_environment);
  put('cliPath', keys.databricks_cli_path);
  put('tenantId', keys.azure_tenant_id);
  put('useMsi', keys.azure_use_msi);
  // Token federation keys: the Python SDK's names, then the Go SDK's (databricks_id_token_filepath,
  // audience) (sdk-py config.py, sdk-go config/config.go).
  const oidcTokenFilePath = keys.oidc_token_filepath || keys.databricks_id_token_filepath;
  put('oidcTokenEnv', keys.oidc_token_env);
  put('oidcTokenFilePath', oidcTokenFilePath);
  put('audience', keys.token_audience || keys.audience);
  const present = {
    pat: Boolean(keys.token),
    'databricks-m2m': Boolean(keys.client_id && keys.client_secret),
    'env-oidc': Boolean(keys.oidc_token_env),
    'file-oidc': Boolean(oidcTokenFilePath),
    'azure-client-secret': Boolean(keys.azure_client_secret),
    'azure-msi': /^(true|1|yes|on)$/i.test(keys.azure_use_msi ?? ''),
  };
  let type: string;
  const authType = keys.auth_type?.toLowerCase();
  if (authType) {
    const mapped = AUTH_TYPES[authType];
    if (!mapped) {
      return `auth_type = ${keys.auth_type} is not supported by dbx-gateway; use one of ${Object.keys(AUTH_TYPES).join(', ')}`;
    }
    type = mapped;
  } else {
    const methods = Object.entries(present)
      .filter(([, set]) => set)
      .map(([t]) => t);
    if (methods.length > 1) {
      return `more than one authorization method configured (${methods.join(', ')}); set auth_type to the one to use`;
    }
    type = methods[0] ?? 'default';
  }
  if (type === 'databricks-m2m' || OIDC_TYPES.has(type)) {
    put('clientId', keys.client_id);
    put('clientSecret', keys.client_secret);
  } else {
    put('clientId', keys.azure_client_id);
    put('clientSecret', keys.azure_client_secret);
  }
  return { type, ...settings };
}

/** An accounts console host (https://accounts.azuredatabricks.net and its clouds' twins). */
export function isAccountsHost(url: URL): boolean {
  return url.hostname.startsWith('accounts.');
}
