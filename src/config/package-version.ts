import { readFileSync } from 'node:fs';

/** This package's version (package.json, two levels above dist/config/ and src/config/); "unknown" if unreadable. */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
