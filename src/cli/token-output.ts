import type { TokenJson } from '../local/token-json.js';
import { terminalJson } from '../observability/terminal-text.js';

export const TOKEN_OUTPUTS = ['json', 'env', 'raw', 'powershell', 'cmd'] as const;
export type TokenOutput = (typeof TOKEN_OUTPUTS)[number];

/**
 * A value that cannot be written safely in the asked-for form. The message names the variable and
 * the offending character (never the value: it may be the token), and says what to use instead.
 */
export class UnsafeValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeValueError';
  }
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the characters refused
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const NOT_PRINTABLE_ASCII = /[^\u0020-\u007e]/;
/** cmd expands %VAR% (and !VAR! with delayed expansion) even inside quotes, and " ends the quotes. */
const CMD_UNQUOTABLE = /["%!]/;

/** `form` names the command's choice (`--output env`, `--shell fish`) in the refusal. */
function refuse(name: string, value: string, pattern: RegExp, form: string, why: string): void {
  const found = pattern.exec(value);
  if (!found) return;
  const code = `U+${found[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  throw new UnsafeValueError(
    `cannot print ${name} for ${form}: it has ${code} at position ${found.index + 1}, ${why}; nothing was printed${form.startsWith('--output') ? ' (--output json prints any value safely)' : ''}`,
  );
}

/**
 * `export NAME='value'` for POSIX shells and Git Bash: inside single quotes every byte is literal
 * but the quote itself, which is written '\'' (POSIX.1-2017 XCU 2.2.2). Control characters are
 * refused: no token, host or account id has one, and they would reach the terminal.
 */
export function assignPosix(name: string, value: string, form = '--output env'): string {
  refuse(name, value, CONTROL, form, 'a control character');
  return `export ${name}='${value.replace(/'/g, `'\\''`)}'\n`;
}

/**
 * `set -gx NAME 'value'` for fish (`... | source`): inside single quotes fish reads \\ as \ and \' as
 * ' and nothing else specially (fish-shell docs, "Quotes"), so both are written escaped. Control
 * characters are refused as for POSIX shells.
 */
export function assignFish(name: string, value: string, form = '--shell fish'): string {
  refuse(name, value, CONTROL, form, 'a control character');
  return `set -gx ${name} '${value.replace(/[\\']/g, (c) => `\\${c}`)}'\n`;
}

/**
 * `$env:NAME = 'value'` for `... | Invoke-Expression`. In a single-quoted string PowerShell ends the
 * string at ' and at the typographic quotes U+2018-U+201B, each written doubled to stand for itself
 * (about_Quoting_Rules). Only printable ASCII is taken: Invoke-Expression gets the output line by
 * line (a line break would start a second command), and PowerShell decodes a native command's
 * bytes with [Console]::OutputEncoding, where in Windows-1252 the bytes 0x91-0x92 of a UTF-8
 * character read as U+2018-U+2019 and would end the string.
 */
export function assignPowerShell(name: string, value: string, form = '--output powershell'): string {
  refuse(name, value, NOT_PRINTABLE_ASCII, form, 'which PowerShell may not read back as written (only printable ASCII is printed)');
  return `$env:${name} = '${value.replace(/['\u2018-\u201b]/g, (q) => q + q)}'\n`;
}

/**
 * `set "NAME=value"` for cmd (FOR /F "delims=" %i IN ('dbx-gateway token NAME --output cmd') DO %i).
 * Inside the quotes & | < > ^ are literal; nothing can stand for " (it ends the quotes, and what
 * follows would be a command), % (expanded even inside quotes, and %% means % only in a batch
 * file), ! (expanded with delayed expansion on) or a line break (FOR /F runs each line as a
 * command), so values with them are refused, as is anything but printable ASCII (cmd reads the
 * output in the console's code page).
 */
export function assignCmd(name: string, value: string, form = '--output cmd'): string {
  refuse(name, value, NOT_PRINTABLE_ASCII, form, 'which cmd cannot take in set "NAME=value" (only printable ASCII is printed)');
  refuse(name, value, CMD_UNQUOTABLE, form, 'which cmd expands or ends the quotes at in set "NAME=value"');
  return `set "${name}=${value}"\n`;
}

/** The token in the asked-for form; an UnsafeValueError when a value cannot be written safely in it. */
export function formatToken(token: TokenJson, output: TokenOutput): string {
  const vars: Array<[string, string]> = [
    ['DATABRICKS_HOST', token.host],
    ...(token.account_id ? ([['DATABRICKS_ACCOUNT_ID', token.account_id]] as Array<[string, string]>) : []),
    ['DATABRICKS_TOKEN', token.access_token],
  ];
  switch (output) {
    case 'raw':
      // For $(...) and a terminal alike: the bare token, which never has a control character.
      refuse('DATABRICKS_TOKEN', token.access_token, CONTROL, '--output raw', 'a control character');
      return `${token.access_token}\n`;
    case 'env':
      // eval "$(dbx-gateway token prod --output env)"
      return vars.map(([k, v]) => assignPosix(k, v)).join('');
    case 'powershell':
      // dbx-gateway token prod --output powershell | Invoke-Expression
      return vars.map(([k, v]) => assignPowerShell(k, v)).join('');
    case 'cmd':
      return vars.map(([k, v]) => assignCmd(k, v)).join('');
    default:
      // `expiry` as `databricks auth token` prints it (Go's oauth2.Token: RFC 3339), for tools
      // written against that; absent for a token that does not expire, as Go reads a zero expiry.
      return `${terminalJson({
        access_token: token.access_token,
        token_type: 'Bearer',
        ...(token.expires_on !== null ? { expiry: new Date(token.expires_on * 1000).toISOString().replace('.000Z', 'Z') } : {}),
        expires_on: token.expires_on,
      })}\n`;
  }
}
