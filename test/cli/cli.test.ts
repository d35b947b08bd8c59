import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BIN, NO_TOOLS_PATH } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import { spawnGateway } from '../helpers/spawn-gateway.js';

// The compiled CLI, as `npx dbx-gateway` runs it (dist/ is built by `npm install`).
const EMPTY_DIR = mkdtempSync(join(tmpdir(), 'dbxgw-cwd-'));
const cleanEnv = { PATH: NO_TOOLS_PATH, HOME: EMPTY_DIR };

const PAT = 'dapi0123456789abcdef0123456789abcdef';
const PAT_ROUTE = ['--workspace', 'prod=https://adb-1.1.azuredatabricks.net', '--credential', 'pat'];
const patEnv = () => ({ ...cleanEnv, DATABRICKS_TOKEN: PAT });

function run(args: string[], env: NodeJS.ProcessEnv = cleanEnv) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: EMPTY_DIR, env, encoding: 'utf8', timeout: 30_000 });
}

describe('dbx-gateway CLI', () => {
  it('answers --help, -h and help with the help the build rendered from the parser, unchanged since', async () => {
    // dist/ is built by `npm test` (pretest): the file the launcher prints must be what the CLI's
    // commander program renders now, or the fast path would show stale help.
    const { renderHelp } = (await import(new URL('../../dist/cli/index.js', import.meta.url).href)) as { renderHelp(): string };
    const rendered = renderHelp();
    assert.match(rendered, /Usage: dbx-gateway \[serve\]/);
    for (const flag of ['--help', '-h', 'help']) {
      const res = run([flag]);
      assert.equal(res.status, 0);
      assert.equal(res.stdout, rendered, flag);
    }
  });

  it('prints usage with --help and the version with --version', () => {
    const help = run(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /dbx-gateway \[serve\]/);
    const version = run(['--version']);
    assert.equal(version.status, 0);
    assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+$/);
  });

  it('answers -V, version and help CMD, with help of its own for each command', () => {
    for (const args of [['-V'], ['version']]) assert.match(run(args).stdout.trim(), /^\d+\.\d+\.\d+$/);
    const token = run(['help', 'token']);
    assert.equal(token.status, 0);
    assert.match(token.stdout, /Usage: dbx-gateway token \[options\] <name>/);
    assert.match(token.stdout, /--output <format>/);
    assert.match(token.stdout, /Examples:\n {2}eval "\$\(dbx-gateway token prod --output env\)"/);
    assert.notEqual(run(['reload', '--help']).stdout, token.stdout, 'every command has its own help');
  });

  it('says which flag or command is unknown, suggests the closest one and points at the help in one line', () => {
    const flag = run(['--worksapce', 'prod=https://adb-1.1.azuredatabricks.net']);
    assert.equal(flag.status, 2);
    assert.equal(flag.stderr, "dbx-gateway: unknown flag: --worksapce\ndid you mean --workspace?\nsee 'dbx-gateway serve --help'\n");
    const tokenFlag = run(['token', 'prod', '--ouput', 'raw']);
    assert.equal(tokenFlag.status, 2);
    assert.equal(tokenFlag.stderr, "dbx-gateway: unknown flag: --ouput\ndid you mean --output?\nsee 'dbx-gateway token --help'\n");
    const command = run(['tokn', 'prod']);
    assert.equal(command.status, 2);
    assert.equal(command.stderr, "dbx-gateway: unknown command: tokn\ndid you mean token?\nsee 'dbx-gateway --help'\n");
    const equals = run(['--workspace', 'prod', 'https://adb-1.1.azuredatabricks.net']);
    assert.equal(equals.status, 2);
    assert.match(equals.stderr, /the = is missing; write --workspace prod=https:\/\/adb-1\.1\.azuredatabricks\.net\nsee 'dbx-gateway serve --help'\n$/);
  });

  it('config check validates without serving: exit 0 with what it would serve, exit 2 with every problem', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-check-'));
    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'routes:\n  prod: { host: https://adb-1.1.azuredatabricks.net, credential: { type: pat, token: dapi1 } }\n');
    const ok = run(['config', 'check', '--config', good, '--no-profiles']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /good\.yaml: valid; 1 route\n {2}\/ws\/prod -> https:\/\/adb-1\.1\.azuredatabricks\.net \(pat\)/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'routes:\n  prod: { host: https://adb-1.1.azuredatabricks.net, readonly: true, credential: azure_cli }\n');
    const refused = run(['config', 'check', '--config', bad, '--no-profiles']);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /did you mean readOnly\?/);
    assert.match(refused.stderr, /did you mean azure-cli\?/);
  });

  it('exits 2 before listening on a bad config, listing every problem on stderr', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-bad-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'routes:\n  prod:\n    host: ftp://nope\n  other: {}\n');
    const res = run(['--config', file, '--port', '0']);
    assert.equal(res.status, 2);
    assert.equal(res.stdout, '');
    assert.match(res.stderr, new RegExp(`invalid configuration \\(${file.replace(/[/.]/g, '\\$&')}\\)`));
    assert.match(res.stderr, /routes\.prod\.host: must be an https:\/\/ URL/);
    assert.match(res.stderr, /routes\.other\.host: missing/);
  });

  it('rejects unknown flags and commands with exit 2', () => {
    assert.equal(run(['--bogus']).status, 2);
    assert.equal(run(['frobnicate']).status, 2);
  });

  it('serves the demo workspace when nothing is configured, says so, and stops on SIGTERM', async () => {
    const { child, url, stdout: output } = await spawnGateway([], cleanEnv, EMPTY_DIR);
    try {
      assert.match(output(), /demo mode/);
      const res = await request(`${url}/ws/demo/api/2.0/clusters/list`);
      assert.equal(res.status, 200);
      assert.ok(Array.isArray(res.json<{ clusters: unknown[] }>().clusters));
      const me = await request(`${url}/ws/demo/api/2.0/preview/scim/v2/Me`);
      assert.equal(me.json<{ userName: string }>().userName, 'demo.user@example.com');
    } finally {
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    }
    assert.match(output(), /"route":"demo","path":"\/api\/2\.0\/clusters\/list","status":200/);
  });

  it('prints the SDK environment for --metadata-service on stderr, and keeps the secret out of the log', async () => {
    const gw = await spawnGateway(['--metadata-service'], cleanEnv, EMPTY_DIR);
    try {
      // stderr and stdout are separate pipes: the exports may arrive after the listening line.
      await gw.waitForOutput('stderr', /export DATABRICKS_AUTH_TYPE=\S+\n/);
      const host = /export DATABRICKS_HOST=(\S+)/.exec(gw.stderr())?.[1];
      const url = /export DATABRICKS_METADATA_SERVICE_URL=(http:\/\/127\.0\.0\.1:\d+\/metadata\/([0-9a-f-]{36}))\n/.exec(gw.stderr());
      assert.ok(host && url?.[1] && url[2], gw.stderr());
      assert.match(gw.stderr(), /export DATABRICKS_AUTH_TYPE=metadata-service/);
      const res = await request(url[1], { headers: { 'x-databricks-metadata-version': '1', 'x-databricks-host': host } });
      assert.equal(res.status, 200);
      assert.equal(typeof res.json<{ expires_on: unknown }>().expires_on, 'number');
      assert.ok(!gw.stdout().includes(url[2]), 'the secret is not in the JSON log');
    } finally {
      await gw.stop();
    }
  });

  it('prints shell exports for `token NAME --output env`', () => {
    const res = spawnSync(
      '/bin/sh',
      [
        '-c',
        `eval "$('${process.execPath}' '${BIN}' token prod ${PAT_ROUTE.join(' ')} --output env)" && printf '%s|%s' "$DATABRICKS_HOST" "$DATABRICKS_TOKEN"`,
      ],
      {
        cwd: EMPTY_DIR,
        env: patEnv(),
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    assert.equal(res.status, 0, res.stderr);
    assert.equal(res.stdout, `https://adb-1.1.azuredatabricks.net|${PAT}`);
    assert.equal(run(['token', 'prod', ...PAT_ROUTE, '--output', 'yaml'], patEnv()).status, 2);
  });

  it('prints only the token JSON on stdout for `token NAME`', () => {
    const res = run(['token', 'prod', ...PAT_ROUTE], patEnv());
    assert.equal(res.status, 0, res.stderr);
    assert.deepEqual(JSON.parse(res.stdout), { access_token: PAT, token_type: 'Bearer', expires_on: null });
    assert.equal(res.stdout.trim().split('\n').length, 1);
  });

  it('does not print a token of a demo that would live only while the command runs', () => {
    const res = run(['token', 'demo']);
    assert.equal(res.status, 2);
    assert.equal(res.stdout, '');
    assert.match(res.stderr, /the demo workspace lives inside a running gateway: start one with dbx-gateway serve/);
  });

  it('says to install the Azure CLI when azure-cli is named and az is missing', () => {
    const res = run(['token', 'prod', '--workspace', 'prod=https://adb-1.1.azuredatabricks.net', '--credential', 'azure-cli'], {
      PATH: '/nonexistent',
      HOME: EMPTY_DIR,
    });
    assert.equal(res.status, 1);
    assert.match(res.stderr, /the Azure CLI \(az\) was not found on PATH.*Fix: install the Azure CLI \(https:\/\/aka\.ms\/installazurecli\) and run az login/);
  });

  it('exits 2 when a named credential lacks settings, saying which', () => {
    const res = run(['token', 'prod', '--workspace', 'prod=https://adb-1.1.azuredatabricks.net', '--credential', 'databricks-m2m']);
    assert.equal(res.status, 2);
    assert.match(res.stderr, /--credential \(route prod\): databricks-m2m needs clientId \(DATABRICKS_CLIENT_ID\) and clientSecret/);
  });

  it('says what to fix when `token` names no route', () => {
    const res = run(['token', 'nope']);
    assert.equal(res.status, 2);
    assert.match(res.stderr, /no route named nope; routes: none \(configure one with --workspace NAME=URL\)/);
  });
});
