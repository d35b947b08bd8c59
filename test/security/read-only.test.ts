import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';

describe('readOnly routes', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startFakeUpstream();
    const file = join(mkdtempSync(join(tmpdir(), 'dbxgw-ro-')), 'gw.yaml');
    writeFileSync(file, `routes:\n  prod:\n    host: ${upstream.url.origin}\n    credential: pat\n    readOnly: true\n`);
    gw = await startTestGateway({
      flags: { config: file },
      env: { DATABRICKS_TOKEN: 'dapi44444444444444444444444444444444' },
      configure: trustCa(testPki().caFile),
    });
  });
  after(async () => {
    await gw.shutdown(100);
    await upstream.close();
  });

  it('lets GET and HEAD through', async () => {
    assert.equal((await request(`${gw.url}/ws/prod/api/2.0/clusters/list`)).status, 200);
    assert.equal((await request(`${gw.url}/ws/prod/api/2.0/clusters/list`, { method: 'HEAD' })).status, 200);
  });

  it('refuses writes with 403 naming the setting, and forwards nothing', async () => {
    const seen = upstream.seen.length;
    const body = '{"cluster_id":"x"}';
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const res = await request(`${gw.url}/ws/prod/api/2.0/clusters/delete`, {
        method,
        body,
        headers: { 'content-length': Buffer.byteLength(body), 'content-type': 'application/json' },
      });
      assert.equal(res.status, 403, method);
      assert.equal(res.headers['x-dbx-gateway-error'], '1');
      assert.equal(res.json().error_code, 'GATEWAY_FORBIDDEN');
      assert.match(res.json<{ message: string }>().message, /routes\.prod\.readOnly/);
    }
    assert.equal(upstream.seen.length, seen);
  });
});
