import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { usePatGateway } from '../helpers/gateway.js';
import { rawRequest, request } from '../helpers/http.js';

const PAT = 'dapi7777777777777777777777777777cccc';

describe('route policy: allowMethods, denyPaths, token minting, bypass attempts', () => {
  const ctx = usePatGateway({
    pat: PAT,
    yaml: (upstream) => `routes:
  prod:
    host: ${upstream.url.origin}
    credential: pat
    allowMethods: [GET, HEAD, POST]
    denyPaths: ["/api/2\\\\.0/secrets/.*", "/api/2\\\\.0/workspace/delete"]
  minting:
    host: ${upstream.url.origin.replace('127.0.0.1', 'localhost')}
    credential: pat
    allowTokenCreation: true
`,
  });

  const call = (method: string, path: string, headers: Record<string, string> = {}) =>
    request(`${ctx.gw.url}/ws/prod${path}`, { method, headers, ...(method === 'GET' || method === 'HEAD' ? {} : { body: '{}' }) });

  it('forwards only allowMethods', async () => {
    assert.equal((await call('POST', '/api/2.0/clusters/start')).status, 200);
    const del = await call('DELETE', '/api/2.0/clusters/x');
    assert.equal(del.status, 403);
    assert.match(del.json<{ message: string }>().message, /DELETE is not allowed on route prod \(routes\.prod\.allowMethods: GET, HEAD, POST\)/);
  });

  it('denies denyPaths, anchored, including case, slash, encoding and matrix variants', async () => {
    const before = ctx.upstream.seen.length;
    for (const path of [
      '/api/2.0/secrets/list',
      '/API/2.0/Secrets/List',
      '/api/2.0/secrets/list/',
      '/api/2.0//secrets/list',
      '/api/2.0/%73ecrets/list',
      '/api/2.0/secrets%2Flist',
      '/api/2.0/secrets;x=1/list',
      '/api/2.0/workspace/delete?path=/x',
    ]) {
      const res = await call('GET', path);
      assert.equal(res.status, 403, path);
      assert.match(res.json<{ message: string }>().message, /denyPaths/);
    }
    assert.equal(ctx.upstream.seen.length, before, 'none was forwarded');
    // Anchored: a pattern names whole paths, never a part of another.
    assert.equal((await call('GET', '/api/2.0/workspace/delete-history')).status, 200);
    assert.equal((await call('GET', '/x/api/2.0/secrets/list')).status, 200);
  });

  it('denies minting long-lived credentials by default, naming the setting, in every spelling', async () => {
    for (const path of [
      '/api/2.0/token/create',
      '/API/2.0/token/create/',
      '/api/2.0/token/%63reate',
      '/api/2.0/token/./create',
      '/api/2.0/token/%2e/create',
      '/api/2.0/token/create/.',
      '/api/2.0/token/create#x',
      '/api/2.0/x/%252e%252e/token/create',
      '/api/2.0/token-management/on-behalf-of/tokens',
    ]) {
      const res = await call('POST', path);
      assert.equal(res.status, 403, path);
      assert.match(res.json<{ message: string }>().message, /mints a long-lived credential .*set routes\.prod\.allowTokenCreation: true/);
    }
    assert.equal((await call('GET', '/api/2.0/token/list')).status, 200, 'reading tokens is not minting');
    const allowed = await request(`${ctx.gw.url}/ws/minting/api/2.0/token/create`, { method: 'POST', body: '{}' });
    assert.equal(allowed.status, 200, 'allowTokenCreation: true lets it through');
  });

  it('refuses method-override headers instead of forwarding them', async () => {
    for (const header of ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override']) {
      const res = await call('GET', '/api/2.0/clusters/list', { [header]: 'DELETE' });
      assert.equal(res.status, 400, header);
      assert.match(res.json<{ message: string }>().message, /is not forwarded; send the real method/);
    }
  });

  it('refuses encoded slashes and dots in the route prefix with 400', async () => {
    for (const target of ['/ws%2Fprod/api/2.0/clusters/list', '/ws%5cprod/x', '/ws/pr%6fd/x', '/ws/prod%2F..%2Fother/x', '/ws/%2e%2e/x']) {
      const reply = await rawRequest(ctx.gw.port, `GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      assert.match(reply, /^HTTP\/1\.1 400 /, target);
    }
  });

  it('applies to the raw method: lower-case or unknown methods do not slip past', async () => {
    const reply = await rawRequest(ctx.gw.port, 'delete /ws/prod/api/2.0/clusters/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 (400|403|405)/);
    const unknown = await rawRequest(ctx.gw.port, 'PURGE /ws/prod/api/2.0/clusters/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.match(unknown, /^HTTP\/1\.1 (400|403|405)/);
  });
});
