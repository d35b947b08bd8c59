import { chmodSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface FakeAzState {
  /** ok: print a token; login: fail like a signed-out az; fail: exit 1 with an error. */
  mode: 'ok' | 'login' | 'fail';
  expiresInSec: number;
  delayMs: number;
}

export interface FakeAz {
  dir: string;
  /** PATH with the fake az first. */
  path: string;
  set(state: Partial<FakeAzState>): void;
  /** Number of times az was run. */
  calls(): number;
  /** Arguments of every run, one string each. */
  argv(): string[];
}

/**
 * A fake `az` on PATH, driven by a state file and counting its calls; the real
 * @azure/identity AzureCliCredential runs it exactly as it would run the Azure CLI.
 */
export function installFakeAz(initial: Partial<FakeAzState> = {}): FakeAz {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-az-'));
  const stateFile = join(dir, 'state.json');
  const callsFile = join(dir, 'calls.log');
  const script = `#!${process.execPath}
const fs = require('fs');
const state = JSON.parse(fs.readFileSync(${JSON.stringify(stateFile)}, 'utf8'));
fs.appendFileSync(${JSON.stringify(callsFile)}, process.argv.slice(2).join(' ') + '\\n');
const n = fs.readFileSync(${JSON.stringify(callsFile)}, 'utf8').trim().split('\\n').length;
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
`;
  writeFileSync(join(dir, 'az'), script);
  chmodSync(join(dir, 'az'), 0o755);
  let state: FakeAzState = { mode: 'ok', expiresInSec: 3600, delayMs: 50, ...initial };
  const write = () => writeFileSync(stateFile, JSON.stringify(state));
  write();
  return {
    dir,
    path: `${dir}${delimiter}${process.env.PATH ?? ''}`,
    set(next) {
      state = { ...state, ...next };
      write();
    },
    calls: () => (existsSync(callsFile) ? readFileSync(callsFile, 'utf8').trim().split('\n').filter(Boolean).length : 0),
    argv: () => (existsSync(callsFile) ? readFileSync(callsFile, 'utf8').trim().split('\n').filter(Boolean) : []),
  };
}

/** The token the fake az prints on its Nth run. */
export function fakeAzToken(n: number): string {
  return `eyJhbGciOiJub25lIn0.eyJhenRva2VuIjoi${n}In0.c2lnbmF0dXJlLWZvci10b2tlbi0${n}`;
}
