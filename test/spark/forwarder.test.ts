/**
 * Spark Connect forwarding with real components: a grpc-js client on the gateway's h2c port, the
 * forwarder, and a grpc-js server over TLS with the test CA as the upstream.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { GatewayError } from '../../src/errors.js';
import { createKeyAuthenticator, newInboundKey } from '../../src/security/inbound-keys.js';
import { decodeGrpcMessage, encodeGrpcMessage, statusForHttp2Error, statusForHttpStatus } from '../../src/spark/grpc-status.js';
import { namedPki, startConnectProxy } from '../helpers/connect-proxy.js';
import { testPki } from '../helpers/tls.js';
import { within } from '../helpers/wait.js';
import { startGateway, TEST_TOKEN, type TestGateway } from './fixtures/gateway.js';
import { analyze, callError, type EchoMessage, FAIL_STATUS, type FakeSpark, md, readAll, sparkClient, startFakeSpark } from './fixtures/spark-grpc.js';

const pki = testPki();
const SPARK = '/spark.connect.SparkConnectService';

describe('grpc-status mappings', () => {
  test('grpc-message is percent-encoded over UTF-8 (space and VCHAR except % stay)', () => {
    assert.equal(encodeGrpcMessage('run `az login` (100%)\n✓'), 'run `az login` (100%25)%0A%E2%9C%93');
    assert.equal(decodeGrpcMessage(encodeGrpcMessage('a % b\r\n ✓ 𝄞')), 'a % b\r\n ✓ 𝄞');
  });
  test('HTTP/2 error codes and HTTP statuses map as the gRPC spec says', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12].map(statusForHttp2Error), [13, 13, 13, 13, 13, 13, 14, 1, 13, 13, 8, 7]);
    assert.deepEqual([400, 401, 403, 404, 429, 500, 502, 503, 504].map(statusForHttpStatus), [13, 16, 7, 12, 14, 2, 14, 14, 14]);
  });
});

describe('Spark Connect forwarding', () => {
  let upstream: FakeSpark;
  let gw: TestGateway;
  let client: ReturnType<typeof sparkClient>;

  before(async () => {
    upstream = await startFakeSpark(pki);
    gw = await startGateway({ upstream: upstream.url, caFile: pki.caFile });
    client = sparkClient(gw.port, { 'grpc.primary_user_agent': 'pyspark/3.5.1 test' });
  });
  after(async () => {
    client.close();
    await gw.close();
    await upstream.close();
  });

  test('the upstream sees the route token, the client metadata, and its own authority', async () => {
    const deadline = new Date(Date.now() + 30_000);
    const n = gw.calls.length;
    const res = await analyze(
      client,
      { sessionId: 's-1' },
      md({
        authorization: 'Bearer client-secret-pat',
        'x-dbx-gateway-key': 'dgw_not_forwarded',
        'x-databricks-cluster-id': '0123-456789-abcdef',
        'x-databricks-session-id': 's-1',
        'x-databricks-azure-sp-management-token': 'spoofed',
        'trace-bin': Buffer.from([0, 1, 2, 255]),
      }),
      { deadline },
    );
    assert.equal(res.sessionId, 's-1');
    const seen = upstream.calls.at(-1)!;
    assert.equal(seen.path, `${SPARK}/AnalyzePlan`);
    assert.equal(seen.authority, `127.0.0.1:${upstream.port}`);
    const m = seen.metadata;
    assert.deepEqual(m.get('authorization'), [`Bearer ${TEST_TOKEN}`]);
    assert.deepEqual(m.get('x-dbx-gateway-key'), []);
    assert.deepEqual(m.get('x-databricks-azure-sp-management-token'), []);
    assert.deepEqual(m.get('x-databricks-cluster-id'), ['0123-456789-abcdef']);
    assert.deepEqual(m.get('x-databricks-session-id'), ['s-1']);
    assert.deepEqual(m.get('trace-bin'), [Buffer.from([0, 1, 2, 255])]);
    assert.match(String(m.get('user-agent')[0]), /^pyspark\/3\.5\.1 test grpc-node-js\//);
    // grpc-timeout: grpc-js turns it into the call's deadline (and drops it from the metadata).
    assert.ok(Math.abs(seen.deadline - deadline.getTime()) < 2_000, `upstream deadline ${seen.deadline}`);

    const call = await gw.call(n + 1);
    assert.equal(call.route, 'spark');
    assert.equal(call.method, `${SPARK}/AnalyzePlan`);
    assert.equal(call.grpcStatus, 0);
    assert.ok(call.requestBytes > 5 && call.responseBytes > 5, JSON.stringify(call));
  });

  test('a server stream arrives whole, in order', async () => {
    const messages = await readAll(client.ExecutePlan({ mode: 'stream', count: 50, size: 10_000, sessionId: 's-2' }));
    assert.equal(messages.length, 50);
    assert.deepEqual(
      messages.map((m) => Number(m.seq)),
      [...Array(50).keys()],
    );
    assert.ok(messages.every((m) => m.arrowBatch.length === 10_000));
  });

  test('trailers with a non-zero status, a percent-encoded message and details reach the client', async () => {
    const n = gw.calls.length;
    const call = client.ExecutePlan({ mode: 'fail', size: 100 });
    const got: unknown[] = [];
    call.on('data', (m) => got.push(m));
    const err = await callError(readAll(call));
    assert.equal(got.length, 1, 'the message before the error arrives');
    assert.equal(err.code, FAIL_STATUS.code);
    assert.equal(err.details, FAIL_STATUS.details);
    assert.deepEqual(err.metadata.get('grpc-status-details-bin'), [FAIL_STATUS.detailsBin]);
    const report = await gw.call(n + 1);
    assert.equal(report.grpcStatus, FAIL_STATUS.code);
    assert.equal(report.reason, FAIL_STATUS.details);
  });

  test('a Trailers-Only error from the upstream reaches the client as such', async () => {
    const original = upstream.impl.AnalyzePlan;
    upstream.impl.AnalyzePlan = (_call, cb) =>
      cb({ code: grpc.status.NOT_FOUND, details: 'no such table: main.x', metadata: md({ 'grpc-status-details-bin': Buffer.from('d') }) });
    try {
      const err = await callError(analyze(client, {}));
      assert.equal(err.code, grpc.status.NOT_FOUND);
      assert.equal(err.details, 'no such table: main.x');
      assert.deepEqual(err.metadata.get('grpc-status-details-bin'), [Buffer.from('d')]);
    } finally {
      upstream.impl.AnalyzePlan = original;
    }
  });

  test('a client cancel reaches the upstream within 2 s', async () => {
    const n = gw.calls.length;
    const call = client.ExecutePlan({ mode: 'hang', size: 10 });
    await new Promise((resolve) => call.once('data', resolve));
    const seen = upstream.calls.at(-1)!;
    call.on('error', () => {});
    call.cancel();
    await within(seen.cancelled, { timeoutMs: 2_000, what: 'upstream cancel' });
    const report = await gw.call(n + 1);
    assert.equal(report.grpcStatus, grpc.status.CANCELLED);
  });

  test('a client deadline is forwarded as grpc-timeout, ends DEADLINE_EXCEEDED, and cancels upstream', async () => {
    const deadline = Date.now() + 700;
    const call = client.ExecutePlan({ mode: 'hang', size: 10 }, new grpc.Metadata(), { deadline: new Date(deadline) });
    const err = await callError(readAll(call));
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    const seen = upstream.calls.at(-1)!;
    assert.ok(Math.abs(seen.deadline - deadline) < 1_000, `upstream deadline ${seen.deadline - deadline} ms off`);
    await within(seen.cancelled, { timeoutMs: 2_000, what: 'upstream cancel' });
  });

  test('a bidirectional stream echoes every message', async () => {
    const call = client.Echo(md({ 'x-databricks-session-id': 's-echo' }));
    const sent: EchoMessage[] = [...Array(40).keys()].map((i) => ({ seq: String(i), payload: Buffer.alloc(i * 1_000, i) }));
    const received: EchoMessage[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (m: EchoMessage) => {
        received.push(m);
        // Ping-pong: the next message goes only after its predecessor came back.
        const next = sent[received.length];
        if (next) call.write(next);
        else call.end();
      });
      call.on('error', reject);
      call.on('end', resolve);
    });
    call.write(sent[0]!);
    await done;
    assert.deepEqual(
      received.map((m) => [String(m.seq), m.payload.length]),
      sent.map((m) => [String(m.seq), m.payload.length]),
    );
    assert.deepEqual(upstream.calls.at(-1)!.metadata.get('x-databricks-session-id'), ['s-echo']);
  });

  test('an upstream UNAUTHENTICATED rejects the token that was sent', async () => {
    const err = await callError(readAll(client.ExecutePlan({ mode: 'unauthenticated' })));
    assert.equal(err.code, grpc.status.UNAUTHENTICATED);
    assert.equal(err.details, 'Invalid access token');
    assert.deepEqual(gw.rejectedTokens, [TEST_TOKEN]);
  });

  test('a request that is not a gRPC call is refused, never forwarded with the token', async () => {
    const session = http2.connect(`http://127.0.0.1:${gw.port}`);
    session.on('error', () => {});
    const status = (headers: http2.OutgoingHttpHeaders) =>
      new Promise<number>((resolve, reject) => {
        const req = session.request(headers);
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        if (headers[':method'] === 'GET')
          req.end(); // Node ends a GET with its HEADERS
        else req.end('{}');
      });
    const before = upstream.calls.length;
    try {
      assert.equal(await status({ ':method': 'GET', ':path': '/api/2.0/clusters/list' }), 405);
      assert.equal(await status({ ':method': 'POST', ':path': '/api/2.0/clusters/delete', 'content-type': 'application/json' }), 415);
      // A gRPC-looking POST to a REST path (token minting, say) is not a Spark Connect method.
      const tokensAsked = gw.authRequests();
      const answer = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/api/2.0/token/create', 'content-type': 'application/grpc+json', te: 'trailers' });
        req.on('response', resolve);
        req.on('error', reject);
        req.end('{"lifetime_seconds":0}');
      });
      assert.equal(answer['grpc-status'], String(grpc.status.UNIMPLEMENTED));
      // Answered by the gateway, before any token was asked for: the upstream never saw it.
      assert.match(decodeGrpcMessage(String(answer['grpc-message'])), /is not a Spark Connect method/);
      assert.equal(gw.authRequests(), tokensAsked);
    } finally {
      session.close();
    }
    assert.equal(upstream.calls.length, before);
  });

  test('a browser is refused (Origin or Sec-Fetch-Site), never forwarded', async () => {
    const before = upstream.calls.length;
    for (const browser of [{ origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site' }]) {
      const err = await callError(analyze(client, { sessionId: 'b' }, md(browser)));
      assert.equal(err.code, grpc.status.PERMISSION_DENIED);
      assert.match(err.details, /does not answer browsers/);
    }
    assert.equal(upstream.calls.length, before);
  });
});

describe('Spark Connect: no token', () => {
  test('authHeaders failing ends the call UNAUTHENTICATED with the hint, nothing sent upstream', async () => {
    const upstream = await startFakeSpark(pki);
    const hint = 'no token for route spark: run `az login` (azure-cli), then retry';
    const gw = await startGateway({
      upstream: upstream.url,
      caFile: pki.caFile,
      authHeaders: () => Promise.reject(new GatewayError('GATEWAY_TOKEN_UNAVAILABLE', hint)),
    });
    const client = sparkClient(gw.port);
    try {
      const err = await callError(analyze(client, {}));
      assert.equal(err.code, grpc.status.UNAUTHENTICATED);
      assert.equal(err.details, hint);
      const stream = await callError(readAll(client.ExecutePlan({ mode: 'stream', count: 1, size: 1 })));
      assert.equal(stream.code, grpc.status.UNAUTHENTICATED);
      assert.equal(upstream.calls.length, 0);
      assert.equal((await gw.call(1)).grpcStatus, grpc.status.UNAUTHENTICATED);
    } finally {
      client.close();
      await gw.close();
      await upstream.close();
    }
  });
});

describe('Spark Connect: inbound keys', () => {
  const alice = newInboundKey();
  const bob = newInboundKey();
  const toKey = (name: string, k: { hash: string }, routes?: string[]) => ({
    name,
    sha256: Buffer.from(k.hash.slice('sha256:'.length), 'hex'),
    ...(routes ? { routes } : {}),
  });
  let upstream: FakeSpark;
  let gw: TestGateway;
  let client: ReturnType<typeof sparkClient>;

  before(async () => {
    upstream = await startFakeSpark(pki);
    gw = await startGateway({
      upstream: upstream.url,
      caFile: pki.caFile,
      authenticate: createKeyAuthenticator([toKey('alice', alice), toKey('bob', bob, ['other-route'])])!,
    });
    client = sparkClient(gw.port);
  });
  after(async () => {
    client.close();
    await gw.close();
    await upstream.close();
  });

  test('no key and a wrong key get UNAUTHENTICATED, nothing forwarded', async () => {
    const none = await callError(analyze(client, {}));
    assert.equal(none.code, grpc.status.UNAUTHENTICATED);
    assert.match(none.details, /needs an inbound key/);
    const wrong = await callError(analyze(client, {}, md({ authorization: `Bearer ${newInboundKey().key}` })));
    assert.equal(wrong.code, grpc.status.UNAUTHENTICATED);
    assert.match(wrong.details, /not valid/);
    assert.equal(upstream.calls.length, 0);
    assert.equal(gw.authRequests(), 0);
  });

  test('the right key passes and is not forwarded', async () => {
    const n = gw.calls.length;
    await analyze(client, {}, md({ authorization: `Bearer ${alice.key}` }));
    const seen = upstream.calls.at(-1)!.metadata;
    assert.deepEqual(seen.get('authorization'), [`Bearer ${TEST_TOKEN}`]);
    assert.ok(!JSON.stringify(seen.toJSON()).includes(alice.key));
    assert.equal((await gw.call(n + 1)).keyName, 'alice');
  });

  test('a key limited to other routes gets PERMISSION_DENIED', async () => {
    const before = upstream.calls.length;
    const err = await callError(analyze(client, {}, md({ authorization: `Bearer ${bob.key}` })));
    assert.equal(err.code, grpc.status.PERMISSION_DENIED);
    assert.match(err.details, /may not use route spark/);
    assert.equal(upstream.calls.length, before);
  });
});

describe('Spark Connect: reaching the upstream', () => {
  test('an unreachable upstream gives UNAVAILABLE naming the host', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const gw = await startGateway({ upstream: new URL(`https://127.0.0.1:${port}`), caFile: pki.caFile });
    const client = sparkClient(gw.port);
    try {
      const err = await callError(analyze(client, {}));
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      assert.match(err.details, new RegExp(`could not reach 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
      // The listener stays up: the next call gets the same answer, not a dead port.
      assert.equal((await callError(analyze(client, {}))).code, grpc.status.UNAVAILABLE);
    } finally {
      client.close();
      await gw.close();
    }
  });

  test('an upstream whose certificate is not trusted gives UNAVAILABLE', async () => {
    const upstream = await startFakeSpark(pki);
    const gw = await startGateway({ upstream: upstream.url }); // no caFile: the test CA is unknown
    const client = sparkClient(gw.port);
    try {
      const err = await callError(analyze(client, {}));
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      assert.match(err.details, /could not reach 127\.0\.0\.1:\d+: .*(certificate|UNABLE_TO_VERIFY|SELF_SIGNED)/i);
      assert.equal(upstream.calls.length, 0);
    } finally {
      client.close();
      await gw.close();
      await upstream.close();
    }
  });

  test('through a CONNECT proxy: one tunnel for every call, TLS to the named host inside', async () => {
    const name = 'adb-test.example';
    const named = namedPki(name);
    const upstream = await startFakeSpark(named, { host: name });
    const proxy = await startConnectProxy();
    const gw = await startGateway({
      upstream: upstream.url,
      caFile: named.caFile,
      proxy: { url: proxy.url, display: proxy.url.origin, authorization: `Basic ${Buffer.from('user:s3cret!').toString('base64')}` },
    });
    const client = sparkClient(gw.port);
    try {
      await Promise.all([analyze(client, {}), analyze(client, {}), readAll(client.ExecutePlan({ mode: 'stream', count: 5, size: 1000 }))]);
      await analyze(client, {});
      assert.equal(proxy.tunnels(), 1);
      assert.equal(proxy.connects[0]!.target, `${name}:${upstream.port}`);
      assert.equal(upstream.calls[0]!.authority, `${name}:${upstream.port}`);
      assert.ok(!proxy.relayed().includes(TEST_TOKEN), 'the token travels inside TLS');
    } finally {
      client.close();
      await gw.close();
      await proxy.close();
      await upstream.close();
    }
  });
});
