import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { CREDENTIAL_TYPE_NAMES } from './auth/credentials/names.js';
import type { CliFlags } from './config/load.js';
import type { GatewayConfig } from './config/types.js';
import type { RunningGateway } from './server.js';

// Everything else is imported by the command that needs it: `--version` and `--help` load no
// config, credential or server code (zod, yaml, hono, undici, pino are most of the start-up time).


const USAGE = `Usage:
  dbx-gateway [serve] [--config FILE] [--host ADDR] [--port N]
              [--workspace NAME=URL]... [--account NAME=ACCOUNT_ID[@HOST]]...
              [--credential TYPE] [--no-profiles] [--demo] [--metadata-service]
              [--socket PATH] [--allow-unauthenticated-network]
  dbx-gateway token NAME [--output json|env]
                              print {"access_token","token_type","expires_on"} for route NAME,
                              or export lines for a shell (eval "$(dbx-gateway token NAME -o env)")
  dbx-gateway login NAME      Databricks OAuth U2M (PKCE) sign-in for route NAME [--no-browser]
  dbx-gateway keys add NAME [--config FILE]
                              print a new inbound key once; store only its hash in the config
  dbx-gateway doctor          per route: credential and why, token, upstream, identity, clock skew
  dbx-gateway --help | --version

Serves /ws/NAME/... and /acct/NAME/... on 127.0.0.1:8080, attaching a fresh token to each request.
With nothing configured it serves a built-in demo workspace at /ws/demo.

Every ~/.databrickscfg profile with a host (or DATABRICKS_CONFIG_FILE) is a route too.

Environment: DBX_GATEWAY_CONFIG, DBX_GATEWAY_HOST, DBX_GATEWAY_PORT, DBX_GATEWAY_LOG_LEVEL.
Credential types: ${CREDENTIAL_TYPE_NAMES.join(', ')}.
`;

