import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/paths.js';

/**
 * What a serving gateway tells the commands run next to it (`token`, `doctor`, `status`,
 * `reload`): where it listens and the control secret its /-/ endpoints need. One file per
 * listener address in <config dir>/run, readable by the user only, removed on exit.
 */
export interface RunFile {
  url: string;
  secret: string;
  pid: number;
  /** The CA that signed the listener's certificate, with listen.tls. */
  caFile?: string;
  version: string;
  startedAt: string;
}

/** A run file as found: its content and where it lies (for "remove it" when it turns out stale). */
export interface FoundRunFile extends RunFile {
  file: string;
}

export function runDir(configDir: string): string {
  return join(configDir, 'run');
}

/** `http://127.0.0.1:8080` -> `http-127.0.0.1-8080.json`; `unix:/tmp/gw.sock` -> a name of the path. */
export function runFileName(url: string): string {
  return `${url.replace(/^([a-z]+):\/*/i, '$1-').replace(/[^A-Za-z0-9.-]+/g, '-')}.json`;
}

/** Writes the run file (0600; on Windows the file lives in the user's profile) and returns its path. */
export function writeRunFile(dir: string, run: RunFile): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, runFileName(run.url));
  writeFileAtomic(file, `${JSON.stringify(run, null, 2)}\n`, 0o600);
  return file;
}

export function removeRunFile(file: string): void {
  rmSync(file, { force: true });
}

/**
 * The gateways whose run files are here and whose process is alive (a crashed gateway leaves its
 * file behind; its pid no longer answers). `url` picks one by its address. A live pid may be
 * another program's now: the CLI trusts what answers only once it proves the secret (running.ts).
 */
export function runningGateways(dir: string, url?: string): FoundRunFile[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const found: FoundRunFile[] = [];
  for (const name of names) {
    try {
      const file = join(dir, name);
      const run = { ...(JSON.parse(readFileSync(file, 'utf8')) as RunFile), file };
      // Our own pid is never another gateway: a stale file whose pid the OS gave to us (Windows and
      // Wine reuse small pids) must not count.
      if (typeof run.url !== 'string' || typeof run.secret !== 'string' || run.pid === process.pid || !isAlive(run.pid)) continue;
      if (url === undefined || sameUrl(run.url, url)) found.push(run);
    } catch {
      // A file being written or not ours: skip it.
    }
  }
  return found;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, but another user's (not ours to talk to, but the file is 0600 and ours).
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sameUrl(a: string, b: string): boolean {
  const norm = (u: string) => u.replace(/\/+$/, '').replace('://localhost:', '://127.0.0.1:').toLowerCase();
  return norm(a) === norm(b);
}
