import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

describe('local endpoints over the Hono app (supertest)', () => {
  let gw: TestGateway;

  before(async () => {
    // Nothing configured: the built-in demo workspace is the only route.
    gw = await startTestGateway({ env: {} });
  });
  after(async () => {
    await gw.shutdown(100);
  });

  it('answers /healthz with {"status":"ok"}', async () => {
    await supertest(gw.server).get('/healthz').set('Host', 'localhost').expect(200, { status: 'ok' });
  });

  it('reports the demo route ready with its credential and expiry', async () => {
    const res = await supertest(gw.server).get('/readyz').set('Host', 'localhost:8080').expect(200);
    assert.equal(res.body.routes.demo.ready, true);
    assert.equal(res.body.routes.demo.credential, 'demo');
    assert.ok(res.body.routes.demo.expires_on > Date.now() / 1000);
  });

  it('proxies the demo API with a token from the demo token source', async () => {
    const res = await supertest(gw.server).get('/ws/demo/api/2.0/clusters/get?cluster_id=0101-120000-demo1').set('Host', '127.0.0.1').expect(200);
    assert.equal(res.body.cluster_name, 'shared-autoscaling');
  });

  it('serves Prometheus text at /metrics', async () => {
    const res = await supertest(gw.server).get('/metrics').set('Host', 'localhost').expect(200);
    assert.match(res.headers['content-type'] ?? '', /text\/plain/);
    assert.match(res.text, /# TYPE dbx_gateway_requests_total counter/);
    assert.match(res.text, /dbx_gateway_token_expiry_seconds\{route="demo"\} \d+/);
  });

  it('marks its own errors with X-Dbx-Gateway-Error and the Databricks error shape', async () => {
    const res = await supertest(gw.server).get('/acct/none/api/2.0/accounts').set('Host', 'localhost').expect(404);
    assert.equal(res.headers['x-dbx-gateway-error'], '1');
    assert.equal(res.body.error_code, 'GATEWAY_ROUTE_NOT_FOUND');
    assert.match(res.body.message, /known routes: \/ws\/demo/);
  });
});
