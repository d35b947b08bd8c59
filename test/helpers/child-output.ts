import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { within } from './wait.js';

export type OutputStream = 'stdout' | 'stderr';

export interface WaitForOutputOptions {
  /** Only output after this many characters counts (`stdout().length` taken before the action). */
  since?: number;
  timeoutMs?: number;
}

export interface ChildOutput {
  /** Everything the process wrote so far. */
  stdout(): string;
  stderr(): string;
  /**
   * Resolves with the first match of `pattern` in the stream (after `since`), as soon as the process
   * writes it; fails with the output so far when the process exits first or after the timeout.
   */
  waitForOutput(stream: OutputStream, pattern: RegExp, options?: WaitForOutputOptions): Promise<RegExpExecArray>;
}

/** Collects a child process's stdout and stderr, and lets a test wait for a pattern to appear in either. */
export function watchOutput(child: ChildProcess): ChildOutput {
  const text: Record<OutputStream, string> = { stdout: '', stderr: '' };
  const events = new EventEmitter();
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream]?.on('data', (d) => {
      text[stream] += d;
      events.emit('output');
    });
  }
  // 'close' comes after the pipes have ended: everything the process wrote is in `text` by then.
  let closed = false;
  child.once('close', () => {
    closed = true;
    events.emit('closed');
  });
  return {
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    waitForOutput(stream, pattern, options = {}) {
      const match = () => pattern.exec(text[stream].slice(options.since ?? 0));
      const seen = new Promise<RegExpExecArray>((resolve, reject) => {
        const check = () => {
          const m = match();
          if (m) {
            done();
            resolve(m);
          }
        };
        const exited = () => {
          done();
          const m = match();
          if (m) resolve(m);
          else reject(new Error(`the process exited before writing ${pattern} to ${stream}:\n${text[stream]}`));
        };
        const done = () => {
          events.off('output', check);
          events.off('closed', exited);
        };
        if (closed) return exited();
        events.on('output', check);
        events.on('closed', exited);
        check();
      });
      return within(seen, {
        timeoutMs: options.timeoutMs ?? 10_000,
        what: () => `${pattern} in ${stream}; it has:\n${text[stream].slice(options.since ?? 0)}`,
      });
    },
  };
}
