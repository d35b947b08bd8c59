import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';

// `config check` as a new user meets it: every problem of flags, environment and file in one run,
// each said once and blamed on the place it came from (issue 21, item 6).

function configFile(text: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-check-'));
  const file = join(dir, 'dbx-gateway.yaml');
  writeFileSync(file, text);
  return { dir, file };
}

/** The lines of the report that match `pattern`. */
const linesMatching = (text: string, pattern: RegExp) => text.split('\n').filter((l) => pattern.test(l));

describe('config check', () => {
  it('reports every problem of file, flags and environment in one run, each once, blamed on its place', async () => {
    const { file } = configFile(
      [
        'routes:',
        '  a:',
        '    host: ftp://adb-1.1.azuredatabricks.net', // a bad host must not hide the rest of route a
        '    credential: azure-clu',
        '    port: 9001',
        '  b:',
        '    host: https://adb-2.2.azuredatabricks.net',
        '    port: 9001',
        '    denyPaths: "^/api/2.0/secrets/"', // a wrong type must not hide the port clash
        '',
      ].join('\n'),
    );
    const res = await runCli(
      [
        'config',
        'check',
        '--config',
        file,
        '--no-profiles',
        '--workspace',
        'x=https://adb-3.3.azuredatabricks.net',
        '--workspace',
        'y=https://adb-4.4.azuredatabricks.net',
        '--credential',
        'az-cli',
        '--log-format',
        'yaml',
      ],
      { DBX_GATEWAY_PORT: 'abc' },
    );
    assert.equal(res.status, 2, res.stderr);
    const report = res.stderr;
    // The file is named above its own problems only.
    assert.match(report, /^dbx-gateway: invalid configuration:\n {2}in .*dbx-gateway\.yaml:\n/);
    const expected: [RegExp, RegExp][] = [
      [/^ {4}routes\.a\.host: must be an https:\/\/ URL/, /routes\.a\.host/],
      [/^ {4}routes\.a\.credential: unknown credential type "azure-clu"; did you mean azure-cli\?/, /azure-clu/],
      [/^ {4}routes\.b\.port: 9001 is already used by route a/, /9001/],
      [/^ {4}routes\.b\.denyPaths must be a list, e\.g\. \['\^\/api/, /denyPaths/],
      [/^ {2}--credential: unknown credential type "az-cli"; did you mean azure-cli\?/, /az-cli/],
      [/^ {2}DBX_GATEWAY_PORT: "abc" is not a port number/, /abc/],
      [/^ {2}--log-format: "yaml" is not a log format/, /"yaml"/],
    ];
    for (const [line, topic] of expected) {
      assert.equal(linesMatching(report, line).length, 1, `${line} once in:\n${report}`);
      assert.equal(linesMatching(report, topic).length, 1, `${topic} said once in:\n${report}`);
    }
    // denyPaths never shows the example meant for allowMethods.
    assert.doesNotMatch(report, /denyPaths.*GET, HEAD/);
  });

  it('blames --port and --log-format, not a config file that is fine', async () => {
    const { dir } = configFile('routes:\n  prod: { host: https://adb-1.1.azuredatabricks.net, credential: { type: pat, token: dapi1 } }\n');
    const res = await runCli(['config', 'check', '--port', 'abc', '--log-format', 'yaml', '--no-profiles'], {
      DBX_GATEWAY_CONFIG: join(dir, 'dbx-gateway.yaml'),
    });
    assert.equal(res.status, 2);
    assert.doesNotMatch(res.stderr, /dbx-gateway\.yaml/);
    assert.match(res.stderr, /^dbx-gateway: invalid configuration:\n {2}--port: "abc" is not a port number.*\n {2}--log-format: "yaml"/);
  });

  it('says a problem of the shared --credential once, naming its routes', async () => {
    const res = await runCli(
      [
        'config',
        'check',
        '--no-profiles',
        '--credential',
        'azure-client-secret',
        '--workspace',
        'x=https://adb-3.3.azuredatabricks.net',
        '--workspace',
        'y=https://adb-4.4.azuredatabricks.net',
      ],
      {},
    );
    assert.equal(res.status, 2);
    assert.equal(linesMatching(res.stderr, /azure-client-secret needs/).length, 1, res.stderr);
    assert.match(res.stderr, /--credential \(routes x, y\): azure-client-secret needs tenantId/);
  });

  it('accepts the route flags of serve', async () => {
    const res = await runCli(
      [
        'config',
        'check',
        '--no-profiles',
        '--workspace',
        'prod=https://adb-1.1.azuredatabricks.net',
        '--credential',
        'pat',
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--tls',
      ],
      { DATABRICKS_TOKEN: 'dapi-test' },
    );
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /\/ws\/prod -> https:\/\/adb-1\.1\.azuredatabricks\.net \(pat\)/);
  });

  it('cleans a URL pasted from the browser and a bare host name to the origin, with a note', async () => {
    const { file } = configFile(
      'routes:\n  b: { host: "https://adb-123.4.azuredatabricks.net/browse?o=123", credential: { type: pat, token: dapi1 } }\n  c: { host: adb-567.8.azuredatabricks.net, credential: { type: pat, token: dapi1 } }\n',
    );
    const res = await runCli(['config', 'check', '--config', file, '--no-profiles', '--workspace', 'w=adb-9.9.azuredatabricks.net', '--credential', 'pat'], {
      DATABRICKS_TOKEN: 'dapi-test',
    });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /\/ws\/b -> https:\/\/adb-123\.4\.azuredatabricks\.net \(pat\)/);
    assert.match(res.stdout, /\/ws\/c -> https:\/\/adb-567\.8\.azuredatabricks\.net \(pat\)/);
    assert.match(res.stdout, /\/ws\/w -> https:\/\/adb-9\.9\.azuredatabricks\.net \(pat\)/);
    assert.match(
      res.stderr,
      /warning: routes\.b\.host: using https:\/\/adb-123\.4\.azuredatabricks\.net for "https:\/\/adb-123\.4\.azuredatabricks\.net\/browse\?o=123".*path and query were left out/,
    );
    assert.match(res.stderr, /warning: routes\.c\.host: using https:\/\/adb-567\.8\.azuredatabricks\.net for "adb-567\.8\.azuredatabricks\.net"/);
    assert.match(res.stderr, /warning: --workspace w: using https:\/\/adb-9\.9\.azuredatabricks\.net/);
    // A word that is no host name is still refused.
    const bad = await runCli(['config', 'check', '--no-profiles', '--workspace', 'w=notaurl'], {});
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--workspace w: "notaurl" is not a URL/);
  });
});
