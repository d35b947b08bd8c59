import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { bypassesProxy, parseProxyUrl, resolveProxy, withoutCredentials } from '../../src/proxy/egress-proxy.js';
import { namedPki, startConnectProxy } from '../helpers/connect-proxy.js';
import { startYamlGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';

const PAT = 'dapi5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e';
/** A name that does not resolve: the proxy maps it to 127.0.0.1; a direct attempt fails in DNS. */
const UPSTREAM_HOST = 'adb-test.example';
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const u = (text: string) => new URL(text);

describe('egress proxy: NO_PROXY matching (bypassesProxy)', () => {
  it('a host name matches itself and its subdomains, but not a name that merely ends with the same letters', () => {
    assert.equal(bypassesProxy(u('https://example.com'), 'example.com'), true);
    assert.equal(bypassesProxy(u('https://adb-1.azuredatabricks.net'), 'azuredatabricks.net'), true);
    assert.equal(bypassesProxy(u('https://a.b.example.com'), 'example.com'), true);
    assert.equal(bypassesProxy(u('https://badexample.com'), 'example.com'), false);
    assert.equal(bypassesProxy(u('https://example.com.evil.net'), 'example.com'), false);
  });

  it('matches case-insensitively and reads comma- and space-separated lists', () => {
    assert.equal(bypassesProxy(u('https://Adb-1.Example.COM'), 'EXAMPLE.com'), true);
    assert.equal(bypassesProxy(u('https://two.net'), ' one.org , two.net'), true);
    assert.equal(bypassesProxy(u('https://three.io'), 'one.org two.net three.io'), true);
    assert.equal(bypassesProxy(u('https://four.io'), 'one.org, two.net three.io'), false);
  });

  it('a leading "." or "*." entry matches every subdomain of the suffix', () => {
    assert.equal(bypassesProxy(u('https://adb-1.azuredatabricks.net'), '.azuredatabricks.net'), true);
    assert.equal(bypassesProxy(u('https://adb-1.azuredatabricks.net'), '*.azuredatabricks.net'), true);
    assert.equal(bypassesProxy(u('https://x.y.corp.internal'), '*.corp.internal'), true);
    assert.equal(bypassesProxy(u('https://azuredatabricks.net.evil.io'), '.azuredatabricks.net'), false);
    assert.equal(bypassesProxy(u('https://notazuredatabricks.net'), '*.azuredatabricks.net'), false);
  });

  it('a host:port entry matches only that port, with 443 the default for https and 80 for http', () => {
    assert.equal(bypassesProxy(u('https://example.com:8443'), 'example.com:8443'), true);
    assert.equal(bypassesProxy(u('https://example.com'), 'example.com:8443'), false);
    assert.equal(bypassesProxy(u('https://example.com:8443'), 'example.com:443'), false);
    assert.equal(bypassesProxy(u('https://example.com'), 'example.com:443'), true);
    assert.equal(bypassesProxy(u('http://example.com'), 'example.com:80'), true);
    assert.equal(bypassesProxy(u('http://example.com'), 'example.com:443'), false);
  });

  it('an IPv4 address matches that address only', () => {
    assert.equal(bypassesProxy(u('https://10.1.2.3'), '10.1.2.3'), true);
    assert.equal(bypassesProxy(u('https://10.1.2.30'), '10.1.2.3'), false);
    assert.equal(bypassesProxy(u('https://10.1.2.3:8443'), '10.1.2.3:8443'), true);
    assert.equal(bypassesProxy(u('https://10.1.2.3:8443'), '10.1.2.3:443'), false);
  });

  it('an IPv6 address matches bare (::1) or bracketed with a port ([2001:db8::1]:443)', () => {
    assert.equal(bypassesProxy(u('https://[::1]'), '::1'), true);
    assert.equal(bypassesProxy(u('https://[::2]'), '::1'), false);
    assert.equal(bypassesProxy(u('https://[2001:db8::1]'), '2001:db8::1'), true);
    assert.equal(bypassesProxy(u('https://[2001:db8::1]'), '[2001:db8::1]:443'), true);
    assert.equal(bypassesProxy(u('https://[2001:db8::1]:8443'), '[2001:db8::1]:443'), false);
    assert.equal(bypassesProxy(u('https://[2001:db8::1]:8443'), '[2001:db8::1]'), true);
    assert.equal(bypassesProxy(u('https://[2001:db8::2]'), '[2001:db8::1]:443'), false);
  });

  it('a CIDR range matches addresses inside it (IPv4 and IPv6), never host names or the other family', () => {
    assert.equal(bypassesProxy(u('https://10.200.3.4'), '10.0.0.0/8'), true);
    assert.equal(bypassesProxy(u('https://11.0.0.1'), '10.0.0.0/8'), false);
    assert.equal(bypassesProxy(u('https://192.168.7.9'), '192.168.0.0/16'), true);
    assert.equal(bypassesProxy(u('https://10.example.com'), '10.0.0.0/8'), false);
    assert.equal(bypassesProxy(u('https://[2001:db8:abcd::5]'), '2001:db8::/32'), true);
    assert.equal(bypassesProxy(u('https://[2001:db9::1]'), '2001:db8::/32'), false);
    assert.equal(bypassesProxy(u('https://10.1.1.1'), '2001:db8::/32'), false);
    assert.equal(bypassesProxy(u('https://10.1.1.1'), '10.0.0.0/notbits'), false);
  });

  it('"*" bypasses the proxy for every host, and an empty NO_PROXY for none', () => {
    assert.equal(bypassesProxy(u('https://adb-1.azuredatabricks.net'), '*'), true);
    assert.equal(bypassesProxy(u('https://10.0.0.1'), 'other.net,*'), true);
    assert.equal(bypassesProxy(u('https://adb-1.azuredatabricks.net'), ''), false);
    assert.equal(bypassesProxy(u('https://adb-1.azuredatabricks.net'), ' , '), false);
  });
});

describe('egress proxy: which proxy a target uses (resolveProxy)', () => {
  const target = u('https://adb-1.7.azuredatabricks.net');

  it('uses HTTPS_PROXY for https targets and HTTP_PROXY for http targets', () => {
    const env = { HTTPS_PROXY: 'http://secure-proxy:3128', HTTP_PROXY: 'http://plain-proxy:8080' };
    assert.equal(resolveProxy(target, env)?.display, 'http://secure-proxy:3128');
    assert.equal(resolveProxy(u('http://adb-1.7.azuredatabricks.net'), env)?.display, 'http://plain-proxy:8080');
    assert.equal(resolveProxy(target, { HTTP_PROXY: 'http://plain-proxy:8080' }), undefined, 'HTTP_PROXY is not used for https');
    assert.equal(resolveProxy(u('http://adb-1.7.azuredatabricks.net'), { HTTPS_PROXY: 'http://secure-proxy:3128' }), undefined);
  });

  it('prefers the lower-case variables (https_proxy, http_proxy, no_proxy) over the upper-case ones', () => {
    assert.equal(resolveProxy(target, { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:2' })?.display, 'http://lower:1');
    assert.equal(
      resolveProxy(u('http://adb-1.7.azuredatabricks.net'), { http_proxy: 'http://lower:1', HTTP_PROXY: 'http://upper:2' })?.display,
      'http://lower:1',
    );
    assert.equal(resolveProxy(target, { HTTPS_PROXY: 'http://upper:2' })?.display, 'http://upper:2');
    // no_proxy (not matching) wins over NO_PROXY (matching): proxied.
    assert.equal(resolveProxy(target, { HTTPS_PROXY: 'http://p:1', no_proxy: 'other.net', NO_PROXY: 'azuredatabricks.net' })?.display, 'http://p:1');
    assert.equal(resolveProxy(target, { HTTPS_PROXY: 'http://p:1', NO_PROXY: 'azuredatabricks.net' }), undefined);
  });

  it('uses no proxy when none is configured, and honours NO_PROXY', () => {
    assert.equal(resolveProxy(target, {}), undefined);
    assert.equal(resolveProxy(target, { HTTPS_PROXY: 'http://p:1', NO_PROXY: '.azuredatabricks.net' }), undefined);
    assert.equal(resolveProxy(target, { HTTPS_PROXY: 'http://p:1', NO_PROXY: 'other.net' })?.display, 'http://p:1');
  });

  it('never proxies loopback hosts or the managed-identity endpoint 169.254.169.254, even with a route proxy', () => {
    const env = { HTTPS_PROXY: 'http://p:1', HTTP_PROXY: 'http://p:1' };
    for (const host of [
      'https://127.0.0.1:8443',
      'https://127.5.6.7',
      'https://localhost:9000',
      'https://[::1]:8443',
      'http://127.0.0.1',
      'http://169.254.169.254',
      'https://169.254.169.254',
    ]) {
      assert.equal(resolveProxy(u(host), env), undefined, host);
      assert.equal(resolveProxy(u(host), {}, 'http://route-proxy:3128'), undefined, `${host} with a route proxy`);
    }
    // The same env does proxy a neighbouring address: the exemption is specific.
    assert.equal(resolveProxy(u('http://169.254.169.253'), env)?.display, 'http://p:1');
  });

  it('a route proxy "none" wins over HTTPS_PROXY, and a route proxy URL wins over HTTPS_PROXY and NO_PROXY', () => {
    const env = { HTTPS_PROXY: 'http://env-proxy:3128', NO_PROXY: 'azuredatabricks.net' };
    assert.equal(resolveProxy(target, { HTTPS_PROXY: 'http://env-proxy:3128' }, 'none'), undefined);
    assert.equal(resolveProxy(target, { HTTPS_PROXY: 'http://env-proxy:3128' }, 'http://route-proxy:8080')?.display, 'http://route-proxy:8080');
    assert.equal(resolveProxy(target, env, 'http://route-proxy:8080')?.display, 'http://route-proxy:8080');
    assert.equal(resolveProxy(target, {}, 'http://u:p@route-proxy:8080')?.authorization, basic('u', 'p'));
  });
});

describe('egress proxy: proxy URLs (parseProxyUrl, withoutCredentials)', () => {
  it('percent-decodes the credentials into Basic and displays the proxy without them', () => {
    const proxy = parseProxyUrl('http://us%40er:p%3Ass@proxy:3128');
    assert.equal(proxy.authorization, `Basic ${Buffer.from('us@er:p:ss').toString('base64')}`);
    assert.equal(proxy.display, 'http://proxy:3128');
    assert.equal(proxy.url.username, '');
    assert.equal(proxy.url.password, '');
    assert.equal(proxy.url.href, 'http://proxy:3128/');
  });

  it('has no authorization without userinfo, and a user alone gives "user:"', () => {
    assert.equal(parseProxyUrl('http://proxy.corp:3128').authorization, undefined);
    assert.equal(parseProxyUrl('http://alice@proxy.corp:3128').authorization, basic('alice', ''));
  });

  it('reads a bare host:port as http:// and accepts https:// proxies', () => {
    assert.equal(parseProxyUrl('proxy.corp:3128').display, 'http://proxy.corp:3128');
    assert.equal(parseProxyUrl('https://proxy.corp:8443').display, 'https://proxy.corp:8443');
    assert.equal(parseProxyUrl('http://proxy.corp').display, 'http://proxy.corp');
  });

  it('refuses other schemes without quoting the credentials', () => {
    assert.throws(
      () => parseProxyUrl('socks5://bob:hunter2@proxy:1080'),
      (err: Error) => {
        assert.match(err.message, /only http:\/\/ and https:\/\/ proxies are supported/);
        assert.doesNotMatch(err.message, /hunter2|bob/);
        return true;
      },
    );
  });

  it('withoutCredentials strips userinfo from every URL in a message', () => {
    assert.equal(withoutCredentials('via http://u:p%21@proxy:3128/x and https://a@b.net'), 'via http://proxy:3128/x and https://b.net');
    assert.equal(withoutCredentials('no url here'), 'no url here');
  });
});

// --------------------------------------------------------------------------------------------
// Integration: a real gateway, a real CONNECT proxy, and a fake upstream named adb-test.example.

interface SeenUpstream {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  upgrade: boolean;
}

interface NamedUpstream {
  port: number;
  origin: string;
  seen: SeenUpstream[];
  close(): Promise<void>;
}

/**
 * An HTTPS fake workspace on 127.0.0.1 with a certificate for adb-test.example (its own CA):
 * JSON echo of what it got, and WebSocket upgrades with a real handshake, then a byte echo.
 */
async function startNamedUpstream(): Promise<NamedUpstream> {
  const pki = namedPki(UPSTREAM_HOST);
  const seen: SeenUpstream[] = [];
  const upgraded = new Set<net.Socket>();
  const server: Server = createHttpsServer({ key: pki.key, cert: pki.cert }, (req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, upgrade: false });
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ url: req.url, host: req.headers.host, authorization: req.headers.authorization ?? null });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.on('upgrade', (req, socket: net.Socket) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, upgrade: true });
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    socket.on('error', () => socket.destroy());
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const accept = createHash('sha1')
      .update(key + WS_GUID)
      .digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('end', () => socket.end());
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    origin: `https://${UPSTREAM_HOST}:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of upgraded) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A gateway with one PAT route "corp" to https://adb-test.example:PORT, trusting that name's CA. */
function corpGateway(upstream: NamedUpstream, options: { env?: NodeJS.ProcessEnv; routeProxy?: string } = {}): Promise<TestGateway> {
  const proxyLine = options.routeProxy !== undefined ? `    proxy: "${options.routeProxy}"\n` : '';
  return startYamlGateway(`routes:\n  corp:\n    host: ${upstream.origin}\n    credential: pat\n${proxyLine}`, {
    env: { DATABRICKS_TOKEN: PAT, ...options.env },
    configure: (config) => {
      for (const r of config.routes) r.caFile = namedPki(UPSTREAM_HOST).caFile;
    },
  });
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Reads from `socket` until the HTTP head (through the blank line) has arrived; returns it and any bytes after it. */
async function readHead(socket: net.Socket): Promise<{ head: string; rest: Buffer }> {
  let buf: Buffer = Buffer.alloc(0);
  for (;;) {
    const end = buf.indexOf('\r\n\r\n');
    if (end >= 0) return { head: buf.subarray(0, end).toString('latin1'), rest: buf.subarray(end + 4) };
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    buf = Buffer.concat([buf, chunk]);
  }
}

/** Reads until `bytes` bytes have arrived (starting with `initial`). */
async function readBytes(socket: net.Socket, bytes: number, initial: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  let buf = initial;
  while (buf.length < bytes) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    buf = Buffer.concat([buf, chunk]);
  }
  return buf;
}

/** Everything the socket sends until it closes (a refused upgrade). */
async function readToClose(socket: net.Socket): Promise<string> {
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  await once(socket, 'close');
  return text;
}

function sendUpgrade(gwPort: number, key: string): Promise<net.Socket> {
  const socket = net.connect(gwPort, '127.0.0.1');
  socket.on('error', () => socket.destroy());
  return once(socket, 'connect').then(() => {
    socket.write(
      'GET /ws/corp/ws/v1/stream?x=1 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    return socket;
  });
}

type ErrorBody = { error_code: string; message: string };

describe('egress proxy: the gateway through a real CONNECT proxy', () => {
  let upstream: NamedUpstream;

  before(async () => {
    upstream = await startNamedUpstream();
  });
  after(async () => {
    await upstream.close();
  });

  it('sends requests through the HTTPS_PROXY tunnel with the proxy Basic credentials, the token reaching only the upstream inside TLS', async () => {
    const proxy = await startConnectProxy({ user: 'user', password: 's3cret!' });
    const before = upstream.seen.length;
    const gw = await corpGateway(upstream, { env: { HTTPS_PROXY: `http://user:s3cret%21@127.0.0.1:${proxy.port}` } });
    try {
      const res = await request(`${gw.url}/ws/corp/api/2.0/clusters/list?limit=5`);
      assert.equal(res.status, 200, res.text);
      const body = res.json<{ url: string; host: string; authorization: string }>();
      assert.equal(body.url, '/api/2.0/clusters/list?limit=5');
      assert.equal(body.authorization, `Bearer ${PAT}`);

      const seen = upstream.seen.slice(before);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.headers.host, `${UPSTREAM_HOST}:${upstream.port}`);
      assert.equal(seen[0]!.headers.authorization, `Bearer ${PAT}`);
      assert.equal(seen[0]!.headers['proxy-authorization'], undefined, 'the proxy credentials stay with the proxy');

      assert.equal(proxy.connects.length, 1);
      const connect = proxy.connects[0]!;
      assert.equal(connect.target, `${UPSTREAM_HOST}:${upstream.port}`);
      assert.equal(connect.status, 200);
      assert.equal(connect.proxyAuthorization, basic('user', 's3cret!'));
      const decoded = Buffer.from(connect.proxyAuthorization!.replace(/^Basic /, ''), 'base64').toString();
      assert.equal(decoded, 'user:s3cret!');
      assert.equal(proxy.tunnels(), 1);
      assert.equal(proxy.plainRequests.length, 0, 'no plain (absolute-URI) request was sent to the proxy');

      // What the proxy relayed is TLS (handshake record first), never the HTTP request in clear.
      const relayed = proxy.relayed();
      assert.ok(relayed.length > 0, 'the proxy relayed the exchange');
      assert.equal(relayed[0], 0x16, 'the first relayed byte opens a TLS handshake record');
      const clear = relayed.toString('latin1');
      assert.ok(clear.includes(UPSTREAM_HOST), 'the SNI (in clear in the ClientHello) names the route host');
      assert.doesNotMatch(clear, /Bearer/i);
      assert.ok(!clear.includes(PAT), 'the token never crosses the proxy in clear');
      assert.ok(!clear.includes('/api/2.0/clusters/list'), 'the request path never crosses the proxy in clear');

      // The password is not logged either.
      assert.ok(!gw.logText().includes('s3cret'), 'the proxy password is not in the log');
    } finally {
      await gw.shutdown(100);
      await proxy.close();
    }
  });

  it('tunnels a WebSocket upgrade through the proxy and echoes bytes both ways', async () => {
    const proxy = await startConnectProxy({ user: 'user', password: 's3cret!' });
    const before = upstream.seen.length;
    const gw = await corpGateway(upstream, { env: { HTTPS_PROXY: `http://user:s3cret%21@127.0.0.1:${proxy.port}` } });
    const key = Buffer.from('0123456789abcdef').toString('base64');
    let socket: net.Socket | undefined;
    try {
      socket = await sendUpgrade(gw.port, key);
      const { head, rest } = await readHead(socket);
      assert.match(head, /^HTTP\/1\.1 101 /, `${head}\r\n\r\n${rest.toString()}`);
      const expectedAccept = createHash('sha1')
        .update(key + WS_GUID)
        .digest('base64');
      assert.match(head, new RegExp(`\\r\\nsec-websocket-accept: ${expectedAccept.replace(/[+/=]/g, '\\$&')}(\\r\\n|$)`, 'i'));
      assert.match(head, /\r\nupgrade: websocket/i);

      socket.write('ping-frame-through-the-proxy');
      const echo = await readBytes(socket, 'ping-frame-through-the-proxy'.length, rest);
      assert.equal(echo.toString(), 'ping-frame-through-the-proxy');

      const seen = upstream.seen.slice(before);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.upgrade, true);
      assert.equal(seen[0]!.url, '/ws/v1/stream?x=1');
      assert.equal(seen[0]!.headers.host, `${UPSTREAM_HOST}:${upstream.port}`);
      assert.equal(seen[0]!.headers.authorization, `Bearer ${PAT}`);

      assert.equal(proxy.connects.length, 1);
      assert.equal(proxy.connects[0]!.target, `${UPSTREAM_HOST}:${upstream.port}`);
      assert.equal(proxy.connects[0]!.proxyAuthorization, basic('user', 's3cret!'));
      assert.equal(proxy.tunnels(), 1);
      const clear = proxy.relayed().toString('latin1');
      assert.ok(clear.length > 0);
      assert.ok(!clear.includes(PAT) && !clear.includes('ping-frame-through-the-proxy'), 'the upgraded stream is inside TLS');
    } finally {
      socket?.destroy();
      await gw.shutdown(100);
      await proxy.close();
    }
  });

  // NO_PROXY entries that cover https://adb-test.example:PORT, and (as controls) entries that do not.
  const noProxyCases: Array<{ noProxy: (port: number) => string; bypass: boolean }> = [
    { noProxy: () => UPSTREAM_HOST, bypass: true },
    { noProxy: () => '.example', bypass: true },
    { noProxy: () => '*.example', bypass: true },
    { noProxy: (port) => `other.net,${UPSTREAM_HOST}:${port}`, bypass: true },
    { noProxy: () => '*', bypass: true },
    { noProxy: () => `${UPSTREAM_HOST}:1`, bypass: false },
    { noProxy: () => 'test.example', bypass: false },
  ];
  for (const { noProxy, bypass } of noProxyCases) {
    const shown = noProxy(0).replace(':0', ':PORT');
    it(
      bypass
        ? `NO_PROXY=${shown} bypasses the proxy: the gateway tries the host directly (DNS failure, 502) and the proxy sees no CONNECT`
        : `NO_PROXY=${shown} does not cover the route: the request goes through the proxy`,
      async () => {
        const proxy = await startConnectProxy({ user: 'user', password: 's3cret!' });
        const gw = await corpGateway(upstream, {
          env: { HTTPS_PROXY: `http://user:s3cret%21@127.0.0.1:${proxy.port}`, NO_PROXY: noProxy(upstream.port) },
        });
        try {
          const res = await request(`${gw.url}/ws/corp/api/2.0/clusters/list`);
          if (bypass) {
            assert.equal(res.status, 502, res.text);
            const body = res.json<ErrorBody>();
            assert.equal(body.error_code, 'GATEWAY_UPSTREAM_UNREACHABLE');
            assert.match(body.message, /ENOTFOUND|EAI_AGAIN|getaddrinfo/);
            assert.doesNotMatch(body.message, /proxy/i);
            assert.equal(proxy.connects.length, 0);
          } else {
            assert.equal(res.status, 200, res.text);
            assert.equal(proxy.connects.length, 1);
            assert.equal(proxy.connects[0]!.target, `${UPSTREAM_HOST}:${upstream.port}`);
          }
        } finally {
          await gw.shutdown(100);
          await proxy.close();
        }
      },
    );
  }

  it('lower-case no_proxy is read instead of NO_PROXY in the gateway too', async () => {
    const proxy = await startConnectProxy({ user: 'user', password: 's3cret!' });
    const gw = await corpGateway(upstream, {
      env: { https_proxy: `http://user:s3cret%21@127.0.0.1:${proxy.port}`, no_proxy: UPSTREAM_HOST, NO_PROXY: 'unrelated.net' },
    });
    try {
      const res = await request(`${gw.url}/ws/corp/x`);
      assert.equal(res.status, 502, res.text);
      assert.match(res.json<ErrorBody>().message, /ENOTFOUND|EAI_AGAIN|getaddrinfo/);
      assert.equal(proxy.connects.length, 0);
    } finally {
      await gw.shutdown(100);
      await proxy.close();
    }
  });

  it('a route with proxy: none ignores HTTPS_PROXY and connects directly', async () => {
    const proxy = await startConnectProxy({ user: 'user', password: 's3cret!' });
    const gw = await corpGateway(upstream, { env: { HTTPS_PROXY: `http://user:s3cret%21@127.0.0.1:${proxy.port}` }, routeProxy: 'none' });
    try {
      assert.equal(gw.routes.all[0]!.proxy, undefined);
      const res = await request(`${gw.url}/ws/corp/api/2.0/clusters/list`);
      assert.equal(res.status, 502, res.text);
      const body = res.json<ErrorBody>();
      assert.equal(body.error_code, 'GATEWAY_UPSTREAM_UNREACHABLE');
      assert.match(body.message, /ENOTFOUND|EAI_AGAIN|getaddrinfo/);
      assert.equal(proxy.connects.length, 0);
    } finally {
      await gw.shutdown(100);
      await proxy.close();
    }
  });

  it('a route with proxy: URL uses that proxy and its credentials without any proxy in the environment', async () => {
    const proxy = await startConnectProxy({ user: 'route-user', password: 'pw' });
    const gw = await corpGateway(upstream, { routeProxy: `http://route-user:pw@127.0.0.1:${proxy.port}` });
    try {
      assert.equal(gw.routes.all[0]!.proxy?.display, `http://127.0.0.1:${proxy.port}`);
      const res = await request(`${gw.url}/ws/corp/api/2.0/clusters/list`);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json<{ authorization: string }>().authorization, `Bearer ${PAT}`);
      assert.equal(proxy.connects.length, 1);
      assert.equal(proxy.connects[0]!.target, `${UPSTREAM_HOST}:${upstream.port}`);
      assert.equal(proxy.connects[0]!.proxyAuthorization, basic('route-user', 'pw'));
    } finally {
      await gw.shutdown(100);
      await proxy.close();
    }
  });

  it('a route proxy URL wins over HTTPS_PROXY and over a NO_PROXY that names the host', async () => {
    const routeProxy = await startConnectProxy({ user: 'route-user', password: 'pw' });
    const envProxy = await startConnectProxy({ user: 'user', password: 's3cret!' });
    const gw = await corpGateway(upstream, {
      env: { HTTPS_PROXY: `http://user:s3cret%21@127.0.0.1:${envProxy.port}`, NO_PROXY: UPSTREAM_HOST },
      routeProxy: `http://route-user:pw@127.0.0.1:${routeProxy.port}`,
    });
    try {
      const res = await request(`${gw.url}/ws/corp/api/2.0/clusters/list`);
      assert.equal(res.status, 200, res.text);
      assert.equal(routeProxy.connects.length, 1);
      assert.equal(envProxy.connects.length, 0);
    } finally {
      await gw.shutdown(100);
      await routeProxy.close();
      await envProxy.close();
    }
  });

  /** The 502 body, the log, /readyz and /metrics after a failed request: none may contain any of `secrets`. */
  async function assertNoLeak(gw: TestGateway, responseText: string, secrets: string[]): Promise<void> {
    const readyz = await request(`${gw.url}/readyz`);
    const metrics = await request(`${gw.url}/metrics`);
    assert.equal(metrics.status, 200, 'metrics answered (so the leak check reads real content)');
    assert.ok(metrics.text.length > 0);
    assert.ok([200, 503].includes(readyz.status));
    for (const secret of secrets) {
      for (const [where, text] of [
        ['response', responseText],
        ['log', gw.logText()],
        ['/readyz', readyz.text],
        ['/metrics', metrics.text],
      ] as const) {
        assert.ok(!text.includes(secret), `${where} contains ${JSON.stringify(secret)}`);
      }
    }
  }

  it('a proxy that answers 407 (wrong password) gives 502 naming the proxy without credentials, and the password leaks nowhere', async () => {
    const proxy = await startConnectProxy({ user: 'user', password: 's3cret!' });
    const wrong = 'Wr0ngPassw0rd!';
    const gw = await corpGateway(upstream, { env: { HTTPS_PROXY: `http://user:${encodeURIComponent(wrong)}@127.0.0.1:${proxy.port}` } });
    const before = upstream.seen.length;
    try {
      const res = await request(`${gw.url}/ws/corp/api/2.0/clusters/list`);
      assert.equal(res.status, 502, res.text);
      assert.equal(res.headers['x-dbx-gateway-error'], '1');
      const body = res.json<ErrorBody>();
      assert.equal(body.error_code, 'GATEWAY_UPSTREAM_UNREACHABLE');
      assert.ok(body.message.includes(`http://127.0.0.1:${proxy.port}`), body.message);
      assert.match(body.message, /\b407\b/);
      assert.doesNotMatch(body.message, /user:Wr0ng|@127\.0\.0\.1/);
      // The gateway did send the (wrong) credentials: the proxy refused them, it was not skipped.
      assert.equal(proxy.connects.length, 1);
      assert.equal(proxy.connects[0]!.status, 407);
      assert.equal(proxy.connects[0]!.proxyAuthorization, basic('user', wrong));
      assert.equal(upstream.seen.length, before, 'nothing reached the upstream');
      await assertNoLeak(gw, res.text, [wrong, encodeURIComponent(wrong), basic('user', wrong).slice('Basic '.length), PAT]);
    } finally {
      await gw.shutdown(100);
      await proxy.close();
    }
  });

  it('a proxy that refuses the destination (403) gives 502 naming the proxy and 403', async () => {
    const proxy = await startConnectProxy({ user: 'user', password: 's3cret!', refuse: true });
    const gw = await corpGateway(upstream, { env: { HTTPS_PROXY: `http://user:s3cret%21@127.0.0.1:${proxy.port}` } });
    try {
      const res = await request(`${gw.url}/ws/corp/api/2.0/clusters/list`);
      assert.equal(res.status, 502, res.text);
      const body = res.json<ErrorBody>();
      assert.equal(body.error_code, 'GATEWAY_UPSTREAM_UNREACHABLE');
      assert.ok(body.message.includes(`http://127.0.0.1:${proxy.port}`), body.message);
      assert.match(body.message, /\b403\b/);
      assert.equal(proxy.connects.length, 1);
      assert.equal(proxy.connects[0]!.status, 403);
      assert.equal(proxy.tunnels(), 0);
      await assertNoLeak(gw, res.text, ['s3cret']);
    } finally {
      await gw.shutdown(100);
      await proxy.close();
    }
  });

  it('a WebSocket upgrade through a refusing proxy gets a 502 naming the proxy, and the connection closes', async () => {
    const proxy = await startConnectProxy({ user: 'user', password: 's3cret!', refuse: true });
    const gw = await corpGateway(upstream, { env: { HTTPS_PROXY: `http://user:s3cret%21@127.0.0.1:${proxy.port}` } });
    try {
      const socket = await sendUpgrade(gw.port, Buffer.from('fedcba9876543210').toString('base64'));
      const reply = await readToClose(socket);
      assert.match(reply, /^HTTP\/1\.1 502 /);
      assert.match(reply, /GATEWAY_UPSTREAM_UNREACHABLE/);
      assert.ok(reply.includes(`http://127.0.0.1:${proxy.port}`), reply);
      assert.match(reply, /\b403\b/);
      assert.ok(!reply.includes('s3cret'));
      assert.equal(proxy.connects.length, 1);
    } finally {
      await gw.shutdown(100);
      await proxy.close();
    }
  });

  it('an unreachable proxy gives 502 naming the proxy (without its credentials)', async () => {
    const port = await closedPort();
    const gw = await corpGateway(upstream, { env: { HTTPS_PROXY: `http://user:s3cret%21@127.0.0.1:${port}` } });
    try {
      const res = await request(`${gw.url}/ws/corp/api/2.0/clusters/list`);
      assert.equal(res.status, 502, res.text);
      const body = res.json<ErrorBody>();
      assert.equal(body.error_code, 'GATEWAY_UPSTREAM_UNREACHABLE');
      assert.ok(body.message.includes(`http://127.0.0.1:${port}`), body.message);
      assert.match(body.message, /proxy/);
      assert.match(body.message, /ECONNREFUSED/);
      await assertNoLeak(gw, res.text, ['s3cret']);
    } finally {
      await gw.shutdown(100);
    }
  });
});

describe('egress proxy: a bad proxy setting in the environment', () => {
  for (const value of ['socks5://user:pr0xy-pw@proxy:1080', 'http://user:pr0xy-pw@bad host:1']) {
    it(`is a config error naming HTTPS_PROXY, never quoting its password (${value.split('@')[1]})`, async () => {
      await assert.rejects(
        startYamlGateway(`routes:\n  prod: { host: https://${UPSTREAM_HOST}, credential: { type: pat, token: ${PAT} } }\n`, { env: { HTTPS_PROXY: value } }),
        (err: Error & { problems?: string[] }) => {
          assert.equal(err.name, 'ConfigError');
          assert.match(err.message, /HTTPS_PROXY \/ HTTP_PROXY \(environment\)/);
          assert.ok(!JSON.stringify({ message: err.message, problems: err.problems }).includes('pr0xy-pw'), err.message);
          return true;
        },
      );
    });
  }
});
