import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { newInboundKey } from '../../src/security/inbound-keys.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startYamlGateway, type TestGateway } from '../helpers/gateway.js';
import { rawRequest } from '../helpers/http.js';

const CHROMIUM = '/usr/bin/chromium';
const PAT = 'dapi3434343434343434343434343434eeee';
const UPGRADE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

/** The WWW-Authenticate lines of a raw response head, values as sent. */
function challengeLines(response: string): string[] {
  const head = response.split('\r\n\r\n', 1)[0] ?? '';
  return head
    .split('\r\n')
    .filter((line) => /^www-authenticate:/i.test(line))
    .map((line) => line.slice(line.indexOf(':') + 1).trim());
}

describe('a keyed gateway asks browsers for Basic in a header line of its own', () => {
  const { key, hash } = newInboundKey();
  let upstream: FakeUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startYamlGateway(`routes:\n  prod: { host: ${upstream.url.origin}, credential: pat }\ninboundKeys:\n  alice: ${hash}\n`, {
      env: { DATABRICKS_TOKEN: PAT },
    });
  });
  after(async () => {
    await gw?.shutdown(100);
    await upstream?.close();
  });

  for (const [what, text] of [
    ['the status page', 'GET / HTTP/1.1\r\nHost: localhost\r\nAccept: text/html\r\n\r\n'],
    ['a proxied request', 'GET /ws/prod/api/2.0/clusters/list HTTP/1.1\r\nHost: localhost\r\n\r\n'],
    ['a WebSocket upgrade', `GET /ws/prod/stream HTTP/1.1\r\nHost: localhost\r\n${UPGRADE}\r\n`],
  ] as const) {
    it(`answers 401 on ${what} with Bearer and Basic in two WWW-Authenticate lines`, async () => {
      const response = await rawRequest(gw.port, text);
      assert.match(response, /^HTTP\/1\.1 401 /);
      assert.deepEqual(challengeLines(response), ['Bearer realm="dbx-gateway"', 'Basic realm="dbx-gateway", charset="UTF-8"']);
    });
  }

  describe('in headless Chromium', { skip: !existsSync(CHROMIUM) && `needs ${CHROMIUM} (apt-get install chromium)` }, () => {
    /** A browser context with a throwaway profile and HOME: never ~/.config/chromium. */
    async function withBrowser<T>(
      options: { httpCredentials?: { username: string; password: string } },
      use: (open: (url: string) => Promise<{ status: number; title: string }>) => Promise<T>,
    ): Promise<T> {
      const home = mkdtempSync(join(tmpdir(), 'dbxgw-chromium-'));
      const context = await chromium.launchPersistentContext(join(home, 'profile'), {
        executablePath: CHROMIUM,
        args: ['--no-sandbox', '--disable-gpu'],
        env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, '.config'), XDG_CACHE_HOME: join(home, '.cache') },
        ...options,
      });
      try {
        return await use(async (url) => {
          const page = await context.newPage();
          const res = await page.goto(url);
          return { status: res?.status() ?? 0, title: await page.title() };
        });
      } finally {
        await context.close();
        rmSync(home, { recursive: true, force: true });
      }
    }

    it('opens the status page with the key as Basic credentials (the browser prompt)', async () => {
      const seen = await withBrowser({ httpCredentials: { username: 'token', password: key } }, (open) => open(`${gw.url}/`));
      assert.equal(seen.status, 200);
      assert.equal(seen.title, 'dbx-gateway status');
    });

    it('opens http://token:KEY@host:port/', async () => {
      const url = new URL(`${gw.url}/`);
      url.username = 'token';
      url.password = key;
      const seen = await withBrowser({}, (open) => open(url.href));
      assert.equal(seen.status, 200);
      assert.equal(seen.title, 'dbx-gateway status');
    });

    it('still refuses a wrong key', async () => {
      const seen = await withBrowser({ httpCredentials: { username: 'token', password: `${key}x` } }, (open) => open(`${gw.url}/`));
      assert.equal(seen.status, 401);
    });
  });
});
