import type { Duplex } from 'node:stream';

/**
 * Follows the server's stream message by message (Byte1 type, Int32 length) without changing or
 * holding a byte, so the gateway knows where a message ends (a FATAL on shutdown must not land in
 * the middle of a DataRow) and learns the session's BackendKeyData (process id and secret key,
 * which a CancelRequest names). Protocol 3.2 keys are up to 256 bytes (PostgreSQL 18 docs, 55.7).
 */
export class ServerMessageTracker {
  #header = Buffer.alloc(5);
  #headerBytes = 0;
  #remaining = 0;
  #type = 0;
  #key: Buffer[] = [];
  #keyBytes = 0;

  constructor(private readonly onBackendKey: (key: Buffer) => void) {}

  /** True between messages. */
  get atBoundary(): boolean {
    return this.#headerBytes === 0 && this.#remaining === 0;
  }

  /**
   * Follows `chunk`; with `stopAtBoundary`, stops at the first message end at or after the start
   * and returns how many bytes that is (the whole chunk when no message ends in it).
   */
  feed(chunk: Buffer, stopAtBoundary = false): number {
    let offset = 0;
    while (offset < chunk.length) {
      if (stopAtBoundary && this.atBoundary) return offset;
      if (this.#remaining === 0) {
        const take = Math.min(5 - this.#headerBytes, chunk.length - offset);
        chunk.copy(this.#header, this.#headerBytes, offset, offset + take);
        this.#headerBytes += take;
        offset += take;
        if (this.#headerBytes < 5) continue;
        this.#headerBytes = 0;
        this.#type = this.#header[0] ?? 0;
        // A length below 4 is a broken server; it is relayed all the same (the client will say so).
        this.#remaining = Math.max(this.#header.readInt32BE(1) - 4, 0);
        this.#keyBytes = 0;
        this.#key = [];
        continue;
      }
      const take = Math.min(this.#remaining, chunk.length - offset);
      if (this.#type === 0x4b /* 'K' BackendKeyData */ && this.#keyBytes + take <= 4 + 256) {
        this.#key.push(chunk.subarray(offset, offset + take));
        this.#keyBytes += take;
      }
      offset += take;
      this.#remaining -= take;
      if (this.#remaining === 0 && this.#type === 0x4b && this.#keyBytes >= 8) this.onBackendKey(Buffer.concat(this.#key));
    }
    return offset;
  }
}

export interface RelayCounts {
  fromClient: number;
  fromServer: number;
}

/**
 * Every byte both ways, as it arrives, with backpressure: a side that cannot take more pauses the
 * other (nothing is buffered beyond the sockets' own high-water marks). `onServerChunk` sees each
 * server chunk before it is written and may shorten it (shutdown at a message boundary).
 */
export function relayBoth(
  client: Duplex,
  server: Duplex,
  counts: RelayCounts,
  onServerChunk: (chunk: Buffer) => Buffer,
  onEnd: (why: 'client' | 'server' | 'error', err?: Error) => void,
): void {
  let ended = false;
  const end = (why: 'client' | 'server' | 'error', err?: Error) => {
    if (ended) return;
    ended = true;
    onEnd(why, err);
  };
  client.on('data', (chunk: Buffer) => {
    counts.fromClient += chunk.length;
    if (!server.write(chunk)) client.pause();
  });
  server.on('drain', () => client.resume());
  server.on('data', (chunk: Buffer) => {
    const out = onServerChunk(chunk);
    counts.fromServer += out.length;
    if (out.length > 0 && !client.write(out)) server.pause();
  });
  client.on('drain', () => server.resume());
  // A half-close is passed on: psql ends with Terminate and a FIN; the server then closes too.
  client.on('end', () => server.end());
  server.on('end', () => client.end());
  client.on('error', (err) => {
    server.destroy();
    end('error', err);
  });
  server.on('error', (err) => {
    client.destroy();
    end('error', err);
  });
  client.on('close', () => {
    server.destroy();
    end('client');
  });
  server.on('close', () => {
    // What the server sent last (an ErrorResponse) is flushed before the client's socket ends.
    client.end();
    end('server');
  });
}
