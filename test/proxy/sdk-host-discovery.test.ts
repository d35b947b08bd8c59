import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, TEST_PAT, type TestGateway, trustCa } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { testPki } from '../helpers/tls.js';

/**
 * Newer Databricks SDKs read {host}/.well-known/databricks-config (Go SDK config/host_metadata.go,
 * Python SDK config.py): account_id, workspace_id, cloud, host_type, the OIDC root and the default
 * token-federation audience. None of it moves the API host, so a client given a per-route port stays
 * on the gateway; the document itself is proxied from the route's own host.
 *
 * @databricks/sdk-experimental needs Node 22 (engines >=22). The end-to-end case runs under this
 * Node when it is 22 or newer (scripts/other-nodes.sh runs the suite so), else under the binary
 * TEST_NODE22 names; the package comes from node_modules or TEST_SDK_EXPERIMENTAL_DIR
 * (a directory whose node_modules holds it).
 */
function sdkClient(): { node: string; sdk: string } | string {
  const major = Number(process.versions.node.split('.')[0]);
  const node = major >= 22 ? process.execPath : process.env.TEST_NODE22;
  if (!node || !existsSync(node)) return `needs Node 22 for @databricks/sdk-experimental (this is ${process.version}; set TEST_NODE22 to a Node 22 binary)`;
  const from = process.env.TEST_SDK_EXPERIMENTAL_DIR ? join(process.env.TEST_SDK_EXPERIMENTAL_DIR, 'package.json') : import.meta.url;
  try {
    return { node, sdk: createRequire(from).resolve('@databricks/sdk-experimental') };
  } catch {
    return 'needs @databricks/sdk-experimental (npm install, or TEST_SDK_EXPERIMENTAL_DIR)';
  }
}

const WORKSPACE_ID = '1234567890123456';

describe('SDK host discovery through a per-route port', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let port: number;

  before(async () => {
    upstream = await startFakeUpstream((req: IncomingMessage, res: ServerResponse) => {
      const origin = `https://${req.headers.host}`;
      const body =
        req.url === '/.well-known/databricks-config'
          ? {
              oidc_endpoint: `${origin}/oidc`,
              workspace_id: WORKSPACE_ID,
              cloud: 'azure',
              host_type: 'WORKSPACE_HOST',
              token_federation_default_oidc_audiences: [`${origin}/oidc/v1/token`],
            }
          : { userName: 'sp@example.com', url: req.url, authorization: req.headers.authorization ?? null };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
    gw = await startTestGateway({
      flags: { workspace: [`prod=${upstream.url.origin}`] },
      env: { DATABRICKS_TOKEN: TEST_PAT },
      configure: (config) => {
        trustCa(testPki().caFile)(config);
        config.routes[0]!.port = 0;
      },
    });
    port = gw.routePorts.get('prod')!;
  });
  after(async () => {
    await gw?.shutdown(100);
    await upstream?.close();
  });

  it("answers the discovery document from the route's own host, without the client's token", async () => {
    const res = await request(`http://127.0.0.1:${port}/.well-known/databricks-config`, { headers: { authorization: 'Bearer placeholder' } });
    assert.equal(res.status, 200, res.text);
    const doc = res.json<{ workspace_id: string; host_type: string }>();
    assert.equal(doc.workspace_id, WORKSPACE_ID);
    assert.equal(doc.host_type, 'WORKSPACE_HOST');
    const seen = upstream.seen.find((s) => s.url === '/.well-known/databricks-config');
    assert.equal(seen?.headers.authorization, `Bearer ${TEST_PAT}`, "the gateway's token, never the client's placeholder");
  });

  const client = sdkClient();
  it('the newest @databricks/sdk-experimental works end to end on the port', { skip: typeof client === 'string' ? client : false }, async () => {
    if (typeof client === 'string') return;
    const dir = mkdtempSync(join(tmpdir(), 'dbxgw-sdk-'));
    const script = join(dir, 'me.cjs');
    writeFileSync(
      script,
      `const { WorkspaceClient } = require(${JSON.stringify(client.sdk)});
const w = new WorkspaceClient({ host: process.argv[2], token: 'placeholder', authType: 'pat' });
w.currentUser.me().then((me) => console.log(JSON.stringify(me)), (e) => { console.error(String(e)); process.exit(1); });
`,
    );
    const before = upstream.seen.length;
    // Async: the gateway answers from this process, so the test must not block its event loop.
    const run = await promisify(execFile)(client.node, [script, `http://127.0.0.1:${port}`], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: dir },
      timeout: 60_000,
    });
    const me = JSON.parse(run.stdout) as { userName: string; authorization: string };
    assert.equal(me.userName, 'sp@example.com');
    assert.equal(me.authorization, `Bearer ${TEST_PAT}`, 'the placeholder was replaced by the route credential');
    // Every request it made (discovery included, if this version does any) came through the gateway.
    const paths = upstream.seen.slice(before).map((s) => s.url);
    assert.ok(paths.includes('/api/2.0/preview/scim/v2/Me'), JSON.stringify(paths));
    for (const s of upstream.seen.slice(before)) assert.equal(s.headers.authorization, `Bearer ${TEST_PAT}`);
  });
});
