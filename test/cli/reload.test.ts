import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { request } from '../helpers/http.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

const ca = testPki().caFile;
const route = (name: string, upstream: FakeUpstream, token: string) =>
  `  ${name}: { host: ${upstream.url.origin}, caFile: ${ca}, credential: { type: pat, token: ${token} } }\n`;

describe('SIGHUP reloads the configuration without dropping connections', () => {
  let one: FakeUpstream;
  let two: FakeUpstream;
  let gw: SpawnedGateway;
  let file: string;

  before(async () => {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      req.resume();
      const delay = req.url?.includes('slow') ? 1500 : 0;
      setTimeout(() => res.end(JSON.stringify({ auth: req.headers.authorization })), delay);
    };
    one = await startFakeUpstream(handler);
    two = await startFakeUpstream(handler);
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-reload-'));
    file = join(dir, 'dbx-gateway.yaml');
    // A drain shorter than the slow request: a reload must still let it finish.
    writeFileSync(file, `timeouts: { drainMs: 300 }\nroutes:\n${route('a', one, 'dapi-old')}`);
    gw = await spawnGateway(['--config', file, '--no-profiles'], { HOME: dir });
  });
  after(async () => {
    await gw.stop();
    await Promise.all([one.close(), two.close()]);
  });

  it('applies new routes and credentials, lets in-flight requests finish and keeps client connections', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<{ status: number; body: string; reused: boolean }>((resolve, reject) => {
        const req = http.get(`${gw.url}${path}`, { agent }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }));
        });
        req.on('error', reject);
      });
    assert.match((await get('/ws/a/x')).body, /dapi-old/);
    const slow = request(`${gw.url}/ws/a/slow`);
    // In flight: the upstream has it and holds its answer for 1.5 s.
    await one.requested((r) => r.url === '/slow');

    const mark = gw.stdout().length;
    writeFileSync(file, `timeouts: { drainMs: 300 }\nroutes:\n${route('a', one, 'dapi-new')}${route('b', two, 'dapi-b')}`);
    gw.child.kill('SIGHUP');
    await gw.waitForOutput('stdout', /configuration reloaded: 2 routes/, { since: mark });

    assert.match((await slow).text, /dapi-old/, 'the request in flight finished on the old configuration');
    const after = await get('/ws/a/x');
    assert.match(after.body, /dapi-new/);
    assert.equal(after.reused, true, 'the client connection survived the reload');
    assert.match((await get('/ws/b/x')).body, /dapi-b/);
  });

  it('keeps the running configuration when the new one is invalid, and says why', async () => {
    const mark = gw.stdout().length;
    writeFileSync(file, `routes:\n  a: { host: not-a-url }\n`);
    gw.child.kill('SIGHUP');
    await gw.waitForOutput('stdout', /the new configuration is invalid, so the previous one stays in use: .*routes\.a\.host: \\"not-a-url\\" is not a URL/, {
      since: mark,
    });
    const res = await request(`${gw.url}/ws/b/x`);
    assert.equal(res.status, 200, 'route b from the last good configuration still serves');
    assert.equal(gw.child.exitCode, null);
  });

  it('logs the YAML error of a refused reload once, on one line', async () => {
    const mark = gw.stdout().length;
    writeFileSync(file, 'routes:\n  a: { host: https://adb-1.1.azuredatabricks.net }\n  a: { host: https://adb-2.2.azuredatabricks.net }\n');
    gw.child.kill('SIGHUP');
    const [line] = await gw.waitForOutput('stdout', /.*the new configuration is invalid.*\n/, { since: mark });
    assert.match(line, /YAML syntax: Map keys must be unique at line 3, column 3"/);
    assert.equal(gw.stdout().slice(mark).split('Map keys must be unique').length - 1, 1, gw.stdout().slice(mark));
    assert.equal((await request(`${gw.url}/ws/b/x`)).status, 200);
  });
});
