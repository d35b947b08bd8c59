/**
 * Spark Connect (gRPC over HTTP/2) forwarding: the calls of one route's Spark Connect listener go
 * to the route's workspace over one multiplexed HTTP/2 + TLS session, with the route's bearer
 * token in place of whatever the client sent. Independent of the gateway's config and listeners:
 *
 *   const forwarder = createSparkConnectForwarder(target, (call) => log(call));
 *   h2Server.on('stream', (stream, headers) => forwarder.handleStream(stream, headers));
 *   ...
 *   forwarder.retire();   // reload: upstream sessions close once their calls end
 *   forwarder.close();    // shutdown: everything now
 *
 * `handleStream` never throws and handles every 'error' event, so nothing a client or the upstream
 * does can take the listener (or the process) down: a failure ends that one call with a gRPC
 * status. Each call is reported once through `onCall`, when the client's stream closes.
 *
 * The parts: admit-call.ts (per call, in order: browsers refused; the inbound key when keys are
 * configured; POST + application/grpc; the rate limit; a Spark Connect method; the bounds on calls
 * in flight; anything refused is never forwarded with the token), call.ts (the route's auth
 * headers, then one call's relay and bookkeeping), sessions.ts (the shared upstream session:
 * made on first use, made again after it closes, fails or gets a GOAWAY, closed after
 * idleTimeoutMs without calls), grpc-status.ts (the spec's mappings).
 */
import type http2 from 'node:http2';
import type { AuthHeaders } from '../proxy/auth-headers.js';
import type { EgressProxy } from '../proxy/egress-proxy.js';
import type { KeyAuthenticator } from '../security/inbound-keys.js';
import { createCallAdmission } from './admit-call.js';
import { type CallContext, relayCall, type SparkCall } from './call.js';
import { createSessionPool } from './sessions.js';

export { MAX_CALLS_PER_CONNECTION } from './admit-call.js';
export type { SparkCall } from './call.js';

export interface SparkConnectTarget {
  routeName: string;
  /** https://adb-xxx.azuredatabricks.net (port 443 unless the URL names one). */
  upstream: URL;
  /** A PEM file of extra CAs trusted for the upstream, besides the public roots. */
  caFile?: string;
  /** Connect through this proxy's CONNECT tunnel, then TLS (ALPN h2) inside it. */
  proxy?: EgressProxy;
  /** The route's auth headers; rejects (a GatewayError with the credential's hint) when there is no token. */
  authHeaders(): Promise<AuthHeaders>;
  /** The upstream refused `token` (grpc-status 16 UNAUTHENTICATED, or HTTP 401). */
  rejectToken(token: string): void;
  /** With inbound keys: checks the client's `authorization: Bearer <key>` metadata (throws GatewayError). */
  authenticate?: KeyAuthenticator;
  /** limits.requestsPerMinutePerKey: takes one call from the key's (or the client address's) budget; throws GatewayError over it. */
  rateLimit?: (key: ReturnType<KeyAuthenticator> | undefined, address: string | undefined) => void;
  /** TCP + proxy tunnel + TLS handshake budget for a new upstream session. */
  connectTimeoutMs: number;
  /** An upstream session with no call open closes after this long (default 60 s). */
  idleTimeoutMs?: number;
  /** timeouts.idleMs: a call with no data either way for this long ends UNAVAILABLE (none when absent). */
  callIdleMs?: number;
}

export interface SparkConnectForwarder {
  /** For an http2.Http2Server / Http2SecureServer 'stream' event. Never throws. */
  handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void;
  /** Reload: open upstream sessions close once their streams end; later calls get sessions of their own. Resolves when none is left. */
  retire(): Promise<void>;
  /** Shutdown: destroys every upstream session now (calls on them end with UNAVAILABLE). */
  close(): void;
}

export function createSparkConnectForwarder(target: SparkConnectTarget, onCall: (call: SparkCall) => void): SparkConnectForwarder {
  if (target.upstream.protocol !== 'https:') throw new TypeError(`Spark Connect upstream ${target.upstream.origin}: only https:// is supported`);
  const sessions = createSessionPool({
    upstream: target.upstream,
    connectTimeoutMs: target.connectTimeoutMs,
    ...(target.caFile ? { caFile: target.caFile } : {}),
    ...(target.proxy ? { proxy: target.proxy } : {}),
    ...(target.idleTimeoutMs !== undefined ? { idleTimeoutMs: target.idleTimeoutMs } : {}),
  });
  const context: CallContext = {
    routeName: target.routeName,
    /** URL.host leaves out the default port, as :authority should (RFC 9113 section 8.3.1). */
    authority: target.upstream.host,
    admission: createCallAdmission(target),
    sessions,
    authHeaders: () => target.authHeaders(),
    rejectToken: (token: string) => target.rejectToken(token),
    ...(target.callIdleMs !== undefined ? { callIdleMs: target.callIdleMs } : {}),
    onCall,
  };
  return {
    handleStream: (stream, headers) => relayCall(context, stream, headers),
    retire: () => sessions.retire(),
    close: () => sessions.close(),
  };
}
