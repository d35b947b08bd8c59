import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { Command, CommanderError } from 'commander';
import { CREDENTIAL_TYPE_NAMES } from './auth/credentials/names.js';
import type { CliFlags } from './config/load.js';
import type { GatewayConfig } from './config/types.js';
import type { ReloadResult } from './local/control.js';
import { removeRunFile } from './local/run-file.js';
import type { RunningGateway } from './server.js';
import { errorMessage } from './errors.js';

// Everything else is imported by the command that needs it: `--version` and `--help` load no
// config, credential or server code (zod, yaml, hono, undici, pino are most of the start-up time).

const ABOUT = `Serves /ws/NAME/... and /acct/NAME/... on 127.0.0.1:8080, attaching a fresh token to each request.
With nothing configured it serves a built-in demo workspace at /ws/demo. Every ~/.databrickscfg
profile with a host (or DATABRICKS_CONFIG_FILE) is a route too.

Environment: DBX_GATEWAY_CONFIG, DBX_GATEWAY_HOST, DBX_GATEWAY_PORT, DBX_GATEWAY_LOG_LEVEL,
DBX_GATEWAY_LOG_FORMAT, NO_COLOR.
Credential types: ${CREDENTIAL_TYPE_NAMES.join(', ')}.`;

/** What commander collects for the options every configuration-reading command takes. */
interface ConfigOptions {
  config?: string;
  host?: string;
  port?: string;
  workspace?: string[];
  account?: string[];
  credential?: string;
  demo?: boolean;
  profiles?: boolean;
  metadataService?: boolean;
  allowUnauthenticatedNetwork?: boolean;
  socket?: string;
  tls?: boolean;
  logFormat?: string;
  profile?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** The options of `serve` (and of the commands that read the same configuration). */
function withConfigOptions(command: Command, all = true): Command {
  command
    .option('--config <file>', 'the config file (else DBX_GATEWAY_CONFIG, else ./dbx-gateway.yaml)')
    .option('--workspace <name=url>', 'add route /ws/NAME to a workspace (repeatable)', collect)
    .option('--account <name=account-id[@host]>', 'add route /acct/NAME to the account console (repeatable)', collect)
    .option('--credential <type>', 'the credential of routes that name none')
    .option('--no-profiles', 'skip the ~/.databrickscfg profiles')
    .option('--profile <name>', 'serve this ~/.databrickscfg profile only (else DATABRICKS_CONFIG_PROFILE)');
  if (all) {
    command
      .option('--host <addr>', 'listen address (default 127.0.0.1)')
      .option('-p, --port <n>', 'listen port (default 8080)')
      .option('--demo', 'also serve the built-in demo workspace at /ws/demo')
      .option('--metadata-service', 'serve the Databricks SDK metadata service at /metadata/SECRET')
      .option('--socket <path>', 'serve a unix socket (0600), or a named pipe on Windows, instead of TCP')
      .option('--allow-unauthenticated-network', 'listen beyond loopback without inbound keys (warned)')
      .option('--tls', 'HTTPS on every listener with the gateway\'s own local CA (listen.tls: auto)')
      .option('--log-format <format>', 'text (one line per event) or json; default: text on a terminal');
  }
  return command;
}

function toFlags(o: ConfigOptions): CliFlags {
  return {
    ...(o.config !== undefined ? { config: o.config } : {}),
    ...(o.host !== undefined ? { host: o.host } : {}),
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.workspace ? { workspace: o.workspace } : {}),
    ...(o.account ? { account: o.account } : {}),
    ...(o.credential !== undefined ? { credential: o.credential } : {}),
    ...(o.demo ? { demo: true } : {}),
    ...(o.profiles === false ? { noProfiles: true } : {}),
    ...(o.metadataService ? { metadataService: true } : {}),
    ...(o.allowUnauthenticatedNetwork ? { allowUnauthenticatedNetwork: true } : {}),
    ...(o.socket !== undefined ? { socket: o.socket } : {}),
    ...(o.tls ? { tls: true } : {}),
    ...(o.logFormat !== undefined ? { logFormat: o.logFormat } : {}),
    ...(o.profile !== undefined ? { profile: o.profile } : {}),
  };
}

