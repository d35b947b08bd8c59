/**
 * Behind TLS inspection the upstream's certificate comes from a CA the gateway does not know.
 * Every door that meets it (the HTTP proxy, doctor, Spark Connect, the Postgres door) says what
 * is wrong and how to fix it: caFile on the route, --ca-file with --workspace, NODE_EXTRA_CA_CERTS,
 * the OS trust store. Real TLS: the fake workspace serves a certificate from the test CA, which is
 * trusted only when given as caFile / --ca-file.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { describeWithTlsFix, GatewayError, tlsFailure, toGatewayError } from '../../src/errors.js';
import { postgresErrorFor } from '../../src/postgres/errors.js';
import { connectUpstream } from '../../src/proxy/connector.js';
import { runCli } from '../helpers/cli.js';
import { namedPki } from '../helpers/connect-proxy.js';
import { startFakeEntra } from '../helpers/fake-entra.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';
import { startGateway } from '../spark/fixtures/gateway.js';
import { analyze, type FakeSpark, sparkClient, startFakeSpark } from '../spark/fixtures/spark-grpc.js';

const PAT = 'dapi5656565656565656565656565656cdcd';
const ENV = { DATABRICKS_TOKEN: PAT };

/** The fixes a user behind TLS inspection needs named. */
function assertNamesTheFixes(text: string): void {
  assert.match(text, /UNABLE_TO_VERIFY_LEAF_SIGNATURE/, text);
  assert.match(text, /not from a CA this gateway trusts/, text);
  assert.match(text, /caFile: \/path\/root-ca\.pem on the route/, text);
  assert.match(text, /--ca-file \/path\/root-ca\.pem with --workspace\/--account/, text);
  assert.match(text, /NODE_EXTRA_CA_CERTS=\/path\/root-ca\.pem/, text);
  assert.match(text, /operating system's trust store/, text);
}

/** A workspace over HTTPS with the test CA whose SCIM Me accepts PAT. */
function workspace(): Promise<FakeUpstream> {
  return startFakeUpstream((req, res) => {
    req.resume();
    res.writeHead(req.headers.authorization === `Bearer ${PAT}` ? 200 : 401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ userName: 'dev.user@example.com', clusters: [] }));
  });
}

