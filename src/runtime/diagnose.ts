import { plural, span } from '../english.js';
import { describeWithTlsFix, errorMessage } from '../errors.js';
import { scrubSecrets } from '../observability/redact.js';
import { escapeControl } from '../observability/terminal-text.js';
import { authHeaders } from '../proxy/auth-headers.js';
import type { Route } from '../routing/route-table.js';
import type { GatewayCore } from './core.js';

/** Clocks further apart than this break token validation (Entra allows about 5 min of skew). */
export const MAX_CLOCK_SKEW_S = 120;
/** doctor's Postgres login: the default timeouts.connectMs. */
const DOCTOR_CONNECT_TIMEOUT_MS = 10_000;
/** doctor's SCIM Me call: headers and body each. */
const DOCTOR_PROBE_TIMEOUT_MS = 15_000;

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface DoctorRow {
  route: Route;
  ok: boolean;
  checks: DoctorCheck[];
}

export interface Probe {
  status: number;
  ms: number;
  date?: string;
  body: string;
}

/**
 * Per route: the token, then a real call with it to the SCIM Me endpoint, which says whether the
 * upstream is reachable, whether it accepts the token, and who the token belongs to; its Date
 * header gives the clock skew.
 */
async function diagnose(core: Pick<GatewayCore, 'routes' | 'tokens'>): Promise<DoctorRow[]> {
  return Promise.all(core.routes.all.map((route) => diagnoseRoute(core, route)));
}

async function diagnoseRoute(core: Pick<GatewayCore, 'routes' | 'tokens'>, route: Route): Promise<DoctorRow> {
  const checks: DoctorCheck[] = [];
  let headers: Record<string, string>;
  try {
    const auth = await authHeaders(route, core.tokens);
    headers = auth.headers;
    const token = await core.tokens.get(route.credential, 'databricks');
    checks.push({
      name: 'token',
      ok: true,
      detail: Number.isFinite(token.expiresOnMs)
        ? `ok, expires ${new Date(token.expiresOnMs).toISOString()} (in ${span(token.expiresOnMs - Date.now())})`
        : 'ok (does not expire)',
    });
  } catch (err) {
    checks.push({ name: 'error', ok: false, detail: errorMessage(err) });
    return { route, ok: false, checks };
  }
  const path = scimMePath(route);
  let probe: Probe;
  try {
    probe = await getViaRoute(route, path, headers, DOCTOR_PROBE_TIMEOUT_MS);
  } catch (err) {
    checks.push({ name: 'upstream', ok: false, detail: `unreachable: ${scrubSecrets(describeWithTlsFix(err))}` });
    return { route, ok: false, checks };
  }
  const reachable = probe.status < 500;
  const accepted = probe.status >= 200 && probe.status < 300;
  checks.push({
    name: 'upstream',
    ok: reachable && accepted,
    detail: `${reachable ? 'reachable' : 'failing'} (GET ${path}: ${probe.status} in ${Math.round(probe.ms)} ms)${
      probe.status === 401 || probe.status === 403 ? `; the token was refused: ${scrubSecrets(probe.body.slice(0, 200))}` : ''
    }`,
  });
  if (accepted) {
    checks.push({ name: 'identity', ok: true, detail: identityOf(probe.body, true) ?? 'unknown (no userName in the SCIM answer)' });
    const pg = route.config.postgres;
    if (pg) {
      try {
        const { probePostgres } = await import('../postgres/probe.js');
        checks.push({ name: 'postgres', ok: true, detail: await probePostgres(route, pg, core.tokens, DOCTOR_CONNECT_TIMEOUT_MS) });
      } catch (err) {
        checks.push({ name: 'postgres', ok: false, detail: scrubSecrets(describeWithTlsFix(err)) });
      }
    }
  }
  if (probe.date) {
    const skew = (Date.now() - Date.parse(probe.date)) / 1000;
    const ok = Math.abs(skew) <= MAX_CLOCK_SKEW_S;
    checks.push({
      name: 'clock',
      ok,
      detail: ok
        ? `in sync (this machine is ${skew >= 0 ? '+' : ''}${skew.toFixed(0)} s from the upstream)`
        : `this machine is ${skew.toFixed(0)} s off the upstream's clock; tokens will look expired or not yet valid: sync the clock (NTP)`,
    });
  }
  return { route, ok: checks.every((c) => c.ok), checks };
}

