/**
 * Spark Connect through the whole gateway: a route with `sparkConnect`, its HTTP/2 listener, the
 * route's credential, keys, metrics, the request log, the status page and reload. The forwarder's
 * protocol details are in forwarder.test.ts and faults.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { GatewayConfig } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';
import { newInboundKey } from '../../src/security/inbound-keys.js';
import { type FakeAz, installFakeAz } from '../helpers/fake-az.js';
import { startTestGateway, startYamlGateway, TEST_PAT, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';
import { within } from '../helpers/wait.js';
import { analyze, callError, type FakeSpark, md, readAll, type SparkClient, SparkConnectService, sparkClient, startFakeSpark } from './fixtures/spark-grpc.js';

const pki = testPki();

/** Opens the route's Spark Connect listener on a free port (the file takes 1-65535 only). */
const withSparkPort = (config: GatewayConfig) => {
  for (const r of config.routes) {
    r.caFile = pki.caFile;
    r.sparkConnect = { port: 0 };
  }
};

/** A gateway with one PAT route "prod" in front of `upstream` and its Spark Connect port open. */
function sparkGateway(upstream: FakeSpark, configure?: (config: GatewayConfig) => void): Promise<TestGateway> {
  return startTestGateway({
    flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'pat' },
    env: { DATABRICKS_TOKEN: TEST_PAT },
    configure: (config) => {
      withSparkPort(config);
      configure?.(config);
    },
  });
}

describe('Spark Connect through the gateway', () => {
  let upstream: FakeSpark;
  let gw: TestGateway;
  let client: ReturnType<typeof sparkClient>;

  before(async () => {
    upstream = await startFakeSpark(pki);
    gw = await sparkGateway(upstream);
    client = sparkClient(gw.sparkPorts.get('prod')!);
  });
  after(async () => {
    client?.close();
    await gw?.shutdown(100);
    await upstream?.close();
  });

  test('calls reach the workspace with the route token and the client metadata, streams included', async () => {
    const metadata = md({ 'x-databricks-cluster-id': '0123-456789-abcdefgh', authorization: 'Bearer not-the-route-token' });
    const analysed = await analyze(client, { sessionId: 's-1' }, metadata);
    assert.equal(analysed.sessionId, 's-1');
    const batches = await readAll(client.ExecutePlan({ sessionId: 's-1', count: 5, size: 1024 }, metadata));
    assert.equal(batches.length, 5);
    for (const seen of upstream.calls.slice(-2)) {
      assert.equal(seen.metadata.get('authorization')[0], `Bearer ${TEST_PAT}`);
      assert.equal(seen.metadata.get('x-databricks-cluster-id')[0], '0123-456789-abcdefgh');
    }
  });

  test('each call is one request line and one metrics count by route, method and grpc-status', async () => {
    await analyze(client, { sessionId: 's-2' });
    const line = gw.logs.findLast((l) => l.method === 'gRPC' && l.path === '/spark.connect.SparkConnectService/AnalyzePlan');
    assert.equal(line?.route, 'prod');
    assert.equal(line?.status, 'OK');
    assert.equal(line?.grpcStatus, 0);
    const metrics = (await request(`${gw.url}/metrics`)).text;
    assert.match(
      metrics,
      /dbx_gateway_grpc_calls_total\{route="prod",method="\/spark\.connect\.SparkConnectService\/AnalyzePlan",grpc_status="0",key="-"\} [1-9]/,
    );
    assert.match(metrics, /dbx_gateway_grpc_calls_total\{route="prod",method="\/spark\.connect\.SparkConnectService\/ExecutePlan",grpc_status="0",key="-"\} 1/);
    assert.ok(!gw.logText().includes(TEST_PAT), 'the token never reaches the log');
  });

  test('an upstream failure is a WARN line with its status name and reason', async () => {
    const err = await callError(readAll(client.ExecutePlan({ mode: 'fail' })));
    assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
    const line = gw.logs.findLast((l) => l.method === 'gRPC' && l.path === '/spark.connect.SparkConnectService/ExecutePlan');
    assert.equal(line?.level, 40);
    assert.equal(line?.status, 'FAILED_PRECONDITION');
    assert.match(String(line?.reason), /TERMINATED/);
  });

  test('the status page and dbx-gateway status list the Spark Connect port', async () => {
    const port = gw.sparkPorts.get('prod');
    const data = (await request(`${gw.url}/`, { headers: { accept: 'application/json' } })).json<{
      routes: Array<{ name: string; spark_connect_port?: number }>;
    }>();
    assert.equal(data.routes.find((r) => r.name === 'prod')?.spark_connect_port, port);
    const html = (await request(`${gw.url}/`)).text;
    assert.ok(html.includes(`Spark Connect: sc://localhost:${port}`));
  });

  test('a client connection may open at most 32 calls at once', async () => {
    const session = http2.connect(`http://127.0.0.1:${gw.sparkPorts.get('prod')}`);
    session.on('error', () => {});
    try {
      const settings = await within(once(session, 'remoteSettings'), { what: "the listener's SETTINGS" });
      assert.equal((settings[0] as http2.Settings).maxConcurrentStreams, 32);
    } finally {
      session.destroy();
    }
  });

  test('a reload keeps the port and serves calls with the new generation', async () => {
    const { notes } = await gw.reload({ ...gw.config });
    assert.deepEqual(notes, []);
    assert.equal((await analyze(client, { sessionId: 's-3' })).sessionId, 's-3');
  });
});

