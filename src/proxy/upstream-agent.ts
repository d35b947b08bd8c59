import http, { type ClientRequest } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Timeouts } from '../config/types.js';
import { UpstreamTimeoutError } from '../errors.js';
import { trustWithCaFile } from '../security/ca-trust.js';

/** Idle pooled sockets kept per upstream; Azure front doors close idle connections after ~4 min. */
const MAX_FREE_SOCKETS = 64;
const FREE_SOCKET_TIMEOUT_MS = 60_000;

export interface UpstreamAgentOptions {
  timeouts: Timeouts;
  /** PEM file added to the public roots (corporate TLS inspection, a test CA). */
  caFile?: string;
}

/**
 * A keep-alive pool for one upstream, owning the three upstream timeouts:
 * connect (TCP + TLS, -> 502), response headers (-> 504) and idle (no bytes either way).
 * http-proxy's default is no agent at all (Connection: close on every request).
 */
export function createUpstreamAgent(target: URL, options: UpstreamAgentOptions): http.Agent {
  const poolOptions = {
    keepAlive: true,
    maxFreeSockets: MAX_FREE_SOCKETS,
    timeout: FREE_SOCKET_TIMEOUT_MS,
    // Reuse the most recently used socket: it is the one least likely to have been closed by the far end.
    scheduling: 'lifo' as const,
  };
  const agent =
    target.protocol === 'https:'
      ? new https.Agent({
          ...poolOptions,
          ...(options.caFile ? { secureContext: trustWithCaFile(options.caFile) } : {}),
        })
      : new http.Agent(poolOptions);
  armConnectTimeout(agent, target.protocol === 'https:', options.timeouts.connectMs);
  armResponseTimeouts(agent, options.timeouts);
  return agent;
}

type CreateConnection = (options: unknown, callback?: unknown) => Socket | undefined;

function armConnectTimeout(agent: http.Agent, tls: boolean, connectMs: number): void {
  const create = (agent as unknown as { createConnection: CreateConnection }).createConnection.bind(agent);
  (agent as unknown as { createConnection: CreateConnection }).createConnection = (opts, cb) => {
    const socket = create(opts, cb);
    if (!socket) return socket;
    const timer = setTimeout(() => socket.destroy(new UpstreamTimeoutError('connect', connectMs)), connectMs);
    timer.unref();
    const clear = () => clearTimeout(timer);
    socket.once(tls ? 'secureConnect' : 'connect', clear);
    socket.once('close', clear);
    return socket;
  };
}

/**
 * Agent.addRequest sees every ClientRequest http-proxy makes, including those sent with
 * `Expect: 100-continue`, for which http-proxy emits no proxyReq event.
 */
function armResponseTimeouts(agent: http.Agent, timeouts: Timeouts): void {
  const target = agent as unknown as { addRequest(req: ClientRequest, options: unknown): void };
  const addRequest = target.addRequest.bind(agent);
  target.addRequest = (req, opts) => {
    // A socket timeout is an idle timer: a body that keeps flowing is never cut.
    req.setTimeout(timeouts.headersMs, () => {
      const phase = (req as ClientRequest & { res?: unknown }).res ? 'idle' : 'headers';
      req.destroy(new UpstreamTimeoutError(phase, phase === 'idle' ? timeouts.idleMs : timeouts.headersMs));
    });
    req.once('response', () => req.setTimeout(timeouts.idleMs));
    addRequest(req, opts);
  };
}
