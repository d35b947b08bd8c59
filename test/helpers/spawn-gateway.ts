import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/dbx-gateway.js', import.meta.url));

export interface SpawnedGateway {
  url: string;
  child: ChildProcess;
  /** Everything the process wrote so far. */
  stdout(): string;
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * The real CLI in its own process with exactly `env`: for credentials that read process-wide
 * settings (@azure/identity and MSAL read IDENTITY_ENDPOINT; Node reads NODE_EXTRA_CA_CERTS at start).
 */
export function spawnGateway(args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<SpawnedGateway> {
  const child = spawn(process.execPath, [BIN, '--port', '0', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, ...(cwd ? { cwd } : {}) });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start:\n${out}\n${err}`));
    }, 20_000);
    const onData = () => {
      // The JSON log's url field, or the text log's "listening on URL" (--log-format text).
      const m = /"url":"((?:https?:\/\/|unix:)[^"]+)"/.exec(out) ?? /dbx-gateway listening on ((?:https?:\/\/|unix:)\S+)/.exec(out);
      if (!m?.[1]) return;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      resolve({
        url: m[1],
        child,
        stdout: () => out,
        stderr: () => err,
        stop: async () => {
          if (child.exitCode === null) child.kill('SIGTERM');
          await exited;
        },
      });
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}:\n${out}\n${err}`));
    });
  });
}
