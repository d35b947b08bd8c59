import { type ChildProcess, execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { envValue } from '../../config/paths.js';
import { escapeControl } from '../../observability/terminal-text.js';
import { TOKEN_FETCH_TIMEOUT_MS } from '../token-cache.js';

/**
 * Running a sign-in tool's CLI (az, databricks) for a token: one process call, its stdout. Shared
 * by the azure-cli and databricks-cli credentials; they turn a ToolRunError into their own words.
 */

/** What a tool may print: a token's JSON is a few KiB. */
const MAX_OUTPUT_BYTES = 1 << 20;
/** What is kept of its stderr before it is collapsed and cut to stderrChars. */
const MAX_STDERR_CHARS = 64 * 1024;

export type ToolFailure =
  /** The file is gone (ENOENT), or cmd.exe could not find the .cmd it was given. */
  | { kind: 'missing' }
  /** Killed after the timeout. */
  | { kind: 'timeout'; timeoutMs: number }
  /** It ran and failed: `said` is its stderr (or the exit code) as one line, safe to show. */
  | { kind: 'failed'; said: string }
  /** Not run: cmd.exe could not pass an argument (or the path) on as it is (see commandLine). */
  | { kind: 'refused' };

export class ToolRunError extends Error {
  constructor(
    readonly failure: ToolFailure,
    message: string,
  ) {
    super(message);
    this.name = 'ToolRunError';
  }
}

export interface RunToolOptions {
  env: NodeJS.ProcessEnv;
  /** The working directory; the gateway's own when unset. */
  cwd?: string;
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
  /** How much of stderr a failure keeps (after collapsing whitespace). */
  stderrChars?: number;
}

/**
 * Runs `file args` (a path findOnPath or the user gave; a .cmd/.bat on Windows through cmd.exe,
 * see commandLine) and resolves with its stdout. Rejects with a ToolRunError (missing, timeout,
 * failed, refused), or with the AbortError when `signal` aborts. stdout, which
 * holds the token, never goes into an error; stderr does only as one line with its control
 * characters shown escaped (escapeControl) and cut to `stderrChars`.
 */
export async function runTool(file: string, args: string[], options: RunToolOptions): Promise<string> {
  const [command, argv, spawnOptions] = commandLine(file, args, options.env);
  const viaCmd = command !== file;
  const timeoutMs = options.timeoutMs ?? TOKEN_FETCH_TIMEOUT_MS;
  const { signal } = options;
  if (signal?.aborted) throw abortError(signal);
  return new Promise((resolve, reject) => {
    let timedOut = false;
    let tooMuch = false;
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    const child = spawn(command, argv, {
      env: options.env,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
      // Its own process group on POSIX, so that a timeout or an abort ends what it started too.
      detached: process.platform !== 'win32',
      ...spawnOptions,
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killTree(child, options.env);
    }, timeoutMs);
    const onAbort = () => killTree(child, options.env);
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout?.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes <= MAX_OUTPUT_BYTES) stdout.push(chunk);
      else if (!tooMuch) {
        tooMuch = true;
        killTree(child, options.env);
      }
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      if (stderr.length < MAX_STDERR_CHARS) stderr += chunk;
    });
    let ended = false;
    const end = (spawnError: NodeJS.ErrnoException | undefined, code: number | null) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) return reject(abortError(signal));
      if (spawnError?.code === 'ENOENT') return reject(new ToolRunError({ kind: 'missing' }, `${file} was not found`));
      if (tooMuch) return reject(new ToolRunError({ kind: 'failed', said: `printed more than ${MAX_OUTPUT_BYTES} bytes` }, `${file} printed too much`));
      if (timedOut) return reject(new ToolRunError({ kind: 'timeout', timeoutMs }, `${file} did not finish within ${timeoutMs} ms`));
      if (!spawnError && code === 0) return resolve(Buffer.concat(stdout).toString('utf8'));
      const text = stderr.replace(/\s+/g, ' ').trim();
      // cmd.exe's own "is not recognized as an internal or external command" (Wine's cmd: "Can't
      // recognize ..."), exit code 9009: the .cmd went away between the PATH lookup and the run.
      if (viaCmd && (code === 9009 || /is not recognized as an internal or external command|can't recognize/i.test(text))) {
        return reject(new ToolRunError({ kind: 'missing' }, `${file} was not found`));
      }
      const limit = options.stderrChars ?? 500;
      const said = text ? escapeControl(text.length > limit ? `${text.slice(0, limit)}...` : text) : `exit code ${String(spawnError?.code ?? code)}`;
      reject(new ToolRunError({ kind: 'failed', said }, said));
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      // A spawn failure (ENOENT, EACCES) has no 'close' to wait for when no pipe ever opened.
      if (child.pid === undefined) end(err, null);
    });
    child.once('close', (code: number | null) => end(undefined, code));
  });
}

