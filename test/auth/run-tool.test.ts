/**
 * Running a sign-in tool (src/auth/credentials/run-tool.ts, shared by azure-cli and databricks-cli)
 * with real processes: what a failure keeps of stderr, the timeout, a missing file, an abort. The
 * Windows command line is checked in test/windows/paths.test.ts and, under the real Windows build
 * of Node, by scripts/windows/run-under-wine.sh. Also az's JSON as the azure-cli credential reads it.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseAzToken } from '../../src/auth/credentials/azure-cli.js';
import { runTool, ToolRunError } from '../../src/auth/credentials/run-tool.js';

const dir = mkdtempSync(join(tmpdir(), 'dbxgw-run-tool-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An executable node script `name` in `dir`. */
function tool(name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, `#!${process.execPath}\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

async function failure(promise: Promise<unknown>): Promise<ToolRunError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ToolRunError, String(err));
    return err;
  }
  assert.fail('it resolved');
}

describe('runTool', { skip: process.platform === 'win32' ? 'POSIX scripts' : false }, () => {
  it('resolves with stdout and passes the arguments as they are', async () => {
    const echo = tool('echo-args', 'process.stdout.write(JSON.stringify(process.argv.slice(2)))');
    const out = await runTool(echo, ['a b', '%x%', '"q"', 'w&x|y'], { env: {} });
    assert.deepEqual(JSON.parse(out), ['a b', '%x%', '"q"', 'w&x|y']);
  });

  it('keeps stderr as one line, control characters escaped, cut to stderrChars; never stdout', async () => {
    const noisy = tool(
      'noisy',
      "process.stdout.write('eyJsecret.token.here'); process.stderr.write('ERROR:\\x1b[31m red\\x1b]52;c;aGk=\\x07\\r\\n  line 2\\u202e ' + 'x'.repeat(2000)); process.exit(3);",
    );
    const err = await failure(runTool(noisy, [], { env: {}, stderrChars: 60 }));
    assert.equal(err.failure.kind, 'failed');
    const said = err.failure.kind === 'failed' ? err.failure.said : '';
    // Cut at 60 characters of the collapsed text (36 before the x's), then escaped.
    assert.equal(said, `ERROR:\\x1b[31m red\\x1b]52;c;aGk=\\x07 line 2\\u202e ${'x'.repeat(60 - 36)}...`);
    assert.doesNotMatch(`${said} ${err.message}`, /eyJsecret/);
  });

  it('says the exit code when stderr is empty', async () => {
    const quiet = tool('quiet', 'process.exit(7)');
    const err = await failure(runTool(quiet, [], { env: {} }));
    assert.deepEqual(err.failure, { kind: 'failed', said: 'exit code 7' });
  });

  it('reports a file that is gone as missing', async () => {
    const err = await failure(runTool(join(dir, 'not-there'), [], { env: {} }));
    assert.deepEqual(err.failure, { kind: 'missing' });
  });

  it('kills a tool that does not finish within the timeout', async () => {
    const hang = tool('hang', 'setInterval(() => {}, 1000)');
    const started = Date.now();
    const err = await failure(runTool(hang, [], { env: {}, timeoutMs: 300 }));
    assert.deepEqual(err.failure, { kind: 'timeout', timeoutMs: 300 });
    assert.ok(Date.now() - started < 5000);
  });

  // az is a shell script that starts Python (and az.cmd on Windows the same): a timeout that
  // killed only the script left Python running with the pipes open, and the run never ended.
  it('ends what the tool started as well, within the timeout', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    const parent = tool(
      'parent',
      `const c = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: ['ignore', 'inherit', 'inherit'] });
require('node:fs').writeFileSync(${JSON.stringify(pidFile)}, String(c.pid));
setInterval(() => {}, 1000);`,
    );
    const started = Date.now();
    const err = await failure(runTool(parent, [], { env: {}, timeoutMs: 1000 }));
    assert.deepEqual(err.failure, { kind: 'timeout', timeoutMs: 1000 });
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    await new Promise((r) => setTimeout(r, 200));
    // Gone, or a zombie waiting for a reaper (a container's init may not reap orphans).
    let state = 'gone';
    try {
      state = readFileSync(`/proc/${grandchild}/stat`, 'utf8').split(') ')[1]?.[0] ?? 'gone';
    } catch {
      // gone
    }
    assert.ok(state === 'gone' || state === 'Z', `the tool's own child is still running (state ${state})`);
  });

  it('rejects with the AbortError when the signal aborts', async () => {
    const hang = tool('hang2', 'setInterval(() => {}, 1000)');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(runTool(hang, [], { env: {}, signal: controller.signal }), { name: 'AbortError' });
  });

  it('runs in the given working directory', async () => {
    const cwd = tool('cwd', 'process.stdout.write(process.cwd())');
    assert.equal(await runTool(cwd, [], { env: {}, cwd: '/' }), '/');
  });
});

describe('parseAzToken (az account get-access-token --output json)', () => {
  it('prefers expires_on (epoch seconds, az >= 2.54) over expiresOn', () => {
    const token = parseAzToken(JSON.stringify({ accessToken: 't', expiresOn: '2001-01-01 00:00:00.000000', expires_on: 1893456000 }));
    assert.deepEqual(token, { token: 't', expiresOnMs: 1893456000 * 1000 });
    // Some versions print it as a string.
    assert.equal(parseAzToken(JSON.stringify({ accessToken: 't', expires_on: '1893456000' })).expiresOnMs, 1893456000 * 1000);
  });

  it('falls back to expiresOn (local time without a zone) for older az', () => {
    const token = parseAzToken(JSON.stringify({ accessToken: 't', expiresOn: '2030-01-01 12:00:00.000000' }));
    assert.equal(token.expiresOnMs, new Date('2030-01-01 12:00:00.000000').getTime());
  });

  it('refuses output that is not a token, without repeating it', () => {
    assert.throws(
      () => parseAzToken('eyJnot.json.atall'),
      (err: Error) => /not JSON/.test(err.message) && !err.message.includes('eyJ'),
    );
    assert.throws(() => parseAzToken('{"expires_on": 1}'), /no accessToken/);
    assert.throws(
      () => parseAzToken('{"accessToken": "eyJsecret", "expiresOn": "soon"}'),
      (err: Error) => /unreadable expiresOn "soon"/.test(err.message) && !err.message.includes('eyJsecret'),
    );
  });
});
