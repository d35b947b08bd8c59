import type { CredentialSpec } from '../../config/types.js';
import type { Credential } from '../credential.js';
import { azureCliProvider } from './azure-cli.js';
import { demoProvider } from './demo.js';
import { patProvider } from './pat.js';
import type { CredentialContext, CredentialProvider } from './provider.js';

/** Every credential type; adding one is adding its file and a line here. */
const PROVIDERS: readonly CredentialProvider[] = [patProvider, azureCliProvider, demoProvider];

/**
 * The `default` chain, in the contract's order (after Databricks unified client authentication:
 * explicit settings first, developer tools last).
 */
const DEFAULT_CHAIN: readonly CredentialProvider[] = [patProvider, azureCliProvider];

const BY_TYPE = new Map(PROVIDERS.map((p) => [p.type, p]));

export const CREDENTIAL_TYPES: readonly string[] = ['default', ...PROVIDERS.map((p) => p.type)];

export function createCredential(spec: CredentialSpec, ctx: CredentialContext): Credential {
  if (spec.type !== 'default') {
    const provider = BY_TYPE.get(spec.type);
    if (!provider) throw new Error(`unknown credential type "${spec.type}"; use one of ${CREDENTIAL_TYPES.join(', ')}`);
    return provider.create(spec, ctx, `credential: ${spec.type} is configured`);
  }
  for (const provider of DEFAULT_CHAIN) {
    const reason = provider.detect(spec, ctx);
    if (reason !== undefined) return provider.create(spec, ctx, `default chain: ${reason}`);
  }
  return unavailableCredential(DEFAULT_CHAIN.map((p) => p.type));
}

/** Stands in when the default chain finds nothing: every token request says what was looked for. */
function unavailableCredential(lookedFor: string[]): Credential {
  const message = `the default credential chain found nothing to use (looked for: ${lookedFor.join(', ')})`;
  return {
    type: 'none',
    id: 'none',
    hint: 'run az login, or set DATABRICKS_TOKEN, or name a credential with --credential TYPE',
    reason: message,
    async getToken() {
      throw new Error(message);
    },
  };
}
