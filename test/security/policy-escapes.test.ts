import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { redactMetadataSecret } from '../../src/observability/redact.js';
import { canonicalPath } from '../../src/security/route-policy.js';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { responsesClosed, startYamlGateway, usePatGateway } from '../helpers/gateway.js';
import { rawRequest, request } from '../helpers/http.js';

const PAT = 'dapi4444444444444444444444444444ffff';

describe('policy canonicalisation never gives up', () => {
  const ctx = usePatGateway({
    pat: PAT,
    yaml: (upstream) => `routes:\n  prod:\n    host: ${upstream.url.origin}\n    credential: pat\n    denyPaths: ["/api/2\\\\.0/secrets/.*"]\n`,
  });

  it('decodes bytewise: an escape that is not UTF-8 cannot keep the path encoded', () => {
    assert.equal(canonicalPath('/api/2.0/token/%63reate;%ff'), '/api/2.0/token/create');
    assert.equal(canonicalPath('/api/2.0/%73ecrets/list;jsessionid=%c0'), '/api/2.0/secrets/list');
    assert.equal(canonicalPath('/api/2.0/token\\create'), '/api/2.0/token/create');
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => typeof canonicalPath(s) === 'string'));
  });

  for (const [method, path] of [
    ['POST', '/api/2.0/token/%63reate;%ff'],
    ['GET', '/api/2.0/%73ecrets/list;jsessionid=%c0'],
    ['GET', '/api/2.0/secrets/list%ff'],
    ['POST', '/api/2.0/token/create%c0%ae'],
  ] as const) {
    it(`never forwards ${method} ${path}`, async () => {
      const before = ctx.upstream.seen.length;
      const res = await request(`${ctx.gw.url}/ws/prod${path}`, { method, ...(method === 'POST' ? { body: '{}' } : {}) });
      assert.ok(res.status === 400 || res.status === 403, `${res.status} ${res.text}`);
      assert.equal(ctx.upstream.seen.length, before);
    });
  }

  it('refuses invalid and overlong escapes and encoded ?, #, NUL and \\ in the path (400)', async () => {
    const before = ctx.upstream.seen.length;
    for (const path of [
      '/api/2.0/x%',
      '/api/2.0/x%g1',
      '/api/2.0/x%ff',
      '/api/2.0/%c0%afx',
      '/api/2.0/%e0%80%aex',
      '/api/2.0/x%3fy',
      '/api/2.0/x%23y',
      '/api/2.0/x%00',
      '/api/2.0/x%5Cy',
    ]) {
      const res = await request(`${ctx.gw.url}/ws/prod${path}`);
      assert.equal(res.status, 400, path);
      assert.equal(res.json<{ error_code: string }>().error_code, 'GATEWAY_BAD_REQUEST');
    }
    assert.equal(ctx.upstream.seen.length, before);
    // UTF-8 that is valid (a workspace path with an accent) still goes through, byte-for-byte.
    assert.equal((await request(`${ctx.gw.url}/ws/prod/api/2.0/workspace/get-status?path=/Users/x/caf%C3%A9`)).status, 200);
    assert.equal((await request(`${ctx.gw.url}/ws/prod/api/2.0/files/caf%C3%A9.txt`)).status, 200);
    assert.equal(ctx.upstream.seen.at(-1)?.url, '/api/2.0/files/caf%C3%A9.txt');
  });
});

