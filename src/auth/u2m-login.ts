import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { RouteConfig } from '../config/types.js';
import { sameSecret } from '../security/same-secret.js';
import { U2M_CLIENT_ID, u2mLoginFile } from './credentials/databricks-u2m.js';
import { oidcEndpoints, postTokenForm } from './databricks-oidc.js';
import { writeLogin } from './login-store.js';

/** The Databricks CLI's client accepts redirects to localhost:8020, falling back up to 8040. */
export const CALLBACK_PORTS = { first: 8020, last: 8040 } as const;
export const U2M_SCOPES = 'all-apis offline_access';

export interface LoginOptions {
  env: NodeJS.ProcessEnv;
  /** Where progress goes (stderr): the authorize URL, waiting, the result. */
  say: (line: string) => void;
  openBrowser: boolean;
  timeoutMs?: number;
  /** How often to say it is still waiting. */
  progressMs?: number;
}

/**
 * Databricks OAuth U2M with PKCE (RFC 7636, S256), as `databricks auth login` does it: client_id
 * databricks-cli, scopes `all-apis offline_access`, redirect to http://localhost:8020 (or the next
 * free port up to 8040), state checked in constant time. The refresh token is stored 0600 in a
 * 0700 directory (login-store.ts), where the serving gateway's databricks-u2m credential reads it.
 * Returns the file written.
 */
export async function login(route: RouteConfig, options: LoginOptions): Promise<string> {
  const file = u2mLoginFile(options.env, route);
  if (!file) throw new Error('no home directory to keep the login in; set HOME or XDG_CONFIG_HOME (on Windows APPDATA or USERPROFILE)');
  const endpoints = await oidcEndpoints(route);
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(16).toString('base64url');

  const callback = await listenForCallback(state, (why) => options.say(`  (${why})`));
  const redirectUri = `http://localhost:${callback.port}`;
  try {
    const authorize = new URL(endpoints.authorizationEndpoint);
    authorize.search = new URLSearchParams({
      response_type: 'code',
      client_id: U2M_CLIENT_ID,
      redirect_uri: redirectUri,
      scope: U2M_SCOPES,
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    }).toString();

    options.say(`Sign in to ${route.upstream.origin} for route ${route.name} in your browser:`);
    options.say(`  ${authorize.href}`);
    if (options.openBrowser && openInBrowser(authorize.href)) options.say('(opening your default browser)');
    const timeoutMs = options.timeoutMs ?? 5 * 60_000;
    options.say(`Waiting for the browser to return to ${redirectUri} (up to ${Math.round(timeoutMs / 60_000)} min; Ctrl-C to cancel) ...`);

    const started = Date.now();
    const progress = setInterval(
      () => options.say(`  still waiting for the browser (${Math.round((Date.now() - started) / 1000)} s)`),
      options.progressMs ?? 30_000,
    );
    progress.unref();
    let code: string;
    try {
      code = await withTimeout(callback.code, timeoutMs, `no sign-in came back within ${Math.round(timeoutMs / 1000)} s; run the login again`);
    } finally {
      clearInterval(progress);
    }

    options.say('Browser sign-in received; exchanging the code for tokens ...');
    const tokens = await postTokenForm(
      endpoints.tokenEndpoint,
      { grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: U2M_CLIENT_ID, code_verifier: verifier },
      route.caFile ? { caFile: route.caFile } : {},
    );
    if (!tokens.refreshToken) {
      throw new Error('the token endpoint returned no refresh token (was offline_access granted?); the gateway could not refresh this login');
    }
    writeLogin(file, {
      host: route.upstream.origin,
      ...(route.accountId ? { accountId: route.accountId } : {}),
      clientId: U2M_CLIENT_ID,
      refreshToken: tokens.refreshToken,
      savedAt: new Date().toISOString(),
    });
    return file;
  } finally {
    callback.close();
  }
}

interface Callback {
  port: number;
  code: Promise<string>;
  close(): void;
}

