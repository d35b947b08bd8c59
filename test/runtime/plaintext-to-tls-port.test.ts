import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { request } from 'node:https';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { testPki } from '../helpers/tls.js';

// Plain HTTP or h2c to a TLS port gets an answer in its own protocol, not an empty reply
// (issue 21, item 7; as nginx's 497 "plain HTTP request sent to HTTPS port").

const pki = testPki();

/** The raw bytes a port answers to `bytes`, until it closes. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    let out = '';
    socket.on('data', (d) => {
      out += d.toString('latin1');
    });
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
  });
}

/** What an h2c client with prior knowledge is told: the GOAWAY's code and debug data. */
function h2cGoAway(port: number): Promise<{ code: number; text: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('goaway', (code, _last, data) => resolve({ code, text: data?.toString('utf8') ?? '' }));
    session.on('error', () => {});
    session.on('close', () => reject(new Error('closed without GOAWAY')));
  });
}

describe('plain HTTP and h2c to a TLS port', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway({
      flags: { workspace: ['prod=https://adb-1.1.azuredatabricks.net'], credential: 'pat' },
      env: { DATABRICKS_TOKEN: 'dapi-test' },
      configure: (config) => {
        config.listen.tls = { mode: 'files', certFile: join(dirname(pki.caFile), 'server.pem'), keyFile: join(dirname(pki.caFile), 'server.key') };
        for (const r of config.routes) {
          r.port = 0;
          r.sparkConnect = { port: 0 };
        }
      },
    });
  });
  after(() => gw.shutdown(100));

  it('answers plain HTTP on the main and a per-route port with 400 "this port speaks HTTPS"', async () => {
    for (const port of [gw.port, gw.routePorts.get('prod')!]) {
      const answer = await rawExchange(port, `GET /ws/prod/api/2.0/clusters/list HTTP/1.1\r\nHost: localhost:${port}\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 400 GATEWAY_BAD_REQUEST\r\n/);
      assert.match(answer, /x-dbx-gateway-error: 1\r\n/);
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error_code: string; message: string };
      assert.equal(body.error_code, 'GATEWAY_BAD_REQUEST');
      assert.match(body.message, new RegExp(`this port speaks HTTPS, not plain HTTP: use https://localhost:${port}/`));
    }
  });

  it('answers h2c prior knowledge on the Spark Connect port with a GOAWAY saying it speaks TLS', async () => {
    const { code, text } = await h2cGoAway(gw.sparkPorts.get('prod')!);
    assert.equal(code, http2.constants.NGHTTP2_INADEQUATE_SECURITY);
    assert.match(text, /this port speaks TLS \(h2 over TLS\), not h2c: connect with TLS \(sc:\/\/localhost:\d+\/;use_ssl=true\)/);
    // The main port too (an h2c client pointed at it).
    assert.match((await h2cGoAway(gw.port)).text, /this port speaks TLS \(h2 over TLS\)/);
  });

  it('still speaks TLS to TLS clients: https and h2 over TLS', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: '/healthz', ca: pki.ca, servername: 'localhost' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    const session = http2.connect(`https://localhost:${gw.sparkPorts.get('prod')!}`, { ca: pki.ca });
    try {
      await new Promise<void>((resolve, reject) => {
        session.once('connect', () => resolve());
        session.once('error', reject);
      });
      assert.equal(session.alpnProtocol, 'h2');
    } finally {
      session.close();
    }
  });
});
