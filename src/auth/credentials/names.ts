/**
 * The credential types a user can name, in the order of README's "Credentials". Apart from the registry
 * (index.ts checks that every name has a provider) so that `--help` can list them without loading
 * any credential code.
 */
export const CREDENTIAL_TYPE_NAMES = [
  'default',
  'pat',
  'databricks-m2m',
  'github-oidc',
  'azure-devops-oidc',
  'env-oidc',
  'file-oidc',
  'azure-client-secret',
  'azure-workload-identity',
  'azure-msi',
  'azure-cli',
  'databricks-cli',
  'databricks-u2m',
  'azure-default',
] as const;
