import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { GatewayError, rawGatewayError, writeGatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { countOwnBody, failureAnswer, trackRequest, writeRequestLine } from '../observability/request-log.js';
import { type RequestRecord, startRecord } from '../observability/request-record.js';
import type { Resolver } from '../routing/route-table.js';
import type { Admission } from '../security/admission.js';
import { corsHeaders, preflightAnswer } from '../security/browser-guard.js';
import { assertLocalTarget } from '../security/path-check.js';
import type { Forwarder } from './forward.js';

export interface HttpDoorDeps {
  admission: Admission;
  forwarder: Forwarder;
  logger: Logger;
  metrics: GatewayMetrics;
  /** Upgraded sockets leave the HTTP server's bookkeeping: shutdown destroys what is left here. */
  tunnels: Set<Duplex>;
  /** The main listener's local endpoints (the Hono app); absent on a per-route port. */
  local?: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}

/**
 * What a listener hands every request and upgrade to; `refusal` is the listener's own verdict on
 * the connection (another local user's), answered and recorded here like any refusal.
 */
export interface HttpDoor {
  request(req: IncomingMessage, res: ServerResponse, refusal?: GatewayError): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, refusal?: GatewayError): void;
}

/**
 * The HTTP door of a listener: every request and WebSocket upgrade gets one record (one log
 * line, one metrics count), the same admission (browser guard and CORS preflight, route, key,
 * policy) and the same error mapping (failureAnswer). Proxied traffic runs on the raw Node request
 * and response, without building a fetch Request, an AbortController and a Response per request (a
 * fifth of the CPU per proxied request in the profile; docs/benchmarks.md). Local endpoints go to
 * the Hono app after the target check, with the record already started.
 */
export function createHttpDoor(deps: HttpDoorDeps, resolve: Resolver): HttpDoor {
  const { admission, forwarder, logger, metrics, tunnels, local } = deps;

  /** Browser guard, then a CORS preflight's answer (`preflight`) or route, key and policy (`admitted`). */
  const admit = (req: IncomingMessage, record: RequestRecord) => {
    const { corsOrigin } = admission.checkClient(req);
    if (corsOrigin) record.corsOrigin = corsOrigin;
    const preflight = preflightAnswer(req.method, req.headers, corsOrigin);
    if (preflight) return { preflight };
    const admitted = admission.admitProxy(req, resolve, (name) => {
      record.key = name;
    });
    record.route = admitted.route.name;
    if (admitted.prefix) record.prefix = admitted.prefix;
    record.path = admitted.upstreamPath.split('?', 1)[0] ?? admitted.upstreamPath;
    return { admitted };
  };

  return {
    request(req, res, refusal) {
      const record = trackRequest(req, res, logger, metrics);
      try {
        if (refusal) throw refusal;
        if (local && !isProxiedTarget(req.url)) {
          // Local endpoints get the same target rules: Hono would otherwise resolve an
          // absolute-form or dot-segment target to /metadata/SECRET and the like.
          try {
            assertLocalTarget(req.url ?? '/');
          } catch (err) {
            // A refused spelling of a local path (/%6detadata/SECRET, http://localhost/metadata/SECRET)
            // is logged with its first segment only.
            const first = /^\/[^/?]*/.exec(req.url ?? '')?.[0];
            record.path = first ? `${first}/[REDACTED]` : '[REDACTED]';
            throw err;
          }
          if (req.headers.expect !== undefined) res.writeContinue();
          countOwnBody(res, record);
          void local(req, res);
          return;
        }
        const { preflight, admitted } = admit(req, record);
        if (preflight) {
          res.writeHead(204, preflight);
          res.end();
          return;
        }
        // Admitted: now the client may send its body (the listener answers no 100 Continue itself).
        if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
        forwarder.web(req, res, admitted.route, admitted.upstreamPath, admitted.prefix, record);
      } catch (err) {
        const answer = failureAnswer(err, logger, record);
        countOwnBody(res, record);
        writeGatewayError(res, answer, { close: true, ...(record.corsOrigin ? { extraHeaders: corsHeaders(record.corsOrigin) } : {}) });
      }
    },

    upgrade(req, socket, head, refusal) {
      tunnels.add(socket);
      socket.once('close', () => tunnels.delete(socket));
      socket.on('error', () => socket.destroy());
      const record = startRecord(req);
      let done = false;
      // Written once the outcome is known: 101, the upstream's refusal, or the gateway's error.
      const finish = (status: number, error?: GatewayError) => {
        if (done) return;
        done = true;
        if (error) failureAnswer(error, logger, record);
        writeRequestLine(logger, metrics, req, record, { status, bytes: 0, upgrade: true });
      };
      const fail = (err: unknown) => {
        const answer = failureAnswer(err, logger, record);
        finish(answer.status, answer);
        // Written, then destroyed: an upgrade socket has no idle timeout, and a half-open one would
        // hold a connection slot forever.
        if (!socket.destroyed) socket.write(rawGatewayError(answer), () => socket.destroy());
      };
      try {
        if (refusal) throw refusal;
        const { admitted } = admit(req, record);
        if (!admitted) throw new GatewayError('GATEWAY_BAD_REQUEST', 'an OPTIONS preflight cannot ask for an upgrade');
        forwarder.ws(req, socket, head, admitted.route, admitted.upstreamPath, admitted.prefix, finish).catch(fail);
      } catch (err) {
        fail(err);
      }
    },
  };
}

/** Whether the main listener hands this target to the proxy (the Hono app gets the rest). */
export function isProxiedTarget(rawUrl: string | undefined): boolean {
  return rawUrl !== undefined && (rawUrl.startsWith('/ws/') || rawUrl.startsWith('/acct/'));
}
