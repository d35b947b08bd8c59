#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm install` (the `prepare` script).
import { existsSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

// Node 22.1+ keeps compiled code between runs (a CLI called from scripts starts faster); Node 20
// has no compile cache and skips this.
module.enableCompileCache?.();

const cli = new URL('../dist/cli/index.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write('dbx-gateway: dist/ is missing; run `npm install` (or `npm run build`) in the checkout first.\n');
  process.exit(1);
}
const { main } = await import(cli.href);
// Exit explicitly: keep-alive sockets of token sources (https global agent, MSAL) must not keep a
// finished `token` or `doctor` run alive; `serve` resolves only after its drain.
process.exit(await main(process.argv.slice(2)));
