import { existsSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { CliFlags } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { printErr, printOut } from './output.js';

/** `keys add NAME`: the key alone on stdout (once); on stderr, which file it created or changed, and why that one. */
export async function keysCommand(flags: CliFlags, args: string[]): Promise<number> {
  const [sub, name] = args;
  const usage = 'dbx-gateway keys add|rotate|remove NAME [--config FILE], or keys list [--config FILE]';
  if (!sub || !['add', 'rotate', 'remove', 'list'].includes(sub) || (sub !== 'list' && !name)) {
    printErr(`dbx-gateway: usage: ${usage}\n`);
    return 2;
  }
  const [{ DEFAULT_CONFIG_FILE }, keys] = await Promise.all([import('../config/sources.js'), import('../config/inbound-keys-file.js')]);
  const file = resolvePath(flags.config ?? process.env.DBX_GATEWAY_CONFIG ?? DEFAULT_CONFIG_FILE);
  // A file nobody named is easy to lose track of: say where it came from.
  const chosen = flags.config
    ? ''
    : ` No --config was given, so that is ${process.env.DBX_GATEWAY_CONFIG ? 'the file DBX_GATEWAY_CONFIG names' : `${DEFAULT_CONFIG_FILE} in this folder`}.`;
  const apply = 'A running gateway applies it after dbx-gateway reload (or SIGHUP).';
  try {
    if (sub === 'list') {
      const listed = keys.listInboundKeys(file);
      printOut(listed.map((k) => `${k.name}\t${k.routes === 'all' ? 'all routes' : `routes: ${k.routes.join(', ')}`}\n`).join(''));
      if (listed.length === 0) printErr(`no inbound keys in ${file}\n`);
      return 0;
    }
    if (sub === 'remove') {
      keys.removeInboundKey(file, name!);
      printErr(`Removed inboundKeys.${name} from ${file}. ${apply}\n`);
      return 0;
    }
    const existed = existsSync(file);
    const key = sub === 'add' ? keys.addInboundKey(file, name!) : keys.rotateInboundKey(file, name!);
    process.stdout.write(`${key}\n`);
    const what = `inboundKeys.${name} (its SHA-256 only)`;
    const done = existed ? `${sub === 'add' ? `Added ${what} to` : `Rotated ${what} in`} ${file}.` : `Created ${file} with ${what}.`;
    // A new file may be read by no gateway yet: say how one reads it.
    const use = existed
      ? apply
      : `A gateway started with --config ${file}${flags.config ? '' : process.env.DBX_GATEWAY_CONFIG ? ' (or this DBX_GATEWAY_CONFIG)' : ' (or in this folder)'} uses it; one running applies it after dbx-gateway reload (or SIGHUP).`;
    printErr(
      `${done}${chosen} This is the only time the key is shown: hand it to ${name}.\n` +
        `Clients send it as Authorization: Bearer <key> or X-Dbx-Gateway-Key: <key>. ${use}${sub === 'rotate' ? ' The old key stops working then.' : ''}\n`,
    );
    return 0;
  } catch (err) {
    printErr(`dbx-gateway: ${errorMessage(err)}\n`);
    return 2;
  }
}
