import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { assignCmd, assignPosix, assignPowerShell, UnsafeValueError } from '../../src/cli/token-output.js';
import { runCli } from '../helpers/cli.js';

// Issue 19 item 7: `token --output cmd` escaped nothing (a line break in a value became a second
// command for FOR /F ... DO %i) and `--output powershell` escaped only the ASCII quote (PowerShell
// also ends a single-quoted string at U+2018-U+201B). Each form is now one assignment per variable
// or a refusal: exit 1, the reason on stderr, nothing on stdout.

/** What PowerShell reads back from a single-quoted string: doubled quotes stand for one (about_Quoting_Rules). */
function readPowerShellSingleQuoted(line: string, name: string): string {
  const match = new RegExp(`^\\$env:${name} = '((?:[^'\\u2018-\\u201b]|''|\\u2018\\u2018|\\u2019\\u2019|\\u201a\\u201a|\\u201b\\u201b)*)'$`).exec(line);
  assert.ok(match, `not one single-quoted assignment: ${JSON.stringify(line)}`);
  return match[1]!.replace(/(['\u2018-\u201b])\1/g, '$1');
}

describe('token --output cmd|powershell|env is one safe assignment or a refusal', () => {
  it('cmd: takes & | < > ^ inside the quotes, refuses line breaks, ", % and ! and anything but printable ASCII', () => {
    assert.equal(assignCmd('DATABRICKS_TOKEN', "dapi^&|<>()'x"), `set "DATABRICKS_TOKEN=dapi^&|<>()'x"\n`);
    for (const hostile of ['dapi\r\nset "X=1"', 'dapi\nwhoami', 'dapi"&calc&"', 'dapi%PATH%', 'dapi!PATH!', 'dapi\u0000', 'dapi\u2019x', 'dapi\u009b31m']) {
      assert.throws(() => assignCmd('DATABRICKS_TOKEN', hostile), UnsafeValueError, JSON.stringify(hostile));
    }
  });

  it('powershell: doubles the quotes, refuses line breaks, control characters and the typographic quotes (anything but printable ASCII)', () => {
    const line = assignPowerShell('DATABRICKS_TOKEN', "dapi'; calc; 'x");
    assert.equal(line, "$env:DATABRICKS_TOKEN = 'dapi''; calc; ''x'\n");
    assert.equal(readPowerShellSingleQuoted(line.trimEnd(), 'DATABRICKS_TOKEN'), "dapi'; calc; 'x");
    assert.equal(assignPowerShell('DATABRICKS_TOKEN', 'dapi%PATH%"$x`'), `$env:DATABRICKS_TOKEN = 'dapi%PATH%"$x\`'\n`);
    for (const hostile of ['dapi\u2019; calc; \u2019', 'dapi\u2018', 'dapi\u201a', 'dapi\u201b', 'dapi\nwhoami', 'dapi\r', 'dapi\u001b[31m', 'dapi\u0451']) {
      assert.throws(() => assignPowerShell('DATABRICKS_TOKEN', hostile), UnsafeValueError, JSON.stringify(hostile));
    }
  });

  it('env: single quotes a real sh reads back exactly, and refuses control characters', () => {
    const value = `dapi'"$(whoami)\`id\`%PATH%\u2019!x\\`;
    const script = `${assignPosix('DATABRICKS_TOKEN', value)}printf %s "$DATABRICKS_TOKEN"`;
    const sh = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    assert.equal(sh.status, 0, sh.stderr);
    assert.equal(sh.stdout, value);
    for (const hostile of ['dapi\nwhoami', 'dapi\r', 'dapi\u001b]8;;http://x\u0007', 'dapi\u009b', 'dapi\u202e']) {
      assert.throws(() => assignPosix('DATABRICKS_TOKEN', hostile), UnsafeValueError, JSON.stringify(hostile));
    }
  });

  it('the CLI prints one assignment per variable, or refuses with the reason on stderr and nothing on stdout', async () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-token-quote-'));
    const env = { PATH: process.env.PATH ?? '', HOME: home };
    const token = async (value: string, output: string) => {
      const config = join(home, 'gw.yaml');
      // JSON's string escapes are YAML's double-quoted ones.
      writeFileSync(config, `routes:\n  prod: { host: https://adb-1.1.azuredatabricks.net, credential: { type: pat, token: ${JSON.stringify(value)} } }\n`);
      return runCli(['token', 'prod', '--config', config, '--no-profiles', '--output', output], env);
    };
    const host = 'DATABRICKS_HOST=https://adb-1.1.azuredatabricks.net';

    const breakOut = await token('dapi1\r\nset "EVIL=1"\r\n', 'cmd');
    assert.equal(breakOut.status, 1);
    assert.equal(breakOut.stdout, '');
    assert.match(
      breakOut.stderr,
      /cannot print DATABRICKS_TOKEN for --output cmd: it has U\+000D at position 6, .*nothing was printed \(--output json prints any value safely\)/,
    );
    assert.ok(!breakOut.stderr.includes('dapi1'), 'the token is not echoed');

    for (const [value, output] of [
      ['dapi2%PATH%', 'cmd'],
      ['dapi3"&calc&"', 'cmd'],
      ['dapi4\u2019; calc; \u2019', 'powershell'],
      ['dapi5\nwhoami', 'powershell'],
      ['dapi6\nwhoami', 'env'],
      ['dapi7\u001b]52;c;ZXZpbA==\u0007', 'raw'],
    ] as const) {
      const res = await token(value, output);
      assert.equal(res.status, 1, `${output} ${JSON.stringify(value)}: ${res.stdout}`);
      assert.equal(res.stdout, '', `${output} ${JSON.stringify(value)}`);
      assert.match(res.stderr, new RegExp(`cannot print DATABRICKS_TOKEN for --output ${output}`));
    }

    const cmd = await token("dapi^&|<>'x", 'cmd');
    assert.equal(cmd.status, 0, cmd.stderr);
    assert.equal(cmd.stdout, `set "${host}"\nset "DATABRICKS_TOKEN=dapi^&|<>'x"\n`);
    const ps = await token("dapi'x%PATH%", 'powershell');
    assert.equal(ps.status, 0, ps.stderr);
    assert.equal(ps.stdout, `$env:DATABRICKS_HOST = 'https://adb-1.1.azuredatabricks.net'\n$env:DATABRICKS_TOKEN = 'dapi''x%PATH%'\n`);

    // JSON carries any value: C0 escaped by JSON.stringify, C1 and bidi by the CLI (terminalJson).
    const json = await token('dapi8\n\u009b31m\u202e', 'json');
    assert.equal(json.status, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).access_token, 'dapi8\n\u009b31m\u202e');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no raw control characters may be printed
    assert.doesNotMatch(json.stdout.trimEnd(), /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
  });
});
