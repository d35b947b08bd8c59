/**
 * Whether a Spark Connect call may go upstream: the ordered checks, each refusal a GatewayError
 * (grpc-status.ts names its gRPC status), and the bookkeeping that bounds what clients can hold:
 * calls in flight per route, per client connection and per key, and the early-cancel budgets.
 * Anything refused here is never forwarded with the token.
 */
import type http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { InboundKey } from '../config/types.js';
import { errorMessage, GatewayError } from '../errors.js';
import { assertKeyMayUse, type KeyAuthenticator } from '../security/inbound-keys.js';

/** Calls in flight per route: with a 1 MiB stream window each (sessions.ts), what stalled clients can make the gateway hold is bounded (128 MiB). */
const MAX_OPEN_CALLS = 128;
/**
 * A client connection's share of those, and an inbound key's: no one client can take them all. The
 * listener advertises the per-connection share as SETTINGS_MAX_CONCURRENT_STREAMS, so gRPC clients
 * queue their calls rather than have them refused.
 */
export const MAX_CALLS_PER_CONNECTION = 32;
const MAX_CALLS_PER_KEY = 64;
/**
 * Calls a client may cancel before the upstream answered them, in a burst and then per second, per
 * connection and per key. Each may have cost a stream on the session every user of the route
 * shares; a client resetting them in a loop (the HTTP/2 "Rapid Reset", CVE-2023-44487) would get
 * that session a GOAWAY from the workspace. Over the budget its connection is closed with GOAWAY
 * ENHANCE_YOUR_CALM (RFC 9113 section 7), and the key's new calls are refused while it refills.
 */
const EARLY_CANCELS_PER_CONNECTION = { burst: 32, perSecond: 1 };
const EARLY_CANCELS_PER_KEY = { burst: 64, perSecond: 2 };
/** The methods of Spark Connect's one service (spark/connect/base.proto: ExecutePlan, AnalyzePlan, Config, ...). */
const SPARK_CONNECT_METHOD = /^\/spark\.connect\.SparkConnectService\/[A-Za-z]\w*$/;

/** Not a gRPC call at all: answered with a plain HTTP status (PROTOCOL-HTTP2.md "Requests"), not a grpc-status. */
export class NotGrpcCallError extends GatewayError {
  constructor(
    readonly httpStatus: 405 | 415,
    message: string,
  ) {
    super(httpStatus === 405 ? 'GATEWAY_METHOD_NOT_ALLOWED' : 'GATEWAY_BAD_REQUEST', message);
  }
}

/** What the checks need of the route. */
export interface CallPolicy {
  routeName: string;
  /** With inbound keys: checks the client's `authorization: Bearer <key>` metadata (throws GatewayError). */
  authenticate?: KeyAuthenticator;
  /** limits.requestsPerMinutePerKey: takes one call from the key's (or the client address's) budget; throws GatewayError over it. */
  rateLimit?: (key: InboundKey | undefined, address: string | undefined) => void;
}

/** The outcome of the checks; the key is known as soon as it was checked, refused or not. */
export type Admission =
  | { admitted: true; key: InboundKey | undefined /** Gives the call's slots back; once, when its stream closes. */; release(): void }
  | { admitted: false; key: InboundKey | undefined; refusal: GatewayError };

export interface CallAdmission {
  admit(headers: http2.IncomingHttpHeaders, connection: http2.Http2Session | undefined): Admission;
  /** A call the client left before any answer; true when its connection is over its budget (and is to be closed). */
  recordEarlyCancel(connection: http2.Http2Session | undefined, key: InboundKey | undefined): boolean;
}

