/**
 * gRPC status facts the Spark Connect forwarder relies on, each from the gRPC specification:
 *
 * - Status codes: https://github.com/grpc/grpc/blob/master/doc/statuscodes.md
 * - HTTP/2 RST_STREAM / GOAWAY error code -> gRPC status: PROTOCOL-HTTP2.md, "Errors"
 *   (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md#errors)
 * - HTTP status of a response without grpc-status -> gRPC status: http-grpc-status-mapping.md
 *   (https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md)
 * - grpc-message percent-encoding: PROTOCOL-HTTP2.md, "Responses":
 *     Status-Message         -> "grpc-message" Percent-Encoded
 *     Percent-Byte-Unencoded -> 1*( %x20-%x24 / %x26-%x7E ) ; space and VCHAR, except %
 *     Percent-Byte-Encoded   -> "%" 2HEXDIGIT ; 0-9 A-F
 *   of the message's UTF-8 bytes.
 * - What the gateway's own refusals are called in gRPC: statuscodes.md's definitions (and
 *   http-grpc-status-mapping.md where an HTTP status has one).
 */
import { constants } from 'node:http2';
import type { GatewayError, GatewayErrorCode } from '../errors.js';

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/**
 * PROTOCOL-HTTP2.md "Errors": the status a client reports for an RST_STREAM (or GOAWAY) error
 * code. NO_ERROR maps to INTERNAL too: a stream that ends without a grpc-status trailer is a
 * failure. STREAM_CLOSED has no mapping in the spec (it never reaches the application); INTERNAL.
 */
export function statusForHttp2Error(code: number): number {
  switch (code) {
    case constants.NGHTTP2_REFUSED_STREAM:
      return GrpcStatus.UNAVAILABLE;
    case constants.NGHTTP2_CANCEL:
      return GrpcStatus.CANCELLED;
    case constants.NGHTTP2_ENHANCE_YOUR_CALM:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case constants.NGHTTP2_INADEQUATE_SECURITY:
      return GrpcStatus.PERMISSION_DENIED;
    default:
      // NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT,
      // FRAME_SIZE_ERROR, COMPRESSION_ERROR, CONNECT_ERROR, and anything unknown.
      return GrpcStatus.INTERNAL;
  }
}

/** http-grpc-status-mapping.md: for a response whose HTTP status is not 200 and has no grpc-status. */
export function statusForHttpStatus(status: number): number {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

const HEX = '0123456789ABCDEF';

/** grpc-message percent-encoding (PROTOCOL-HTTP2.md, "Responses"), over the UTF-8 bytes. */
export function encodeGrpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const plain = (byte >= 0x20 && byte <= 0x24) || (byte >= 0x26 && byte <= 0x7e);
    out += plain ? String.fromCharCode(byte) : `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}

/** The inverse, for tests and logs; malformed escapes are kept as sent (the spec asks receivers not to fail). */
export function decodeGrpcMessage(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text[i] === '%' ? text.slice(i + 1, i + 3) : '';
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      const char = String.fromCodePoint(text.codePointAt(i)!);
      bytes.push(...Buffer.from(char, 'utf8'));
      i += char.length - 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** grpc-status as sent (a header value), or undefined when absent or not a number. */
export function parseGrpcStatus(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  return text !== undefined && /^\d+$/.test(text.trim()) ? Number(text) : undefined;
}

/** A call's status as trailer fields (or the status part of a Trailers-Only answer). */
export function statusTrailers(code: number, message: string): Record<string, string> {
  return { 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) };
}

/** Each gateway error as the gRPC status a Spark Connect client gets for it (statuscodes.md). */
const STATUS_FOR_GATEWAY_ERROR: Record<GatewayErrorCode, number> = {
  GATEWAY_BAD_REQUEST: GrpcStatus.INVALID_ARGUMENT,
  GATEWAY_UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  GATEWAY_FORBIDDEN: GrpcStatus.PERMISSION_DENIED,
  // Not a Spark Connect method: as a gRPC server answers a method it does not have (404 -> UNIMPLEMENTED).
  GATEWAY_ROUTE_NOT_FOUND: GrpcStatus.UNIMPLEMENTED,
  GATEWAY_METHOD_NOT_ALLOWED: GrpcStatus.UNIMPLEMENTED,
  GATEWAY_HEADERS_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  GATEWAY_RATE_LIMITED: GrpcStatus.RESOURCE_EXHAUSTED,
  GATEWAY_INTERNAL_ERROR: GrpcStatus.INTERNAL,
  GATEWAY_UPSTREAM_UNREACHABLE: GrpcStatus.UNAVAILABLE,
  // No token: the caller's credentials are what is missing, as the HTTP door's 401-like hint says.
  GATEWAY_TOKEN_UNAVAILABLE: GrpcStatus.UNAUTHENTICATED,
  // Calls in flight over a bound: "some resource has been exhausted, perhaps a per-user quota".
  GATEWAY_OVERLOADED: GrpcStatus.RESOURCE_EXHAUSTED,
  // The gateway gave up on a call with no data either way: retryable, not the client's deadline.
  GATEWAY_UPSTREAM_TIMEOUT: GrpcStatus.UNAVAILABLE,
};

/** The one mapping from a gateway error to the status a call ends with. */
export function grpcStatusForGatewayError(err: GatewayError): number {
  return STATUS_FOR_GATEWAY_ERROR[err.code];
}
