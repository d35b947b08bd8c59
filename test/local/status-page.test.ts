import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { escapeHtml } from '../../src/local/html.js';
import { renderStatusPage, type StatusData } from '../../src/local/status-page.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';

const CHROMIUM = '/usr/bin/chromium';
const PAT = 'dapi1212121212121212121212121212ffff';
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
/** A request path with every HTML metacharacter, sent raw (a URL object would percent-encode it). */
const NASTY_PATH = `/api/2.0/<b>x</b>&"'`;

/** GET with the request target exactly as given. */
function rawGet(origin: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(origin);
    const req = http.request({ host: hostname, port, path, method: 'GET', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The markup of the element with this id in a server-rendered page, up to its closing tag. */
function section(html: string, id: string, closing: string): string {
  const start = html.indexOf(` id="${id}"`);
  assert.ok(start >= 0, `the page has #${id}`);
  return html.slice(start, html.indexOf(closing, start));
}

/** The row of a route in the routes section. */
function routeRow(routes: string, name: string): string {
  const start = routes.indexOf(`<tr data-route="${name}">`);
  assert.ok(start >= 0, `a row for ${name}`);
  return routes.slice(start, routes.indexOf('</tr>', start));
}

interface StatusJson {
  status: string;
  routes: Array<{
    name: string;
    upstream: string;
    credential: string;
    reason: string;
    token: string;
    expires_on: number | null;
    last_error: string | null;
    requests: number;
    errors: number;
  }>;
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
    // The inline script and style are allowed by hash, not by 'unsafe-inline': markup injected into
    // the page could not run.
    const csp = String(res.headers['content-security-policy']);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/]+={0,2}'(;|$)/);
    assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/]+={0,2}'(;|$)/);
    assert.ok(!csp.includes('unsafe-inline') && !csp.includes('unsafe-eval'), csp);
    assert.equal(res.text.match(/<script/g)?.length, 1, "one script: the page's own");
  });

  it('renders the first state on the server: a plain GET (curl, no JavaScript) says what is going on', async () => {
    const state = (await request(`${gw.url}/`, { headers: { accept: 'application/json' } })).json<StatusJson>();
    const res = await request(`${gw.url}/`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /text\/html/);
    const html = res.text;
    assert.ok(!html.includes('Loading'), 'no placeholder waiting for the script');
    assert.match(section(html, 'meta', '</p>'), /Status: serving - version \S+ - up \d+ min/);
    const routes = section(html, 'routes', '</tbody>');
    assert.equal(routes.match(/<tr /g)?.length, 2, 'one row per route');
    for (const r of state.routes) {
      const row = routeRow(routes, r.name);
      assert.ok(row.includes(`>${r.name}<`), `${r.name}: name`);
      assert.ok(row.includes(`/ws/${r.name}/`), `${r.name}: prefix`);
      assert.ok(row.includes(escapeHtml(r.upstream)), `${r.name}: upstream`);
      assert.ok(row.includes(`>${r.credential}<`), `${r.name}: credential type`);
      assert.ok(row.includes(escapeHtml(r.reason)), `${r.name}: why this credential`);
      assert.ok(row.includes(`>${r.token}<`), `${r.name}: token state`);
      assert.ok(row.includes(`<td class="num">${r.requests}</td><td class="num">${r.errors}</td>`), `${r.name}: counts`);
    }
    const prod = routeRow(routes, 'prod');
    assert.match(prod, />pat</);
    assert.match(prod, />ready</);
    assert.match(prod, /does not expire/, 'a PAT has no expiry');
    assert.match(prod, /<td class="num">3<\/td>/);
    const broken = routeRow(routes, 'broken');
    const lastError = state.routes.find((r) => r.name === 'broken')!.last_error!;
    assert.match(lastError, /Databricks CLI was not found/);
    assert.ok(broken.includes(`Last error: ${escapeHtml(lastError)}`), 'the last token error, as the JSON has it (scrubbed)');
    assert.match(broken, />databricks-cli</);
    assert.match(broken, />failing</);
    const errors = section(html, 'errors', '</tbody>');
    assert.match(
      errors,
      /<td>broken<\/td><td>GET \/api\/2\.0\/clusters\/list<\/td><td>503<\/td><td class="err">GATEWAY_TOKEN_UNAVAILABLE: no usable token from credential databricks-cli: .* Fix: [^<]*databricks auth login[^<]*<\/td>/,
      'the code and its reason',
    );
    assert.match(errors, /<time datetime="\d{4}-\d\d-\d\dT[^"]+Z">\d\d:\d\d:\d\d UTC<\/time>/, 'error times are absolute, in UTC');
    assert.match(html, /<noscript>.*JavaScript is off/);
    assert.ok(!html.includes(PAT));
  });

  it('escapes HTML metacharacters in what it renders (a request path recorded among the errors)', async () => {
    assert.equal(await rawGet(gw.url, `/ws/broken${NASTY_PATH}`), 503);
    const json = (await request(`${gw.url}/`, { headers: { accept: 'application/json' } })).json<StatusJson & { recent_errors: Array<{ path: string }> }>();
    assert.equal(json.recent_errors[0]?.path, NASTY_PATH, 'recorded as sent');
    const html = (await request(`${gw.url}/`)).text;
    assert.ok(html.includes('GET /api/2.0/&lt;b&gt;x&lt;/b&gt;&amp;&quot;&#39;</td>'), 'escaped');
    assert.ok(!html.includes('<b>x</b>'), 'never as markup');
  });

  it('escapes every dynamic string: route names, upstreams, reasons, token errors, error paths', () => {
    const evil = `<script>alert("x&y's")</script>`;
    const data: StatusData = {
      status: 'serving',
      version: evil,
      now: 1_750_000_000,
      uptime_s: 60,
      routes: [
        {
          name: `n${evil}`,
          prefix: `/ws/${evil}`,
          upstream: `https://${evil}`,
          port: 8081,
          source: 'flag',
          credential: evil,
          reason: evil,
          token: 'ready',
          expires_on: 1_750_000_600,
          last_error: evil,
          upstream_error: { at: new Date(1_750_000_000_000).toISOString(), reason: evil },
          failures: 1,
          requests: 1,
          errors: 0,
        },
      ],
      recent_errors: [{ at: new Date(1_750_000_000_000).toISOString(), route: evil, method: 'GET', path: `/${evil}`, status: 502, error: evil, reason: evil }],
    };
    const html = renderStatusPage(data);
    assert.equal(html.match(/<script/g)?.length, 1, "only the page's own script tag");
    assert.ok(!html.includes('alert("'), 'nothing unescaped');
    const escaped = '&lt;script&gt;alert(&quot;x&amp;y&#39;s&quot;)&lt;/script&gt;';
    assert.ok(html.includes(`data-route="n${escaped}"`), 'in attributes');
    for (const needle of [
      `>n${escaped}<`,
      `/ws/${escaped}/`,
      `https://${escaped}`,
      `Last error: ${escaped}`,
      `Upstream: ${escaped}`,
      `${escaped}: ${escaped}`,
      `GET /${escaped}`,
      `version ${escaped}`,
    ]) {
      assert.ok(html.includes(needle), needle);
    }
    assert.match(html, /port 8081/);
    assert.match(html, /<time datetime="2025-06-15T15:16:40.000Z">2025-06-15 15:16:40 UTC<\/time>/, 'expires_on as an absolute time');
    assert.match(html, /<td class="countdown" data-expires="1750000600">10 min 0 s<\/td>/);
    assert.equal(escapeHtml(`<&>"'`), '&lt;&amp;&gt;&quot;&#39;');
  });

  describe('in headless Chromium', { skip: !existsSync(CHROMIUM) && `needs ${CHROMIUM} (apt-get install chromium)` }, () => {
    let browser: Browser;
    before(async () => {
      // Playwright gives the browser a throwaway --user-data-dir; Chromium still keeps some state
      // under HOME and XDG_CONFIG_HOME (~/.config/chromium, ~/.pki/nssdb): a temp home takes it.
      // PATH stays: Debian's /usr/bin/chromium is a shell script that runs other commands.
      const home = mkdtempSync(join(tmpdir(), 'dbxgw-chromium-home-'));
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox', '--disable-gpu'],
        env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, '.config'), XDG_CACHE_HOME: join(home, '.cache') },
      });
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
      const refreshed = await page
        .locator('#errors', { hasText: '/api/2.0/jobs/list' })
        .waitFor({ timeout: 10_000 })
        .then(
          () => true,
          () => false,
        );
      assert.ok(refreshed, 'the page picked up the new error by itself');

      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}status-page.png`, fullPage: true });
      assert.ok(existsSync(`${ARTIFACTS}status-page.png`));
      assert.ok(
        requested.every((u) => u.startsWith(gw.url)),
        `only the gateway was contacted: ${requested.join(', ')}`,
      );
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
            body: JSON.stringify({
              status: 'serving',
              version: 'x',
              now,
              uptime_s: 1,
              recent_errors: [],
              routes: [
                {
                  name: 'p',
                  prefix: '/ws/p',
                  upstream: 'https://x',
                  credential: 'azure-cli',
                  reason: 'r',
                  token: 'ready',
                  expires_on: now + 600,
                  last_error: null,
                  failures: 0,
                  requests: 0,
                  errors: 0,
                },
              ],
            }),
          });
        } else await route.continue();
      });
      await page.goto(`${gw.url}/`);
      // The server-rendered rows come first; the row of the intercepted data replaces them.
      const cell = page.locator('#routes tr[data-route="p"] td.countdown');
      await cell.waitFor();
      const first = await cell.innerText();
      assert.match(first, /^(9|10) min \d+ s$/);
      // A countdown that ticks every second shows another value within 1.5 s.
      const moved = await cell
        .filter({ hasNotText: first })
        .waitFor({ timeout: 1500 })
        .then(
          () => true,
          () => false,
        );
      assert.ok(moved, `the countdown moves (still ${await cell.innerText()})`);
      assert.match(await page.locator('#routes tr[data-route="p"] td.expires').innerText(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    });

    it('with JavaScript disabled, still shows the routes, token states and recent errors', async () => {
      const context = await browser.newContext({ javaScriptEnabled: false });
      try {
        const page = await context.newPage();
        const requested: string[] = [];
        page.on('request', (r) => requested.push(r.url()));
        await page.goto(`${gw.url}/`);
        const rows = await page.locator('#routes tr').allInnerTexts();
        assert.equal(rows.length, 2);
        assert.match(rows.find((r) => r.includes('/ws/prod/')) ?? '', /prod[\s\S]*pat[\s\S]*ready[\s\S]*does not expire/);
        assert.match(
          rows.find((r) => r.includes('/ws/broken/')) ?? '',
          /broken[\s\S]*databricks-cli[\s\S]*failing[\s\S]*Last error: .*Databricks CLI was not found/,
        );
        assert.match(await page.locator('#meta').innerText(), /^Status: serving - version \S+ - up \d+ min - as of \d\d:\d\d:\d\d UTC$/);
        assert.match(await page.locator('#errors').innerText(), /broken[\s\S]*GET \/api\/2\.0\/clusters\/list[\s\S]*503[\s\S]*GATEWAY_TOKEN_UNAVAILABLE/);
        assert.match(await page.locator('#errors').innerText(), /GET \/api\/2\.0\/<b>x<\/b>&"'/, 'the escaped path reads as the text it was');
        assert.equal(await page.locator('#errors b').count(), 0, 'and is no markup');
        assert.match(await page.locator('body').innerText(), /JavaScript is off/);
        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: `${ARTIFACTS}status-page-no-js.png`, fullPage: true });
        assert.deepEqual(requested, [`${gw.url}/`], 'nothing but the page itself');
      } finally {
        await context.close();
      }
    });
  });
});
