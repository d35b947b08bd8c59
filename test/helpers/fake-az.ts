import { type FakeBin, installFakeBin } from './fake-bin.js';

export interface FakeAzState {
  /** ok: print a token; login: fail like a signed-out az; fail: exit 1 with an error. */
  mode: 'ok' | 'login' | 'fail';
  expiresInSec: number;
  delayMs: number;
}

export type FakeAz = FakeBin<FakeAzState>;

/**
 * A fake `az` on PATH, driven by a state file and counting its calls; the azure-cli credential
 * runs it exactly as it would run the Azure CLI (`az account get-access-token ... --output json`).
 */
export function installFakeAz(initial: Partial<FakeAzState> = {}): FakeAz {
  return installFakeBin<FakeAzState>(
    'az',
    { mode: 'ok', expiresInSec: 3600, delayMs: 50, ...initial },
    `
setTimeout(() => {
  if (state.mode === 'login') {
    process.stderr.write("ERROR: Please run 'az login' to setup account.\\n");
    process.exit(1);
  }
  if (state.mode === 'fail') {
    process.stderr.write('ERROR: AADSTS700082: The refresh token has expired due to inactivity. Trace ID: 0000 Correlation ID: 1111\\n');
    process.exit(1);
  }
  const expires = Math.floor(Date.now() / 1000) + state.expiresInSec;
  process.stdout.write(JSON.stringify({
    accessToken: 'eyJhbGciOiJub25lIn0.eyJhenRva2VuIjoi' + n + 'In0.c2lnbmF0dXJlLWZvci10b2tlbi0' + n,
    expiresOn: new Date(expires * 1000).toISOString().replace('T', ' ').slice(0, 19),
    expires_on: expires,
    subscription: '00000000-0000-0000-0000-000000000001',
    tenant: '00000000-0000-0000-0000-000000000002',
    tokenType: 'Bearer',
  }));
}, state.delayMs);
`,
  );
}

/** The token the fake az prints on its Nth run. */
export function fakeAzToken(n: number): string {
  return `eyJhbGciOiJub25lIn0.eyJhenRva2VuIjoi${n}In0.c2lnbmF0dXJlLWZvci10b2tlbi0${n}`;
}
