import { type ChildProcess, spawn } from 'node:child_process';
import { errorMessage } from '../../src/errors.js';
import { type ChildOutput, watchOutput } from './child-output.js';
import { BIN, childEnv } from './cli.js';

export interface SpawnedGateway extends ChildOutput {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** The JSON log's url field, or the text log's "listening on URL" (--log-format text). */
const LISTENING = /"url":"((?:https?:\/\/|unix:)[^"]+)"|dbx-gateway listening on ((?:https?:\/\/|unix:)\S+)/;

/**
 * The real CLI in its own process with exactly `env` (PATH and HOME default as in childEnv): for
 * credentials that read process-wide settings (@azure/identity and MSAL read IDENTITY_ENDPOINT and
 * run `az` from the process's PATH; Node reads NODE_EXTRA_CA_CERTS at start).
 */
export async function spawnGateway(args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<SpawnedGateway> {
  const child = spawn(process.execPath, [BIN, '--port', '0', ...args], { env: childEnv(env), ...(cwd ? { cwd } : {}) });
  const output = watchOutput(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let listening: RegExpExecArray;
  try {
    listening = await output.waitForOutput('stdout', LISTENING, { timeoutMs: 20_000 });
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`gateway did not start (exit code ${child.exitCode}): ${errorMessage(err)}\n${output.stderr()}`);
  }
  return {
    ...output,
    url: (listening[1] ?? listening[2])!,
    child,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
