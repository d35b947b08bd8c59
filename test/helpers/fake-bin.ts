import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { NO_TOOLS_PATH } from './cli.js';

export interface FakeBin<S> {
  dir: string;
  /** PATH with the fake first, then nothing: never the process's PATH, which may hold the real tools. */
  path: string;
  set(state: Partial<S>): void;
  /** Arguments of every run so far, one string each. */
  argv(): string[];
  calls(): number;
}

/**
 * A fake command-line tool on PATH: a node script that reads its behaviour from a state file the
 * test changes (`state`), logs its arguments, and knows its call number (`n`). `body` is the
 * script's logic, with `state`, `args` and `n` in scope.
 */
export function installFakeBin<S extends object>(name: string, initial: S, body: string): FakeBin<S> {
  const dir = mkdtempSync(join(tmpdir(), `dbxgw-${name}-`));
  const stateFile = join(dir, 'state.json');
  const callsFile = join(dir, 'calls.log');
  writeFileSync(
    join(dir, name),
    `#!${process.execPath}
const fs = require('fs');
const state = JSON.parse(fs.readFileSync(${JSON.stringify(stateFile)}, 'utf8'));
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(callsFile)}, args.join(' ') + '\\n');
const n = fs.readFileSync(${JSON.stringify(callsFile)}, 'utf8').trim().split('\\n').length;
${body}
`,
  );
  chmodSync(join(dir, name), 0o755);
  let state = initial;
  const write = () => writeFileSync(stateFile, JSON.stringify(state));
  write();
  const argv = () => (existsSync(callsFile) ? readFileSync(callsFile, 'utf8').trim().split('\n').filter(Boolean) : []);
  return {
    dir,
    path: `${dir}${delimiter}${NO_TOOLS_PATH}`,
    set(next) {
      state = { ...state, ...next };
      write();
    },
    argv,
    calls: () => argv().length,
  };
}