/** The SCIM Me endpoint of a route: who its token belongs to. */
export function scimMePath(route: Route): string {
  return route.config.kind === 'account' && route.config.accountId
    ? `/api/2.0/accounts/${encodeURIComponent(route.config.accountId)}/scim/v2/Me`
    : '/api/2.0/preview/scim/v2/Me';
}

/** The user name (or a service principal's application id) in a SCIM Me answer; undefined if none. */
export function identityOf(body: string, withDisplayName = false): string | undefined {
  try {
    const me = JSON.parse(body) as { userName?: unknown; displayName?: unknown; applicationId?: unknown };
    const name = typeof me.userName === 'string' ? me.userName : typeof me.applicationId === 'string' ? me.applicationId : undefined;
    if (!name) return undefined;
    return withDisplayName && typeof me.displayName === 'string' && me.displayName && me.displayName !== name ? `${name} (${me.displayName})` : name;
  } catch {
    return undefined;
  }
}

/**
 * A GET through the route's own pool (its caFile, timeouts and egress proxy), body capped at
 * 64 KiB, given up after `timeoutMs` in all.
 */
export async function getViaRoute(route: Route, path: string, headers: Record<string, string>, timeoutMs: number): Promise<Probe> {
  const started = performance.now();
  const res = await route.pool.request({
    origin: route.target.origin,
    path,
    method: 'GET',
    headers: { ...headers, accept: 'application/json' },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    signal: AbortSignal.timeout(timeoutMs),
  });
  let body = '';
  for await (const chunk of res.body) {
    if (body.length < 64 * 1024) body += (chunk as Buffer).toString('utf8');
  }
  const date = res.headers.date;
  return { status: res.statusCode, ms: performance.now() - started, ...(typeof date === 'string' ? { date } : {}), body };
}

/** doctor's checks of every route, as the table it prints and whether all passed. */
export async function doctorReport(core: Pick<GatewayCore, 'routes' | 'tokens'>): Promise<{ ok: boolean; text: string }> {
  const rows = await diagnose(core);
  return { ok: rows.every((r) => r.ok), text: formatDoctor(rows) };
}

/** The table doctor prints: one block per route, PASS or FAIL first. */
function formatDoctor(rows: DoctorRow[]): string {
  const lines: string[] = [];
  for (const { route, ok, checks } of rows) {
    // Details carry upstream text (a SCIM user name, an error body, an error_description): each
    // line's control characters are escaped, so none can redraw the report (terminal-text.ts).
    lines.push(escapeControl(`${ok ? 'PASS' : 'FAIL'}  ${route.prefix}  ->  ${route.target.origin}`));
    lines.push(escapeControl(`      source:     ${route.config.source}`));
    lines.push(escapeControl(`      credential: ${route.credential.type} (${route.credentialReason})`));
    for (const c of checks) {
      const mark = c.ok || c.name === 'error' ? '' : 'FAILED: ';
      lines.push(`      ${`${c.name}:`.padEnd(11)} ${mark}${escapeDetail(c.detail)}`);
    }
  }
  const failed = rows.filter((r) => !r.ok).length;
  lines.push(failed > 0 ? `${failed} of ${plural(rows.length, 'route')} failed` : rows.length === 1 ? 'the route is ok' : `all ${rows.length} routes ok`);
  return `${lines.join('\n')}\n`;
}

/** A detail's own lines (an aggregated credential error has several) indented under it, each escaped. */
function escapeDetail(detail: string): string {
  return detail
    .split(/\r?\n/)
    .map(escapeControl)
    .join(`\n${' '.repeat(18)}`);
}
