import assert from 'node:assert/strict';
import { once } from 'node:events';
import http, { type IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { startTestGateway, usePatGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { within } from '../helpers/wait.js';

const PAT = 'dapi5555555555555555555555555555cccc';

/** Headers in the gateway's own namespace: read by it (key, control secret) or set by it (error). */
const GATEWAY_ONLY = {
  'X-Dbx-Gateway-Control': 'control-secret-from-a-client',
  'X-Dbx-Gateway-Key': 'dgw_client_key_never_forwarded',
  'X-Dbx-Gateway-Error': '1',
  'X-Dbx-Gateway-Anything-Later': 'x',
};

function assertNoGatewayHeaders(headers: IncomingHttpHeaders, rawHeaders: string[]): void {
  for (const name of Object.keys(headers)) assert.ok(!name.startsWith('x-dbx-gateway-'), `${name} reached the upstream`);
  for (const value of Object.values(GATEWAY_ONLY)) assert.ok(!rawHeaders.includes(value), `${value} reached the upstream`);
}

describe('gateway-only headers never reach the upstream', () => {
  const ctx = usePatGateway({ pat: PAT });

  it('drops a client-sent x-dbx-gateway-control (and every x-dbx-gateway-*) from a proxied request', async () => {
    const res = await request(`${ctx.gw.url}/ws/prod/api/2.0/clusters/list`, { headers: { ...GATEWAY_ONLY, 'x-kept': 'yes' } });
    assert.equal(res.status, 200);
    const seen = ctx.upstream.seen.at(-1)!;
    assert.equal(seen.headers['x-kept'], 'yes');
    assertNoGatewayHeaders(seen.headers, seen.rawHeaders);
  });

  it('drops them from a WebSocket upgrade', async () => {
    const seen: Array<{ headers: IncomingHttpHeaders; rawHeaders: string[] }> = [];
    const server = http.createServer();
    server.on('upgrade', (req, socket) => {
      seen.push({ headers: req.headers, rawHeaders: req.rawHeaders });
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const gw = await startTestGateway({ flags: { workspace: [`live=http://127.0.0.1:${port}`], credential: 'pat' }, env: { DATABRICKS_TOKEN: PAT } });
    try {
      const socket = net.connect(gw.port, '127.0.0.1');
      await once(socket, 'connect');
      const extra = Object.entries(GATEWAY_ONLY)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      socket.write(
        'GET /ws/live/ws/v1/stream HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Kept: yes\r\n${extra}\r\n`,
      );
      const [head] = (await within(once(socket, 'data'), { timeoutMs: 5_000, what: () => 'the 101 answer' })) as [Buffer];
      assert.match(head.toString(), /^HTTP\/1\.1 101/);
      socket.destroy();
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.headers['x-kept'], 'yes');
      assertNoGatewayHeaders(seen[0]!.headers, seen[0]!.rawHeaders);
    } finally {
      await gw.shutdown(100);
      server.closeAllConnections();
      server.close();
    }
  });
});
