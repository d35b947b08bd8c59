/**
 * The suite never reaches the developer's machine: scripts/run-tests.mjs gives the test process a
 * throwaway home and poisoned az/databricks first on PATH, and the helpers give children and
 * fakes a PATH without them. A Spark test once ran a real signed-in az because the gateway's env
 * named the fake but @azure/identity ran `az` from the process's PATH.
 */
import assert from 'node:assert/strict';
import { userInfo } from 'node:os';
import { dirname, relative } from 'node:path';
import { describe, it } from 'node:test';
import { findOnPath } from '../../src/auth/credentials/find-on-path.js';
import { childEnv } from '../helpers/cli.js';
import { installFakeAz } from '../helpers/fake-az.js';
import { installFakeDatabricksCli } from '../helpers/fake-databricks-cli.js';

const inside = (dir: string, path: string | undefined) => path !== undefined && !relative(dir, path).startsWith('..');
const RUNNER = process.env.DBX_GATEWAY_TEST === '1' ? false : 'run by scripts/run-tests.mjs only';
const POISON_DIR = process.env.DBX_GATEWAY_TEST_POISON_DIR;

describe('the test process (scripts/run-tests.mjs)', { skip: RUNNER }, () => {
  it('has a throwaway home, and every config dir a tool could write to is inside it', () => {
    const home = process.env.HOME!;
    assert.notEqual(home, userInfo().homedir, 'not the real home');
    for (const name of ['USERPROFILE', 'APPDATA', 'LOCALAPPDATA', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'AZURE_CONFIG_DIR', 'KUBECONFIG']) {
      assert.ok(inside(home, process.env[name]), `${name}=${process.env[name]} is inside ${home}`);
    }
    const leaked = Object.keys(process.env).filter((k) => /^(DATABRICKS_|ARM_|DBX_GATEWAY_CONFIG$)/.test(k));
    assert.deepEqual(leaked, [], 'no credential or config settings of the shell');
  });

  it('finds the poisoned az and databricks first on PATH', { skip: POISON_DIR === undefined && 'DBX_GATEWAY_POISON_TOOLS=0' }, () => {
    for (const tool of ['az', 'databricks']) assert.equal(dirname(findOnPath(tool, process.env) ?? ''), POISON_DIR, tool);
  });
});

describe('what tests give gateways and children', () => {
  it('childEnv: no tools on PATH and a home of its own', () => {
    const env = childEnv();
    assert.equal(findOnPath('az', env), undefined);
    assert.equal(findOnPath('databricks', env), undefined);
    assert.notEqual(env.HOME, process.env.HOME);
    assert.notEqual(env.HOME, userInfo().homedir);
  });

  it("a fake's PATH holds the fake and nothing else (never the process's az or databricks)", () => {
    const az = installFakeAz();
    const cli = installFakeDatabricksCli();
    assert.equal(findOnPath('az', { PATH: az.path }), `${az.dir}/az`);
    assert.equal(findOnPath('databricks', { PATH: az.path }), undefined);
    assert.equal(findOnPath('databricks', { PATH: cli.path }), `${cli.dir}/databricks`);
    assert.equal(findOnPath('az', { PATH: cli.path }), undefined);
  });
});