const OPTIONS = {
  config: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  workspace: { type: 'string', multiple: true },
  account: { type: 'string', multiple: true },
  credential: { type: 'string' },
  demo: { type: 'boolean' },
  'no-profiles': { type: 'boolean' },
  'metadata-service': { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  'no-browser': { type: 'boolean' },
  'allow-unauthenticated-network': { type: 'boolean' },
  socket: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

/** Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration. */
export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`dbx-gateway: ${(err as Error).message}\nRun dbx-gateway --help for usage.\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const flags: CliFlags = {
    ...(values.config !== undefined ? { config: values.config } : {}),
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(values.port !== undefined ? { port: values.port } : {}),
    ...(values.workspace ? { workspace: values.workspace } : {}),
    ...(values.account ? { account: values.account } : {}),
    ...(values.credential !== undefined ? { credential: values.credential } : {}),
    ...(values.demo ? { demo: true } : {}),
    ...(values['no-profiles'] ? { noProfiles: true } : {}),
    ...(values['metadata-service'] ? { metadataService: true } : {}),
    ...(values['allow-unauthenticated-network'] ? { allowUnauthenticatedNetwork: true } : {}),
    ...(values.socket !== undefined ? { socket: values.socket } : {}),
  };
  const [command = 'serve', ...rest] = positionals;
  switch (command) {
    case 'serve':
      return serve(flags);
    case 'token':
      return printToken(flags, rest[0], values.output ?? 'json');
    case 'doctor':
      return doctor(flags);
    case 'login':
      return runLogin(flags, rest[0], !values['no-browser']);
    case 'keys':
      return keysCommand(flags, rest);
    default:
      process.stderr.write(`dbx-gateway: unknown command "${command}"\nRun dbx-gateway --help for usage.\n`);
      return 2;
  }
}

/**
 * The environment for Databricks SDKs, on stderr for the person starting the gateway (the URL
 * holds the secret, so it never goes into the JSON log on stdout).
 */
async function printMetadataServiceSetup(gateway: RunningGateway, secret: string): Promise<void> {
  const { metadataRoutes } = await import('./local/metadata-service.js');
  // The Go SDK accepts metadata-service URLs on localhost or 127.0.0.1 only.
  const base = `http://127.0.0.1:${gateway.port}/metadata/${secret}`;
  const first = gateway.routes.routes.find((r) => r.config.kind === 'workspace');
  const port = first ? gateway.routePorts.get(first.name) : undefined;
  const host = first ? (port !== undefined ? `http://127.0.0.1:${port}` : first.target.origin) : 'https://<workspace URL of a route>';
  const served = metadataRoutes(gateway.routes.routes).map((r) => r.name);
  const withheld = gateway.routes.routes.filter((r) => !served.includes(r.name)).map((r) => r.name);
  const keyed = gateway.config.inboundKeys.length > 0;
  process.stderr.write(
    `\nDatabricks SDKs and CLI: set this environment (DATABRICKS_HOST may be any route's workspace URL${port !== undefined ? ' or per-route port' : ''}):\n` +
      `  export DATABRICKS_HOST=${host}\n` +
      `  export DATABRICKS_METADATA_SERVICE_URL=${keyed ? base.replace(secret, '<your inbound key>') : base}\n` +
      '  export DATABRICKS_AUTH_TYPE=metadata-service\n' +
      `The metadata service serves routes: ${served.join(', ') || 'none'}` +
      (withheld.length > 0 ? ` (not ${withheld.join(', ')}: a raw token would bypass their policy; set routes.NAME.metadataService: true to serve one)` : '') +
      '\n\n',
  );
}

/** Runs a setup step; a ConfigError is printed for the user and becomes undefined (exit 2). */
async function orConfigError<T>(step: () => T | Promise<T>): Promise<T | undefined> {
  const { ConfigError } = await import('./config/load.js');
  try {
    return await step();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dbx-gateway: ${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}

const load = (flags: CliFlags) => orConfigError(async () => (await import('./config/load.js')).loadConfig({ flags }));
const createCore = (config: GatewayConfig) => orConfigError(async () => (await import('./gateway.js')).createGatewayCore(config));

async function serve(flags: CliFlags): Promise<number> {
  const config = await load(flags);
  if (!config) return 2;
  const [{ createLogger }, { startGateway }, { isLoopbackHost }, { ConfigError, loadConfig }, { scrubSecrets }] = await Promise.all([
    import('./observability/logger.js'),
    import('./server.js'),
    import('./security/loopback.js'),
    import('./config/load.js'),
    import('./security/redact.js'),
  ]);
  const logger = createLogger({ level: config.logLevel });
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
  try {
    gateway = await orConfigError(() => startGateway(config, { logger }));
    if (!gateway) return 2;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { port?: number };
    const port = e.port ?? config.listen.port;
    const owner = port === config.listen.port ? 'pass --port N' : 'change that route\'s port';
    const hint = e.code === 'EADDRINUSE' ? `; another process uses port ${port}: stop it or ${owner}` : '';
    process.stderr.write(`dbx-gateway: cannot listen on ${config.listen.host}:${port}: ${e.message}${hint}\n`);
    return 1;
  }
  for (const route of gateway.routes.routes) {
    const port = gateway.routePorts.get(route.name);
    const also = port !== undefined ? ` (and http://${config.listen.host}:${port}/)` : '';
    logger.info(
      {
        route: route.name,
        prefix: route.prefix,
        ...(port !== undefined ? { port } : {}),
        upstream: route.target.origin,
        credential: route.credential.type,
        why: route.credential.reason,
      },
      `route ${gateway.url}${route.prefix}/${also} -> ${route.target.origin}`,
    );
  }
  if (config.metadataService) await printMetadataServiceSetup(gateway, config.metadataService.secret);
  for (const warning of gateway.warnings) logger.warn(warning);
  const tcp = !config.socket || gateway.routePorts.size > 0;
  if (config.allowUnauthenticatedNetwork && tcp && !isLoopbackHost(config.listen.host) && config.inboundKeys.length === 0) {
    logger.warn(
      `listening on ${config.listen.host} without inbound keys (--allow-unauthenticated-network): anyone who can reach this port acts as the gateway's Databricks identities`,
    );
  }
  if (config.demo) {
    const curl = config.socket ? `curl --unix-socket ${config.socket} http://localhost` : `curl ${gateway.url}`;
    logger.info(
      `demo mode: no workspace is configured, so the built-in demo workspace serves /ws/demo - try: ${curl}/ws/demo/api/2.0/clusters/list`,
    );
  }
  logger.info({ url: gateway.url }, `dbx-gateway listening on ${gateway.url}`);

  // SIGHUP: re-read the configuration without dropping connections; an invalid one keeps the old.
  process.on('SIGHUP', () => {
    logger.info({ signal: 'SIGHUP' }, 'SIGHUP: reloading the configuration');
    let next: GatewayConfig;
    try {
      next = loadConfig({ flags });
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      logger.error({ problems }, `the new configuration is invalid, so the previous one stays in use: ${problems.join('; ')}`);
      return;
    }
    gateway.reload(next).then(
      ({ notes }) => {
        for (const note of notes) logger.warn(note);
        for (const warning of gateway.warnings) logger.warn(warning);
        logger.info({ routes: gateway.routes.routes.map((r) => r.name) }, `configuration reloaded: ${gateway.routes.routes.length} routes`);
      },
      (err: Error) => {
        const problems = err instanceof ConfigError ? err.problems : [err.message];
        logger.error({ problems }, `the new configuration could not be applied, so the previous one stays in use: ${problems.join('; ')}`);
      },
    );
  });
  // A crash must not print a token: log the scrubbed error, then exit.
  process.on('uncaughtException', (err) => {
    logger.fatal({ err: { name: err.name, message: scrubSecrets(err.message), stack: scrubSecrets(err.stack ?? '') } }, 'crashed');
    process.exit(1);
  });
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, `${signal}: draining for up to ${config.timeouts.drainMs} ms`);
      gateway.shutdown().then(() => resolve(0), () => resolve(1));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

async function printToken(flags: CliFlags, name: string | undefined, output: string): Promise<number> {
  if (!name) {
    process.stderr.write('dbx-gateway: usage: dbx-gateway token NAME [--output json|env]\n');
    return 2;
  }
  if (output !== 'json' && output !== 'env') {
    process.stderr.write(`dbx-gateway: --output ${output}: use json or env\n`);
    return 2;
  }
  const config = await load(flags);
  if (!config) return 2;
  const core = await createCore(config);
  if (!core) return 2;
  try {
    const route = core.routes.routes.find((r) => r.name === name);
    if (!route) {
      process.stderr.write(`dbx-gateway: ${core.routes.notFound(`/ws/${name}`).message}\n`);
      return 2;
    }
    const token = await core.tokens.get(route.credential, 'databricks');
    if (output === 'env') {
      // Single-quoted for POSIX shells: eval "$(dbx-gateway token prod --output env)".
      const quote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
      process.stdout.write(
        `export DATABRICKS_HOST=${quote(route.target.origin)}\n` +
          (route.config.accountId ? `export DATABRICKS_ACCOUNT_ID=${quote(route.config.accountId)}\n` : '') +
          `export DATABRICKS_TOKEN=${quote(token.token)}\n`,
      );
      return 0;
    }
    const expiresOn = Number.isFinite(token.expiresOnMs) ? Math.floor(token.expiresOnMs / 1000) : null;
    process.stdout.write(`${JSON.stringify({ access_token: token.token, token_type: 'Bearer', expires_on: expiresOn })}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`dbx-gateway: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await core.close();
  }
}

/**
 * Per route: where it came from, which credential and why, the token and its expiry, whether the
 * upstream answers and accepts it (SCIM Me, which also says who the token belongs to), and the
 * clock skew. A table on stdout; exit 0 only when every check of every route passes.
 */
async function doctor(flags: CliFlags): Promise<number> {
  const config = await load(flags);
  if (!config) return 2;
  const core = await createCore(config);
  if (!core) return 2;
  try {
    for (const warning of core.warnings) process.stderr.write(`warning: ${warning}\n`);
    const { diagnose, formatDoctor } = await import('./doctor.js');
    const rows = await diagnose(core);
    process.stdout.write(formatDoctor(rows));
    return rows.every((r) => r.ok) ? 0 : 1;
  } finally {
    await core.close();
  }
}

/** `keys add NAME`: the key alone on stdout (once), where it went on stderr. */
async function keysCommand(flags: CliFlags, args: string[]): Promise<number> {
  const [sub, name] = args;
  if (sub !== 'add' || !name) {
    process.stderr.write('dbx-gateway: usage: dbx-gateway keys add NAME [--config FILE]\n');
    return 2;
  }
  const [{ DEFAULT_CONFIG_FILE }, { addInboundKey }] = await Promise.all([import('./config/load.js'), import('./keys.js')]);
  const file = resolvePath(flags.config ?? process.env.DBX_GATEWAY_CONFIG ?? DEFAULT_CONFIG_FILE);
  try {
    const key = addInboundKey(file, name);
    process.stdout.write(`${key}\n`);
    process.stderr.write(
      `Added inboundKeys.${name} (its SHA-256 only) to ${file}. This is the only time the key is shown: hand it to ${name}.\n` +
        'Clients send it as Authorization: Bearer <key> or X-Dbx-Gateway-Key: <key>. Restart the gateway to load it.\n',
    );
    return 0;
  } catch (err) {
    process.stderr.write(`dbx-gateway: ${(err as Error).message}\n`);
    return 2;
  }
}

/** `login NAME`: the U2M browser sign-in for one route; progress on stderr. */
async function runLogin(flags: CliFlags, name: string | undefined, browser: boolean): Promise<number> {
  if (!name) {
    process.stderr.write('dbx-gateway: usage: dbx-gateway login NAME [--no-browser]\n');
    return 2;
  }
  const config = await load(flags);
  if (!config) return 2;
  const route = config.routes.find((r) => r.name === name);
  if (!route) {
    const known = config.routes.map((r) => r.name);
    process.stderr.write(`dbx-gateway: no route named ${name}; ${known.length ? `routes: ${known.join(', ')}` : 'configure one with --workspace NAME=URL'}\n`);
    return 2;
  }
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const [{ login }, { scrubSecrets }] = await Promise.all([import('./login.js'), import('./security/redact.js')]);
  try {
    const file = await login(route, { env: process.env, say, openBrowser: browser && process.stderr.isTTY === true });
    say(`Signed in. The refresh token is stored in ${file} (readable by you only).`);
    say(
      route.credential.type === 'databricks-u2m'
        ? `Route ${name} uses it from now on; a running gateway picks it up at its next token refresh.`
        : `Route ${name} uses it when its credential is databricks-u2m, or when the default chain finds nothing earlier (see dbx-gateway doctor).`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`dbx-gateway: login failed: ${scrubSecrets((err as Error).message)}\n`);
    return 1;
  }
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
