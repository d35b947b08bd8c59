import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultShell, formatEnv, PLACEHOLDER_TOKEN, type RouteAccess, routeEnv } from '../../src/cli/env.js';
import { formatToken } from '../../src/cli/token-output.js';
import { BIN, NO_TOOLS_PATH, runCli } from '../helpers/cli.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { request } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

const PROD: RouteAccess = {
  name: 'prod',
  prefix: '/ws/prod',
  upstream: 'https://adb-1.7.azuredatabricks.net',
  mainUrl: 'http://127.0.0.1:8080',
  tls: false,
  portHost: '127.0.0.1',
  port: 8081,
  sparkPort: 15002,
  postgresPort: 5432,
  inboundKeys: false,
  notes: [],
};

/** A program on this machine's PATH (the test's own PATH, not the children's), or undefined. */
function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const file = join(dir, name);
    if (dir && existsSync(file)) return file;
  }
  return undefined;
}

describe('env: the variables per route', () => {
  it('a route with its own ports: host, auth type pat, the placeholder token, Spark Connect and PostgreSQL', () => {
    const { vars, notes } = routeEnv(PROD);
    assert.deepEqual(vars, [
      ['DATABRICKS_HOST', 'http://127.0.0.1:8081'],
      ['DATABRICKS_AUTH_TYPE', 'pat'],
      ['DATABRICKS_TOKEN', PLACEHOLDER_TOKEN],
      ['SPARK_REMOTE', 'sc://localhost:15002/'],
      ['PGHOST', '127.0.0.1'],
      ['PGPORT', '5432'],
    ]);
    assert.match(notes.join('\n'), /x-databricks-cluster-id/);
  });

  it('without a port: the prefix URL, and a note that the Go and Java SDKs drop its path', () => {
    const { port, sparkPort, postgresPort, ...prefixOnly } = PROD;
    const { vars, notes } = routeEnv(prefixOnly);
    assert.deepEqual(vars[0], ['DATABRICKS_HOST', 'http://127.0.0.1:8080/ws/prod']);
    assert.match(notes.join('\n'), /drop the path of DATABRICKS_HOST.*routes\.prod\.port/);
  });

  it('with the metadata service: the SDKs pair instead of a token, the account id for an account route', () => {
    const { sparkPort, postgresPort, ...httpOnly } = PROD;
    const { vars } = routeEnv({
      ...httpOnly,
      prefix: '/acct/prod',
      accountId: 'acc-1',
      metadataUrl: 'http://127.0.0.1:8080/metadata/s3cret',
    });
    assert.deepEqual(vars, [
      ['DATABRICKS_HOST', 'http://127.0.0.1:8081'],
      ['DATABRICKS_ACCOUNT_ID', 'acc-1'],
      ['DATABRICKS_METADATA_SERVICE_URL', 'http://127.0.0.1:8080/metadata/s3cret'],
      ['DATABRICKS_AUTH_TYPE', 'metadata-service'],
    ]);
  });

  it('with inbound keys: no placeholder, the key is said to go in DATABRICKS_TOKEN (and PGPASSWORD, ;token=)', () => {
    const { vars, notes } = routeEnv({ ...PROD, inboundKeys: true, tls: true });
    assert.ok(!vars.some(([k]) => k === 'DATABRICKS_TOKEN'));
    assert.deepEqual(vars[0], ['DATABRICKS_HOST', 'https://127.0.0.1:8081']);
    assert.ok(vars.some(([k, v]) => k === 'SPARK_REMOTE' && v === 'sc://localhost:15002/;use_ssl=true'));
    const said = notes.join('\n');
    assert.match(said, /set DATABRICKS_TOKEN to your key/);
    assert.match(said, /;token=YOUR_KEY/);
    assert.match(said, /PGPASSWORD/);
  });

  it('on a unix socket without a port: no DATABRICKS_HOST, and why', () => {
    const { mainUrl, port, sparkPort, postgresPort, ...socketOnly } = PROD;
    const { vars, notes } = routeEnv(socketOnly);
    assert.deepEqual(vars, []);
    assert.match(notes.join('\n'), /socket, which DATABRICKS_HOST cannot name/);
  });

  it("prints each shell's assignments; fish escapes \\ and ', a value a shell cannot hold is refused", () => {
    const vars: Array<[string, string]> = [
      ['DATABRICKS_HOST', 'http://127.0.0.1:8081'],
      ['X', "it's"],
    ];
    assert.equal(formatEnv(vars, 'bash'), `export DATABRICKS_HOST='http://127.0.0.1:8081'\nexport X='it'\\''s'\n`);
    assert.equal(formatEnv(vars, 'powershell'), `$env:DATABRICKS_HOST = 'http://127.0.0.1:8081'\n$env:X = 'it''s'\n`);
    assert.equal(formatEnv(vars, 'fish'), `set -gx DATABRICKS_HOST 'http://127.0.0.1:8081'\nset -gx X 'it\\'s'\n`);
    assert.equal(formatEnv([['X', 'a\\b']], 'fish'), `set -gx X 'a\\\\b'\n`);
    assert.equal(formatEnv(vars.slice(0, 1), 'cmd'), 'set "DATABRICKS_HOST=http://127.0.0.1:8081"\n');
    assert.throws(() => formatEnv([['X', '50%']], 'cmd'), /cannot print X for --shell cmd: it has U\+0025/);
  });

  it('token --output json: expiry in RFC 3339 (as databricks auth token prints it) next to expires_on', () => {
    const json = JSON.parse(formatToken({ access_token: 't', token_type: 'Bearer', expires_on: 1_700_000_000, host: 'https://h' }, 'json'));
    assert.deepEqual(json, { access_token: 't', token_type: 'Bearer', expiry: '2023-11-14T22:13:20Z', expires_on: 1_700_000_000 });
  });

  it('defaults to bash, on Windows to powershell unless Git Bash (MSYSTEM)', () => {
    assert.equal(defaultShell('linux', {}), 'bash');
    assert.equal(defaultShell('darwin', {}), 'bash');
    assert.equal(defaultShell('win32', {}), 'powershell');
    assert.equal(defaultShell('win32', { MSYSTEM: 'MINGW64' }), 'bash');
  });
});

