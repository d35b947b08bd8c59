import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createCredential } from '../../src/auth/credentials/index.js';
import { parseDatabricksCfg } from '../../src/config/databrickscfg.js';
import { loadConfig } from '../../src/config/load.js';
import { profileRoute } from '../../src/config/profiles.js';
import type { RouteConfig } from '../../src/config/types.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/databrickscfg', import.meta.url));

function tmpFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-cfg-'));
  writeFileSync(join(dir, name), text);
  return join(dir, name);
}

const byName = (routes: RouteConfig[]) => Object.fromEntries(routes.map((r) => [r.name, r]));

describe(".databrickscfg parsing (the SDKs' rules)", () => {
  const cfg = parseDatabricksCfg(
    '[__settings__]\ndefault_profile = a\n[DEFAULT]\nhost = h0\n[a]\nHost = h1 ; note\ntoken = abc#def\npassword = p;q # c\n[b]\nhost: h2\n',
    'x',
  );
  it('keeps [DEFAULT] as its own profile and does not merge it into others', () => {
    assert.deepEqual(cfg.profiles.get('DEFAULT'), { host: 'h0' });
    assert.equal(cfg.profiles.get('b')?.token, undefined);
  });
  it('reserves [__settings__]', () => {
    assert.equal(cfg.profiles.has('__settings__'), false);
  });
  it('treats # and ; as comments only after whitespace, lowercases keys, accepts ":"', () => {
    assert.deepEqual(cfg.profiles.get('a'), { host: 'h1', token: 'abc#def', password: 'p;q' });
    assert.deepEqual(cfg.profiles.get('b'), { host: 'h2' });
  });
  it('rejects a malformed file with the line number and never the line itself', () => {
    assert.throws(
      () => parseDatabricksCfg('[a]\nhost = h\nthis line holds dapi-secret\n', '/p/.databrickscfg'),
      (err: Error) => {
        assert.match(err.message, /\/p\/\.databrickscfg line 3: expected "\[profile\]" or "key = value".*--no-profiles/);
        assert.ok(!err.message.includes('dapi-secret'));
        return true;
      },
    );
    assert.throws(() => parseDatabricksCfg('host = h\n[a]\n', 'f'), /line 1: a setting before any \[profile\] header/);
  });
});

