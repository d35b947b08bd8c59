import type { Audience } from './credential.js';

/**
 * The Azure Databricks first-party application; the same in the public, US Government and China
 * clouds (Databricks Go SDK config/azure.go, "Azure Databricks resource").
 */
export const AZURE_DATABRICKS_RESOURCE = '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d';
export const AZURE_MANAGEMENT_RESOURCE = 'https://management.core.windows.net/';

/** The Entra ID scope for an audience (v2 endpoints take `<resource>/.default`). */
export function entraScope(audience: Audience): string {
  return audience === 'databricks' ? `${AZURE_DATABRICKS_RESOURCE}/.default` : `${AZURE_MANAGEMENT_RESOURCE}.default`;
}
