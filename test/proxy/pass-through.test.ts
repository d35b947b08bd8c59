import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { defaultHandler } from '../helpers/fake-upstream.js';
import { usePatGateway } from '../helpers/gateway.js';
import { rawRequest, request } from '../helpers/http.js';

const PAT = 'dapi0123456789abcdef0123456789abcdef';

describe('pass-through', () => {
  const ctx = usePatGateway({ pat: PAT });
  beforeEach(() => ctx.upstream.handle(defaultHandler));

  it('forwards the path and query string byte-for-byte', async () => {
    const tail = "/api/2.0/x/a%20b/%2Fenc/[br]/{c}|d;m=1/~'!*$,@:?q=a%2Bb&q=%20&e=&u=%E2%82%AC&raw=a+b";
    const reply = await rawRequest(ctx.gw.port, `GET /ws/prod${tail} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    assert.match(reply, /^HTTP\/1\.1 200/);
    assert.equal(ctx.upstream.seen.at(-1)?.url, tail);
  });

  it('maps the bare prefix and a prefix with only a query to the upstream root', async () => {
    await request(`${ctx.gw.url}/ws/prod`);
    assert.equal(ctx.upstream.seen.at(-1)?.url, '/');
    await request(`${ctx.gw.url}/ws/prod?x=1`);
    assert.equal(ctx.upstream.seen.at(-1)?.url, '/?x=1');
  });

  it('replaces the client Authorization header and drops X-Databricks-Azure-* headers', async () => {
    const res = await request(`${ctx.gw.url}/ws/prod/api/2.0/clusters/list`, {
      headers: {
        authorization: 'Bearer placeholder-from-a-legacy-tool',
        'x-databricks-azure-sp-management-token': 'client-supplied',
        'x-databricks-azure-workspace-resource-id': '/subscriptions/x',
        'x-custom': 'kept',
      },
    });
    assert.equal(res.status, 200);
    const seen = ctx.upstream.seen.at(-1);
    assert.equal(seen?.headers.authorization, `Bearer ${PAT}`);
    assert.equal(seen?.headers['x-databricks-azure-sp-management-token'], undefined);
    assert.equal(seen?.headers['x-databricks-azure-workspace-resource-id'], undefined);
    assert.equal(seen?.headers['x-custom'], 'kept');
    assert.equal(seen?.headers.host, ctx.upstream.url.host);
    assert.equal(seen?.headers['x-forwarded-for'], undefined);
  });

  it('drops hop-by-hop headers, including those named in Connection', async () => {
    await rawRequest(
      ctx.gw.port,
      'GET /ws/prod/x HTTP/1.1\r\nHost: localhost\r\nConnection: close, x-hop\r\nx-hop: secret-hop\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic abc\r\n\r\n',
    );
    const seen = ctx.upstream.seen.at(-1);
    assert.equal(seen?.headers['x-hop'], undefined);
    assert.equal(seen?.headers.te, undefined);
    assert.equal(seen?.headers['proxy-authorization'], undefined);
    assert.notEqual(seen?.headers.connection, 'close');
  });

  it('returns status, headers (every Set-Cookie, Content-Encoding, Content-Length) and body bytes unchanged', async () => {
    const body = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0x00, 0x10, 0x80]);
    ctx.upstream.handle((_req, res) => {
      res.writeHead(207, 'Multi Custom', [
        'Content-Encoding',
        'gzip',
        'Content-Length',
        String(body.length),
        'Set-Cookie',
        'a=1; Path=/; HttpOnly',
        'Set-Cookie',
        'b=2; Path=/',
        'X-Databricks-Org-Id',
        '1234567890123456',
        'X-Multi',
        'one',
        'X-Multi',
        'two',
      ]);
      res.end(body);
    });
    const res = await request(`${ctx.gw.url}/ws/prod/api/2.0/anything`);
    assert.equal(res.status, 207);
    assert.deepEqual(res.body, body);
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.equal(res.headers['content-length'], String(body.length));
    assert.deepEqual(res.headers['set-cookie'], ['a=1; Path=/; HttpOnly', 'b=2; Path=/']);
    const multi = res.rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1] === 'X-Multi');
    assert.deepEqual(multi, ['one', 'two']);
    assert.equal(res.headers['x-databricks-org-id'], '1234567890123456');
  });

  it('rewrites only a Location that points at the route upstream', async () => {
    const cases: Array<[string, string]> = [
      [`${ctx.upstream.url.origin}/login?next=%2Fx`, '/ws/prod/login?next=%2Fx'],
      ['/oidc/authorize?a=b', '/ws/prod/oidc/authorize?a=b'],
      ['https://login.microsoftonline.com/tenant/oauth2', 'https://login.microsoftonline.com/tenant/oauth2'],
      ['relative/path', 'relative/path'],
    ];
    for (const [location, expected] of cases) {
      ctx.upstream.handle((_req, res) => {
        res.writeHead(302, { location, 'content-length': '0' });
        res.end();
      });
      const res = await request(`${ctx.gw.url}/ws/prod/redirect`);
      assert.equal(res.status, 302);
      assert.equal(res.headers.location, expected, `for ${location}`);
    }
  });

  it('answers 404 GATEWAY_ROUTE_NOT_FOUND listing the known routes', async () => {
    const res = await request(`${ctx.gw.url}/ws/nope/api/2.0/clusters/list`);
    assert.equal(res.status, 404);
    assert.equal(res.headers['x-dbx-gateway-error'], '1');
    const body = res.json<{ error_code: string; message: string }>();
    assert.equal(body.error_code, 'GATEWAY_ROUTE_NOT_FOUND');
    assert.match(body.message, /\/ws\/prod/);
    assert.equal((await request(`${ctx.gw.url}/elsewhere`)).status, 404);
  });

  it('says why when a client dropped the /ws/NAME path of DATABRICKS_HOST (Go and Java SDKs, the CLI, Terraform)', async () => {
    const res = await request(`${ctx.gw.url}/api/2.0/clusters/list`);
    assert.equal(res.status, 404);
    const body = res.json<{ error_code: string; message: string }>();
    assert.equal(body.error_code, 'GATEWAY_ROUTE_NOT_FOUND');
    assert.match(body.message, /drop the path of DATABRICKS_HOST/);
    assert.match(body.message, /routes\.prod\.port/);
  });

  it('refuses a Host header that is not loopback (DNS rebinding)', async () => {
    const seenBefore = ctx.upstream.seen.length;
    for (const host of ['evil.example', 'localhost.evil.example', '127.0.0.1.nip.io']) {
      const res = await request(`${ctx.gw.url}/ws/prod/x`, { headers: { host } });
      assert.equal(res.status, 403, host);
      assert.equal(res.json().error_code, 'GATEWAY_FORBIDDEN');
    }
    // Not even a valid Host: refused before routing (Node or the guard), never forwarded.
    const odd = await request(`${ctx.gw.url}/ws/prod/x`, { headers: { host: 'evil.example:8080@localhost' } });
    assert.ok(odd.status === 400 || odd.status === 403, `status ${odd.status}`);
    assert.equal(ctx.upstream.seen.length, seenBefore);
    for (const host of ['localhost:8080', '127.0.0.1', '[::1]:1234', 'LOCALHOST']) {
      assert.equal((await request(`${ctx.gw.url}/ws/prod/x`, { headers: { host } })).status, 200, host);
    }
  });

  it('refuses absolute-form targets and dot-dot segments with 400', async () => {
    const seenBefore = ctx.upstream.seen.length;
    const absolute = await rawRequest(ctx.gw.port, 'GET http://evil.example/ws/prod/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.match(absolute, /^HTTP\/1\.1 (400|404)/);
    for (const path of ['/ws/prod/api/../x', '/ws/prod/api/%2e%2e/x', '/ws/prod/api/.%2E/x']) {
      const reply = await rawRequest(ctx.gw.port, `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      assert.match(reply, /^HTTP\/1\.1 400/, path);
    }
    assert.equal(ctx.upstream.seen.length, seenBefore);
  });

  it('keeps upstream connections alive across requests', async () => {
    ctx.upstream.handle((req, res) => {
      req.resume();
      res.end('ok');
    });
    const start = ctx.upstream.connections();
    for (let i = 0; i < 10; i++) await request(`${ctx.gw.url}/ws/prod/ping`);
    assert.ok(ctx.upstream.connections() - start <= 1, `opened ${ctx.upstream.connections() - start} connections for 10 requests`);
  });

  it('logs one line per request with route, path, status, duration and bytes, and no token', async () => {
    ctx.upstream.handle((_req, res) => res.end('12345'));
    await request(`${ctx.gw.url}/ws/prod/api/2.0/logged?secret=1`, { headers: { authorization: 'Bearer client-secret-value' } });
    const line = ctx.gw.logs.findLast((l) => l.path === '/api/2.0/logged');
    assert.ok(line, 'request line logged');
    assert.equal(line.route, 'prod');
    assert.equal(line.method, 'GET');
    assert.equal(line.status, 200);
    assert.equal(line.bytes, 5);
    assert.equal(typeof line.ms, 'number');
    assert.ok(!ctx.gw.logText().includes(PAT));
    assert.ok(!ctx.gw.logText().includes('client-secret-value'));
  });
});
