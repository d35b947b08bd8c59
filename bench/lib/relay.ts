import { type AddressInfo, connect, createServer, type Socket } from 'node:net';

export interface Relay {
  port: number;
  close(): Promise<void>;
}

/**
 * A user-space TCP relay that delays every chunk by `delayMs` in each direction: a wide-area link
 * of 2 x delayMs round trip between a client and the upstream. The TCP handshake costs a round
 * trip on a real link, but the client's connect to the relay is local: so the client's first bytes
 * are held until one round trip after the connection opened, plus the one-way delay, which is
 * when they would arrive over the real link. Deliveries per direction never overtake each other.
 */
export async function startRelay(target: { host: string; port: number }, delayMs: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    const opened = Date.now();
    const pipe = (from: Socket, to: Socket, notBefore: number) => {
      let last = notBefore;
      const later = (fn: () => void) => {
        const at = Math.max(Date.now() + delayMs, last);
        last = at;
        setTimeout(fn, at - Date.now());
      };
      from.on('data', (chunk) => later(() => to.writable && to.write(chunk)));
      from.on('end', () => later(() => to.end()));
    };
    pipe(client, upstream, opened + 3 * delayMs);
    pipe(upstream, client, 0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
