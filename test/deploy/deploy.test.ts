import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { childEnv } from '../helpers/cli.js';
import { needs } from '../helpers/tools.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/dbx-gateway.cjs');

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
};

/**
 * The environment of kubectl and docker-compose: a home of their own and a kubeconfig naming port
 * 0, which nothing can listen on. With no kubeconfig kubectl's server is http://localhost:8080, and
 * gcloud's kubectl dispatcher asks it GET /version even for `kustomize` (to pick a matching
 * kubectl): a gateway the developer runs there answered; kubectl may also write ~/.kube/cache.
 */
function toolEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const home = mkdtempSync(join(tmpdir(), 'dbxgw-tool-home-'));
  const kubeconfig = join(home, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    'apiVersion: v1\nkind: Config\nclusters: [{ name: nowhere, cluster: { server: "http://127.0.0.1:0" } }]\ncontexts: [{ name: nowhere, context: { cluster: nowhere } }]\ncurrent-context: nowhere\n',
  );
  return { PATH: process.env.PATH ?? '', HOME: home, KUBECONFIG: kubeconfig, ...extra };
}

function render(dir: string): K8sObject[] {
  const out = execFileSync('kubectl', ['kustomize', join(ROOT, dir)], { encoding: 'utf8', env: toolEnv() });
  return parseAllDocuments(out).map((d) => d.toJS() as K8sObject);
}

/** The gateway's own config loader, on a config text, with the env a pod would have. */
function loadGatewayConfig(text: string, env: NodeJS.ProcessEnv) {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-deploy-'));
  writeFileSync(join(dir, 'dbx-gateway.yaml'), text);
  return loadConfig({ env, cwd: dir, flags: { config: join(dir, 'dbx-gateway.yaml'), noProfiles: true } });
}

const NO_KUBECTL = needs('kubectl', 'kubernetes-client');

/** How each kustomization signs in to Databricks: Azure workload identity, or token federation. */
const KUSTOMIZATIONS: Array<[string, 'azure-workload-identity' | 'file-oidc']> = [
  ['deploy/kubernetes/base', 'azure-workload-identity'],
  ['deploy/kubernetes/overlays/example', 'azure-workload-identity'],
  ['deploy/kubernetes/overlays/token-federation', 'file-oidc'],
];