/**
 * The local redirect target: the first free port from 8020 to 8040, answering one sign-in.
 *
 * Anyone on this machine (another user, or a web page the browser has open) can send requests to
 * the listener, so only a callback carrying this login's state can end it: its code completes the
 * login, its `error=` (the authorization server refusing the sign-in) aborts it. A callback with
 * another state, or without a code, gets an error page and is otherwise ignored; so are other paths
 * (favicon, ...). `onIgnored` is told the first time a sign-in callback is ignored.
 */
async function listenForCallback(expectedState: string, onIgnored: (why: string) => void): Promise<Callback> {
  let resolveCode!: (code: string) => void;
  let rejectCode!: (err: Error) => void;
  let settled = false;
  const code = new Promise<string>((resolve, reject) => {
    resolveCode = (value) => {
      settled = true;
      resolve(value);
    };
    rejectCode = (err) => {
      settled = true;
      reject(err);
    };
  });
  code.catch(() => {}); // observed by the caller; never an unhandled rejection
  let toldIgnored = false;
  const ignored = (why: string) => {
    if (toldIgnored) return;
    toldIgnored = true;
    onIgnored(why);
  };
  const page = (title: string, text: string) =>
    `<!doctype html><html lang="en"><meta charset="utf-8"><title>${title}</title><body style="font-family:system-ui;margin:3rem"><h1>${title}</h1><p>${text}</p></body></html>`;

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const send = (status: number, title: string, text: string) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(page(title, text));
    };
    if (url.pathname !== '/' || (!url.searchParams.has('code') && !url.searchParams.has('error') && !url.searchParams.has('state'))) {
      return send(404, 'Not found', 'This is the dbx-gateway sign-in callback.');
    }
    if (settled) {
      return send(409, 'Already received', 'dbx-gateway already has an answer for this sign-in; this request was ignored. See the terminal.');
    }
    const state = url.searchParams.get('state') ?? '';
    if (!sameSecret(state, expectedState)) {
      ignored('ignored a request to the sign-in callback whose state does not match this login (a stale tab, or not from this sign-in); still waiting');
      return send(
        400,
        'Sign-in callback ignored',
        'The state did not match the sign-in dbx-gateway is waiting for, so this request was ignored. Finish the sign-in from the link dbx-gateway printed, or run dbx-gateway login again.',
      );
    }
    const error = url.searchParams.get('error');
    if (error) {
      send(400, 'Sign-in failed', 'Databricks refused the sign-in; see the terminal.');
      return rejectCode(
        new Error(
          `Databricks refused the sign-in: ${error}${url.searchParams.get('error_description') ? `: ${url.searchParams.get('error_description')}` : ''}`,
        ),
      );
    }
    const received = url.searchParams.get('code') ?? '';
    if (!received) {
      ignored('ignored a request to the sign-in callback that carried no code; still waiting');
      return send(
        400,
        'Sign-in callback ignored',
        'The request carried no authorization code, so it was ignored. Finish the sign-in from the link dbx-gateway printed.',
      );
    }
    send(200, 'Signed in', 'dbx-gateway has your sign-in. You can close this tab.');
    resolveCode(received);
  });
  for (let port = CALLBACK_PORTS.first; port <= CALLBACK_PORTS.last; port++) {
    if (await tryListen(server, port)) {
      return {
        port,
        code,
        close: () => {
          server.closeAllConnections();
          server.close();
        },
      };
    }
  }
  throw new Error(`ports ${CALLBACK_PORTS.first}-${CALLBACK_PORTS.last} on localhost are all in use; free one for the sign-in callback`);
}

/** true when bound; false when the port is taken (try the next); other errors are thrown. */
function tryListen(server: Server, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve(true);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, '127.0.0.1');
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Best effort: the platform's opener, detached; the URL is printed either way. */
function openInBrowser(url: string): boolean {
  const [command, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(command as string, args as string[], { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
    return true;
  } catch {
    return false;
  }
}
