import type { TokenCredential } from '@azure/identity';
import { errorMessage } from '../../errors.js';
import type { AzureEnvironment } from '../azure-cloud.js';
import { azureScope } from '../azure-cloud.js';
import type { Credential } from '../credential.js';
import { egressHttpClient, transportFailureSince } from '../egress-http-client.js';

export interface EntraCredentialOptions {
  type: string;
  id: string;
  /** A function when the fix depends on the machine at failure time (is az installed?). */
  hint: string | (() => string);
  reason: string;
  environment: AzureEnvironment;
  /** Service principals send the management token too; users (azure-cli) do not. */
  sendsManagementToken: boolean;
}

/**
 * Options every @azure/identity credential of the gateway takes: the cloud's authority, and the
 * gateway's HTTP client (egress-proxy rules and TLS trust shared with route traffic, the route's
 * caFile included).
 */
export function identityOptions(environment: AzureEnvironment, env: NodeJS.ProcessEnv, caFile?: string) {
  return {
    authorityHost: environment.authorityHost,
    ...(environment.disableInstanceDiscovery ? { disableInstanceDiscovery: true } : {}),
    httpClient: egressHttpClient(env, caFile),
  };
}

/** The @azure/identity module, loaded on first use: it is the largest dependency (~25 MiB RSS). */
export type AzureIdentity = typeof import('@azure/identity');

/**
 * Adapts an @azure/identity TokenCredential to the gateway's Credential, with readable errors.
 * `build` runs at the first token fetch, so a gateway with only PAT or Databricks routes never
 * loads @azure/identity at all.
 */
export function entraCredential(build: (identity: AzureIdentity) => TokenCredential, options: EntraCredentialOptions): Credential {
  const { environment } = options;
  let source: Promise<TokenCredential> | undefined;
  return {
    type: options.type,
    id: `${options.id}@${environment.authorityHost}`,
    get hint() {
      return typeof options.hint === 'function' ? options.hint() : options.hint;
    },
    reason: options.reason,
    sendsManagementToken: options.sendsManagementToken,
    async getToken(audience, getOptions) {
      const startedMs = Date.now();
      try {
        source ??= import('@azure/identity').then(build);
        const token = await (await source).getToken(azureScope(audience, environment.cloud), {
          ...(getOptions?.signal ? { abortSignal: getOptions.signal } : {}),
        });
        if (!token) throw new Error('Entra ID returned no token');
        return { token: token.token, expiresOnMs: token.expiresOnTimestamp };
      } catch (err) {
        // What failed underneath, when MSAL kept only its own code (see transportFailureSince).
        const transport = transportFailureSince(new URL(environment.authorityHost).origin, startedMs);
        if (transport !== undefined) {
          throw new Error(`${describeEntraError(err)} (${environment.authorityHost}: ${errorMessage(transport)})`, { cause: transport });
        }
        throw new Error(describeEntraError(err), { cause: err });
      }
    },
  };
}

/**
 * Entra ID errors as a user can act on them: the AADSTS code and description (which carries the
 * trace and correlation ids) and, when Entra sent it separately, the correlation id. @azure/identity
 * wraps MSAL's ServerError in errors whose message holds "error_code: description"; its own
 * AuthenticationError keeps the parsed response in `errorResponse`. The caller scrubs the result.
 */
export function describeEntraError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const response = (err as { errorResponse?: { error?: string; errorDescription?: string; correlationId?: string } }).errorResponse;
  let code: string | undefined;
  let description: string | undefined;
  let correlationId: string | undefined;
  if (response?.error && response.errorDescription) {
    ({ error: code, errorDescription: description, correlationId } = response);
  } else {
    // MSAL ServerError: "<code>: Error(s): <codes> - Timestamp: <t> - Description: <d> - Correlation ID: <c> - Trace ID: <t>"
    const m = /^([\w-]+): Error\(s\):.*? - Description: (.*?)(?: - Correlation ID: ([\w-]+))?(?: - Trace ID: [\w-]+)?$/s.exec(err.message);
    if (m) [, code, description, correlationId] = m;
  }
  let text = code && description ? `Entra ID error ${code}: ${description}` : err.message;
  if (correlationId && !text.includes(correlationId)) text += ` (Correlation ID: ${correlationId})`;
  // Collapse the multi-line help text @azure/identity appends (troubleshooting links stay).
  return text
    .replace(/\s*\n\s*/g, ' ')
    .replace(/,$/, '')
    .trim();
}