/**
 * The command line, on commander (a small, dependency-free, long-maintained parser: per-command
 * help, typo suggestions and repeatable options without hand parsing). Each action sets `result`.
 */
function buildProgram(Command: typeof import('commander').Command, result: { code?: Promise<number> }): Command {
  const program = new Command('dbx-gateway')
    .description('A local reverse proxy that lets anything speak to Azure Databricks without handling tokens.')
    .usage('[serve] [options]   (serve is the default command)\n       dbx-gateway <command> [options]')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpCommand('help [command]', 'help for a command')
    .showSuggestionAfterError(true)
    .addHelpText('after', `\n${ABOUT}\n`);
  withConfigOptions(program.command('serve').description('serve the routes (the default command)'))
    .addHelpText('after', `
Examples:
  dbx-gateway --workspace prod=https://adb-1234567890123456.7.azuredatabricks.net
  dbx-gateway --config team.yaml --host 0.0.0.0          # needs inboundKeys
  dbx-gateway --tls                                       # https with the local CA (dbx-gateway tls ca)`)
    .action((o: ConfigOptions) => {
      result.code = serve(toFlags(o));
    });
  withConfigOptions(program.command('token').argument('<name>', 'the route').description('print the token of route NAME (from the running gateway if one runs)'), false)
    .option('-o, --output <format>', 'json, env, raw, powershell or cmd', 'json')
    .option('--url <url>', 'the running gateway to ask (default: the one found in its run file)')
    .addHelpText('after', `
Examples:
  eval "$(dbx-gateway token prod --output env)"                 # POSIX shells, Git Bash
  TOKEN="$(dbx-gateway token prod --output raw)"                # like az ... --query accessToken -o tsv
  dbx-gateway token prod --output powershell | Invoke-Expression`)
    .action((name: string, o: ConfigOptions & { output: string; url?: string }) => {
      result.code = printToken(toFlags(o), name, o.output, o.url);
    });
  withConfigOptions(program.command('doctor').description('per route: credential and why, token, upstream, identity, clock skew (of the running gateway if one runs)'), false)
    .option('--url <url>', 'the running gateway to check (default: the one found in its run file)')
    .addHelpText('after', '\nExamples:\n  dbx-gateway doctor                 # the routes the running gateway serves\n  dbx-gateway doctor --workspace prod=https://adb-1234567890123456.7.azuredatabricks.net')
    .action((o: ConfigOptions & { url?: string }) => {
      result.code = doctor(toFlags(o), o.url);
    });
  withConfigOptions(program.command('login').argument('<name>', 'the route').description('Databricks OAuth U2M (PKCE) sign-in for route NAME'), false)
    .option('--no-browser', 'print the sign-in URL instead of opening a browser')
    .addHelpText('after', '\nExample:\n  dbx-gateway login prod --workspace prod=https://adb-1234567890123456.7.azuredatabricks.net')
    .action((name: string, o: ConfigOptions & { browser: boolean }) => {
      result.code = runLogin(toFlags(o), name, o.browser);
    });
  program
    .command('keys')
    .description('inbound keys for a shared gateway: add, rotate, remove, list')
    .argument('<action>', 'add, rotate, remove or list')
    .argument('[name]', 'the key name (not for list)')
    .option('--config <file>', 'the config file that holds the hashes')
    .addHelpText('after', '\nExamples:\n  dbx-gateway keys add alice --config team.yaml      # prints the key once; stores its sha256\n  dbx-gateway keys rotate alice --config team.yaml   # a new key, the same routes\n  dbx-gateway keys list --config team.yaml')
    .action((action: string, name: string | undefined, o: { config?: string }) => {
      result.code = keysCommand(o.config !== undefined ? { config: o.config } : {}, name === undefined ? [action] : [action, name]);
    });
  program
    .command('tls')
    .description('the local CA of --tls')
    .argument('<what>', 'ca')
    .option('--pem', 'print the certificate itself, not its path')
    .addHelpText('after', '\nExamples:\n  export NODE_EXTRA_CA_CERTS="$(dbx-gateway tls ca)"\n  dbx-gateway tls ca --pem > dbx-gateway-ca.pem')
    .action((what: string, o: { pem?: boolean }) => {
      result.code = tlsCommand([what], o.pem === true);
    });
  program
    .command('reload')
    .description('make the running gateway re-read its configuration (what SIGHUP does; works on Windows)')
    .option('--url <url>', 'the running gateway (default: the one found in its run file)')
    .action((o: { url?: string }) => {
      result.code = reloadCommand(o.url);
    });
  program
    .command('config')
    .description('check a configuration without serving')
    .argument('<action>', 'check')
    .option('--config <file>', 'the config file (else DBX_GATEWAY_CONFIG, else ./dbx-gateway.yaml)')
    .option('--no-profiles', 'skip the ~/.databrickscfg profiles')
    .addHelpText('after', '\nExample:\n  dbx-gateway config check --config team.yaml   # exit 0 when valid; every problem at once otherwise')
    .action((action: string, o: ConfigOptions) => {
      result.code = configCommand(action, toFlags(o));
    });
  program
    .command('version')
    .description('print the version')
    .action(() => {
      process.stdout.write(`${packageVersion()}\n`);
      result.code = Promise.resolve(0);
    });
  return program;
}

/** Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration. */
export async function main(argv: string[]): Promise<number> {
  // The version without loading the parser: `--version` is what scripts and installers call.
  if (argv.length === 1 && ['--version', '-V', 'version'].includes(argv[0] ?? '')) {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const { Command, CommanderError } = await import('commander');
  // `serve` is the default: flags alone (or nothing) mean serve with them.
  const first = argv[0];
  const args = first === undefined || (first.startsWith('-') && !['-h', '--help', '-V', '--version'].includes(first)) ? ['serve', ...argv] : argv;
  const result: { code?: Promise<number> } = {};
  const program = buildProgram(Command, result);
  let failure: CommanderError | undefined;
  program.exitOverride((err) => {
    throw err;
  });
  program.configureOutput({ outputError: () => {} });
  for (const sub of program.commands) {
    sub.exitOverride((err) => {
      throw err;
    });
    sub.configureOutput({ outputError: () => {} });
  }
  try {
    program.parse(args, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
    failure = err;
  }
  if (failure) return usageError(program, args, failure);
  return result.code ?? 0;
}

/**
 * A usage error in our words: `unknown flag: --worksapce`, the closest valid one, and the usage of
 * the command it was given to; `--workspace prod https://...` says the `=` is missing.
 */
function usageError(program: Command, args: string[], err: CommanderError): number {
  const command = program.commands.find((c) => c.name() === args[0]) ?? program;
  const suggestion = /\(Did you mean ([^?]+)\?\)/.exec(err.message)?.[1];
  const said = (() => {
    const option = /unknown option '([^']+)'/.exec(err.message)?.[1];
    if (option) return `unknown flag: ${option}`;
    const unknownCommand = /unknown command '([^']+)'/.exec(err.message)?.[1];
    if (unknownCommand) return `unknown command: ${unknownCommand}`;
    if (err.code === 'commander.excessArguments') {
      const i = args.findIndex((a, n) => (a === '--workspace' || a === '--account') && args[n + 1] !== undefined && !args[n + 1]!.includes('=') && args[n + 2] !== undefined);
      if (i >= 0) return `${args[i]} ${args[i + 1]} ${args[i + 2]}: the = is missing; write ${args[i]} ${args[i + 1]}=${args[i + 2]}`;
    }
    return err.message.replace(/^error: /, '').split('\n')[0] ?? err.message;
  })();
  process.stderr.write(
    `dbx-gateway: ${said}\n${suggestion ? `did you mean ${suggestion}?\n` : ''}\n${command.helpInformation()}Run dbx-gateway help ${command === program ? '' : `${command.name()} `}for more.\n`,
  );
  return 2;
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

/**
 * The run file of this listener (URL + control secret, 0600 in the config dir), so `token`,
 * `reload` and the other commands find the running gateway; undefined without a config dir.
 */
