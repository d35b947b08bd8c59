/**
 * A 128 MiB Spark Connect result through the gateway, read slowly at first: HTTP/2 flow control
 * must hold the upstream back while the client does not read, so the gateway's memory stays flat.
 * The gateway runs in a process of its own (fixtures/gateway-process.ts), so its RSS is its own
 * and not the test's (the grpc-js client and upstream live here).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { testPki } from '../helpers/tls.js';
import { type FakeSpark, readAll, type SparkClient, sparkClient, startFakeSpark } from './fixtures/spark-grpc.js';

const MiB = 1 << 20;
const MESSAGES = 512;
const SIZE = 256 * 1024; // 512 x 256 KiB = 128 MiB
const PAUSE_MS = 1_500;

const pki = testPki();
let upstream: FakeSpark;
let gateway: ChildProcess;
let client: SparkClient;

/** One IPC exchange with the gateway process. */
async function ask<T>(type: string): Promise<T> {
  const reply = once(gateway, 'message') as Promise<[T]>;
  gateway.send({ type });
  return (await reply)[0];
}

before(async () => {
  upstream = await startFakeSpark(pki);
  const script = fileURLToPath(new URL('./fixtures/gateway-process.ts', import.meta.url));
  gateway = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', script, upstream.url.href, pki.caFile], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const [{ port }] = (await once(gateway, 'message')) as [{ port: number }];
  client = sparkClient(port, { 'grpc.max_receive_message_length': 8 * MiB });
});

after(async () => {
  client?.close();
  if (gateway && gateway.exitCode === null) {
    const exited = once(gateway, 'exit');
    gateway.disconnect();
    await exited;
  }
  await upstream?.close();
});

test('128 MiB read slowly at first: the upstream is held back and the gateway RSS stays flat', async () => {
  // Warm-up: TLS, the upstream session, buffers; then the baseline, after a GC.
  await readAll(client.ExecutePlan({ mode: 'stream', count: 16, size: SIZE }));
  const { rss: baseline } = await ask<{ rss: number }>('mark');
  const writtenBefore = upstream.written();

  const call = client.ExecutePlan({ mode: 'stream', count: MESSAGES, size: SIZE });
  let messages = 0;
  let bytes = 0;
  const ended = new Promise<void>((resolve, reject) => {
    call.on('data', (m: { arrowBatch: Buffer }) => {
      messages++;
      bytes += m.arrowBatch.length;
    });
    call.on('error', reject);
    call.on('end', resolve);
  });
  await new Promise((resolve) => call.once('data', resolve));
  call.pause();
  // The deliberate slow read: nothing is read for PAUSE_MS while the upstream could send it all.
  await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
  const heldBack = upstream.written() - writtenBefore;
  const duringPause = await ask<{ peak: number; rss: number }>('peak');
  call.resume();
  await ended;
  const overall = await ask<{ peak: number; rss: number }>('peak');

  assert.equal(messages, MESSAGES);
  assert.equal(bytes, MESSAGES * SIZE);
  const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  const summary = `upstream wrote ${heldBack}/${MESSAGES} messages during the pause; gateway RSS growth: ${mib(duringPause.peak - baseline)} during it, ${mib(overall.peak - baseline)} peak overall`;
  process.stdout.write(`# ${summary}\n`);
  // Without backpressure the upstream would have written all 512 (128 MiB) during the pause.
  assert.ok(heldBack < 96, summary);
  assert.ok(overall.peak - baseline < 64 * MiB, summary);
});
