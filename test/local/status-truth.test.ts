import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { formatStatus } from '../../src/cli/status.js';
import type { StatusData } from '../../src/local/status-page.js';
import { type FakeAz, installFakeAz } from '../helpers/fake-az.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, TEST_PAT, type TestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { testPki } from '../helpers/tls.js';
import { waitFor } from '../helpers/wait.js';

// @azure/identity runs `az` from the process's PATH, whatever the gateway's env says.
const az: FakeAz = installFakeAz({ mode: 'login' });
process.env.PATH = az.path;

const SCIM_ME = '/api/2.0/preview/scim/v2/Me';
/** Backoffs of a few ms: the background retry comes at once, no test sleeps for it. */
const SHORT = { tokenRetry: { baseMs: 20, maxMs: 100 }, routeWatch: { recheck: { baseMs: 20, maxMs: 100 } } };

async function statusOf(gw: TestGateway): Promise<StatusData> {
  return (await request(`${gw.url}/`, { headers: { accept: 'application/json' } })).json<StatusData>();
}

function linesWith(gw: TestGateway, text: string, level?: number): Array<Record<string, unknown>> {
  return gw.logs.filter((l) => String(l.msg).includes(text) && (level === undefined || l.level === level));
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

  describe('a failing credential', () => {
    let gw: TestGateway;
    const clock = { offsetMs: 0 };

    before(async () => {
      gw = await startTestGateway({
        flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'azure-cli' },
        env: { PATH: az.path },
        configure: trustCa(testPki().caFile),
        now: () => Date.now() + clock.offsetMs,
        ...SHORT,
      });
      gw.watchRoutes();
    });
    after(async () => {
      await gw.shutdown(100);
    });

    it('is retried in the background: after az login the route turns ready without a proxied request', async () => {
      await waitFor(() => linesWith(gw, 'prod  FAILING: no usable token from credential azure-cli').length > 0, { what: 'the FAILING block' });
      assert.equal((await statusOf(gw)).routes[0]?.token, 'failing');
      const callsWhileFailing = az.calls();
      await waitFor(() => az.calls() > callsWhileFailing + 1, { what: 'background retries of az' });
      assert.equal(linesWith(gw, 'FAILING', 40).length, 1, 'one warning, the retries at debug');
      const proxied = upstream.seen.filter((r) => r.url !== SCIM_ME).length;
      az.set({ mode: 'ok' });
      await waitFor(() => linesWith(gw, 'prod  ready as dana@contoso.com (azure-cli), token until', 30).length === 1, { what: 'the ready block' });
      const data = await statusOf(gw);
      assert.equal(data.routes[0]?.token, 'ready');
      assert.equal(upstream.seen.filter((r) => r.url !== SCIM_ME).length, proxied, 'no proxied request');
      const ready = linesWith(gw, 'prod  ready as')[0]!;
      assert.equal(ready.identity, 'dana@contoso.com');
      assert.equal(ready.curl, `curl ${gw.url}/ws/prod/api/2.0/...`);
      assert.equal(ready.databricks_host, `${gw.url}/ws/prod`);
    });

    it('a token refresh is one INFO line', async () => {
      const route = gw.routes.all[0]!;
      const before = linesWith(gw, 'token refreshed').length;
      // 50 min on, the token (1 h) is due for its refresh-ahead: get() starts it in the background.
      clock.offsetMs = 50 * 60_000;
      await gw.tokens.get(route.credential, 'databricks');
      await waitFor(() => linesWith(gw, 'prod: token refreshed (azure-cli), until ', 30).length === before + 1, { what: 'the refresh line' });
      assert.deepEqual(linesWith(gw, 'token refreshed').at(-1)?.routes, ['prod']);
    });
  });

  describe('an upstream that refuses connections', () => {
    let gw: TestGateway;
    let port: number;
    let revived: Server | undefined;

    before(async () => {
      port = await freePort();
      gw = await startTestGateway({
        flags: { workspace: [`down=https://127.0.0.1:${port}`], credential: 'pat' },
        env: { DATABRICKS_TOKEN: TEST_PAT },
        configure: trustCa(testPki().caFile),
        ...SHORT,
      });
      gw.watchRoutes();
    });
    after(async () => {
      await gw.shutdown(100);
      await new Promise((r) => (revived ? revived.close(r) : r(undefined)));
    });

    it('is not shown as ready: startup says FAILING, the page and status show the upstream problem', async () => {
      await waitFor(() => linesWith(gw, 'down  FAILING: could not reach', 40).length === 1, { what: 'the FAILING block' });
      const data = await statusOf(gw);
      const route = data.routes[0]!;
      assert.equal(route.token, 'ready', 'the token itself is fine');
      assert.match(route.upstream_error?.reason ?? '', /could not reach https:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
      const html = (await request(`${gw.url}/`)).text;
      assert.match(html, /<span class="state failing">upstream unreachable<\/span>/);
      assert.doesNotMatch(html, /class="state ready"/);
      assert.match(html, /Upstream: could not reach/);
      const text = formatStatus({ ...data, pid: 1 }, gw.url);
      assert.match(text, /down .* upstream unreachable/);
      assert.match(text, /down: upstream unreachable since .*: could not reach/);
    });

    it('recent errors carry their reason, not only the code', async () => {
      assert.equal((await request(`${gw.url}/ws/down/api/2.0/clusters/list`)).status, 502);
      await waitFor(() => gw.metrics.stats.recentErrors().length > 0, { what: 'the recent error' });
      const [recent] = (await statusOf(gw)).recent_errors;
      assert.equal(recent?.error, 'GATEWAY_UPSTREAM_UNREACHABLE');
      assert.match(recent?.reason ?? '', /could not reach https:\/\/127\.0\.0\.1:\d+/);
      assert.match((await request(`${gw.url}/`)).text, /GATEWAY_UPSTREAM_UNREACHABLE: could not reach/);
    });

    it('turns ready by itself once the upstream answers again', async () => {
      const pki = testPki();
      revived = createServer({ key: pki.key, cert: pki.cert }, (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ userName: 'dana@contoso.com' }));
      });
      await new Promise<void>((r) => revived!.listen(port, '127.0.0.1', r));
      await waitFor(() => linesWith(gw, 'down  ready as dana@contoso.com (pat)', 30).length === 1, { what: 'the ready block' });
      assert.equal((await statusOf(gw)).routes[0]?.upstream_error, null);
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
