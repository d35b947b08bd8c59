import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatEvent } from '../../src/observability/text-format.js';
import { watchOutput } from '../helpers/child-output.js';
import { BIN, childEnv, NO_TOOLS_PATH, runCli } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { spawnGateway } from '../helpers/spawn-gateway.js';

describe('saying what it is doing', () => {
  it('formats a request as one line: method, path, status, time and size', () => {
    const line = formatEvent(
      {
        level: 30,
        time: Date.parse('2026-12-01T12:04:05Z'),
        msg: 'request',
        method: 'GET',
        route: 'prod',
        prefix: '/ws/prod',
        path: '/api/2.0/clusters/list',
        status: 200,
        ms: 25,
        bytes: 387,
        bytesIn: 0,
      },
      false,
    );
    assert.match(line, /^\d\d:\d\d:\d\d GET \/ws\/prod\/api\/2\.0\/clusters\/list 200 25ms 387B$/);
    const failed = formatEvent(
      {
        level: 40,
        time: 0,
        msg: 'request',
        method: 'POST',
        path: '/x',
        status: 403,
        ms: 1,
        bytes: 10,
        error: 'GATEWAY_FORBIDDEN',
        reason: 'route prod is read-only',
      },
      true,
    );
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test checks for ANSI escapes
    assert.match(failed, /\u001b\[33mPOST \/x 403 1ms 10B error=GATEWAY_FORBIDDEN reason="route prod is read-only"\u001b\[0m$/);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test checks for ANSI escapes
    assert.doesNotMatch(formatEvent({ level: 40, time: 0, msg: 'x' }, false), /\u001b/);
  });

  it('with --log-format text: one line per request, failures at WARN with their reason, the config file named, and a route without a token warned about at start', async () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-log-'));
    const config = join(home, 'gw.yaml');
    // A route whose credential cannot get a token: the CLI it names does not exist.
    writeFileSync(
      config,
      'routes:\n  broken: { host: https://adb-1.1.azuredatabricks.net, credential: { type: databricks-cli, cliPath: /nonexistent/databricks } }\n',
    );
    const gw = await spawnGateway(['--config', config, '--no-profiles', '--log-format', 'text', '--demo'], { HOME: home, NO_COLOR: '1' }, home);
    try {
      await gw.waitForOutput('stdout', /WARN +broken {2}FAILING: .*databricks.* Fix: /);
      assert.match(gw.stdout(), new RegExp(`INFO  config file: ${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      await request(`${gw.url.replace(/\/$/, '')}/ws/demo/api/2.0/clusters/list`);
      await request(`${gw.url}/ws/broken/api/2.0/clusters/list`);
      await gw.waitForOutput('stdout', /GET \/ws\/broken\/api\/2\.0\/clusters\/list 503/);
      const lines = gw.stdout().split('\n');
      const ok = lines.filter((l) => /GET \/ws\/demo\/api\/2\.0\/clusters\/list 200 [\d.]+ms \d+B$/.test(l));
      assert.equal(ok.length, 1, gw.stdout());
      assert.match(gw.stdout(), /GET \/ws\/broken\/api\/2\.0\/clusters\/list 503 [\d.]+ms \d+B error=GATEWAY_TOKEN_UNAVAILABLE reason="no usable token/);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the test checks for ANSI escapes
      assert.doesNotMatch(gw.stdout(), /\u001b\[/, 'NO_COLOR');
      assert.doesNotMatch(gw.stdout(), /^\{/m, 'no JSON lines');
    } finally {
      await gw.stop();
    }
  });

  it('-q logs warnings and errors only and -v debug lines too, both winning over DBX_GATEWAY_LOG_LEVEL', async () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-quiet-'));
    const config = join(home, 'gw.yaml');
    writeFileSync(
      config,
      'routes:\n  broken: { host: https://adb-1.1.azuredatabricks.net, credential: { type: databricks-cli, cliPath: /nonexistent/databricks } }\n',
    );
    const port = await freePort();
    const quiet = spawn(process.execPath, [BIN, '--config', config, '--no-profiles', '--demo', '--log-format', 'text', '-q', '--port', String(port)], {
      env: childEnv({ HOME: home, NO_COLOR: '1', DBX_GATEWAY_LOG_LEVEL: 'debug' }),
    });
    const out = watchOutput(quiet);
    try {
      await out.waitForOutput('stdout', /WARN +broken +FAILING: no usable token/);
      await request(`http://127.0.0.1:${port}/ws/demo/api/2.0/clusters/list`);
      await request(`http://127.0.0.1:${port}/ws/nope/api/2.0/clusters/list`);
      await out.waitForOutput('stdout', /GET \/ws\/nope\/api\/2\.0\/clusters\/list 404/);
      assert.doesNotMatch(out.stdout(), /INFO|DEBUG|listening|\/ws\/demo\/api/, out.stdout());
    } finally {
      quiet.kill('SIGTERM');
      await once(quiet, 'exit');
    }
    const gw = await spawnGateway(
      ['--demo', '--no-profiles', '--log-format', 'text', '--verbose'],
      { HOME: home, NO_COLOR: '1', DBX_GATEWAY_LOG_LEVEL: 'error' },
      home,
    );
    try {
      await request(`${gw.url}/healthz`);
      await gw.waitForOutput('stdout', /GET \/healthz 200/);
      // /healthz is a probe, logged at debug only: its line above shows -v won over the level.
      await gw.waitForOutput('stdout', /INFO +demo +ready as/);
    } finally {
      await gw.stop();
    }
    const both = await runCli(['-q', '-v', '--demo', '--port', '0'], { HOME: home });
    assert.equal(both.status, 2);
    assert.match(both.stderr, /option '-q, --quiet' cannot be used with option '-v, --verbose'\nsee 'dbx-gateway serve --help'\n$/);
    const help = await runCli(['serve', '--help'], { HOME: home });
    const said = help.stdout.replace(/\s+/g, ' ');
    assert.match(said, /-q, --quiet log warnings and errors only \(wins over DBX_GATEWAY_LOG_LEVEL and logLevel\)/);
    assert.match(said, /-v, --verbose log debug lines too \(wins over DBX_GATEWAY_LOG_LEVEL and logLevel\)/);
  });

  it('logs the real size of the answers the gateway makes itself: local pages, refusals and its own errors on a route', async () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-bytes-'));
    const config = join(home, 'gw.yaml');
    writeFileSync(
      config,
      'routes:\n' +
        '  ro: { host: https://adb-1.1.azuredatabricks.net, readOnly: true, credential: { type: pat, token: dapi123 } }\n' +
        '  broken: { host: https://adb-2.2.azuredatabricks.net, credential: { type: databricks-cli, cliPath: /nonexistent/databricks } }\n',
    );
    const gw = await spawnGateway(['--config', config, '--no-profiles', '--log-format', 'json'], { HOME: home }, home);
    try {
      const base = gw.url.replace(/\/$/, '');
      const asked = [
        ['GET', '/'],
        ['GET', '/ws/nope/api/2.0/clusters/list'],
        ['POST', '/ws/ro/api/2.0/clusters/list'],
        ['GET', '/ws/broken/api/2.0/clusters/list'],
        ['HEAD', '/'],
      ] as const;
      const sizes: number[] = [];
      for (const [method, path] of asked) sizes.push((await request(`${base}${path}`, { method })).body.length);
      assert.ok(
        sizes.every((n, i) => n > 0 || asked[i]![0] === 'HEAD'),
        String(sizes),
      );
      await gw.waitForOutput('stdout', /"method":"HEAD"/);
      const lines = gw
        .stdout()
        .split('\n')
        .filter((l) => l.includes('"msg":"request"'))
        .map((l) => JSON.parse(l) as { method: string; path: string; prefix?: string; bytes: number });
      const logged = asked.map(([method, path]) => lines.find((l) => l.method === method && `${l.prefix ?? ''}${l.path}` === path)?.bytes);
      assert.deepEqual(logged, sizes);
    } finally {
      await gw.stop();
    }
  });

  it('refuses a log level or format that does not exist, as a config error', () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-loglevel-'));
    const run = (args: string[], env: NodeJS.ProcessEnv) =>
      spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { PATH: NO_TOOLS_PATH, HOME: home, ...env } });
    const level = run(['--no-profiles', '--port', '0'], { DBX_GATEWAY_LOG_LEVEL: 'verbose' });
    assert.equal(level.status, 2);
    assert.match(level.stderr, /DBX_GATEWAY_LOG_LEVEL: "verbose" is not a log level; use one of trace, debug, info, warn, error, fatal, silent/);
    const format = run(['--no-profiles', '--port', '0', '--log-format', 'xml'], {});
    assert.equal(format.status, 2);
    assert.match(format.stderr, /--log-format: "xml" is not a log format; use text/);
  });
});
