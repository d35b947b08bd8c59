import { createRequire } from 'node:module';
import type { buildConnector, Dispatcher, Pool } from 'undici';
import type { Timeouts } from '../config/types.js';
import { type ConnectUpstreamOptions, connectUpstream } from './connector.js';
import { type EgressProxy, resolveProxy } from './egress-proxy.js';

/**
 * Idle pooled connections live this long (Azure front doors close idle connections after ~4 min;
 * undici's default of 4 s would reconnect, TLS included, after every pause of a few seconds).
 */
const KEEP_ALIVE_MS = 60_000;
/** TCP keep-alive probes after this much silence, as undici's own connector sets them. */
const TCP_KEEP_ALIVE_DELAY_MS = 60_000;

/**
 * undici, loaded on first use: it is ~50 ms of start-up, which `token`, `login` and `--help`
 * never need. `serve` loads it at start (preloadTransport) so no request pays for it.
 *
 * Only the two parts the gateway uses, each from its own file: the Pool, and `request` (the
 * promise API the token clients and the route probe call). The package index also loads fetch,
 * WebSocket, the cache stores and the mock agents, about 8 MiB of resident memory the gateway
 * never uses (docs/benchmarks.md); it is also what puts `request` on Dispatcher.prototype, so a
 * Pool from its own file has none and `request` is called on it here. undici has no `exports`
 * map, so the files are reachable; if a release moves them, the index is the fallback, and
 * test/runtime/lean-imports.test.ts fails first.
 */
interface UndiciParts {
  Pool: typeof Pool;
  request: (this: Dispatcher, opts: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;
}
let undici: UndiciParts | undefined;
function loadUndici(): UndiciParts {
  undici ??= requireUndiciParts();
  return undici;
}

function requireUndiciParts(): UndiciParts {
  const require = createRequire(import.meta.url);
  try {
    return {
      Pool: require('undici/lib/dispatcher/pool.js') as typeof Pool,
      request: require('undici/lib/api/api-request.js') as UndiciParts['request'],
    };
  } catch {
    const index = require('undici') as typeof import('undici');
    return { Pool: index.Pool, request: index.Pool.prototype.request as UndiciParts['request'] };
  }
}

export function preloadTransport(): void {
  loadUndici();
}

/** What the gateway asks of an upstream pool: requests, and an orderly or immediate end. */
export interface Upstream {
  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  request(opts: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData>;
  /** Lets what was dispatched finish, closing connections as they free up; takes nothing new. */
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export interface UpstreamOptions {
  timeouts: Timeouts;
  /** PEM file added to the public roots (corporate TLS inspection, a test CA). */
  caFile?: string;
  /** The egress proxy for this upstream, if any (resolveProxy). */
  proxy?: EgressProxy;
}

/**
 * The undici pool for one upstream (made at its first request): keep-alive, the connect timeout (TCP + TLS, -> 502), the
 * headers timeout (-> 504) and the body idle timeout, the route's caFile as a prebuilt
 * SecureContext, and, behind an egress proxy, every connection opened through a CONNECT tunnel
 * so the token only ever travels inside TLS to the route's host. Each route gets one
 * (runtime/core.ts); token clients share one per origin + proxy + caFile (outboundPool), as
 * @fastify/reply-from keeps one per target.
 */
export function createUpstreamPool(target: URL, options: UpstreamOptions): Upstream {
  // The pool (and undici) comes into being at the first request, not when a route is built;
  // close() and destroy() of a pool never made are no-ops.
  let pool: Pool | undefined;
  const get = () => (pool ??= buildPool(target, options));
  return {
    dispatch: (opts, handler) => get().dispatch(opts, handler),
    request: (opts) => loadUndici().request.call(get(), opts),
    close: async () => {
      await pool?.close();
    },
    destroy: async () => {
      await pool?.destroy();
    },
  };
}

function buildPool(target: URL, options: UpstreamOptions): Pool {
  const { Pool } = loadUndici();
  const { timeouts, proxy, caFile } = options;
  const upstream: ConnectUpstreamOptions = {
    timeoutMs: timeouts.connectMs,
    alpn: ['http/1.1'],
    ...(caFile ? { caFile } : {}),
    ...(proxy ? { proxy } : {}),
    tlsSession: {},
  };
  // undici's `connect` in the shape it calls (opts, callback), on the one connector; what its own
  // connector adds on top (TCP keep-alive, no Nagle, TLS session reuse) is kept.
  const connect: buildConnector.connector = (opts, callback) => {
    connectUpstream(opts, upstream).then(
      (socket) => {
        socket.setKeepAlive(true, TCP_KEEP_ALIVE_DELAY_MS).setNoDelay(true);
        callback(null, socket);
      },
      (err: Error) => callback(err, null),
    );
  };
  return new Pool(target.origin, {
    connect,
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.idleMs,
    keepAliveTimeout: KEEP_ALIVE_MS,
    keepAliveMaxTimeout: KEEP_ALIVE_MS,
  });
}

/** Timeouts of calls the gateway makes for itself (token endpoints): a token fetch is bounded at 30 s anyway. */
const OUTBOUND_TIMEOUTS: Timeouts = { connectMs: 10_000, headersMs: 30_000, idleMs: 30_000, drainMs: 0 };
const outboundPools = new Map<string, Upstream>();

/**
 * A pool for the gateway's own calls (Entra ID, Databricks OAuth token endpoints) to `url`'s
 * origin, with the same egress-proxy rules as route traffic, shared per origin, proxy and caFile.
 */
export function outboundPool(url: URL, env: NodeJS.ProcessEnv, caFile?: string): Upstream {
  const proxy = resolveProxy(url, env);
  const key = `${url.origin}\u0000${proxy?.display ?? ''}\u0000${proxy?.authorization ?? ''}\u0000${caFile ?? ''}`;
  let pool = outboundPools.get(key);
  if (!pool) {
    pool = createUpstreamPool(new URL(url.origin), { timeouts: OUTBOUND_TIMEOUTS, ...(caFile ? { caFile } : {}), ...(proxy ? { proxy } : {}) });
    outboundPools.set(key, pool);
  }
  return pool;
}
