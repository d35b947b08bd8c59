import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { errorMessage } from '../errors.js';
import { CfgSyntaxError, type DatabricksCfg, readDatabricksCfg } from './databrickscfg.js';
import { EnvValues } from './env-values.js';
import { type FileConfig, fileConfigSchema, routeSchema } from './schema.js';
import { closest } from './suggest.js';
import type { CliFlags } from './types.js';

// Where configuration comes from: the config file (found, read, ${VAR} expanded, checked against
// the schema with every problem in the words of README's "Config file") and ~/.databrickscfg.

export const DEFAULT_CONFIG_FILE = 'dbx-gateway.yaml';

export function findConfigFile(flags: CliFlags, env: NodeJS.ProcessEnv, cwd: string, problems: string[]): string | undefined {
  // An empty DBX_GATEWAY_CONFIG (e.g. `-e DBX_GATEWAY_CONFIG=` to clear an image default) means none.
  const explicit = flags.config ?? (env.DBX_GATEWAY_CONFIG || undefined);
  if (explicit !== undefined) {
    const path = resolve(cwd, explicit);
    if (!existsSync(path)) {
      const origin = flags.config !== undefined ? '--config' : 'DBX_GATEWAY_CONFIG';
      problems.push(`${origin}: ${path} does not exist; create it or point ${origin} at an existing file`);
      return undefined;
    }
    return path;
  }
  const implicit = resolve(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(implicit) ? implicit : undefined;
}

/**
 * yaml's cap on alias expansion (its default, set here on purpose): aliases multiply, so a few
 * lines of `&a [*b, *b, ...]` would otherwise expand to gigabytes ("billion laughs"). yaml counts
 * each alias use times the aliases inside its anchor (docs: ToJSOptions.maxAliasCount); a config
 * file has no need for more.
 */
export const MAX_YAML_ALIAS_COUNT = 100;

/** yaml's ReferenceError when aliases expand too far (or point nowhere), as a problem naming the file. */
export function yamlAliasProblem(path: string, err: unknown): string {
  const message = errorMessage(err);
  if (/excessive alias count/i.test(message)) {
    return `${path}: its YAML aliases (*name) expand to more than ${MAX_YAML_ALIAS_COUNT} copies, the shape of a resource exhaustion attack; write the values out, or use fewer aliases`;
  }
  return `${path}: YAML: ${message}; define each anchor (&name) before its aliases (*name)`;
}

/** The file's settings, `${VAR}` expanded; `values` collects what the expansion put in, for masking. */
export function readConfigFile(path: string, env: NodeJS.ProcessEnv, problems: string[], values: EnvValues = new EnvValues()): FileConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`cannot read ${path}: ${errorMessage(err)}`);
    return {};
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    // The yaml library's message names the line and column and quotes the line with a caret.
    for (const e of doc.errors) problems.push(`YAML syntax: ${e.message.trimEnd().replace(/\n/g, '\n    ')}`);
    return {};
  }
  let tree: unknown;
  try {
    tree = doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
  } catch (err) {
    problems.push(yamlAliasProblem(path, err));
    return {};
  }
  const raw: unknown = expandEnv(tree ?? {}, env, '', problems, values);
  const parsed = fileConfigSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(describeIssue(issue));
    return validParts(raw);
  }
  return parsed.data;
}

/**
 * The parts of an invalid file that are valid on their own (each route, listen, credential), so
 * the checks after the schema (credential types and settings, ports, hosts) report in the same
 * pass instead of in a second round after the first fix.
 */
function validParts(raw: unknown): FileConfig {
  if (raw === null || typeof raw !== 'object') return {};
  const object = raw as Record<string, unknown>;
  const partial: Record<string, unknown> = {};
  const shape = fileConfigSchema.shape as Record<string, { safeParse(v: unknown): { success: boolean; data?: unknown } }>;
  for (const key of ['listen', 'credential', 'allowedHosts'] as const) {
    const part = shape[key]?.safeParse(object[key]);
    if (object[key] !== undefined && part?.success) partial[key] = part.data;
  }
  if (object.routes !== null && typeof object.routes === 'object') {
    const routes: Record<string, unknown> = {};
    const known = new Set(Object.keys(routeSchema.shape));
    const fields = routeSchema.shape as Record<string, { safeParse(v: unknown): { success: boolean; data?: unknown } }>;
    for (const [name, route] of Object.entries(object.routes as Record<string, unknown>)) {
      if (route === null || typeof route !== 'object') continue;
      // Unknown or invalid settings are reported already: check the rest of the route as if they
      // were not there (a wrong allowMethods must not hide the route's port clash).
      routes[name] = Object.fromEntries(
        Object.entries(route).flatMap(([k, v]) => {
          const one = known.has(k) ? fields[k]?.safeParse(v) : undefined;
          return one?.success ? [[k, one.data]] : [];
        }),
      );
    }
    partial.routes = routes;
  }
  return partial as FileConfig;
}

