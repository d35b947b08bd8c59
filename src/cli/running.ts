import { readFileSync } from 'node:fs';
import { errorMessage } from '../errors.js';
import type { RunFile } from '../local/run-file.js';
import { printErr } from './output.js';

/** The running gateway of this user (its run file), by URL or the only one; undefined if none. */
export async function findRunning(url: string | undefined): Promise<RunFile | undefined> {
  const [{ configDir }, { runDir, runningGateways }] = await Promise.all([import('../config/paths.js'), import('../local/run-file.js')]);
  const dir = configDir(process.env);
  if (!dir) return undefined;
  const found = runningGateways(runDir(dir), url);
  if (found.length > 1 && url === undefined) {
    const preferred = found.find((r) => /:8080$/.test(r.url));
    if (preferred) return preferred;
    throw new Error(`several gateways are running (${found.map((r) => r.url).join(', ')}); pick one with --url`);
  }
  return found[0];
}

/** findRunning, with an ambiguous choice (several gateways, no --url) said on stderr: null then. */
export async function runningOrReport(url: string | undefined): Promise<RunFile | undefined | null> {
  try {
    return await findRunning(url);
  } catch (err) {
    printErr(`dbx-gateway: ${errorMessage(err)}\n`);
    return null;
  }
}

/** A request to a running gateway's /-/ endpoint with its control secret (TCP, TLS or unix socket). */
export async function controlRequest(run: RunFile, method: string, path: string): Promise<{ status: number; body: string }> {
  const [{ CONTROL_HEADER }, http, https] = await Promise.all([import('../local/control.js'), import('node:http'), import('node:https')]);
  const url = new URL(run.url.startsWith('unix:') ? 'http://localhost' : run.url);
  return new Promise((resolve, reject) => {
    const options = {
      method,
      path,
      headers: { host: 'localhost', [CONTROL_HEADER]: run.secret },
      timeout: 30_000,
      ...(run.url.startsWith('unix:') ? { socketPath: run.url.slice('unix:'.length) } : { hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port }),
      ...(run.caFile ? { ca: readFileSync(run.caFile, 'utf8') } : {}),
    };
    const req = (url.protocol === 'https:' ? https : http).request(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${run.url} did not answer within 30 s`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Before `token` or `doctor` work from the configuration themselves: with --url naming a gateway
 * that is not there, false (exit 1); otherwise true, and stderr says what happens instead (`doing`).
 */
export function fallBackToConfig(url: string | undefined, doing: string): boolean {
  if (url) {
    printErr(`dbx-gateway: no running gateway at ${url}\n`);
    return false;
  }
  printErr(`dbx-gateway: no gateway is running: ${doing}\n`);
  return true;
}
