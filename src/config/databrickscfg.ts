import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { envValue, expandHome, homeDir, pathFor } from './paths.js';

/**
 * ~/.databrickscfg as the Databricks SDKs read it (Go SDK config/config_file.go with
 * ini.LoadOptions{SpaceBeforeInlineComment: true}; Python SDK config.py with configparser):
 * - sections are profiles; [DEFAULT] is a profile like any other and is NOT merged into the rest;
 * - [__settings__] is reserved for the CLI (default_profile, auth_storage), never a profile;
 * - `key = value` or `key: value`, keys case-insensitive, whitespace trimmed;
 * - full-line comments start with # or ;. An inline comment needs whitespace before it, so a
 *   secret such as `token = abc#def` keeps its '#'.
 */
export interface DatabricksCfg {
  path: string;
  profiles: Map<string, Record<string, string>>;
}

export const SETTINGS_SECTION = '__settings__';

export class CfgSyntaxError extends Error {
  override readonly name = 'CfgSyntaxError';
}

export function parseDatabricksCfg(text: string, path: string): DatabricksCfg {
  const profiles = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[([^\]]*)\]$/.exec(stripInlineComment(line));
    if (section) {
      const name = section[1]!.trim();
      if (name === '') throw new CfgSyntaxError(`${path} line ${i + 1}: empty profile name "[]"; name the profile, e.g. [dev]`);
      current = profiles.get(name) ?? {};
      profiles.set(name, current);
      continue;
    }
    // Never echo the line: it may hold a token.
    const delim = line.search(/[=:]/);
    if (delim <= 0) {
      throw new CfgSyntaxError(`${path} line ${i + 1}: expected "[profile]" or "key = value"; fix the line, or pass --no-profiles to ignore the file`);
    }
    if (!current) {
      throw new CfgSyntaxError(`${path} line ${i + 1}: a setting before any [profile] header; put it under a profile such as [DEFAULT]`);
    }
    const key = line.slice(0, delim).trim().toLowerCase();
    current[key] = stripInlineComment(line.slice(delim + 1)).trim();
  }
  profiles.delete(SETTINGS_SECTION);
  return { path, profiles };
}

function stripInlineComment(text: string): string {
  const m = /\s[#;]/.exec(text);
  return m ? text.slice(0, m.index) : text;
}

/**
 * DATABRICKS_CONFIG_FILE (with ~ expanded), else ~/.databrickscfg. The home directory comes from
 * the given environment: on Windows %USERPROFILE% (as the Databricks CLI and SDKs read it; a Git
 * Bash $HOME is not it), elsewhere $HOME. An environment without one reads no profiles.
 */
export function databricksCfgPath(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): { path: string; explicit: boolean } | undefined {
  const p = pathFor(platform);
  const home = homeDir(env, platform);
  const configured = envValue(env, 'DATABRICKS_CONFIG_FILE', platform);
  if (configured) {
    const expanded = expandHome(configured, home, platform);
    // Relative to the working directory, like the SDKs; path.resolve only on the platform it runs on.
    return { path: platform === process.platform ? path.resolve(expanded) : p.normalize(expanded), explicit: true };
  }
  return home ? { path: p.join(home, '.databrickscfg'), explicit: false } : undefined;
}

/** Reads the file; undefined when it is absent (an explicitly named file that is absent is an error). */
export function readDatabricksCfg(env: NodeJS.ProcessEnv): DatabricksCfg | undefined {
  const located = databricksCfgPath(env);
  if (!located) return undefined;
  const { path, explicit } = located;
  if (!existsSync(path)) {
    if (explicit) throw new CfgSyntaxError(`DATABRICKS_CONFIG_FILE: ${path} does not exist; fix the variable or unset it`);
    return undefined;
  }
  return parseDatabricksCfg(readFileSync(path, 'utf8'), path);
}