describe('token minting is denied by pattern', () => {
  const ctx = usePatGateway({
    pat: PAT,
    yaml: (upstream) =>
      `routes:\n  prod: { host: ${upstream.url.origin}, credential: pat }\n  minting: { host: ${upstream.url.origin.replace('127.0.0.1', 'localhost')}, credential: pat, allowTokenCreation: true }\n`,
  });

  const minting = [
    '/api/2.0/token/create',
    '/api/2.1/token/create',
    '/api/2.0/preview/token/create',
    '/api/2.0/token-management/on-behalf-of/tokens',
    '/api/2.1/preview/token-management/on-behalf-of/tokens',
    '/api/2.0/accounts/servicePrincipals/1234/credentials/secrets',
    '/api/2.0/preview/accounts/servicePrincipals/1234/credentials/secrets',
    '/api/2.0/accounts/0000-aaaa/servicePrincipals/1234/credentials/secrets',
    '/api/2.0/accounts/0000-aaaa/oauth2/custom-app-integrations',
    '/api/2.0/accounts/0000-aaaa/oauth2/service-principals/1234/secrets',
  ];
  for (const path of minting) {
    it(`denies POST ${path} unless allowTokenCreation`, async () => {
      const before = ctx.upstream.seen.length;
      const denied = await request(`${ctx.gw.url}/ws/prod${path}`, { method: 'POST', body: '{}' });
      assert.equal(denied.status, 403);
      assert.match(denied.json<{ message: string }>().message, /allowTokenCreation: true/);
      assert.equal(ctx.upstream.seen.length, before);
      assert.equal((await request(`${ctx.gw.url}/ws/minting${path}`, { method: 'POST', body: '{}' })).status, 200);
    });
  }

  it('leaves reads and neighbouring calls alone', async () => {
    assert.equal((await request(`${ctx.gw.url}/ws/prod/api/2.0/accounts/servicePrincipals/1234/credentials/secrets`)).status, 200);
    assert.equal((await request(`${ctx.gw.url}/ws/prod/api/2.0/token/list`, { method: 'POST', body: '{}' })).status, 200);
    assert.equal((await request(`${ctx.gw.url}/ws/prod/api/2.0/secrets/put`, { method: 'POST', body: '{}' })).status, 200);
  });
});

describe('TRACE, TRACK and CONNECT are refused', () => {
  const ctx = usePatGateway({ pat: PAT, yaml: (upstream) => `routes:\n  prod: { host: ${upstream.url.origin}, credential: pat }\n` });

  for (const method of ['TRACE', 'TRACK']) {
    it(`answers ${method} with 405 and forwards nothing`, async () => {
      const before = ctx.upstream.seen.length;
      for (const path of ['/ws/prod/api/2.0/clusters/list', '/healthz']) {
        const reply = await rawRequest(ctx.gw.port, `${method} ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`, 1000);
        assert.match(reply, /^HTTP\/1\.1 405 /, reply);
        assert.match(reply, /GATEWAY_METHOD_NOT_ALLOWED/);
      }
      assert.equal(ctx.upstream.seen.length, before);
    });
  }

  it('answers CONNECT with 405 and closes', async () => {
    const reply = await rawRequest(ctx.gw.port, `CONNECT ${ctx.upstream.url.host} HTTP/1.1\r\nHost: ${ctx.upstream.url.host}\r\n\r\n`, 1000);
    assert.match(reply, /^HTTP\/1\.1 405 /, reply);
  });
});

