import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TEST_PAT } from '../helpers/gateway.js';
import { ENDPOINT, type FakeWorkspace, startFakeWorkspace } from '../helpers/lakebase.js';
import { freePort } from '../helpers/ports.js';
import { ident, POSTGRES_SKIP, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { type SpawnedGateway, spawnGateway } from '../helpers/spawn-gateway.js';
import { testPki } from '../helpers/tls.js';

// A large COPY streams through the Lakebase door: the gateway holds chunks, never the result.

const WARM_MIB = 32;
const COPY_MIB = 256;
/**
 * How much the peak may grow from a warm-up COPY to one 8x larger. A relay that held the result
 * would grow by about the difference (224 MiB); one that streams grows by GC slack only (Node 24
 * starts ~30 MiB higher than Node 20, so the bound is on the growth, not the level).
 */
const MAX_PEAK_GROWTH_MIB = 64;

function peakRssMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

describe('Lakebase door: memory', { skip: POSTGRES_SKIP || (process.platform !== 'linux' ? 'reads /proc' : false) }, () => {
  let server: TestPostgres;
  let workspace: FakeWorkspace;
  let gw: SpawnedGateway;
  let port: number;

  before(async () => {
    server = await startPostgres();
    await server.query(`CREATE ROLE ${ident('dana@contoso.com')} LOGIN`);
    workspace = await startFakeWorkspace(server);
    port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-pg-mem-'));
    const config = join(dir, 'dbx-gateway.yaml');
    writeFileSync(
      config,
      `routes:\n  prod:\n    host: ${workspace.upstream.url.origin}\n    caFile: ${testPki().caFile}\n    credential: { type: pat, token: ${TEST_PAT} }\n    postgres: { port: ${port}, endpoint: ${ENDPOINT}, database: postgres }\n`,
    );
    gw = await spawnGateway(['--config', config, '--no-profiles'], { HOME: dir });
  });

  after(async () => {
    await gw?.stop();
    await workspace?.upstream.close();
    await server?.stop();
  });

  it(`streams a ${COPY_MIB} MiB COPY TO STDOUT with flat memory`, async () => {
    const copy = (mib: number) =>
      new Promise<string>((resolve, reject) =>
        execFile(
          join(server.bin, 'psql'),
          [
            '-X',
            '-q',
            '-o',
            '/dev/null',
            '-c',
            `COPY (SELECT repeat('x', 1024) FROM generate_series(1, ${Math.round((mib * 2 ** 20) / 1025)})) TO STDOUT`,
            `host=127.0.0.1 port=${port} user=x sslmode=disable`,
          ],
          { env: { PATH: '/usr/bin:/bin' }, timeout: 120_000 },
          (err, stdout, stderr) => (err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(stdout)),
        ),
      );
    assert.equal(await copy(WARM_MIB), '');
    const warm = peakRssMiB(gw.child.pid ?? 0);
    assert.equal(await copy(COPY_MIB), '');
    const peak = peakRssMiB(gw.child.pid ?? 0);
    assert.ok(
      peak - warm < MAX_PEAK_GROWTH_MIB,
      `peak RSS grew from ${warm.toFixed(0)} to ${peak.toFixed(0)} MiB between a ${WARM_MIB} and a ${COPY_MIB} MiB COPY`,
    );
  });
});
