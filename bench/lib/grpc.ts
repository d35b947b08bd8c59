/**
 * Spark Connect (gRPC) throughput: the same calls direct (grpc-js over TLS to the fake Spark
 * Connect upstream) and through the gateway's h2c Spark Connect port. A server stream of Arrow-sized
 * messages gives MB/s; unary AnalyzePlan calls at a fixed concurrency give calls/s.
 */
import * as grpc from '@grpc/grpc-js';
import { analyze, readAll, type SparkClient, SparkConnectService, sparkClient } from '../../test/spark/fixtures/spark-grpc.js';

export interface GrpcFigures {
  streamMBps: number;
  messagesPerSecond: number;
  unaryPerSecond: number;
}

export function directClient(port: number, ca: string): SparkClient {
  // The test certificate names localhost too: TLS server names are host names (RFC 6066), never IPs.
  return new SparkConnectService(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(ca)), {
    'grpc.ssl_target_name_override': 'localhost',
  }) as unknown as SparkClient;
}

export function gatewayClient(port: number): SparkClient {
  return sparkClient(port);
}

/** One measured stream of `count` messages of `size` bytes, then unary calls for `seconds` at `concurrency`. */
export async function measureGrpc(client: SparkClient, sizes: { count: number; size: number; seconds: number; concurrency: number }): Promise<GrpcFigures> {
  await analyze(client, { sessionId: 'warm-up' });
  const started = performance.now();
  const messages = await readAll(client.ExecutePlan({ sessionId: 'bench', count: sizes.count, size: sizes.size }));
  const streamSeconds = (performance.now() - started) / 1000;
  if (messages.length !== sizes.count) throw new Error(`gRPC stream: ${messages.length} of ${sizes.count} messages arrived`);
  let calls = 0;
  const until = performance.now() + sizes.seconds * 1000;
  const unaryStarted = performance.now();
  await Promise.all(
    Array.from({ length: sizes.concurrency }, async () => {
      while (performance.now() < until) {
        await analyze(client, { sessionId: 'bench' });
        calls++;
      }
    }),
  );
  const unarySeconds = (performance.now() - unaryStarted) / 1000;
  return {
    streamMBps: (sizes.count * sizes.size) / 1e6 / streamSeconds,
    messagesPerSecond: sizes.count / streamSeconds,
    unaryPerSecond: calls / unarySeconds,
  };
}
