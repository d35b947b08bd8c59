import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { InboundKey } from '../config/types.js';
import { GatewayError } from '../errors.js';

export const KEY_PREFIX = 'dgw_';
/**
 * One challenge per header line: Chromium reads a single challenge from each WWW-Authenticate
 * line, so "Bearer ..., Basic ..." in one line gave it no Basic to prompt for, and
 * http://token:KEY@host/ never worked. charset="UTF-8" per RFC 7617 section 2.1.
 */
const WWW_AUTHENTICATE = ['Bearer realm="dbx-gateway"', 'Basic realm="dbx-gateway", charset="UTF-8"'];

/** A new key (printed once) and the hash the config keeps. */
export function newInboundKey(): { key: string; hash: string } {
  const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  return { key, hash: `sha256:${createHash('sha256').update(key).digest('hex')}` };
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The key a client presents: X-Dbx-Gateway-Key, else `Authorization: Bearer <key>` (so tools that
 * only know PATs work), else Basic with user `token` (as Databricks accepts PATs).
 */
export function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const header = one(headers['x-dbx-gateway-key'])?.trim();
  if (header) return header;
  const auth = one(headers.authorization)?.trim();
  if (!auth) return undefined;
  const bearer = /^Bearer\s+(\S+)$/i.exec(auth);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(auth);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0 && decoded.slice(0, colon) === 'token') return decoded.slice(colon + 1);
  }
  return undefined;
}

export type KeyAuthenticator = (headers: IncomingHttpHeaders) => InboundKey;

/**
 * With inbound keys configured, every proxied request must present one (401 otherwise, with
 * WWW-Authenticate). Keys are compared as SHA-256 digests with timingSafeEqual against every
 * configured key (no early exit), so timing says nothing about which bytes matched.
 */
export function createKeyAuthenticator(keys: readonly InboundKey[]): KeyAuthenticator | undefined {
  if (keys.length === 0) return undefined;
  return function authenticate(headers) {
    const presented = presentedKey(headers);
    if (presented === undefined) {
      throw new GatewayError(
        'GATEWAY_UNAUTHENTICATED',
        'this gateway needs an inbound key: send Authorization: Bearer <key> (or X-Dbx-Gateway-Key: <key>); ask its operator for one',
        { headers: { 'www-authenticate': WWW_AUTHENTICATE } },
      );
    }
    const digest = createHash('sha256').update(presented).digest();
    let match: InboundKey | undefined;
    for (const key of keys) {
      if (timingSafeEqual(key.sha256, digest) && match === undefined) match = key;
    }
    if (!match) {
      throw new GatewayError('GATEWAY_UNAUTHENTICATED', 'the inbound key is not valid; check it, or ask the operator for a new one', {
        headers: { 'www-authenticate': WWW_AUTHENTICATE },
      });
    }
    return match;
  };
}

/** Per-key route access (`inboundKeys.NAME.routes`). */
export function assertKeyMayUse(key: InboundKey | undefined, routeName: string): void {
  if (key?.routes && !key.routes.includes(routeName)) {
    throw new GatewayError('GATEWAY_FORBIDDEN', `key ${key.name} may not use route ${routeName} (inboundKeys.${key.name}.routes: ${key.routes.join(', ')})`);
  }
}