describe('profiles become routes', () => {
  const env = { DATABRICKS_CONFIG_FILE: FIXTURE, PATH: '/nonexistent', DATABRICKS_TOKEN: 'dapi-from-env-must-not-leak' };
  const config = loadConfig({ env, cwd: '/nonexistent' });
  const routes = byName(config.routes);

  it('makes a route of every profile with a host, workspace or account, with no flags', () => {
    assert.deepEqual(Object.keys(routes).sort(), ['ACCOUNT', 'DEFAULT', 'cli', 'dev', 'm2m', 'msi', 'sp']);
    assert.equal(config.demo, false);
    assert.equal(routes.ACCOUNT?.kind, 'account');
    assert.equal(routes.ACCOUNT?.accountId, '55555555-0000-0000-0000-000000000007');
    assert.equal(routes.dev?.kind, 'workspace');
    assert.equal(routes.m2m?.upstream.origin, 'https://adb-1000000000000003.3.azuredatabricks.net');
    assert.equal(routes.sp?.azureResourceId, '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/w4');
    assert.match(routes.dev?.source ?? '', /databrickscfg \[dev\]$/);
  });

  it("reads each profile's auth keys as the SDKs do", () => {
    assert.deepEqual(routes.dev?.credential, { type: 'pat', profile: 'dev', token: 'dapi0000000000000000000000000000#002' });
    assert.deepEqual(routes.m2m?.credential, {
      type: 'databricks-m2m',
      profile: 'm2m',
      clientId: '11111111-0000-0000-0000-000000000003',
      clientSecret: 'dose00000000000000000000000000000003',
    });
    assert.equal(routes.sp?.credential.type, 'azure-client-secret');
    assert.equal(routes.sp?.credential.tenantId, '22222222-0000-0000-0000-000000000004');
    assert.equal(routes.sp?.credential.azureEnvironment, 'usgovernment');
    assert.equal(routes.msi?.credential.type, 'azure-msi');
    assert.equal(routes.msi?.credential.clientId, '44444444-0000-0000-0000-000000000005');
    assert.equal(routes.cli?.credential.type, 'databricks-cli');
    assert.equal(routes.ACCOUNT?.credential.type, 'azure-cli');
  });

  it('builds working credentials from profiles without reading env secrets', async () => {
    const pat = createCredential(routes.dev!.credential, { env, route: routes.dev! });
    assert.equal((await pat.getToken('databricks')).token, 'dapi0000000000000000000000000000#002');
    const cli = createCredential(routes.cli!.credential, { env, route: routes.cli! });
    // No databricks on PATH here: the hint says to install it, then log in with the profile.
    assert.match(cli.hint, /databricks auth login --profile cli$/);
    const sp = createCredential(routes.sp!.credential, { env, route: routes.sp! });
    assert.equal(sp.sendsManagementToken, true);
    assert.match(sp.id, /login\.microsoftonline\.us$/, 'azure_environment picks the US Government authority');
  });

  it('skips profiles it cannot use, with a warning that says why', () => {
    const text = config.warnings.join('\n');
    assert.match(text, /\[both\]: more than one authorization method configured \(pat, databricks-m2m\); set auth_type/);
    assert.match(text, /\[bad\/name\]: the profile name cannot be a route name/);
    assert.ok(!text.includes('no host'), 'a profile without a host is not a route and not a problem');
    assert.ok(!/dapi|dose/.test(text), 'no secret in warnings');
  });

  it('lets the config file and flags win over a profile with the same name', () => {
    const file = tmpFile('dbx-gateway.yaml', 'routes:\n  dev:\n    host: https://adb-9.9.azuredatabricks.net\n    credential: azure-cli\n');
    const c = loadConfig({ env, cwd: '/nonexistent', flags: { config: file, workspace: ['m2m=https://adb-8.8.azuredatabricks.net'] } });
    const r = byName(c.routes);
    assert.equal(r.dev?.upstream.origin, 'https://adb-9.9.azuredatabricks.net');
    assert.equal(r.dev?.credential.type, 'azure-cli');
    assert.equal(r.m2m?.upstream.origin, 'https://adb-8.8.azuredatabricks.net');
    assert.equal(r.sp?.credential.type, 'azure-client-secret', 'other profiles stay');
  });

  it('--no-profiles skips them (and the demo serves when nothing else is configured)', () => {
    const c = loadConfig({ env, cwd: '/nonexistent', flags: { noProfiles: true } });
    assert.deepEqual(c.routes, []);
    assert.equal(c.demo, true);
  });

  it('a config route can take host and auth from a named profile', () => {
    const file = tmpFile('dbx-gateway.yaml', 'routes:\n  team:\n    profile: sp\n    readOnly: true\n');
    const c = loadConfig({ env, cwd: '/nonexistent', flags: { config: file, noProfiles: true } });
    assert.equal(c.routes.length, 1);
    const team = c.routes[0]!;
    assert.equal(team.upstream.origin, 'https://adb-1000000000000004.4.azuredatabricks.net');
    assert.equal(team.credential.type, 'azure-client-secret');
    assert.equal(team.readOnly, true);
    assert.equal(team.profile, 'sp');
  });

  it('names the profiles there are when a config route names a missing one', () => {
    const file = tmpFile('dbx-gateway.yaml', 'routes:\n  team:\n    profile: nope\n');
    assert.throws(
      () => loadConfig({ env, cwd: '/nonexistent', flags: { config: file } }),
      /routes\.team\.profile: .* has no profile \[nope\]; it has \[DEFAULT\], \[dev\]/,
    );
  });

  it('stops with the file, line and fix on a malformed file', () => {
    const broken = tmpFile('databrickscfg', '[a]\nhost = https://adb-1.1.azuredatabricks.net\ngarbage\n');
    assert.throws(() => loadConfig({ env: { DATABRICKS_CONFIG_FILE: broken }, cwd: '/nonexistent' }), /databrickscfg line 3: .*pass --no-profiles/);
    assert.doesNotThrow(() => loadConfig({ env: { DATABRICKS_CONFIG_FILE: broken }, cwd: '/nonexistent', flags: { noProfiles: true } }));
  });

  it('reads ~/.databrickscfg from HOME, and an explicit DATABRICKS_CONFIG_FILE must exist', () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-home-'));
    writeFileSync(join(home, '.databrickscfg'), '[home]\nhost = https://adb-7.7.azuredatabricks.net\ntoken = dapi7\n');
    assert.deepEqual(
      loadConfig({ env: { HOME: home }, cwd: '/nonexistent' }).routes.map((r) => r.name),
      ['home'],
    );
    assert.throws(
      () => loadConfig({ env: { HOME: home, DATABRICKS_CONFIG_FILE: '/nonexistent/cfg' }, cwd: '/nonexistent' }),
      /DATABRICKS_CONFIG_FILE: \/nonexistent\/cfg does not exist/,
    );
  });
});

describe('an account profile', () => {
  it('is skipped when its account_id is not a UUID', () => {
    const cfg = parseDatabricksCfg('[acct]\nhost = https://accounts.azuredatabricks.net\naccount_id = x" & calc & "\n', '/p/.databrickscfg');
    const { route, problem } = profileRoute('acct', cfg, (host) => new URL(host));
    assert.equal(route, undefined);
    assert.match(problem ?? '', /\/p\/\.databrickscfg \[acct\]: account_id is not a UUID; the account id is a UUID/);
  });
});
