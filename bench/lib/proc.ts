import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';

/** VmRSS and VmHWM (peak) of a process in MiB, from /proc (Linux). */
export function memoryMiB(pid: number): { rss: number; peak: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return { rss: Number.NaN, peak: Number.NaN };
  }
}

/** Samples RSS every `everyMs` until stopped; returns the maximum. */
export function sampleRss(pid: number, everyMs = 100): () => number {
  let max = memoryMiB(pid).rss;
  const timer = setInterval(() => {
    max = Math.max(max, memoryMiB(pid).rss);
  }, everyMs);
  return () => {
    clearInterval(timer);
    return Math.max(max, memoryMiB(pid).rss);
  };
}

let clockTicks: number | undefined;

/** Clock ticks per second of /proc/PID/stat's times (`getconf CLK_TCK`, 100 on Linux in practice). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * CPU time (utime + stime) a process has used so far, in ms, from /proc/PID/stat (Linux). The
 * command name in field 2 may hold spaces and parentheses, so the fields are counted after its
 * last ')': utime and stime are fields 14 and 15. NaN when the process is gone.
 */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clkTck();
  } catch {
    return Number.NaN;
  }
}

/** Starts a CPU meter over processes; the returned function gives the CPU ms they used since. */
export function cpuMeter(pids: number[]): () => number {
  const total = () => pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const before = total();
  return () => total() - before;
}

/** `binary` on PATH, installed from Debian package `debianPackage` with apt-get when missing (the bench's tools: wrk, curl, nginx, caddy). */
export function ensureTool(binary: string, debianPackage: string): boolean {
  const found = () => {
    try {
      execFileSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (found()) return true;
  process.stderr.write(`bench: ${binary} is missing; installing ${debianPackage} with apt-get\n`);
  try {
    execFileSync(
      'sh',
      [
        '-c',
        `(apt-get install -y --no-install-recommends ${debianPackage} || (apt-get update -qq && apt-get install -y --no-install-recommends ${debianPackage})) >/dev/null 2>&1`,
      ],
      {
        stdio: 'ignore',
        timeout: 300_000,
      },
    );
  } catch {
    // reported below
  }
  return found();
}

/** Whether something accepts TCP connections on 127.0.0.1:port now. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
