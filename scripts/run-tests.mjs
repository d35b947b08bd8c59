// Runs every test/**/*.test.ts with Node's built-in runner (tsx for TypeScript). Node 20's
// --test does not expand globs itself, so the files are listed here.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'helpers' ? [] : findTests(p);
    return e.name.endsWith('.test.ts') ? [p] : [];
  });
}

const only = process.argv.slice(2);
// Arguments may be test files or directories of them.
const files = (only.length > 0 ? only : ['test']).flatMap((p) => (statSync(p).isDirectory() ? findTests(p).sort() : [p]));
// The throwaway test PKI, made once per run in Node (no openssl needed on the machine).
const pki = mkdtempSync(join(tmpdir(), 'dbxgw-test-pki-'));
const made = spawnSync(process.execPath, ['--import', 'tsx', 'test/helpers/make-pki.ts', pki], { stdio: 'inherit' });
if (made.status !== 0) process.exit(made.status ?? 1);
// DBX_GATEWAY_TEST_REPORTER=dot for the extra Node versions in .ci/run (one summary per CI log).
const reporter = process.env.DBX_GATEWAY_TEST_REPORTER ?? 'spec';
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-reporter=${reporter}`, '--test-timeout=120000', ...files], {
  stdio: 'inherit',
  env: { ...process.env, DBX_GATEWAY_TEST: '1', DBX_GATEWAY_TEST_PKI: pki },
});
rmSync(pki, { recursive: true, force: true });
process.exit(result.status ?? 1);
