/**
 * Spark Connect against clients that misbehave on purpose: calls the workspace ends while the
 * client still sends, HEADERS + RST_STREAM floods, connections holding silent calls, metadata only
 * the gateway may set. A raw Node http2 client sends exactly those frames; a raw http2 TLS upstream
 * counts the streams it is opened and records what it was sent.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2, { constants } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createKeyAuthenticator, newInboundKey } from '../../src/security/inbound-keys.js';
import { testPki } from '../helpers/tls.js';
import { waitFor, within } from '../helpers/wait.js';
import { startGateway, TEST_TOKEN, type TestGateway } from './fixtures/gateway.js';

const pki = testPki();
const SPARK = '/spark.connect.SparkConnectService';

/** A gRPC message: compressed flag, 32-bit big-endian length, payload (PROTOCOL-HTTP2.md "Length-Prefixed-Message"). */
function frame(text: string): Buffer {
  const payload = Buffer.from(text);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

interface CountingUpstream {
  port: number;
  seen: http2.IncomingHttpHeaders[];
  /** Streams opened to it for `method` so far. */
  opened(method: string): number;
  close(): Promise<void>;
}

async function startCountingUpstream(): Promise<CountingUpstream> {
  const seen: http2.IncomingHttpHeaders[] = [];
  const server = http2.createSecureServer({ key: pki.key, cert: pki.cert, settings: { maxConcurrentStreams: 10_000 } });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    seen.push(headers);
    stream.on('error', () => {});
    const method = String(headers[':path']).slice(SPARK.length + 1);
    if (method === 'Ok') {
      stream.resume();
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame('pong'));
    } else if (method === 'Refuse') {
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
    } else if (method !== 'Silent') {
      // An unknown method, as a workspace answers it without reading the request: Trailers-Only,
      // then RST_STREAM NO_ERROR for the rest of the request (RFC 9113 section 8.1).
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true });
      setImmediate(() => stream.close(constants.NGHTTP2_NO_ERROR));
    }
    // Silent: no answer, and the request is not read.
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    opened: (method) => seen.filter((h) => h[':path'] === `${SPARK}/${method}`).length,
    close: () =>
      new Promise((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function connectClient(port: number): http2.ClientHttp2Session {
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  return client;
}

function startCall(client: http2.ClientHttp2Session, method: string, metadata: http2.OutgoingHttpHeaders = {}): http2.ClientHttp2Stream {
  const call = client.request(
    { ':method': 'POST', ':path': `${SPARK}/${method}`, 'content-type': 'application/grpc', te: 'trailers', ...metadata },
    { endStream: false },
  );
  call.on('error', () => {});
  return call;
}

/** The call's grpc-status (Trailers-Only or trailers); undefined when it closed without one. */
function statusOf(call: http2.ClientHttp2Stream): Promise<string | undefined> {
  return new Promise((resolve) => {
    call.once('response', (headers, flags) => {
      if (flags & constants.NGHTTP2_FLAG_END_STREAM) resolve(String(headers['grpc-status']));
    });
    call.once('trailers', (trailers) => resolve(String(trailers['grpc-status'])));
    call.once('close', () => resolve(undefined));
    call.resume();
  });
}

/** One whole call on a connection of its own, closed after: its grpc-status. */
async function callOnce(port: number, method: string, metadata: http2.OutgoingHttpHeaders = {}): Promise<string | undefined> {
  const client = connectClient(port);
  try {
    const call = startCall(client, method, metadata);
    call.end(frame('ping'));
    return await within(statusOf(call), { what: `the ${method} call's status` });
  } finally {
    client.close();
  }
}

describe('Spark Connect: clients that hold, reset or smuggle', () => {
  let upstream: CountingUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startCountingUpstream();
    gw = await startGateway({ upstream: new URL(`https://127.0.0.1:${upstream.port}`), caFile: pki.caFile });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  test('a call the workspace ends while the client still sends releases its slot', async () => {
    const reported = gw.calls.length;
    // Past the route's cap of 128 calls in flight: a slot kept by any of them would leave the
    // last ones, and the call after them, RESOURCE_EXHAUSTED.
    const ROUNDS = 140;
    for (let i = 0; i < ROUNDS; i++) {
      const client = connectClient(gw.port);
      const call = startCall(client, i % 2 === 0 ? 'Unknown' : 'Refuse');
      call.write(frame('first'));
      const status = await within(statusOf(call), { what: `call ${i}'s status` });
      assert.notEqual(status, '8', `call ${i} was refused RESOURCE_EXHAUSTED`);
      call.end(frame('the rest'));
      client.close();
    }
    assert.equal(await callOnce(gw.port, 'Ok'), '0');
    // Every call reported (log line and metric), and no client connection left open.
    await within(gw.call(reported + ROUNDS + 1), { what: () => `every call reported (${gw.calls.length - reported} of ${ROUNDS + 1})` });
    await waitFor(() => gw.openSessions() === 0, { what: () => `the client connections to close (${gw.openSessions()} open)` });
  });
});

describe('Spark Connect: clients that reset or hold calls', () => {
  let upstream: CountingUpstream;
  before(async () => {
    upstream = await startCountingUpstream();
  });
  after(() => upstream.close());

  /** HEADERS + RST_STREAM pairs on one connection until it is closed (or `pairs` sent): how many were sent. */
  async function resetFlood(client: http2.ClientHttp2Session, pairs: number): Promise<number> {
    let sent = 0;
    for (; sent < pairs && !client.destroyed && !client.closed; sent++) {
      let call: http2.ClientHttp2Stream;
      try {
        call = startCall(client, 'Silent');
      } catch {
        break; // the gateway's GOAWAY arrived: no new streams on this connection
      }
      // A turn of the event loop: time enough for the gateway to open the upstream stream.
      await new Promise((resolve) => setImmediate(resolve));
      call.close(constants.NGHTTP2_CANCEL);
    }
    return sent;
  }

  test('a client resetting its calls before the workspace answers is cut off (GOAWAY ENHANCE_YOUR_CALM) and others keep working', async () => {
    const gw = await startGateway({ upstream: new URL(`https://127.0.0.1:${upstream.port}`), caFile: pki.caFile });
    try {
      const opened = upstream.opened('Silent');
      const attacker = connectClient(gw.port);
      const goaway = once(attacker, 'goaway');
      const sent = await resetFlood(attacker, 500);
      const [code] = await within(goaway, { what: 'a GOAWAY to the resetting client' });
      assert.equal(code, constants.NGHTTP2_ENHANCE_YOUR_CALM);
      assert.ok(sent < 100, `${sent} HEADERS + RST_STREAM pairs went through before the cut-off`);
      assert.ok(upstream.opened('Silent') - opened <= 40, `${upstream.opened('Silent') - opened} upstream streams opened`);
      assert.equal(await callOnce(gw.port, 'Ok'), '0');
    } finally {
      await gw.close();
    }
  });

  test('a key resetting its calls over many connections is cut off too', async () => {
    const alice = newInboundKey();
    const gw = await startGateway({
      upstream: new URL(`https://127.0.0.1:${upstream.port}`),
      caFile: pki.caFile,
      authenticate: createKeyAuthenticator([{ name: 'alice', sha256: Buffer.from(alice.hash.slice('sha256:'.length), 'hex') }])!,
    });
    try {
      const opened = upstream.opened('Silent');
      // 16 pairs per connection stay within a connection's budget; 20 connections overrun the key's.
      for (let i = 0; i < 20; i++) {
        const client = connectClient(gw.port);
        const request = client.request.bind(client);
        client.request = ((headers: http2.OutgoingHttpHeaders, options?: http2.ClientSessionRequestOptions) =>
          request({ ...headers, authorization: `Bearer ${alice.key}` }, options)) as typeof client.request;
        await resetFlood(client, 16);
        client.close();
      }
      const reached = upstream.opened('Silent') - opened;
      assert.ok(reached <= 80, `${reached} of 320 reset calls reached the workspace`);
      // While its budget refills, the key's calls are refused before they reach the workspace.
      assert.equal(await callOnce(gw.port, 'Ok', { authorization: `Bearer ${alice.key}` }), '8');
      assert.match(gw.calls.at(-1)?.reason ?? '', /key alice cancelled too many Spark Connect calls/);
    } finally {
      await gw.close();
    }
  });

  test("one connection holding many silent calls cannot block another connection's call", async () => {
    const gw = await startGateway({ upstream: new URL(`https://127.0.0.1:${upstream.port}`), caFile: pki.caFile });
    const hog = connectClient(gw.port);
    try {
      const opened = upstream.opened('Silent');
      // The route's whole cap of 128, on one connection.
      const statuses = [...Array(128)].map(() => {
        const call = startCall(hog, 'Silent');
        let status: string | undefined;
        void statusOf(call).then((s) => (status = s));
        return () => status;
      });
      await waitFor(() => upstream.opened('Silent') - opened + statuses.filter((s) => s() !== undefined).length === 128, {
        what: 'the gateway to take or refuse every held call',
      });
      assert.ok(upstream.opened('Silent') - opened < 128);
      assert.ok(
        statuses.some((s) => s() === '8'),
        'calls past the connection share are refused RESOURCE_EXHAUSTED',
      );
      assert.equal(await callOnce(gw.port, 'Ok'), '0');
    } finally {
      hog.destroy();
      await gw.close();
    }
  });

  test('a call that sends nothing either way for the idle limit ends UNAVAILABLE and frees its slot', async () => {
    const gw = await startGateway({ upstream: new URL(`https://127.0.0.1:${upstream.port}`), caFile: pki.caFile, callIdleMs: 200 });
    const client = connectClient(gw.port);
    try {
      const call = startCall(client, 'Silent');
      const status = await within(statusOf(call), { what: 'the silent call to be ended' });
      assert.equal(status, '14');
      call.end();
      assert.match((await gw.call(1)).reason ?? '', /no data either way for 200 ms \(timeouts\.idleMs\)/);
    } finally {
      client.destroy();
      await gw.close();
    }
  });
});

describe('Spark Connect: gateway-only metadata', () => {
  test('a client-sent authorization-bin, x-dbx-gateway-control or x-dbx-gateway-key never reaches the workspace', async () => {
    const upstream = await startCountingUpstream();
    const gw = await startGateway({ upstream: new URL(`https://127.0.0.1:${upstream.port}`), caFile: pki.caFile });
    try {
      const status = await callOnce(gw.port, 'Ok', {
        'authorization-bin': Buffer.from('client-secret').toString('base64'),
        'x-dbx-gateway-control': 'control-secret',
        'x-dbx-gateway-key': 'dgw_not_forwarded',
        'x-databricks-azure-sp-management-token-bin': 'c3Bvb2Y',
        'x-databricks-cluster-id': 'c-1',
      });
      assert.equal(status, '0');
      const seen = upstream.seen.at(-1)!;
      assert.equal(seen.authorization, `Bearer ${TEST_TOKEN}`);
      assert.equal(seen['x-databricks-cluster-id'], 'c-1');
      for (const name of ['authorization-bin', 'x-dbx-gateway-control', 'x-dbx-gateway-key', 'x-databricks-azure-sp-management-token-bin']) {
        assert.equal(seen[name], undefined, `${name} was forwarded`);
      }
    } finally {
      await gw.close();
      await upstream.close();
    }
  });
});
