import type { Credential } from '../auth/credential.js';
import { CredentialSetupError, createCredential, unavailableCredential } from '../auth/credentials/index.js';
import { TokenCache, type TokenCacheEvents } from '../auth/token-cache.js';
import type { GatewayConfig, RouteConfig } from '../config/types.js';
import { type DemoWorkspace, startDemoWorkspace } from '../demo/demo-workspace.js';
import { ConfigError, errorMessage } from '../errors.js';
import { createMetrics, type GatewayMetrics } from '../observability/metrics.js';
import { resolveProxy, withoutCredentials } from '../proxy/egress-proxy.js';
import { createUpstreamPool } from '../proxy/transport.js';
import { type Route, RouteTable, routePrefix } from '../routing/route-table.js';

/** Everything but the listeners: what `serve`, `token` and `doctor` share. */
export interface GatewayCore {
  config: GatewayConfig;
  routes: RouteTable;
  tokens: TokenCache;
  metrics: GatewayMetrics;
  /** Problems that did not stop the gateway (skipped or unusable ~/.databrickscfg profiles). */
  warnings: string[];
  /** Close everything now, connections in use included (shutdown after its drain). */
  close(): Promise<void>;
  /**
   * Replaced by a reload: close idle upstream connections now and every other one as soon as its
   * exchange ends, so requests in flight finish however long they take. Resolves once all are closed.
   */
  retire(): Promise<void>;
}

export interface CoreOptions {
  env?: NodeJS.ProcessEnv;
  /** Injected wall clock for tests. */
  now?: () => number;
  tokenFetchTimeoutMs?: number;
  /** The token cache's backoff after a failed fetch (tests shorten it). */
  tokenRetry?: { baseMs: number; maxMs: number };
  /** Every token fetched, for the log (a refresh is one line). */
  onToken?: TokenCacheEvents['onToken'];
  /** On a config reload: the running token cache and metrics, kept across generations. */
  reuse?: { tokens: TokenCache; metrics: GatewayMetrics };
}

export const DEMO_ROUTE_NAME = 'demo';

export async function createGatewayCore(config: GatewayConfig, options: CoreOptions = {}): Promise<GatewayCore> {
  const env = options.env ?? process.env;
  let demo: DemoWorkspace | undefined;
  const routeConfigs = [...config.routes];
  if (config.demo) {
    demo = await startDemoWorkspace();
    routeConfigs.push(demoRoute(demo.url));
  }

  // One credential instance per identity, shared by every route that uses it (one cache entry).
  const credentials = new Map<string, Credential>();
  const problems: string[] = [];
  const warnings = [...config.warnings];
  const routes: Route[] = routeConfigs.flatMap((rc) => {
    let created: Credential;
    try {
      created = createCredential(rc.credential, { env, route: rc });
    } catch (err) {
      if (!(err instanceof CredentialSetupError)) throw err;
      if (!rc.lenient) {
        problems.push(`routes.${rc.name}.credential (${rc.source}): ${err.message}`);
        return [];
      }
      // A profile the user did not ask for must not stop the gateway: serve it as unavailable.
      warnings.push(`route ${rc.name} (${rc.source}): ${err.message}; its requests get 503 until the profile is fixed`);
      created = unavailableCredential(err.message, `fix the profile's settings in ${rc.source}, or pass --no-profiles`);
    }
    const credential = credentials.get(created.id) ?? created;
    credentials.set(credential.id, credential);
    let proxy: ReturnType<typeof resolveProxy>;
    try {
      proxy = resolveProxy(rc.upstream, env, rc.proxy);
    } catch (err) {
      // Only the message: a URL parse error also carries its input, the proxy password included.
      const where = rc.proxy !== undefined ? `routes.${rc.name}.proxy` : 'HTTPS_PROXY / HTTP_PROXY (environment)';
      problems.push(`${where}: ${withoutCredentials(errorMessage(err))}; use an http:// proxy URL such as http://proxy.corp:3128`);
      return [];
    }
    return {
      name: rc.name,
      config: rc,
      prefix: routePrefix(rc),
      target: rc.upstream,
      pool: createUpstreamPool(rc.upstream, { timeouts: config.timeouts, ...(rc.caFile ? { caFile: rc.caFile } : {}), ...(proxy ? { proxy } : {}) }),
      ...(proxy ? { proxy } : {}),
      credential,
      credentialReason: created.reason,
    } satisfies Route;
  });
  if (problems.length > 0) {
    await Promise.all(routes.map((r) => r.pool.destroy()));
    await demo?.close();
    throw new ConfigError(
      problems.map((p) => config.envValues?.mask(p) ?? p),
      config.configFile,
    );
  }
  const table = new RouteTable(routes);

  // A reload keeps the token cache (same identities keep their tokens) and the metrics.
  const metrics = options.reuse?.metrics ?? createMetrics();
  const tokens =
    options.reuse?.tokens ??
    new TokenCache({
      ...(options.now ? { now: options.now } : {}),
      ...(options.tokenFetchTimeoutMs ? { fetchTimeoutMs: options.tokenFetchTimeoutMs } : {}),
      ...(options.tokenRetry ? { retryBaseMs: options.tokenRetry.baseMs, retryMaxMs: options.tokenRetry.maxMs } : {}),
      ...(options.onToken ? { onToken: options.onToken } : {}),
      onFetch: (c, audience) => metrics.tokenFetches.inc({ credential: c.type, audience }),
      onFetchFailure: (c, audience) => metrics.tokenFailures.inc({ credential: c.type, audience }),
    });
  metrics.tokenExpirySource = () =>
    routes.flatMap((r) => {
      const t = tokens.status(r.credential, 'databricks').token;
      return t ? [[r.name, t.expiresOnMs] as [string, number]] : [];
    });

  return {
    config,
    routes: table,
    tokens,
    metrics,
    warnings,
    async close() {
      await Promise.all(routes.map((r) => r.pool.destroy()));
      await demo?.close();
    },
    async retire() {
      demo?.retire();
      // undici's close() lets every request already dispatched finish, however long it takes, and
      // closes each connection as it frees up; no new request reaches a retired pool.
      await Promise.all(routes.map((r) => r.pool.close().catch(() => {})));
    },
  };
}

function demoRoute(url: URL): RouteConfig {
  return {
    name: DEMO_ROUTE_NAME,
    kind: 'workspace',
    upstream: url,
    credential: { type: 'demo' },
    readOnly: false,
    source: 'built-in demo workspace',
  };
}
