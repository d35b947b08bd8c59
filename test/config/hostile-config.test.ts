import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CONTROL_HEADER, signControlRequest } from '../../src/security/control-proof.js';
import { BIN, runCli } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import { spawnGateway } from '../helpers/spawn-gateway.js';

const HOME = mkdtempSync(join(tmpdir(), 'dbxgw-hostile-'));

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: HOME, env: { PATH: process.env.PATH ?? '', HOME, ...env }, encoding: 'utf8' });
}

/** Nine levels of nine aliases each: 9^9 (387 million) strings once expanded. */
function billionLaughs(): string {
  const lines = [`a: &a [${Array(9).fill('"lol"').join(', ')}]`];
  let previous = 'a';
  for (const name of 'bcdefghi') {
    lines.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(', ')}]`);
    previous = name;
  }
  return `${lines.join('\n')}\n`;
}

describe('a YAML alias bomb (billion laughs) in a config file', () => {
  it('is a config error naming the file (exit 2), not a stack trace, for config check, serve and keys list', () => {
    const file = join(HOME, 'bomb.yaml');
    writeFileSync(file, billionLaughs());
    for (const args of [
      ['config', 'check', '--config', file, '--no-profiles'],
      ['serve', '--port', '0', '--config', file, '--no-profiles'],
      ['keys', 'list', '--config', file],
    ]) {
      const res = run(args);
      assert.equal(res.status, 2, `${args.join(' ')}: ${res.stderr}`);
      assert.ok(res.stderr.includes(`${file}: its YAML aliases (*name) expand to more than 100 copies`), res.stderr);
      assert.doesNotMatch(res.stderr, /\n\s+at |ReferenceError/);
      assert.equal(res.stdout, '');
    }
  });
});

// biome-ignore lint/suspicious/noTemplateCurlyInString: ${VAR} is the config file's syntax under test
const FROM_ENV = '${ORIGIN_FROM_ENV}';
const SECRET = 'hunter2-secret-from-the-environment';

describe('a secret from an environment variable in an invalid config (config errors echoed the value)', () => {
  it('never appears in the exit-2 message of config check and serve', () => {
    const file = join(HOME, 'secret.yaml');
    writeFileSync(file, `allowedOrigins: ["${FROM_ENV}"]\nroutes:\n  prod: { host: "${FROM_ENV}", credential: azure-cli }\n`);
    for (const args of [
      ['config', 'check', '--config', file, '--no-profiles'],
      ['serve', '--port', '0', '--config', file, '--no-profiles'],
    ]) {
      const res = run(args, { ORIGIN_FROM_ENV: SECRET });
      assert.equal(res.status, 2, res.stderr);
      assert.match(res.stderr, /allowedOrigins\[0\]: "\$\{ORIGIN_FROM_ENV\}" is not an origin/);
      assert.match(res.stderr, /routes\.prod\.host: "\$\{ORIGIN_FROM_ENV\}" is not a URL/);
      assert.ok(!res.stderr.includes(SECRET) && !res.stdout.includes(SECRET), res.stderr);
    }
  });

  it('never appears in the log of a refused reload nor in the /-/reload answer', async () => {
    const home = mkdtempSync(join(tmpdir(), 'dbxgw-hostile-reload-'));
    const file = join(home, 'gw.yaml');
    writeFileSync(
      file,
      'routes:\n  prod: { host: https://adb-1.1.azuredatabricks.net, credential: { type: pat, token: dapi0123456789abcdef0123456789abcdef } }\n',
    );
    const gw = await spawnGateway(['--config', file, '--no-profiles'], { HOME: home, ORIGIN_FROM_ENV: SECRET }, home);
    try {
      writeFileSync(file, `allowedOrigins: ["${FROM_ENV}"]\nroutes:\n  prod: { host: "${FROM_ENV}", credential: azure-cli }\n`);
      const dir = join(home, '.config', 'dbx-gateway', 'run');
      const run = JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]!), 'utf8')) as { secret: string };
      const answer = await request(`${gw.url}/-/reload`, {
        method: 'POST',
        headers: { [CONTROL_HEADER]: signControlRequest(run.secret, 'POST', '/-/reload').header },
      });
      assert.equal(answer.status, 409);
      assert.match(answer.text, /\$\{ORIGIN_FROM_ENV\}/);
      assert.ok(!answer.text.includes(SECRET), answer.text);
      const cli = await runCli(['reload'], { PATH: process.env.PATH ?? '', HOME: home });
      assert.equal(cli.status, 1, cli.stderr);
      assert.match(cli.stderr, /refused; the previous configuration stays/);
      assert.ok(!cli.stderr.includes(SECRET), cli.stderr);
      await gw.waitForOutput('stdout', /the new configuration is invalid[\s\S]*the new configuration is invalid/, { timeoutMs: 10_000 });
      assert.match(gw.stdout(), /\$\{ORIGIN_FROM_ENV\}/);
      assert.ok(!gw.stdout().includes(SECRET) && !gw.stderr().includes(SECRET), 'the refused reload logs no secret');
    } finally {
      await gw.stop();
    }
  });
});
