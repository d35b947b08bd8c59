import { errorMessage, GatewayError, ProxyError, tlsFailure } from '../errors.js';
import { scrubSecrets } from '../observability/redact.js';
import { UpstreamConnectError } from '../proxy/connector.js';
import { ServerRefusedError, UpstreamLoginError } from './upstream-login.js';
import type { PgErrorFields } from './wire.js';

/**
 * The one mapping from what can go wrong to the PostgreSQL ErrorResponse a client shows
 * (SQLSTATEs from PostgreSQL docs, Appendix A): 28000 no token (with the credential's hint), 28P01
 * a bad inbound key, 08001 the server unreachable, the server's own refusal as it said it.
 * Messages are scrubbed: they may carry upstream text.
 */
export function postgresErrorFor(err: unknown, server?: string): PgErrorFields & { outcome: string } {
  if (err instanceof ServerRefusedError) {
    const hint = err.fields.get('H');
    return {
      severity: 'FATAL',
      code: err.sqlState,
      message: scrubSecrets(`${err.message} (from the server)`),
      ...(hint ? { hint: scrubSecrets(hint) } : {}),
      outcome: 'server_refused',
    };
  }
  if (err instanceof GatewayError) {
    switch (err.code) {
      case 'GATEWAY_TOKEN_UNAVAILABLE':
        return { severity: 'FATAL', code: '28000', message: err.message, outcome: 'token_unavailable' };
      case 'GATEWAY_UNAUTHENTICATED':
        return { severity: 'FATAL', code: '28P01', message: err.message, outcome: 'unauthenticated' };
      case 'GATEWAY_FORBIDDEN':
        return { severity: 'FATAL', code: '28000', message: err.message, outcome: 'forbidden' };
      default:
        return { severity: 'FATAL', code: '08006', message: err.message, outcome: 'failed' };
    }
  }
  if (err instanceof UpstreamConnectError || err instanceof ProxyError || err instanceof UpstreamLoginError) {
    const tls = tlsFailure(err);
    return {
      severity: 'FATAL',
      code: '08001',
      message: scrubSecrets(`could not connect to the Lakebase server${server ? ` ${server}` : ''}: ${errorMessage(err)}`),
      hint: tls
        ? `${tls.what}: ${tls.fix}`
        : "check the route's postgres.host (or that the endpoint is running), the network path to it, and any egress proxy (HTTPS_PROXY / NO_PROXY)",
      outcome: 'upstream_unreachable',
    };
  }
  return {
    severity: 'FATAL',
    code: '08006',
    message: scrubSecrets(`the gateway could not open the session: ${errorMessage(err)}`),
    outcome: 'failed',
  };
}
