import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { percentDecode } from '../../src/security/path-check.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { usePatGateway } from '../helpers/gateway.js';
import { rawRequest } from '../helpers/http.js';

const PAT = 'dapi9999999999999999999999999999eeee';

/**
 * Property: whatever path, query and headers a client sends, the token goes only to the route's
 * upstream, with that upstream's Host, and an accepted path reaches it byte-for-byte.
 */
describe('property: no client input moves the token to another host', () => {
  const ctx = usePatGateway({ pat: PAT });
  // Hosts the token must never reach, over HTTPS and plain HTTP.
  let elsewhere: FakeUpstream;
  let elsewherePlain: FakeUpstream;
  before(async () => {
    elsewhere = await startFakeUpstream();
    elsewherePlain = await startFakeUpstream(undefined, { tls: false });
  });
  after(async () => {
    await Promise.all([elsewhere?.close(), elsewherePlain?.close()]);
  });

  it('holds for random targets and headers (fast-check)', async () => {
    const evil = [elsewhere.url.host, elsewherePlain.url.host];
    const piece = fc.constantFrom(
      'a',
      'api',
      '2.0',
      '/',
      '//',
      '.',
      '..',
      '%2e',
      '%2E%2e',
      '%2f',
      '%2F',
      '%5c',
      '\\',
      '@',
      ':',
      '?',
      '#',
      '&',
      '=',
      ';',
      '~',
      '%00',
      '%25',
      '%',
      ' ',
      'http:',
      'https:',
      // Invalid, non-UTF-8 and overlong escapes, and encoded separators (red team, issue 11).
      '%ff',
      '%c0',
      '%c0%ae',
      '%c0%af',
      '%e0%80%ae',
      '%g1',
      '%3f',
      '%3F',
      '%23',
      '%5c',
      '%5C',
      '%2563',
      'token',
      'create',
      `${evil[0]}`,
      `//${evil[1]}`,
      `@${evil[0]}`,
      'ws',
      'prod',
      'acct',
    );
    const target = fc.oneof(
      fc.array(piece, { maxLength: 12 }).map((p) => `/ws/prod${p.join('')}`),
      fc.array(piece, { maxLength: 12 }).map((p) => p.join('')),
      fc.constantFrom(`http://${evil[0]}/ws/prod/x`, `//${evil[1]}/ws/prod/x`, `/ws/prod@${evil[0]}/x`, `/ws/prod/..%2f..%2f${evil[0]}`),
    );
    const header = fc.constantFrom(
      ['Host', 'localhost'],
      ['Host', `localhost:${ctx.gw.port}`],
      ['Host', evil[0]],
      ['X-Forwarded-Host', evil[0]],
      ['X-Forwarded-Proto', 'http'],
      ['Forwarded', `host=${evil[0]};proto=http`],
      ['X-Original-URL', `http://${evil[1]}/`],
      ['X-Rewrite-URL', `//${evil[1]}/`],
      ['X-Databricks-Azure-Workspace-Resource-Id', 'x'],
      ['Authorization', 'Bearer client-chosen'],
      ['Connection', 'Host, Authorization'],
      ['Via', evil[0]],
    );
    const before = ctx.upstream.seen.length;
    await fc.assert(
      fc.asyncProperty(target, fc.array(header, { maxLength: 5 }), async (t, headers) => {
        const hasHost = headers.some(([n]) => n === 'Host');
        const lines = [...(hasHost ? [] : [['Host', 'localhost']]), ...headers].map(([n, v]) => `${n}: ${v}\r\n`).join('');
        if (/[\r\n]/.test(t) || t.includes(' ')) return; // not a single request line
        const seenBefore = ctx.upstream.seen.length;
        const reply = await rawRequest(ctx.gw.port, `GET ${t} HTTP/1.1\r\n${lines}Connection: close\r\n\r\n`, 2000);
        assert.equal(elsewhere.seen.length + elsewherePlain.seen.length, 0, `reached another host with ${t}`);
        for (const seen of ctx.upstream.seen.slice(seenBefore)) {
          assert.equal(seen.headers.host, ctx.upstream.url.host);
          assert.equal(seen.headers.authorization, `Bearer ${PAT}`);
          // What was forwarded decodes to valid UTF-8 and has no encoded ?, #, NUL or backslash.
          const path = seen.url.split('?', 1)[0] ?? '';
          assert.doesNotMatch(path, /%(3f|23|00|5c)|%(?![0-9a-f]{2})/i, seen.url);
          assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(percentDecode(path), 'latin1')), seen.url);
          for (const spoof of [
            'x-forwarded-host',
            'x-forwarded-proto',
            'forwarded',
            'x-original-url',
            'x-rewrite-url',
            'x-databricks-azure-workspace-resource-id',
          ]) {
            assert.equal(seen.headers[spoof], undefined, spoof);
          }
          const tail = t.slice('/ws/prod'.length);
          const expected = tail.startsWith('/') ? tail : `/${tail}`;
          assert.equal(seen.url, expected, 'the path arrives byte-for-byte (an empty query "x?" included)');
        }
        if (ctx.upstream.seen.length > seenBefore) assert.match(reply, /^HTTP\/1\.1 200/);
      }),
      { numRuns: 300 },
    );
    assert.ok(ctx.upstream.seen.length > before, 'some random requests were legitimate and forwarded');
  });
});
