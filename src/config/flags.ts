/**
 * The configuration flags, in one table: CliFlags (config/types.ts), the commander options
 * (cli/index.ts withConfigOptions) and what toFlags copies (cli/shared.ts) all come from it. A new
 * flag is a row here and its use in load.ts. `serveOnly` flags are left out of `login`, which
 * reads routes only. -q and -v are not here: both set one field, logLevel.
 */
export const CONFIG_FLAGS = [
  { key: 'config', option: '--config <file>', kind: 'string', help: 'the config file (else DBX_GATEWAY_CONFIG, else ./dbx-gateway.yaml)' },
  { key: 'workspace', option: '--workspace <name=url>', kind: 'list', help: 'add route /ws/NAME to a workspace (repeatable)' },
  { key: 'account', option: '--account <name=account-id[@host]>', kind: 'list', help: 'add route /acct/NAME to the account console (repeatable)' },
  { key: 'credential', option: '--credential <type>', kind: 'string', help: 'the credential of routes that name none' },
  { key: 'caFile', option: '--ca-file <file>', kind: 'string', help: 'PEM root CA to trust for the --workspace/--account routes (TLS inspection)' },
  // Commander keeps --no-X as `X: false`; routes that name a profile still read ~/.databrickscfg.
  { key: 'noProfiles', option: '--no-profiles', kind: 'negated', commanderKey: 'profiles', help: 'skip the ~/.databrickscfg profiles' },
  { key: 'profile', option: '--profile <name>', kind: 'string', help: 'serve this ~/.databrickscfg profile only (else DATABRICKS_CONFIG_PROFILE)' },
  { key: 'host', option: '--host <addr>', kind: 'string', serveOnly: true, help: 'listen address (default 127.0.0.1)' },
  { key: 'port', option: '-p, --port <n>', kind: 'string', serveOnly: true, help: 'listen port (default 8080)' },
  { key: 'demo', option: '--demo', kind: 'boolean', serveOnly: true, help: 'also serve the built-in demo workspace at /ws/demo' },
  {
    key: 'metadataService',
    option: '--metadata-service',
    kind: 'boolean',
    serveOnly: true,
    help: 'serve the Databricks SDK metadata service at /metadata/SECRET',
  },
  {
    key: 'socket',
    option: '--socket <path>',
    kind: 'string',
    serveOnly: true,
    help: 'serve a unix socket (0600), or a named pipe on Windows, instead of TCP',
  },
  {
    key: 'allowUnauthenticatedNetwork',
    option: '--allow-unauthenticated-network',
    kind: 'boolean',
    serveOnly: true,
    help: 'listen beyond loopback without inbound keys (warned)',
  },
  { key: 'tls', option: '--tls', kind: 'boolean', serveOnly: true, help: "HTTPS on every listener with the gateway's own local CA (listen.tls: auto)" },
  {
    key: 'logFormat',
    option: '--log-format <format>',
    kind: 'string',
    serveOnly: true,
    help: 'text (one line per event) or json; default: text on a terminal',
  },
] as const;

export type ConfigFlag = (typeof CONFIG_FLAGS)[number];

type FlagValue<Kind> = Kind extends 'list' ? string[] : Kind extends 'string' ? string : boolean;

/** What the command line contributed; every field optional so tests can build it by hand. */
export type CliFlags = { [F in ConfigFlag as F['key']]?: FlagValue<F['kind']> } & {
  /** -q (warn) or -v (debug): wins over DBX_GATEWAY_LOG_LEVEL and the file's logLevel. */
  logLevel?: 'warn' | 'debug';
};
