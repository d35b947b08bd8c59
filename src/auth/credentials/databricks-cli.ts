import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { envValue } from '../../config/paths.js';
import type { AccessToken, Credential } from '../credential.js';
import { TOKEN_FETCH_TIMEOUT_MS } from '../token-cache.js';
import { findOnPath } from './find-on-path.js';
import { type CredentialProvider, setting } from './provider.js';

/** Databricks' install page for its CLI (every platform). */
export const INSTALL_DATABRICKS_CLI_URL = 'https://docs.databricks.com/dev-tools/cli/install.html';

/** The fix when the Databricks CLI is missing: install it, then sign in with it. */
export function databricksCliInstallHint(loginCommand: string): string {
  return `install the Databricks CLI (${INSTALL_DATABRICKS_CLI_URL}) or set DATABRICKS_CLI_PATH, then run ${loginCommand}`;
}

/**
 * The Databricks CLI's own login (`databricks auth login`). CLI >= 1.0 keeps U2M tokens in the OS
 * keyring, so the token is read the supported way: `databricks auth token --profile P` (or
 * `--host H [--account-id A]`), which prints {access_token, token_type, expiry (RFC 3339)} and
 * refreshes as needed (Databricks Go SDK config/auth_databricks_cli.go).
 */
export const databricksCliProvider: CredentialProvider = {
  type: 'databricks-cli',
  lookedFor: 'databricks on PATH (or DATABRICKS_CLI_PATH)',
  detect(spec, ctx) {
    const cli = setting(spec, 'cliPath', ctx, 'DATABRICKS_CLI_PATH') ?? findOnPath('databricks', ctx.env);
    return cli ? `the Databricks CLI is installed (${cli})` : undefined;
  },
  create(spec, ctx, reason): Credential {
    const route = ctx.route;
    const configured = setting(spec, 'cliPath', ctx, 'DATABRICKS_CLI_PATH');
    const profile = typeof spec.profile === 'string' ? spec.profile : route.profile;
    const args = profile
      ? ['auth', 'token', '--profile', profile]
      : ['auth', 'token', '--host', route.upstream.origin, ...(route.accountId ? ['--account-id', route.accountId] : [])];
    const loginCommand = `databricks auth login ${profile ? `--profile ${profile}` : `--host ${route.upstream.origin}${route.accountId ? ` --account-id ${route.accountId}` : ''}`}`;
    return {
      type: 'databricks-cli',
      id: `databricks-cli:${profile ? `profile:${profile}` : `${route.upstream.origin}:${route.accountId ?? ''}`}`,
      get hint() {
        const present = configured !== undefined ? existsSync(configured) : findOnPath('databricks', ctx.env) !== undefined;
        return present ? `run ${loginCommand}` : databricksCliInstallHint(loginCommand);
      },
      reason,
      async getToken(_audience, options): Promise<AccessToken> {
        const cli = configured ?? findOnPath('databricks', ctx.env);
        if (!cli) {
          throw new Error(`the Databricks CLI was not found on PATH; install it (${INSTALL_DATABRICKS_CLI_URL}) or set DATABRICKS_CLI_PATH`);
        }
        const stdout = await run(cli, args, ctx.env, loginCommand, options?.signal);
        return parseCliToken(stdout, cli);
      },
    };
  },
};

