import { createHash } from 'node:crypto';
import { Hono } from 'hono';
import { cutoffMs, refreshAtMs, type TokenCache } from '../auth/token-cache.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { RecentError } from '../observability/request-stats.js';
import type { RouteTable } from '../routing/route-table.js';
import { escapeHtml } from './html.js';

export interface StatusOptions {
  routes: RouteTable;
  tokens: TokenCache;
  metrics: GatewayMetrics;
  isDraining: () => boolean;
  /** Local port per route with `port` (shown on the page). */
  routePorts?: () => Map<string, number>;
  /** Spark Connect port per route with `sparkConnect`. */
  sparkPorts?: () => Map<string, number>;
  /** Lakebase (PostgreSQL) port per route with `postgres`. */
  postgresPorts?: () => Map<string, number>;
  /** Open Lakebase sessions per route. */
  postgresSessions?: () => Map<string, number>;
  version: string;
}

/**
 * ready: usable, no refresh due yet; expiring: usable, but within its refresh-ahead window (the
 * gateway is replacing it; a failed replacement shows as last_error); failing: no usable token and
 * the last fetch failed; expired: the cached token is past its cutoff; not fetched yet: nothing asked.
 */
export type TokenState = 'ready' | 'expiring' | 'failing' | 'expired' | 'not fetched yet';

export interface RouteStatus {
  name: string;
  prefix: string;
  upstream: string;
  port?: number;
  /** The route's Spark Connect (gRPC) port: sc://localhost:PORT. */
  spark_connect_port?: number;
  /** The route's Lakebase (PostgreSQL) port and its open sessions. */
  postgres_port?: number;
  postgres_sessions?: number;
  source: string;
  credential: string;
  reason: string;
  token: TokenState;
  /** Unix seconds; null when there is no token or it does not expire (a PAT). */
  expires_on: number | null;
  /** Scrubbed by the token cache. */
  last_error: string | null;
  /**
   * The last failure to reach the upstream (refused, reset, TLS, DNS), until an exchange with it
   * succeeds: the token may be fine while the route still does not work.
   */
  upstream_error: { at: string; reason: string } | null;
  failures: number;
  requests: number;
  errors: number;
}

export interface StatusData {
  status: 'draining' | 'serving';
  version: string;
  /** Unix seconds. */
  now: number;
  uptime_s: number;
  routes: RouteStatus[];
  recent_errors: readonly RecentError[];
}

const STARTED = Date.now();

/**
 * GET /: the status page. HTML for browsers, the same data as JSON for `Accept: application/json`.
 * The HTML arrives with the state already rendered (curl and pages without JavaScript see it); its
 * script then polls the JSON every 5 s to refresh the same elements, and runs the expiry countdown.
 * It never fetches a token (that is /readyz's job): it shows what the cache holds. No secret is in
 * it, and no external asset.
 */
export function statusPage(options: StatusOptions): Hono {
  const app = new Hono();
  app.get('/', (c) => {
    const accept = c.req.header('accept') ?? '';
    const now = Date.now();
    const data = statusJson(options, now);
    if (accept.includes('application/json') && !accept.includes('text/html')) {
      return c.json(data, 200, { 'cache-control': 'no-store' });
    }
    return c.html(renderStatusPage(data, now), 200, {
      'cache-control': 'no-store',
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    });
  });
  return app;
}

