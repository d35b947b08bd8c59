import { type FakeBin, installFakeBin } from './fake-bin.js';

export interface FakeDatabricksCliState {
  /** ok: print a token; expired: the refresh token is dead; login: never logged in; hang: never answer. */
  mode: 'ok' | 'expired' | 'login' | 'hang';
  expiresInSec: number;
}

export type FakeDatabricksCli = FakeBin<FakeDatabricksCliState>;

/**
 * A fake `databricks` CLI on PATH answering `databricks auth token` the way CLI >= 0.200 does:
 * {access_token, token_type, expiry} with an RFC 3339 expiry carrying nanoseconds and a zone.
 */
export function installFakeDatabricksCli(initial: Partial<FakeDatabricksCliState> = {}): FakeDatabricksCli {
  return installFakeBin<FakeDatabricksCliState>(
    'databricks',
    { mode: 'ok', expiresInSec: 3600, ...initial },
    `
if (args[0] !== 'auth' || args[1] !== 'token') { process.stderr.write('Error: unknown command\\n'); process.exit(1); }
if (state.mode === 'hang') setInterval(() => {}, 1000);
else if (state.mode === 'expired') {
  process.stderr.write('Error: token refresh: oauth2: "invalid_grant" "Refresh token is invalid". Try logging in again with \`databricks auth login\` before continuing.\\n');
  process.exit(1);
} else if (state.mode === 'login') {
  process.stderr.write('Error: cache: databricks OAuth is not configured for this host. Try logging in again with \`databricks auth login\` before continuing.\\n');
  process.exit(1);
} else {
  const expiry = new Date(Date.now() + state.expiresInSec * 1000);
  // Go's RFC 3339 with nanoseconds in a +01:00 zone, as the CLI prints in local time.
  const local = new Date(expiry.getTime() + 3600000).toISOString().replace('Z', '');
  process.stdout.write(JSON.stringify({
    access_token: 'dbcli-token-' + n + '-' + Buffer.from(args.join(' ')).toString('base64url'),
    token_type: 'Bearer',
    expiry: local.replace(/\\.(\\d{3})$/, '.$1123456') + '+01:00',
  }, null, 2));
}
`,
  );
}