export function createCallAdmission(policy: CallPolicy): CallAdmission {
  let openCalls = 0;
  const callsByConnection = tally<http2.Http2Session>();
  const callsByKey = tally<string>();
  const cancelsByConnection = new WeakMap<http2.Http2Session, Budget>();
  const cancelsByKey = new Map<string, Budget>();

  /** The checks in order; throws the first refusal. */
  function check(headers: http2.IncomingHttpHeaders, connection: http2.Http2Session | undefined, setKey: (key: InboundKey) => void): void {
    // Browsers are refused, as on every local endpoint: no gRPC client sends Origin or Sec-Fetch-Site.
    if (headers.origin !== undefined || headers['sec-fetch-site'] !== undefined) {
      throw new GatewayError('GATEWAY_FORBIDDEN', 'Spark Connect does not answer browsers; connect with a Spark Connect client');
    }
    let key: InboundKey | undefined;
    if (policy.authenticate) {
      try {
        key = policy.authenticate(headers);
        setKey(key);
        assertKeyMayUse(key, policy.routeName);
      } catch (err) {
        throw err instanceof GatewayError ? err : new GatewayError('GATEWAY_UNAUTHENTICATED', errorMessage(err), { cause: err });
      }
    }
    // PROTOCOL-HTTP2.md "Requests": a call is a POST; other content types get HTTP 415.
    const contentType = String(headers['content-type'] ?? '');
    if (headers[':method'] !== 'POST' || !/^application\/grpc([+;]|$)/.test(contentType)) {
      throw new NotGrpcCallError(headers[':method'] !== 'POST' ? 405 : 415, `not a gRPC call (${headers[':method']} ${contentType || 'without content-type'})`);
    }
    if (policy.rateLimit) {
      try {
        policy.rateLimit(key, connection?.socket?.remoteAddress);
      } catch (err) {
        throw err instanceof GatewayError ? err : new GatewayError('GATEWAY_RATE_LIMITED', errorMessage(err), { cause: err });
      }
    }
    // Only Spark Connect's own service: any other path would carry the route's token to a REST
    // endpoint (token/create, say) past the HTTP route policy. UNIMPLEMENTED, as for an unknown method.
    const method = String(headers[':path'] ?? '');
    if (!SPARK_CONNECT_METHOD.test(method)) {
      throw new GatewayError(
        'GATEWAY_ROUTE_NOT_FOUND',
        `${method.slice(0, 200)} is not a Spark Connect method; this port forwards /spark.connect.SparkConnectService/* only`,
      );
    }
    // A bound on the calls in flight: each can hold up to a stream window of response data.
    if (openCalls >= MAX_OPEN_CALLS) {
      throw new GatewayError('GATEWAY_OVERLOADED', `more than ${MAX_OPEN_CALLS} Spark Connect calls are in flight on route ${policy.routeName}; retry later`);
    }
    if (connection && callsByConnection.count(connection) >= MAX_CALLS_PER_CONNECTION) {
      throw new GatewayError('GATEWAY_OVERLOADED', `more than ${MAX_CALLS_PER_CONNECTION} Spark Connect calls are in flight on this connection; retry later`);
    }
    if (key && callsByKey.count(key.name) >= MAX_CALLS_PER_KEY) {
      throw new GatewayError(
        'GATEWAY_OVERLOADED',
        `more than ${MAX_CALLS_PER_KEY} Spark Connect calls of key ${key.name} are in flight on route ${policy.routeName}; retry later`,
      );
    }
    if (key && cancelsByKey.get(key.name)?.empty()) {
      throw new GatewayError('GATEWAY_RATE_LIMITED', `key ${key.name} cancelled too many Spark Connect calls before the workspace answered; slow down`);
    }
  }

  return {
    admit(headers, connection) {
      let key: InboundKey | undefined;
      try {
        check(headers, connection, (k) => (key = k));
      } catch (err) {
        if (!(err instanceof GatewayError)) throw err;
        return { admitted: false, key, refusal: err };
      }
      openCalls++;
      if (connection) callsByConnection.add(connection, 1);
      if (key) callsByKey.add(key.name, 1);
      let released = false;
      const held = key;
      return {
        admitted: true,
        key,
        release() {
          if (released) return;
          released = true;
          openCalls--;
          if (connection) callsByConnection.add(connection, -1);
          if (held) callsByKey.add(held.name, -1);
        },
      };
    },
    recordEarlyCancel(connection, key) {
      let over = false;
      if (connection) over = !budgetOf(cancelsByConnection, connection, EARLY_CANCELS_PER_CONNECTION).take();
      if (key) over = !budgetOf(cancelsByKey, key.name, EARLY_CANCELS_PER_KEY).take() || over;
      return over;
    },
  };
}

/** A token bucket: `burst` takes at once, refilled at `perSecond`. */
class Budget {
  private tokens: number;
  private at = performance.now();
  constructor(private readonly limit: { burst: number; perSecond: number }) {
    this.tokens = limit.burst;
  }
  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.at) / 1000) * this.limit.perSecond);
    this.at = now;
  }
  /** Takes one; false when none was left. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
  empty(): boolean {
    this.refill();
    return this.tokens < 1;
  }
}

function budgetOf<K>(budgets: { get(k: K): Budget | undefined; set(k: K, b: Budget): unknown }, k: K, limit: { burst: number; perSecond: number }): Budget {
  const found = budgets.get(k);
  if (found) return found;
  const made = new Budget(limit);
  budgets.set(k, made);
  return made;
}

/** Calls in flight per client connection or key name; an entry goes when its count is back to 0. */
function tally<K>() {
  const map = new Map<K, number>();
  return {
    count: (k: K) => map.get(k) ?? 0,
    add: (k: K, n: number) => {
      const next = (map.get(k) ?? 0) + n;
      if (next === 0) map.delete(k);
      else map.set(k, next);
    },
  };
}
