import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startPatGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';

// Regression: Hono re-dispatches HEAD as GET and rebuilt the response, so node-server wrote
// headers a second time after the proxy had sent the upstream's (ERR_HTTP_HEADERS_SENT).
describe('HEAD requests', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  const uncaught: Error[] = [];
  const onUncaught = (err: Error) => uncaught.push(err);

  before(async () => {
    process.on('uncaughtException', onUncaught);
    upstream = await startFakeUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1234', 'x-upstream': req.method ?? '' });
      res.end(req.method === 'HEAD' ? undefined : Buffer.alloc(1234));
    });
    gw = await startPatGateway(upstream, 'dapi66666666666666666666666666666666');
  });
  after(async () => {
    process.off('uncaughtException', onUncaught);
    await gw.shutdown(100);
    await upstream.close();
  });

  it('forwards a HEAD as HEAD and returns the upstream headers once', async () => {
    const res = await request(`${gw.url}/ws/prod/api/2.0/fs/files/big.bin`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-upstream'], 'HEAD');
    assert.equal(res.headers['content-length'], '1234');
    assert.equal(res.headers['x-hono-already-sent'], undefined);
    assert.equal(res.body.length, 0);
    assert.equal(upstream.seen.at(-1)?.method, 'HEAD');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      uncaught.map((e) => e.message),
      [],
    );
  });

  it('answers HEAD on local endpoints without a body', async () => {
    const res = await request(`${gw.url}/healthz`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 0);
  });
});
