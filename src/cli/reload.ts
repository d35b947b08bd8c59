import type { ReloadResult } from '../local/control.js';
import { printErr } from './output.js';
import { controlRequest, runningOrReport } from './running.js';

/** `reload`: the running gateway re-reads its configuration (what SIGHUP does, on every platform). */
export async function reloadCommand(url: string | undefined): Promise<number> {
  const lookup = await runningOrReport(url);
  if (lookup.kind === 'ambiguous') return 2;
  if (lookup.kind === 'none') {
    printErr(`dbx-gateway: no running gateway found${url ? ` at ${url}` : ''}; start one with dbx-gateway serve\n`);
    return 1;
  }
  const running = lookup.run;
  const res = await controlRequest(running, 'POST', '/-/reload');
  if (!res) return 1;
  const body = JSON.parse(res.body) as ReloadResult & { message?: string };
  if (res.status !== 200) {
    printErr(
      `dbx-gateway: the reload of ${running.url} was refused; the previous configuration stays:\n${(body.notes ?? [body.message]).map((n) => `  ${n}`).join('\n')}\n`,
    );
    return 1;
  }
  printErr(`reloaded ${running.url}: routes ${body.routes.join(', ') || 'none'}\n${body.notes.map((n) => `  note: ${n}\n`).join('')}`);
  return 0;
}
