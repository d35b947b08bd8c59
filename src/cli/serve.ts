import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { packageVersion } from '../config/package-version.js';
import type { CliFlags, GatewayConfig } from '../config/types.js';
import { plural } from '../english.js';
import { ConfigError, errorMessage } from '../errors.js';
import type { ReloadResult } from '../local/control.js';
import { removeRunFile } from '../local/run-file.js';
import type { Logger } from '../observability/logger.js';
import type { RunningGateway } from '../runtime/server.js';
import { printErr } from './output.js';
import { load, orConfigError } from './shared.js';

/** How long the log's last lines may take to leave, after the drain, before exit drops them. */
const FINAL_LOG_FLUSH_MS = 2_000;

export async function serve(flags: CliFlags): Promise<number> {
  const config = await load(flags);
  if (!config) return 2;
  const [{ createLogger, flushLogs }, { startGateway }, { loadConfig }, { scrubSecrets }] = await Promise.all([
    import('../observability/logger.js'),
    import('../runtime/server.js'),
    import('../config/load.js'),
    import('../observability/redact.js'),
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
    const owner = port === config.listen.port ? 'pass --port N' : "change that route's port";
    const hint = e.code === 'EADDRINUSE' ? `; ${await portHolder(port, owner)}` : '';
    printErr(`dbx-gateway: cannot listen on ${config.listen.host}:${port}: ${e.message}${hint}\n`);
    return 1;
  }
  await logStartup(gateway, config, logger);
  // Every route's token once at start, then one block per route: ready (as whom, how to reach it)
  // or FAILING with the fix, not 20 s into the first request; failing routes are retried.
  gateway.watchRoutes();

  reloadRef.run = reloader(flags, gateway, logger, loadConfig);
  process.on('SIGHUP', () => void reloadRef.run('SIGHUP'));
  const runFile = await announce(gateway, control.secret, config, logger);
  // A crash must not print a token: log the scrubbed error, then exit.
  process.on('uncaughtException', (err) => {
    logger.fatal({ err: { name: err.name, message: scrubSecrets(err.message), stack: scrubSecrets(err.stack ?? '') } }, 'crashed');
    void flushLogs(logger, FINAL_LOG_FLUSH_MS).then(() => process.exit(1));
  });
  return untilStopped(gateway, config, logger, runFile, flushLogs);
}

/**
 * Who holds a port this gateway could not listen on: another dbx-gateway of this user when a run
 * file with a live pid names that port (said with how to reach or stop it), else "another process".
 */
async function portHolder(port: number, owner: string): Promise<string> {
  const [{ configDir }, { runDir, runningGateways }] = await Promise.all([import('../config/paths.js'), import('../local/run-file.js')]);
  const dir = configDir(process.env);
  const holder = dir
    ? runningGateways(runDir(dir)).find((run) => {
        try {
          return Number(new URL(run.url).port) === port;
        } catch {
          return false;
        }
      })
    : undefined;
  if (!holder) return `another process uses port ${port}: stop it or ${owner}`;
  const stop = process.platform === 'win32' ? `taskkill /PID ${holder.pid}` : `kill ${holder.pid}`;
  return (
    `another dbx-gateway serves ${holder.url} (pid ${holder.pid}, started ${holder.startedAt}; run file ${holder.file}): ` +
    `use it (dbx-gateway status --url ${holder.url}; token, doctor and reload take --url too), stop it (${stop}), or ${owner}`
  );
}

/**
 * A refused reload's problems for its one log line, each said once (not again in a field) and
 * without the code frame the YAML parser adds under its message (line and column stay).
 */
function oneLine(problems: string[]): string {
  return problems.map((p) => p.split('\n', 1)[0]!.replace(/:$/, '')).join('; ');
}

/**
 * The environment for Databricks SDKs, on stderr for the person starting the gateway (the URL
 * holds the secret, so it never goes into the JSON log on stdout).
 */
async function printMetadataServiceSetup(gateway: RunningGateway, secret: string): Promise<void> {
  const { metadataRoutes } = await import('../local/metadata-service.js');
  // The Go SDK accepts metadata-service URLs on localhost or 127.0.0.1 only.
  const base = `http://127.0.0.1:${gateway.port}/metadata/${secret}`;
  const first = gateway.routes.all.find((r) => r.config.kind === 'workspace');
  const port = first ? gateway.routePorts.get(first.name) : undefined;
  const host = first ? (port !== undefined ? `http://127.0.0.1:${port}` : first.target.origin) : 'https://<workspace URL of a route>';
  const served = metadataRoutes(gateway.routes.all).map((r) => r.name);
  const withheld = gateway.routes.all.filter((r) => !served.includes(r.name)).map((r) => r.name);
  const keyed = gateway.config.inboundKeys.length > 0;
  printErr(
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
  const [{ configDir, homeDir }, { runDir, writeRunFile }] = await Promise.all([import('../config/paths.js'), import('../local/run-file.js')]);
  const dir = configDir(process.env);
  // Never create a home directory (HOME=/nonexistent in a container): no run file then.
  const home = homeDir(process.env);
  if (!dir || !home || !existsSync(home)) return undefined;
  try {
    return writeRunFile(runDir(dir), {
      url: gateway.url,
      secret,
      pid: process.pid,
      ...(config.listen.tls?.mode === 'auto' ? { caFile: (await import('../local/local-tls.js')).caFileIn(config.listen.tls.dir) } : {}),
      ...(config.listen.tls?.mode === 'files' ? { caFile: config.listen.tls.certFile } : {}),
      version: packageVersion(),
      startedAt: new Date().toISOString(),
    });
  } catch (err) {
    logger.warn(`could not write the run file in ${dir} (${errorMessage(err)}): token, reload and doctor will not find this gateway`);
    return undefined;
  }
}

/** The startup lines: each route and port, Spark Connect, warnings, exposure, demo, config source. */
async function logStartup(gateway: RunningGateway, config: GatewayConfig, logger: Logger): Promise<void> {
  const { isLoopbackHost } = await import('../security/loopback.js');
  for (const route of gateway.routes.all) {
    const port = gateway.routePorts.get(route.name);
    const also = port !== undefined ? ` (and ${config.listen.tls ? 'https' : 'http'}://${config.listen.host}:${port}/)` : '';
    logger.info(
      {
        route: route.name,
        prefix: route.prefix,
        ...(port !== undefined ? { port } : {}),
        upstream: route.target.origin,
        credential: route.credential.type,
        why: route.credentialReason,
      },
      `route ${gateway.url}${route.prefix}/${also} -> ${route.target.origin}`,
    );
  }
  // --tls changes what a Spark Connect client must do: said here, not found out from a refusal.
  for (const [name, port] of gateway.sparkPorts) {
    const caFile = config.listen.tls?.mode === 'auto' ? (await import('../local/local-tls.js')).caFileIn(config.listen.tls.dir) : config.listen.tls?.certFile;
    logger.info(
      { route: name, sparkConnect: port, tls: config.listen.tls !== undefined },
      caFile
        ? `route ${name}: Spark Connect on port ${port} speaks TLS only (--tls): sc://localhost:${port}/;use_ssl=true, trusting ${caFile} (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH)`
        : `route ${name}: Spark Connect on sc://localhost:${port}/ (cleartext HTTP/2)`,
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
  if (gateway.sameUser?.enforced) logger.info(gateway.sameUser.message);
  else if (gateway.sameUser) logger.warn(gateway.sameUser.message);
  if (config.demo) {
    const curl = config.socket ? `curl --unix-socket ${config.socket} http://localhost` : `curl ${gateway.url}`;
    logger.info(`demo mode: no workspace is configured, so the built-in demo workspace serves /ws/demo - try: ${curl}/ws/demo/api/2.0/clusters/list`);
  }
  logger.info(
    config.configFile ? { config: config.configFile } : {},
    config.configFile
      ? `config file: ${config.configFile}`
      : config.demo
        ? 'no config file: serving the built-in demo'
        : 'no config file: routes from flags and ~/.databrickscfg',
  );
  // Profiles found in ~/.databrickscfg take the demo's place: say which, and how to have both.
  const profiles = gateway.routes.all.filter(
    (r) => r.config.profile !== undefined && r.config.source.endsWith(`[${r.config.profile}]`) && !r.config.source.includes('(profile '),
  );
  if (profiles.length > 0 && !config.demo) {
    const from = [...new Set(profiles.map((r) => r.config.source.slice(0, -` [${r.config.profile}]`.length)))].join(', ');
    logger.info(
      { profiles: profiles.map((r) => r.name) },
      `serving ${profiles.length === 1 ? 'profile' : 'profiles'} ${profiles.map((r) => r.name).join(', ')} from ${from} instead of the built-in demo (--demo serves it as well; --no-profiles skips the profiles)`,
    );
  }
  logger.info({ url: gateway.url }, `dbx-gateway listening on ${gateway.url}`);
}

/**
 * SIGHUP (and `dbx-gateway reload`, where there is no SIGHUP): re-read the configuration without
 * dropping connections; an invalid one keeps the old.
 */
function reloader(flags: CliFlags, gateway: RunningGateway, logger: Logger, loadConfig: typeof import('../config/load.js').loadConfig) {
  return async (why: string): Promise<ReloadResult> => {
    logger.info({ reload: why }, `${why}: reloading the configuration`);
    let next: GatewayConfig;
    try {
      next = loadConfig({ flags });
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [errorMessage(err)];
      logger.error(`the new configuration is invalid, so the previous one stays in use: ${oneLine(problems)}`);
      return { ok: false, notes: problems, routes: gateway.routes.all.map((r) => r.name) };
    }
    // A failure to apply may echo a setting; one from ${VAR} is a secret (config/env-values.ts).
    const mask = (text: string) => next.envValues?.mask(text) ?? text;
    try {
      const { notes: raw } = await gateway.reload(next);
      const notes = raw.map(mask);
      for (const note of notes) logger.warn(note);
      for (const warning of gateway.warnings) logger.warn(warning);
      const routes = gateway.routes.all.map((r) => r.name);
      logger.info({ routes }, `configuration reloaded: ${plural(routes.length, 'route')}`);
      return { ok: true, notes, routes };
    } catch (err) {
      const problems = (err instanceof ConfigError ? err.problems : [errorMessage(err)]).map(mask);
      logger.error(`the new configuration could not be applied, so the previous one stays in use: ${oneLine(problems)}`);
      return { ok: false, notes: problems, routes: gateway.routes.all.map((r) => r.name) };
    }
  };
}

/** Until SIGTERM, SIGINT (SIGBREAK on Windows): then drain, remove the run file, flush the log; the exit code. */
function untilStopped(
  gateway: RunningGateway,
  config: GatewayConfig,
  logger: Logger,
  runFile: string | undefined,
  flushLogs: typeof import('../observability/logger.js').flushLogs,
): Promise<number> {
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, `${signal}: draining for up to ${config.timeouts.drainMs} ms`);
      if (runFile) removeRunFile(runFile);
      // The log's last lines get a bounded flush: exit never waits on a closed or stuck stdout.
      const exit = (code: number) => flushLogs(logger, FINAL_LOG_FLUSH_MS).then(() => resolve(code));
      gateway.shutdown().then(
        () => exit(0),
        () => exit(1),
      );
    };
    if (runFile) process.once('exit', () => removeRunFile(runFile));
    process.once('SIGTERM', () => stop('SIGTERM'));
    // Ctrl+C (SIGINT on Windows too); Ctrl+Break and some service wrappers send SIGBREAK there.
    process.once('SIGINT', () => stop('SIGINT'));
    if (process.platform === 'win32') process.once('SIGBREAK', () => stop('SIGBREAK'));
  });
}
