import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI, as `npx dbx-gateway` runs it (dist/ is built by `npm install`, and by `npm test`). */
export const BIN = fileURLToPath(new URL('../../bin/dbx-gateway.cjs', import.meta.url));

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** The CLI as a user runs it, with `env` only; resolves with its exit status and output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env });
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
