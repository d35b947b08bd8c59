import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { escapeControl, escapeControlLines, terminalJson } from '../../src/observability/terminal-text.js';
import { recordSparkCall } from '../../src/spark/call-log.js';
import { runCli } from '../helpers/cli.js';
import { type FakeDatabricksOidc, startFakeDatabricksOidc } from '../helpers/fake-databricks-oidc.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { request } from '../helpers/http.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

// Issue 19 item 6: a grpc-message, an OAuth error_description and a SCIM user name with ESC/OSC
// sequences were printed raw by the text log, `status` and `doctor`. Whatever an upstream sends,
// what reaches the terminal has line feeds and tabs at most, and the rest shown as \x1b, \u202e.

/** Clear the screen, an OSC 8 hyperlink ended by BEL, a CR to overwrite the line, CSI as C1, a bidi override, a backspace. */
const HOSTILE = 'evil\u001b[2J\u001b]8;;https://evil.example/\u0007click\u001b]8;;\u0007\rPASS \u009b31m\u202egnp.exe\u0008';
/** What a terminal acts on, but for the line feeds and tabs a report is made of. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the characters that must never be printed raw
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const SHOWN = String.raw`evil\x1b[2J\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07\rPASS \x9b31m\u202egnp.exe\x08`;
const PAT = 'dapi5656565656565656565656565656cdcd';

function assertNoRawControl(text: string, what: string): void {
  const found = RAW_CONTROL.exec(text);
  assert.equal(found, null, `${what} has a raw U+${found?.[0].charCodeAt(0).toString(16).padStart(4, '0')}: ${JSON.stringify(text)}`);
}

describe('upstream text never reaches a terminal raw', () => {
  it('escapeControl shows every control character visibly; escapeControlLines keeps line feeds and tabs; terminalJson keeps the value', () => {
    assert.equal(escapeControl(HOSTILE), SHOWN);
    assert.equal(escapeControl('a\nb\tc\u2066d\u0085'), String.raw`a\nb\tc\u2066d\x85`);
    assert.equal(escapeControlLines('a\nb\tc\r\u001b'), 'a\nb\tc\\r\\x1b');
    assert.equal(escapeControl(String.raw`C:\Users\dev ünïcödé`), String.raw`C:\Users\dev ünïcödé`);
    const json = terminalJson({ message: HOSTILE });
    assertNoRawControl(json, 'terminalJson');
    assert.equal(JSON.parse(json).message, HOSTILE);
  });

  it('a grpc-message in a Spark call record: escaped in the text log, \\u-escaped in the JSON log', () => {
    for (const format of ['text', 'json'] as const) {
      let out = '';
      const stream = new Writable({
        write(chunk: Buffer, _enc, cb) {
          out += chunk.toString();
          cb();
        },
      });
      recordSparkCall(createLogger({ level: 'info', stream, format, colour: false }), createMetrics(), {
        route: 'prod',
        method: `/spark.connect.SparkConnectService/${HOSTILE}`,
        grpcStatus: 13,
        durationMs: 1,
        requestBytes: 0,
        responseBytes: 0,
        reason: HOSTILE,
      });
      assertNoRawControl(out, `the ${format} log`);
      assert.equal(out.split('\n').length, 2, `one line: ${out}`);
      if (format === 'text') assert.ok(out.includes(SHOWN), out);
      else assert.equal(JSON.parse(out).reason, HOSTILE);
    }
  });

  describe('through a running gateway, and doctor without one', () => {
    let home: string;
    let env: NodeJS.ProcessEnv;
    let config: string;
    let oidc: FakeDatabricksOidc;
    let scim: FakeUpstream;
    let gw: SpawnedGateway;

    before(async () => {
      home = mkdtempSync(join(tmpdir(), 'dbxgw-hostile-text-'));
      env = { PATH: process.env.PATH ?? '', HOME: home };
      // An identity provider whose error_description, and a workspace whose SCIM user name, are hostile.
      oidc = await startFakeDatabricksOidc({ m2mRefusal: HOSTILE });
      scim = await startFakeUpstream((req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json', date: new Date().toUTCString() });
        res.end(JSON.stringify({ userName: HOSTILE, displayName: `${HOSTILE} too` }));
      });
      config = join(home, 'gw.yaml');
      const ca = testPki().caFile;
      writeFileSync(
        config,
        'routes:\n' +
          `  idp: { host: ${oidc.upstream.url.origin}, caFile: ${ca}, credential: { type: databricks-m2m, clientId: sp-1, clientSecret: dose-not-known-0001 } }\n` +
          `  ws: { host: ${scim.url.origin}, caFile: ${ca}, credential: { type: pat, token: ${PAT} } }\n`,
      );
      gw = await spawnGateway(['--config', config, '--no-profiles', '--log-format', 'text'], env, home);
    });
    after(async () => {
      await gw?.stop();
      await Promise.all([oidc?.close(), scim?.close()]);
    });

    it('the text log shows an error_description escaped, at start and in the request line', async () => {
      await gw.waitForOutput('stdout', /WARN +idp {2}FAILING: /);
      assert.equal((await request(`${gw.url}/ws/idp/api/2.0/clusters/list`)).status, 503);
      await gw.waitForOutput('stdout', /GET \/ws\/idp\/api\/2\.0\/clusters\/list 503/);
      assertNoRawControl(gw.stdout(), 'the text log');
      assert.ok(gw.stdout().includes(String.raw`evil\x1b[2J`), gw.stdout());
    });

    it('status prints the route errors escaped, and its JSON with C1 and bidi as \\u escapes', async () => {
      const text = await runCli(['status'], env);
      assert.equal(text.status, 0, text.stderr);
      assertNoRawControl(text.stdout + text.stderr, 'status');
      assert.ok(text.stdout.includes(String.raw`evil\x1b[2J`), text.stdout);
      const json = await runCli(['status', '--output', 'json'], env);
      assert.equal(json.status, 0, json.stderr);
      assertNoRawControl(json.stdout, 'status --output json');
      assert.ok(JSON.stringify(JSON.parse(json.stdout)).includes('evil'), 'the errors are in the JSON');
    });

    it('doctor (from the running gateway) prints the SCIM user name and the error_description escaped', async () => {
      const res = await runCli(['doctor'], env);
      assert.equal(res.status, 1, res.stderr + res.stdout);
      assertNoRawControl(res.stdout + res.stderr, 'doctor');
      assert.ok(res.stdout.includes(`identity:   ${SHOWN} (${SHOWN} too)`), res.stdout);
      assert.match(res.stdout, /^FAIL {2}\/ws\/idp/m);
      assert.ok(!res.stdout.includes(PAT));
    });

    it('doctor (from the configuration, no gateway running) does the same', async () => {
      await gw.stop();
      const res = await runCli(['doctor', '--config', config, '--no-profiles'], env);
      assert.equal(res.status, 1, res.stderr + res.stdout);
      assert.match(res.stderr, /given, so checking the routes from the flags|no gateway is running/);
      assertNoRawControl(res.stdout + res.stderr, 'doctor');
      assert.ok(res.stdout.includes(`identity:   ${SHOWN} (${SHOWN} too)`), res.stdout);
      assert.ok(res.stdout.includes(String.raw`evil\x1b[2J`) && res.stdout.includes('/ws/idp'), res.stdout);
    });
  });
});
