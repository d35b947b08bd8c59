import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

function tempConfig(text: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-cfg-'));
  const file = join(dir, 'dbx-gateway.yaml');
  writeFileSync(file, text);
  return { dir, file };
}

describe('loadConfig', () => {
  it('serves the demo workspace when nothing is configured', () => {
    const config = loadConfig({ env: {}, cwd: '/nonexistent' });
    assert.equal(config.demo, true);
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 8080 });
    assert.equal(config.routes.length, 0);
  });

  it('builds workspace and account routes from flags', () => {
    const config = loadConfig({
      env: {},
      cwd: '/nonexistent',
      flags: {
        workspace: ['prod=https://adb-1234567890123456.7.azuredatabricks.net/?o=1234567890123456'],
        account: ['main=00000000-0000-0000-0000-000000000000', 'gov=11111111-1111-1111-1111-111111111111@https://accounts.azuredatabricks.us'],
        credential: 'azure-cli',
      },
    });
    assert.equal(config.demo, false);
    const [prod, main, gov] = config.routes;
    assert.equal(prod?.kind, 'workspace');
    assert.equal(prod?.upstream.href, 'https://adb-1234567890123456.7.azuredatabricks.net/');
    assert.equal(prod?.credential.type, 'azure-cli');
    assert.equal(main?.kind, 'account');
    assert.equal(main?.upstream.origin, 'https://accounts.azuredatabricks.net');
    assert.equal(main?.accountId, '00000000-0000-0000-0000-000000000000');
    assert.equal(gov?.upstream.origin, 'https://accounts.azuredatabricks.us');
  });

  // biome-ignore lint/suspicious/noTemplateCurlyInString: ${VAR} is the config file's syntax under test
  it('reads the YAML file, expands ${VAR} from the environment, and lets flags and env win', () => {
    const { dir, file } = tempConfig(`
listen: { host: 127.0.0.1, port: 9000 }
credential: azure-cli
routes:
  prod:
    host: https://adb-1.1.azuredatabricks.net
    readOnly: true
  console:
    host: https://accounts.azuredatabricks.net
    accountId: 00000000-0000-0000-0000-000000000000
    credential: { type: pat, token: "\${MY_PAT}" }
timeouts: { connectMs: 5000 }
`);
    const config = loadConfig({
      env: { MY_PAT: 'dapi-from-env', DBX_GATEWAY_PORT: '9100' },
      cwd: dir,
      flags: { workspace: ['prod=https://adb-2.2.azuredatabricks.net'] },
    });
    assert.equal(config.configFile, file);
    assert.equal(config.listen.port, 9100);
    const prod = config.routes.find((r) => r.name === 'prod');
    assert.equal(prod?.upstream.origin, 'https://adb-2.2.azuredatabricks.net', 'flag wins over file');
    const consoleRoute = config.routes.find((r) => r.name === 'console');
    assert.equal(consoleRoute?.kind, 'account');
    assert.deepEqual(consoleRoute?.credential, { type: 'pat', token: 'dapi-from-env' });
    assert.equal(config.timeouts.connectMs, 5000);
    assert.equal(config.timeouts.headersMs, 120_000);
  });

  it('reports every problem at once, naming the file, the field and the fix', () => {
    const { dir, file } = tempConfig(`
listen: { port: 99999 }
routes:
  prod:
    host: http://adb-1.1.azuredatabricks.net
  "bad name":
    host: https://x.azuredatabricks.net
  acct:
    host: https://accounts.azuredatabricks.net
  secret:
    host: https://adb-3.3.azuredatabricks.net
    credential: { type: pat, token: "\${NOT_SET_ANYWHERE}" }
  typo:
    hots: https://adb-4.4.azuredatabricks.net
`);
    assert.throws(
      () => loadConfig({ env: {}, cwd: dir, flags: { workspace: ['oops'] } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.ok(err.message.includes(file), 'names the file');
        assert.ok(err.problems.length >= 3, err.message);
        assert.match(err.message, /listen\.port: must be between 1 and 65535/);
        assert.match(err.message, /routes\.typo\.hots: unknown setting; did you mean host\?/);
        assert.match(err.message, /NOT_SET_ANYWHERE/);
        return true;
      },
    );
    const second = tempConfig(`
routes:
  prod:
    host: http://adb-1.1.azuredatabricks.net
  "bad name":
    host: https://x.azuredatabricks.net
  acct:
    host: https://accounts.azuredatabricks.net
  unknown:
    host: https://adb-5.5.azuredatabricks.net
    credential: kerberos
`);
    assert.throws(
      () => loadConfig({ env: {}, cwd: second.dir, flags: { workspace: ['oops'] } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /routes\.prod\.host: must be an https:\/\/ URL/);
        assert.match(err.message, /routes\.bad name: route names may use/);
        assert.match(err.message, /routes\.acct\.accountId: missing/);
        assert.match(err.message, /routes\.unknown\.credential: unknown credential type "kerberos"/);
        assert.match(err.message, /--workspace oops: expected NAME=URL/);
        return true;
      },
    );
  });

  it('refuses an accountId that is not a UUID, in the file and in --account (it reaches URLs and shell assignments)', () => {
    const { dir } = tempConfig(`
routes:
  acct: { host: https://accounts.azuredatabricks.net, accountId: "x\\" & calc & \\"" }
`);
    assert.throws(
      () => loadConfig({ env: {}, cwd: dir, flags: { account: ['other=abc-123'] } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /routes\.acct\.accountId: not a UUID; the account id is a UUID such as 00000000-0000-0000-0000-000000000000/);
        assert.match(err.message, /--account other=abc-123: abc-123 is not a UUID/);
        return true;
      },
    );
  });

  it('names --credential when the default credential type is unknown', () => {
    assert.throws(
      () => loadConfig({ env: {}, cwd: '/nonexistent', flags: { credential: 'kerberos', workspace: ['p=https://adb-1.1.azuredatabricks.net'] } }),
      /--credential: unknown credential type "kerberos"; use one of default, pat, databricks-m2m, .*azure-cli/,
    );
  });

  it('treats an empty DBX_GATEWAY_CONFIG as unset (clearing an image default)', () => {
    assert.doesNotThrow(() => loadConfig({ env: { DBX_GATEWAY_CONFIG: '' }, cwd: '/nonexistent' }));
  });

  it('reports a YAML syntax error and a missing --config file', () => {
    const { dir } = tempConfig('routes: [unclosed');
    assert.throws(() => loadConfig({ env: {}, cwd: dir }), /YAML syntax/);
    assert.throws(() => loadConfig({ env: {}, cwd: dir, flags: { config: 'missing.yaml' } }), /--config: .*missing\.yaml does not exist/);
  });

  it('accepts plain http only for loopback upstreams', () => {
    const config = loadConfig({ env: {}, cwd: '/nonexistent', flags: { workspace: ['local=http://127.0.0.1:1234'] } });
    assert.equal(config.routes[0]?.upstream.origin, 'http://127.0.0.1:1234');
  });
  it('refuses two flags that name the same route, instead of the last one winning', () => {
    assert.throws(
      () =>
        loadConfig({
          flags: { workspace: ['prod=https://adb-1.1.azuredatabricks.net', 'prod=https://adb-2.2.azuredatabricks.net'], noProfiles: true },
          env: {},
          cwd: '/nonexistent',
        }),
      /--workspace prod=https:\/\/adb-2\.2\.azuredatabricks\.net: route prod is already given by --workspace prod=https:\/\/adb-1\.1\.azuredatabricks\.net/,
    );
  });
  it("reports every problem at once, in the README's words, with the fix", () => {
    const { file } = tempConfig(`
routes:
  prod:
    host: https://adb-1.1.azuredatabricks.net
    readonly: true
    credential: azure_cli
    port: 8080
  p2: { host: https://adb-2.2.azuredatabricks.net, readOnly: "yes" }
  sp: { host: https://adb-3.3.azuredatabricks.net, credential: { type: azure-client-secret } }
listn: {}
`);
    assert.throws(
      () => loadConfig({ env: {}, cwd: dirname(file), flags: { config: file, noProfiles: true } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        const text = err.message;
        assert.match(text, /routes\.prod\.readonly: unknown setting; did you mean readOnly\?/);
        assert.match(text, /routes\.p2\.readOnly must be true or false/);
        assert.match(text, /listn: unknown setting; did you mean listen\?/);
        assert.match(text, /routes\.prod\.credential: unknown credential type "azure_cli"; did you mean azure-cli\?/);
        assert.match(text, /routes\.prod\.port: 8080 is the main port \(listen\.port\)/);
        // Credential settings in the same report as the schema's problems, not in a second round.
        assert.match(text, /routes\.sp\.credential \(.*\): azure-client-secret needs tenantId/);
        assert.doesNotMatch(text, /expected boolean|received string/);
        return true;
      },
    );
  });

  it('validates credential settings in the same pass as the file', () => {
    const { file } = tempConfig('routes:\n  sp: { host: https://adb-3.3.azuredatabricks.net, credential: { type: azure-client-secret } }\n');
    assert.throws(
      () => loadConfig({ env: {}, cwd: dirname(file), flags: { config: file, noProfiles: true } }),
      /routes\.sp\.credential \(.*\): azure-client-secret needs tenantId/,
    );
  });

  it('says a profile route has no ~/.databrickscfg, whatever else is wrong', () => {
    const { dir, file } = tempConfig('routes:\n  q: { host: not-a-url }\n  p: { profile: dev }\n');
    assert.throws(
      () => loadConfig({ env: { HOME: dir, USERPROFILE: dir }, cwd: dir, flags: { config: file, noProfiles: true } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /routes\.p\.profile: no Databricks config file found/);
        assert.match(err.message, /routes\.q\.host: "not-a-url" is not a URL/);
        return true;
      },
    );
  });

  it('checks sparkConnect: a workspace over https, no route policy, a port of its own', () => {
    const { file } = tempConfig(`
routes:
  ok: { host: https://adb-1.1.azuredatabricks.net, port: 9001, sparkConnect: { port: 15002 } }
  ro: { host: https://adb-2.2.azuredatabricks.net, readOnly: true, sparkConnect: { port: 15003 } }
  acct: { host: https://accounts.azuredatabricks.net, accountId: 00000000-0000-0000-0000-000000000000, sparkConnect: { port: 15004 } }
  local: { host: http://127.0.0.1:9, sparkConnect: { port: 15005 } }
  clash: { host: https://adb-3.3.azuredatabricks.net, sparkConnect: { port: 9001 } }
  main: { host: https://adb-4.4.azuredatabricks.net, sparkConnect: { port: 8080 } }
  typo: { host: https://adb-5.5.azuredatabricks.net, sparkConnect: { prt: 15006 } }
`);
    assert.throws(
      () => loadConfig({ env: {}, cwd: dirname(file), flags: { config: file, noProfiles: true, credential: 'azure-cli' } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        const text = err.message;
        assert.match(text, /routes\.ro\.sparkConnect: the route has readOnly, which Spark Connect calls cannot be held to/);
        assert.match(text, /routes\.acct\.sparkConnect: Spark Connect is served by workspaces, not the accounts console/);
        assert.match(text, /routes\.local\.sparkConnect: .*the host must be https:\/\//);
        assert.match(text, /routes\.clash\.sparkConnect\.port: 9001 is already used by route ok/);
        assert.match(text, /routes\.main\.sparkConnect\.port: 8080 is the main port/);
        assert.match(text, /routes\.typo\.sparkConnect\.prt: unknown setting; did you mean port\?/);
        assert.doesNotMatch(text, /routes\.ok\./);
        return true;
      },
    );
  });

  it('shows the offending line of a YAML syntax error', () => {
    const { file } = tempConfig('routes:\n  prod: {host: x\n   bad\n');
    assert.throws(
      () => loadConfig({ env: {}, cwd: dirname(file), flags: { config: file, noProfiles: true } }),
      /YAML syntax: .*at line \d+, column \d+:[\s\S]*bad/,
    );
  });
});
