import type { CredentialSpec } from '../../config/types.js';
import { errorMessage } from '../../errors.js';
import type { Credential } from '../credential.js';
import { azureCliHint, azureCliProvider } from './azure-cli.js';
import { azureClientSecretProvider } from './azure-client-secret.js';
import { azureDefaultProvider } from './azure-default.js';
import { azureMsiProvider } from './azure-msi.js';
import { azureWorkloadIdentityProvider } from './azure-workload-identity.js';
import { databricksCliProvider, INSTALL_DATABRICKS_CLI_URL } from './databricks-cli.js';
import { databricksM2mProvider } from './databricks-m2m.js';
import { databricksU2mProvider } from './databricks-u2m.js';
import { demoProvider } from './demo.js';
import { findOnPath } from './find-on-path.js';
import { CREDENTIAL_TYPE_NAMES } from './names.js';
import { azureDevopsOidcProvider, envOidcProvider, fileOidcProvider, githubOidcProvider } from './oidc-federation.js';
import { patProvider } from './pat.js';
import type { CredentialContext, CredentialProvider } from './provider.js';

/**
 * The `default` chain, in the order of README's "Credentials". It follows Databricks unified client
 * authentication (Go SDK config/auth_default.go): explicit secrets first (PAT, OAuth M2M), token
 * federation in the Go SDK's order (GitHub, Azure DevOps, env, file), Entra (service principal,
 * workload identity, managed identity), then the developer tools a person is signed in to. azure-default is never guessed: it would hide which source is really used.
 */
const DEFAULT_CHAIN: readonly CredentialProvider[] = [
  patProvider,
  databricksM2mProvider,
  githubOidcProvider,
  azureDevopsOidcProvider,
  envOidcProvider,
  fileOidcProvider,
  azureClientSecretProvider,
  azureWorkloadIdentityProvider,
  azureMsiProvider,
  azureCliProvider,
  databricksCliProvider,
  databricksU2mProvider,
];

/** Every credential type; adding one is adding its file and a line here. */
const PROVIDERS: readonly CredentialProvider[] = [...DEFAULT_CHAIN, azureDefaultProvider, demoProvider];

const BY_TYPE = new Map(PROVIDERS.map((p) => [p.type, p]));

export const CREDENTIAL_TYPES: readonly string[] = ['default', ...PROVIDERS.map((p) => p.type)];
// `--help` lists the types from names.ts without loading this registry: keep the two in step.
for (const type of CREDENTIAL_TYPE_NAMES) {
  if (!CREDENTIAL_TYPES.includes(type)) throw new Error(`names.ts lists credential type ${type}, which has no provider`);
}

/** A credential's settings are present but unusable (missing field, unknown cloud): say which. */
export class CredentialSetupError extends Error {
  override readonly name = 'CredentialSetupError';
}

/**
 * Builds the route's credential: a named type wins; `default` takes the first chain entry whose
 * settings are present and records why. Throws CredentialSetupError when settings are incomplete.
 */
export function createCredential(spec: CredentialSpec, ctx: CredentialContext): Credential {
  const build = (provider: CredentialProvider, reason: string) => {
    try {
      return provider.create(spec, ctx, reason);
    } catch (err) {
      throw new CredentialSetupError(errorMessage(err), { cause: err });
    }
  };
  if (spec.type !== 'default') {
    const provider = BY_TYPE.get(spec.type);
    if (!provider) throw new CredentialSetupError(`unknown credential type "${spec.type}"; use one of ${CREDENTIAL_TYPES.join(', ')}`);
    return build(provider, `credential: ${spec.type} is configured${spec.profile ? ` (profile ${String(spec.profile)})` : ''}`);
  }
  for (const provider of DEFAULT_CHAIN) {
    const reason = provider.detect(spec, ctx);
    if (reason !== undefined) return build(provider, `default chain: ${reason}`);
  }
  return unavailableCredential(
    `the default credential chain found nothing to use (looked for: ${DEFAULT_CHAIN.map((p) => `${p.type}: ${p.lookedFor}`).join('; ')})`,
    () => emptyChainHint(ctx),
    // Its own per route: the hint names the route's host and name (it never fetches a token).
    ctx.route.name,
  );
}

/**
 * What to do when the default chain found nothing, as the machine is now: a missing tool is to be
 * installed first; one installed since the configuration was loaded needs a restart or reload too,
 * as the chain chose then.
 */
function emptyChainHint(ctx: CredentialContext): string {
  const route = ctx.route;
  const databricksLogin = `databricks auth login --host ${route.upstream.origin}${route.accountId ? ` --account-id ${route.accountId}` : ''}`;
  const az = findOnPath('az', ctx.env) !== undefined;
  const databricks = findOnPath('databricks', ctx.env) !== undefined;
  if (az || databricks) {
    const login = az ? 'az login' : databricksLogin;
    return `${az ? 'the Azure CLI' : 'the Databricks CLI'} is installed now: run ${login}, then restart dbx-gateway or run dbx-gateway reload (the default chain chose its credential when the configuration was loaded)`;
  }
  return (
    `${azureCliHint(ctx.env)}, or install the Databricks CLI (${INSTALL_DATABRICKS_CLI_URL}) and run ${databricksLogin}, ` +
    `or run dbx-gateway login ${route.name}, or set DATABRICKS_TOKEN, or name a credential with --credential TYPE (see README "Credentials")`
  );
}

/**
 * Stands in when no credential can be built: every token request says why and what to do. `hint`
 * may be a function, read at failure time; `scope` keeps credentials with the same message apart.
 */
export function unavailableCredential(message: string, hint: string | (() => string), scope?: string): Credential {
  return {
    type: 'none',
    id: `none:${scope !== undefined ? `${scope}:` : ''}${message}`,
    get hint() {
      return typeof hint === 'function' ? hint() : hint;
    },
    reason: message,
    async getToken() {
      throw new Error(message);
    },
  };
}
