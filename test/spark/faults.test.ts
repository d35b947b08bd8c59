/**
 * Spark Connect forwarding when things go wrong: an upstream that resets streams, answers HTTP
 * errors, forgets its trailers or drops its connection (a raw Node http2 TLS server, to send
 * exactly those frames), a grpc-js upstream killed mid-call and restarted, reload and shutdown.
 */
import assert from 'node:assert/strict';
import http2, { constants } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { testPki } from '../helpers/tls.js';
import { startGateway, TEST_TOKEN, type TestGateway } from './fixtures/gateway.js';
import { analyze, callError, readAll, sparkClient, startFakeSpark } from './fixtures/spark-grpc.js';
import { startTcpRelay } from './fixtures/tcp-relay.js';

const pki = testPki();

/** A gRPC message: compressed flag, 32-bit big-endian length, payload (PROTOCOL-HTTP2.md "Length-Prefixed-Message"). */
function frame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

const GRPC_HEADERS = { ':status': 200, 'content-type': 'application/grpc' };

/** What each path of the raw upstream does. */
const FAULTS: Record<string, (stream: http2.ServerHttp2Stream) => void> = {
  '/spark.connect.SparkConnectService/FaultOk': (s) => {
    s.respond(GRPC_HEADERS, { waitForTrailers: true });
    s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
    s.end(frame(Buffer.from('pong')));
  },
  '/spark.connect.SparkConnectService/FaultRefused': (s) => s.close(constants.NGHTTP2_REFUSED_STREAM),
  '/spark.connect.SparkConnectService/FaultCalm': (s) => s.close(constants.NGHTTP2_ENHANCE_YOUR_CALM),
  '/spark.connect.SparkConnectService/FaultInsecure': (s) => s.close(constants.NGHTTP2_INADEQUATE_SECURITY),
  '/spark.connect.SparkConnectService/FaultResetAfterMessage': (s) => {
    // waitForTrailers: the last DATA frame goes without END_STREAM, then RST_STREAM instead of trailers.
    s.respond(GRPC_HEADERS, { waitForTrailers: true });
    s.on('wantTrailers', () => s.close(constants.NGHTTP2_INTERNAL_ERROR));
    s.end(frame(Buffer.from('partial')));
  },
  '/spark.connect.SparkConnectService/FaultHttp401': (s) => s.respond({ ':status': 401, 'content-type': 'text/plain' }, { endStream: true }),
  '/spark.connect.SparkConnectService/FaultHttp404': (s) => s.respond({ ':status': 404 }, { endStream: true }),
  '/spark.connect.SparkConnectService/FaultHttp503': (s) => s.respond({ ':status': 503, 'grpc-message': 'warming%20up' }, { endStream: true }),
  '/spark.connect.SparkConnectService/FaultNoTrailers': (s) => {
    s.respond(GRPC_HEADERS);
    s.end(frame(Buffer.from('x')));
  },
  // A graceful GOAWAY: this call completes, new ones must go on a new connection.
  '/spark.connect.SparkConnectService/FaultGoAway': (s) => {
    s.session?.goaway(constants.NGHTTP2_NO_ERROR);
    FAULTS['/spark.connect.SparkConnectService/FaultOk']!(s);
  },
  '/spark.connect.SparkConnectService/FaultGoAwayError': (s) => {
    s.respond(GRPC_HEADERS);
    s.write(frame(Buffer.from('x')), () => s.session?.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM, 0));
  },
  '/spark.connect.SparkConnectService/FaultDropConnection': (s) => {
    s.respond(GRPC_HEADERS);
    s.write(frame(Buffer.from('x')), () => dropConnections());
  },
};

/** The raw upstream's TLS sockets (http2 hands out a proxy that may not be destroyed). */
const tlsSockets = new Set<TLSSocket>();
function dropConnections(): void {
  for (const socket of tlsSockets) socket.destroy();
}

