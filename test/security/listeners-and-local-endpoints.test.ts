import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { BIN, NO_TOOLS_PATH } from '../helpers/cli.js';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { startYamlGateway, usePatGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

const PAT = 'dapi3333333333333333333333333333abab';
const ALICE = 'dgw_alice-0000000000000000000000000000000000000';
const BOB = 'dgw_bob-00000000000000000000000000000000000000000';
const sha = (key: string) => `sha256:${createHash('sha256').update(key).digest('hex')}`;

describe('every TCP listener obeys the loopback-or-keys rule', () => {
  const home = mkdtempSync(join(tmpdir(), 'dbxgw-listen-'));
  const run = (args: string[]) =>
    spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, env: { PATH: NO_TOOLS_PATH, HOME: home }, cwd: home });

  it('refuses per-route ports on 0.0.0.0 without keys in socket mode', () => {
    const file = join(home, 'socket-mode.yaml');
    writeFileSync(file, 'routes:\n  prod: { host: https://adb-1.1.azuredatabricks.net, credential: pat, port: 18123 }\n');
    const res = run(['--socket', join(home, 'gw.sock'), '--host', '0.0.0.0', '--config', file]);
    assert.equal(res.status, 2, res.stderr);
    assert.match(res.stderr, /--host: 0\.0\.0\.0 is reachable from other machines/);
  });

  it('checks the address each listener is actually bound to, not only the configured name', async () => {
    const socket = join(mkdtempSync(join(tmpdir(), 'dbxgw-bound-')), 'gw.sock');
    await assert.rejects(
      startYamlGateway('routes:\n  prod: { host: https://adb-1.1.azuredatabricks.net, credential: pat }\n', {
        env: { DATABRICKS_TOKEN: PAT },
        // Past the loader's check, as a config built some other way would be.
        configure: (config) => {
          config.socket = socket;
          config.listen.host = '0.0.0.0';
          config.routes[0]!.port = 0;
        },
      }),
      /a listener is bound to 0\.0\.0\.0:\d+, reachable from other machines, and there are no inboundKeys/,
    );
  });

  it('refuses a reload that drops the keys while a 0.0.0.0 listener is bound, and logs it', async () => {
    const upstream = await startFakeUpstream();
    const file = join(home, 'team.yaml');
    const ca = testPki().caFile;
    writeFileSync(
      file,
      `listen: { host: 0.0.0.0 }\nroutes:\n  prod: { host: ${upstream.url.origin}, caFile: ${ca}, credential: { type: pat, token: ${PAT} } }\ninboundKeys:\n  alice: ${sha(ALICE)}\n`,
    );
    const gw = await spawnGateway(['--config', file], { HOME: home }, home);
    try {
      const url = gw.url.replace('0.0.0.0', '127.0.0.1');
      await gw.waitForOutput('stdout', /"route":"prod","state":"ready"/);
      assert.equal((await request(`${url}/ws/prod/x`)).status, 401);
      const mark = gw.stdout().length;
      writeFileSync(
        file,
        `listen: { host: 127.0.0.1 }\nroutes:\n  prod: { host: ${upstream.url.origin}, caFile: ${ca}, credential: { type: pat, token: ${PAT} } }\n`,
      );
      gw.child.kill('SIGHUP');
      await gw.waitForOutput('stdout', /reload was refused/, { since: mark });
      assert.match(gw.stdout().slice(mark), /"level":50.*bound to 0\.0\.0\.0:\d+.*no inboundKeys/);
      assert.equal((await request(`${url}/ws/prod/x`)).status, 401, 'the listener still needs a key');
      // Only the gateway's own startup call (SCIM Me: who the route's token is), no client request.
      assert.deepEqual(
        upstream.seen.map((r) => r.url),
        ['/api/2.0/preview/scim/v2/Me'],
      );
    } finally {
      await gw.stop();
      await upstream.close();
    }
  });
});

describe('--socket PATH only ever replaces a socket', () => {
  it('refuses a regular file at PATH with a clear error and leaves it alone', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-sockfile-'));
    const path = join(dir, 'notes.txt');
    writeFileSync(path, 'precious');
    const res = spawnSync(process.execPath, [BIN, '--socket', path, '--demo'], {
      encoding: 'utf8',
      timeout: 20_000,
      env: { PATH: NO_TOOLS_PATH, HOME: dir },
      cwd: dir,
    });
    assert.equal(res.status, 2, res.stderr);
    assert.match(res.stderr, /not a socket is in the way/);
    assert.ok(existsSync(path));
    assert.equal(readFileSync(path, 'utf8'), 'precious');
  });
});

describe('with inbound keys, the status page and /metrics need a key', () => {
  const ctx = usePatGateway({
    pat: PAT,
    yaml: (upstream) => `routes:\n  prod: { host: ${upstream.url.origin}, credential: pat }\ninboundKeys:\n  alice: ${sha(ALICE)}\n`,
  });

  it('answers 401 without a key and 200 with one; probes stay open', async () => {
    for (const path of ['/', '/metrics']) {
      const anonymous = await request(`${ctx.gw.url}${path}`, { headers: { accept: 'application/json' } });
      assert.equal(anonymous.status, 401, path);
      assert.ok(!anonymous.text.includes(ctx.upstream.url.host), 'no upstream is shown without a key');
      const keyed = await request(`${ctx.gw.url}${path}`, { headers: { accept: 'application/json', authorization: `Bearer ${ALICE}` } });
      assert.equal(keyed.status, 200, path);
    }
    assert.equal((await request(`${ctx.gw.url}/healthz`)).status, 200);
    assert.equal((await request(`${ctx.gw.url}/readyz`)).status, 200);
  });
});

