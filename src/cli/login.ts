import type { CliFlags } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { printErr } from './output.js';
import { load } from './shared.js';

/** `login NAME`: the U2M browser sign-in for one route; progress on stderr. */
export async function runLogin(flags: CliFlags, name: string | undefined, browser: boolean): Promise<number> {
  if (!name) {
    printErr('dbx-gateway: usage: dbx-gateway login NAME [--no-browser]\n');
    return 2;
  }
  const config = await load(flags);
  if (!config) return 2;
  const route = config.routes.find((r) => r.name === name);
  if (!route) {
    const known = config.routes.map((r) => r.name);
    printErr(`dbx-gateway: no route named ${name}; ${known.length ? `routes: ${known.join(', ')}` : 'configure one with --workspace NAME=URL'}\n`);
    return 2;
  }
  const say = (line: string) => printErr(`${line}\n`);
  const [{ login }, { scrubSecrets }] = await Promise.all([import('../auth/u2m-login.js'), import('../observability/redact.js')]);
  try {
    const file = await login(route, { env: process.env, say, openBrowser: browser && process.stderr.isTTY === true });
    say(`Signed in. The refresh token is stored in ${file} (readable by you only).`);
    say(
      route.credential.type === 'databricks-u2m'
        ? `Route ${name} uses it from now on; a running gateway picks it up at its next token refresh.`
        : `Route ${name} uses it when its credential is databricks-u2m, or when the default chain finds nothing earlier (see dbx-gateway doctor).`,
    );
    return 0;
  } catch (err) {
    printErr(`dbx-gateway: login failed: ${scrubSecrets(errorMessage(err))}\n`);
    return 1;
  }
}
