import type { CliFlags } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { type TokenJson, tokenJson } from '../local/token-json.js';
import { controlRequest, fallBackToConfig, runningOrReport } from './running.js';
import { load } from './shared.js';

export const TOKEN_OUTPUTS = ['json', 'env', 'raw', 'powershell', 'cmd'] as const;
type TokenOutput = (typeof TOKEN_OUTPUTS)[number];

/**
 * `token NAME`: the token the running gateway holds (its run file; no second az or CLI call), or,
 * with no gateway running, one from the configuration itself (said on stderr). Printed as JSON, as
 * shell exports (env, powershell, cmd), or bare (raw, like `az ... --query accessToken -o tsv`).
 */
export async function printToken(flags: CliFlags, name: string | undefined, output: string, url: string | undefined): Promise<number> {
  if (!name) {
    process.stderr.write(`dbx-gateway: usage: dbx-gateway token NAME [--output ${TOKEN_OUTPUTS.join('|')}] [--url URL]\n`);
    return 2;
  }
  if (!(TOKEN_OUTPUTS as readonly string[]).includes(output)) {
    process.stderr.write(`dbx-gateway: --output ${output}: use one of ${TOKEN_OUTPUTS.join(', ')}\n`);
    return 2;
  }
  const running = await runningOrReport(url);
  if (running === null) return 2;
  if (running) {
    const res = await controlRequest(running, 'GET', `/-/token/${encodeURIComponent(name)}`);
    if (res.status !== 200) {
      process.stderr.write(`dbx-gateway: ${running.url}: ${(JSON.parse(res.body) as { message?: string }).message ?? res.body}\n`);
      return res.status === 404 ? 2 : 1;
    }
    process.stdout.write(formatToken(JSON.parse(res.body) as TokenJson, output as TokenOutput));
    return 0;
  }
  if (!fallBackToConfig(url, 'fetching the token from the configuration directly')) return 1;
  const config = await load(flags);
  if (!config) return 2;
  const route = config.routes.find((r) => r.name === name);
  if (!route) {
    const known = config.routes.map((r) => r.name);
    const demo = name === 'demo' ? '; the demo workspace lives inside a running gateway: start one with dbx-gateway serve' : '';
    process.stderr.write(`dbx-gateway: no route named ${name}${demo}; routes: ${known.join(', ') || 'none (configure one with --workspace NAME=URL)'}\n`);
    return 2;
  }
  // The credential and a token cache only (its timeout, expiry cutoff and scrubbed errors): no
  // pools, metrics or demo workspace, so a script's `token` call starts fast.
  const [{ createCredential }, { TokenCache }] = await Promise.all([import('../auth/credentials/index.js'), import('../auth/token-cache.js')]);
  try {
    const token = await new TokenCache().get(createCredential(route.credential, { env: process.env, route }), 'databricks');
    process.stdout.write(formatToken(tokenJson(token, route.upstream, route.accountId), output as TokenOutput));
    return 0;
  } catch (err) {
    process.stderr.write(`dbx-gateway: ${errorMessage(err)}\n`);
    return 1;
  }
}

function formatToken(token: TokenJson, output: TokenOutput): string {
  const vars: Array<[string, string]> = [
    ['DATABRICKS_HOST', token.host],
    ...(token.account_id ? ([['DATABRICKS_ACCOUNT_ID', token.account_id]] as Array<[string, string]>) : []),
    ['DATABRICKS_TOKEN', token.access_token],
  ];
  switch (output) {
    case 'raw':
      return `${token.access_token}\n`;
    case 'env':
      // Single-quoted for POSIX shells and Git Bash: eval "$(dbx-gateway token prod --output env)".
      return vars.map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'\n`).join('');
    case 'powershell':
      // dbx-gateway token prod --output powershell | Invoke-Expression
      return vars.map(([k, v]) => `$env:${k} = '${v.replace(/'/g, "''")}'\n`).join('');
    case 'cmd':
      // FOR /F "delims=" %i IN ('dbx-gateway token prod --output cmd') DO %i
      return vars.map(([k, v]) => `set "${k}=${v}"\n`).join('');
    default:
      return `${JSON.stringify({ access_token: token.access_token, token_type: 'Bearer', expires_on: token.expires_on })}\n`;
  }
}
