import type { CredentialSpec, RouteConfig } from '../../config/types.js';
import type { Credential } from '../credential.js';

export interface CredentialContext {
  env: NodeJS.ProcessEnv;
  route: RouteConfig;
}

/** One per credential type: how to tell it is configured, and how to build it. */
export interface CredentialProvider {
  readonly type: string;
  /**
   * For the default chain: why this type applies to the route (e.g. "DATABRICKS_TOKEN is set"),
   * or undefined when its settings are absent.
   */
  detect(spec: CredentialSpec, ctx: CredentialContext): string | undefined;
  create(spec: CredentialSpec, ctx: CredentialContext, reason: string): Credential;
}

/** A setting from the config spec, else from the first environment variable that is set. */
export function setting(spec: CredentialSpec, key: string, ctx: CredentialContext, ...envNames: string[]): string | undefined {
  const v = spec[key];
  if (typeof v === 'string' && v !== '') return v;
  for (const name of envNames) {
    const e = ctx.env[name];
    if (e !== undefined && e !== '') return e;
  }
  return undefined;
}
