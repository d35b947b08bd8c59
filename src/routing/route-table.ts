import type { Credential } from '../auth/credential.js';
import { closest } from '../config/suggest.js';
import type { RouteConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';
import type { EgressProxy } from '../proxy/egress-proxy.js';
import type { Upstream } from '../proxy/transport.js';

export interface Route {
  readonly name: string;
  readonly config: RouteConfig;
  /** Local prefix: /ws/NAME or /acct/NAME. */
  readonly prefix: string;
  readonly target: URL;
  /** The undici pool to the upstream (keep-alive, timeouts, caFile, egress proxy). */
  readonly pool: Upstream;
  /** The egress proxy connections to the upstream go through, if any. */
  readonly proxy?: EgressProxy;
  readonly credential: Credential;
  /**
   * Why this route uses its credential. Routes with the same identity share one credential
   * instance (one cache entry), whose own `reason` is the first route's: this is the route's.
   */
  readonly credentialReason: string;
}

export interface ResolvedRequest {
  route: Route;
  /** Path and query for the upstream, byte-for-byte as the client sent them after the prefix. */
  upstreamPath: string;
}

/** Maps a raw request target to a route; the local prefix is "" on a per-route port. */
export type Resolver = (rawUrl: string) => ResolvedRequest & { prefix: string };

/** The main listener: /ws/NAME and /acct/NAME prefixes. */
export function prefixResolver(table: RouteTable): Resolver {
  return (rawUrl) => {
    const resolved = table.resolve(rawUrl) as ResolvedRequest & { prefix: string };
    resolved.prefix = resolved.route.prefix;
    return resolved;
  };
}

/** A per-route port: every path belongs to the one route, with no prefix. */
export function fixedResolver(route: Route): Resolver {
  return (rawUrl) => ({ route, upstreamPath: rawUrl, prefix: '' });
}

const PREFIX_PATTERN = /^\/(ws|acct)\/([^/?#]*)(.*)$/s;
/** Paths of the Databricks REST, OAuth and SQL APIs, as a client that dropped the prefix sends them. */
const DATABRICKS_API_PATH = /^\/(api|oidc|sql)\//;

export function routePrefix(config: RouteConfig): string {
  return `/${config.kind === 'account' ? 'acct' : 'ws'}/${config.name}`;
}

export class RouteTable {
  readonly #byPrefix: Map<string, Route>;

  constructor(readonly all: readonly Route[]) {
    this.#byPrefix = new Map(all.map((r) => [r.prefix, r]));
  }

  /** Maps a raw request target (`/ws/prod/api/2.0/x?y`) to its route; throws GatewayError otherwise. */
  resolve(rawUrl: string): ResolvedRequest {
    const match = PREFIX_PATTERN.exec(rawUrl);
    if (!match) throw this.unmatched(rawUrl);
    const [, kind, name = '', rest = ''] = match;
    if (name.includes('%')) {
      // An encoded slash or dot in the route name could make two parsers disagree on the route.
      throw new GatewayError('GATEWAY_BAD_REQUEST', 'the route name must not be percent-encoded');
    }
    const route = this.#byPrefix.get(`/${kind}/${name}`);
    if (!route) throw this.notFound(rawUrl);
    // "/ws/prod", "/ws/prod?x" and "/ws/prod#" all address the upstream root.
    return { route, upstreamPath: rest.startsWith('/') ? rest : `/${rest}` };
  }

  /**
   * Why a target matched no route: 400 for an encoded slash right after /ws or /acct (two parsers
   * could disagree on where the prefix ends), else 404.
   */
  unmatched(rawUrl: string): GatewayError {
    if (/^\/(ws|acct)(%2f|%5c|\\)/i.test(rawUrl)) {
      return new GatewayError('GATEWAY_BAD_REQUEST', 'encoded slashes in the /ws/NAME or /acct/NAME prefix are not accepted');
    }
    return this.notFound(rawUrl);
  }

  /** GATEWAY_ROUTE_NOT_FOUND listing what exists, so a typo is a one-look fix. */
  notFound(rawUrl: string): GatewayError {
    const path = rawUrl.split('?')[0] ?? rawUrl;
    const known = this.all.map((r) => r.prefix);
    if (DATABRICKS_API_PATH.test(path)) {
      // The Go and Java SDKs (the Databricks CLI, Terraform) keep only scheme://host:port of
      // DATABRICKS_HOST (README, "Use it from the Databricks SDKs and CLI"): /ws/NAME never reaches the gateway.
      const withPort = this.all.find((r) => r.config.port !== undefined);
      const example = withPort ? `routes.${withPort.name}.port (${withPort.config.port})` : `routes.${this.all[0]?.name ?? 'NAME'}.port: 8081`;
      return new GatewayError(
        'GATEWAY_ROUTE_NOT_FOUND',
        `${path} came without a /ws/NAME or /acct/NAME prefix: the Databricks CLI, Terraform and the Go and Java SDKs drop the path of DATABRICKS_HOST. ` +
          `Give the route its own port (${example}) and set DATABRICKS_HOST=http://127.0.0.1:PORT; known routes: ${known.join(', ') || 'none'}`,
      );
    }
    return new GatewayError(
      'GATEWAY_ROUTE_NOT_FOUND',
      (known.length > 0
        ? `no route for ${path}; known routes: ${known.join(', ')}`
        : `no route for ${path}; no routes are configured (use --workspace NAME=URL)`) + this.hint(path),
    );
  }

  /**
   * The route a near miss meant: route names are case-sensitive (a ~/.databrickscfg [DEFAULT]
   * profile is /ws/DEFAULT), so /ws/default suggests it; /ws/demo when configured routes replaced
   * the built-in demo says how to have it back.
   */
  hint(path: string): string {
    const match = PREFIX_PATTERN.exec(path);
    if (!match) return '';
    const [, kind, name = ''] = match;
    const sameKind = this.all.filter((r) => r.config.kind === (kind === 'acct' ? 'account' : 'workspace'));
    const byCase = sameKind.find((r) => r.name.toLowerCase() === name.toLowerCase());
    if (byCase) return `; did you mean ${byCase.prefix}? (route names are case-sensitive)`;
    const near = closest(
      name,
      sameKind.map((r) => r.name),
    );
    if (near !== undefined) return `; did you mean /${kind}/${near}?`;
    if (kind === 'ws' && name === 'demo') return '; the built-in demo is served only when nothing else is configured: start with --demo to serve it as well';
    return '';
  }
}
