import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveAzureEnvironment } from '../../src/auth/azure-cloud.js';
import { CredentialSetupError, createCredential } from '../../src/auth/credentials/index.js';
import type { CredentialSpec, RouteConfig } from '../../src/config/types.js';
import { routeConfig } from '../helpers/route-config.js';

const route: RouteConfig = routeConfig();

/** A directory holding executables named like the CLIs the chain looks for. */
function binDir(...names: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-bin-'));
  for (const n of names) {
    writeFileSync(join(dir, n), '#!/bin/sh\nexit 1\n');
    chmodSync(join(dir, n), 0o755);
  }
  return dir;
}

const chosen = (env: NodeJS.ProcessEnv, spec: CredentialSpec = { type: 'default' }) => createCredential(spec, { env, route });

const SP = { ARM_TENANT_ID: 't', ARM_CLIENT_ID: 'c', ARM_CLIENT_SECRET: 'the-sp-secret' };

describe('default credential chain (Databricks unified auth order)', () => {
  it('takes the first credential whose settings are present, in README order', () => {
    const tools = binDir('az', 'databricks');
    const cases: Array<[NodeJS.ProcessEnv, string]> = [
      [{ DATABRICKS_TOKEN: 'dapi1', DATABRICKS_CLIENT_ID: 'i', DATABRICKS_CLIENT_SECRET: 's', ...SP, PATH: tools }, 'pat'],
      [{ DATABRICKS_CLIENT_ID: 'i', DATABRICKS_CLIENT_SECRET: 's', ...SP, PATH: tools }, 'databricks-m2m'],
      [{ ...SP, AZURE_FEDERATED_TOKEN_FILE: '/f', ARM_USE_MSI: 'true', PATH: tools }, 'azure-client-secret'],
      [{ AZURE_TENANT_ID: 't', AZURE_CLIENT_ID: 'c', AZURE_FEDERATED_TOKEN_FILE: '/f', ARM_USE_MSI: 'true', PATH: tools }, 'azure-workload-identity'],
      [{ ARM_USE_MSI: 'true', PATH: tools }, 'azure-msi'],
      [{ ARM_USE_MSI: 'false', PATH: tools }, 'azure-cli'],
      [{ PATH: binDir('databricks') }, 'databricks-cli'],
    ];
    for (const [env, type] of cases) assert.equal(chosen(env).type, type, JSON.stringify(env));
  });

  it('lets an explicit credential win over everything the chain would find', () => {
    const cred = chosen({ DATABRICKS_TOKEN: 'dapi1', PATH: binDir('az') }, { type: 'azure-cli' });
    assert.equal(cred.type, 'azure-cli');
    assert.equal(cred.reason, 'credential: azure-cli is configured');
  });

  it('reports why it chose what it chose', () => {
    assert.equal(chosen({ DATABRICKS_TOKEN: 'dapi1' }).reason, 'default chain: DATABRICKS_TOKEN is set');
    assert.match(chosen({ PATH: binDir('az') }).reason, /^default chain: the Azure CLI is installed \(.*\/az\)$/);
  });

  it('when nothing applies, lists what it looked for and how to fix it', async () => {
    const none = chosen({ PATH: '/nonexistent' });
    assert.equal(none.type, 'none');
    for (const t of ['pat', 'databricks-m2m', 'azure-client-secret', 'azure-workload-identity', 'azure-msi', 'azure-cli', 'databricks-cli', 'databricks-u2m']) {
      assert.match(none.reason, new RegExp(`${t}: `));
    }
    assert.match(
      none.hint,
      /^install the Azure CLI .* and run az login, or install the Databricks CLI .* and run databricks auth login --host \S+, or run dbx-gateway login prod, or set DATABRICKS_TOKEN/,
    );
    await assert.rejects(none.getToken('databricks'), /found nothing to use/);
  });

  it('does not pair env secrets with a credential block that has its own settings', () => {
    assert.throws(
      () => chosen({ ...SP }, { type: 'azure-client-secret', clientId: 'other' }),
      (err: Error) => err instanceof CredentialSetupError && /needs tenantId \(ARM_TENANT_ID\), clientSecret/.test(err.message),
    );
    assert.equal(chosen({ ...SP }, { type: 'azure-client-secret' }).type, 'azure-client-secret');
  });

  it('shares an identity id exactly when the identity is the same', () => {
    const a = chosen({ ...SP });
    const b = chosen({ ...SP });
    const c = chosen({ ...SP, ARM_CLIENT_SECRET: 'rotated' });
    assert.equal(a.id, b.id);
    assert.notEqual(a.id, c.id);
    assert.ok(!a.id.includes('the-sp-secret') && !c.id.includes('rotated'), 'ids never hold the secret');
  });
});

describe('Azure environments (sovereign clouds)', () => {
  const at = (host: string) => new URL(host);
  it('maps ARM_ENVIRONMENT to the authority and management endpoint', () => {
    const gov = resolveAzureEnvironment({ type: 'x' }, { ARM_ENVIRONMENT: 'USGOVERNMENT' }, at('https://adb-1.1.azuredatabricks.net'));
    assert.equal(gov.authorityHost, 'https://login.microsoftonline.us');
    assert.equal(gov.cloud.managementEndpoint, 'https://management.core.usgovcloudapi.net/');
    assert.equal(gov.disableInstanceDiscovery, false);
    const china = resolveAzureEnvironment({ type: 'x', azureEnvironment: 'china' }, {}, at('https://adb-1.1.azuredatabricks.net'));
    assert.equal(china.authorityHost, 'https://login.chinacloudapi.cn');
    assert.equal(china.cloud.managementEndpoint, 'https://management.core.chinacloudapi.cn/');
  });
  it('infers the cloud from the workspace host when none is named', () => {
    assert.equal(resolveAzureEnvironment({ type: 'x' }, {}, at('https://adb-1.1.databricks.azure.us')).cloud.name, 'USGOVERNMENT');
    assert.equal(resolveAzureEnvironment({ type: 'x' }, {}, at('https://adb-1.1.databricks.azure.cn')).cloud.name, 'CHINA');
    assert.equal(resolveAzureEnvironment({ type: 'x' }, {}, at('https://adb-1.1.azuredatabricks.net')).cloud.name, 'PUBLIC');
  });
  it('uses AZURE_AUTHORITY_HOST as given, with instance discovery off for unknown authorities', () => {
    const e = resolveAzureEnvironment({ type: 'x' }, { AZURE_AUTHORITY_HOST: 'https://login.example.test/' }, at('https://adb-1.1.azuredatabricks.net'));
    assert.equal(e.authorityHost, 'https://login.example.test');
    assert.equal(e.disableInstanceDiscovery, true);
  });
  it('rejects an unknown environment with the names it accepts', () => {
    assert.throws(
      () => resolveAzureEnvironment({ type: 'x' }, { ARM_ENVIRONMENT: 'germany' }, at('https://a.b')),
      /unknown Azure environment "germany"; use one of PUBLIC, USGOVERNMENT, CHINA/,
    );
  });
});
