import type { ServerResponse } from 'node:http';
import type { Timeouts } from './config/types.js';
import { readsSystemTrustStore } from './security/ca-trust.js';

/** The message of anything thrown (a thrown string or object included), for text meant for a person. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Anything thrown as an Error (for APIs that take one, such as undici's abort and onError). */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(errorMessage(err));
}

/** Every error the gateway answers itself, with its HTTP status (README, "Local endpoints"). */
export const GATEWAY_ERROR_STATUS = {
  GATEWAY_BAD_REQUEST: 400,
  GATEWAY_UNAUTHENTICATED: 401,
  GATEWAY_FORBIDDEN: 403,
  GATEWAY_ROUTE_NOT_FOUND: 404,
  GATEWAY_METHOD_NOT_ALLOWED: 405,
  GATEWAY_HEADERS_TOO_LARGE: 431,
  GATEWAY_RATE_LIMITED: 429,
  GATEWAY_INTERNAL_ERROR: 500,
  GATEWAY_UPSTREAM_UNREACHABLE: 502,
  GATEWAY_TOKEN_UNAVAILABLE: 503,
  GATEWAY_OVERLOADED: 503,
  GATEWAY_UPSTREAM_TIMEOUT: 504,
} as const;

export type GatewayErrorCode = keyof typeof GATEWAY_ERROR_STATUS;

/** Marks responses made by the gateway, so clients can tell them from Databricks' own errors. */
export const GATEWAY_ERROR_HEADER = 'x-dbx-gateway-error';

/** Extra response headers of a gateway error; a list is sent as one header line per value. */
export type GatewayErrorHeaders = Record<string, string | string[]>;

export interface GatewayErrorOptions {
  cause?: unknown;
  headers?: GatewayErrorHeaders;
}

export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly headers: GatewayErrorHeaders;

  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    options: GatewayErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.headers = options.headers ?? {};
  }

  get status(): number {
    return GATEWAY_ERROR_STATUS[this.code];
  }

  /** The Databricks error shape, so SDKs and scripts parse it like any API error. */
  toJSON(): { error_code: GatewayErrorCode; message: string } {
    return { error_code: this.code, message: this.message };
  }
}

/** A failure the gateway did not expect: 500, details in its log only (never in the answer). */
export function internalError(): GatewayError {
  return new GatewayError('GATEWAY_INTERNAL_ERROR', 'internal gateway error; see the gateway log');
}

/** Raised by the upstream agent; mapped to 502 (connect) or 504 (headers, idle). */
export class UpstreamTimeoutError extends Error {
  override readonly name = 'UpstreamTimeoutError';
  constructor(
    readonly phase: 'connect' | 'headers' | 'idle',
    readonly timeoutMs: number,
  ) {
    super(`upstream ${phase} timeout after ${timeoutMs} ms`);
  }
}

/**
 * An egress proxy refused or could not be reached: 502 naming the proxy (never its credentials)
 * and what it answered.
 */
export class ProxyError extends Error {
  override readonly name = 'ProxyError';
  constructor(
    readonly proxy: string,
    readonly target: string,
    readonly answer: string,
    options?: { cause?: unknown },
  ) {
    super(`the proxy ${proxy} ${answer} for CONNECT ${target}`, options);
  }
}

/**
 * Opening a connection to an upstream (TCP, TLS) failed, or did not finish within `timeoutMs`
 * (src/proxy/connector.ts). The cause is the socket's own error.
 */
