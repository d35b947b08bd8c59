import { readFileSync } from 'node:fs';

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
