/**
 * Scrubs anything token-like from text that may reach a log line or an error body
 * (messages from Entra ID, the az and databricks CLIs, upstream errors), the doctor and the status
 * page. The same text carries our own help ("azure-client-secret: tenantId, clientId and
 * clientSecret ..."), which must come through intact, so a name that says secret only redacts
 * what is evidently its value (see NAMED_VALUE).
 */
const REDACTED = '[REDACTED]';

/** Names whose value is a secret: the whole name (snake, kebab or camel case) ends in one of these. */
const SECRET_NAMES = `(?:access_?token|refresh_?token|id_?token|client_?secret|client_?assertion|api_?key|secret|token|password|passwd)`;

/**
 * A secret-named key and its value: `name=value` (forms, queries, env), `"name": "value"` (JSON,
 * also JSON escaped inside a string), `name: 'value'` (util.inspect), `name: value` (YAML, prose).
 * The name starts a word (`[\w-]*` before the secret word, nothing word-like before that).
 * Groups: 1 the name with its separator, 2 the separator, 3/4/5 a "double", 'single' or \"escaped\"
 * quoted value, 6 a bare value.
 */
const NAMED_VALUE = new RegExp(
  String.raw`(?<![\w-])([\w-]*?${SECRET_NAMES}(?:\\?["'])?\s*([:=])\s*)` +
    String.raw`(?:"((?:\\.|[^"\\\r\n])*)"|'((?:\\.|[^'\\\r\n])*)'|\\"([^"\\\r\n]*)\\"|([^\s"'\\,;&}]+))`,
  'gi',
);

/**
 * Whether a bare value after `name:` is a secret rather than the next word of a sentence: a single
 * run of 8+ non-space characters with a digit in it. Prose ("secret: tenantId, ...", "token: 30 s",
 * "password: must be at least ...") has neither; tokens, secrets and generated ids do. After `=`
 * and in quotes any value counts: prose does not write `token=word` or `"token": "word"`.
 */
function bareValueIsSecret(value: string): boolean {
  return value.length >= 8 && /\d/.test(value);
}

function redactNamedValue(match: string, head: string, separator: string, double?: string, single?: string, escaped?: string, bare?: string): string {
  if (double !== undefined) return double === '' ? match : `${head}"${REDACTED}"`;
  if (single !== undefined) return single === '' ? match : `${head}'${REDACTED}'`;
  if (escaped !== undefined) return escaped === '' ? match : `${head}\\"${REDACTED}\\"`;
  if (bare === undefined || bare === REDACTED) return match;
  return separator === '=' || bareValueIsSecret(bare) ? `${head}${REDACTED}` : match;
}

const SECRET_PATTERNS: Array<[RegExp, string | ((match: string, ...groups: string[]) => string)]> = [
  // JWTs (Entra ID and Databricks OAuth access tokens): header.payload.signature, base64url.
  [/\beyJ[\w-]*\.[\w-]*\.[\w-]*/g, REDACTED],
  // Databricks personal access tokens and OAuth secrets.
  [/\b(dapi|dose|dkea)[0-9a-f]{16,}(-\d+)?\b/gi, REDACTED],
  // Entra ID client secrets: 3 characters, a version digit, "Q~", 31-34 more of [A-Za-z0-9_~.-]
  // (Microsoft's identifiable AadClientAppSecret format, SEC101/156), 40 in all today. The "." and
  // "~" keep them out of the long-run rule below. A longer run is taken whole, so none of it shows.
  [/[\w~.-]{3}\dQ~[\w~.-]{31,}/g, REDACTED],
  // Credentials in an Authorization-style value.
  [/\b(Bearer|Basic)\s+[\w\-.~+/]+=*/gi, `$1 ${REDACTED}`],
  // key=value, "key": "value" and key: value pairs whose name says secret.
  [NAMED_VALUE, redactNamedValue as (match: string, ...groups: string[]) => string],
  // Any other long opaque run (40+ chars; UUIDs and correlation ids are 36 and survive).
  [/[A-Za-z0-9_\-+~]{40,}={0,2}/g, REDACTED],
];

export function scrubSecrets(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) {
    out = typeof replacement === 'string' ? out.replace(pattern, replacement) : out.replace(pattern, replacement);
  }
  return out;
}

/** `/metadata/` in any letter case, as the decoded path spells it. */
const METADATA_PREFIX = /\/metadata\//i;

/**
 * A request path with the metadata service's secret (everything after `/metadata/`) replaced,
 * whatever the letter case (/METADATA/SECRET is a 404, still with the secret in it) and however
 * the prefix is percent-encoded (/%6detadata%2FSECRET): the match runs on the decoded path and
 * the raw text is cut where the decoded match ends.
 */
export function redactMetadataSecret(path: string): string {
  if (!path.includes('%')) {
    const plain = METADATA_PREFIX.exec(path);
    return plain ? `${path.slice(0, plain.index + plain[0].length)}${REDACTED}` : path;
  }
  // starts[i]: where the i-th decoded character begins in the raw path.
  const starts: number[] = [];
  let decoded = '';
  for (let i = 0; i < path.length; ) {
    starts.push(i);
    if (path[i] === '%' && /^[0-9a-f]{2}$/i.test(path.slice(i + 1, i + 3))) {
      decoded += String.fromCharCode(Number.parseInt(path.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      decoded += path[i];
      i += 1;
    }
  }
  const match = METADATA_PREFIX.exec(decoded);
  if (!match) return path;
  const end = starts[match.index + match[0].length] ?? path.length;
  return `${path.slice(0, end)}${REDACTED}`;
}
