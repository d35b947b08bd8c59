import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { oidcEndpoints } from '../../src/auth/databricks-oidc.js';
import { errorMessage } from '../../src/errors.js';
import { type ChildOutput, watchOutput } from '../helpers/child-output.js';
import { BIN } from '../helpers/cli.js';
import { type FakeDatabricksOidc, startFakeDatabricksOidc } from '../helpers/fake-databricks-oidc.js';
import { request } from '../helpers/http.js';
import { spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

interface LoginRun extends ChildOutput {
  child: ChildProcess;
  authorizeUrl: Promise<string>;
  exit: Promise<number | null>;
}

/** `dbx-gateway login NAME --no-browser`; resolves the authorize URL it prints. */
function startLogin(args: string[], env: NodeJS.ProcessEnv): LoginRun {
  const child = spawn(process.execPath, [BIN, 'login', ...args, '--no-browser'], { env });
  const output = watchOutput(child);
  const authorizeUrl = output
    .waitForOutput('stderr', /^ {2}(https:\/\/\S+\/oidc\/v1\/authorize\?\S+)$/m)
    .then((m) => m[1]!)
    .catch((err: unknown) => {
      throw new Error(`login did not print the authorize URL: ${errorMessage(err)}`);
    });
  authorizeUrl.catch(() => {});
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { ...output, child, authorizeUrl, exit };
}

/** What the browser does with the authorize URL: follow the fake's redirect back to the callback. */
function browse(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    httpsRequest(url, { ca: testPki().ca }, (res) => {
      res.resume();
      const location = res.headers.location;
      if (res.statusCode !== 302 || !location) return reject(new Error(`authorize answered ${res.statusCode}`));
      resolve(location);
    })
      .on('error', reject)
      .end();
  });
}