/** The Windows directory (%SystemRoot%): where Windows' own tools live, and a working directory no one plants files in. */
export function windowsDir(env: NodeJS.ProcessEnv): string {
  return envValue(env, 'SystemRoot', 'win32') || 'C:\\Windows';
}

/** What an aborted run rejects with, as child_process does: an AbortError whose cause is the signal's reason. */
function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), { name: 'AbortError', code: 'ABORT_ERR' });
}

/**
 * Ends a tool and whatever it started: az is a shell script (POSIX) or a .cmd (Windows) that runs
 * Python, and killing only the script leaves Python running, holding the output pipes open, so
 * the run would not end either. POSIX: the tool's process group (runTool starts it as one);
 * Windows: taskkill /T, the process and its descendants. The pipes are closed here as well, so
 * the run ends even if something in the tree survives.
 */
function killTree(child: ChildProcess, env: NodeJS.ProcessEnv): void {
  const { pid } = child;
  if (pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      if (process.platform === 'win32') {
        execFile(path.win32.join(windowsDir(env), 'System32', 'taskkill.exe'), ['/T', '/F', '/PID', String(pid)], { windowsHide: true }, () => {});
      } else process.kill(-pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }
  child.stdout?.destroy();
  child.stderr?.destroy();
}

/**
 * Characters a .cmd's arguments (and its path) cannot carry through cmd.exe even inside double
 * quotes: `"` ends the quoting, cmd.exe expands `%VAR%` inside quotes (and Wine's cmd again inside
 * the batch file's %*), `!VAR!` when delayed expansion is on (a registry setting /d does not turn
 * off), and control characters (a line break ends the command).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const NOT_THROUGH_CMD = /["%!\u0000-\u001f\u007f]/;

/**
 * How to start a tool. On POSIX, and for an .exe on Windows (databricks.exe), the file itself with
 * its arguments, as given. On Windows a .cmd/.bat (az.cmd; a databricks.cmd wrapper or shim found
 * through PATHEXT or named by DATABRICKS_CLI_PATH) cannot be spawned directly: Node >= 20.12.2
 * refuses with EINVAL (CVE-2024-27980, "BatBadBut": cmd.exe re-parses the command line, so
 * arguments could run commands). Node's documentation (child_process, "Spawning .bat and .cmd
 * files on Windows") says to run them through cmd.exe and to quote a script path with spaces. This
 * does what Node's own `shell: true` does (lib/child_process.js: `ComSpec || cmd.exe`,
 * `/d /s /c "<command line>"`, windowsVerbatimArguments), with the command line built here: the
 * path and every argument in double quotes, so a space (`C:\Program Files\...\Azure CLI2\wbin\
 * az.cmd`) or one of `& | < > ( ) ^ ; ,` is literal text to cmd.exe, and to the batch file's %*,
 * which hands the quoted arguments on as they are. /s makes cmd.exe strip only the outer pair of
 * quotes; /d skips AutoRun commands. A trailing backslash is doubled so that the C runtime of the
 * program the batch file starts does not read `\"` as a quote. What quoting cannot protect
 * (NOT_THROUGH_CMD: `"`, `%`, `!`, control characters) is refused with an error saying so; the
 * arguments are resource and tenant ids, hosts and profile names, which do not need them.
 */
export function commandLine(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): [command: string, args: string[], options: { windowsVerbatimArguments?: boolean }] {
  // Windows drops trailing dots and spaces from a file name: `databricks.cmd.` is a batch file too.
  if (platform !== 'win32' || !/\.(cmd|bat)[. ]*$/i.test(file)) return [file, args, {}];
  const script = path.win32.normalize(file);
  const refuse = (what: string, text: string, char: string) =>
    new ToolRunError(
      { kind: 'refused' },
      `cannot run ${escapeControl(script)} through cmd.exe: ${what} ${escapeControl(JSON.stringify(text))} has ${escapeControl(JSON.stringify(char))}, ` +
        'which cmd.exe would not pass on as it is (a .cmd or .bat takes no ", %, ! or control characters)',
    );
  const badInPath = NOT_THROUGH_CMD.exec(script);
  if (badInPath) throw refuse('its path', script, badInPath[0]);
  for (const arg of args) {
    const bad = NOT_THROUGH_CMD.exec(arg);
    if (bad) throw refuse('the argument', arg, bad[0]);
  }
  const line = [`"${script}"`, ...args.map((a) => `"${a.replace(/(\\+)$/, '$1$1')}"`)].join(' ');
  // Without ComSpec, cmd.exe from System32: a bare `cmd.exe` is looked up in the current directory first.
  const systemRoot = envValue(env, 'SystemRoot', platform);
  const comspec = envValue(env, 'ComSpec', platform) || (systemRoot ? path.win32.join(systemRoot, 'System32', 'cmd.exe') : 'cmd.exe');
  return [comspec, ['/d', '/s', '/c', `"${line}"`], { windowsVerbatimArguments: true }];
}
