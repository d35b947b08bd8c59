import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { BIN, childEnv } from '../helpers/cli.js';
import { streamRequest } from '../helpers/http.js';

const GIB = 1024 ** 3;
const CHUNK = Buffer.alloc(256 * 1024, 0x61);
/**
 * Flat memory: how much the gateway's peak may grow from a 32 MiB warm-up to the whole GiB. A
 * gateway that held the body would grow by about a GiB; one that streams grows by GC slack only.
 * The bound is on the growth, not the level: Node 24 idles ~30 MiB above Node 20 and its first
 * transfers lift the peak further whatever their size.
 */
const MAX_PEAK_GROWTH_MIB = 96;
const WARM_BYTES = 32 * 1024 ** 2;

/** Peak resident set of a process, from Linux's VmHWM. */
function peakRssMiB(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}

/** Writes `total` bytes honouring backpressure. */
function writeBytes(stream: NodeJS.WritableStream, total: number, done: () => void): void {
  let sent = 0;
  const pump = () => {
    while (sent < total) {
      sent += CHUNK.length;
      if (!stream.write(CHUNK)) {
        stream.once('drain', pump);
        return;
      }
    }
    done();
  };
  pump();
}

describe('1 GiB transfers through a gateway process', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
  let upstream: http.Server;
  let gateway: ReturnType<typeof spawn>;
  let url = '';
  /** VmHWM after the warm-up download. */
  let warmPeak = 0;

  before(async () => {
    upstream = http.createServer((req, res) => {
      if (req.method === 'GET') {
        const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('bytes') ?? GIB);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
        writeBytes(res, size, () => res.end());
        return;
      }
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        bytes += c.length;
      });
      req.on('end', () => res.end(JSON.stringify({ bytes })));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as AddressInfo).port;
    gateway = spawn(process.execPath, [BIN, '--port', '0', '--workspace', `big=http://127.0.0.1:${port}`, '--credential', 'pat'], {
      env: childEnv({ DATABRICKS_TOKEN: 'dapi22222222222222222222222222222222' }),
    });
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`gateway did not start: ${out}`)), 15_000);
      gateway.stdout?.on('data', (d) => {
        out += d;
        const m = /"url":"(http:\/\/[^"]+)"/.exec(out);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      gateway.once('exit', () => reject(new Error(out)));
    });
  });
  after(async () => {
    gateway.kill('SIGTERM');
    upstream.closeAllConnections();
    upstream.close();
  });

  const download = (bytes: number) =>
    new Promise<number>((resolve, reject) => {
      http
        .get(`${url}/ws/big/api/2.0/fs/files/big.bin?bytes=${bytes}`, { agent: false }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
          });
          res.on('end', () => resolve(n));
          res.on('error', reject);
        })
        .on('error', reject);
    });

  it('downloads 1 GiB in flat memory', async (t) => {
    assert.equal(await download(WARM_BYTES), WARM_BYTES);
    warmPeak = peakRssMiB(gateway.pid ?? 0);
    const started = process.hrtime.bigint();
    const received = await download(GIB);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const peak = peakRssMiB(gateway.pid ?? 0);
    t.diagnostic(`download: ${(GIB / 1024 ** 2 / seconds).toFixed(0)} MiB/s, gateway peak RSS ${peak.toFixed(0)} MiB`);
    assert.equal(received, GIB);
    assert.ok(peak - warmPeak < MAX_PEAK_GROWTH_MIB, `peak RSS grew from ${warmPeak.toFixed(0)} to ${peak.toFixed(0)} MiB`);
  });

  it('uploads 1 GiB in flat memory', async (t) => {
    const started = process.hrtime.bigint();
    const body = await streamRequest(
      `${url}/ws/big/api/2.0/fs/files/upload.bin`,
      { method: 'PUT', headers: { 'content-length': GIB, 'content-type': 'application/octet-stream' } },
      (req) => writeBytes(req, GIB, () => req.end()),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const peak = peakRssMiB(gateway.pid ?? 0);
    t.diagnostic(`upload: ${(GIB / 1024 ** 2 / seconds).toFixed(0)} MiB/s, gateway peak RSS ${peak.toFixed(0)} MiB`);
    assert.equal((JSON.parse(body) as { bytes: number }).bytes, GIB);
    assert.ok(peak - warmPeak < MAX_PEAK_GROWTH_MIB, `peak RSS grew from ${warmPeak.toFixed(0)} to ${peak.toFixed(0)} MiB`);
  });
});
