import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configDir, pathFor, writeFileAtomic } from '../config/paths.js';

/** What `dbx-gateway login` keeps for one Databricks host (and account). */
export interface StoredLogin {
  host: string;
  accountId?: string;
  clientId: string;
  refreshToken: string;
  savedAt: string;
}

/**
 * <configDir>/logins: %APPDATA%\dbx-gateway\logins on Windows, $XDG_CONFIG_HOME/dbx-gateway/logins
 * (else ~/.config/dbx-gateway/logins) elsewhere, from the given environment: undefined when it
 * names no home, so tests and containers never touch a real one.
 */
export function loginDir(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string | undefined {
  const base = configDir(env, platform);
  return base ? pathFor(platform).join(base, 'logins') : undefined;
}

/** One file per host and account: readable name, hashed key (the account id is not a secret, but long). */
export function loginFile(env: NodeJS.ProcessEnv, host: URL, accountId?: string, platform: NodeJS.Platform = process.platform): string | undefined {
  const dir = loginDir(env, platform);
  if (!dir) return undefined;
  const key = createHash('sha256')
    .update(`${host.origin}|${accountId ?? ''}`)
    .digest('hex')
    .slice(0, 12);
  return pathFor(platform).join(dir, `${host.hostname.replace(/[^A-Za-z0-9.-]/g, '_')}-${key}.json`);
}

export function readLogin(file: string): StoredLogin | undefined {
  if (!existsSync(file)) return undefined;
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<StoredLogin>;
  if (typeof parsed.refreshToken !== 'string' || typeof parsed.host !== 'string' || typeof parsed.clientId !== 'string') {
    throw new Error(`${file} is not a dbx-gateway login; delete it and sign in again`);
  }
  return parsed as StoredLogin;
}

/**
 * Writes the login only the user can read, replaced atomically (a temp file, then renamed) so a
 * crash never leaves half a refresh token. POSIX: the directory 0700, the file 0600 (the temp file
 * is created 0600). Windows has no POSIX modes (Node maps them to the read-only attribute at
 * most): the file is private because it lives in the user's profile (%APPDATA%), whose ACL grants
 * only the user, SYSTEM and Administrators; new files inherit it.
 */
export function writeLogin(file: string, login: StoredLogin, platform: NodeJS.Platform = process.platform): void {
  const posix = platform !== 'win32';
  const dir = join(file, '..');
  mkdirSync(dir, { recursive: true, ...(posix ? { mode: 0o700 } : {}) });
  if (posix) chmodSync(dir, 0o700);
  writeFileAtomic(file, `${JSON.stringify(login, null, 2)}\n`, 0o600, platform);
}
