import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { spawnGateway } from '../helpers/spawn-gateway.js';

// Mode changes are said at startup, never found out later (issue 21, item 7).

const PAT = 'dapi0123456789abcdef0123456789abcdef';

describe('startup says what changed the mode', () => {
  it('names the ~/.databrickscfg profiles that replace the demo, and /ws/demo says --demo', async () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-home-'));
    writeFileSync(
      join(home, '.databrickscfg'),
      `[prod]\nhost = https://adb-1.1.azuredatabricks.net\ntoken = ${PAT}\n\n[dev]\nhost = https://adb-2.2.azuredatabricks.net\ntoken = ${PAT}\n`,
    );
    const gw = await spawnGateway([], { HOME: home }, home);
    try {
      await gw.waitForOutput('stdout', /serving profiles prod, dev from [^"]*\.databrickscfg instead of the built-in demo \(--demo serves it as well/);
      const res = await request(`${gw.url}/ws/demo/api/2.0/clusters/list`);
      assert.equal(res.status, 404);
      assert.match(
        res.json<{ message: string }>().message,
        /known routes: \/ws\/prod, \/ws\/dev; the built-in demo is served only when nothing else is configured: start with --demo/,
      );
    } finally {
      await gw.stop();
    }
  });

  it('with --tls logs the local CA it makes, with its path, and that the Spark Connect port speaks TLS only', async () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-tls-home-'));
    const sparkPort = await freePort();
    const config = join(home, 'gw.yaml');
    writeFileSync(
      config,
      `routes:\n  prod: { host: https://adb-1.1.azuredatabricks.net, credential: { type: pat, token: ${PAT} }, sparkConnect: { port: ${sparkPort} } }\n`,
    );
    const env = { HOME: home, XDG_CONFIG_HOME: join(home, '.config') };
    const caFile = join(home, '.config', 'dbx-gateway', 'tls', 'ca.pem');
    const first = await spawnGateway(['--config', config, '--tls', '--no-profiles'], env, home);
    try {
      await first.waitForOutput('stdout', new RegExp(`local TLS: made a local CA at ${caFile.replace(/[.]/g, '\\.')} `));
      await first.waitForOutput(
        'stdout',
        new RegExp(
          `route prod: Spark Connect on port ${sparkPort} speaks TLS only \\(--tls\\): sc://localhost:${sparkPort}/;use_ssl=true, trusting ${caFile.replace(/[.]/g, '\\.')}`,
        ),
      );
      assert.ok(existsSync(caFile));
    } finally {
      await first.stop();
    }
    // The next start reuses the CA, and says nothing about making one.
    const second = await spawnGateway(['--config', config, '--tls', '--no-profiles'], env, home);
    try {
      await second.waitForOutput('stdout', /speaks TLS only/);
      assert.doesNotMatch(second.stdout(), /made a local CA/);
    } finally {
      await second.stop();
    }
  });
});
