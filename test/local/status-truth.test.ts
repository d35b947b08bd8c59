import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatStatus } from '../../src/cli/status.js';
import type { StatusData } from '../../src/local/status-page.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, TEST_PAT, type TestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { testPki } from '../helpers/tls.js';
import { waitFor } from '../helpers/wait.js';

const SCIM_ME = '/api/2.0/preview/scim/v2/Me';

async function statusOf(gw: TestGateway): Promise<StatusData> {
  return (await request(`${gw.url}/`, { headers: { accept: 'application/json' } })).json<StatusData>();
}

describe('status that tells the truth', () => {
  let upstream: FakeUpstream;

  before(async () => {
    upstream = await startFakeUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.url === SCIM_ME ? { userName: 'dana@contoso.com' } : {}));
    });
  });
  after(async () => {
    await upstream.close();
  });

  describe('an upstream that refuses connections', () => {
    let gw: TestGateway;

    before(async () => {
      const port = await freePort();
      gw = await startTestGateway({
        flags: { workspace: [`down=https://127.0.0.1:${port}`], credential: 'pat' },
        env: { DATABRICKS_TOKEN: TEST_PAT },
        configure: trustCa(testPki().caFile),
      });
    });
    after(async () => {
      await gw.shutdown(100);
    });

    it('is not shown as ready once a request could not reach it; recent errors carry their reason', async () => {
      assert.equal((await request(`${gw.url}/ws/down/api/2.0/clusters/list`)).status, 502);
      await waitFor(() => gw.metrics.stats.recentErrors().length > 0, { what: 'the recent error' });
      const data = await statusOf(gw);
      assert.match(data.routes[0]?.upstream_error?.reason ?? '', /could not reach https:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
      const html = (await request(`${gw.url}/`)).text;
      assert.match(html, /<span class="state failing">upstream unreachable<\/span>/);
      assert.match(html, /Upstream: could not reach/);
      const text = formatStatus({ ...data, pid: 1 }, gw.url);
      assert.match(text, /down .* upstream unreachable/);
      assert.match(text, /down: upstream unreachable since .*: could not reach/);
      const [recent] = data.recent_errors;
      assert.equal(recent?.error, 'GATEWAY_UPSTREAM_UNREACHABLE');
      assert.match(recent?.reason ?? '', /could not reach https:\/\/127\.0\.0\.1:\d+/);
      assert.match((await request(`${gw.url}/`)).text, /GATEWAY_UPSTREAM_UNREACHABLE: could not reach/);
    });
  });

  it("the status page's own polling (GET / as JSON) is logged at debug; opening the page at info", async () => {
    const gw = await startTestGateway({ flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'pat' }, env: { DATABRICKS_TOKEN: TEST_PAT } });
    try {
      await statusOf(gw);
      await request(`${gw.url}/`, { headers: { accept: 'text/html' } });
      await waitFor(() => gw.logs.filter((l) => l.msg === 'request' && l.path === '/').length === 2, { what: 'two request lines' });
      const levels = gw.logs.filter((l) => l.msg === 'request' && l.path === '/').map((l) => l.level);
      assert.deepEqual(levels, [20, 30]);
    } finally {
      await gw.shutdown(100);
    }
  });
});