function run(cli: string, args: string[], env: NodeJS.ProcessEnv, loginCommand: string, signal?: AbortSignal): Promise<string> {
  const [file, argv, spawnOptions] = commandLine(cli, args, env);
  return new Promise((resolve, reject) => {
    execFile(
      file,
      argv,
      { env, timeout: TOKEN_FETCH_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 1 << 20, ...spawnOptions, ...(signal ? { signal } : {}) },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const e = err as NodeJS.ErrnoException & { killed?: boolean };
        if (e.code === 'ENOENT') {
          return reject(new Error(`the Databricks CLI was not found at ${cli}; install it or fix DATABRICKS_CLI_PATH`));
        }
        if (e.killed) {
          return reject(new Error(`\`databricks ${args.join(' ')}\` did not finish within ${TOKEN_FETCH_TIMEOUT_MS / 1000} s`));
        }
        const said =
          stderr
            .replace(/^Error:\s*/i, '')
            .replace(/\s+/g, ' ')
            .trim()
            .slice(0, 500) || `exit code ${String(e.code)}`;
        if (/refresh token|invalid_grant|expired|log ?in|not found|no token|cannot find/i.test(said)) {
          return reject(new Error(`the Databricks CLI has no valid login for this route (${said}); run ${loginCommand}`));
        }
        reject(new Error(`\`databricks ${args.join(' ')}\` failed: ${said}`));
      },
    );
  });
}

/**
 * How to start the CLI. On Windows a .cmd/.bat (a wrapper or shim named by DATABRICKS_CLI_PATH or
 * found through PATHEXT) cannot be spawned directly: Node >= 20.12.2 refuses with EINVAL
 * (CVE-2024-27980), because cmd.exe re-parses its command line. It is run as
 * `cmd.exe /d /s /c "<line>"` the way cross-spawn does it: the path with every cmd.exe
 * metacharacter ^-escaped, each argument quoted for the C runtime and then ^-escaped too, so cmd
 * sees nothing quoted and hands the program the literal text (a profile named `a&b` stays one
 * argument). An argument with a double quote or a line break is refused: the batch file's own
 * %* would re-parse it. An .exe (the Databricks CLI itself) is spawned directly, as on POSIX.
 */
export function commandLine(
  cli: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): [file: string, args: string[], options: { windowsVerbatimArguments?: boolean }] {
  if (platform !== 'win32' || !/\.(cmd|bat)$/i.test(cli)) return [cli, args, {}];
  const unsafe = args.find((a) => /["\r\n\0]/.test(a));
  if (unsafe !== undefined) {
    throw new Error(`cannot pass ${JSON.stringify(unsafe)} to ${cli} through cmd.exe; point DATABRICKS_CLI_PATH at databricks.exe`);
  }
  const line = [escapeForCmd(path.win32.normalize(cli)), ...args.map((a) => escapeForCmd(quoteForCrt(a)))].join(' ');
  const comspec = envValue(env, 'ComSpec', platform) || 'cmd.exe';
  return [comspec, ['/d', '/s', '/c', `"${line}"`], { windowsVerbatimArguments: true }];
}

/** One argument as the Microsoft C runtime splits a command line: quoted, trailing backslashes doubled. */
function quoteForCrt(arg: string): string {
  return `"${arg.replace(/(\\+)$/, '$1$1')}"`;
}

/** Every character cmd.exe gives a meaning to, ^-escaped (see robvanderwoude.com/escapechars.php). */
function escapeForCmd(text: string): string {
  return text.replace(/([()\][%!^"`<>&|;, *?])/g, '^$1');
}

function parseCliToken(stdout: string, cli: string): AccessToken {
  let body: { access_token?: unknown; expiry?: unknown };
  try {
    body = JSON.parse(stdout) as typeof body;
  } catch {
    throw new Error(`${cli} auth token printed something that is not JSON; upgrade the Databricks CLI to 0.200 or later`);
  }
  if (typeof body.access_token !== 'string' || typeof body.expiry !== 'string') {
    throw new Error(`${cli} auth token printed no access_token/expiry; upgrade the Databricks CLI`);
  }
  // RFC 3339 with up to nanoseconds (Go's time format): keep milliseconds for Date.parse.
  const expiry = Date.parse(body.expiry.replace(/(\.\d{3})\d+/, '$1'));
  if (Number.isNaN(expiry)) throw new Error(`${cli} auth token printed an unreadable expiry "${body.expiry}"`);
  return { token: body.access_token, expiresOnMs: expiry };
}
