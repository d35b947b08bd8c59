import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';

const CHROMIUM = '/usr/bin/chromium';
const PAT = 'dapi1212121212121212121212121212ffff';
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));

interface StatusJson {
  status: string;
  routes: Array<{ name: string; credential: string; token: string; expires_on: number | null; last_error: string | null; requests: number; errors: number }>;
  recent_errors: Array<{ route: string; status: number; error?: string }>;
}

describe('status page at /', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startTestGateway({
      flags: { workspace: [`prod=${upstream.url.origin}`, `broken=${upstream.url.origin.replace('127.0.0.1', 'localhost')}`], credential: 'pat' },
      env: { DATABRICKS_TOKEN: PAT, PATH: '/nonexistent' },
      configure: (config) => {
        trustCa(testPki().caFile)(config);
        config.routes.find((r) => r.name === 'broken')!.credential = { type: 'databricks-cli' };
      },
    });
    for (let i = 0; i < 3; i++) await request(`${gw.url}/ws/prod/api/2.0/clusters/list`);
    await request(`${gw.url}/ws/broken/api/2.0/clusters/list`);
  });
  after(async () => {
    await gw.shutdown(100);
    await upstream.close();
  });

  it('answers JSON for Accept: application/json, with token state, counts and recent errors, and no secret', async () => {
    const res = await request(`${gw.url}/`, { headers: { accept: 'application/json' } });
    assert.equal(res.status, 200);
    const body = res.json<StatusJson>();
    const prod = body.routes.find((r) => r.name === 'prod')!;
    const broken = body.routes.find((r) => r.name === 'broken')!;
    assert.equal(prod.token, 'ready');
    assert.equal(prod.requests, 3);
    assert.equal(prod.expires_on, null, 'a PAT does not expire');
    assert.equal(broken.token, 'failing');
    assert.match(broken.last_error ?? '', /Databricks CLI was not found/);
    assert.equal(body.recent_errors[0]?.route, 'broken');
    assert.equal(body.recent_errors[0]?.error, 'GATEWAY_TOKEN_UNAVAILABLE');
    assert.ok(!res.text.includes(PAT));
  });

  it('serves a self-contained HTML page with a strict CSP', async () => {
    const res = await request(`${gw.url}/`, { headers: { accept: 'text/html' } });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /text\/html/);
    assert.match(String(res.headers['content-security-policy']), /default-src 'none'/);
    assert.ok(!/<(script|link|img)[^>]+(src|href)=["']?https?:/i.test(res.text), 'no external assets');
  });

  describe('in headless Chromium', { skip: !existsSync(CHROMIUM) && `needs ${CHROMIUM} (apt-get install chromium)` }, () => {
    let browser: Browser;
    before(async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    });
    after(async () => {
      await browser?.close();
    });

    it('renders routes, token states, a live countdown and recent errors, loading nothing external', async () => {
      // A token with a known expiry: a short-lived one via the demo-like fake is not needed;
      // the countdown is driven by the page's clock against the JSON's "now".
      const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
      const requested: string[] = [];
      const problems: string[] = [];
      page.on('request', (r) => requested.push(r.url()));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(`${gw.url}/`);
      await page.waitForSelector('#routes tr');
      assert.equal(await page.title(), 'dbx-gateway status');
      assert.equal(await page.getAttribute('html', 'lang'), 'en');
      const rows = await page.locator('#routes tr').allInnerTexts();
      assert.equal(rows.length, 2);
      assert.match(rows.find((r) => r.includes('/ws/prod/')) ?? '', /pat[\s\S]*ready/);
      assert.match(rows.find((r) => r.includes('/ws/broken/')) ?? '', /databricks-cli[\s\S]*failing[\s\S]*Last error: .*Databricks CLI was not found/);
      assert.match(await page.locator('#errors').innerText(), /broken[\s\S]*GET \/api\/2\.0\/clusters\/list[\s\S]*503[\s\S]*GATEWAY_TOKEN_UNAVAILABLE/);
      assert.equal(await page.locator('caption').innerText(), 'Routes');
      assert.ok((await page.locator('th[scope="col"]').count()) >= 7, 'column headers are marked');
      assert.ok((await page.locator('#meta[aria-live="polite"]').count()) === 1, 'updates are announced');

      // The page refreshes itself: a new error shows up without a reload.
      await request(`${gw.url}/ws/broken/api/2.0/jobs/list`);
      // (Polled from here: the page's CSP forbids evaluating strings, as it should.)
      let refreshed = false;
      for (let i = 0; i < 40 && !refreshed; i++) {
        refreshed = (await page.locator('#errors').innerText()).includes('/api/2.0/jobs/list');
        if (!refreshed) await page.waitForTimeout(250);
      }
      assert.ok(refreshed, 'the page picked up the new error by itself');

      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}status-page.png`, fullPage: true });
      assert.ok(existsSync(`${ARTIFACTS}status-page.png`));
      assert.ok(requested.every((u) => u.startsWith(gw.url)), `only the gateway was contacted: ${requested.join(', ')}`);
      assert.deepEqual(problems, []);
    });

    it('counts down the token expiry every second', async () => {
      const page = await browser.newPage();
      // Serve a page whose data has a token expiring in 10 minutes by intercepting the JSON poll.
      await page.route(`${gw.url}/`, async (route) => {
        if ((route.request().headers().accept ?? '').includes('application/json')) {
          const now = Math.floor(Date.now() / 1000);
          await route.fulfill({
            contentType: 'application/json',
            body: JSON.stringify({ status: 'serving', version: 'x', now, uptime_s: 1, recent_errors: [], routes: [{ name: 'p', prefix: '/ws/p', upstream: 'https://x', credential: 'azure-cli', reason: 'r', token: 'ready', expires_on: now + 600, last_error: null, failures: 0, requests: 0, errors: 0 }] }),
          });
        } else await route.continue();
      });
      await page.goto(`${gw.url}/`);
      const cell = page.locator('td.countdown').first();
      await cell.waitFor();
      const first = await cell.innerText();
      await page.waitForTimeout(1500);
      const second = await cell.innerText();
      assert.match(first, /^(9|10) min \d+ s$/);
      assert.notEqual(first, second, 'the countdown moves');
    });
  });
});
