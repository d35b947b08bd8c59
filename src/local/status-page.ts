import { Hono } from 'hono';
import { cutoffMs, type TokenCache } from '../auth/token-cache.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { RouteTable } from '../routing/route-table.js';

export interface StatusOptions {
  routes: RouteTable;
  tokens: TokenCache;
  metrics: GatewayMetrics;
  isDraining: () => boolean;
  /** Local port per route with `port` (shown on the page). */
  routePorts?: () => Map<string, number>;
  version: string;
}

const STARTED = Date.now();

/**
 * GET /: the status page. HTML for browsers, the same data as JSON for `Accept: application/json`
 * (which the page itself polls every 5 s). It never fetches a token (that is /readyz's job): it
 * shows what the cache holds. No secret is in it, and no external asset.
 */
export function statusPage(options: StatusOptions): Hono {
  const app = new Hono();
  app.get('/', (c) => {
    const accept = c.req.header('accept') ?? '';
    if (accept.includes('application/json') && !accept.includes('text/html')) {
      return c.json(statusJson(options), 200, { 'cache-control': 'no-store' });
    }
    return c.html(PAGE, 200, {
      'cache-control': 'no-store',
      // Everything is inline; nothing else may load.
      'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    });
  });
  return app;
}

export function statusJson({ routes, tokens, metrics, isDraining, routePorts, version }: StatusOptions) {
  const now = Date.now();
  const ports = routePorts?.() ?? new Map<string, number>();
  const list = routes.routes.map((route) => {
    const status = tokens.status(route.credential, 'databricks');
    const token = status.token;
    const usable = token !== undefined && now < cutoffMs(token);
    const counts = metrics.stats.counts(route.name);
    return {
      name: route.name,
      prefix: route.prefix,
      upstream: route.target.origin,
      ...(ports.has(route.name) ? { port: ports.get(route.name) } : {}),
      source: route.config.source,
      credential: route.credential.type,
      reason: route.credential.reason,
      token: usable ? 'ready' : status.lastError ? 'failing' : 'not fetched yet',
      expires_on: token && Number.isFinite(token.expiresOnMs) ? Math.floor(token.expiresOnMs / 1000) : null,
      last_error: status.lastError ?? null,
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

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dbx-gateway status</title>
<style>
  :root { color-scheme: light dark; --ok: #1f7a45; --bad: #b3261e; --muted: #5f6368; }
  body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 72rem; padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.1rem; margin: 1.75rem 0 .5rem; }
  p.meta { color: var(--muted); margin: 0 0 1rem; }
  table { border-collapse: collapse; width: 100%; }
  caption { text-align: left; font-weight: 600; padding-bottom: .4rem; }
  th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #8884; vertical-align: top; }
  th { font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .state { font-weight: 600; }
  .ready { color: var(--ok); }
  .failing { color: var(--bad); }
  .why, .err { color: var(--muted); font-size: .9em; }
  .err { color: var(--bad); word-break: break-word; }
  code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
  :focus-visible { outline: 3px solid #1a73e8; outline-offset: 2px; }
</style>
</head>
<body>
<main>
  <h1>dbx-gateway</h1>
  <p class="meta" id="meta" aria-live="polite">Loading status...</p>
  <table>
    <caption>Routes</caption>
    <thead><tr>
      <th scope="col">Route</th><th scope="col">Upstream</th><th scope="col">Credential</th>
      <th scope="col">Token</th><th scope="col">Expires in</th>
      <th scope="col" class="num">Requests</th><th scope="col" class="num">Errors</th>
    </tr></thead>
    <tbody id="routes"></tbody>
  </table>
  <h2 id="errors-title">Recent errors</h2>
  <table aria-labelledby="errors-title">
    <thead><tr><th scope="col">Time</th><th scope="col">Route</th><th scope="col">Request</th><th scope="col">Status</th><th scope="col">Error</th></tr></thead>
    <tbody id="errors"></tbody>
  </table>
</main>
<script>
"use strict";
let data = null;
let fetchedAt = 0;
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; };
function left(expiresOn) {
  if (expiresOn === null) return "-";
  const s = Math.round(expiresOn - (data.now + (Date.now() - fetchedAt) / 1000));
  if (s <= 0) return "expired";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + " h " : "") + (h || m ? m + " min " : "") + sec + " s";
}
function render() {
  if (!data) return;
  document.getElementById("meta").textContent = "Status: " + data.status + " - version " + data.version + " - up " + Math.round(data.uptime_s / 60) + " min - refreshed " + new Date(fetchedAt).toLocaleTimeString();
  const body = document.getElementById("routes");
  body.replaceChildren(...data.routes.map((r) => {
    const tr = el("tr");
    const name = el("th"); name.scope = "row"; name.append(el("code", r.prefix + "/")); if (r.port) name.append(el("div", "port " + r.port, "why"));
    tr.append(name);
    tr.append(el("td", r.upstream));
    const cred = el("td"); cred.append(el("div", r.credential)); cred.append(el("div", r.reason, "why")); tr.append(cred);
    const tok = el("td"); tok.append(el("span", r.token, "state " + (r.token === "ready" ? "ready" : r.token === "failing" ? "failing" : "")));
    if (r.last_error) tok.append(el("div", "Last error: " + r.last_error, "err"));
    tr.append(tok);
    const exp = el("td", left(r.expires_on)); exp.dataset.expires = r.expires_on === null ? "" : String(r.expires_on); exp.className = "countdown"; tr.append(exp);
    tr.append(el("td", r.requests, "num")); tr.append(el("td", r.errors, "num"));
    return tr;
  }));
  const errors = document.getElementById("errors");
  errors.replaceChildren(...(data.recent_errors.length ? data.recent_errors.map((e) => {
    const tr = el("tr");
    tr.append(el("td", new Date(e.at).toLocaleTimeString()), el("td", e.route), el("td", e.method + " " + e.path), el("td", e.status), el("td", e.error || "", "err"));
    return tr;
  }) : [(() => { const tr = el("tr"); const td = el("td", "None so far."); td.colSpan = 5; tr.append(td); return tr; })()]));
}
function tick() {
  for (const td of document.querySelectorAll("td.countdown")) td.textContent = left(td.dataset.expires === "" ? null : Number(td.dataset.expires));
}
async function refresh() {
  try {
    const res = await fetch("/", { headers: { accept: "application/json" }, cache: "no-store" });
    data = await res.json();
    fetchedAt = Date.now();
    render();
  } catch (err) {
    document.getElementById("meta").textContent = "The gateway did not answer (" + err.message + "); retrying.";
  }
}
refresh();
setInterval(refresh, 5000);
setInterval(tick, 1000);
</script>
</body>
</html>
`;
