import { chmodSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

/**
 * Where the gateway's own files and the user's home live, per platform. Everything is read from
 * the given environment, never from the real one behind its back: os.homedir() is consulted only
 * when `env` IS process.env (so tests and containers with a made-up environment never touch a
 * real home). `platform` is a parameter so the Windows rules are testable on Linux.
 */

/**
 * An environment variable. On Windows the names are case-insensitive (process.env itself is, a
 * copy of it is not, and Windows spells some of them `Path`, `ComSpec`, `SystemRoot`).
 */
export function envValue(env: NodeJS.ProcessEnv, name: string, platform: NodeJS.Platform = process.platform): string | undefined {
  const exact = env[name];
  if (exact !== undefined || platform !== 'win32') return exact;
  const upper = name.toUpperCase();
  const key = Object.keys(env).find((k) => k.toUpperCase() === upper);
  return key === undefined ? undefined : env[key];
}

/**
 * The user's home directory. On Windows %USERPROFILE% (else %HOMEDRIVE%%HOMEPATH%), which is what
 * Go's os.UserHomeDir (the Databricks Go SDK and CLI), Python's os.path.expanduser and the Azure
 * CLI use: NOT $HOME, which Git Bash and MSYS set to their own idea of home (often a network drive
 * such as H:\), where the Databricks CLI never writes ~/.databrickscfg. Elsewhere $HOME.
 */
export function homeDir(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string | undefined {
  if (platform === 'win32') {
    const profile = envValue(env, 'USERPROFILE', platform);
    if (profile) return profile;
    const drive = envValue(env, 'HOMEDRIVE', platform);
    const homePath = envValue(env, 'HOMEPATH', platform);
    if (drive && homePath) return path.win32.join(drive, homePath);
  } else if (env.HOME) {
    return env.HOME;
  }
  return env === process.env && platform === process.platform ? homedir() : undefined;
}

/**
 * The gateway's per-user configuration directory (stored logins live in <configDir>/logins):
 * - Windows: %APPDATA%\dbx-gateway (the roaming profile, C:\Users\NAME\AppData\Roaming), else
 *   %USERPROFILE%\AppData\Roaming\dbx-gateway. The profile directory is ACL'd to the user (plus
 *   SYSTEM and Administrators) by default, which is what protects a stored refresh token there:
 *   POSIX modes do not apply on Windows.
 * - elsewhere: $XDG_CONFIG_HOME/dbx-gateway, else ~/.config/dbx-gateway.
 * Undefined when the environment names no home.
 */
export function configDir(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string | undefined {
  if (platform === 'win32') {
    const appData = envValue(env, 'APPDATA', platform);
    if (appData) return path.win32.join(appData, 'dbx-gateway');
    const home = homeDir(env, platform);
    return home ? path.win32.join(home, 'AppData', 'Roaming', 'dbx-gateway') : undefined;
  }
  const xdg = env.XDG_CONFIG_HOME;
  // XDG Base Directory: a relative $XDG_CONFIG_HOME is invalid and ignored.
  if (xdg && path.posix.isAbsolute(xdg)) return path.posix.join(xdg, 'dbx-gateway');
  const home = homeDir(env, platform);
  return home ? path.posix.join(home, '.config', 'dbx-gateway') : undefined;
}

/** Where `listen.tls: auto` keeps the local CA: <configDir>/tls. Undefined without a home. */
export function localTlsDir(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string | undefined {
  const dir = configDir(env, platform);
  return dir ? pathFor(platform).join(dir, 'tls') : undefined;
}

/** The path rules of `platform` (so the Windows rules are testable on Linux). */
export function pathFor(platform: NodeJS.Platform): path.PlatformPath {
  return platform === 'win32' ? path.win32 : path.posix;
}

/**
 * Writes `file` atomically (a temp file, then renamed: a crash never leaves half of it) with
 * `mode` from its creation, chmod'ed in case the temp file existed. On Windows POSIX modes do not
 * apply: the gateway's files live in the user's profile, whose ACL grants only the user, SYSTEM and
 * Administrators; a rename onto an existing file works there too (MOVEFILE_REPLACE_EXISTING).
 */
export function writeFileAtomic(file: string, text: string, mode: number, platform: NodeJS.Platform = process.platform): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  if (platform !== 'win32') chmodSync(tmp, mode);
  renameSync(tmp, file);
}

/** `~`, `~/x` (and on Windows `~\x`) expanded against the home directory; anything else as is. */
export function expandHome(file: string, home: string | undefined, platform: NodeJS.Platform = process.platform): string {
  if (!home) return file;
  const tilde = platform === 'win32' ? /^~(?=$|[\\/])/ : /^~(?=$|\/)/;
  return file.replace(tilde, () => home);
}
