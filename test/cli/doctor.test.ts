import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, NO_TOOLS_PATH } from '../helpers/cli.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { freePort } from '../helpers/ports.js';
import { testPki } from '../helpers/tls.js';

const PAT = 'dapi3434343434343434343434343434abab';

function doctor(config: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-doctor-'));
  writeFileSync(join(dir, 'dbx-gateway.yaml'), config);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'doctor', '--config', join(dir, 'dbx-gateway.yaml'), '--no-profiles'],
      { encoding: 'utf8', env: { PATH: NO_TOOLS_PATH, HOME: dir }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

/** A workspace whose SCIM Me names the token's owner, with a Date header `skewS` seconds off. */
function workspace(skewS: number, acceptToken = PAT): Promise<FakeUpstream> {
  return startFakeUpstream((req, res) => {
    req.resume();
    res.setHeader('date', new Date(Date.now() + skewS * 1000).toUTCString());
    if (req.headers.authorization !== `Bearer ${acceptToken}`) {
      res.writeHead(401, { 'content-type': 'application/json' });
      return res.end('{"error_code":"401","message":"Invalid access token."}');
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ userName: 'dev.user@example.com', displayName: 'Dev User', id: '123' }));
  });
}

describe('dbx-gateway doctor', () => {
  let good: FakeUpstream;
  let skewed: FakeUpstream;
  let refusing: FakeUpstream;
  const ca = testPki().caFile;
  const route = (name: string, upstream: FakeUpstream | string) =>
    `  ${name}: { host: ${typeof upstream === 'string' ? upstream : upstream.url.origin}, caFile: ${ca}, credential: { type: pat, token: ${PAT} } }\n`;

  before(async () => {
    good = await workspace(0);
    skewed = await workspace(600);
    refusing = await workspace(0, 'another-token');
  });
  after(async () => {
    await Promise.all([good.close(), skewed.close(), refusing.close()]);
  });

  it('passes a healthy route: token, upstream reachable, who the token belongs to, clock in sync', async () => {
    const res = await doctor(`routes:\n${route('prod', good)}`);
    assert.equal(res.status, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /^PASS {2}\/ws\/prod {2}->/m);
    assert.match(res.stdout, /token: +ok \(does not expire\)/);
    assert.match(res.stdout, /upstream: +reachable \(GET \/api\/2\.0\/preview\/scim\/v2\/Me: 200 in \d+ ms\)/);
    assert.match(res.stdout, /identity: +dev\.user@example\.com \(Dev User\)/);
    assert.match(res.stdout, /clock: +in sync/);
    assert.match(res.stdout, /\nthe route is ok\n$/);
    assert.ok(!res.stdout.includes(PAT));
  });

  it('fails on clock skew, a refused token and an unreachable upstream, and says what each means', async () => {
    // A port that was free a moment ago, not a well-known one someone may serve on.
    const down = `https://127.0.0.1:${await freePort()}`;
    const res = await doctor(`routes:\n${route('prod', good)}${route('skewed', skewed)}${route('refused', refusing)}${route('down', down)}`);
    assert.equal(res.status, 1);
    assert.match(res.stdout, /^FAIL {2}\/ws\/skewed[\s\S]*?clock: +FAILED: this machine is -?\d+ s off the upstream's clock.*sync the clock/m);
    assert.match(res.stdout, /^FAIL {2}\/ws\/refused[\s\S]*?upstream: +FAILED: reachable \(GET .*: 401 in \d+ ms\); the token was refused/m);
    assert.match(res.stdout, /^FAIL {2}\/ws\/down[\s\S]*?upstream: +FAILED: unreachable: .*ECONNREFUSED/m);
    assert.match(res.stdout, /3 of 4 routes failed/);
  });
});