describe('Spark Connect: no token, keys, exposure', () => {
  let upstream: FakeSpark;
  let az: FakeAz;

  before(async () => {
    upstream = await startFakeSpark(pki);
    az = installFakeAz({ mode: 'login' });
  });
  after(async () => {
    await upstream?.close();
  });

  test('calls count against limits.requestsPerMinutePerKey like HTTP requests', async () => {
    const gw = await sparkGateway(upstream, (config) => {
      config.limits.requestsPerMinutePerKey = 2;
    });
    const client = sparkClient(gw.sparkPorts.get('prod')!);
    try {
      await analyze(client, { sessionId: 'r1' });
      await analyze(client, { sessionId: 'r2' });
      const err = await callError(analyze(client, { sessionId: 'r3' }));
      assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(err.details, /more than 2 requests per minute .*limits\.requestsPerMinutePerKey/);
    } finally {
      client.close();
      await gw.shutdown(100);
    }
  });

  test('shutdown lets a call in flight finish (GOAWAY), then the port is closed', async () => {
    const gw = await sparkGateway(upstream);
    const port = gw.sparkPorts.get('prod')!;
    const client = sparkClient(port);
    try {
      const call = client.Echo();
      const echoed = readAll(call as unknown as grpc.ClientReadableStream<{ seq: string }>);
      const first = new Promise((resolve) => call.once('data', resolve));
      call.write({ seq: 1, payload: Buffer.from('a') });
      await first;
      const stopped = gw.shutdown(5000);
      call.write({ seq: 2, payload: Buffer.from('b') });
      call.end();
      assert.deepEqual(
        (await echoed).map((m) => String(m.seq)),
        ['1', '2'],
        'the call in flight finished',
      );
      await within(stopped, { what: 'the shutdown to end once the call did', timeoutMs: 4000 });
      const late = sparkClient(port);
      try {
        // Nothing listens any more: the call fails (UNAVAILABLE, or its deadline).
        await callError(analyze(late, { sessionId: 'late' }, undefined, { deadline: Date.now() + 1000 }));
      } finally {
        late.close();
      }
    } finally {
      client.close();
    }
  });

  test('a connection with no call open is closed after timeouts.idleMs', async () => {
    const gw = await sparkGateway(upstream, (config) => {
      config.timeouts.idleMs = 300;
    });
    const session = http2.connect(`http://127.0.0.1:${gw.sparkPorts.get('prod')}`);
    session.on('error', () => {});
    try {
      await within(once(session, 'close'), { what: 'the idle connection to close', timeoutMs: 5000 });
    } finally {
      session.destroy();
      await gw.shutdown(100);
    }
  });

  test('with no usable token the call ends UNAUTHENTICATED with the credential hint, and nothing is sent upstream', async () => {
    // @azure/identity runs `az` from process.env.PATH, not the gateway's env: with only the env
    // pointing at the fake, a developer's signed-in az answered and the call succeeded.
    const path = process.env.PATH;
    process.env.PATH = az.path;
    const gw = await startTestGateway({
      flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'azure-cli' },
      env: { PATH: az.path },
      configure: withSparkPort,
    });
    const client = sparkClient(gw.sparkPorts.get('prod')!);
    try {
      const before = upstream.calls.length;
      const err = await callError(analyze(client, { sessionId: 'x' }));
      assert.equal(err.code, grpc.status.UNAUTHENTICATED);
      assert.match(err.details, /az login/);
      assert.equal(upstream.calls.length, before, 'nothing reached the upstream');
      assert.ok(az.calls() > 0, 'the fake az was asked');
    } finally {
      process.env.PATH = path;
      client.close();
      await gw.shutdown(100);
    }
  });

  test('a Spark Connect listener beyond loopback needs inbound keys, and then checks them', async () => {
    await assert.rejects(
      startTestGateway({
        flags: { workspace: [`prod=${upstream.url.origin}`], credential: 'pat', allowUnauthenticatedNetwork: false },
        env: { DATABRICKS_TOKEN: TEST_PAT },
        configure: (config) => {
          withSparkPort(config);
          // As a file that says 127.0.0.1 but whose listener ends up elsewhere would: checked on the bound address.
          config.listen.host = '0.0.0.0';
        },
      }),
      (err: unknown) => err instanceof ConfigError && /bound to 0\.0\.0\.0:\d+, reachable from other machines, and there are no inboundKeys/.test(err.message),
    );
    const alice = newInboundKey();
    const bob = newInboundKey();
    const gw = await startYamlGateway(
      `listen: { host: 0.0.0.0 }\ncredential: pat\nroutes:\n  prod: { host: ${upstream.url.origin} }\n  other: { host: ${upstream.url.origin} }\n` +
        `inboundKeys:\n  alice: ${alice.hash}\n  bob: { hash: ${bob.hash}, routes: [other] }\n`,
      { env: { DATABRICKS_TOKEN: TEST_PAT }, configure: withSparkPort },
    );
    const client = sparkClient(gw.sparkPorts.get('prod')!);
    try {
      assert.equal((await callError(analyze(client, { sessionId: 'k' }))).code, grpc.status.UNAUTHENTICATED);
      assert.equal((await callError(analyze(client, { sessionId: 'k' }, md({ authorization: 'Bearer dgw_wrong' })))).code, grpc.status.UNAUTHENTICATED);
      assert.equal((await callError(analyze(client, { sessionId: 'k' }, md({ authorization: `Bearer ${bob.key}` })))).code, grpc.status.PERMISSION_DENIED);
      const ok = await analyze(client, { sessionId: 'k' }, md({ authorization: `Bearer ${alice.key}` }));
      assert.equal(ok.sessionId, 'k');
      const seen = upstream.calls.at(-1)!;
      assert.equal(seen.metadata.get('authorization')[0], `Bearer ${TEST_PAT}`, 'the key is replaced by the route token');
      assert.equal(gw.logs.findLast((l) => l.method === 'gRPC')?.key, 'alice');
    } finally {
      client.close();
      await gw.shutdown(100);
    }
  });

  test('with listen.tls the port speaks h2 over TLS (ALPN), so a client can send its key as the token', async () => {
    const key = newInboundKey();
    const gw = await startYamlGateway(
      `listen: { tls: { certFile: ${join(dirname(pki.caFile), 'server.pem')}, keyFile: ${join(dirname(pki.caFile), 'server.key')} } }\n` +
        `credential: pat\nroutes:\n  prod: { host: ${upstream.url.origin} }\ninboundKeys:\n  alice: ${key.hash}\n`,
      { env: { DATABRICKS_TOKEN: TEST_PAT }, configure: withSparkPort },
    );
    const port = gw.sparkPorts.get('prod')!;
    // As the Spark Connect client does with token=: TLS, and the token as bearer metadata.
    const tlsClient = new SparkConnectService(`localhost:${port}`, grpc.credentials.createSsl(Buffer.from(pki.ca))) as unknown as SparkClient;
    const cleartext = sparkClient(port, { 'grpc.initial_reconnect_backoff_ms': 50 });
    try {
      const ok = await analyze(tlsClient, { sessionId: 't' }, md({ authorization: `Bearer ${key.key}` }));
      assert.equal(ok.sessionId, 't');
      assert.equal(upstream.calls.at(-1)?.metadata.get('authorization')[0], `Bearer ${TEST_PAT}`);
      // A port speaks one protocol: cleartext HTTP/2 to the TLS port does not get through, and
      // is told so (GOAWAY INADEQUATE_SECURITY, which gRPC reports as PERMISSION_DENIED).
      const err = await callError(analyze(cleartext, { sessionId: 't' }, md({ authorization: `Bearer ${key.key}` }), { deadline: Date.now() + 2000 }));
      assert.equal(err.code, grpc.status.PERMISSION_DENIED, `got ${err.code} ${err.details}`);
      assert.match(err.details, /not secure enough/i);
    } finally {
      tlsClient.close();
      cleartext.close();
      await gw.shutdown(100);
    }
  });
});
