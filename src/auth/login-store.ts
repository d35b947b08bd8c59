import { createHash } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** What `dbx-gateway login` keeps for one Databricks host (and account). */
export interface StoredLogin {
  host: string;
  accountId?: string;
  clientId: string;
  refreshToken: string;
  savedAt: string;
}

/**
 * $XDG_CONFIG_HOME/dbx-gateway/logins (else ~/.config/dbx-gateway/logins), from the given
 * environment: undefined when it names no home, so tests and containers never touch a real one.
 */
export function loginDir(env: NodeJS.ProcessEnv): string | undefined {
  const home = env.HOME ?? env.USERPROFILE ?? (env === process.env ? homedir() : undefined);
  const base = env.XDG_CONFIG_HOME || (home ? join(home, '.config') : undefined);
  return base ? join(base, 'dbx-gateway', 'logins') : undefined;
}

/** One file per host and account: readable name, hashed key (the account id is not a secret, but long). */
export function loginFile(env: NodeJS.ProcessEnv, host: URL, accountId?: string): string | undefined {
  const dir = loginDir(env);
  if (!dir) return undefined;
  const key = createHash('sha256').update(`${host.origin}|${accountId ?? ''}`).digest('hex').slice(0, 12);
  return join(dir, `${host.hostname.replace(/[^A-Za-z0-9.-]/g, '_')}-${key}.json`);
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
 * Writes the login only the user can read: the directory 0700, the file 0600, replaced atomically
 * (a temp file created 0600, then renamed) so a crash never leaves half a refresh token.
 */
export function writeLogin(file: string, login: StoredLogin): void {
  const dir = join(file, '..');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(login, null, 2)}\n`);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}
