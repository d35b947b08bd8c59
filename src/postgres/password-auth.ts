import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

// The client side of PostgreSQL's password exchanges, answered with the database credential:
// MD5 (PostgreSQL docs 55.2.1: "md5" + md5(md5(password + user) + salt)) and SCRAM-SHA-256
// (RFC 5802 section 3, with SHA-256 per RFC 7677; PostgreSQL docs 55.3 "SASL Authentication":
// the user name in client-first is ignored, the server uses the startup's).

const pbkdf2Async = promisify(pbkdf2);

/** More than any real server asks (PostgreSQL's default is 4096): a hostile count must not pin a core. */
export const MAX_SCRAM_ITERATIONS = 1_000_000;

export function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password).update(user).digest('hex');
  return `md5${createHash('md5').update(inner).update(salt).digest('hex')}`;
}

export interface ScramClient {
  /** The client-first-message, sent in SASLInitialResponse. */
  readonly clientFirst: string;
  /** From the server-first-message, the client-final-message (with the proof). */
  final(serverFirst: string): Promise<string>;
  /** Checks the server-final-message's signature: the server knew the password too. */
  verify(serverFinal: string): void;
}

export class ScramError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramError';
  }
}

/** "n,," (no channel binding, no authzid), base64: the c= attribute of the final message. */
const GS2_HEADER = 'n,,';

export function scramSha256(password: string): ScramClient {
  const clientNonce = randomBytes(18).toString('base64');
  const clientFirstBare = `n=*,r=${clientNonce}`;
  let expectedServerSignature: Buffer | undefined;
  return {
    clientFirst: GS2_HEADER + clientFirstBare,
    async final(serverFirst) {
      const attrs = parseAttributes(serverFirst);
      const nonce = attrs.get('r');
      const salt = attrs.get('s');
      const iterations = Number(attrs.get('i'));
      if (!nonce?.startsWith(clientNonce) || nonce.length === clientNonce.length) throw new ScramError('the server nonce does not extend the client nonce');
      if (!salt) throw new ScramError('the server sent no salt');
      if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_SCRAM_ITERATIONS) {
        throw new ScramError(`the server asked for ${attrs.get('i')} iterations`);
      }
      // The credential is ASCII (a JWT), so SASLprep leaves it unchanged (RFC 4013).
      const salted = await pbkdf2Async(password, Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
      const clientKey = hmac(salted, 'Client Key');
      const storedKey = createHash('sha256').update(clientKey).digest();
      const withoutProof = `c=${Buffer.from(GS2_HEADER).toString('base64')},r=${nonce}`;
      const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
      const signature = hmac(storedKey, authMessage);
      const proof = Buffer.alloc(clientKey.length);
      for (let i = 0; i < proof.length; i++) proof[i] = (clientKey[i] ?? 0) ^ (signature[i] ?? 0);
      expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
      return `${withoutProof},p=${proof.toString('base64')}`;
    },
    verify(serverFinal) {
      const attrs = parseAttributes(serverFinal);
      const error = attrs.get('e');
      if (error) throw new ScramError(`the server ended SCRAM: ${error}`);
      const v = Buffer.from(attrs.get('v') ?? '', 'base64');
      if (!expectedServerSignature || v.length !== expectedServerSignature.length || !timingSafeEqual(v, expectedServerSignature)) {
        throw new ScramError('the server signature does not match: it does not know the credential');
      }
    },
  };
}

function hmac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text).digest();
}

/** `a=1,b=2` (values may contain '='). */
function parseAttributes(message: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) attrs.set(part.slice(0, 1), part.slice(2));
  }
  return attrs;
}