async function announce(gateway: RunningGateway, secret: string, config: GatewayConfig, logger: { warn(msg: string): void }): Promise<string | undefined> {
  const [{ configDir, homeDir }, { runDir, writeRunFile }] = await Promise.all([import('./config/paths.js'), import('./local/run-file.js')]);
  const dir = configDir(process.env);
  // Never create a home directory (HOME=/nonexistent in a container): no run file then.
  const home = homeDir(process.env);
  if (!dir || !home || !existsSync(home)) return undefined;
  try {
    return writeRunFile(runDir(dir), {
      url: gateway.url,
      secret,
      pid: process.pid,
      ...(config.listen.tls?.mode === 'auto' ? { caFile: (await import('./local/local-tls.js')).caFileIn(config.listen.tls.dir) } : {}),
      ...(config.listen.tls?.mode === 'files' ? { caFile: config.listen.tls.certFile } : {}),
      version: packageVersion(),
      startedAt: new Date().toISOString(),
    });
  } catch (err) {
    logger.warn(`could not write the run file in ${dir} (${errorMessage(err)}): token, reload and doctor will not find this gateway`);
    return undefined;
  }
}

/** `config check`: every problem of the configuration at once, or what it would serve. */
async function configCommand(action: string, flags: CliFlags): Promise<number> {
  if (action !== 'check') {
    process.stderr.write(`dbx-gateway: unknown config action: ${action}; use dbx-gateway config check [--config FILE]\n`);
    return 2;
  }
  const config = await load(flags);
  if (!config) return 2;
  const { routePrefix } = await import('./routing/route-table.js');
  const routes = config.routes.map((r) => `  ${routePrefix(r)} -> ${r.upstream.origin} (${r.credential.type})`);
  process.stdout.write(
    `${config.configFile ? `${config.configFile}: ` : 'no config file: '}valid; ${config.routes.length} route${config.routes.length === 1 ? '' : 's'}${config.demo ? ' (and the built-in demo)' : ''}\n${routes.join('\n')}${routes.length ? '\n' : ''}`,
  );
  for (const warning of config.warnings) process.stderr.write(`warning: ${warning}\n`);
  return 0;
}

/** `reload`: the running gateway re-reads its configuration (what SIGHUP does, on every platform). */
async function reloadCommand(url: string | undefined): Promise<number> {
  const running = await runningOrReport(url);
  if (running === null) return 2;
  if (!running) {
    process.stderr.write(`dbx-gateway: no running gateway found${url ? ` at ${url}` : ''}; start one with dbx-gateway serve\n`);
    return 1;
  }
  const res = await controlRequest(running, 'POST', '/-/reload');
  const body = JSON.parse(res.body) as ReloadResult & { message?: string };
  if (res.status !== 200) {
    process.stderr.write(`dbx-gateway: the reload of ${running.url} was refused; the previous configuration stays:\n${(body.notes ?? [body.message]).map((n) => `  ${n}`).join('\n')}\n`);
    return 1;
  }
  process.stderr.write(`reloaded ${running.url}: routes ${body.routes.join(', ') || 'none'}\n${body.notes.map((n) => `  note: ${n}\n`).join('')}`);
  return 0;
}

/** The running gateway of this user (its run file), by URL or the only one; undefined if none. */
async function findRunning(url: string | undefined): Promise<import('./local/run-file.js').RunFile | undefined> {
  const [{ configDir }, { runDir, runningGateways }] = await Promise.all([import('./config/paths.js'), import('./local/run-file.js')]);
  const dir = configDir(process.env);
  if (!dir) return undefined;
  const found = runningGateways(runDir(dir), url);
  if (found.length > 1 && url === undefined) {
    const preferred = found.find((r) => /:8080$/.test(r.url));
    if (preferred) return preferred;
    throw new Error(`several gateways are running (${found.map((r) => r.url).join(', ')}); pick one with --url`);
  }
  return found[0];
}

/** findRunning, with an ambiguous choice (several gateways, no --url) said on stderr: null then. */
async function runningOrReport(url: string | undefined): Promise<import('./local/run-file.js').RunFile | undefined | null> {
  try {
    return await findRunning(url);
  } catch (err) {
    process.stderr.write(`dbx-gateway: ${errorMessage(err)}\n`);
    return null;
  }
}

