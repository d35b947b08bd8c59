import type { IncomingHttpHeaders } from 'node:http';
import type { RouteConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';
import { percentDecode } from './path-check.js';

/** Methods that only read (the safe methods of RFC 9110 section 9.2.1 that the Databricks API uses). */
const READ_METHODS = new Set(['GET', 'HEAD']);

/**
 * Calls that mint long-lived credentials: whoever reaches the gateway could otherwise turn an
 * hour of borrowed access into a credential that outlives it. Families of canonical paths (any
 * API version, with or without /preview, workspace or account level), not spellings:
 * PATs (token/create), on-behalf-of tokens (token-management), service-principal secrets
 * (servicePrincipals/{id}/credentials/secrets) and OAuth secrets (oauth2 custom app
 * integrations and service-principal secrets). Off unless allowTokenCreation: true.
 */
const API = `/api/[^/]+(?:/preview)?`;
const ACCOUNT = `(?:/accounts(?:/[^/]+)?)?`;
const TOKEN_MINTING_PATHS: RegExp[] = [
  new RegExp(`^${API}/token/create$`),
  new RegExp(`^${API}/token-management/on-behalf-of/tokens(?:/.*)?$`),
  new RegExp(`^${API}${ACCOUNT}/service-?principals/[^/]+/credentials/secrets(?:/.*)?$`),
  new RegExp(`^${API}${ACCOUNT}/oauth2/(?:custom-app-integrations|service-principals/[^/]+/secrets)(?:/.*)?$`),
];

/** Headers some servers read as "use this method instead": never forwarded around a method policy. */
const METHOD_OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'];

/**
 * The path as a lenient server might read it, for policy matching only (the upstream still gets the
 * raw bytes): cut at '#', percent-decoded, lower case, matrix parameters dropped, dot segments
 * resolved, repeated and trailing slashes dropped. So
 * `/API/2.0//token/%63reate/` is denied like `/api/2.0/token/create`.
 */
export function canonicalPath(upstreamPath: string): string {
  // A raw '#' ends the path for any parser that treats it as a fragment.
  let path = (upstreamPath.split('?', 1)[0] ?? '/').split('#', 1)[0] ?? '/';
  // Bytewise, so an escape that is not UTF-8 (%ff) cannot stop the decoding; three rounds for
  // double and triple encoding (%2563 -> %63 -> c).
  for (let i = 0; i < 3 && path.includes('%'); i++) path = percentDecode(path);
  // Matrix parameters (`/create;x=1`) are dropped per segment, as servlet containers do; a
  // backslash is a slash to WHATWG URL parsers.
  path = path
    .toLowerCase()
    .replace(/\\/g, '/')
    .replace(/;[^/]*/g, '');
  // Dot segments resolved as a URL parser would ("/token/./create"; a ".." that only appears after
  // decoding twice, which path-check cannot see), and empty segments collapsed.
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  return `/${segments.join('/')}`;
}

const compiled = new WeakMap<RouteConfig, RegExp[]>();

function denyPatterns(route: RouteConfig): RegExp[] {
  let patterns = compiled.get(route);
  if (!patterns) {
    // Anchored: a pattern names whole paths, never a substring of one.
    patterns = (route.denyPaths ?? []).map((p) => new RegExp(`^(?:${p})$`, 'i'));
    compiled.set(route, patterns);
  }
  return patterns;
}

/** Route policy: readOnly, allowMethods, denyPaths and the default deny of token minting (403). */
export function assertAllowedByPolicy(route: RouteConfig, method: string, upstreamPath = '/'): void {
  const field = `routes.${route.name}`;
  if (route.readOnly && !READ_METHODS.has(method)) {
    throw new GatewayError('GATEWAY_FORBIDDEN', `route ${route.name} is read-only (${field}.readOnly: true): ${method} is not allowed, only GET and HEAD`);
  }
  if (route.allowMethods && !route.allowMethods.includes(method)) {
    throw new GatewayError('GATEWAY_FORBIDDEN', `${method} is not allowed on route ${route.name} (${field}.allowMethods: ${route.allowMethods.join(', ')})`);
  }
  const path = canonicalPath(upstreamPath);
  if (!route.allowTokenCreation && !READ_METHODS.has(method) && TOKEN_MINTING_PATHS.some((re) => re.test(path))) {
    throw new GatewayError(
      'GATEWAY_FORBIDDEN',
      `${method} ${path} mints a long-lived credential and is denied by default; set ${field}.allowTokenCreation: true to allow it`,
    );
  }
  const denied = denyPatterns(route).find((re) => re.test(path));
  if (denied) {
    throw new GatewayError('GATEWAY_FORBIDDEN', `${path} is denied on route ${route.name} (${field}.denyPaths: ${denied.source.slice(4, -2)})`);
  }
}

/** Method-override headers would let a GET carry out a POST behind the method policy: refuse them. */
export function assertNoMethodOverride(headers: IncomingHttpHeaders): void {
  const found = METHOD_OVERRIDE_HEADERS.find((h) => headers[h] !== undefined);
  if (found) {
    throw new GatewayError('GATEWAY_BAD_REQUEST', `the ${found} header is not forwarded; send the real method instead`);
  }
}
