import type { CliFlags } from '../config/types.js';
import { printErr, printOut } from './output.js';
import { controlRequest, fallBackToConfig, runningOrReport, useRouteFlags } from './running.js';
import { createCore, load } from './shared.js';

/**
 * Per route: where it came from, which credential and why, the token and its expiry, whether the
 * upstream answers and accepts it (SCIM Me, which also says who the token belongs to), and the
 * clock skew. A table on stdout; exit 0 only when every check of every route passes. The running
 * gateway's routes, checked by it; with route flags (and no --url), the routes they make.
 */
export async function doctor(flags: CliFlags, url?: string): Promise<number> {
  const flagsUsed = await useRouteFlags(flags, url, 'checking the routes');
  const lookup = flagsUsed ? undefined : await runningOrReport(url);
  if (lookup?.kind === 'ambiguous') return 2;
  if (lookup?.kind === 'found') {
    const running = lookup.run;
    // The routes the running gateway actually serves, checked by it.
    printErr(`checking the gateway running at ${running.url}\n`);
    const res = await controlRequest(running, 'GET', '/-/doctor');
    if (!res) return 1;
    const body = JSON.parse(res.body) as { ok?: boolean; text?: string; message?: string; warnings?: string[] };
    if (res.status !== 200) {
      printErr(`dbx-gateway: ${running.url}: ${body.message ?? res.body}\n`);
      return 1;
    }
    for (const warning of body.warnings ?? []) printErr(`warning: ${warning}\n`);
    printOut(body.text ?? '');
    return body.ok ? 0 : 1;
  }
  if (!flagsUsed && !fallBackToConfig(url, 'checking the configuration directly')) return 1;
  const config = await load(flags);
  const core = config && (await createCore(config));
  if (!core) return 2;
  try {
    for (const warning of core.warnings) printErr(`warning: ${warning}\n`);
    const { ok, text } = await (await import('../runtime/diagnose.js')).doctorReport(core);
    printOut(text);
    return ok ? 0 : 1;
  } finally {
    await core.close();
  }
}
