import { readFileSync } from 'node:fs';
import { errorMessage } from '../errors.js';
import type { FoundRunFile } from '../local/run-file.js';
import { printErr } from './output.js';

/** A gateway's control answers are small JSON; more than this is not one of them. */
const MAX_CONTROL_ANSWER_BYTES = 16 * 1024 * 1024;

/** The running gateway of this user (its run file), by URL or the only one; undefined if none. */
export async function findRunning(url: string | undefined): Promise<FoundRunFile | undefined> {
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
export async function runningOrReport(url: string | undefined): Promise<FoundRunFile | undefined | null> {
  try {
    return await findRunning(url);
  } catch (err) {
    printErr(`dbx-gateway: ${errorMessage(err)}\n`);
    return null;
  }
}

/**
 * A request to a running gateway's /-/ endpoint (TCP, TLS or unix socket), signed with the run
 * file's secret, which itself never travels (security/control-proof.ts). The answer counts only
 * when it proves the same secret: a stale run file whose address or pid another program has taken
 * gets that program nothing, and nothing it says is shown. Undefined when there is no verified
 * answer, said on stderr with what to do.
 */
export async function controlRequest(run: FoundRunFile, method: string, path: string): Promise<{ status: number; body: string } | undefined> {
  const [{ CONTROL_HEADER, CONTROL_PROOF_HEADER, signControlRequest, verifyControlAnswer }, http, https] = await Promise.all([
    import('../security/control-proof.js'),
    import('node:http'),
    import('node:https'),
  ]);
  const url = new URL(run.url.startsWith('unix:') ? 'http://localhost' : run.url);
  const { header, nonce } = signControlRequest(run.secret, method, path);
  const what = `remove ${run.file} if that gateway is no longer running, or pass --url with the address of a running gateway`;
  let answer: { status: number; body: Buffer; proof: string | undefined };
  try {
    answer = await new Promise((resolve, reject) => {
      const options = {
        method,
        path,
        headers: { host: 'localhost', [CONTROL_HEADER]: header },
        timeout: 30_000,
        ...(run.url.startsWith('unix:') ? { socketPath: run.url.slice('unix:'.length) } : { hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port }),
        ...(run.caFile ? { ca: readFileSync(run.caFile, 'utf8') } : {}),
      };
      const req = (url.protocol === 'https:' ? https : http).request(options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_CONTROL_ANSWER_BYTES) req.destroy(new Error(`its answer is larger than ${MAX_CONTROL_ANSWER_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => {
          const proof = res.headers[CONTROL_PROOF_HEADER];
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), proof: typeof proof === 'string' ? proof : undefined });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
      req.on('error', reject);
      req.end();
    });
  } catch (err) {
    printErr(`dbx-gateway: cannot reach the gateway of the run file ${run.file} at ${run.url} (${errorMessage(err)}): ${what}\n`);
    return undefined;
  }
  if (!verifyControlAnswer(run.secret, nonce, answer.status, answer.body, answer.proof)) {
    printErr(
      `dbx-gateway: what answers at ${run.url} (pid ${run.pid}) cannot prove it holds the secret of the run file ${run.file}, so nothing it said is used: ` +
        `the file is stale (its gateway is gone and another program has its address or pid) or is an older dbx-gateway's: ${what}\n`,
    );
    return undefined;
  }
  return { status: answer.status, body: answer.body.toString('utf8') };
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