describe('env from a running gateway, evaluated by real shells', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let upstream: FakeUpstream;
  let gw: SpawnedGateway;
  let ports: { port: number; spark: number; pg: number };

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'dbxgw-env-'));
    env = { HOME: home };
    upstream = await startFakeUpstream();
    ports = { port: await freePort(), spark: await freePort(), pg: await freePort() };
    writeFileSync(
      join(home, 'gw.yaml'),
      `routes:
  prod:
    host: ${upstream.url.origin}
    caFile: ${testPki().caFile}
    credential: { type: pat, token: dapi-route-token }
    port: ${ports.port}
    sparkConnect: { port: ${ports.spark} }
    postgres: { port: ${ports.pg}, endpoint: projects/p/branches/b/endpoints/e }
  plain:
    host: ${upstream.url.origin}
    caFile: ${testPki().caFile}
    credential: { type: pat, token: dapi-route-token }
`,
    );
    gw = await spawnGateway(['--config', join(home, 'gw.yaml'), '--no-profiles'], env, home);
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it('prints the route for bash, powershell, cmd and fish with the running ports, saying which gateway answered', async () => {
    const expected = {
      bash: (k: string, v: string) => `export ${k}='${v}'\n`,
      powershell: (k: string, v: string) => `$env:${k} = '${v}'\n`,
      cmd: (k: string, v: string) => `set "${k}=${v}"\n`,
      fish: (k: string, v: string) => `set -gx ${k} '${v}'\n`,
    };
    for (const [shell, line] of Object.entries(expected)) {
      const res = await runCli(['env', 'prod', '--shell', shell], env);
      assert.equal(res.status, 0, res.stderr);
      assert.equal(
        res.stdout,
        line('DATABRICKS_HOST', `http://127.0.0.1:${ports.port}`) +
          line('DATABRICKS_AUTH_TYPE', 'pat') +
          line('DATABRICKS_TOKEN', 'dbx-gateway') +
          line('SPARK_REMOTE', `sc://localhost:${ports.spark}/`) +
          line('PGHOST', '127.0.0.1') +
          line('PGPORT', String(ports.pg)),
        shell,
      );
      assert.match(res.stderr, new RegExp(`route prod: the gateway running at ${gw.url.replace(/[.]/g, '\\.')} answers`));
    }
    const bad = await runCli(['env', 'prod', '--shell', 'tcsh'], env);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--shell tcsh: use one of bash, powershell, cmd, fish/);
  });

  it('eval "$(dbx-gateway env prod)" in bash sets what a tool then uses through the gateway', async () => {
    const script = `eval "$("$NODE" "$BIN" env prod)" && printf '%s\\n' "$DATABRICKS_HOST" "$DATABRICKS_TOKEN" "$SPARK_REMOTE" "$PGPORT"`;
    const res = spawnSync('/bin/bash', ['-c', script], { encoding: 'utf8', env: { PATH: NO_TOOLS_PATH, HOME: home, NODE: process.execPath, BIN } });
    assert.equal(res.status, 0, res.stderr);
    const [host, token, spark, pgPort] = res.stdout.split('\n');
    assert.equal(host, `http://127.0.0.1:${ports.port}`);
    assert.equal(spark, `sc://localhost:${ports.spark}/`);
    assert.equal(pgPort, String(ports.pg));
    // What the Databricks CLI would send with these: the gateway puts the route's token in place of the placeholder.
    const since = upstream.seen.length;
    const answer = await request(`${host}/api/2.0/clusters/list`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(answer.status, 200);
    assert.equal(upstream.seen[since]?.headers.authorization, 'Bearer dapi-route-token');
  });

  it('a route without a port: its prefix URL, with a note on stderr', async () => {
    const res = await runCli(['env', 'plain'], env);
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`^export DATABRICKS_HOST='${gw.url.replace(/[.]/g, '\\.')}/ws/plain'\n`));
    assert.match(res.stderr, /no port of its own/);
  });

  const pwsh = onPath('pwsh');
  it('Invoke-Expression in PowerShell', { skip: pwsh ? false : 'pwsh is not installed here' }, () => {
    const res = spawnSync(pwsh!, ['-NoProfile', '-Command', '& $env:NODE $env:BIN env prod --shell powershell | Invoke-Expression; $env:DATABRICKS_HOST'], {
      encoding: 'utf8',
      env: { PATH: NO_TOOLS_PATH, HOME: home, NODE: process.execPath, BIN },
    });
    assert.equal(res.stdout.trim(), `http://127.0.0.1:${ports.port}`, res.stderr);
  });

  const wine = onPath('wine');
  it('cmd (under Wine) runs the set lines', { skip: wine ? false : 'wine is not installed here (cmd)' }, async () => {
    const out = await runCli(['env', 'prod', '--shell', 'cmd'], env);
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-cmd-'));
    writeFileSync(join(dir, 'env.bat'), `@echo off\r\n${out.stdout.replace(/\n/g, '\r\n')}echo HOST=%DATABRICKS_HOST% TOKEN=%DATABRICKS_TOKEN%\r\n`);
    const res = spawnSync(wine!, ['cmd', '/c', join(dir, 'env.bat').replace(/\//g, '\\').replace(/^/, 'Z:')], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: dir, WINEPREFIX: join(dir, 'prefix'), WINEDEBUG: '-all' },
      timeout: 120_000,
    });
    assert.match(res.stdout, new RegExp(`HOST=http://127\\.0\\.0\\.1:${ports.port} TOKEN=dbx-gateway`), res.stderr);
  });

  it('token --output json carries expiry (RFC 3339) as databricks auth token does, and expires_on', async () => {
    const res = await runCli(['token', 'prod'], env);
    assert.equal(res.status, 0, res.stderr);
    const body = JSON.parse(res.stdout);
    // A PAT does not expire: no expiry (Go reads a missing one as "never"), expires_on null.
    assert.deepEqual(Object.keys(body), ['access_token', 'token_type', 'expires_on']);
    assert.equal(body.expires_on, null);
  });
});

