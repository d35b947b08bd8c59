// Part of `npm run build`: writes the top-level help, rendered by the CLI's own commander program,
// to dist/cli/help.txt, so that bin/dbx-gateway.cjs answers --help without loading the parser.
import { writeFileSync } from 'node:fs';

const { renderHelp } = await import(new URL('../dist/cli/index.js', import.meta.url).href);
writeFileSync(new URL('../dist/cli/help.txt', import.meta.url), renderHelp());