export class UpstreamConnectError extends Error {
  override readonly name = 'UpstreamConnectError';
  /** Set when the connection did not finish in time (timeouts.connectMs). */
  readonly timeoutMs: number | undefined;
  constructor(
    readonly authority: string,
    message: string,
    options: { cause?: unknown; timeoutMs?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.timeoutMs = options.timeoutMs;
  }
}

/** undici's timeout errors, by code, as the gateway's three upstream timeouts. */
const UNDICI_TIMEOUTS: Record<string, UpstreamTimeoutError['phase']> = {
  UND_ERR_CONNECT_TIMEOUT: 'connect',
  UND_ERR_HEADERS_TIMEOUT: 'headers',
  UND_ERR_BODY_TIMEOUT: 'idle',
};

/**
 * OpenSSL's certificate verification results as Node names them (X509_V_ERR_* without the prefix;
 * node/doc/api/tls.md "X509 certificate error codes"), by what fixes them.
 */
const UNTRUSTED_ISSUER = [
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'CERT_CHAIN_TOO_LONG',
];
const OUT_OF_DATE = ['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD'];
const WRONG_NAME = ['ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH'];
/** The same failures as their text, for errors that kept only the message (@azure/identity's, the az CLI's). */
const UNTRUSTED_ISSUER_TEXT = /unable to verify the first certificate|self[- ]signed certificate|unable to get (local )?issuer certificate/i;

/** A certificate the upstream presented that this gateway does not accept, and how to fix it. */
export interface TlsFailure {
  code: string;
  /** What is wrong with the certificate, in words. */
  what: string;
  /** What the user can do. */
  fix: string;
}

/** The fix for a certificate from a CA the gateway does not trust (TLS inspection, a private CA). */
export function untrustedCaFix(): string {
  return (
    "trust the root CA that issued it (behind TLS inspection: your company's root; ask IT for it as a PEM file): " +
    'caFile: /path/root-ca.pem on the route in the config file, --ca-file /path/root-ca.pem with --workspace/--account, ' +
    'or NODE_EXTRA_CA_CERTS=/path/root-ca.pem in the environment for every route' +
    (readsSystemTrustStore()
      ? ", or install it in the operating system's trust store (this Node reads it; restart the gateway after)"
      : "; on Node 22.15 or later the gateway also trusts the operating system's trust store, where IT usually installs it")
  );
}

/**
 * The TLS verification failure in `err` or its causes (the connector's UpstreamConnectError
 * carries the socket's error as its cause), or undefined when it is not one.
 */
export function tlsFailure(err: unknown): TlsFailure | undefined {
  let text = '';
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      const failure = tlsFailureByCode(code);
      if (failure) return failure;
    }
    text += ` ${errorMessage(e)}`;
  }
  const named = [...UNTRUSTED_ISSUER, ...OUT_OF_DATE, ...WRONG_NAME].find((code) => text.includes(code));
  if (named) return tlsFailureByCode(named);
  return UNTRUSTED_ISSUER_TEXT.test(text) ? tlsFailureByCode('UNABLE_TO_VERIFY_LEAF_SIGNATURE') : undefined;
}

function tlsFailureByCode(code: string): TlsFailure | undefined {
  if (UNTRUSTED_ISSUER.includes(code)) {
    return { code, what: 'the certificate it presented is not from a CA this gateway trusts', fix: untrustedCaFix() };
  }
  if (OUT_OF_DATE.includes(code)) {
    return {
      code,
      what: 'the certificate it presented is expired or not yet valid',
      fix: "check this machine's clock (NTP); if the clock is right, whoever serves that certificate (the host, or a TLS-inspecting proxy) must renew it",
    };
  }
  if (WRONG_NAME.includes(code)) {
    return {
      code,
      what: 'the certificate it presented is for other host names',
      fix: "check the route's host (the workspace URL as the Azure portal shows it); a TLS-inspecting proxy must issue certificates for the name it intercepts",
    };
  }
  return undefined;
}

/** An error's message, with what is wrong and the fix when it is a TLS verification failure (doctor, Postgres). */
export function describeWithTlsFix(err: unknown): string {
  const tls = tlsFailure(err);
  return tls ? `${errorMessage(err)}: ${tls.what}. Fix: ${tls.fix}` : errorMessage(err);
}

/**
 * Whether `err` is a failure of the transport to the upstream (socket, DNS, TLS, HTTP parsing,
 * undici's own errors, the connector's and the egress proxy's) rather than a bug in the gateway:
 * only these are answered as the upstream's fault, with their message.
 */
