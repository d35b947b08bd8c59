import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ChildOutput, watchOutput } from '../helpers/child-output.js';
import { childEnv, NO_TOOLS_PATH } from '../helpers/cli.js';
import { request } from '../helpers/http.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };

/**
 * npm's own CLI script, run with this Node (no shell: npm is npm.cmd on Windows): the one that runs
 * `npm test`, else the one beside an `npm` on PATH (a symlink to it on POSIX, npm.cmd next to
 * node_modules/npm on Windows). Undefined when there is none.
 */
function findNpmCli(): string | undefined {
  if (process.env.npm_execpath?.endsWith('npm-cli.js')) return process.env.npm_execpath;
  for (const dir of [dirname(process.execPath), ...(process.env.PATH ?? '').split(delimiter)].filter(Boolean)) {
    const bundled = join(dir, 'node_modules', 'npm', 'bin', 'npm-cli.js');
    if (existsSync(bundled)) return bundled;
    const beside = join(dir, '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
    if (existsSync(beside)) return beside;
    if (existsSync(join(dir, 'npm'))) {
      const real = realpathSync(join(dir, 'npm'));
      if (real.endsWith('npm-cli.js')) return real;
    }
  }
  return undefined;
}

const NPM_CLI = findNpmCli();

/** The package names that `file`'s bare import specifiers load (`@scope/name/sub` is `@scope/name`). */
function importedPackages(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^import\s+)['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
  return specifiers
    .filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtinModules.includes(s))
    .map((s) =>
      s
        .split('/')
        .slice(0, s.startsWith('@') ? 2 : 1)
        .join('/'),
    );
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]));
}

/**
 * The package as `npm install -g ./dbx-gateway-X.tgz` lays it out, without the registry: the tarball
 * `npm pack` makes (with --ignore-scripts: `npm test` has just built dist/, and rebuilding it would
 * pull it from under the other tests), unpacked outside the checkout, with a node_modules holding
 * only the packages of `dependencies` (links to the checkout's). Run from another folder with an
 * empty HOME: what `npx dbx-gateway` in the checkout hides (dist/ not packed, a runtime import of a
 * devDependency) fails here. scripts/install-check.sh, run by .ci/run, does the real install.
 */
describe('the packed package, installed outside the checkout', { skip: NPM_CLI ? false : 'no npm CLI found beside node or on PATH' }, () => {
  let scratch: string;
  let packageDir: string;
  let contents: string[];
  let elsewhere: string;
  let env: NodeJS.ProcessEnv;
  let gateway: ChildProcess | undefined;
  let output: ChildOutput;

  const cli = (args: string[]) => spawnSync(process.execPath, [join(packageDir, 'bin', 'dbx-gateway.cjs'), ...args], { cwd: elsewhere, env, encoding: 'utf8' });

  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'dbxgw-packed-'));
    const packEnv = childEnv({ PATH: process.env.PATH ?? '' });
    const pack = spawnSync(process.execPath, [NPM_CLI!, 'pack', '--ignore-scripts', '--json', '--pack-destination', scratch], {
      cwd: ROOT,
      env: { ...packEnv, npm_config_cache: join(packEnv.HOME!, '.npm') },
      encoding: 'utf8',
    });
    assert.equal(pack.status, 0, `npm pack failed:\n${pack.stderr}`);
    const [packed] = JSON.parse(pack.stdout) as [{ filename: string; files: { path: string }[] }];
    contents = packed.files.map((f) => f.path);
    packageDir = join(scratch, 'prefix', 'lib', 'node_modules', 'dbx-gateway');
    mkdirSync(packageDir, { recursive: true });
    const untar = spawnSync('tar', ['-xzf', join(scratch, packed.filename), '-C', packageDir, '--strip-components=1'], { encoding: 'utf8' });
    assert.equal(untar.status, 0, `tar failed:\n${untar.stderr}`);
    for (const name of Object.keys(PACKAGE.dependencies)) {
      const link = join(packageDir, 'node_modules', name);
      mkdirSync(dirname(link), { recursive: true });
      symlinkSync(realpathSync(join(ROOT, 'node_modules', name)), link, 'junction');
    }
    elsewhere = join(scratch, 'elsewhere');
    mkdirSync(elsewhere);
    env = childEnv({ PATH: NO_TOOLS_PATH });
  });

  after(async () => {
    if (gateway && gateway.exitCode === null) {
      const exited = new Promise((resolve) => gateway!.once('exit', resolve));
      gateway.kill('SIGTERM');
      await exited;
    }
  });

  it('carries the built CLI and its help, and no sources or tests', () => {
    for (const file of ['package.json', 'README.md', 'bin/dbx-gateway.cjs', 'dist/cli/index.js', 'dist/cli/help.txt']) {
      assert.ok(contents.includes(file), `the tarball lacks ${file} (package.json "files"; \`prepare\` builds dist/): ${contents.length} files`);
    }
    assert.deepEqual(
      contents.filter((f) => /^(src|test|bench|scripts)\//.test(f)),
      [],
    );
  });

  it('imports at run time only packages of `dependencies`', () => {
    const devOnly = new Set<string>();
    for (const file of listFiles(join(packageDir, 'dist')).filter((f) => /\.c?js$/.test(f))) {
      for (const name of importedPackages(file)) if (!(name in PACKAGE.dependencies)) devOnly.add(`${name} (${relative(packageDir, file)})`);
    }
    assert.deepEqual([...devOnly], [], 'imported by dist/ but not in package.json dependencies: an install from the tarball lacks them');
  });

  it('answers --version and --help from another folder', () => {
    const version = cli(['--version']);
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), PACKAGE.version);
    const help = cli(['--help']);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /dbx-gateway/);
  });

  it('serves the demo, and `token demo` gets its token from that running gateway', async () => {
    gateway = spawn(process.execPath, [join(packageDir, 'bin', 'dbx-gateway.cjs'), 'serve', '--port', '0', '--demo', '--log-format', 'json'], {
      cwd: elsewhere,
      env,
    });
    output = watchOutput(gateway);
    const [, url] = await output.waitForOutput('stdout', /"url":"(http:\/\/[^"]+)"/, { timeoutMs: 20_000 });
    const clusters = await request(`${url}/ws/demo/api/2.0/clusters/list`);
    assert.equal(clusters.status, 200, clusters.text);
    assert.ok(Array.isArray(clusters.json().clusters), clusters.text);
    // The demo's token source lives only inside the running gateway: a token means the CLI found it.
    const token = cli(['token', 'demo', '--output', 'json']);
    assert.equal(token.status, 0, token.stderr);
    assert.match(token.stdout, /"access_token":"[^"]+"/);
  });
});
