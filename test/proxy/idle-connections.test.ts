import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { spawnGateway } from '../helpers/spawn-gateway.js';

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

describe('thousands of idle client connections', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
  it('hold bounded memory, and the gateway keeps answering', async (t) => {
    const limit = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim()) || 1024;
    // Both ends of every connection live on this machine: stay well inside the fd limit.
    const count = Math.min(3000, Math.floor(limit / 3));
    const gw = await spawnGateway(['--demo'], { HOME: '/nonexistent' });
    const sockets: net.Socket[] = [];
    try {
      await request(`${gw.url}/ws/demo/api/2.0/clusters/list`);
      const before = rssMiB(gw.child.pid!);
      const port = Number(new URL(gw.url).port);
      for (let i = 0; i < count; i += 200) {
        await Promise.all(
          Array.from(
            { length: Math.min(200, count - i) },
            (_, j) =>
              new Promise<void>((resolve, reject) => {
                // Spread over three loopback addresses, each under limits.maxConnectionsPerClient.
                const s = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + ((i + j) % 3)}` }, () => {
                  // Half the clients even start a request and stall (slowloris-style).
                  if ((i + j) % 2) s.write('GET /ws/demo/api/2.0/clusters/list HTTP/1.1\r\nHost: localhost\r\n');
                  resolve();
                });
                s.on('error', reject);
                sockets.push(s);
              }),
          ),
        );
      }
      await new Promise((r) => setTimeout(r, 500));
      const during = rssMiB(gw.child.pid!);
      const started = performance.now();
      const res = await request(`${gw.url}/ws/demo/api/2.0/clusters/list`);
      const ms = performance.now() - started;
      assert.equal(res.status, 200);
      assert.ok(ms < 2000, `a real request still got through quickly (${ms.toFixed(0)} ms)`);
      const perConnectionKiB = ((during - before) * 1024) / count;
      t.diagnostic(
        `${count} idle connections: RSS ${before.toFixed(1)} -> ${during.toFixed(1)} MiB (${perConnectionKiB.toFixed(1)} KiB each); a request took ${ms.toFixed(0)} ms`,
      );
      assert.ok(during - before < 64, `${count} idle connections grew RSS by ${(during - before).toFixed(1)} MiB (${perConnectionKiB.toFixed(1)} KiB each)`);
    } finally {
      for (const s of sockets) s.destroy();
      await gw.stop();
    }
  });
});