export function statusJson(
  { routes, tokens, metrics, isDraining, routePorts, sparkPorts, postgresPorts, postgresSessions, version }: StatusOptions,
  now = Date.now(),
): StatusData {
  const ports = routePorts?.() ?? new Map<string, number>();
  const spark = sparkPorts?.() ?? new Map<string, number>();
  const pgPorts = postgresPorts?.() ?? new Map<string, number>();
  const pgSessions = postgresSessions?.() ?? new Map<string, number>();
  const list = routes.all.map((route): RouteStatus => {
    const status = tokens.status(route.credential, 'databricks');
    const token = status.token;
    const usable = token !== undefined && now < cutoffMs(token);
    const counts = metrics.stats.counts(route.name);
    const port = ports.get(route.name);
    const sparkPort = spark.get(route.name);
    const pgPort = pgPorts.get(route.name);
    return {
      name: route.name,
      prefix: route.prefix,
      upstream: route.target.origin,
      ...(port !== undefined ? { port } : {}),
      ...(sparkPort !== undefined ? { spark_connect_port: sparkPort } : {}),
      ...(pgPort !== undefined ? { postgres_port: pgPort, postgres_sessions: pgSessions.get(route.name) ?? 0 } : {}),
      source: route.config.source,
      credential: route.credential.type,
      reason: route.credentialReason,
      token: usable ? (now >= refreshAtMs(token) ? 'expiring' : 'ready') : status.lastError ? 'failing' : token ? 'expired' : 'not fetched yet',
      expires_on: token && Number.isFinite(token.expiresOnMs) ? Math.floor(token.expiresOnMs / 1000) : null,
      last_error: status.lastError ?? null,
      upstream_error: metrics.stats.upstreamProblem(route.name) ?? null,
      failures: status.failures,
      requests: counts.requests,
      errors: counts.errors,
    };
  });
  return {
    status: isDraining() ? 'draining' : 'serving',
    version,
    now: Math.floor(now / 1000),
    uptime_s: Math.floor((now - STARTED) / 1000),
    routes: list,
    recent_errors: metrics.stats.recentErrors(),
  };
}

// Server-side formatting. The page script has the same functions (SCRIPT below), so a refresh
// re-renders exactly what the server rendered. Times are UTC: the server cannot know the
// browser's time zone, and a time that says UTC is never misread.

function utcDateTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

function utcTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 19)} UTC`;
}

function timeLeft(expiresOn: number | null, nowS: number): string {
  if (expiresOn === null) return '-';
  const s = Math.round(expiresOn - nowS);
  if (s <= 0) return 'expired';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${(h ? `${h} h ` : '') + (h || m ? `${m} min ` : '') + sec} s`;
}

function stateClass(token: string): string {
  return token === 'ready' || token === 'expiring' || token === 'failing' ? `state ${token}` : token === UNREACHABLE_STATE ? 'state failing' : 'state';
}

/** A token is no use while its upstream cannot be reached: never shown as green "ready" then. */
const UNREACHABLE_STATE = 'upstream unreachable';

function shownState(r: RouteStatus): string {
  return r.upstream_error && (r.token === 'ready' || r.token === 'expiring') ? UNREACHABLE_STATE : r.token;
}

function metaText(data: StatusData, what: string, atMs: number): string {
  return `Status: ${data.status} - version ${data.version} - up ${Math.round(data.uptime_s / 60)} min - ${what} ${utcTime(atMs)}`;
}

function expiresHtml(r: RouteStatus): string {
  if (r.expires_on === null) return escapeHtml(r.token === 'ready' || r.token === 'expiring' ? 'does not expire' : '-');
  const ms = r.expires_on * 1000;
  return `<time datetime="${escapeHtml(new Date(ms).toISOString())}">${escapeHtml(utcDateTime(ms))}</time>`;
}

function routeRowHtml(r: RouteStatus, nowMs: number): string {
  const port =
    (r.port !== undefined ? `<div class="why">port ${escapeHtml(r.port)}</div>` : '') +
    (r.spark_connect_port !== undefined ? `<div class="why">Spark Connect: sc://localhost:${escapeHtml(r.spark_connect_port)}</div>` : '') +
    (r.postgres_port !== undefined
      ? `<div class="why">Postgres: host=localhost port=${escapeHtml(r.postgres_port)} (${escapeHtml(r.postgres_sessions ?? 0)} open)</div>`
      : '');
  const lastError =
    (r.last_error ? `<div class="err">Last error: ${escapeHtml(r.last_error)}</div>` : '') +
    (r.upstream_error ? `<div class="err">Upstream: ${escapeHtml(r.upstream_error.reason)}</div>` : '');
  return (
    `<tr data-route="${escapeHtml(r.name)}">` +
    `<th scope="row"><div class="name">${escapeHtml(r.name)}</div><code>${escapeHtml(`${r.prefix}/`)}</code>${port}</th>` +
    `<td>${escapeHtml(r.upstream)}</td>` +
    `<td><div>${escapeHtml(r.credential)}</div><div class="why">${escapeHtml(r.reason)}</div></td>` +
    `<td><span class="${escapeHtml(stateClass(shownState(r)))}">${escapeHtml(shownState(r))}</span>${lastError}</td>` +
    `<td class="expires">${expiresHtml(r)}</td>` +
    `<td class="countdown" data-expires="${escapeHtml(r.expires_on ?? '')}">${escapeHtml(timeLeft(r.expires_on, nowMs / 1000))}</td>` +
    `<td class="num">${escapeHtml(r.requests)}</td><td class="num">${escapeHtml(r.errors)}</td>` +
    `</tr>`
  );
}

