import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

// A 404 for an unknown route names the route that was meant (issue 21, items 6 and 7).

describe('the answer for an unknown route', () => {
  let gw: TestGateway;
  before(async () => {
    // DEFAULT as ~/.databrickscfg names its first profile; the routes replace the demo.
    gw = await startTestGateway({
      flags: { workspace: ['DEFAULT=https://adb-1.1.azuredatabricks.net', 'prod=https://adb-2.2.azuredatabricks.net'], credential: 'pat' },
      env: { DATABRICKS_TOKEN: 'dapi-test' },
    });
  });
  after(() => gw.shutdown());

  const ask = async (path: string) => {
    const res = await fetch(`${gw.url}${path}`);
    return { status: res.status, body: (await res.json()) as { error_code: string; message: string } };
  };

  it('suggests /ws/DEFAULT for /ws/default: route names are case-sensitive', async () => {
    const { status, body } = await ask('/ws/default/api/2.0/clusters/list');
    assert.equal(status, 404);
    assert.equal(body.error_code, 'GATEWAY_ROUTE_NOT_FOUND');
    assert.match(body.message, /did you mean \/ws\/DEFAULT\? \(route names are case-sensitive\)/);
  });

  it('suggests the closest route for a typo', async () => {
    const { body } = await ask('/ws/prdo/api/2.0/clusters/list');
    assert.match(body.message, /did you mean \/ws\/prod\?/);
  });

  it('answers /ws/demo with how to have the demo back when routes replaced it', async () => {
    const { status, body } = await ask('/ws/demo/api/2.0/clusters/list');
    assert.equal(status, 404);
    assert.match(body.message, /known routes: \/ws\/DEFAULT, \/ws\/prod; the built-in demo is served only when nothing else is configured: start with --demo/);
  });
});
