/**
 * Scrubs anything token-like from text that may reach a log line or an error body
 * (messages from Entra ID, the az and databricks CLIs, upstream errors).
 */
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  // JWTs (Entra ID and Databricks OAuth access tokens): header.payload.signature, base64url.
  [/\beyJ[\w-]*\.[\w-]*\.[\w-]*/g, '[REDACTED]'],
  // Databricks personal access tokens and OAuth secrets.
  [/\b(dapi|dose|dkea)[0-9a-f]{16,}(-\d+)?\b/gi, '[REDACTED]'],
  // Credentials in an Authorization-style value.
  [/\b(Bearer|Basic)\s+[\w\-.~+/]+=*/gi, '$1 [REDACTED]'],
  // key=value or "key": "value" pairs whose name says secret.
  [
    /((?:access_token|refresh_token|id_token|client_secret|password|secret|token)"?\s*[:=]\s*"?)[^\s",&}]+/gi,
    '$1[REDACTED]',
  ],
  // Any other long opaque run (40+ chars; UUIDs and correlation ids are 36 and survive).
  [/[A-Za-z0-9_\-+~]{40,}={0,2}/g, '[REDACTED]'],
];

export function scrubSecrets(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}
