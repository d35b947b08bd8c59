import { readFileSync } from 'node:fs';
import type { CliFlags } from '../config/types.js';
import { errorMessage } from '../errors.js';
import type { ClientSetup } from '../local/control.js';
import type { FoundRunFile } from '../local/run-file.js';
import type { StatusData } from '../local/status-page.js';
import { printErr } from './output.js';

/** A gateway's control answers are small JSON; more than this is not one of them. */
const MAX_CONTROL_ANSWER_BYTES = 16 * 1024 * 1024;

/**
 * The running gateway of this user (its run file), by URL or the only one; undefined if none.
 * Several running and no URL is an error listing them: which one was meant cannot be guessed.
 */
export async function findRunning(url: string | undefined): Promise<FoundRunFile | undefined> {
  const found = await runningList(url);
  if (found.length > 1 && url === undefined) {
    throw new Error(`several gateways are running (${found.map((r) => r.url).join(', ')}); pick one with --url`);
  }
  return found[0];
}

async function runningList(url: string | undefined): Promise<FoundRunFile[]> {
  const [{ configDir }, { runDir, runningGateways }] = await Promise.all([import('../config/paths.js'), import('../local/run-file.js')]);
  const dir = configDir(process.env);
  return dir ? runningGateways(runDir(dir), url) : [];
}

/** What runningOrReport found: one gateway, none, or several with no --url (said on stderr: exit 2). */
export type RunningLookup = { kind: 'found'; run: FoundRunFile } | { kind: 'none' } | { kind: 'ambiguous' };

/** findRunning, with an ambiguous choice (several gateways, no --url) said on stderr. */
export async function runningOrReport(url: string | undefined): Promise<RunningLookup> {
  try {
    const run = await findRunning(url);
    return run ? { kind: 'found', run } : { kind: 'none' };
  } catch (err) {
    printErr(`dbx-gateway: ${errorMessage(err)}\n`);
    return { kind: 'ambiguous' };
  }
}

/** What `/-/status` answers: the status page's data, the pid, and what `env` needs. */
export type RunningStatus = StatusData & { pid: number; client_setup?: ClientSetup };

/** A running gateway that serves a route, with its status (which has the route's ports). */
export interface ServingGateway {
  run: FoundRunFile;
  status: RunningStatus;
}

/**
 * The running gateway that serves route `name`: the one --url names, else the only one of this
 * user's running gateways whose routes include it (each asked for its status, HMAC-proved).
 *   { found }              one serves it; stderr says which one answers
 *   { none: why }          none runs, or none serves it (why says which run and what they serve)
 *   { failed: exit code }  several serve it (listed, with "pick one with --url"; 2), or none of
 *                          those that answered does while one did not answer verifiably (said by
 *                          controlRequest; 1)
 */
export async function findServing(url: string | undefined, name: string): Promise<{ found: ServingGateway } | { none: string } | { failed: number }> {
  const runs = await runningList(url);
  if (runs.length === 0) return { none: url ? `no running gateway at ${url}` : 'no gateway is running' };
  const answers = await Promise.all(
    runs.map(async (run) => {
      const res = await controlRequest(run, 'GET', '/-/status');
      return res?.status === 200 ? { run, status: JSON.parse(res.body) as RunningStatus } : undefined;
    }),
  );
  const live = answers.filter((a) => a !== undefined);
  if (url !== undefined) return live[0] ? { found: live[0] } : { failed: 1 };
  const serving = live.filter((a) => a.status.routes.some((r) => r.name === name));
  if (serving.length > 1) {
    printErr(`dbx-gateway: route ${name} is served by ${serving.length} running gateways: ${serving.map((s) => s.run.url).join(', ')}; pick one with --url\n`);
    return { failed: 2 };
  }
  if (serving[0]) {
    printErr(`dbx-gateway: route ${name}: the gateway running at ${serving[0].run.url} answers\n`);
    return { found: serving[0] };
  }
  // A gateway that did not answer verifiably (said above) may be the one that serves it.
  if (live.length < runs.length) return { failed: 1 };
  const what = live.map((a) => `${a.run.url} serves ${a.status.routes.map((r) => r.name).join(', ') || 'no route'}`).join('; ');
  return { none: `no running gateway serves route ${name}${what ? ` (${what})` : ''}` };
}

const ROUTE_FLAGS = {
  config: '--config',
  workspace: '--workspace',
  account: '--account',
  credential: '--credential',
  profile: '--profile',
  noProfiles: '--no-profiles',
} as const satisfies Partial<Record<keyof CliFlags, string>>;

/** The route flags a command was given (--config, --workspace, ...), as the user typed their names. */
export function routeFlagsGiven(flags: CliFlags): string[] {
  return Object.entries(ROUTE_FLAGS)
    .filter(([key]) => flags[key as keyof CliFlags] !== undefined)
    .map(([, flag]) => flag);
}

/**
 * With route flags and no --url, `token`, `doctor` and `env` read the configuration those flags
 * make, not a running gateway (the flags say which routes are meant); stderr says so, naming the
 * gateways that were not asked. Returns whether that applies.
 */
export async function useRouteFlags(flags: CliFlags, url: string | undefined, doing: string): Promise<boolean> {
  const given = routeFlagsGiven(flags);
  if (given.length === 0) return false;
  if (url !== undefined) {
    printErr(`dbx-gateway: ${given.join(', ')} not used: --url ${url} names the gateway that answers\n`);
    return false;
  }
  const running = (await runningList(undefined)).map((r) => r.url);
  const skipped =
    running.length > 0 ? `, not the running gateway${running.length > 1 ? 's' : ''} at ${running.join(', ')} (drop the flags or pass --url to ask one)` : '';
  printErr(`dbx-gateway: ${given.join(', ')} given, so ${doing} from the flags${skipped}\n`);
  return true;
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