function isTransportError(err: unknown): boolean {
  if (err instanceof UpstreamTimeoutError || err instanceof UpstreamConnectError || err instanceof ProxyError) return true;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') {
    // undici's errors (UND_ERR_*, minus a request undici refused to build), llhttp's parse errors
    // (HPE_*), Node's socket errors (errno names: ECONNRESET, ENOTFOUND...), Node's TLS and OpenSSL's.
    if (code.startsWith('UND_ERR_')) return code !== 'UND_ERR_INVALID_ARG';
    if (/^(HPE_|E[A-Z0-9]+$|ERR_TLS_|ERR_SSL_|ERR_SOCKET_|ERR_STREAM_PREMATURE_CLOSE$)/.test(code)) return true;
  }
  return tlsFailure(err) !== undefined;
}

/**
 * The one place where a failure on the way to the upstream becomes an HTTP answer (as
 * @hono/node-server's handleFetchError maps TimeoutError to 504): a GatewayError as it is, a
 * transport error as 502 or 504 with what failed; undefined for anything else, which is the
 * gateway's own bug (failureAnswer answers it 500 and logs it).
 */
export function transportFailure(err: unknown, upstream: string, timeouts?: Pick<Timeouts, 'connectMs' | 'headersMs' | 'idleMs'>): GatewayError | undefined {
  if (err instanceof GatewayError) return err;
  if (!isTransportError(err)) return undefined;
  const undiciTimeout = UNDICI_TIMEOUTS[(err as { code?: string } | undefined)?.code ?? ''];
  if (undiciTimeout) {
    const ms = timeouts ? timeouts[undiciTimeout === 'connect' ? 'connectMs' : undiciTimeout === 'headers' ? 'headersMs' : 'idleMs'] : Number.NaN;
    return transportFailure(new UpstreamTimeoutError(undiciTimeout, ms), upstream);
  }
  if (err instanceof UpstreamConnectError) {
    // Answered as the socket's own error, or as a connect timeout, as before the connector was one.
    if (err.timeoutMs !== undefined) return transportFailure(new UpstreamTimeoutError('connect', err.timeoutMs), upstream);
    if (err.cause !== undefined) return transportFailure(err.cause, upstream, timeouts) ?? unreachable(err, upstream);
  }
  if (err instanceof ProxyError) {
    return new GatewayError('GATEWAY_UPSTREAM_UNREACHABLE', `could not reach ${upstream}: ${errorMessage(err)}`, { cause: err });
  }
  if (err instanceof UpstreamTimeoutError) {
    if (err.phase === 'connect') {
      return new GatewayError(
        'GATEWAY_UPSTREAM_UNREACHABLE',
        `could not connect to ${upstream} within ${err.timeoutMs} ms (timeouts.connectMs); check the host and your network or proxy`,
        { cause: err },
      );
    }
    return new GatewayError(
      'GATEWAY_UPSTREAM_TIMEOUT',
      `${upstream} sent no response within ${err.timeoutMs} ms (timeouts.${err.phase === 'headers' ? 'headersMs' : 'idleMs'})`,
      { cause: err },
    );
  }
  return unreachable(err, upstream);
}

function unreachable(err: unknown, upstream: string): GatewayError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'ERROR';
  const detail = errorMessage(err);
  const tls = tlsFailure(err);
  if (tls) {
    return new GatewayError('GATEWAY_UPSTREAM_UNREACHABLE', `could not reach ${upstream}: ${tls.code} (${detail}): ${tls.what}. Fix: ${tls.fix}`, {
      cause: err,
    });
  }
  return new GatewayError('GATEWAY_UPSTREAM_UNREACHABLE', `could not reach ${upstream}: ${code === 'ERROR' ? detail : `${code} (${detail})`}`, { cause: err });
}

/**
 * A failure while opening a connection (nothing was sent yet), for callers that report it as the
 * upstream's either way (route checks, Spark's session): transportFailure, else 502 with the message.
 */
export function toGatewayError(err: unknown, upstream: string, timeouts?: Pick<Timeouts, 'connectMs' | 'headersMs' | 'idleMs'>): GatewayError {
  return transportFailure(err, upstream, timeouts) ?? unreachable(err, upstream);
}

