import { escapeControlLines } from '../observability/terminal-text.js';

// Every message the CLI prints for a person goes through here: errors, notes and reports carry
// text from upstreams, identity providers and the running gateway (which may be an older version),
// shown with their control characters escaped (observability/terminal-text.ts). Machine outputs
// (token's shell forms, JSON) are checked or escaped where they are made.

/** Human text on stdout (a table, a report), line feeds and tabs kept. */
export function printOut(text: string): void {
  process.stdout.write(escapeControlLines(text));
}

/** Human text on stderr (an error, a warning, a note), line feeds and tabs kept. */
export function printErr(text: string): void {
  process.stderr.write(escapeControlLines(text));
}