interface RawUpstream {
  port: number;
  seen: http2.IncomingHttpHeaders[];
  /** HTTP/2 sessions (connections) accepted so far. */
  sessions(): number;
  close(): Promise<void>;
}

async function startRawUpstream(): Promise<RawUpstream> {
  const seen: http2.IncomingHttpHeaders[] = [];
  const server = http2.createSecureServer({ key: pki.key, cert: pki.cert });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('secureConnection', (socket: TLSSocket) => {
    tlsSockets.add(socket);
    socket.on('close', () => tlsSockets.delete(socket));
  });
  let accepted = 0;
  server.on('session', (s) => {
    accepted++;
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    seen.push(headers);
    stream.on('error', () => {});
    stream.resume();
    const fault = FAULTS[String(headers[':path'])];
    if (fault) fault(stream);
    else stream.respond({ ...GRPC_HEADERS, 'grpc-status': '12' }, { endStream: true });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    sessions: () => accepted,
    close: () =>
      new Promise((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function rawCall(client: grpc.Client, method: string, md = new grpc.Metadata()): Promise<Buffer> {
  const id = (b: Buffer) => b;
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(`/spark.connect.SparkConnectService/Fault${method}`, id, id, Buffer.from('ping'), md, {}, (err, res) =>
      err ? reject(err) : resolve(res!),
    ),
  );
}

describe('Spark Connect: upstream faults', () => {
  let upstream: RawUpstream;
  let gw: TestGateway;
  let client: grpc.Client;

  before(async () => {
    upstream = await startRawUpstream();
    gw = await startGateway({
      upstream: new URL(`https://127.0.0.1:${upstream.port}`),
      caFile: pki.caFile,
      // As for an Entra service principal: the SP management token goes along.
      authHeaders: async () => ({
        token: TEST_TOKEN,
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'x-databricks-azure-sp-management-token': 'mgmt-token' },
      }),
    });
    client = new grpc.Client(`127.0.0.1:${gw.port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await gw.close();
    await upstream.close();
  });

  test('the request as it goes out: https, the upstream authority, te: trailers, the auth headers, no client forwarding headers', async () => {
    const md = new grpc.Metadata();
    md.set('x-forwarded-for', '10.0.0.1');
    md.set('x-databricks-azure-sp-management-token', 'spoofed');
    md.set('x-databricks-cluster-id', 'c-1');
    assert.deepEqual(await rawCall(client, 'Ok', md), Buffer.from('pong'));
    const h = upstream.seen.at(-1)!;
    assert.equal(h[':method'], 'POST');
    assert.equal(h[':scheme'], 'https');
    assert.equal(h[':authority'], `127.0.0.1:${upstream.port}`);
    assert.equal(h[':path'], '/spark.connect.SparkConnectService/FaultOk');
    assert.equal(h.te, 'trailers');
    assert.equal(h['content-type'], 'application/grpc');
    assert.equal(h.authorization, `Bearer ${TEST_TOKEN}`);
    assert.equal(h['x-databricks-azure-sp-management-token'], 'mgmt-token');
    assert.equal(h['x-databricks-cluster-id'], 'c-1');
    assert.equal(h['x-forwarded-for'], undefined);
  });

  const resets: Array<[string, grpc.status]> = [
    ['Refused', grpc.status.UNAVAILABLE],
    ['Calm', grpc.status.RESOURCE_EXHAUSTED],
    ['Insecure', grpc.status.PERMISSION_DENIED],
  ];
  for (const [method, code] of resets) {
    test(`an RST_STREAM before any response (${method}) maps to ${grpc.status[code]}`, async () => {
      const err = await callError(rawCall(client, method));
      assert.equal(err.code, code);
      assert.match(err.details, new RegExp(`127\\.0\\.0\\.1:${upstream.port} reset the stream`));
    });
  }

  test('an RST_STREAM after the response headers ends the call INTERNAL in the trailers', async () => {
    const err = await callError(rawCall(client, 'ResetAfterMessage'));
    assert.equal(err.code, grpc.status.INTERNAL);
    assert.match(err.details, /reset the stream \(HTTP\/2 INTERNAL_ERROR\)/);
  });

  test('HTTP statuses without grpc-status map per http-grpc-status-mapping; a 401 rejects the token', async () => {
    const unauth = await callError(rawCall(client, 'Http401'));
    assert.equal(unauth.code, grpc.status.UNAUTHENTICATED);
    assert.deepEqual(gw.rejectedTokens, [TEST_TOKEN]);
    assert.equal((await callError(rawCall(client, 'Http404'))).code, grpc.status.UNIMPLEMENTED);
    const unavailable = await callError(rawCall(client, 'Http503'));
    assert.equal(unavailable.code, grpc.status.UNAVAILABLE);
    assert.match(unavailable.details, /answered HTTP 503: warming up/);
  });

  test('a stream that ends without trailers is INTERNAL', async () => {
    const err = await callError(rawCall(client, 'NoTrailers'));
    assert.equal(err.code, grpc.status.INTERNAL);
    assert.match(err.details, /without a grpc-status/);
  });

  test('a graceful GOAWAY lets the call finish and the next goes on a new session; one with an error code maps it', async () => {
    const before = upstream.sessions();
    assert.deepEqual(await rawCall(client, 'GoAway'), Buffer.from('pong'));
    assert.deepEqual(await rawCall(client, 'Ok'), Buffer.from('pong'));
    assert.equal(upstream.sessions(), before + 1);
    const calm = await callError(rawCall(client, 'GoAwayError'));
    assert.equal(calm.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(calm.details, /closed the connection \(HTTP\/2 GOAWAY ENHANCE_YOUR_CALM\)/);
    assert.deepEqual(await rawCall(client, 'Ok'), Buffer.from('pong'));
  });

  test('a connection dropped mid-call fails that call UNAVAILABLE; the next call gets a new session', async () => {
    const n = gw.calls.length;
    const err = await callError(rawCall(client, 'DropConnection'));
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.match(err.details, /connection to 127\.0\.0\.1:\d+ was lost/);
    assert.equal((await gw.call(n + 1)).grpcStatus, grpc.status.UNAVAILABLE);
    assert.deepEqual(await rawCall(client, 'Ok'), Buffer.from('pong'));
  });

  test('a failure inside the forwarder ends that call INTERNAL, and the listener serves the next', async () => {
    const broken = await startGateway({
      upstream: new URL(`https://127.0.0.1:${upstream.port}`),
      caFile: pki.caFile,
      // A header name Node refuses to send: session.request throws.
      authHeaders: async () => ({ token: 't', headers: { authorization: 'Bearer t', 'bad header': 'x' } }),
    });
    const c = new grpc.Client(`127.0.0.1:${broken.port}`, grpc.credentials.createInsecure());
    try {
      const err = await callError(rawCall(c, 'Ok'));
      assert.equal(err.code, grpc.status.INTERNAL);
      assert.equal(err.details, 'internal gateway error; see the gateway log');
      assert.match((await broken.call(1)).reason ?? '', /internal gateway error: ERR_INVALID_HTTP_TOKEN/);
      assert.equal((await callError(rawCall(c, 'Ok'))).code, grpc.status.INTERNAL);
    } finally {
      c.close();
      await broken.close();
    }
  });
});

describe('Spark Connect: upstream lost and back, reload, shutdown', () => {
  test('an upstream killed mid-call fails that call; after it restarts, calls work again', async () => {
    let upstream = await startFakeSpark(pki);
    const port = upstream.port;
    const gw = await startGateway({ upstream: upstream.url, caFile: pki.caFile });
    const client = sparkClient(gw.port);
    try {
      const { failed } = await hangingCall(client);
      upstream.kill();
      const err = await failed;
      assert.ok([grpc.status.UNAVAILABLE, grpc.status.INTERNAL].includes(err.code), `${err.code} ${err.details}`);
      // While it is down: UNAVAILABLE, and the listener stays up.
      assert.equal((await callError(analyze(client, {}))).code, grpc.status.UNAVAILABLE);
      upstream = await startFakeSpark(pki, { port });
      assert.equal((await analyze(client, { sessionId: 'back' })).sessionId, 'back');
    } finally {
      client.close();
      await gw.close();
      await upstream.close();
    }
  });

  test('calls share one multiplexed session; an idle session closes and the next call opens another', () =>
    throughRelay({ idleTimeoutMs: 300 }, async ({ relay, client }) => {
      const hang = client.ExecutePlan({ mode: 'hang', size: 1 });
      hang.on('error', () => {});
      await new Promise((resolve) => hang.once('data', resolve));
      await Promise.all([...Array(10).keys()].map((i) => analyze(client, { sessionId: `c${i}` })));
      await readAll(client.ExecutePlan({ mode: 'stream', count: 20, size: 1_000 }));
      assert.equal(relay.opened(), 1, 'one connection for concurrent and sequential calls');
      hang.cancel();
      await relay.allClosed(); // idleTimeoutMs after the last call ended
      assert.equal((await analyze(client, { sessionId: 'again' })).sessionId, 'again');
      assert.equal(relay.opened(), 2);
    }));

  test('retire: a call in flight finishes on the old session, which then closes; new calls still work', () =>
    throughRelay({}, async ({ relay, gw, client }) => {
      const call = client.Echo();
      const echoed = new Promise((resolve) => call.once('data', resolve));
      call.write({ seq: 1, payload: Buffer.from('a') });
      await echoed;
      gw.forwarder.retire();
      const rest = readAll(call);
      call.write({ seq: 2, payload: Buffer.from('b') });
      call.end();
      assert.deepEqual(
        (await rest).map((m) => String(m.seq)),
        ['2'],
      );
      await relay.allClosed(); // the retired session closed once its last call ended
      assert.equal(relay.opened(), 1);
      assert.equal((await analyze(client, { sessionId: 'after' })).sessionId, 'after');
      await relay.allClosed(); // a call after retire gets a session of its own, closed after it
      assert.equal(relay.opened(), 2);
    }));

  test('close: calls in flight end UNAVAILABLE at once', async () => {
    const upstream = await startFakeSpark(pki);
    const gw = await startGateway({ upstream: upstream.url, caFile: pki.caFile });
    const client = sparkClient(gw.port);
    try {
      const { failed } = await hangingCall(client);
      gw.forwarder.close();
      const err = await failed;
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      assert.equal((await callError(analyze(client, {}))).code, grpc.status.UNAVAILABLE);
    } finally {
      client.close();
      await gw.close();
      await upstream.close();
    }
  });
});

/** A forwarder whose upstream connections pass a relay that counts them; everything closed after `use`. */
async function throughRelay(
  options: { idleTimeoutMs?: number },
  use: (ctx: { relay: Awaited<ReturnType<typeof startTcpRelay>>; gw: TestGateway; client: ReturnType<typeof sparkClient> }) => Promise<void>,
): Promise<void> {
  const upstream = await startFakeSpark(pki);
  const relay = await startTcpRelay(upstream.port);
  const gw = await startGateway({ upstream: new URL(`https://127.0.0.1:${relay.port}`), caFile: pki.caFile, ...options });
  const client = sparkClient(gw.port);
  try {
    await use({ relay, gw, client });
  } finally {
    client.close();
    await gw.close();
    await relay.close();
    await upstream.close();
  }
}

/** An ExecutePlan that has sent its first message and then waits; `failed` settles with how it ends. */
async function hangingCall(client: ReturnType<typeof sparkClient>): Promise<{ failed: Promise<grpc.ServiceError> }> {
  const call = client.ExecutePlan({ mode: 'hang', size: 10 });
  await new Promise((resolve) => call.once('data', resolve));
  // Wrapped: a promise returned bare from an async function would be awaited with it.
  return { failed: callError(readAll(call)) };
}
