/**
 * Shorter values are not masked: they occur in ordinary words of the messages ("true", "dev", a
 * port), and a secret that short protects nothing.
 */
const MIN_MASKED_LENGTH = 4;

/**
 * The values the config file took from `${VAR}`: secrets by intent (that is what `${VAR}` is for),
 * so every message about the configuration (config errors, a refused reload's log line and its
 * /-/reload answer) shows `${VAR}` where a value would be echoed. The values are held in a private
 * field, so the config's JSON never carries them a second time.
 */
export class EnvValues {
  readonly #names = new Map<string, string>();

  add(name: string, value: string): void {
    if (value.length >= MIN_MASKED_LENGTH) this.#names.set(value, name);
  }

  /** `text` with each value (as written, lower-cased as in a URL's host, URL- or JSON-escaped) as `${VAR}`. */
  mask(text: string): string {
    const longestFirst = [...this.#names].sort(([a], [b]) => b.length - a.length);
    let masked = text;
    for (const [value, name] of longestFirst) {
      for (const form of new Set([value, value.toLowerCase(), encodeURIComponent(value), JSON.stringify(value).slice(1, -1)])) {
        masked = masked.split(form).join(`\${${name}}`);
      }
    }
    return masked;
  }
}