for (const [dir, identity] of KUSTOMIZATIONS) {
  describe(`kubectl kustomize ${dir}`, { skip: NO_KUBECTL }, () => {
    const objects = NO_KUBECTL ? [] : render(dir);
    const find = <T = K8sObject>(kind: string) => objects.find((o) => o.kind === kind) as T & K8sObject;

    it('renders the objects an operator expects, each valid against its Kubernetes schema', () => {
      assert.deepEqual(objects.map((o) => o.kind).sort(), [
        'ConfigMap',
        'Deployment',
        'NetworkPolicy',
        'PodDisruptionBudget',
        'Secret',
        'Service',
        'ServiceAccount',
      ]);
      for (const o of objects) {
        const Model = MODELS[`${o.apiVersion}/${o.kind}`];
        assert.ok(Model, `no schema for ${o.apiVersion} ${o.kind}`);
        assert.doesNotThrow(() => new Model(o as never).validate(), `${o.kind} ${o.metadata.name}`);
      }
    });

    it('ships a config the gateway itself accepts, on the ports the objects use', () => {
      const configMap = find<{ data: Record<string, string> }>('ConfigMap');
      const secret = find<{ stringData: Record<string, string> }>('Secret');
      // The env of a pod: the Secret, plus what the Azure workload identity webhook injects.
      const webhook =
        identity === 'azure-workload-identity'
          ? {
              AZURE_CLIENT_ID: '00000000-0000-0000-0000-000000000000',
              AZURE_TENANT_ID: '00000000-0000-0000-0000-000000000001',
              AZURE_FEDERATED_TOKEN_FILE: '/var/run/secrets/azure/tokens/azure-identity-token',
              AZURE_AUTHORITY_HOST: 'https://login.microsoftonline.com/',
            }
          : {};
      const config = loadGatewayConfig(configMap.data['dbx-gateway.yaml']!, { ...secret.stringData, ...webhook });
      assert.equal(config.listen.host, '0.0.0.0');
      assert.ok(config.inboundKeys.length > 0, 'listening beyond loopback needs inbound keys');
      assert.ok(config.allowedHosts.includes('dbx-gateway'), 'the Service name is an allowed Host');
      const deployment = find<{
        spec: {
          template: {
            metadata: { labels: Record<string, string> };
            spec: {
              serviceAccountName: string;
              containers: Array<{
                ports: Array<{ name: string; containerPort: number }>;
                readinessProbe: { httpGet: { path: string; port: string; httpHeaders: Array<{ name: string; value: string }> } };
                livenessProbe: { httpGet: { path: string } };
                securityContext: { readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean };
                envFrom: Array<{ secretRef: { name: string } }>;
              }>;
            };
          };
        };
      }>('Deployment');
      const container = deployment.spec.template.spec.containers[0]!;
      const http = container.ports.find((p) => p.name === 'http')!;
      assert.equal(http.containerPort, config.listen.port);
      assert.equal(container.readinessProbe.httpGet.path, '/readyz');
      assert.equal(container.livenessProbe.httpGet.path, '/healthz');
      assert.deepEqual(container.readinessProbe.httpGet.httpHeaders, [{ name: 'Host', value: 'localhost' }], 'probes pass the Host guard');
      assert.equal(container.securityContext.readOnlyRootFilesystem, true);
      assert.equal(container.securityContext.allowPrivilegeEscalation, false);
      assert.equal(container.envFrom[0]?.secretRef.name, secret.metadata.name);
      const service = find<{ spec: { ports: Array<{ port: number; targetPort: string }>; selector: Record<string, string> } }>('Service');
      assert.equal(service.spec.ports[0]?.targetPort, 'http');
      const podLabels = deployment.spec.template.metadata.labels;
      for (const [k, v] of Object.entries(service.spec.selector)) assert.equal(podLabels[k], v, 'the Service selects the pods');
      const pdb = find<{ spec: { selector: { matchLabels: Record<string, string> } } }>('PodDisruptionBudget');
      for (const [k, v] of Object.entries(pdb.spec.selector.matchLabels)) assert.equal(podLabels[k], v, 'the PDB selects the pods');
      const policy = find<{ spec: { podSelector: { matchLabels: Record<string, string> }; ingress: Array<{ ports: Array<{ port: number }> }> } }>(
        'NetworkPolicy',
      );
      for (const [k, v] of Object.entries(policy.spec.podSelector.matchLabels)) assert.equal(podLabels[k], v, 'the NetworkPolicy selects the pods');
      assert.equal(policy.spec.ingress[0]?.ports[0]?.port, config.listen.port);
      const sa = find('ServiceAccount');
      assert.equal(deployment.spec.template.spec.serviceAccountName, sa.metadata.name);
      for (const route of config.routes) assert.equal(route.credential.type, identity);
      if (identity === 'azure-workload-identity') {
        assert.equal(podLabels['azure.workload.identity/use'], 'true');
        assert.match(sa.metadata.annotations?.['azure.workload.identity/client-id'] ?? '', /^[0-9a-f-]{36}$/);
      } else {
        assert.equal(podLabels['azure.workload.identity/use'], undefined, 'no Azure webhook');
        assert.equal(sa.metadata.annotations, undefined);
        assert.equal(find('Secret').metadata.name, 'dbx-gateway-keys', 'the only Secret holds inbound key hashes, no Databricks secret');
      }
    });

    if (identity === 'file-oidc') {
      it("reads the pod's projected service-account token (own audience, short life) where the config says", () => {
        const configMap = find<{ data: Record<string, string> }>('ConfigMap');
        const config = loadGatewayConfig(configMap.data['dbx-gateway.yaml']!, find<{ stringData: Record<string, string> }>('Secret').stringData);
        const credential = config.routes[0]!.credential;
        assert.match(String(credential.clientId), /^[0-9a-f-]{36}$/, 'a service principal federation policy');
        const pod = find<{
          spec: {
            template: {
              spec: {
                volumes: Array<{
                  name: string;
                  projected?: { sources: Array<{ serviceAccountToken?: { audience: string; expirationSeconds: number; path: string } }> };
                }>;
                containers: Array<{ volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }> }>;
              };
            };
          };
        }>('Deployment').spec.template.spec;
        const volume = pod.volumes.find((v) => v.projected?.sources.some((s) => s.serviceAccountToken));
        const token = volume?.projected?.sources.find((s) => s.serviceAccountToken)?.serviceAccountToken;
        assert.ok(token, 'a projected serviceAccountToken volume');
        assert.ok(token.audience && token.audience !== 'https://kubernetes.default.svc', 'its own audience, not the API server one');
        assert.ok(token.expirationSeconds >= 600 && token.expirationSeconds <= 3600, 'short-lived (600 s is the least Kubernetes allows)');
        const mount = pod.containers[0]!.volumeMounts.find((m) => m.name === volume!.name);
        assert.equal(mount?.readOnly, true);
        assert.equal(credential.oidcTokenFilePath, `${mount!.mountPath}/${token.path}`);
      });
    }
  });
}

