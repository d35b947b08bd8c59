// Runs every test/**/*.test.ts with Node's built-in runner (tsx for TypeScript). Node 20's
// --test does not expand globs itself, so the files are listed here.
//
// The tests never see the developer's machine: they run with a throwaway HOME (and its Windows and
// XDG counterparts, Azure CLI and kubectl config) and without the credential settings of the
// shell, so nothing can read or write the real ~/.databrickscfg, ~/.azure, ~/.kube, ~/.config or
// run files of a gateway the user has running. Poisoned `az` and `databricks` go first on PATH
// (DBX_GATEWAY_POISON_TOOLS=0 leaves them out): a test that reaches for the real tools instead of
// its own fake runs one, which says so loudly, and the run fails.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'helpers' ? [] : findTests(p);
    return e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** Settings a developer's shell may carry that would point a test at real credentials, config or proxies. */
const SCRUBBED = /^(DATABRICKS_|ARM_|AZURE_|DBX_GATEWAY_|MSI_|IDENTITY_|KUBECONFIG$|(HTTPS?|ALL|NO)_PROXY$|HOMEDRIVE$|HOMEPATH$)/i;
const POISONED_TOOLS = ['az', 'databricks'];

/** The environment of the test process: process.env without SCRUBBED, HOME and friends in `scratch`. */
function testEnv(scratch, pki, poisonDir) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !SCRUBBED.test(name)));
  const home = join(scratch, 'home');
  // kubectl with no kubeconfig asks http://localhost:8080 (and gcloud's kubectl dispatcher asks it
  // for /version even for `kustomize`): this one names port 0, which nothing can listen on.
  const kubeconfig = join(home, '.kube', 'config');
  mkdirSync(join(home, '.kube'), { recursive: true });
  writeFileSync(kubeconfig, KUBECONFIG_NOWHERE);
  Object.assign(env, {
    HOME: home,
    USERPROFILE: home,
    APPDATA: join(home, 'AppData', 'Roaming'),
    LOCALAPPDATA: join(home, 'AppData', 'Local'),
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_CACHE_HOME: join(home, '.cache'),
    XDG_DATA_HOME: join(home, '.local', 'share'),
    XDG_STATE_HOME: join(home, '.local', 'state'),
    AZURE_CONFIG_DIR: join(home, '.azure'),
    KUBECONFIG: kubeconfig,
    DBX_GATEWAY_TEST: '1',
    DBX_GATEWAY_TEST_PKI: pki,
  });
  if (poisonDir) {
    // Windows spells it Path; a copy of process.env is case-sensitive.
    const pathKey = Object.keys(env).find((k) => k.toUpperCase() === 'PATH') ?? 'PATH';
    env[pathKey] = `${poisonDir}${delimiter}${env[pathKey] ?? ''}`;
    // For test/runner/isolation.test.ts, which checks they are first.
    env.DBX_GATEWAY_TEST_POISON_DIR = poisonDir;
  }
  return env;
}

const KUBECONFIG_NOWHERE = `apiVersion: v1
kind: Config
clusters: [{ name: nowhere, cluster: { server: "http://127.0.0.1:0" } }]
contexts: [{ name: nowhere, context: { cluster: nowhere } }]
current-context: nowhere
`;

/** az and databricks that record their run in `marker` and fail with a message naming the test's mistake. */
function writePoisonedTools(dir, marker) {
  mkdirSync(dir);
  for (const tool of POISONED_TOOLS) {
    const message = `a test ran the real ${tool}: give the process the fake's PATH (test/helpers/fake-bin.ts) or NO_TOOLS_PATH (test/helpers/cli.ts)`;
    writeFileSync(join(dir, tool), `#!/bin/sh\necho "${tool} $*" >> '${marker}'\necho 'dbx-gateway tests: ${message}' >&2\nexit 1\n`);
    chmodSync(join(dir, tool), 0o755);
    writeFileSync(join(dir, `${tool}.cmd`), `@echo ${tool} %*>> "${marker}"\r\n@echo dbx-gateway tests: ${message} 1>&2\r\n@exit /b 1\r\n`);
  }
}

const only = process.argv.slice(2);
// Arguments may be test files or directories of them.
const files = (only.length > 0 ? only : ['test']).flatMap((p) => (statSync(p).isDirectory() ? findTests(p).sort() : [p]));
const scratch = mkdtempSync(join(tmpdir(), 'dbxgw-test-run-'));
const cleanUp = () => rmSync(scratch, { recursive: true, force: true });
// The throwaway test PKI, made once per run in Node (no openssl needed on the machine).
const pki = join(scratch, 'pki');
mkdirSync(pki);
const made = spawnSync(process.execPath, ['--import', 'tsx', 'test/helpers/make-pki.ts', pki], { stdio: 'inherit' });
if (made.status !== 0) {
  cleanUp();
  process.exit(made.status ?? 1);
}
const marker = join(scratch, 'poisoned-tools-ran');
const poison = process.env.DBX_GATEWAY_POISON_TOOLS !== '0';
if (poison) writePoisonedTools(join(scratch, 'poison'), marker);
// DBX_GATEWAY_TEST_REPORTER=dot for the extra Node versions in .ci/run (one summary per CI log).
const reporter = process.env.DBX_GATEWAY_TEST_REPORTER ?? 'spec';
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-reporter=${reporter}`, '--test-timeout=120000', ...files], {
  stdio: 'inherit',
  env: testEnv(scratch, pki, poison ? join(scratch, 'poison') : undefined),
});
let status = result.status ?? 1;
if (existsSync(marker)) {
  process.stderr.write(
    `\ndbx-gateway tests: FAILED: a test ran the real az or databricks (the poisoned ones on PATH were run):\n${readFileSync(marker, 'utf8')}`,
  );
  status = 1;
}
cleanUp();
process.exit(status);
