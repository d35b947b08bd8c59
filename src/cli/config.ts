import type { CliFlags } from '../config/types.js';
import { printErr, printOut } from './output.js';
import { load } from './shared.js';

/** `config check`: every problem of the configuration at once, or what it would serve. */
export async function configCommand(action: string, flags: CliFlags): Promise<number> {
  if (action !== 'check') {
    printErr(`dbx-gateway: unknown config action: ${action}; use dbx-gateway config check [--config FILE]\n`);
    return 2;
  }
  const config = await load(flags);
  if (!config) return 2;
  const { routePrefix } = await import('../routing/route-table.js');
  const routes = config.routes.map((r) => `  ${routePrefix(r)} -> ${r.upstream.origin} (${r.credential.type})`);
  printOut(
    `${config.configFile ? `${config.configFile}: ` : 'no config file: '}valid; ${config.routes.length} route${config.routes.length === 1 ? '' : 's'}${config.demo ? ' (and the built-in demo)' : ''}\n${routes.join('\n')}${routes.length ? '\n' : ''}`,
  );
  for (const warning of config.warnings) printErr(`warning: ${warning}\n`);
  return 0;
}
