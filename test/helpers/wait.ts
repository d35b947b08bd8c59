/** What a wait is for (named in the failure), and how long it may take. */
export interface WaitOptions {
  /** Named in the error after the timeout: "timed out after 5000 ms waiting for WHAT". A function can add details (the output so far). */
  what: string | (() => string);
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 5_000;

function timedOut(options: WaitOptions, timeoutMs: number): Error {
  const what = typeof options.what === 'function' ? options.what() : options.what;
  return new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * Re-checks `check` on a short interval until it holds; fails naming `what` after the timeout.
 * For conditions with no event to wait on: prefer an event (`once(emitter, 'event')`, `within`).
 */
export async function waitFor(check: () => boolean, options: WaitOptions & { intervalMs?: number }): Promise<void> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (check()) return;
    if (performance.now() >= deadline) throw timedOut(options, timeoutMs);
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 10));
  }
}

/** `promise`, or a rejection naming `what` when it has not settled within the timeout (an event that never comes fails, never hangs). */
export function within<T>(promise: Promise<T>, options: WaitOptions): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut(options, timeoutMs)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