/** A request to a running gateway's /-/ endpoint with its control secret (TCP, TLS or unix socket). */
async function controlRequest(run: import('./local/run-file.js').RunFile, method: string, path: string): Promise<{ status: number; body: string }> {
  const [{ CONTROL_HEADER }, http, https] = await Promise.all([import('./local/control.js'), import('node:http'), import('node:https')]);
  const url = new URL(run.url.startsWith('unix:') ? 'http://localhost' : run.url);
  return new Promise((resolve, reject) => {
    const options = {
      method,
      path,
      headers: { host: 'localhost', [CONTROL_HEADER]: run.secret },
      timeout: 30_000,
      ...(run.url.startsWith('unix:') ? { socketPath: run.url.slice('unix:'.length) } : { hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port }),
      ...(run.caFile ? { ca: readFileSync(run.caFile, 'utf8') } : {}),
    };
    const req = (url.protocol === 'https:' ? https : http).request(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${run.url} did not answer within 30 s`)));
    req.on('error', reject);
    req.end();
  });
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
  const logger = createLogger({ level: config.logLevel, ...(config.logFormat ? { format: config.logFormat } : {}) });
  // The control endpoints' secret, handed to this user's commands through the run file.
  const reloadRef: { run: (why: string) => Promise<ReloadResult> } = {
    run: async () => ({ ok: false, notes: ['the gateway is still starting'], routes: [] }),
  };
  const control = { secret: randomBytes(32).toString('base64url'), reload: () => reloadRef.run('dbx-gateway reload') };
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
  try {
    gateway = await orConfigError(() => startGateway(config, { logger, control }));
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
    const also = port !== undefined ? ` (and ${config.listen.tls ? 'https' : 'http'}://${config.listen.host}:${port}/)` : '';
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
  logger.info(
    config.configFile ? { config: config.configFile } : {},
    config.configFile ? `config file: ${config.configFile}` : config.demo ? 'no config file: serving the built-in demo' : 'no config file: routes from flags and ~/.databrickscfg',
  );
  logger.info({ url: gateway.url }, `dbx-gateway listening on ${gateway.url}`);
  // Every route's token once at start: a route that cannot get one says so now, with the fix,
  // not 20 s into the first request.
  for (const route of gateway.routes.routes) {
    gateway.tokens.get(route.credential, 'databricks').then(
      () => logger.debug({ route: route.name }, `route ${route.name}: token ready`),
      (err: Error) => logger.warn({ route: route.name, credential: route.credential.type }, `route ${route.name} has no token yet: ${err.message}`),
    );
  }

  // SIGHUP (and `dbx-gateway reload`, where there is no SIGHUP): re-read the configuration
  // without dropping connections; an invalid one keeps the old.
  reloadRef.run = async (why: string) => {
    logger.info({ reload: why }, `${why}: reloading the configuration`);
    let next: GatewayConfig;
    try {
      next = loadConfig({ flags });
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [errorMessage(err)];
      logger.error({ problems }, `the new configuration is invalid, so the previous one stays in use: ${problems.join('; ')}`);
      return { ok: false, notes: problems, routes: gateway.routes.routes.map((r) => r.name) };
    }
    try {
      const { notes } = await gateway.reload(next);
      for (const note of notes) logger.warn(note);
      for (const warning of gateway.warnings) logger.warn(warning);
      const routes = gateway.routes.routes.map((r) => r.name);
      logger.info({ routes }, `configuration reloaded: ${routes.length} routes`);
      return { ok: true, notes, routes };
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [errorMessage(err)];
      logger.error({ problems }, `the new configuration could not be applied, so the previous one stays in use: ${problems.join('; ')}`);
      return { ok: false, notes: problems, routes: gateway.routes.routes.map((r) => r.name) };
    }
  };
  process.on('SIGHUP', () => void reloadRef.run('SIGHUP'));
  const runFile = await announce(gateway, control.secret, config, logger);
  // A crash must not print a token: log the scrubbed error, then exit.
  process.on('uncaughtException', (err) => {
    logger.fatal({ err: { name: err.name, message: scrubSecrets(err.message), stack: scrubSecrets(err.stack ?? '') } }, 'crashed');
    process.exit(1);
  });
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, `${signal}: draining for up to ${config.timeouts.drainMs} ms`);
      if (runFile) removeRunFile(runFile);
      gateway.shutdown().then(() => resolve(0), () => resolve(1));
    };
    if (runFile) process.once('exit', () => removeRunFile(runFile));
    process.once('SIGTERM', () => stop('SIGTERM'));
    // Ctrl+C (SIGINT on Windows too); Ctrl+Break and some service wrappers send SIGBREAK there.
    process.once('SIGINT', () => stop('SIGINT'));
    if (process.platform === 'win32') process.once('SIGBREAK', () => stop('SIGBREAK'));
  });
}

