import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { envValue } from '../../config/paths.js';

/** What Windows assumes when PATHEXT is unset (cmd.exe's built-in default). */
export const DEFAULT_PATHEXT = '.COM;.EXE;.BAT;.CMD';

/**
 * The first executable called `name` on PATH, as the platform's shell would find it.
 *
 * POSIX: PATH split on ':', the first `dir/name` with the executable bit for this user.
 *
 * Windows: PATH split on ';' (entries may be quoted), and in each directory, in order, `name` with
 * every PATHEXT extension in order (default .COM;.EXE;.BAT;.CMD), so `az` finds the Azure CLI's
 * `az.cmd` and `databricks` the CLI's `databricks.exe`. A name that already has an extension
 * (`az.cmd`) is tried as is first. The bare extensionless name is never taken: that is the Git
 * Bash script the Azure CLI ships next to az.cmd, which Windows cannot run. Windows has no
 * executable bit: a regular file is enough. PATHEXT is read case-insensitively (`.CMD` and `.cmd`
 * are one extension); the file system decides the rest (NTFS is case-insensitive; on a
 * case-sensitive directory the lower-case spelling, az.cmd, and PATHEXT's own, az.CMD, are tried).
 * The current directory is not searched first, unlike cmd.exe, and a relative PATH entry (`.`,
 * `bin`, an empty one) is skipped, as Go's exec.LookPath refuses such results: a gateway never
 * runs a binary planted in whatever directory it was started from (or whatever directory the
 * tool is then started in).
 *
 * `platform` is a parameter so the Windows rules are testable on Linux with real directories.
 */
export function findOnPath(name: string, env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string | undefined {
  return platform === 'win32' ? findOnWindowsPath(name, env) : findOnPosixPath(name, env);
}

function findOnPosixPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.posix.delimiter)) {
    if (!path.posix.isAbsolute(dir)) continue;
    const candidate = path.posix.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function findOnWindowsPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  const extensions = pathExtensions(env);
  const names: string[] = [];
  if (path.win32.extname(name) !== '') names.push(name);
  for (const ext of extensions) {
    // Lower case first (what installers write: az.cmd, databricks.exe), then as PATHEXT spells it.
    for (const spelling of new Set([ext.toLowerCase(), ext])) names.push(name + spelling);
  }
  for (const raw of (envValue(env, 'PATH', 'win32') ?? '').split(path.win32.delimiter)) {
    const dir = raw.trim().replace(/^"(.*)"$/, '$1');
    // Absolute only (C:\tools, \\server\share, \tools on the current drive): `.`, `bin` or a
    // drive-relative `C:tools` depend on the current directory.
    if (!path.win32.isAbsolute(dir)) continue;
    for (const file of names) {
      const candidate = joinKeepingSeparators(dir, file);
      try {
        if (statSync(candidate).isFile()) return candidate;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

/** PATHEXT as a list: `;`-separated, each with its leading dot; the Windows default when unset. */
export function pathExtensions(env: NodeJS.ProcessEnv): string[] {
  const raw = envValue(env, 'PATHEXT', 'win32') || DEFAULT_PATHEXT;
  const seen = new Set<string>();
  const out: string[] = [];
  for (const part of raw.split(';')) {
    const ext = part.trim();
    if (!ext) continue;
    const dotted = ext.startsWith('.') ? ext : `.${ext}`;
    if (seen.has(dotted.toUpperCase())) continue;
    seen.add(dotted.toUpperCase());
    out.push(dotted);
  }
  return out;
}

/**
 * dir + name with the separator the directory already uses. Windows accepts both; keeping the
 * directory's own separators (rather than path.win32.join, which turns '/' into '\') means the
 * result is the same string the user put on PATH, and the Windows search can be exercised on
 * Linux with real '/' directories.
 */
function joinKeepingSeparators(dir: string, name: string): string {
  if (dir.endsWith('\\') || dir.endsWith('/')) return dir + name;
  const sep = dir.includes('\\') || !dir.includes('/') ? '\\' : '/';
  return `${dir}${sep}${name}`;
}
