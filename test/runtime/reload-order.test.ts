import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { usePatGateway } from '../helpers/gateway.js';

// SIGHUP and POST /-/reload may overlap. Each reload must start from the generation the previous
// one left: the last one asked is what serves, and every replaced generation is retired.
describe('overlapping reloads', () => {
  const setup = usePatGateway();

  it('apply one at a time, in the order asked: the last one asked is what serves', async () => {
    const { gw } = setup;
    // The first is slower to build: it also starts the demo workspace (a listener of its own).
    const slow = { ...gw.config, demo: true, timeouts: { ...gw.config.timeouts, idleMs: 111_111 } };
    const fast = { ...gw.config, demo: false, timeouts: { ...gw.config.timeouts, idleMs: 222_222 } };
    await Promise.all([gw.reload(slow), gw.reload(fast)]);
    assert.equal(gw.config.timeouts.idleMs, 222_222, 'the older reload overwrote the newer one');
    assert.equal(gw.config.demo, false);
    const res = await fetch(new URL('/ws/prod/api/2.0/clusters/list', gw.url));
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
});