/**
 * A zod issue in the words of README's "Config file", with the fix: an unknown setting names the closest known
 * one ("did you mean readOnly?"), a wrong type says what the setting takes ("readOnly must be true
 * or false") instead of zod's "expected boolean, received string".
 */
function describeIssue(issue: { path: PropertyKey[]; message: string; code: string; keys?: string[]; expected?: string }): string {
  const at = issue.path.map(String).join('.') || '(top level)';
  if (issue.code === 'unrecognized_keys' && issue.keys) {
    const known = knownKeys(issue.path);
    return issue.keys
      .map((k) => {
        const guess = closest(k, known);
        return `${at === '(top level)' ? '' : `${at}.`}${k}: unknown setting${guess ? `; did you mean ${guess}?` : `; known here: ${known.join(', ')}`}`;
      })
      .join('\n  ');
  }
  if (issue.code === 'invalid_type' && issue.expected === 'array') {
    const example = LIST_EXAMPLES[String(issue.path.at(-1))] ?? LIST_EXAMPLES[String(issue.path.at(-3))] ?? '[...]';
    return `${at} must be a list, e.g. ${example}`;
  }
  if (issue.code === 'invalid_type' && issue.expected && TYPE_WORDS[issue.expected]) {
    return `${at} must be ${TYPE_WORDS[issue.expected]}`;
  }
  return `${at}: ${issue.message}`;
}

const TYPE_WORDS: Record<string, string> = {
  boolean: 'true or false',
  number: 'a number',
  string: 'a string (quote it if it looks like a number or true/false)',
  object: 'a mapping of settings',
};

/** An example of each list setting, by its name (inboundKeys.NAME.routes by `inboundKeys`). */
const LIST_EXAMPLES: Record<string, string> = {
  allowMethods: '[GET, HEAD]',
  denyPaths: "['^/api/2.0/secrets/', '^/api/2.0/token/']",
  allowedHosts: '[dev.example.com]',
  allowedOrigins: '[http://localhost:3000]',
  routes: '[prod, dev]',
};

/** The settings allowed at a place of the config file, for "did you mean". */
function knownKeys(path: PropertyKey[]): string[] {
  type Node = { shape?: Record<string, Node>; valueType?: Node; unwrap?: () => Node };
  // Down the schema along the path: optional wrappers unwrapped, a record's key stands for its values.
  let node: Node | undefined = fileConfigSchema as unknown as Node;
  for (const segment of path) {
    while (node?.unwrap) node = node.unwrap();
    node = node?.valueType ?? node?.shape?.[String(segment)];
  }
  while (node?.unwrap) node = node.unwrap();
  return Object.keys(node?.shape ?? {});
}

/** `${VAR}` in any string value is read from the environment, so secrets stay out of the file. */
function expandEnv(value: unknown, env: NodeJS.ProcessEnv, path: string, problems: string[], values: EnvValues): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined) {
        problems.push(`${path}: \${${name}} is not set in the environment; export ${name} or write the value in the file`);
        return '';
      }
      values.add(name, v);
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, `${path}[${i}]`, problems, values));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, path ? `${path}.${k}` : k, problems, values)]));
  }
  return value;
}

/** ~/.databrickscfg (or DATABRICKS_CONFIG_FILE): `cfg` undefined when there is none, `unreadable` when it failed (reported). */
export interface ProfileSource {
  cfg: DatabricksCfg | undefined;
  unreadable: boolean;
}

export function readProfiles(env: NodeJS.ProcessEnv, problems: string[]): ProfileSource {
  try {
    return { cfg: readDatabricksCfg(env), unreadable: false };
  } catch (err) {
    problems.push(err instanceof CfgSyntaxError ? err.message : `cannot read the Databricks config file: ${errorMessage(err)}; fix it or pass --no-profiles`);
    return { cfg: undefined, unreadable: true };
  }
}