const TOKEN_OUTPUTS = ['json', 'env', 'raw', 'powershell', 'cmd'] as const;
type TokenOutput = (typeof TOKEN_OUTPUTS)[number];

interface PrintedToken {
  access_token: string;
  expires_on: number | null;
  host: string;
  account_id?: string;
}

/**
 * `token NAME`: the token the running gateway holds (its run file; no second az or CLI call), or,
 * with no gateway running, one from the configuration itself (said on stderr). Printed as JSON, as
 * shell exports (env, powershell, cmd), or bare (raw, like `az ... --query accessToken -o tsv`).
 */
async function printToken(flags: CliFlags, name: string | undefined, output: string, url: string | undefined): Promise<number> {
  if (!name) {
    process.stderr.write(`dbx-gateway: usage: dbx-gateway token NAME [--output ${TOKEN_OUTPUTS.join('|')}] [--url URL]\n`);
    return 2;
  }
  if (!(TOKEN_OUTPUTS as readonly string[]).includes(output)) {
    process.stderr.write(`dbx-gateway: --output ${output}: use one of ${TOKEN_OUTPUTS.join(', ')}\n`);
    return 2;
  }
  const running = await runningOrReport(url);
  if (running === null) return 2;
  if (running) {
    const res = await controlRequest(running, 'GET', `/-/token/${encodeURIComponent(name)}`);
    if (res.status !== 200) {
      process.stderr.write(`dbx-gateway: ${running.url}: ${(JSON.parse(res.body) as { message?: string }).message ?? res.body}\n`);
      return res.status === 404 ? 2 : 1;
    }
    process.stdout.write(formatToken(JSON.parse(res.body) as PrintedToken, output as TokenOutput));
    return 0;
  }
  if (url) {
    process.stderr.write(`dbx-gateway: no running gateway at ${url}\n`);
    return 1;
  }
  process.stderr.write('dbx-gateway: no gateway is running: fetching the token from the configuration directly\n');
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
    const printed: PrintedToken = {
      access_token: token.token,
      expires_on: Number.isFinite(token.expiresOnMs) ? Math.floor(token.expiresOnMs / 1000) : null,
      host: route.target.origin,
      ...(route.config.accountId ? { account_id: route.config.accountId } : {}),
    };
    process.stdout.write(formatToken(printed, output as TokenOutput));
    return 0;
  } catch (err) {
    process.stderr.write(`dbx-gateway: ${errorMessage(err)}\n`);
    return 1;
  } finally {
    await core.close();
  }
}

function formatToken(token: PrintedToken, output: TokenOutput): string {
  const vars: Array<[string, string]> = [
    ['DATABRICKS_HOST', token.host],
    ...(token.account_id ? ([['DATABRICKS_ACCOUNT_ID', token.account_id]] as Array<[string, string]>) : []),
    ['DATABRICKS_TOKEN', token.access_token],
  ];
  switch (output) {
    case 'raw':
      return `${token.access_token}\n`;
    case 'env':
      // Single-quoted for POSIX shells and Git Bash: eval "$(dbx-gateway token prod --output env)".
      return vars.map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'\n`).join('');
    case 'powershell':
      // dbx-gateway token prod --output powershell | Invoke-Expression
      return vars.map(([k, v]) => `$env:${k} = '${v.replace(/'/g, "''")}'\n`).join('');
    case 'cmd':
      // FOR /F "delims=" %i IN ('dbx-gateway token prod --output cmd') DO %i
      return vars.map(([k, v]) => `set "${k}=${v}"\n`).join('');
    default:
      return `${JSON.stringify({ access_token: token.access_token, token_type: 'Bearer', expires_on: token.expires_on })}\n`;
  }
}

/**
 * Per route: where it came from, which credential and why, the token and its expiry, whether the
 * upstream answers and accepts it (SCIM Me, which also says who the token belongs to), and the
 * clock skew. A table on stdout; exit 0 only when every check of every route passes.
 */
