import type { RouteStatus, StatusData } from '../local/status-page.js';
import { escapeControl, terminalJson } from '../observability/terminal-text.js';
import { printErr, printOut } from './output.js';
import { controlRequest, runningOrReport } from './running.js';

/**
 * `status`: what the running gateway serves and how it is doing (its status page, through the
 * control endpoint): one line per route with its local URL, upstream, credential, token state and
 * counts, then the recent errors. `--output json` prints the data as the status page serves it.
 */
export async function statusCommand(url: string | undefined, output: string): Promise<number> {
  if (output !== 'text' && output !== 'json') {
    printErr(`dbx-gateway: --output ${output}: use text or json\n`);
    return 2;
  }
  const lookup = await runningOrReport(url);
  if (lookup.kind === 'ambiguous') return 2;
  if (lookup.kind === 'none') {
    printErr(
      `dbx-gateway: no running gateway found${url ? ` at ${url}` : ''}; start one with dbx-gateway serve (dbx-gateway config check shows what it would serve)\n`,
    );
    return 1;
  }
  const running = lookup.run;
  const res = await controlRequest(running, 'GET', '/-/status');
  if (!res) return 1;
  if (res.status !== 200) {
    printErr(`dbx-gateway: ${running.url}: ${(JSON.parse(res.body) as { message?: string }).message ?? res.body}\n`);
    return 1;
  }
  const data = JSON.parse(res.body) as StatusData & { pid: number };
  if (output === 'json') {
    process.stdout.write(`${terminalJson(data, 2)}\n`);
    return 0;
  }
  printOut(formatStatus(data, running.url));
  return 0;
}

export function formatStatus(data: StatusData & { pid: number }, url: string): string {
  const lines = [escapeControl(`dbx-gateway ${data.version} at ${url} (pid ${data.pid}): ${data.status} for ${duration(data.uptime_s)}`), ''];
  const local = (r: RouteStatus) => {
    const main = `${url.replace(/\/$/, '')}${r.prefix}/`;
    const spark =
      (r.spark_connect_port !== undefined ? ` sc://localhost:${r.spark_connect_port}` : '') +
      (r.postgres_port !== undefined ? ` postgres://localhost:${r.postgres_port} (${r.postgres_sessions ?? 0} open)` : '');
    if (r.port === undefined || url.startsWith('unix:')) return `${main}${spark}`;
    const own = new URL(url);
    own.port = String(r.port);
    return `${main} ${own.origin}/${spark}`;
  };
  const rows = [
    ['ROUTE', 'LOCAL', 'UPSTREAM', 'CREDENTIAL', 'TOKEN', 'REQUESTS', 'ERRORS'],
    ...data.routes.map((r) => [r.name, local(r), r.upstream, r.credential, tokenText(r, data.now), String(r.requests), String(r.errors)]),
  ].map((row) => row.map(escapeControl));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) lines.push(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
  // Errors are upstream text (an error_description, a grpc-message): one line each, escaped.
  for (const r of data.routes) {
    if (r.last_error) lines.push(escapeControl(`  ${r.name}: ${r.last_error}`));
    if (r.upstream_error) lines.push(escapeControl(`  ${r.name}: upstream unreachable since ${r.upstream_error.at}: ${r.upstream_error.reason}`));
  }
  if (data.recent_errors.length > 0) {
    lines.push('', 'Recent errors:');
    for (const e of data.recent_errors.slice(-5))
      lines.push(escapeControl(`  ${e.at} ${e.route} ${e.method} ${e.path} ${e.status}${e.error ? ` ${e.error}` : ''}${e.reason ? `: ${e.reason}` : ''}`));
  }
  return `${lines.join('\n')}\n`;
}

function tokenText(r: RouteStatus, now: number): string {
  // The token may be fine, but the route does not work: never "ready" then.
  if (r.upstream_error && (r.token === 'ready' || r.token === 'expiring')) return 'upstream unreachable';
  if (r.expires_on === null || (r.token !== 'ready' && r.token !== 'expiring')) return r.token;
  return `${r.token} (${duration(r.expires_on - now)} left)`;
}

function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
