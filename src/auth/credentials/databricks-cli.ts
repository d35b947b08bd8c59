import { existsSync } from 'node:fs';
import type { AccessToken, Credential } from '../credential.js';
import { findOnPath } from './find-on-path.js';
import { type CredentialProvider, setting } from './provider.js';
import { runTool, ToolRunError } from './run-tool.js';

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

async function run(cli: string, args: string[], env: NodeJS.ProcessEnv, loginCommand: string, signal?: AbortSignal): Promise<string> {
  try {
    // databricks.exe is spawned directly; a .cmd wrapper goes through cmd.exe (see run-tool.ts).
    return await runTool(cli, args, { env, signal });
  } catch (err) {
    if (!(err instanceof ToolRunError)) throw err;
    const { failure } = err;
    if (failure.kind === 'missing') throw new Error(`the Databricks CLI was not found at ${cli}; install it or fix DATABRICKS_CLI_PATH`);
    if (failure.kind === 'timeout') throw new Error(`\`databricks ${args.join(' ')}\` did not finish within ${failure.timeoutMs / 1000} s`);
    if (failure.kind === 'refused') throw new Error(`${err.message}; point DATABRICKS_CLI_PATH at databricks.exe`);
    const said = failure.said.replace(/^Error:\s*/i, '');
    if (/refresh token|invalid_grant|expired|log ?in|not found|no token|cannot find/i.test(said)) {
      throw new Error(`the Databricks CLI has no valid login for this route (${said}); run ${loginCommand}`);
    }
    throw new Error(`\`databricks ${args.join(' ')}\` failed: ${said}`);
  }
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
