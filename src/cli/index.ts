import { createRequire } from 'node:module';
import type { Command, CommanderError } from 'commander';
import { CREDENTIAL_TYPE_NAMES } from '../auth/credentials/names.js';
import { CONFIG_FLAGS } from '../config/flags.js';
import { packageVersion } from '../config/package-version.js';
import { type ConfigOptions, toFlags } from './shared.js';

// argv -> command. Each command lives in its own file and is imported only when it runs.

const ABOUT = `Serves /ws/NAME/... and /acct/NAME/... on 127.0.0.1:8080, attaching a fresh token to each request.
With nothing configured it serves a built-in demo workspace at /ws/demo. Every ~/.databrickscfg
profile with a host (or DATABRICKS_CONFIG_FILE) is a route too.

Environment: DBX_GATEWAY_CONFIG, DBX_GATEWAY_HOST, DBX_GATEWAY_PORT, DBX_GATEWAY_LOG_LEVEL,
DBX_GATEWAY_LOG_FORMAT, NO_COLOR.
Credential types: ${CREDENTIAL_TYPE_NAMES.join(', ')}.`;

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** The options of `serve` (and of the commands that read the same configuration). */
function withConfigOptions(command: Command, all = true): Command {
  for (const flag of CONFIG_FLAGS) {
    if (!all && 'serveOnly' in flag) continue;
    if (flag.kind === 'list') command.option(flag.option, flag.help, collect);
    else command.option(flag.option, flag.help);
  }
  if (all) {
    command
      .addOption(command.createOption('-q, --quiet', 'log warnings and errors only (wins over DBX_GATEWAY_LOG_LEVEL and logLevel)').conflicts('verbose'))
      .option('-v, --verbose', 'log debug lines too (wins over DBX_GATEWAY_LOG_LEVEL and logLevel)');
  }
  return command;
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
    .addHelpText(
      'after',
      `
Examples:
  dbx-gateway --workspace prod=https://adb-1234567890123456.7.azuredatabricks.net
  dbx-gateway --config team.yaml --host 0.0.0.0          # needs inboundKeys
  dbx-gateway --tls                                       # https with the local CA (dbx-gateway tls ca)`,
    )
    .action((o: ConfigOptions) => {
      result.code = import('./serve.js').then((m) => m.serve(toFlags(o)));
    });
  withConfigOptions(
    program.command('token').argument('<name>', 'the route').description('print the token of route NAME (from the running gateway if one runs)'),
    false,
  )
    .option('-o, --output <format>', 'json, env, raw, powershell or cmd', 'json')
    .option('--url <url>', 'the running gateway to ask (default: the one that serves NAME)')
    .addHelpText(
      'after',
      `
Examples:
  eval "$(dbx-gateway token prod --output env)"                 # POSIX shells, Git Bash
  TOKEN="$(dbx-gateway token prod --output raw)"                # like az ... --query accessToken -o tsv
  dbx-gateway token prod --output powershell | Invoke-Expression`,
    )
    .action((name: string, o: ConfigOptions & { output: string; url?: string }) => {
      result.code = import('./token.js').then((m) => m.printToken(toFlags(o), name, o.output, o.url));
    });
  withConfigOptions(
    program
      .command('env')
      .argument('<name>', 'the route')
      .description("print the environment that points the Databricks CLI, Terraform, SDKs, Spark Connect and psql at route NAME's gateway"),
    false,
  )
    .option('--shell <shell>', 'bash (any POSIX sh, Git Bash), powershell, cmd or fish; default: bash, on Windows powershell (bash under Git Bash)')
    .option('--url <url>', 'the running gateway to ask (default: the one that serves NAME)')
    .addHelpText(
      'after',
      `
DATABRICKS_HOST is the route's own port (else its /ws/NAME URL), with DATABRICKS_AUTH_TYPE=pat and a
placeholder DATABRICKS_TOKEN the gateway replaces (with inbound keys: set it to your key), or the
metadata-service pair when --metadata-service is on; SPARK_REMOTE and PGHOST/PGPORT when the route
has those ports. The ports are the running gateway's, else the configuration's.

Examples:
  eval "$(dbx-gateway env prod)"                                  # bash, zsh, Git Bash
  dbx-gateway env prod --shell powershell | Invoke-Expression
  dbx-gateway env prod --shell fish | source
  FOR /F "delims=" %i IN ('dbx-gateway env prod --shell cmd') DO %i`,
    )
    .action((name: string, o: ConfigOptions & { shell?: string; url?: string }) => {
      result.code = import('./env.js').then((m) => m.printEnv(toFlags(o), name, o.shell, o.url));
    });
  withConfigOptions(
    program.command('doctor').description('per route: credential and why, token, upstream, identity, clock skew (of the running gateway if one runs)'),
    false,
  )
    .option('--url <url>', 'the running gateway to check (default: the one found in its run file)')
    .addHelpText(
      'after',
      '\nExamples:\n  dbx-gateway doctor                 # the routes the running gateway serves\n  dbx-gateway doctor --workspace prod=https://adb-1234567890123456.7.azuredatabricks.net',
    )
    .action((o: ConfigOptions & { url?: string }) => {
      result.code = import('./doctor.js').then((m) => m.doctor(toFlags(o), o.url));
    });
  withConfigOptions(program.command('login').argument('<name>', 'the route').description('Databricks OAuth U2M (PKCE) sign-in for route NAME'), false)
    .option('--no-browser', 'print the sign-in URL instead of opening a browser')
    .addHelpText('after', '\nExample:\n  dbx-gateway login prod --workspace prod=https://adb-1234567890123456.7.azuredatabricks.net')
    .action((name: string, o: ConfigOptions & { browser: boolean }) => {
      result.code = import('./login.js').then((m) => m.runLogin(toFlags(o), name, o.browser));
    });
  program
    .command('keys')
    .description('inbound keys for a shared gateway: add, rotate, remove, list')
    .argument('<action>', 'add, rotate, remove or list')
    .argument('[name]', 'the key name (not for list)')
    .option('--config <file>', 'the config file that holds the hashes')
    .addHelpText(
      'after',
      '\nExamples:\n  dbx-gateway keys add alice --config team.yaml      # prints the key once; stores its sha256\n  dbx-gateway keys rotate alice --config team.yaml   # a new key, the same routes\n  dbx-gateway keys list --config team.yaml',
    )
    .action((action: string, name: string | undefined, o: { config?: string }) => {
      result.code = import('./keys.js').then((m) =>
        m.keysCommand(o.config !== undefined ? { config: o.config } : {}, name === undefined ? [action] : [action, name]),
      );
    });
  program
    .command('tls')
    .description('the local CA of --tls')
    .argument('<what>', 'ca')
    .option('--pem', 'print the certificate itself, not its path')
    .addHelpText('after', '\nExamples:\n  export NODE_EXTRA_CA_CERTS="$(dbx-gateway tls ca)"\n  dbx-gateway tls ca --pem > dbx-gateway-ca.pem')
    .action((what: string, o: { pem?: boolean }) => {
      result.code = import('./tls.js').then((m) => m.tlsCommand([what], o.pem === true));
    });
  program
    .command('status')
    .description('what the running gateway serves: routes, token states, request counts, recent errors')
    .option('-o, --output <format>', 'text or json', 'text')
    .option('--url <url>', 'the running gateway (default: the one found in its run file)')
    .addHelpText('after', "\nExamples:\n  dbx-gateway status\n  dbx-gateway status --output json     # the status page's data")
    .action((o: { output: string; url?: string }) => {
      result.code = import('./status.js').then((m) => m.statusCommand(o.url, o.output));
    });
  program
    .command('reload')
    .description('make the running gateway re-read its configuration (what SIGHUP does; works on Windows)')
    .option('--url <url>', 'the running gateway (default: the one found in its run file)')
    .action((o: { url?: string }) => {
      result.code = import('./reload.js').then((m) => m.reloadCommand(o.url));
    });
  // The same options as serve: `config check` checks exactly what `serve` with them would serve.
  withConfigOptions(program.command('config').description('check a configuration without serving').argument('<action>', 'check'))
    .addHelpText(
      'after',
      '\nExamples:\n  dbx-gateway config check --config team.yaml   # exit 0 when valid; every problem at once otherwise\n  dbx-gateway config check --workspace prod=https://adb-1234567890123456.7.azuredatabricks.net --port 8090',
    )
    .action((action: string, o: ConfigOptions) => {
      result.code = import('./config.js').then((m) => m.configCommand(action, toFlags(o)));
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

/**
 * The top-level help exactly as `dbx-gateway --help` prints it, at commander's default width. The
 * build writes it to dist/cli/help.txt (scripts/write-help.mjs), which the launcher prints without
 * loading the parser: the start-up budget of issue #12.
 */
export function renderHelp(): string {
  const { Command } = createRequire(import.meta.url)('commander') as typeof import('commander');
  const program = buildProgram(Command, {});
  let text = '';
  program.configureOutput({ writeOut: (chunk) => (text += chunk), getOutHelpWidth: () => 80 });
  program.outputHelp();
  return text;
}

/** Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration. */
export async function main(argv: string[]): Promise<number> {
  // require, not import: commander is CommonJS, and Node's ESM loader doubles its load time (18 ms
  // instead of 9 on these machines; the --help budget of issue #12).
  const { Command, CommanderError } = createRequire(import.meta.url)('commander') as typeof import('commander');
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
 * A usage error in our words: `unknown flag: --worksapce`, the closest valid one, and where the
 * help of the command it was given to is (one line, as git and cargo do: the whole usage pushed
 * the error off a small terminal); `--workspace prod https://...` says the `=` is missing.
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
      const i = args.findIndex(
        (a, n) => (a === '--workspace' || a === '--account') && args[n + 1] !== undefined && !args[n + 1]!.includes('=') && args[n + 2] !== undefined,
      );
      if (i >= 0) return `${args[i]} ${args[i + 1]} ${args[i + 2]}: the = is missing; write ${args[i]} ${args[i + 1]}=${args[i + 2]}`;
    }
    return err.message.replace(/^error: /, '').split('\n')[0] ?? err.message;
  })();
  const help = `dbx-gateway ${command === program ? '' : `${command.name()} `}--help`;
  process.stderr.write(`dbx-gateway: ${said}\n${suggestion ? `did you mean ${suggestion}?\n` : ''}see '${help}'\n`);
  return 2;
}
