#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm install` (the `prepare` script). CommonJS,
// so that the answers below start no ESM loader: they take what `node -e 0` takes, nearly.
'use strict';
const { existsSync, readFileSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

// Node 22.1+ keeps compiled code between runs (a CLI called from scripts starts faster); Node 20
// has no compile cache and skips this.
require('node:module').enableCompileCache?.();

const root = join(__dirname, '..');
const args = process.argv.slice(2);
// What scripts and people call most, answered before any module of the CLI loads: the version,
// and the top-level help the build rendered from the CLI's own parser (dist/cli/help.txt).
if (args.length === 1 && ['--version', '-V', 'version'].includes(args[0])) {
  process.stdout.write(`${JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version}\n`);
  process.exit(0);
}
const help = join(root, 'dist', 'cli', 'help.txt');
if (args.length === 1 && ['--help', '-h', 'help'].includes(args[0]) && existsSync(help)) {
  process.stdout.write(readFileSync(help, 'utf8'));
  process.exit(0);
}

const cli = join(root, 'dist', 'cli', 'index.js');
if (!existsSync(cli)) {
  process.stderr.write('dbx-gateway: dist/ is missing; run `npm install` (or `npm run build`) in the checkout first.\n');
  process.exit(1);
}
// Exit explicitly: keep-alive sockets of token sources (https global agent, MSAL) must not keep a
// finished `token` or `doctor` run alive; `serve` resolves only after its drain.
import(pathToFileURL(cli).href).then(({ main }) => main(args)).then((code) => process.exit(code));
