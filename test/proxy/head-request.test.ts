import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { responsesClosed, usePatGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';

// Regression: Hono re-dispatches HEAD as GET and rebuilt the response, so node-server wrote
// headers a second time after the proxy had sent the upstream's (ERR_HTTP_HEADERS_SENT).
describe('HEAD requests', () => {
  const uncaught: Error[] = [];
  const onUncaught = (err: Error) => uncaught.push(err);
  before(() => process.on('uncaughtException', onUncaught));
  after(() => process.off('uncaughtException', onUncaught));
  const ctx = usePatGateway({
    pat: 'dapi66666666666666666666666666666666',
    handler: (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1234', 'x-upstream': req.method ?? '' });
      res.end(req.method === 'HEAD' ? undefined : Buffer.alloc(1234));
    },
  });

  it('forwards a HEAD as HEAD and returns the upstream headers once', async () => {
    const handled = responsesClosed(ctx.gw.server, 1);
    const res = await request(`${ctx.gw.url}/ws/prod/api/2.0/fs/files/big.bin`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-upstream'], 'HEAD');
    assert.equal(res.headers['content-length'], '1234');
    assert.equal(res.headers['x-hono-already-sent'], undefined);
    assert.equal(res.body.length, 0);
    assert.equal(ctx.upstream.seen.at(-1)?.method, 'HEAD');
    // The gateway is done with the request once its response has closed; a second write of the
    // headers would throw then, and surfaces as an uncaught exception by the next turn of the loop.
    await handled;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      uncaught.map((e) => e.message),
      [],
    );
  });

  it('answers HEAD on local endpoints without a body', async () => {
    const res = await request(`${ctx.gw.url}/healthz`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 0);
  });
});
