import { createHash } from 'node:crypto';
import type { CredentialSpec, RouteConfig } from '../../config/types.js';
import type { Credential } from '../credential.js';

export interface CredentialContext {
  env: NodeJS.ProcessEnv;
  route: RouteConfig;
}

/** One per credential type: how to tell it is configured, and how to build it. */
export interface CredentialProvider {
  readonly type: string;
  /** What the default chain looks for, for the message when nothing is found. */
  readonly lookedFor: string;
  /**
   * For the default chain: why this type applies to the route (e.g. "DATABRICKS_TOKEN is set"),
   * or undefined when its settings are absent.
   */
  detect(spec: CredentialSpec, ctx: CredentialContext): string | undefined;
  create(spec: CredentialSpec, ctx: CredentialContext, reason: string): Credential;
}

/**
 * A setting from the config spec, else from the first environment variable that is set.
 * The environment fills in only a spec that names nothing but its type (`credential: TYPE`, the
 * default chain): a credential block with its own settings is complete as written, so one
 * principal's ARM_CLIENT_SECRET never pairs with another principal's clientId. A credential built
 * from a ~/.databrickscfg profile (spec.profile set) reads only the profile for the same reason.
 */
export function setting(spec: CredentialSpec, key: string, ctx: CredentialContext, ...envNames: string[]): string | undefined {
  const v = spec[key];
  if (typeof v === 'string' && v !== '') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (!usesEnvironment(spec)) return undefined;
  for (const name of envNames) {
    const e = ctx.env[name];
    if (e !== undefined && e !== '') return e;
  }
  return undefined;
}

function usesEnvironment(spec: CredentialSpec): boolean {
  return Object.keys(spec).every((k) => k === 'type');
}

/** True for "true", "1", "yes" (as the SDKs read boolean settings such as ARM_USE_MSI). */
export function isTruthy(value: string | undefined): boolean {
  return value !== undefined && /^(true|1|yes|on)$/i.test(value.trim());
}

/** A short, stable digest for identity ids: never the secret itself. */
export function digest(...parts: Array<string | undefined>): string {
  return createHash('sha256')
    .update(parts.map((p) => p ?? '').join('\u0000'))
    .digest('hex')
    .slice(0, 16);
}
