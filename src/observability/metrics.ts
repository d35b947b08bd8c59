import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { RequestStats } from './request-stats.js';

/**
 * prom-client's four classes the gateway uses, each from its own file: the package index also
 * loads the default process metrics, which pull in @opentelemetry/api (51 modules), the
 * Pushgateway client and the Summary's t-digest, none of which the gateway uses (issue 23's
 * memory breakdown in docs/benchmarks.md). prom-client has no `exports` map; test/runtime/lean-imports.test.ts
 * checks these files are still the index's classes.
 */
const promFile = createRequire(import.meta.url);
const prom = {
  Registry: promFile('prom-client/lib/registry.js') as typeof PromClient.Registry,
  Counter: promFile('prom-client/lib/counter.js') as typeof PromClient.Counter,
  Gauge: promFile('prom-client/lib/gauge.js') as typeof PromClient.Gauge,
  Histogram: promFile('prom-client/lib/histogram.js') as typeof PromClient.Histogram,
};

/** A route's metric series, bound once (prom-client hashes a label object on every call otherwise). */
export interface RouteMeter {
  request(method: string, status: number, key: string): void;
  duration: { observe(seconds: number): void };
  responseBytes: { inc(n: number): void };
  requestBytes: { inc(n: number): void };
}

export interface GatewayMetrics {
  registry: Registry;
  /** The bound series of one route ("-" for local endpoints), created on first use. */
  meter(route: string): RouteMeter;
  requests: Counter<'route' | 'method' | 'status' | 'key'>;
  duration: Histogram<'route'>;
  responseBytes: Counter<'route'>;
  requestBytes: Counter<'route'>;
  tokenFetches: Counter<'credential' | 'audience'>;
  tokenFailures: Counter<'credential' | 'audience'>;
  tokenExpiry: Gauge<'route'>;
  /** Spark Connect (gRPC) calls by route, method path (bounded: see grpcMethodLabel) and grpc-status. */
  grpcCalls: Counter<'route' | 'method' | 'grpc_status' | 'key'>;
  grpcDuration: Histogram<'route'>;
  /** Lakebase (PostgreSQL) sessions open now, by route. */
  postgresSessions: Gauge<'route'>;
  /** Lakebase sessions ended, by route and outcome (ok, token_unavailable, server_refused, ...). */
  postgresSessionsTotal: Counter<'route' | 'outcome'>;
  /** A client-chosen method path as a label: well-formed and among the first 64 seen, else "other". */
  grpcMethodLabel(method: string): string;
  /** Counts and recent errors for the status page (not exported to Prometheus). */
  stats: RequestStats;
  /** Cached token expiry per route, read at scrape time; the core sets it (and resets it on reload). */
  tokenExpirySource: () => Array<[string, number]>;
}

/** A gRPC method path: /package.Service/Method. */
const GRPC_METHOD = /^\/[A-Za-z_][\w.]{0,100}\/[A-Za-z_]\w{0,60}$/;
const MAX_GRPC_METHODS = 64;

/**
 * One registry per gateway (not prom-client's global one) so several gateways can live in one
 * process, as they do in the tests. Labels never carry tokens, keys or paths (unbounded cardinality).
 */
export function createMetrics(): GatewayMetrics {
  const registry = new prom.Registry();
  const prefix = 'dbx_gateway_';
  const meters = new Map<string, RouteMeter>();
  const grpcMethods = new Set<string>();
  const metrics: GatewayMetrics = {
    meter(route) {
      let meter = meters.get(route);
      if (!meter) {
        meter = bindRoute(metrics, route);
        meters.set(route, meter);
      }
      return meter;
    },
    tokenExpirySource: () => [],
    grpcMethodLabel(method) {
      if (grpcMethods.has(method)) return method;
      if (grpcMethods.size >= MAX_GRPC_METHODS || !GRPC_METHOD.test(method)) return 'other';
      grpcMethods.add(method);
      return method;
    },
    registry,
    stats: new RequestStats(),
    requests: new prom.Counter({
      name: `${prefix}requests_total`,
      help: 'Requests answered, by route, method, status and inbound key name ("-" without keys)',
      labelNames: ['route', 'method', 'status', 'key'],
      registers: [registry],
    }),
    duration: new prom.Histogram({
      name: `${prefix}request_duration_seconds`,
      help: 'Time from request to end of response',
      labelNames: ['route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    responseBytes: new prom.Counter({
      name: `${prefix}response_bytes_total`,
      help: 'Response body bytes sent to clients',
      labelNames: ['route'],
      registers: [registry],
    }),
    requestBytes: new prom.Counter({
      name: `${prefix}request_bytes_total`,
      help: 'Request body bytes forwarded upstream',
      labelNames: ['route'],
      registers: [registry],
    }),
    tokenFetches: new prom.Counter({
      name: `${prefix}token_fetches_total`,
      help: 'Token fetches started, by credential type and audience',
      labelNames: ['credential', 'audience'],
      registers: [registry],
    }),
    tokenFailures: new prom.Counter({
      name: `${prefix}token_fetch_failures_total`,
      help: 'Token fetches that failed',
      labelNames: ['credential', 'audience'],
      registers: [registry],
    }),
    grpcCalls: new prom.Counter({
      name: `${prefix}grpc_calls_total`,
      help: 'Spark Connect (gRPC) calls answered, by route, method, grpc-status and inbound key name',
      labelNames: ['route', 'method', 'grpc_status', 'key'],
      registers: [registry],
    }),
    grpcDuration: new prom.Histogram({
      name: `${prefix}grpc_call_duration_seconds`,
      help: 'Time from a gRPC call to its end (a streamed ExecutePlan included)',
      labelNames: ['route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    postgresSessions: new prom.Gauge({
      name: `${prefix}postgres_sessions`,
      help: 'Lakebase (PostgreSQL) sessions open now, by route',
      labelNames: ['route'],
      registers: [registry],
    }),
    postgresSessionsTotal: new prom.Counter({
      name: `${prefix}postgres_sessions_total`,
      help: 'Lakebase (PostgreSQL) sessions ended, by route and outcome',
      labelNames: ['route', 'outcome'],
      registers: [registry],
    }),
    tokenExpiry: new prom.Gauge({
      name: `${prefix}token_expiry_seconds`,
      help: 'Expiry (epoch seconds) of the cached token per route; absent when none is cached',
      labelNames: ['route'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [route, expiresOnMs] of metrics.tokenExpirySource()) {
          if (Number.isFinite(expiresOnMs)) this.set({ route }, Math.floor(expiresOnMs / 1000));
        }
      },
    }),
  };
  return metrics;
}

/**
 * Binds a route's series: request counters per method, status and key (nested maps, so a lookup
 * allocates nothing), and the route's duration and byte series.
 */
function bindRoute(metrics: GatewayMetrics, route: string): RouteMeter {
  type Inc = { inc(n?: number): void };
  const counters = new Map<string, Map<number, Map<string, Inc>>>();
  return {
    request(method, status, key) {
      let byStatus = counters.get(method);
      if (!byStatus) {
        byStatus = new Map();
        counters.set(method, byStatus);
      }
      let byKey = byStatus.get(status);
      if (!byKey) {
        byKey = new Map();
        byStatus.set(status, byKey);
      }
      let counter = byKey.get(key);
      if (!counter) {
        counter = metrics.requests.labels(route, method, String(status), key);
        byKey.set(key, counter);
      }
      counter.inc();
    },
    duration: metrics.duration.labels(route),
    responseBytes: metrics.responseBytes.labels(route),
    requestBytes: metrics.requestBytes.labels(route),
  };
}
