import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { DEFAULT_PATHEXT, findOnPath, pathExtensions } from '../../src/auth/credentials/find-on-path.js';

// Real directories on this (Linux) machine, searched with the Windows rules: the implementation
// must stat the very paths it builds, so a PATH of '/tmp/...' dirs joined with ';' exercises it.
const root = mkdtempSync(join(tmpdir(), 'dbxgw-findpath-'));
after(() => rmSync(root, { recursive: true, force: true }));

function dirWith(name: string, files: Record<string, number>): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, mode] of Object.entries(files)) {
    writeFileSync(join(dir, file), '@echo off\r\n');
    chmodSync(join(dir, file), mode);
  }
  return dir;
}

describe('findOnPath on win32 (PATHEXT)', () => {
  // What the Azure CLI installs: a Git Bash script `az` next to `az.cmd`.
  const azDir = dirWith('CLI2/wbin', { az: 0o755, 'az.cmd': 0o644 });
  const dbDir = dirWith('databricks', { 'databricks.exe': 0o644 });
  const empty = dirWith('empty', {});

  it('finds az.cmd and databricks.exe on a ;-separated PATH with the default PATHEXT, never the bare script', () => {
    const env = { PATH: [empty, azDir, dbDir].join(';') };
    assert.equal(findOnPath('az', env, 'win32'), `${azDir}/az.cmd`);
    assert.equal(findOnPath('databricks', env, 'win32'), `${dbDir}/databricks.exe`);
    assert.equal(findOnPath('nothing', env, 'win32'), undefined);
    // A POSIX ':' is not a separator on Windows (it is part of C:\...).
    assert.equal(findOnPath('az', { PATH: `${empty}:${azDir}` }, 'win32'), undefined);
  });

  it('uses the default .COM;.EXE;.BAT;.CMD when PATHEXT is unset or empty', () => {
    assert.deepEqual(pathExtensions({}), ['.COM', '.EXE', '.BAT', '.CMD']);
    assert.deepEqual(pathExtensions({ PATHEXT: '' }), DEFAULT_PATHEXT.split(';'));
    assert.deepEqual(pathExtensions({ PATHEXT: '.cmd;;EXE; .Bat ;.CMD' }), ['.cmd', '.EXE', '.Bat']);
  });

  it('tries directories in PATH order, and within one directory the extensions in PATHEXT order', () => {
    const both = dirWith('both', { 'tool.exe': 0o644, 'tool.cmd': 0o644 });
    const later = dirWith('later', { 'tool.com': 0o644 });
    assert.equal(findOnPath('tool', { PATH: `${both};${later}`, PATHEXT: '.CMD;.EXE' }, 'win32'), `${both}/tool.cmd`);
    assert.equal(findOnPath('tool', { PATH: `${both};${later}`, PATHEXT: '.EXE;.CMD' }, 'win32'), `${both}/tool.exe`);
    // .COM comes first in the default PATHEXT, but the directory order wins.
    assert.equal(findOnPath('tool', { PATH: `${both};${later}` }, 'win32'), `${both}/tool.exe`);
    assert.equal(findOnPath('tool', { PATH: `${later};${both}` }, 'win32'), `${later}/tool.com`);
    // An extension PATHEXT does not list is not tried.
    assert.equal(findOnPath('tool', { PATH: both, PATHEXT: '.BAT' }, 'win32'), undefined);
  });

  it('matches PATHEXT case-insensitively (upper-case PATHEXT finds the lower-case file, and back)', () => {
    const upper = dirWith('upper', { 'UP.CMD': 0o644 });
    assert.equal(findOnPath('az', { PATH: azDir, PATHEXT: '.CMD' }, 'win32'), `${azDir}/az.cmd`);
    assert.equal(findOnPath('az', { PATH: azDir, PATHEXT: '.cmd' }, 'win32'), `${azDir}/az.cmd`);
    assert.equal(findOnPath('UP', { PATH: upper, PATHEXT: '.CMD' }, 'win32'), `${upper}/UP.CMD`);
  });

  it('tries a name that already has an extension as is, then with PATHEXT', () => {
    assert.equal(findOnPath('az.cmd', { PATH: azDir }, 'win32'), `${azDir}/az.cmd`);
    const odd = dirWith('odd', { 'my.tool.exe': 0o644 });
    assert.equal(findOnPath('my.tool', { PATH: odd }, 'win32'), `${odd}/my.tool.exe`);
  });

  it('reads Path/PathExt whatever their case (a copied Windows environment), and quoted PATH entries', () => {
    assert.equal(findOnPath('az', { Path: `"${azDir}"`, PathExt: '.CMD' }, 'win32'), `${azDir}/az.cmd`);
    assert.equal(findOnPath('az', { Path: ` ${azDir}/ ;` }, 'win32'), `${azDir}/az.cmd`);
  });

  it('skips directories named like the tool', () => {
    const trap = dirWith('trap', {});
    mkdirSync(join(trap, 'az.cmd'));
    assert.equal(findOnPath('az', { PATH: `${trap};${azDir}` }, 'win32'), `${azDir}/az.cmd`);
  });

  it('keeps backslash directories backslashed (what a real Windows PATH holds)', () => {
    // Not found on Linux, but must not throw on C:\ style entries.
    assert.equal(findOnPath('az', { PATH: 'C:\\Program Files\\Microsoft SDKs\\Azure\\CLI2\\wbin;C:\\Windows' }, 'win32'), undefined);
  });
});

describe('findOnPath on POSIX (executable bit)', () => {
  const bin = dirWith('posix-bin', { az: 0o755, databricks: 0o644, 'az.cmd': 0o755 });

  it('finds an executable file on a :-separated PATH, exactly by name', () => {
    assert.equal(findOnPath('az', { PATH: `/nonexistent:${bin}` }, 'linux'), join(bin, 'az'));
    // PATHEXT means nothing on POSIX.
    assert.equal(findOnPath('az', { PATH: bin, PATHEXT: '.CMD' }, 'linux'), join(bin, 'az'));
  });

  it('does not find a file without the executable bit, or a directory', () => {
    assert.equal(findOnPath('databricks', { PATH: bin }, 'linux'), undefined);
    const dirs = dirWith('posix-dirs', {});
    mkdirSync(join(dirs, 'databricks'));
    assert.equal(findOnPath('databricks', { PATH: dirs }, 'linux'), undefined);
  });

  it('does not split on ; on POSIX', () => {
    assert.equal(findOnPath('az', { PATH: `/nonexistent;${bin}` }, 'linux'), undefined);
  });
});

// Go's exec.LookPath refuses what a relative PATH entry finds (ErrDot): the gateway's start
// directory, or the tool's, must never decide which binary runs.
describe('findOnPath skips relative PATH entries', () => {
  const planted = dirWith('planted', { az: 0o755, 'az.cmd': 0o644 });
  const rel = relative(process.cwd(), planted);

  it('on POSIX: `.`-style and relative directories are not searched, absolute ones are', () => {
    assert.ok(!rel.startsWith('/'), rel);
    assert.equal(findOnPath('az', { PATH: rel }, 'linux'), undefined);
    assert.equal(findOnPath('az', { PATH: `${rel}:${planted}` }, 'linux'), `${planted}/az`);
  });

  it('on Windows: relative and drive-relative entries are not searched', () => {
    assert.equal(findOnPath('az', { PATH: rel }, 'win32'), undefined);
    assert.equal(findOnPath('az', { PATH: `C:planted;${rel}` }, 'win32'), undefined);
    assert.equal(findOnPath('az', { PATH: `${rel};${planted}` }, 'win32'), `${planted}/az.cmd`);
  });
});
