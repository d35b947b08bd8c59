import { execFile } from 'node:child_process';
import { azureScope, resolveAzureEnvironment } from '../azure-cloud.js';
import type { AccessToken, Credential } from '../credential.js';
import { TOKEN_FETCH_TIMEOUT_MS } from '../token-cache.js';
import { commandLine } from './databricks-cli.js';
import { findOnPath } from './find-on-path.js';
import { type CredentialProvider, setting } from './provider.js';

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
 * zone), as @azure/identity and the SDKs do.
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
  return process.platform === 'win32' ? env.SystemRoot || env.SYSTEMROOT || 'C:\\Windows' : '/';
}

function azAccessToken(resource: string, tenantId: string | undefined, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<AccessToken> {
  const az = findOnPath('az', env);
  if (!az) return Promise.reject(new Error('the Azure CLI (az) was not found on PATH'));
  const args = ['account', 'get-access-token', '--resource', resource, '--output', 'json', ...(tenantId ? ['--tenant', tenantId] : [])];
  // az.cmd on Windows goes through cmd.exe with every argument escaped (see commandLine).
  const [file, argv, spawnOptions] = commandLine(az, args, env);
  return new Promise((resolve, reject) => {
    execFile(
      file,
      argv,
      {
        env,
        cwd: safeWorkingDir(env),
        timeout: TOKEN_FETCH_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: 1 << 20,
        windowsHide: true,
        ...spawnOptions,
        ...(signal ? { signal } : {}),
      },
      (err, stdout, stderr) => {
        if (!err) {
          try {
            return resolve(parseAzToken(stdout));
          } catch (parseError) {
            return reject(parseError);
          }
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean };
        if (e.code === 'ENOENT') return reject(new Error(`the Azure CLI was not found at ${az}`));
        if (e.name === 'AbortError') return reject(err);
        if (e.killed) return reject(new Error(`\`az account get-access-token\` did not finish within ${TOKEN_FETCH_TIMEOUT_MS / 1000} s`));
        const said = stderr.replace(/\s+/g, ' ').trim().slice(0, 1000) || `exit code ${String(e.code)}`;
        // az's "Please run 'az login' to setup account." (and "az login --tenant ..."): signed out.
        if (/az login/.test(said) && !/az login --scope/.test(said)) return reject(new Error(`the Azure CLI is not signed in (${said})`));
        reject(new Error(said));
      },
    );
  });
}

function parseAzToken(stdout: string): AccessToken {
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
