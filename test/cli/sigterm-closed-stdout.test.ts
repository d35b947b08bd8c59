import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BIN } from '../helpers/cli.js';
import { waitFor, within } from '../helpers/wait.js';

const DRAIN_MS = 200;
/** Far above drainMs plus the final log flush: the process must be gone well before. */
const EXIT_DEADLINE_MS = 15_000;

describe('SIGTERM with stdout a closed pipe', { skip: process.platform === 'win32' && 'POSIX signals: Windows has no SIGTERM to send a process' }, () => {
  for (const format of ['json', 'text'] as const) {
    it(`ends serve within drainMs plus a margin when the reader of its ${format} log is gone (| head -1)`, async () => {
      const home = mkdtempSync(join(tmpdir(), 'dbxgw-sigterm-'));
      const config = join(home, 'dbx-gateway.yaml');
      writeFileSync(config, `timeouts: { drainMs: ${DRAIN_MS} }\n`);
      const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--config', config, '--log-format', format], {
        env: { PATH: process.env.PATH ?? '', HOME: home, USERPROFILE: home },
        cwd: home,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      try {
        // `| head -1`: the first line, then the reader goes away.
        let first = '';
        await within(
          new Promise<void>((resolve) => {
            child.stdout.on('data', (d) => {
              first += d;
              if (first.includes('\n')) resolve();
            });
          }),
          { timeoutMs: 20_000, what: () => `the first log line; stderr:\n${stderr}` },
        );
        child.stdout.destroy();
        // serve installs its signal handlers right after writing the run file.
        const runDir = join(home, '.config', 'dbx-gateway', 'run');
        await waitFor(() => existsSync(runDir) && readdirSync(runDir).some((f) => f.endsWith('.json')), {
          timeoutMs: 20_000,
          what: () => `the run file in ${runDir} (exit code ${child.exitCode}); stderr:\n${stderr}`,
        });
        child.kill('SIGTERM');
        const [code, signal] = await within(exited, { timeoutMs: EXIT_DEADLINE_MS, what: () => `the gateway to exit after SIGTERM; stderr:\n${stderr}` });
        assert.equal(signal, null, 'it exits by itself, not by the signal');
        assert.equal(code, 0, stderr);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  }
});