function occupy(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('Databricks OAuth endpoints', () => {
  it('uses the account console endpoints for an account route, without discovery', async () => {
    const endpoints = await oidcEndpoints({
      name: 'acct',
      kind: 'account',
      upstream: new URL('https://accounts.azuredatabricks.net'),
      accountId: 'a1b2',
      credential: { type: 'databricks-u2m' },
      readOnly: false,
      source: 'test',
    });
    assert.equal(endpoints.authorizationEndpoint.href, 'https://accounts.azuredatabricks.net/oidc/accounts/a1b2/v1/authorize');
    assert.equal(endpoints.tokenEndpoint.href, 'https://accounts.azuredatabricks.net/oidc/accounts/a1b2/v1/token');
  });
});

describe('databricks-u2m: dbx-gateway login (PKCE) and the serving gateway', () => {
  let oidc: FakeDatabricksOidc;
  let env: NodeJS.ProcessEnv;
  let host: string;

  before(async () => {
    oidc = await startFakeDatabricksOidc();
    host = oidc.upstream.url.origin;
    env = {
      PATH: '/nonexistent',
      HOME: mkdtempSync(join(tmpdir(), 'dbxgw-home-')),
      NODE_EXTRA_CA_CERTS: testPki().caFile,
    };
  });
  after(async () => {
    await oidc.close();
  });

  it('a login in progress ignores a wrong-state callback', async () => {
    const run = startLogin(['prod', '--workspace', `prod=${host}`], env);
    const logins = join(env.HOME!, '.config', 'dbx-gateway', 'logins');
    try {
      const real = new URL(await browse(await run.authorizeUrl));
      const exited = () => run.child.exitCode !== null || run.child.signalCode !== null;

      // Another local user or a web page: a forged code, a forged OAuth error, a callback without
      // a code, a favicon. None of them may end the login.
      const forged = new URL(real.href);
      forged.searchParams.set('state', 'forged-state');
      forged.searchParams.set('code', 'attacker-code');
      const wrongState = await request(forged.href);
      assert.equal(wrongState.status, 400);
      assert.match(wrongState.text, /state did not match/);
      assert.match(wrongState.text, /ignored/);

      const forgedError = new URL(real.origin);
      forgedError.searchParams.set('error', 'access_denied');
      forgedError.searchParams.set('state', 'forged-state');
      assert.equal((await request(forgedError.href)).status, 400);

      const noCode = new URL(real.origin);
      noCode.searchParams.set('state', real.searchParams.get('state')!);
      const missing = await request(noCode.href);
      assert.equal(missing.status, 400);
      assert.match(missing.text, /ignored/);

      assert.equal((await request(`${real.origin}/favicon.ico`)).status, 404);
      // The login says it ignored the forged callback (and fails the wait if it exited instead).
      await run.waitForOutput('stderr', /ignored a request to the sign-in callback whose state does not match/);
      assert.ok(!exited(), `the login must still be waiting:\n${run.stderr()}`);
      assert.throws(() => readdirSync(logins), 'nothing is stored before the real callback');

      // The browser's real callback still completes the login.
      const page = await request(real.href);
      assert.equal(page.status, 200);
      assert.match(page.text, /You can close this tab/);
      assert.equal(await run.exit, 0, run.stderr());
    } finally {
      run.child.kill();
    }
    assert.match(run.stderr(), /Signed in\. The refresh token is stored in /);
    const [name] = readdirSync(logins);
    const stored = JSON.parse(readFileSync(join(logins, name!), 'utf8')) as { refreshToken: string };
    assert.ok(oidc.liveRefreshTokens.has(stored.refreshToken));
    const exchange = oidc.tokenCalls.at(-1)!;
    assert.notEqual(exchange.form.code, 'attacker-code');
  });

  it('a matching-state error= callback (the authorization server refusing) aborts the login', async () => {
    const run = startLogin(['prod', '--workspace', `prod=${host}`], env);
    try {
      const real = new URL(await browse(await run.authorizeUrl));
      const refused = new URL(real.origin);
      refused.searchParams.set('error', 'access_denied');
      refused.searchParams.set('state', real.searchParams.get('state')!);
      const page = await request(refused.href);
      assert.equal(page.status, 400);
      assert.match(page.text, /Databricks refused the sign-in/);
      assert.equal(await run.exit, 1);
    } finally {
      run.child.kill();
    }
    assert.match(run.stderr(), /login failed: Databricks refused the sign-in: access_denied/);
  });

  it('signs in with PKCE S256 and stores the refresh token 0600 in a 0700 directory', async () => {
    // Another program on 8020: the callback falls back to the next port, as the Databricks CLI does.
    const blocker = await occupy(8020);
    const run = startLogin(['prod', '--workspace', `prod=${host}`], env);
    try {
      const authorize = new URL(await run.authorizeUrl);
      const callback = await browse(authorize.href);
      const page = await request(callback);
      assert.equal(page.status, 200);
      assert.match(page.text, /You can close this tab/);
      assert.equal(await run.exit, 0, run.stderr());
      assert.match(run.stderr(), /Waiting for the browser to return to http:\/\/localhost:\d+/);
      assert.match(run.stderr(), /Signed in\. The refresh token is stored in /);

      const params = oidc.authorizeCalls.at(-1)!.params;
      assert.equal(params.client_id, 'databricks-cli');
      assert.equal(params.scope, 'all-apis offline_access');
      assert.equal(params.code_challenge_method, 'S256');
      assert.equal(params.response_type, 'code');
      assert.match(params.redirect_uri ?? '', blocker ? /^http:\/\/localhost:80(2[1-9]|3\d|40)$/ : /^http:\/\/localhost:80[2-4]\d$/);
      const exchange = oidc.tokenCalls.at(-1)!;
      assert.equal(exchange.status, 200, 'the fake verified the PKCE verifier against the challenge');
      assert.equal(exchange.form.grant_type, 'authorization_code');

      const dir = join(env.HOME!, '.config', 'dbx-gateway', 'logins');
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      const [name] = readdirSync(dir);
      const file = join(dir, name!);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const stored = JSON.parse(readFileSync(file, 'utf8')) as { refreshToken: string; host: string };
      assert.equal(stored.host, host);
      assert.ok(oidc.liveRefreshTokens.has(stored.refreshToken));
      assert.ok(!run.stderr().includes(stored.refreshToken), 'the refresh token is never printed');
    } finally {
      run.child.kill();
      blocker?.close();
    }
  });

  it('the gateway refreshes access tokens from the stored login (chosen by the default chain)', async () => {
    const gw = await spawnGateway(['--workspace', `prod=${host}`], env);
    try {
      const ready = (await request(`${gw.url}/readyz`)).json<{ routes: Record<string, { credential: string; reason: string }> }>();
      assert.equal(ready.routes.prod?.credential, 'databricks-u2m');
      assert.match(ready.routes.prod?.reason ?? '', /a dbx-gateway login is stored for/);
      const res = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`);
      assert.match(res.json<{ auth: string }>().auth, /^Bearer u2m-access-\d+$/);
      const refresh = oidc.tokenCalls.filter((c) => c.form.grant_type === 'refresh_token');
      assert.equal(refresh.at(-1)?.status, 200);
      assert.equal(refresh.at(-1)?.form.client_id, 'databricks-cli');
    } finally {
      await gw.stop();
    }
  });

  it('keeps the rotated refresh token, so the next start still signs in', async () => {
    const gw = await spawnGateway(['--workspace', `prod=${host}`, '--credential', 'databricks-u2m'], env);
    try {
      const res = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`);
      assert.equal(res.status, 200, res.text);
    } finally {
      await gw.stop();
    }
  });

  it('answers 503 saying to run dbx-gateway login NAME once the refresh token is revoked', async () => {
    oidc.revokeAll();
    const gw = await spawnGateway(['--workspace', `prod=${host}`, '--credential', 'databricks-u2m'], env);
    try {
      const res = await request(`${gw.url}/ws/prod/api/2.0/clusters/list`);
      assert.equal(res.status, 503);
      const { message } = res.json<{ message: string }>();
      assert.match(message, /stored sign-in for https:\/\/127\.0\.0\.1:\d+ was revoked or has expired .*invalid_grant.*Fix: run dbx-gateway login prod/);
    } finally {
      await gw.stop();
    }
  });
});
