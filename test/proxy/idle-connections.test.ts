import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { spawnGateway } from '../helpers/spawn-gateway.js';
import { waitFor } from '../helpers/wait.js';

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

/**
 * The kernel's view of the listener's side of `port` (/proc/net/tcp): connections established, and
 * what the process has not taken yet (connections waiting in the accept queue, request bytes unread).
 */
function serverSide(port: number): { established: number; pending: number } {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let established = 0;
  let pending = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const [, local, , state, queues] = line.trim().split(/\s+/);
      if (!local?.endsWith(hex)) continue;
      // rx_queue: the accept backlog of a LISTEN (0A) socket, the unread bytes of an ESTABLISHED (01) one.
      pending += Number.parseInt(queues?.split(':')[1] ?? '0', 16);
      if (state === '01') established++;
    }
  }
  return { established, pending };
}

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
      // Measured once the gateway holds them all: every connection accepted, every byte sent read.
      await waitFor(
        () => {
          const { established, pending } = serverSide(port);
          return established >= count && pending === 0;
        },
        { what: () => `the gateway to take up ${count} connections (${JSON.stringify(serverSide(port))})`, timeoutMs: 10_000, intervalMs: 25 },
      );
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