describe('docker-compose.yml', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dbxgw-compose-'));
  copyFileSync(join(ROOT, 'docker-compose.yml'), join(dir, 'docker-compose.yml'));
  copyFileSync(join(ROOT, 'deploy/compose/dbx-gateway.yaml'), join(dir, 'dbx-gateway.yaml'));
  copyFileSync(join(ROOT, 'deploy/compose/.env.example'), join(dir, '.env'));
  copyFileSync(join(ROOT, 'Dockerfile'), join(dir, 'Dockerfile'));

  it('is valid for docker-compose (config, no engine needed)', { skip: needs('docker-compose') }, () => {
    const res = spawnSync('docker-compose', ['config'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, ...toolEnv({ DBX_GATEWAY_KEY: 'dgw_example' }) },
    });
    assert.equal(res.status, 0, res.stderr);
    const config = parseYaml(res.stdout) as {
      services: Record<
        string,
        { read_only?: boolean; init?: boolean; environment?: Record<string, string>; depends_on?: Record<string, { condition: string }> }
      >;
    };
    const gateway = config.services['dbx-gateway']!;
    assert.equal(gateway.read_only, true);
    assert.equal(gateway.init, true);
    const dev = config.services.dev!;
    // A per-route port: the Databricks CLI and Terraform drop the path of DATABRICKS_HOST.
    assert.equal(dev.environment?.DATABRICKS_HOST, 'http://dbx-gateway:8081');
    assert.equal(dev.environment?.DATABRICKS_TOKEN, 'dgw_example');
    assert.equal(dev.depends_on?.['dbx-gateway']?.condition, 'service_healthy');
  });

  it('refuses to run the example config open on the network until a key is added, then accepts it', () => {
    const text = readFileSync(join(dir, 'dbx-gateway.yaml'), 'utf8');
    assert.throws(() => loadGatewayConfig(text, {}), /listen\.host: 0\.0\.0\.0 is reachable from other machines/);
    const res = spawnSync(process.execPath, [BIN, 'keys', 'add', 'alice', '--config', join(dir, 'dbx-gateway.yaml')], {
      encoding: 'utf8',
      env: childEnv(),
    });
    assert.equal(res.status, 0, res.stderr);
    const config = loadGatewayConfig(readFileSync(join(dir, 'dbx-gateway.yaml'), 'utf8'), {});
    assert.deepEqual(
      config.inboundKeys.map((k) => k.name),
      ['alice'],
    );
    assert.ok(config.allowedHosts.includes('dbx-gateway'));
    assert.equal(config.routes.find((r) => r.name === 'prod')?.port, 8081, 'the port the dev container uses');
  });
});

describe('Dockerfile and systemd unit', () => {
  it('builds a non-root image with tini, a curl-free HEALTHCHECK and the port the compose file uses', () => {
    const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    assert.match(text, /^FROM node:20-bookworm-slim AS build$/m);
    assert.match(text, /^USER node$/m);
    assert.match(text, /^ENTRYPOINT \["\/usr\/bin\/tini", "--"/m);
    assert.match(text, /^HEALTHCHECK [\s\S]*CMD \["node", "-e", ".*\/healthz/m);
    assert.doesNotMatch(text.replace(/^#.*$/gm, ''), /\bcurl\b/);
    assert.match(text, /^EXPOSE 8080$/m);
    // The HEALTHCHECK's one-liner is valid JavaScript.
    const probe = /CMD \["node", "-e", "(.*)"\]/.exec(text)![1]!.replace(/\\"/g, '"');
    assert.doesNotThrow(() => new Function(probe));
  });

  it('has a user unit that starts the CLI and reloads with SIGHUP', () => {
    const unit = readFileSync(join(ROOT, 'deploy/systemd/dbx-gateway.service'), 'utf8');
    assert.match(unit, /^ExecStart=.*bin\/dbx-gateway\.cjs serve$/m);
    assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    assert.match(unit, /^WantedBy=default\.target$/m);
  });
});
