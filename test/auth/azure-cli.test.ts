import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { REJECT_BACKOFF_BASE_MS } from '../../src/auth/token-cache.js';
import { type FakeAz, fakeAzToken, installFakeAz } from '../helpers/fake-az.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';
import { waitFor } from '../helpers/wait.js';

// The credential runs `az` from the gateway's env's PATH; the process's PATH holds the fake too,
// and nothing after it, so no real az is ever run.
const az: FakeAz = installFakeAz();
process.env.PATH = az.path;

describe('azure-cli credential (fake az on PATH)', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  const clock = { offsetMs: 0 };

  before(async () => {
    upstream = await startFakeUpstream((req, res) => {
      req.resume();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ auth: req.headers.authorization }));
    });
  });
  beforeEach(async () => {
    await gw?.shutdown(100);
    az.set({ mode: 'ok', expiresInSec: 3600, delayMs: 50 });
    clock.offsetMs = 0;
    gw = await startTestGateway({
      flags: { workspace: [`prod=${upstream.url.origin}`] },
      env: { PATH: az.path },
      configure: trustCa(testPki().caFile),
      now: () => Date.now() + clock.offsetMs,
    });
  });
  after(async () => {
    await gw.shutdown(100);
    await upstream.close();
  });
  /** The token cache's state for route prod's credential. */
  const prodToken = () => gw.tokens.status(gw.routes.all.find((r) => r.name === 'prod')!.credential, 'databricks');

  it('is chosen by the default chain when az is on PATH, and says why', async () => {
    const ready = await request(`${gw.url}/readyz`);
    const route = ready.json<{ routes: Record<string, { credential: string; reason: string }> }>().routes.prod;
    assert.equal(route?.credential, 'azure-cli');
    assert.match(route?.reason ?? '', /default chain: the Azure CLI is installed/);
  });

  it('makes exactly one az call for 200 concurrent requests on a cold gateway', async () => {
    const before = az.calls();
    const results = await Promise.all(Array.from({ length: 200 }, () => request(`${gw.url}/ws/prod/api/2.0/clusters/list`)));
    assert.ok(results.every((r) => r.status === 200));
    assert.equal(az.calls() - before, 1);
    const argv = az.argv().at(-1) ?? '';
    assert.match(argv, /account get-access-token/);
    assert.match(argv, /--resource 2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/);
    const token = results[0]?.json<{ auth: string }>().auth;
    assert.ok(results.every((r) => r.json<{ auth: string }>().auth === token));
  });

  it('answers 503 GATEWAY_TOKEN_UNAVAILABLE with "run az login" when az has no login and nothing is cached', async () => {
    az.set({ mode: 'login' });
    const res = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`);
    assert.equal(res.status, 503);
    assert.equal(res.headers['x-dbx-gateway-error'], '1');
    const body = res.json<{ error_code: string; message: string }>();
    assert.equal(body.error_code, 'GATEWAY_TOKEN_UNAVAILABLE');
    assert.match(body.message, /run az login/);
    const ready = await request(`${gw.url}/readyz`);
    assert.equal(ready.status, 503);
  });

  it('relays an expired Azure CLI refresh token with the AADSTS code and "run az login"', async () => {
    az.set({ mode: 'fail' });
    const res = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`);
    assert.equal(res.status, 503);
    assert.match(res.json<{ message: string }>().message, /AADSTS700082: The refresh token has expired.*Correlation ID: 1111.*Fix: run az login/);
  });

  it('keeps serving the cached token when a refresh fails', async () => {
    const first = await request(`${gw.url}/ws/prod/a`);
    const token = first.json<{ auth: string }>().auth;
    az.set({ mode: 'fail' });
    clock.offsetMs = 45 * 60_000; // inside the refresh window, well before the cutoff
    const second = await request(`${gw.url}/ws/prod/b`);
    assert.equal(second.status, 200);
    assert.equal(second.json<{ auth: string }>().auth, token);
    // The background refresh the second request started fails; its az run ends before the next test.
    await waitFor(() => prodToken().failures > 0, { what: 'the failed background refresh to be recorded' });
    assert.match(prodToken().lastError ?? '', /AADSTS700082/);
    assert.equal(prodToken().token?.token, token.replace(/^Bearer /, ''), 'the cached token stays');
  });

  it('refreshes a short-lived token before it expires', async () => {
    az.set({ expiresInSec: 90 });
    const first = (await request(`${gw.url}/ws/prod/a`)).json<{ auth: string }>().auth;
    const before = az.calls();
    assert.equal(first, `Bearer ${fakeAzToken(before)}`);
    clock.offsetMs = 26_000; // past the refresh point (25 s after issue for a 90 s token)
    await request(`${gw.url}/ws/prod/b`);
    // The second request started a background refresh: wait until its token is in the cache.
    await waitFor(() => prodToken().token?.token === fakeAzToken(before + 1), { what: 'the background refresh to cache a new token' });
    const third = (await request(`${gw.url}/ws/prod/c`)).json<{ auth: string }>().auth;
    assert.equal(az.calls() - before, 1);
    assert.equal(third, `Bearer ${fakeAzToken(before + 1)}`);
  });

  it('drops the cached token on a 401 and replays a body-less request once with a new one', async () => {
    const before = az.calls();
    let rejectNext = true;
    upstream.handle((req, res) => {
      req.resume();
      if (rejectNext) {
        rejectNext = false;
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"error_code":"401","message":"Token is expired"}');
        return;
      }
      res.end(JSON.stringify({ auth: req.headers.authorization }));
    });
    const res = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`);
    assert.equal(res.status, 200);
    assert.equal(res.json<{ auth: string }>().auth, `Bearer ${fakeAzToken(before + 2)}`);
    assert.equal(az.calls() - before, 2);

    // With a body the 401 goes back to the client. The replacement was rejected moments after it
    // was fetched, so the cache backs off instead of running az again at once...
    const post = async () => {
      rejectNext = true;
      const res = await request(`${gw.url}/ws/prod/api/2.0/jobs/run-now`, {
        method: 'POST',
        body: '{"job_id":1}',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.status, 401);
    };
    await post();
    const kept = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`);
    assert.equal(kept.json<{ auth: string }>().auth, `Bearer ${fakeAzToken(before + 2)}`);
    assert.equal(az.calls() - before, 2);
    // ...and once the backoff has passed, a 401 drops the token and the next request gets a new one.
    clock.offsetMs += REJECT_BACKOFF_BASE_MS + 1000;
    await post();
    const next = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`);
    assert.equal(next.json<{ auth: string }>().auth, `Bearer ${fakeAzToken(before + 3)}`);
  });

  it('never writes the token to the log', async () => {
    await request(`${gw.url}/ws/prod/x`);
    const text = gw.logText();
    assert.ok(text.length > 0);
    for (let n = 1; n <= az.calls(); n++) assert.ok(!text.includes(fakeAzToken(n)), `token ${n} leaked`);
  });
});
