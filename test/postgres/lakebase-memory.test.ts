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

const COPY_MIB = 256;
/** Idle RSS is ~60-80 MiB; the whole COPY sitting in the gateway would be far above this. */
const MAX_PEAK_RSS_MIB = 160;

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
    const rows = Math.round((COPY_MIB * 2 ** 20) / 1025);
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        join(server.bin, 'psql'),
        [
          '-X',
          '-q',
          '-o',
          '/dev/null',
          '-c',
          `COPY (SELECT repeat('x', 1024) FROM generate_series(1, ${rows})) TO STDOUT`,
          '-c',
          'SELECT 42',
          `host=127.0.0.1 port=${port} user=x sslmode=disable`,
        ],
        { env: { PATH: '/usr/bin:/bin' }, timeout: 120_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(stdout)),
      ),
    );
    assert.equal(out, '');
    const peak = peakRssMiB(gw.child.pid ?? 0);
    assert.ok(peak < MAX_PEAK_RSS_MIB, `peak RSS ${peak.toFixed(0)} MiB during a ${COPY_MIB} MiB COPY`);
  });
});
