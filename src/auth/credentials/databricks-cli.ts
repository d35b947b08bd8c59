import { execFile } from 'node:child_process';
import type { AccessToken, Credential } from '../credential.js';
import { TOKEN_FETCH_TIMEOUT_MS } from '../token-cache.js';
import { findOnPath } from './find-on-path.js';
import { type CredentialProvider, setting } from './provider.js';

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
      hint: `run ${loginCommand}`,
      reason,
      async getToken(_audience, options): Promise<AccessToken> {
        const cli = configured ?? findOnPath('databricks', ctx.env);
        if (!cli) {
          throw new Error(
            'the Databricks CLI was not found on PATH; install it (https://docs.databricks.com/dev-tools/cli/install.html) or set DATABRICKS_CLI_PATH',
          );
        }
        const stdout = await run(cli, args, ctx.env, loginCommand, options?.signal);
        return parseCliToken(stdout, cli);
      },
    };
  },
};

function run(cli: string, args: string[], env: NodeJS.ProcessEnv, loginCommand: string, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cli,
      args,
      { env, timeout: TOKEN_FETCH_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 1 << 20, ...(signal ? { signal } : {}) },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const e = err as NodeJS.ErrnoException & { killed?: boolean };
        if (e.code === 'ENOENT') {
          return reject(new Error(`the Databricks CLI was not found at ${cli}; install it or fix DATABRICKS_CLI_PATH`));
        }
        if (e.killed) {
          return reject(new Error(`\`databricks ${args.join(' ')}\` did not finish within ${TOKEN_FETCH_TIMEOUT_MS / 1000} s`));
        }
        const said = stderr.replace(/^Error:\s*/i, '').replace(/\s+/g, ' ').trim().slice(0, 500) || `exit code ${String(e.code)}`;
        if (/refresh token|invalid_grant|expired|log ?in|not found|no token|cannot find/i.test(said)) {
          return reject(new Error(`the Databricks CLI has no valid login for this route (${said}); run ${loginCommand}`));
        }
        reject(new Error(`\`databricks ${args.join(' ')}\` failed: ${said}`));
      },
    );
  });
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