function errorText(e: RecentError): string {
  return e.error && e.reason ? `${e.error}: ${e.reason}` : (e.reason ?? e.error ?? '');
}

function errorRowHtml(e: RecentError): string {
  const at = Date.parse(e.at);
  const time = Number.isFinite(at) ? `<time datetime="${escapeHtml(e.at)}">${escapeHtml(utcTime(at))}</time>` : escapeHtml(e.at);
  return (
    `<tr><td>${time}</td><td>${escapeHtml(e.route)}</td><td>${escapeHtml(`${e.method} ${e.path}`)}</td>` +
    `<td>${escapeHtml(e.status)}</td><td class="err">${escapeHtml(errorText(e))}</td></tr>`
  );
}

/** The whole page with `data` rendered into it; every dynamic string goes through escapeHtml. */
export function renderStatusPage(data: StatusData, nowMs = data.now * 1000): string {
  const routes = data.routes.map((r) => routeRowHtml(r, nowMs)).join('\n');
  const errors = data.recent_errors.length ? data.recent_errors.map(errorRowHtml).join('\n') : '<tr><td colspan="5">None so far.</td></tr>';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dbx-gateway status</title>
<style>${STYLE}</style>
</head>
<body>
<main id="status" data-now="${escapeHtml(nowMs)}">
  <h1>dbx-gateway</h1>
  <p class="meta" id="meta" aria-live="polite">${escapeHtml(metaText(data, 'as of', nowMs))}</p>
  <noscript><p class="meta">JavaScript is off: this is the state when the page was served. Reload to refresh it.</p></noscript>
  <table>
    <caption>Routes</caption>
    <thead><tr>
      <th scope="col">Route</th><th scope="col">Upstream</th><th scope="col">Credential</th>
      <th scope="col">Token</th><th scope="col">Expires at</th><th scope="col">Expires in</th>
      <th scope="col" class="num">Requests</th><th scope="col" class="num">Errors</th>
    </tr></thead>
    <tbody id="routes">
${routes}
    </tbody>
  </table>
  <h2 id="errors-title">Recent errors</h2>
  <table aria-labelledby="errors-title">
    <thead><tr><th scope="col">Time</th><th scope="col">Route</th><th scope="col">Request</th><th scope="col">Status</th><th scope="col">Error</th></tr></thead>
    <tbody id="errors">
${errors}
    </tbody>
  </table>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

const STYLE = `
  :root { color-scheme: light dark; --ok: #1f7a45; --warn: #8a5a00; --bad: #b3261e; --muted: #5f6368; }
  @media (prefers-color-scheme: dark) { :root { --ok: #6dd58c; --warn: #f2b84b; --bad: #f28b82; --muted: #a8acb1; } }
  body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 80rem; padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.1rem; margin: 1.75rem 0 .5rem; }
  p.meta { color: var(--muted); margin: 0 0 1rem; }
  table { border-collapse: collapse; width: 100%; }
  caption { text-align: left; font-weight: 600; padding-bottom: .4rem; }
  th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #8884; vertical-align: top; }
  th { font-weight: 600; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.countdown { font-variant-numeric: tabular-nums; white-space: nowrap; }
  .state { font-weight: 600; }
  .ready { color: var(--ok); }
  .expiring { color: var(--warn); }
  .failing { color: var(--bad); }
  .why, .err { color: var(--muted); font-size: .9em; font-weight: normal; }
  .err { color: var(--bad); word-break: break-word; }
  code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
  :focus-visible { outline: 3px solid #1a73e8; outline-offset: 2px; }
`;

// Builds the same elements as the server-side render, with textContent only (never innerHTML).
const SCRIPT = `
"use strict";
const root = document.getElementById("status");
let serverNow = Number(root.dataset.now) / 1000;
let fetchedAt = Date.now();
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; };
const iso = (ms) => new Date(ms).toISOString();
const utcDateTime = (ms) => iso(ms).slice(0, 10) + " " + iso(ms).slice(11, 19) + " UTC";
const utcTime = (ms) => iso(ms).slice(11, 19) + " UTC";
const stateClass = (t) => t === "ready" || t === "expiring" || t === "failing" ? "state " + t : t === "upstream unreachable" ? "state failing" : "state";
const shownState = (r) => r.upstream_error && (r.token === "ready" || r.token === "expiring") ? "upstream unreachable" : r.token;
const errorText = (e) => e.error && e.reason ? e.error + ": " + e.reason : (e.reason || e.error || "");
function left(expiresOn) {
  if (expiresOn === null) return "-";
  const s = Math.round(expiresOn - (serverNow + (Date.now() - fetchedAt) / 1000));
  if (s <= 0) return "expired";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + " h " : "") + (h || m ? m + " min " : "") + sec + " s";
}
function timeEl(ms, text) { const t = el("time", text); t.dateTime = iso(ms); return t; }
function routeRow(r) {
  const tr = el("tr"); tr.dataset.route = r.name;
  const name = el("th"); name.scope = "row"; name.append(el("div", r.name, "name"), el("code", r.prefix + "/"));
  if (r.port !== undefined && r.port !== null) name.append(el("div", "port " + r.port, "why"));
  if (r.spark_connect_port !== undefined) name.append(el("div", "Spark Connect: sc://localhost:" + r.spark_connect_port, "why"));
  if (r.postgres_port !== undefined) name.append(el("div", "Postgres: host=localhost port=" + r.postgres_port + " (" + (r.postgres_sessions || 0) + " open)", "why"));
  const cred = el("td"); cred.append(el("div", r.credential), el("div", r.reason, "why"));
  const tok = el("td"); tok.append(el("span", shownState(r), stateClass(shownState(r))));
  if (r.last_error) tok.append(el("div", "Last error: " + r.last_error, "err"));
  if (r.upstream_error) tok.append(el("div", "Upstream: " + r.upstream_error.reason, "err"));
  const exp = el("td", undefined, "expires");
  if (r.expires_on === null) exp.textContent = r.token === "ready" || r.token === "expiring" ? "does not expire" : "-";
  else exp.append(timeEl(r.expires_on * 1000, utcDateTime(r.expires_on * 1000)));
  const cd = el("td", left(r.expires_on), "countdown"); cd.dataset.expires = r.expires_on === null ? "" : String(r.expires_on);
  tr.append(name, el("td", r.upstream), cred, tok, exp, cd, el("td", r.requests, "num"), el("td", r.errors, "num"));
  return tr;
}
function errorRow(e) {
  const tr = el("tr");
  const at = Date.parse(e.at);
  const time = el("td"); if (Number.isFinite(at)) time.append(timeEl(at, utcTime(at))); else time.textContent = e.at;
  tr.append(time, el("td", e.route), el("td", e.method + " " + e.path), el("td", e.status), el("td", errorText(e), "err"));
  return tr;
}
function render(data) {
  document.getElementById("meta").textContent = "Status: " + data.status + " - version " + data.version + " - up " + Math.round(data.uptime_s / 60) + " min - refreshed " + utcTime(fetchedAt);
  document.getElementById("routes").replaceChildren(...data.routes.map(routeRow));
  const none = () => { const tr = el("tr"); const td = el("td", "None so far."); td.colSpan = 5; tr.append(td); return tr; };
  document.getElementById("errors").replaceChildren(...(data.recent_errors.length ? data.recent_errors.map(errorRow) : [none()]));
}
function tick() {
  for (const td of document.querySelectorAll("td.countdown")) td.textContent = left(td.dataset.expires === "" ? null : Number(td.dataset.expires));
}
async function refresh() {
  try {
    const res = await fetch("/", { headers: { accept: "application/json" }, cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    const data = await res.json();
    if (!data || !Array.isArray(data.routes) || !Array.isArray(data.recent_errors)) throw new Error("unexpected answer");
    serverNow = data.now;
    fetchedAt = Date.now();
    render(data);
  } catch (err) {
    document.getElementById("meta").textContent = "The gateway did not answer (" + err.message + "); retrying. The table shows the last state received.";
  }
}
tick();
refresh();
setInterval(refresh, 5000);
setInterval(tick, 1000);
`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/**
 * Only this page's own inline script and style may run (by hash: a string injected into the page
 * could not), the script may fetch only from the gateway, and nothing else may load.
 */
const CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');