describe('the metadata service honours keys and policy', () => {
  const secret = 'b7a1c2b4-5d6e-4f70-8a9b-0c1d2e3f4a5b';
  const hosts = { prod: '', dev: '', locked: '', opted: '' };
  const ctx = usePatGateway({
    pat: PAT,
    yaml: ({ url: { port } }) => {
      // Four routes to one fake upstream, told apart by host name.
      Object.assign(hosts, {
        prod: `https://127.0.0.1:${port}`,
        dev: `https://localhost:${port}`,
        locked: `https://127.0.0.2:${port}`,
        opted: `https://127.0.0.3:${port}`,
      });
      return `routes:
  prod: { host: ${hosts.prod}, credential: pat }
  dev: { host: ${hosts.dev}, credential: pat }
  locked: { host: ${hosts.locked}, credential: pat, readOnly: true }
  opted: { host: ${hosts.opted}, credential: pat, denyPaths: ["/api/2\\\\.0/secrets/.*"], metadataService: true }
inboundKeys:
  alice: ${sha(ALICE)}
  bob: { hash: ${sha(BOB)}, routes: [dev] }
allowedOrigins: [http://app.example]
metadataService: { secret: ${secret} }
`;
    },
  });

  const ask = (path: string, host: string, headers: Record<string, string> = {}) =>
    request(`${ctx.gw.url}/metadata/${path}`, { headers: { 'x-databricks-metadata-version': '1', 'x-databricks-host': host, ...headers } });

  it('needs a key: the per-start secret alone gets no token', async () => {
    const res = await ask(secret, hosts.prod);
    assert.equal(res.status, 401);
    assert.ok(!res.text.includes(PAT));
  });

  it('serves a key holder, by header or with the key as the URL secret', async () => {
    assert.equal((await ask(secret, hosts.prod, { authorization: `Bearer ${ALICE}` })).json<{ access_token: string }>().access_token, PAT);
    assert.equal((await ask(ALICE, hosts.prod)).json<{ access_token: string }>().access_token, PAT);
  });

  it("serves only the key's routes", async () => {
    assert.equal((await ask(BOB, hosts.dev)).status, 200);
    const other = await ask(BOB, hosts.prod);
    assert.equal(other.status, 403);
    assert.ok(!other.text.includes(PAT));
  });

  it('does not serve a route with a policy unless the route sets metadataService: true', async () => {
    const locked = await ask(ALICE, hosts.locked);
    assert.equal(locked.status, 403);
    assert.match(locked.json<{ message: string }>().message, /routes\.locked\.metadataService: true/);
    assert.equal((await ask(ALICE, hosts.opted)).status, 200);
  });

  it('never hands a token to a browser, not even an allowed CORS origin', async () => {
    const res = await ask(ALICE, hosts.prod, { origin: 'http://app.example' });
    assert.equal(res.status, 403);
    assert.ok(!res.text.includes(PAT));
  });
});

describe('upstream 401s cannot make the gateway hammer its credential', () => {
  it('fetches a new token at most once for a burst of 401s', async () => {
    const upstream = await startFakeUpstream((req, res) => {
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error_code":"401","message":"Invalid access token"}');
    });
    const gw = await startYamlGateway(`routes:\n  prod: { host: ${upstream.url.origin}, credential: pat }\n`, { env: { DATABRICKS_TOKEN: PAT } });
    try {
      for (let i = 0; i < 20; i++) assert.equal((await request(`${gw.url}/ws/prod/api/2.0/clusters/list`)).status, 401);
      const metrics = (await request(`${gw.url}/metrics`)).text;
      const fetches = Number(/dbx_gateway_token_fetches_total\{[^}]*\} (\d+)/.exec(metrics)?.[1]);
      assert.ok(fetches <= 2, `${fetches} token fetches for 20 rejected requests`);
      // The first 401 was replayed once with a fresh token; the rest went back as they came.
      assert.ok(upstream.seen.length <= 21, `${upstream.seen.length} upstream requests`);
    } finally {
      await gw.shutdown(100);
      await upstream.close();
    }
  });
});

describe('config check of the loopback rule', () => {
  it('applies to per-route ports when the main listener is a socket', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-rule-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'routes:\n  prod: { host: https://adb-1.1.azuredatabricks.net, credential: pat, port: 8123 }\n');
    assert.throws(
      () => loadConfig({ flags: { config: file, socket: join(dir, 's'), host: '0.0.0.0', noProfiles: true }, env: {}, cwd: dir }),
      /reachable from other machines/,
    );
    assert.doesNotThrow(() => loadConfig({ flags: { config: file, socket: join(dir, 's'), host: '127.0.0.1', noProfiles: true }, env: {}, cwd: dir }));
  });
});
