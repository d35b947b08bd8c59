import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

function load(yaml: string) {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-pgcfg-'));
  const file = join(dir, 'dbx-gateway.yaml');
  writeFileSync(file, yaml);
  return loadConfig({ flags: { config: file, noProfiles: true }, env: { DBX_GATEWAY_TEST_HOME: dir }, cwd: dir });
}

function problems(yaml: string): string {
  try {
    load(yaml);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('the config was accepted');
}

const HOST = 'https://adb-1234567890123456.7.azuredatabricks.net';

describe("config: a route's postgres block", () => {
  it('reads port, endpoint and the default database', () => {
    const config = load(
      `routes:\n  prod:\n    host: ${HOST}\n    credential: azure-cli\n    postgres: { port: 5432, endpoint: projects/p/branches/b/endpoints/e }\n`,
    );
    assert.deepEqual(config.routes[0]?.postgres, { port: 5432, endpoint: 'projects/p/branches/b/endpoints/e', database: 'databricks_postgres' });
  });

  it('suggests the setting meant by a typo', () => {
    assert.match(
      problems(`routes:\n  prod:\n    host: ${HOST}\n    postgres: { port: 5432, endpont: projects/p/branches/b/endpoints/e }\n`),
      /routes\.prod\.postgres\.endpont: unknown setting; did you mean endpoint\?/,
    );
  });

  it('needs exactly one of endpoint and instance, and an endpoint in its long form', () => {
    assert.match(
      problems(`routes:\n  prod:\n    host: ${HOST}\n    postgres: { port: 5432 }\n`),
      /routes\.prod\.postgres: set exactly one of endpoint .* and instance/,
    );
    assert.match(
      problems(`routes:\n  prod:\n    host: ${HOST}\n    postgres: { port: 5432, endpoint: ep-1, instance: db1 }\n`),
      /set exactly one of endpoint[\s\S]*routes\.prod\.postgres\.endpoint: "ep-1" is not an endpoint name/,
    );
  });

  it('refuses inbound keys without listen.tls: the key is the password', () => {
    const key = `sha256:${'0'.repeat(64)}`;
    assert.match(
      problems(`inboundKeys:\n  alice: ${key}\nroutes:\n  prod:\n    host: ${HOST}\n    postgres: { port: 5432, instance: db1 }\n`),
      /routes\.prod\.postgres: with inboundKeys, Postgres clients send their key as the password, which must travel over TLS; set listen\.tls: auto/,
    );
  });

  it('refuses a port another listener has', () => {
    assert.match(
      problems(`routes:\n  prod:\n    host: ${HOST}\n    port: 5432\n    postgres: { port: 5432, instance: db1 }\n`),
      /routes\.prod\.postgres\.port: 5432 is already used by route prod/,
    );
  });
});
