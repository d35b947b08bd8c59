import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startYamlGateway, TEST_PAT } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';

describe('credential reason per route', () => {
  it("routes sharing one credential each show why they use it, not the first route's reason", async () => {
    const host = 'https://adb-1.1.azuredatabricks.net';
    // Both end up with the PAT of DATABRICKS_TOKEN: one identity, one credential instance.
    const gw = await startYamlGateway(`routes:\n  named: { host: ${host}, credential: pat }\n  chained: { host: ${host}, credential: default }\n`, {
      env: { DATABRICKS_TOKEN: TEST_PAT },
    });
    try {
      const [named, chained] = gw.routes.all;
      assert.equal(named?.credential, chained?.credential, 'one shared credential');
      const ready = (await request(`${gw.url}/readyz`)).json<{ routes: Record<string, { reason: string }> }>();
      assert.equal(ready.routes.named?.reason, 'credential: pat is configured');
      assert.match(ready.routes.chained?.reason ?? '', /^default chain: /);
      const status = (await request(`${gw.url}/`, { headers: { accept: 'application/json' } })).json<{ routes: Array<{ name: string; reason: string }> }>();
      assert.deepEqual(
        status.routes.map((r) => [r.name, r.reason.startsWith('default chain: ') ? 'chain' : r.reason]),
        [
          ['named', 'credential: pat is configured'],
          ['chained', 'chain'],
        ],
      );
    } finally {
      await gw.shutdown(100);
    }
  });
});
