import type { CliFlags } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { type TokenJson, tokenJson } from '../local/token-json.js';
import { printErr } from './output.js';
import { controlRequest, findServing, useRouteFlags } from './running.js';
import { load } from './shared.js';
import { formatToken, TOKEN_OUTPUTS, type TokenOutput, UnsafeValueError } from './token-output.js';

/**
 * `token NAME`: the token held by the running gateway that serves NAME (its run file; no second az
 * or CLI call), or, with none serving it or with route flags, one from the configuration itself
 * (stderr says which answered). Printed as JSON, as
 * shell exports (env, powershell, cmd), or bare (raw, like `az ... --query accessToken -o tsv`).
 */
export async function printToken(flags: CliFlags, name: string | undefined, output: string, url: string | undefined): Promise<number> {
  if (!name) {
    printErr(`dbx-gateway: usage: dbx-gateway token NAME [--output ${TOKEN_OUTPUTS.join('|')}] [--url URL]\n`);
    return 2;
  }
  if (!(TOKEN_OUTPUTS as readonly string[]).includes(output)) {
    printErr(`dbx-gateway: --output ${output}: use one of ${TOKEN_OUTPUTS.join(', ')}\n`);
    return 2;
  }
  if (!(await useRouteFlags(flags, url, 'fetching the token'))) {
    const serving = await findServing(url, name);
    if ('failed' in serving) return serving.failed;
    if ('found' in serving) {
      const { run } = serving.found;
      const res = await controlRequest(run, 'GET', `/-/token/${encodeURIComponent(name)}`);
      if (!res) return 1;
      if (res.status !== 200) {
        printErr(`dbx-gateway: ${run.url}: ${(JSON.parse(res.body) as { message?: string }).message ?? res.body}\n`);
        return res.status === 404 ? 2 : 1;
      }
      return printFormatted(JSON.parse(res.body) as TokenJson, output as TokenOutput);
    }
    if (url) {
      printErr(`dbx-gateway: ${serving.none}\n`);
      return 1;
    }
    printErr(`dbx-gateway: ${serving.none}: fetching the token from the configuration directly\n`);
  }
  const config = await load(flags);
  if (!config) return 2;
  const route = config.routes.find((r) => r.name === name);
  if (!route) {
    const known = config.routes.map((r) => r.name);
    const demo = name === 'demo' ? '; the demo workspace lives inside a running gateway: start one with dbx-gateway serve' : '';
    printErr(`dbx-gateway: no route named ${name}${demo}; routes: ${known.join(', ') || 'none (configure one with --workspace NAME=URL)'}\n`);
    return 2;
  }
  // The credential and a token cache only (its timeout, expiry cutoff and scrubbed errors): no
  // pools, metrics or demo workspace, so a script's `token` call starts fast.
  const [{ createCredential }, { TokenCache }] = await Promise.all([import('../auth/credentials/index.js'), import('../auth/token-cache.js')]);
  try {
    const token = await new TokenCache().get(createCredential(route.credential, { env: process.env, route }), 'databricks');
    return printFormatted(tokenJson(token, route.upstream, route.accountId), output as TokenOutput);
  } catch (err) {
    printErr(`dbx-gateway: ${errorMessage(err)}\n`);
    return 1;
  }
}

/** The token on stdout in the asked-for form, or (a value it cannot hold safely) a refusal on stderr. */
function printFormatted(token: TokenJson, output: TokenOutput): number {
  let text: string;
  try {
    text = formatToken(token, output);
  } catch (err) {
    if (!(err instanceof UnsafeValueError)) throw err;
    printErr(`dbx-gateway: ${err.message}\n`);
    return 1;
  }
  process.stdout.write(text);
  return 0;
}
