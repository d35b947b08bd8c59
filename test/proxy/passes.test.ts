import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forwardableResponseHeaders, forwardedRequestHeaders, hasNoBody, isValidStatus } from '../../src/proxy/headers.js';
import { rewriteLocation } from '../../src/proxy/location.js';
import { responseHeaderPass } from '../../src/proxy/response-pass.js';
import type { Route } from '../../src/routing/route-table.js';
import { RouteTable } from '../../src/routing/route-table.js';
import { assertLocalTarget, assertSafeTarget, percentDecode } from '../../src/security/path-check.js';
import { canonicalPath } from '../../src/security/route-policy.js';

// The pure passes of the data path, without sockets (the socket-level tests pin them end to end).

const UPSTREAM = new URL('https://adb-1.1.azuredatabricks.net');
const route = { name: 'prod', prefix: '/ws/prod', target: UPSTREAM, config: { name: 'prod', kind: 'workspace' } } as unknown as Route;

describe('request header pass', () => {
  it('drops hop-by-hop, client credentials, spoofable headers and what undici frames, keeping names and repeats', () => {
    const out = forwardedRequestHeaders([
      'Host',
      'localhost:8080',
      'Connection',
      'keep-alive, X-Drop-Me, Content-Length',
      'X-Drop-Me',
      '1',
      'Content-Length',
      '4',
      'Transfer-Encoding',
      'chunked',
      'Expect',
      '100-continue',
      'Authorization',
      'Bearer client',
      'X-Dbx-Gateway-Key',
      'dgw_x',
      'X-Databricks-Azure-SP-Management-Token',
      'spoof',
      'X-Forwarded-Host',
      'evil',
      'Forwarded',
      'host=evil',
      'Cookie',
      'a=1',
      'Cookie',
      'b=2',
      'X-Custom',
      'kept',
    ]);
    assert.deepEqual(out, ['Content-Length', '4', 'Cookie', 'a=1', 'Cookie', 'b=2', 'X-Custom', 'kept']);
  });

  it('knows when a request has no body (and may be replayed after a 401)', () => {
    assert.equal(hasNoBody({}), true);
    assert.equal(hasNoBody({ 'content-length': '0' }), true);
    assert.equal(hasNoBody({ 'content-length': '2' }), false);
    assert.equal(hasNoBody({ 'transfer-encoding': 'chunked' }), false);
  });
});

describe('response header pass', () => {
  it('drops hop-by-hop and Connection-listed headers, keeps repeats, and keeps the handshake on a 101', () => {
    const raw = ['Connection', 'close, X-Hop', 'X-Hop', '1', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Transfer-Encoding', 'chunked', 'Upgrade', 'websocket'];
    assert.deepEqual(
      forwardableResponseHeaders(raw, (_n, v) => v),
      ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'],
    );
    assert.deepEqual(
      forwardableResponseHeaders(raw, (_n, v) => v, true),
      ['Connection', 'close, X-Hop', 'X-Hop', '1', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Upgrade', 'websocket'],
    );
  });

  it('drops upstream CORS, makes a Location to the upstream local, and sandboxes active content only', () => {
    const html = responseHeaderPass(['Content-Type', 'text/html', 'Access-Control-Allow-Origin', '*', 'Location', `${UPSTREAM.origin}/x`], route, '/ws/prod');
    assert.deepEqual(html, ['Content-Type', 'text/html', 'Location', '/ws/prod/x', 'content-security-policy', 'sandbox', 'x-content-type-options', 'nosniff']);
    assert.deepEqual(responseHeaderPass(['Content-Type', 'application/json'], route, ''), ['Content-Type', 'application/json']);
    const svg = responseHeaderPass(['content-type', 'image/svg+xml', 'X-Content-Type-Options', 'nosniff'], route, '');
    assert.equal(svg.filter((h) => h.toLowerCase() === 'x-content-type-options').length, 1, 'no second nosniff');
  });

  it('accepts only three-digit statuses 100-599', () => {
    for (const ok of [100, 101, 200, 404, 599]) assert.equal(isValidStatus(ok), true, String(ok));
    for (const bad of [0, 99, 600, 1.5, Number.NaN]) assert.equal(isValidStatus(bad), false, String(bad));
  });
});

describe('Location rewrite', () => {
  const cases: Array<[string, string, string]> = [
    ['/login', '/ws/prod', '/ws/prod/login'],
    [`${UPSTREAM.origin}/a?b=1`, '/ws/prod', '/ws/prod/a?b=1'],
    [`${UPSTREAM.origin}//evil.example/x`, '', '/evil.example/x'],
    [`//${UPSTREAM.host}/a`, '', '/a'],
    ['https://login.microsoftonline.com/x', '/ws/prod', 'https://login.microsoftonline.com/x'],
    [`${UPSTREAM.origin}`, '', '/'],
  ];
  for (const [location, prefix, expected] of cases) {
    it(`${location} (prefix "${prefix}") -> ${expected}`, () => assert.equal(rewriteLocation(location, UPSTREAM, prefix), expected));
  }
});

describe('route table', () => {
  const table = new RouteTable([route]);
  it('maps a prefix to its route and keeps the rest byte-for-byte', () => {
    assert.deepEqual(table.resolve('/ws/prod/api/2.0/x?a=%2F&b'), { route, upstreamPath: '/api/2.0/x?a=%2F&b' });
    assert.equal(table.resolve('/ws/prod').upstreamPath, '/');
    assert.equal(table.resolve('/ws/prod?x=1').upstreamPath, '/?x=1');
  });
  it('refuses an encoded route name and names the known routes for an unknown one', () => {
    assert.throws(() => table.resolve('/ws/pr%6fd/x'), /must not be percent-encoded/);
    assert.throws(() => table.resolve('/ws/nope/x'), /known routes: \/ws\/prod/);
  });
});

describe('path checks and canonical paths', () => {
  it('refuses absolute-form targets, dot-dot segments, bad escapes and encoded separators', () => {
    for (const bad of [
      'http://evil/x',
      '//evil/x',
      '/ws/prod/../x',
      '/ws/prod/%2e%2E/x',
      '/x%',
      '/x%zz',
      '/x%ff',
      '/x%c0%ae',
      '/x%3f',
      '/x%23',
      '/x%00',
      '/x%5c',
    ]) {
      assert.throws(() => assertSafeTarget(bad), /GATEWAY_BAD_REQUEST|must be a path|not forwarded|hex digits|UTF-8/, bad);
    }
    for (const good of ['/ws/prod/api/2.0/x', '/ws/prod/caf%C3%A9', '/ws/prod/a%2Fb', '/ws/prod/x?q=%3f'])
      assert.doesNotThrow(() => assertSafeTarget(good), good);
    assert.throws(() => assertLocalTarget('/%6detadata/x'), /no percent-encoded/);
  });
  it('decodes bytewise without throwing, and canonicalises spellings', () => {
    assert.equal(percentDecode('%41%ff'), 'A\u00ff');
    assert.equal(canonicalPath('/API/2.0//Token/%2563reate;x=1/'), '/api/2.0/token/create');
    assert.equal(canonicalPath('/api/2.0/a/./b/../c#frag'), '/api/2.0/a/c');
  });
});