async function doctor(flags: CliFlags, url?: string): Promise<number> {
  const running = await runningOrReport(url);
  if (running === null) return 2;
  if (running) {
    // The routes the running gateway actually serves, checked by it.
    process.stderr.write(`checking the gateway running at ${running.url}\n`);
    const res = await controlRequest(running, 'GET', '/-/doctor');
    const body = JSON.parse(res.body) as { ok?: boolean; text?: string; message?: string; warnings?: string[] };
    if (res.status !== 200) {
      process.stderr.write(`dbx-gateway: ${running.url}: ${body.message ?? res.body}\n`);
      return 1;
    }
    for (const warning of body.warnings ?? []) process.stderr.write(`warning: ${warning}\n`);
    process.stdout.write(body.text ?? '');
    return body.ok ? 0 : 1;
  }
  if (url) {
    process.stderr.write(`dbx-gateway: no running gateway at ${url}\n`);
    return 1;
  }
  process.stderr.write('dbx-gateway: no gateway is running: checking the configuration directly\n');
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

/**
 * `tls ca [--pem]`: the local CA certificate's path (created on first use), or the PEM itself,
 * for NODE_EXTRA_CA_CERTS, a driver's custom CA option or a Java truststore.
 */
async function tlsCommand(args: string[], pem: boolean): Promise<number> {
  if (args[0] !== 'ca') {
    process.stderr.write('dbx-gateway: usage: dbx-gateway tls ca [--pem]\n');
    return 2;
  }
  const [{ localTlsDir }, { ensureLocalCa }] = await Promise.all([import('./config/paths.js'), import('./local/local-tls.js')]);
  const dir = localTlsDir(process.env);
  if (!dir) {
    process.stderr.write('dbx-gateway: no home directory for the local CA (set HOME, or APPDATA on Windows)\n');
    return 1;
  }
  const file = await ensureLocalCa(dir);
  process.stdout.write(pem ? readFileSync(file, 'utf8') : `${file}\n`);
  return 0;
}

/** `keys add NAME`: the key alone on stdout (once), where it went on stderr. */
async function keysCommand(flags: CliFlags, args: string[]): Promise<number> {
  const [sub, name] = args;
  const usage = 'dbx-gateway keys add|rotate|remove NAME [--config FILE], or keys list [--config FILE]';
  if (!sub || !['add', 'rotate', 'remove', 'list'].includes(sub) || (sub !== 'list' && !name)) {
    process.stderr.write(`dbx-gateway: usage: ${usage}\n`);
    return 2;
  }
  const [{ DEFAULT_CONFIG_FILE }, keys] = await Promise.all([import('./config/load.js'), import('./keys.js')]);
  const file = resolvePath(flags.config ?? process.env.DBX_GATEWAY_CONFIG ?? DEFAULT_CONFIG_FILE);
  const apply = 'A running gateway applies it after dbx-gateway reload (or SIGHUP).';
  try {
    if (sub === 'list') {
      const listed = keys.listInboundKeys(file);
      process.stdout.write(listed.map((k) => `${k.name}\t${k.routes === 'all' ? 'all routes' : `routes: ${k.routes.join(', ')}`}\n`).join(''));
      if (listed.length === 0) process.stderr.write(`no inbound keys in ${file}\n`);
      return 0;
    }
    if (sub === 'remove') {
      keys.removeInboundKey(file, name!);
      process.stderr.write(`Removed inboundKeys.${name} from ${file}. ${apply}\n`);
      return 0;
    }
    const key = sub === 'add' ? keys.addInboundKey(file, name!) : keys.rotateInboundKey(file, name!);
    process.stdout.write(`${key}\n`);
    process.stderr.write(
      `${sub === 'add' ? 'Added' : 'Rotated'} inboundKeys.${name} (its SHA-256 only) in ${file}. This is the only time the key is shown: hand it to ${name}.\n` +
        `Clients send it as Authorization: Bearer <key> or X-Dbx-Gateway-Key: <key>. ${apply}${sub === 'rotate' ? ' The old key stops working then.' : ''}\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`dbx-gateway: ${errorMessage(err)}\n`);
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
    process.stderr.write(`dbx-gateway: login failed: ${scrubSecrets(errorMessage(err))}\n`);
    return 1;
  }
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
