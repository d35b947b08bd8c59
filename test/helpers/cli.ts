import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI, as `npx dbx-gateway` runs it (dist/ is built by `npm install`, and by `npm test`). */
export const BIN = fileURLToPath(new URL('../../bin/dbx-gateway.cjs', import.meta.url));

/**
 * A PATH with nothing on it (an empty directory), for child processes and in-process gateways:
 * the test process's own PATH can hold the developer's signed-in az or databricks, which the
 * default chain would pick and run (scripts/run-tests.mjs puts poisoned ones first to catch that).
 * Children are started by absolute path (process.execPath, /bin/sh), so they need nothing on it.
 */
export const NO_TOOLS_PATH = mkdtempSync(join(tmpdir(), 'dbxgw-no-tools-'));

/**
 * The environment of a child process: `env`, with PATH defaulting to NO_TOOLS_PATH and HOME to a
 * fresh empty directory. A child without HOME is not homeless: os.homedir() falls back to the
 * user's real home (the passwd entry), where serve writes its run file and status/token look.
 */
export function childEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: NO_TOOLS_PATH, HOME: mkdtempSync(join(tmpdir(), 'dbxgw-home-')), ...env };
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** The CLI as a user runs it, with `env` only (see childEnv); resolves with its exit status and output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: childEnv(env) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.once('error', reject);
    child.on('exit', (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}
