/**
 * Text from elsewhere (an upstream's grpc-message or error body, an identity provider's
 * error_description, a SCIM user name) reaches a person's terminal through the text log, `status`,
 * `doctor` and the CLI's messages. A terminal obeys what it is sent: ESC starts a control sequence
 * (ECMA-48: colours, cursor moves, clearing the screen; OSC 8 hyperlinks, OSC 52 clipboard writes),
 * CR and BS overwrite what is shown, BEL rings, and C1 codes (U+0080-U+009F, e.g. U+009B as CSI)
 * do the same as ESC sequences on terminals that honour them. Unicode bidi overrides and isolates
 * (U+202A-U+202E, U+2066-U+2069) reorder what is shown (CVE-2021-42574, "Trojan Source"). All of
 * them are shown as visible escapes instead (`\x1b`, `\u202e`): the text stays readable and can
 * do nothing. Backslashes are left as they are (Windows paths stay legible); the escapes are for
 * the eye, not for parsing back.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters it escapes
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
/** The same, keeping line feeds and tabs: for text already made of lines (a table, a report). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters it escapes
const CONTROL_EXCEPT_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
/** What JSON.stringify leaves raw but a terminal may act on: DEL, C1 and the bidi controls. */
const JSON_RAW_CONTROL = /[\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

const SHORT: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function visible(char: string): string {
  const short = SHORT[char];
  if (short) return short;
  const code = char.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

function jsonEscape(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** One value for one line: every control character, line breaks included, shown escaped. */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, visible);
}

/** Text of several lines: as escapeControl, but line feeds and tabs stay. */
export function escapeControlLines(text: string): string {
  return text.replace(CONTROL_EXCEPT_LINES, visible);
}

/**
 * JSON for stdout: JSON.stringify escapes C0 but leaves DEL, C1 and the bidi controls raw (RFC
 * 8259 section 7 requires only C0 to be escaped); here they are \u escapes too, which any JSON
 * reader reads back as the same string.
 */
export function terminalJson(value: unknown, space?: number): string {
  return escapeJsonText(JSON.stringify(value, null, space));
}

/** A JSON text (a pino line) with DEL, C1 and the bidi controls as \u escapes: the same JSON value. */
export function escapeJsonText(json: string): string {
  return json.replace(JSON_RAW_CONTROL, jsonEscape);
}
