// The "Node limit": the least a Node reverse proxy on undici must do, as a reference for the gateway.
//   node bench/lib/node-limit.mjs PORT UPSTREAM_ORIGIN CA_FILE TOKEN
// Strips a fixed /ws/prod prefix, replaces Authorization with a static token, drops hop-by-hop
// headers, streams both bodies with backpressure. No routing, logs or metrics.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { Pool } from 'undici';

const [port, origin, caFile, token] = process.argv.slice(2);
const pool = new Pool(origin, { connect: { ca: readFileSync(caFile) }, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 });
const auth = `Bearer ${token}`;
const HOP_REQ = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'expect', 'authorization']);
const HOP_RES = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const PREFIX = '/ws/prod';

const server = http.createServer((req, res) => {
  const raw = req.rawHeaders;
  const headers = ['authorization', auth];
  for (let i = 0; i < raw.length; i += 2) if (!HOP_REQ.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  const url = req.url;
  const path =
    url.startsWith(PREFIX) && (url.length === PREFIX.length || url[PREFIX.length] === '/' || url[PREFIX.length] === '?')
      ? url.slice(PREFIX.length) || '/'
      : url;
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  let abort;
  let done = false;
  res.on('close', () => {
    if (!done && abort) abort(new Error('client went away'));
  });
  pool.dispatch(
    { origin, method: req.method, path, headers, body: hasBody ? req : null },
    {
      onConnect(a) {
        abort = a;
      },
      onHeaders(status, rawRes, resume, statusText) {
        const out = [];
        for (let i = 0; i < rawRes.length; i += 2) {
          const name = rawRes[i].toString('latin1');
          if (!HOP_RES.has(name.toLowerCase())) out.push(name, rawRes[i + 1].toString('latin1'));
        }
        res.writeHead(status, statusText || undefined, out);
        res.on('drain', resume);
        return true;
      },
      onData(chunk) {
        return res.write(chunk);
      },
      onComplete() {
        done = true;
        res.end();
      },
      onError(err) {
        done = true;
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`node-limit: ${err.message}\n`);
        else res.destroy(err);
      },
    },
  );
});
server.keepAliveTimeout = 60_000;
server.listen(Number(port), '127.0.0.1');
