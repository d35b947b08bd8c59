import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StatusData } from '../../src/local/status-page.js';
import { runCli } from '../helpers/cli.js';
import { type FakeAz, installFakeAz } from '../helpers/fake-az.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { TEST_PAT } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('serve: one block per route once its first token is in (text log)', () => {
  let upstream: FakeUpstream;
  let az: FakeAz;
  let gw: SpawnedGateway;
  let env: NodeJS.ProcessEnv;
  const ports = { route: 0, spark: 0, postgres: 0 };

  before(async () => {
    upstream = await startFakeUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.url === '/api/2.0/preview/scim/v2/Me' ? { userName: 'dana@contoso.com', displayName: 'Dana' } : {}));
    });
    // Signed out at start: its route is FAILING until `az login` (the fake's mode turns ok).
    az = installFakeAz({ mode: 'login' });
    [ports.route, ports.spark, ports.postgres] = await Promise.all([freePort(), freePort(), freePort()]);
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-startup-'));
    const ca = testPki().caFile;
    const config = join(home, 'gw.yaml');
    writeFileSync(
      config,
      'routes:\n' +
        `  prod: { host: ${upstream.url.origin}, caFile: ${ca}, credential: pat, port: ${ports.route}, sparkConnect: { port: ${ports.spark} }, ` +
        `postgres: { port: ${ports.postgres}, endpoint: projects/p/branches/b/endpoints/e } }\n` +
        // The same PAT as prod (one shared credential instance), chosen for another reason.
        `  other: { host: ${upstream.url.origin}, caFile: ${ca}, credential: default }\n` +
        `  signedout: { host: ${upstream.url.origin}, caFile: ${ca}, credential: azure-cli }\n`,
    );
    env = { HOME: home, PATH: az.path, DATABRICKS_TOKEN: TEST_PAT, NO_COLOR: '1' };
    gw = await spawnGateway(['--config', config, '--no-profiles', '--log-format', 'text'], env, home);
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it('a ready route: who the token is, until when, and how to point curl, the CLI, Spark and psql at it', async () => {
    const main = new URL(gw.url).port;
    const [block] = await gw.waitForOutput('stdout', /INFO {2}prod {2}ready as dana@contoso\.com \(pat\), token does not expire\n( +.*\n)+/);
    const lines = block
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((l) => l.trim());
    assert.deepEqual(lines, [
      `curl http://127.0.0.1:${main}/ws/prod/api/2.0/...`,
      `DATABRICKS_HOST=http://127.0.0.1:${ports.route}`,
      `Spark Connect: sc://localhost:${ports.spark}`,
      `Postgres: psql "host=localhost port=${ports.postgres}"`,
    ]);
    // Without a port of its own, DATABRICKS_HOST is the prefix URL.
    await gw.waitForOutput(
      'stdout',
      new RegExp(`INFO  other  ready as dana@contoso\\.com \\(pat\\).*\\n +curl .*\\n +DATABRICKS_HOST=${escapeRegex(gw.url)}/ws/other\\n`),
    );
    assert.equal(upstream.seen.filter((r) => r.url === '/api/2.0/preview/scim/v2/Me').length, 2, 'SCIM Me once per route');
  });

  it('a failing route: the reason and the fix, then ready by itself after az login, without a request', async () => {
    await gw.waitForOutput(
      'stdout',
      /WARN {2}signedout {2}FAILING: no usable token from credential azure-cli: .*az login.*\. Fix: run az login\n +retried in the background/,
    );
    const proxied = () => upstream.seen.filter((r) => r.url !== '/api/2.0/preview/scim/v2/Me').length;
    const before = proxied();
    az.set({ mode: 'ok' });
    // The token cache's first retry comes 3 s after the failure (REFRESH_RETRY_BASE_MS).
    await gw.waitForOutput('stdout', /INFO {2}signedout {2}ready as dana@contoso\.com \(azure-cli\), token until (?:\d{4}-\d\d-\d\d )?\d\d:\d\d\n/, {
      timeoutMs: 15_000,
    });
    const status = await runCli(['status', '--output', 'json'], env);
    assert.equal(status.status, 0, status.stderr);
    const data = JSON.parse(status.stdout) as StatusData;
    assert.equal(data.routes.find((r) => r.name === 'signedout')?.token, 'ready');
    assert.equal(proxied(), before, 'no proxied request made it ready');
  });

  it('each route shows its own credential reason, though prod and other share one credential', async () => {
    const status = await runCli(['status', '--output', 'json'], env);
    const data = JSON.parse(status.stdout) as StatusData;
    const reason = (name: string) => data.routes.find((r) => r.name === name)?.reason;
    assert.equal(reason('prod'), 'credential: pat is configured');
    assert.match(reason('other') ?? '', /^default chain: /);
  });
});
