import type { Duplex } from 'node:stream';
import { escapeControl } from '../observability/terminal-text.js';

// PostgreSQL frontend/backend protocol v3 framing, for the parts the gateway reads itself: the
// client's first packets (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage, a password)
// and the server's messages up to AuthenticationOk. After that the relay only finds message
// boundaries (relay.ts). Source: PostgreSQL docs, "Frontend/Backend Protocol" 55.2 (message flow)
// and 55.7 (message formats).

/** Request codes carried where a StartupMessage has its protocol version. */
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
/** Protocol 3.x: the major version in the high 16 bits (3.0 = 196608, 3.2 = 196610). */
export const PROTOCOL_3 = 3;

/**
 * The server refuses a startup packet longer than this (MAX_STARTUP_PACKET_LENGTH in
 * src/include/libpq/pqcomm.h); so does the gateway, before reading it.
 */
export const MAX_STARTUP_PACKET_BYTES = 10_000;
/** A password or SASL message from a client: an inbound key is 64 characters. */
export const MAX_PASSWORD_MESSAGE_BYTES = 4_096;
/** Server messages during login (auth requests, errors, notices): none is near this. */
export const MAX_LOGIN_MESSAGE_BYTES = 64 * 1024;

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/**
 * Reads exactly `n` bytes from a paused stream, or rejects when it ends first. A stream in paused
 * mode buffers at most what it was asked for plus its high-water mark, so a client cannot make
 * this grow beyond the length the caller has already bounded.
 */
export function readExactly(stream: Duplex, n: number): Promise<Buffer> {
  if (n === 0) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.off('readable', tryRead);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
    };
    const tryRead = () => {
      const chunk = stream.read(n) as Buffer | null;
      if (chunk === null) return;
      cleanup();
      resolve(chunk);
    };
    const onEnd = () => {
      cleanup();
      reject(new ProtocolError('the connection closed in the middle of a message'));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    stream.on('readable', tryRead);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onError);
    tryRead();
  });
}

/** An untyped packet (the client's first ones): Int32 length including itself, then the body. */
export async function readUntypedPacket(stream: Duplex, maxBytes: number): Promise<Buffer> {
  const length = (await readExactly(stream, 4)).readInt32BE(0);
  if (length < 8 || length > maxBytes) throw new ProtocolError(`a startup packet of ${length} bytes is not valid (at most ${maxBytes})`);
  return readExactly(stream, length - 4);
}

export interface TypedMessage {
  type: string;
  /** The whole message as it arrived: type byte, length, body. */
  raw: Buffer;
  body: Buffer;
}

/** A typed message: Byte1 type, Int32 length including itself, the body. */
export async function readMessage(stream: Duplex, maxBytes: number): Promise<TypedMessage> {
  const head = await readExactly(stream, 5);
  const length = head.readInt32BE(1);
  if (length < 4 || length > maxBytes) {
    throw new ProtocolError(`a message of type ${JSON.stringify(String.fromCharCode(head[0] ?? 0))} claims ${length} bytes (at most ${maxBytes} here)`);
  }
  const body = await readExactly(stream, length - 4);
  return { type: String.fromCharCode(head[0] ?? 0), raw: Buffer.concat([head, body]), body };
}

export interface StartupMessage {
  /** Int32 protocol version as sent (3.0, or 3.2 from PostgreSQL 18 clients). */
  version: number;
  /** Parameters in the order sent. */
  params: Array<[string, string]>;
}

/** A StartupMessage body (after the length): version, then name/value C strings, then a NUL. */
export function parseStartup(body: Buffer): StartupMessage {
  const version = body.readInt32BE(0);
  const params: Array<[string, string]> = [];
  let offset = 4;
  const cstring = () => {
    const end = body.indexOf(0, offset);
    if (end < 0) throw new ProtocolError('a startup parameter is not NUL-terminated');
    const text = body.toString('utf8', offset, end);
    offset = end + 1;
    return text;
  };
  while (offset < body.length) {
    const name = cstring();
    if (name === '') break;
    params.push([name, cstring()]);
  }
  return { version, params };
}

/** A StartupMessage with these parameters (no code byte; Int32 length, version, pairs, NUL). */
export function serializeStartup({ version, params }: StartupMessage): Buffer {
  const parts = params.flatMap(([k, v]) => [Buffer.from(`${k}\0`), Buffer.from(`${v}\0`)]);
  const body = Buffer.concat([int32(version), ...parts, Buffer.from([0])]);
  return Buffer.concat([int32(body.length + 4), body]);
}

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n, 0);
  return b;
}

/** A typed message to the client: type byte, Int32 length, body. */
function message(type: string, body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** AuthenticationCleartextPassword: asks the client for its password (an inbound key here). */
export function cleartextPasswordRequest(): Buffer {
  return message('R', int32(3));
}

export interface PgErrorFields {
  severity: 'FATAL' | 'ERROR';
  /** SQLSTATE, e.g. 28000. */
  code: string;
  message: string;
  hint?: string;
}

/**
 * ErrorResponse: S and V (severity, localized and not), C (SQLSTATE), M (message), H (hint).
 * Text is made printable: a client shows it on a terminal.
 */
export function errorResponse({ severity, code, message: text, hint }: PgErrorFields): Buffer {
  // NUL would end the field early; control characters would reach the client's terminal.
  const field = (tag: string, value: string) => Buffer.from(`${tag}${escapeControl(value)}\0`);
  return message(
    'E',
    Buffer.concat([field('S', severity), field('V', severity), field('C', code), field('M', text), ...(hint ? [field('H', hint)] : []), Buffer.from([0])]),
  );
}
