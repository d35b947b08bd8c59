import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { commandLine } from '../../src/auth/credentials/run-tool.js';
import { loginDir, loginFile, writeLogin } from '../../src/auth/login-store.js';
import { databricksCfgPath } from '../../src/config/databrickscfg.js';
import { configDir, envValue, expandHome, homeDir } from '../../src/config/paths.js';

// The Windows rules, checked on Linux by passing platform 'win32'. scripts/windows/run-under-wine.sh
// checks the same under the real Windows build of Node.

const win = {
  USERPROFILE: 'C:\\Users\\ana',
  APPDATA: 'C:\\Users\\ana\\AppData\\Roaming',
  // What Git Bash exports: its own home, which the Databricks CLI does not use on Windows.
  HOME: 'H:\\',
};

describe('configDir', () => {
  it('is %APPDATA%\\dbx-gateway on Windows, else under %USERPROFILE%\\AppData\\Roaming; XDG and HOME do not count', () => {
    assert.equal(configDir(win, 'win32'), 'C:\\Users\\ana\\AppData\\Roaming\\dbx-gateway');
    assert.equal(configDir({ USERPROFILE: 'C:\\Users\\ana', XDG_CONFIG_HOME: '/c/x' }, 'win32'), 'C:\\Users\\ana\\AppData\\Roaming\\dbx-gateway');
    assert.equal(configDir({ AppData: 'D:\\Roam' }, 'win32'), 'D:\\Roam\\dbx-gateway');
    assert.equal(configDir({ HOME: 'H:\\' }, 'win32'), undefined);
  });

  it('is $XDG_CONFIG_HOME/dbx-gateway, else ~/.config/dbx-gateway elsewhere; APPDATA does not count', () => {
    assert.equal(configDir({ HOME: '/home/ana', XDG_CONFIG_HOME: '/xdg' }, 'linux'), '/xdg/dbx-gateway');
    assert.equal(configDir({ HOME: '/home/ana', XDG_CONFIG_HOME: 'relative' }, 'linux'), '/home/ana/.config/dbx-gateway');
    assert.equal(configDir({ HOME: '/Users/ana', APPDATA: 'C:\\x' }, 'darwin'), '/Users/ana/.config/dbx-gateway');
    assert.equal(configDir({}, 'linux'), undefined);
  });

  it('puts stored logins in <configDir>\\logins', () => {
    assert.equal(loginDir(win, 'win32'), 'C:\\Users\\ana\\AppData\\Roaming\\dbx-gateway\\logins');
    const file = loginFile(win, new URL('https://adb-1.2.azuredatabricks.net'), undefined, 'win32');
    assert.match(file ?? '', /^C:\\Users\\ana\\AppData\\Roaming\\dbx-gateway\\logins\\adb-1\.2\.azuredatabricks\.net-[0-9a-f]{12}\.json$/);
    assert.equal(loginDir({ HOME: '/home/ana' }, 'linux'), '/home/ana/.config/dbx-gateway/logins');
  });
});

describe('home and ~/.databrickscfg', () => {
  it('reads %USERPROFILE% on Windows even when Git Bash set HOME, else HOMEDRIVE+HOMEPATH', () => {
    assert.equal(homeDir(win, 'win32'), 'C:\\Users\\ana');
    assert.equal(homeDir({ HOMEDRIVE: 'C:', HOMEPATH: '\\Users\\bo', HOME: '/h' }, 'win32'), 'C:\\Users\\bo');
    assert.equal(homeDir({ HOME: '/home/ana', USERPROFILE: 'C:\\Users\\ana' }, 'linux'), '/home/ana');
    assert.equal(homeDir({ HOME: 'H:\\' }, 'win32'), undefined);
  });

  it('is %USERPROFILE%\\.databrickscfg on Windows and ~/.databrickscfg elsewhere', () => {
    assert.deepEqual(databricksCfgPath(win, 'win32'), { path: 'C:\\Users\\ana\\.databrickscfg', explicit: false });
    assert.deepEqual(databricksCfgPath({ HOME: '/home/ana' }, 'linux'), { path: '/home/ana/.databrickscfg', explicit: false });
    assert.equal(databricksCfgPath({ HOME: 'H:\\' }, 'win32'), undefined);
  });

  it('expands ~ and ~\\ in DATABRICKS_CONFIG_FILE against the Windows home', () => {
    assert.deepEqual(databricksCfgPath({ ...win, DATABRICKS_CONFIG_FILE: '~\\cfg\\dbx' }, 'win32'), { path: 'C:\\Users\\ana\\cfg\\dbx', explicit: true });
    assert.deepEqual(databricksCfgPath({ ...win, Databricks_Config_File: '~/cfg' }, 'win32'), { path: 'C:\\Users\\ana\\cfg', explicit: true });
    assert.equal(expandHome('~\\x', '/home/ana', 'linux'), '~\\x');
    assert.equal(expandHome('~/x', '/home/ana', 'linux'), '/home/ana/x');
  });

  it('looks names up case-insensitively only on Windows', () => {
    assert.equal(envValue({ Path: 'a' }, 'PATH', 'win32'), 'a');
    assert.equal(envValue({ Path: 'a' }, 'PATH', 'linux'), undefined);
  });
});

