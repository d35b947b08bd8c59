import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The control secret never travels: a control request carries a fresh nonce and an HMAC-SHA256 of
 * the nonce, method and request target under the secret, and the gateway's answer carries an HMAC
 * of the nonce, status and body. A stale run file whose address or pid now belongs to another
 * program therefore hands that program nothing it can use, and the CLI shows nothing it says
 * (HMAC as a proof of key possession, RFC 2104; the labels keep request and answer MACs apart).
 */
export const CONTROL_HEADER = 'x-dbx-gateway-control';
export const CONTROL_PROOF_HEADER = 'x-dbx-gateway-proof';

const NONCE_BYTES = 32;
const NONCE_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** The CONTROL_HEADER value for one request: `NONCE.MAC`, and the nonce to check the answer with. */
export function signControlRequest(secret: string, method: string, target: string): { header: string; nonce: string } {
  const nonce = randomBytes(NONCE_BYTES).toString('base64url');
  return { header: `${nonce}.${requestMac(secret, nonce, method, target)}`, nonce };
}

/** The request's nonce when its CONTROL_HEADER proves the secret, else undefined. */
export function verifyControlRequest(secret: string, header: string | undefined, method: string, target: string): string | undefined {
  const [nonce, mac, extra] = (header ?? '').split('.');
  if (extra !== undefined || nonce === undefined || mac === undefined || !NONCE_PATTERN.test(nonce)) return undefined;
  return sameMac(mac, requestMac(secret, nonce, method, target)) ? nonce : undefined;
}

/** The CONTROL_PROOF_HEADER value of an answer to the request with `nonce`. */
export function proveControlAnswer(secret: string, nonce: string, status: number, body: Uint8Array): string {
  const digest = createHash('sha256').update(body).digest('base64url');
  return mac(secret, `dbx-gateway control answer\n${nonce}\n${status}\n${digest}`);
}

export function verifyControlAnswer(secret: string, nonce: string, status: number, body: Uint8Array, proof: string | undefined): boolean {
  return proof !== undefined && sameMac(proof, proveControlAnswer(secret, nonce, status, body));
}

function requestMac(secret: string, nonce: string, method: string, target: string): string {
  return mac(secret, `dbx-gateway control request\n${nonce}\n${method.toUpperCase()}\n${target}`);
}

function mac(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text).digest('base64url');
}

function sameMac(presented: string, expected: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  // Both are HMAC-SHA256 in base64url when genuine: the length says nothing secret.
  return a.length === b.length && timingSafeEqual(a, b);
}