export interface WriteErrorOptions {
  extraHeaders?: Record<string, string>;
  /**
   * A refusal before forwarding: answered with `Connection: close`, and Node closes the socket once
   * the answer is written. Keeping it alive would mean reading (and discarding) whatever body the
   * client still sends, and Node's keep-alive timer restarts on every byte: a client trickling a
   * chunked body after a 401 would hold its connection slot forever.
   */
  close?: boolean;
}

/** Writes a gateway error on a raw Node response (proxy path); destroys it if headers already went out. */
export function writeGatewayError(res: ServerResponse, err: GatewayError, options: WriteErrorOptions = {}): void {
  if (res.headersSent) {
    // Mid-stream failure: the only honest signal left is an aborted response.
    res.destroy(err);
    return;
  }
  if (res.destroyed) return;
  const body = JSON.stringify(err);
  res.writeHead(err.status, {
    ...options.extraHeaders,
    ...err.headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    [GATEWAY_ERROR_HEADER]: '1',
    ...(options.close ? { connection: 'close' } : {}),
  });
  res.end(body);
}

/** The error as a whole HTTP/1.1 response, for sockets outside the HTTP server's hands. */
export function rawGatewayError(err: GatewayError): string {
  const body = JSON.stringify(err);
  const extra = Object.entries(err.headers)
    .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((one) => `${k}: ${one}\r\n`))
    .join('');
  return (
    `HTTP/1.1 ${err.status} ${err.code}\r\ncontent-type: application/json\r\n${GATEWAY_ERROR_HEADER}: 1\r\n${extra}` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** Whether an error carries a header with several values (fetch Headers would join them into one line). */
export function hasRepeatedHeader(err: GatewayError): boolean {
  return Object.values(err.headers).some((v) => Array.isArray(v) && v.length > 1);
}

/**
 * The same error as a fetch Response, for the Hono side of the app. A repeated header comes out
 * as one comma-joined line here: answer such errors with writeGatewayError instead.
 */
export function gatewayErrorResponse(err: GatewayError): Response {
  // Every error of a local endpoint is a refusal: close the connection (see WriteErrorOptions.close).
  const headers = new Headers();
  for (const [k, v] of Object.entries(err.headers)) for (const one of Array.isArray(v) ? v : [v]) headers.append(k, one);
  for (const [k, v] of Object.entries({ 'content-type': 'application/json', [GATEWAY_ERROR_HEADER]: '1', connection: 'close' })) headers.set(k, v);
  return new Response(JSON.stringify(err), { status: err.status, headers });
}

/** Every problem found in one pass, so a user fixes them all at once (oauth2-proxy style). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly problems: string[],
    readonly file?: string,
  ) {
    super(describeProblems(problems, file));
  }
}

/**
 * A problem that names a flag (`--port: ...`), an environment variable (`DBX_GATEWAY_PORT: ...`)
 * or another file (~/.databrickscfg, by its path) is not the config file's: the file is named
 * only above the problems that are its own, so a fine file is never blamed.
 */
function isOutsideFile(problem: string, file: string): boolean {
  if (problem.startsWith(file)) return false;
  return /^(--[a-z]|(DBX_GATEWAY|DATABRICKS)_[A-Z_]*\b|cannot read the Databricks config file|[/\\]|[A-Za-z]:[/\\])/.test(problem);
}

function describeProblems(problems: string[], file: string | undefined): string {
  // A problem's own continuation lines are indented for the top level ("\n  "): deeper lists shift them.
  const list = (items: string[], indent: string) => items.map((p) => `${indent}${p.replace(/\n/g, `\n${indent.slice(2)}`)}`).join('\n');
  const inFile = file ? problems.filter((p) => !isOutsideFile(p, file)) : [];
  if (!file || inFile.length === 0) return `invalid configuration:\n${list(problems, '  ')}`;
  if (inFile.length === problems.length) return `invalid configuration (${file}):\n${list(problems, '  ')}`;
  const outside = problems.filter((p) => isOutsideFile(p, file));
  return `invalid configuration:\n  in ${file}:\n${list(inFile, '    ')}\n${list(outside, '  ')}`;
}
