/**
 * Hints follow the machine as it is when a token fetch fails, not as it was at start: az or the
 * Databricks CLI installed while the gateway runs (a fake copied into a directory on its PATH
 * between two requests) turns "install it" into "sign in with it". Real CLI process calls.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { installFakeAz } from '../helpers/fake-az.js';
import { installFakeDatabricksCli } from '../helpers/fake-databricks-cli.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

/** The 503's message for a request to route prod. */
async function tokenError(gateway: SpawnedGateway): Promise<string> {
  const res = await fetch(`${gateway.url}/ws/prod/api/2.0/clusters/list`);
  const body = (await res.json()) as { error_code: string; message: string };
  assert.equal(res.status, 503, body.message);
  assert.equal(body.error_code, 'GATEWAY_TOKEN_UNAVAILABLE');
  return body.message;
}

describe('credential hints are computed when a fetch fails', () => {
  let upstream: FakeUpstream;
  before(async () => {
    upstream = await startFakeUpstream();
  });
  after(async () => {
    await upstream.close();
  });

  /** A gateway whose PATH is one empty directory (returned), for tools to appear in later. */
  async function gatewayWithEmptyPath(credential: string | undefined): Promise<{ gateway: SpawnedGateway; bin: string }> {
    const bin = mkdtempSync(join(tmpdir(), 'dbxgw-later-bin-'));
    const flags = ['--no-profiles', '--workspace', `prod=${upstream.url.origin}`, '--ca-file', testPki().caFile];
    const gateway = await spawnGateway(credential ? [...flags, '--credential', credential] : flags, { PATH: bin });
    return { gateway, bin };
  }

  test('azure-cli: "install the Azure CLI" until az is installed, then "run az login", then a token', async () => {
    const { gateway, bin } = await gatewayWithEmptyPath('azure-cli');
    try {
      assert.match(await tokenError(gateway), /Fix: install the Azure CLI \(https:\/\/aka\.ms\/installazurecli\) and run az login$/);
      const az = installFakeAz({ mode: 'login' });
      copyFileSync(join(az.dir, 'az'), join(bin, 'az'));
      const signedOut = await tokenError(gateway);
      assert.match(signedOut, /Fix: run az login$/);
      assert.doesNotMatch(signedOut, /install the Azure CLI/);
      az.set({ mode: 'ok' });
      const res = await fetch(`${gateway.url}/ws/prod/api/2.0/clusters/list`);
      assert.equal(res.status, 200, await res.clone().text());
    } finally {
      await gateway.stop();
    }
  });

  test('databricks-cli: "install the Databricks CLI" until it is installed, then "run databricks auth login --host"', async () => {
    const { gateway, bin } = await gatewayWithEmptyPath('databricks-cli');
    const login = `databricks auth login --host ${upstream.url.origin}`.replace(/[.]/g, '\\.');
    try {
      assert.match(
        await tokenError(gateway),
        new RegExp(
          `Fix: install the Databricks CLI \\(https://docs\\.databricks\\.com/dev-tools/cli/install\\.html\\) or set DATABRICKS_CLI_PATH, then run ${login}$`,
        ),
      );
      const cli = installFakeDatabricksCli({ mode: 'login' });
      copyFileSync(join(cli.dir, 'databricks'), join(bin, 'databricks'));
      const signedOut = await tokenError(gateway);
      assert.match(signedOut, new RegExp(`Fix: run ${login}$`));
      assert.doesNotMatch(signedOut, /install the Databricks CLI/);
    } finally {
      await gateway.stop();
    }
  });

  test('the default chain with no tool says to install one (not "run az login"), and what to do once one appears', async () => {
    const { gateway, bin } = await gatewayWithEmptyPath(undefined);
    try {
      const nothing = await tokenError(gateway);
      assert.match(nothing, /default credential chain found nothing to use/);
      assert.match(
        nothing,
        /Fix: install the Azure CLI \(https:\/\/aka\.ms\/installazurecli\) and run az login, or install the Databricks CLI \(.*\) and run databricks auth login --host https:\/\/127\.0\.0\.1:\d+, or run dbx-gateway login prod, or set DATABRICKS_TOKEN/,
      );
      const az = installFakeAz({ mode: 'login' });
      copyFileSync(join(az.dir, 'az'), join(bin, 'az'));
      assert.match(await tokenError(gateway), /Fix: the Azure CLI is installed now: run az login, then restart dbx-gateway or run dbx-gateway reload/);
    } finally {
      await gateway.stop();
    }
  });
});