describe('a refused request frees its connection', () => {
  const key = 'dgw_refusal-test-key-000000000000000000000000';
  const ctx = usePatGateway({
    pat: PAT,
    yaml: (upstream) =>
      `routes:\n  prod: { host: ${upstream.url.origin}, credential: pat, readOnly: true }\ninboundKeys:\n  alice: sha256:${createHash('sha256').update(key).digest('hex')}\nlimits: { maxConnectionsPerClient: 4 }\n`,
  });

  /** Starts a chunked upload and keeps trickling a byte every 100 ms; resolves with what came back once the server closes. */
  function trickle(head: string): Promise<{ reply: string; closedAfterMs: number }> {
    return new Promise((resolve) => {
      const started = Date.now();
      const socket = net.connect(ctx.gw.port, '127.0.0.1', () => socket.write(`${head}Transfer-Encoding: chunked\r\n\r\n`));
      let reply = '';
      socket.on('data', (d) => {
        reply += d;
      });
      const timer = setInterval(() => socket.write('1\r\nx\r\n'), 100);
      socket.on('error', () => {});
      socket.on('close', () => {
        clearInterval(timer);
        resolve({ reply, closedAfterMs: Date.now() - started });
      });
      setTimeout(() => socket.destroy(), 5000);
    });
  }

  for (const [name, head] of [
    ['401 (no key)', 'POST /ws/prod/api/2.0/jobs/run-now HTTP/1.1\r\nHost: localhost\r\n'],
    ['403 (policy)', `POST /ws/prod/api/2.0/jobs/run-now HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${key}\r\n`],
  ] as const) {
    it(`answers a ${name} with Connection: close and closes, whatever the client still sends`, async () => {
      const { reply, closedAfterMs } = await trickle(head);
      assert.match(reply, /^HTTP\/1\.1 40[13] /);
      assert.match(reply, /connection: close/i);
      assert.ok(closedAfterMs < 4000, `closed after ${closedAfterMs} ms`);
    });
  }

  it('caps connections per client address (limits.maxConnectionsPerClient)', async () => {
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        held.push(
          await new Promise<net.Socket>((r) => {
            const s = net.connect({ port: ctx.gw.port, host: '127.0.0.1', localAddress: '127.0.0.2' }, () => r(s));
          }),
        );
      }
      const over = await new Promise<string>((resolve) => {
        const s = net.connect({ port: ctx.gw.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
        let out = '';
        s.on('data', (d) => {
          out += d;
        });
        s.on('close', () => resolve(out));
        s.on('error', () => {});
      });
      assert.match(over, /^HTTP\/1\.1 503 /);
      assert.match(over, /limits\.maxConnectionsPerClient/);
      // Another address still gets in.
      assert.equal((await request(`${ctx.gw.url}/healthz`)).status, 200);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});

describe('secrets are redacted on the decoded path', () => {
  it('refuses encoded spellings of local paths, so /%6detadata/SECRET is neither served nor logged', async () => {
    const secret = 'e7a1c2b4-5d6e-4f70-8a9b-0c1d2e3f4a5b';
    const upstream = await startFakeUpstream();
    const gw = await startYamlGateway(`routes:\n  prod: { host: ${upstream.url.origin}, credential: pat }\nmetadataService: { secret: ${secret} }\n`, {
      env: { DATABRICKS_TOKEN: PAT },
    });
    try {
      // Every line about a request is written by the time its response closes.
      const logged = responsesClosed(gw.server, 3);
      for (const path of [`/%6detadata/${secret}`, `/metadata/%${secret.charCodeAt(0).toString(16)}${secret.slice(1)}`, '/%68ealthz']) {
        const res = await request(`${gw.url}${path}`, { headers: { 'x-databricks-metadata-version': '1', 'x-databricks-host': upstream.url.origin } });
        assert.equal(res.status, 400, path);
        assert.ok(!res.text.includes(PAT));
      }
      await logged;
      assert.ok(!gw.logText().includes(secret.slice(1)), 'the secret reached the log');
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });
});

describe('the metadata secret is redacted whatever the path says', () => {
  it('never logs the secret of /METADATA/SECRET (a 404), /Metadata/SECRET or /metadata/SECRET/x', async () => {
    const secret = 'c0ffee11-2233-4455-8677-8899aabbccdd';
    const upstream = await startFakeUpstream();
    const gw = await startYamlGateway(`routes:\n  prod: { host: ${upstream.url.origin}, credential: pat }\nmetadataService: { secret: ${secret} }\n`, {
      env: { DATABRICKS_TOKEN: PAT },
    });
    try {
      const paths = [`/METADATA/${secret}`, `/Metadata/${secret}`, `/metadata/${secret}/x`, `/mEtAdAtA/${secret}?q=1`];
      const logged = responsesClosed(gw.server, paths.length);
      for (const path of paths) {
        const res = await request(`${gw.url}${path}`, { headers: { 'x-databricks-metadata-version': '1', 'x-databricks-host': upstream.url.origin } });
        assert.ok(res.status >= 400, `${path}: ${res.status}`);
        assert.ok(!res.text.includes(PAT));
      }
      await logged;
      const lines = gw.logs.filter((l) => l.msg === 'request');
      assert.equal(lines.length, paths.length);
      for (const line of lines) assert.match(String(line.path), /^\/metadata\/\[REDACTED\]$/i);
      assert.ok(!gw.logText().includes(secret.slice(1)), 'the secret reached the log');
      const status = await request(`${gw.url}/`, { headers: { accept: 'application/json' } });
      assert.ok(!status.text.includes(secret.slice(1)), 'the secret reached the status page');
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });

  it('cuts a percent-encoded /metadata/ prefix where it decodes', () => {
    assert.equal(redactMetadataSecret('/%6detadata%2FSECRET/x'), '/%6detadata%2F[REDACTED]');
    assert.equal(redactMetadataSecret('/META%44ATA/SECRET'), '/META%44ATA/[REDACTED]');
    assert.equal(redactMetadataSecret('/ws/prod/api/2.0/metadata'), '/ws/prod/api/2.0/metadata');
    assert.equal(redactMetadataSecret('/healthz'), '/healthz');
  });
});