describe('writeLogin', () => {
  it('writes 0600 in a 0700 directory on POSIX', { skip: process.platform === 'win32' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-login-'));
    try {
      const file = join(dir, 'logins', 'x.json');
      writeLogin(file, { host: 'https://h', clientId: 'c', refreshToken: 'r', savedAt: 'now' });
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, 'logins')).mode & 0o777, 0o700);
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).refreshToken, 'r');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('starting a tool (az, databricks) on Windows', () => {
  const env = { ComSpec: 'C:\\Windows\\system32\\cmd.exe' };

  it('spawns an .exe directly (and anything on POSIX)', () => {
    assert.deepEqual(commandLine('C:\\bin\\databricks.exe', ['auth', 'token'], env, 'win32'), ['C:\\bin\\databricks.exe', ['auth', 'token'], {}]);
    assert.deepEqual(commandLine('/usr/bin/databricks.cmd', ['x'], env, 'linux'), ['/usr/bin/databricks.cmd', ['x'], {}]);
  });

  it('runs a .cmd under a path with spaces through cmd.exe /d /s /c, the path and each argument quoted (CVE-2024-27980)', () => {
    const az = 'C:\\Program Files\\Microsoft SDKs\\Azure\\CLI2\\wbin\\az.cmd';
    const [file, args, options] = commandLine(az, ['account', 'get-access-token', '--resource', 'https://management.core.windows.net/'], env, 'win32');
    assert.equal(file, 'C:\\Windows\\system32\\cmd.exe');
    assert.deepEqual(options, { windowsVerbatimArguments: true });
    assert.deepEqual(args, [
      '/d',
      '/s',
      '/c',
      '""C:\\Program Files\\Microsoft SDKs\\Azure\\CLI2\\wbin\\az.cmd" "account" "get-access-token" "--resource" "https://management.core.windows.net/""',
    ]);
  });

  it('keeps cmd.exe metacharacters that quotes protect literal: & | < > ( ) ^ ; , and spaces', () => {
    const [, args] = commandLine('C:\\Program Files (x86)\\db\\databricks.CMD', ['--profile', 'a&b|c <d> (y)^ ;e,f'], env, 'win32');
    assert.equal(args[3], '""C:\\Program Files (x86)\\db\\databricks.CMD" "--profile" "a&b|c <d> (y)^ ;e,f""');
  });

  it('doubles trailing backslashes, normalizes the path and falls back to cmd.exe without ComSpec', () => {
    assert.equal(commandLine('x.bat', ['C:\\dir\\'], {}, 'win32')[1][3], '""x.bat" "C:\\dir\\\\""');
    assert.equal(commandLine('C:/tools/az.cmd', [], {}, 'win32')[1][3], '""C:\\tools\\az.cmd""');
    assert.equal(commandLine('x.bat', [], {}, 'win32')[0], 'cmd.exe');
    assert.equal(commandLine('x.bat', [], { COMSPEC: 'D:\\cmd.exe' }, 'win32')[0], 'D:\\cmd.exe');
    // Without ComSpec, System32's cmd.exe: a bare name is looked up in the current directory first.
    assert.equal(commandLine('x.bat', [], { SystemRoot: 'C:\\Windows' }, 'win32')[0], 'C:\\Windows\\System32\\cmd.exe');
  });

  it('takes a name ending in dots or spaces after .cmd as the batch file Windows makes of it', () => {
    for (const file of ['C:\\db\\databricks.cmd.', 'C:\\db\\databricks.cmd ', 'C:\\db\\x.BAT. .']) {
      assert.equal(commandLine(file, ['auth'], env, 'win32')[0], env.ComSpec, JSON.stringify(file));
    }
  });

  it('refuses what quotes cannot protect: " % ! and control characters, in an argument or the path', () => {
    for (const bad of ['a"b', '%PATH%', 'a!b!', 'a\nb', 'a\rb', 'a\u0000b', 'a\u001bb']) {
      assert.throws(
        () => commandLine('x.cmd', ['--profile', bad], env, 'win32'),
        /cannot run x\.cmd through cmd\.exe: the argument .* has /,
        JSON.stringify(bad),
      );
    }
    assert.throws(() => commandLine('C:\\100%\\az.cmd', [], env, 'win32'), /through cmd\.exe: its path "C:\\\\100%\\\\az\.cmd" has "%"/);
    assert.throws(() => commandLine('C:\\wow!\\az.cmd', [], env, 'win32'), /through cmd\.exe: its path .* has "!"/);
    // Only a .cmd or .bat goes through cmd.exe: an .exe takes them all.
    assert.deepEqual(commandLine('C:\\db\\databricks.exe', ['%x% !y! "z"'], env, 'win32')[1], ['%x% !y! "z"']);
  });
});