describe('an upstream certificate from a CA the gateway does not trust (TLS inspection)', () => {
  let upstream: FakeUpstream;
  const caFile = testPki().caFile;
  before(async () => {
    upstream = await workspace();
  });
  after(async () => {
    await upstream.close();
  });
  const routeFlags = () => ['--no-profiles', '--credential', 'pat', '--workspace', `prod=${upstream.url.origin}`];

  test('a proxied request gets a 502 that names caFile, --ca-file and NODE_EXTRA_CA_CERTS; --ca-file makes it work', async () => {
    const untrusting = await spawnGateway(routeFlags(), ENV);
    try {
      const res = await fetch(`${untrusting.url}/ws/prod/api/2.0/clusters/list`);
      assert.equal(res.status, 502);
      const body = (await res.json()) as { error_code: string; message: string };
      assert.equal(body.error_code, 'GATEWAY_UPSTREAM_UNREACHABLE');
      assertNamesTheFixes(body.message);
      assert.ok(!body.message.includes(PAT));
    } finally {
      await untrusting.stop();
    }
    const trusting = await spawnGateway([...routeFlags(), '--ca-file', caFile], ENV);
    try {
      const res = await fetch(`${trusting.url}/ws/prod/api/2.0/clusters/list`);
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(await res.json(), { userName: 'dev.user@example.com', clusters: [] });
    } finally {
      await trusting.stop();
    }
  });

  test('doctor says the same, and passes with --ca-file', async () => {
    const failing = await runCli(['doctor', ...routeFlags()], ENV);
    assert.equal(failing.status, 1, failing.stdout + failing.stderr);
    assert.match(failing.stdout, /^FAIL {2}\/ws\/prod/m);
    assert.match(failing.stdout, /upstream: +FAILED: unreachable: /);
    assertNamesTheFixes(failing.stdout);
    const passing = await runCli(['doctor', ...routeFlags(), '--ca-file', caFile], ENV);
    assert.equal(passing.status, 0, passing.stdout + passing.stderr);
    assert.match(passing.stdout, /^PASS {2}\/ws\/prod/m);
  });

  test('--ca-file is checked with the configuration: a missing file, a file without a certificate, no route to apply to', async () => {
    const missing = await runCli(['doctor', ...routeFlags(), '--ca-file', '/nonexistent/root-ca.pem'], ENV);
    assert.equal(missing.status, 2, missing.stdout + missing.stderr);
    assert.match(missing.stderr, /--ca-file \/nonexistent\/root-ca\.pem \(route prod\): cannot read \/nonexistent\/root-ca\.pem \(ENOENT\)/);
    const notPem = await runCli(['doctor', ...routeFlags(), '--ca-file', testPki().caFile.replace(/ca\.pem$/, 'server.key')], ENV);
    assert.equal(notPem.status, 2, notPem.stdout + notPem.stderr);
    assert.match(notPem.stderr, /holds no PEM certificate/);
    const alone = await runCli(['doctor', '--no-profiles', '--ca-file', caFile], ENV);
    assert.equal(alone.status, 2, alone.stdout + alone.stderr);
    assert.match(alone.stderr, /--ca-file .*: applies to the routes given with --workspace or --account, and there are none/);
  });

  // Node 22.15+ only (tls.getCACertificates): elsewhere than Windows and macOS Node's system store
  // is OpenSSL's default file, which SSL_CERT_FILE names, so the test CA stands in for a root
  // that IT installed. Skipped on Node 20, which cannot read the system store.
  test('a root in the operating system trust store is trusted without caFile', {
    skip: !('getCACertificates' in tls) || process.platform === 'win32',
  }, async () => {
    const gateway = await spawnGateway(routeFlags(), { ...ENV, SSL_CERT_FILE: caFile });
    try {
      const res = await fetch(`${gateway.url}/ws/prod/api/2.0/clusters/list`);
      assert.equal(res.status, 200, await res.clone().text());
    } finally {
      await gateway.stop();
    }
  });

  test('Entra ID sign-in trusts the same roots: its TLS failure names the fix, and --ca-file covers it too', async () => {
    const entra = await startFakeEntra();
    entra.apps.set('client-1', { secret: 'sp-secret~Qx8Q~abcdefghijklmnop' });
    const env = {
      AZURE_AUTHORITY_HOST: entra.url.origin,
      ARM_TENANT_ID: '11111111-2222-3333-4444-555555555555',
      ARM_CLIENT_ID: 'client-1',
      ARM_CLIENT_SECRET: 'sp-secret~Qx8Q~abcdefghijklmnop',
    };
    const flags = ['--no-profiles', '--credential', 'azure-client-secret', '--workspace', `prod=${upstream.url.origin}`];
    try {
      const untrusting = await spawnGateway(flags, env);
      try {
        const res = await fetch(`${untrusting.url}/ws/prod/api/2.0/clusters/list`);
        assert.equal(res.status, 503);
        const body = (await res.json()) as { message: string };
        assert.match(
          body.message,
          /no usable token from credential azure-client-secret: .*Fix: the certificate it presented is not from a CA this gateway trusts/,
        );
        assert.match(body.message, /--ca-file \/path\/root-ca\.pem/);
        assert.ok(!body.message.includes(env.ARM_CLIENT_SECRET));
      } finally {
        await untrusting.stop();
      }
      const trusting = await spawnGateway([...flags, '--ca-file', caFile], env);
      try {
        upstream.handle((req, res) => {
          req.resume();
          res.end(JSON.stringify({ authorization: req.headers.authorization }));
        });
        const res = await fetch(`${trusting.url}/ws/prod/api/2.0/clusters/list`);
        assert.equal(res.status, 200, await res.clone().text());
        assert.match(((await res.json()) as { authorization: string }).authorization, /^Bearer ey/);
      } finally {
        await trusting.stop();
      }
    } finally {
      await entra.close();
    }
  });

  test('Spark Connect ends the call UNAVAILABLE with the same fix', async () => {
    let spark: FakeSpark | undefined;
    let gw: Awaited<ReturnType<typeof startGateway>> | undefined;
    let client: ReturnType<typeof sparkClient> | undefined;
    try {
      spark = await startFakeSpark(testPki());
      gw = await startGateway({ upstream: spark.url });
      client = sparkClient(gw.port);
      const err = (await analyze(client, { sessionId: 's-tls' }).then(
        () => assert.fail('the call succeeded against an untrusted certificate'),
        (e: unknown) => e,
      )) as grpc.ServiceError;
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      assertNamesTheFixes(err.details);
    } finally {
      client?.close();
      await gw?.close();
      await spark?.close();
    }
  });

  test('the Postgres door answers 08001 with the fix as its hint', async () => {
    const err = await connectUpstream(upstream.url, { timeoutMs: 10_000 }).then(
      () => assert.fail('connected to an untrusted certificate'),
      (e: unknown) => e,
    );
    const pg = postgresErrorFor(err, 'ep-test.database.azuredatabricks.net:5432');
    assert.equal(pg.code, '08001');
    assert.match(pg.message, /unable to verify the first certificate/);
    assertNamesTheFixes(`${pg.message} ${pg.hint}`);
  });
});

describe('other certificate failures say what fixes them', () => {
  let server: Server;
  let port: number;
  before(async () => {
    const pki = namedPki('adb-test.example');
    server = createServer({ key: pki.key, cert: pki.cert }, (_req, res) => res.end('{}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  test('a certificate for another host name: check the host, not the CA', async () => {
    const err = await connectUpstream(
      { protocol: 'https:', hostname: '127.0.0.1', port },
      { timeoutMs: 10_000, caFile: namedPki('adb-test.example').caFile },
    ).then(
      () => assert.fail('connected to a certificate for another name'),
      (e: unknown) => e,
    );
    const answer = toGatewayError(err, `https://127.0.0.1:${port}`);
    assert.ok(answer instanceof GatewayError);
    assert.equal(answer.status, 502);
    assert.match(answer.message, /ERR_TLS_CERT_ALTNAME_INVALID/);
    assert.match(answer.message, /for other host names\. Fix: check the route's host/);
    assert.doesNotMatch(answer.message, /NODE_EXTRA_CA_CERTS/);
  });

  test('each verification code maps to its fix; other errors are left as they are', () => {
    const withCode = (code: string) => Object.assign(new Error(code.toLowerCase()), { code });
    for (const code of ['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']) {
      assert.match(tlsFailure(withCode(code))?.fix ?? '', /--ca-file/, code);
    }
    assert.match(tlsFailure(withCode('CERT_HAS_EXPIRED'))?.fix ?? '', /clock/);
    // @azure/identity keeps only the text of what failed underneath.
    assert.match(tlsFailure(new Error('request to login failed, reason: self-signed certificate in certificate chain'))?.fix ?? '', /caFile/);
    assert.equal(tlsFailure(withCode('ECONNREFUSED')), undefined);
    assert.equal(describeWithTlsFix(withCode('ECONNRESET')), 'econnreset');
  });
});
