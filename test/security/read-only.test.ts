import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { usePatGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';

describe('readOnly routes', () => {
  const ctx = usePatGateway({
    pat: 'dapi44444444444444444444444444444444',
    yaml: (upstream) => `routes:\n  prod:\n    host: ${upstream.url.origin}\n    credential: pat\n    readOnly: true\n`,
  });

  it('lets GET and HEAD through', async () => {
    assert.equal((await request(`${ctx.gw.url}/ws/prod/api/2.0/clusters/list`)).status, 200);
    assert.equal((await request(`${ctx.gw.url}/ws/prod/api/2.0/clusters/list`, { method: 'HEAD' })).status, 200);
  });

  it('refuses writes with 403 naming the setting, and forwards nothing', async () => {
    const seen = ctx.upstream.seen.length;
    const body = '{"cluster_id":"x"}';
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const res = await request(`${ctx.gw.url}/ws/prod/api/2.0/clusters/delete`, {
        method,
        body,
        headers: { 'content-length': Buffer.byteLength(body), 'content-type': 'application/json' },
      });
      assert.equal(res.status, 403, method);
      assert.equal(res.headers['x-dbx-gateway-error'], '1');
      assert.equal(res.json().error_code, 'GATEWAY_FORBIDDEN');
      assert.match(res.json<{ message: string }>().message, /routes\.prod\.readOnly/);
    }
    assert.equal(ctx.upstream.seen.length, seen);
  });
});
