import { azureScope, resolveAzureEnvironment } from '../azure-cloud.js';
import type { AccessToken, Credential } from '../credential.js';
import { findOnPath } from './find-on-path.js';
import { type CredentialProvider, setting } from './provider.js';
import { runTool, ToolRunError, windowsDir } from './run-tool.js';

/** Microsoft's install page for the Azure CLI (every platform). */
export const INSTALL_AZURE_CLI_URL = 'https://aka.ms/installazurecli';

/** A tenant id or domain as Entra and @azure/identity's checkTenantId accept it (and safe for cmd.exe). */
const TENANT_ID_PATTERN = /^[0-9a-zA-Z.-]+$/;

/**
 * The signed-in Azure CLI user: `az account get-access-token --resource R --output json
 * [--tenant T]`, run here as the Databricks SDKs do (Go SDK config/auth_azure_cli.go), one process
 * call and its JSON, instead of through @azure/identity's AzureCliCredential, which does the same
 * but brings @azure/identity, MSAL and Azure core (about 20 MiB of a gateway's idle memory) for it.
 * `expires_on` (epoch seconds, az >= 2.54) is preferred over `expiresOn` (local time without a
 * zone), as @azure/identity and the SDKs do. run-tool.ts runs it (TOKEN_FETCH_TIMEOUT_MS, stderr
 * as one escaped line; az.cmd on Windows through cmd.exe, quoted, from a PATH + PATHEXT lookup).
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
    if (tenantId !== undefined && !TENANT_ID_PATTERN.test(tenantId)) {
      throw new Error(`tenantId ${JSON.stringify(tenantId)} is not a tenant id or domain (letters, digits, '-' and '.')`);
    }
    // The CLI signs in against its own configured cloud; the environment picks the management scope.
    const environment = resolveAzureEnvironment(spec, ctx.env, ctx.route.upstream);
    return {
      type: 'azure-cli',
      id: `azure-cli:${tenantId ?? 'default-tenant'}@${environment.authorityHost}`,
      get hint() {
        return azureCliHint(ctx.env, tenantId);
      },
      reason,
      // A signed-in user is a workspace user; the Python SDK sends it only for service principals.
      sendsManagementToken: false,
      getToken: (audience, options) => azAccessToken(resourceOf(azureScope(audience, environment.cloud)), tenantId, ctx.env, options?.signal),
    };
  },
};

/** What to do about the Azure CLI, as the machine is now: install it, or sign in with it. */
export function azureCliHint(env: NodeJS.ProcessEnv, tenantId?: string): string {
  const login = `az login${tenantId ? ` --tenant ${tenantId}` : ''}`;
  return findOnPath('az', env) ? `run ${login}` : `install the Azure CLI (${INSTALL_AZURE_CLI_URL}) and run ${login}`;
}

/** The v1 resource of a v2 scope: everything before the last "/" ("…//.default" keeps its slash). */
function resourceOf(scope: string): string {
  return scope.slice(0, scope.lastIndexOf('/'));
}

/** @azure/identity runs az from a fixed directory (never wherever the gateway was started). */
function safeWorkingDir(env: NodeJS.ProcessEnv): string {
  return process.platform === 'win32' ? windowsDir(env) : '/';
}

async function azAccessToken(resource: string, tenantId: string | undefined, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<AccessToken> {
  const az = findOnPath('az', env);
  if (!az) throw new Error('the Azure CLI (az) was not found on PATH');
  const args = ['account', 'get-access-token', '--resource', resource, '--output', 'json', ...(tenantId ? ['--tenant', tenantId] : [])];
  let stdout: string;
  try {
    // az.cmd on Windows goes through cmd.exe, path and arguments quoted (see run-tool.ts).
    stdout = await runTool(az, args, { env, cwd: safeWorkingDir(env), signal, stderrChars: 1000 });
  } catch (err) {
    if (!(err instanceof ToolRunError)) throw err;
    const { failure } = err;
    if (failure.kind === 'missing') throw new Error(`the Azure CLI was not found at ${az}`);
    if (failure.kind === 'timeout') throw new Error(`\`az account get-access-token\` did not finish within ${failure.timeoutMs / 1000} s`);
    if (failure.kind === 'refused') throw new Error(`${err.message}; install the Azure CLI in a directory without them`);
    // az's "Please run 'az login' to setup account." (and "az login --tenant ..."): signed out.
    if (/az login/.test(failure.said) && !/az login --scope/.test(failure.said)) throw new Error(`the Azure CLI is not signed in (${failure.said})`);
    throw new Error(failure.said);
  }
  return parseAzToken(stdout);
}

/** What `az account get-access-token --output json` printed, as a token: expires_on (epoch s) first. */
export function parseAzToken(stdout: string): AccessToken {
  let body: { accessToken?: unknown; expires_on?: unknown; expiresOn?: unknown };
  try {
    body = JSON.parse(stdout) as typeof body;
  } catch {
    throw new Error('az account get-access-token printed something that is not JSON; update the Azure CLI');
  }
  if (typeof body.accessToken !== 'string' || body.accessToken === '') {
    throw new Error('az account get-access-token printed no accessToken; update the Azure CLI');
  }
  const epochSeconds = Number.parseInt(String(body.expires_on), 10);
  if (!Number.isNaN(epochSeconds)) return { token: body.accessToken, expiresOnMs: epochSeconds * 1000 };
  // Before az 2.54 only expiresOn, "2026-01-01 12:00:00.000000" in the machine's local time.
  const expiresOnMs = typeof body.expiresOn === 'string' ? new Date(body.expiresOn).getTime() : Number.NaN;
  if (Number.isNaN(expiresOnMs)) throw new Error(`az account get-access-token printed an unreadable expiresOn ${JSON.stringify(body.expiresOn)}`);
  return { token: body.accessToken, expiresOnMs };
}