describe('env with the metadata service', () => {
  it("prints the running gateway's metadata URL (its per-start secret), which answers the SDK protocol", async () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-env-md-'));
    const upstream = await startFakeUpstream();
    writeFileSync(
      join(home, 'gw.yaml'),
      `routes:\n  prod: { host: ${upstream.url.origin}, caFile: ${testPki().caFile}, credential: { type: pat, token: dapi-md } }\n`,
    );
    const gw = await spawnGateway(['--config', join(home, 'gw.yaml'), '--no-profiles', '--metadata-service'], { HOME: home }, home);
    try {
      const res = await runCli(['env', 'prod'], { HOME: home });
      assert.equal(res.status, 0, res.stderr);
      const vars = Object.fromEntries([...res.stdout.matchAll(/^export (\w+)='([^']*)'$/gm)].map((m) => [m[1], m[2]]));
      assert.equal(vars.DATABRICKS_HOST, upstream.url.origin);
      assert.equal(vars.DATABRICKS_AUTH_TYPE, 'metadata-service');
      assert.equal(vars.DATABRICKS_TOKEN, undefined);
      const md = await request(vars.DATABRICKS_METADATA_SERVICE_URL!, {
        headers: { 'x-databricks-metadata-version': '1', 'x-databricks-host': upstream.url.origin },
      });
      assert.equal(md.status, 200, md.text);
      assert.equal(JSON.parse(md.text).access_token, 'dapi-md');
    } finally {
      await gw.stop();
      await upstream.close();
    }
  });
});

describe('env without a running gateway', () => {
  it('reads the configured ports, says so, and an unknown route is exit 2', async () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-env-cfg-'));
    const config = join(home, 'gw.yaml');
    writeFileSync(config, 'routes:\n  prod: { host: https://adb-1.7.azuredatabricks.net, credential: { type: pat, token: x }, port: 18081 }\n');
    const res = await runCli(['env', 'prod', '--config', config, '--no-profiles'], { HOME: home });
    assert.equal(res.status, 0, res.stderr);
    assert.equal(res.stdout, "export DATABRICKS_HOST='http://127.0.0.1:18081'\nexport DATABRICKS_AUTH_TYPE='pat'\nexport DATABRICKS_TOKEN='dbx-gateway'\n");
    assert.match(res.stderr, /--config, --no-profiles given, so reading the route from the flags/);
    const none = await runCli(['env', 'nope', '--config', config, '--no-profiles'], { HOME: home });
    assert.equal(none.status, 2);
    assert.match(none.stderr, /no route named nope; routes: prod/);
  });
});
