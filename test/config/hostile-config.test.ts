import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BIN } from '../helpers/cli.js';

const HOME = mkdtempSync(join(tmpdir(), 'dbxgw-hostile-'));

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: HOME, env: { PATH: process.env.PATH ?? '', HOME, ...env }, encoding: 'utf8' });
}

/** Nine levels of nine aliases each: 9^9 (387 million) strings once expanded. */
function billionLaughs(): string {
  const lines = [`a: &a [${Array(9).fill('"lol"').join(', ')}]`];
  let previous = 'a';
  for (const name of 'bcdefghi') {
    lines.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(', ')}]`);
    previous = name;
  }
  return `${lines.join('\n')}\n`;
}

describe('a YAML alias bomb (billion laughs) in a config file', () => {
  it('is a config error naming the file (exit 2), not a stack trace, for config check, serve and keys list', () => {
    const file = join(HOME, 'bomb.yaml');
    writeFileSync(file, billionLaughs());
    for (const args of [
      ['config', 'check', '--config', file, '--no-profiles'],
      ['serve', '--port', '0', '--config', file, '--no-profiles'],
      ['keys', 'list', '--config', file],
    ]) {
      const res = run(args);
      assert.equal(res.status, 2, `${args.join(' ')}: ${res.stderr}`);
      assert.ok(res.stderr.includes(`${file}: its YAML aliases (*name) expand to more than 100 copies`), res.stderr);
      assert.doesNotMatch(res.stderr, /\n\s+at |ReferenceError/);
      assert.equal(res.stdout, '');
    }
  });
});
