import { constants, createPublicKey, createVerify, verify as verifySignature } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { testPki } from './tls.js';

/** One token request as the fake authority saw it (secrets kept only to assert on them). */
export interface EntraRequest {
  tenant: string;
  clientId: string;
  grantType: string;
  scope: string;
  clientSecret?: string;
  clientAssertion?: string;
  clientAssertionType?: string;
}

export interface MsiRequest {
  resource: string;
  clientId?: string;
  identityHeader?: string;
  apiVersion?: string;
}

/** Registered service principals: client id -> how it proves itself. */
export interface FakeApp {
  secret?: string;
  /** PEM of the certificate whose key signs client assertions. */
  certPem?: string;
  /** Exact federated token (workload identity) accepted as the assertion. */
  federatedToken?: string;
}

export interface FakeEntra {
  url: URL;
  requests: EntraRequest[];
  apps: Map<string, FakeApp>;
  close(): Promise<void>;
}

let counter = 0;

/** A JWT-shaped token (unsigned) whose claims the tests read back at the upstream. */
export function fakeJwt(claims: Record<string, unknown>): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, n: ++counter })}.c2lnbmF0dXJl`;
}

export function jwtClaims(token: string | undefined): Record<string, unknown> {
  const payload = token?.replace(/^Bearer /, '').split('.')[1];
  return payload ? (JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>) : {};
}

/** The resource a v2 scope names: "<resource>/.default" -> "<resource>". */
function resourceOf(scope: string): string {
  return (
    scope
      .split(' ')
      .find((s) => s.endsWith('/.default'))
      ?.replace(/\/\.default$/, '') ?? scope
  );
}

/**
 * A fake Entra ID authority over HTTPS (test CA): OIDC metadata at
 * /{tenant}/v2.0/.well-known/openid-configuration and the v2 token endpoint, checking client
 * secrets, certificate-signed client assertions (signature verified against the registered
 * certificate) and federated tokens. Failures answer like Entra does, AADSTS code, trace and
 * correlation ids included.
 */
export async function startFakeEntra(options: { pki?: { key: string; cert: string } } = {}): Promise<FakeEntra> {
  const requests: EntraRequest[] = [];
  const apps = new Map<string, FakeApp>();
  // Another certificate (for a name such as login.test.example) when the authority is reached by name.
  const pki = options.pki ?? testPki();
  const server = createHttpsServer({ key: pki.key, cert: pki.cert }, (req, res) => {
    void handle(req, res);
  });
  async function handle(req: IncomingMessage, res: ServerResponse) {
    const origin = `https://${req.headers.host}`;
    const url = new URL(req.url ?? '/', origin);
    const meta = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(url.pathname);
    if (meta) {
      const tenant = meta[1]!;
      return json(res, 200, {
        token_endpoint: `${origin}/${tenant}/oauth2/v2.0/token`,
        authorization_endpoint: `${origin}/${tenant}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${origin}/${tenant}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${origin}/${tenant}/oauth2/v2.0/logout`,
        issuer: `${origin}/${tenant}/v2.0`,
        jwks_uri: `${origin}/${tenant}/discovery/v2.0/keys`,
        response_types_supported: ['code', 'id_token', 'code id_token', 'token id_token', 'token'],
      });
    }
    const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname);
    if (token && req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      const seen: EntraRequest = {
        tenant: token[1]!,
        clientId: form.get('client_id') ?? '',
        grantType: form.get('grant_type') ?? '',
        scope: form.get('scope') ?? '',
        ...(form.get('client_secret') ? { clientSecret: form.get('client_secret')! } : {}),
        ...(form.get('client_assertion') ? { clientAssertion: form.get('client_assertion')! } : {}),
        ...(form.get('client_assertion_type') ? { clientAssertionType: form.get('client_assertion_type')! } : {}),
      };
      requests.push(seen);
      const app = apps.get(seen.clientId);
      const proven =
        app !== undefined &&
        ((app.secret !== undefined && seen.clientSecret === app.secret) ||
          (app.certPem !== undefined && seen.clientAssertion !== undefined && assertionSignedBy(seen.clientAssertion, app.certPem)) ||
          (app.federatedToken !== undefined && seen.clientAssertion === app.federatedToken));
      if (!proven) {
        const correlationId = '3f2d1c0b-aaaa-4bbb-8ccc-0123456789ab';
        return json(res, 401, {
          error: 'invalid_client',
          error_description: `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${seen.clientId}'. Trace ID: 9e8d7c6b-1111-2222-3333-444455556666 Correlation ID: ${correlationId} Timestamp: 2026-11-22 10:00:00Z`,
          error_codes: [7000215],
          timestamp: '2026-11-22 10:00:00Z',
          trace_id: '9e8d7c6b-1111-2222-3333-444455556666',
          correlation_id: correlationId,
        });
      }
      return json(res, 200, {
        token_type: 'Bearer',
        expires_in: 3599,
        ext_expires_in: 3599,
        access_token: fakeJwt({ aud: resourceOf(seen.scope), appid: seen.clientId, tid: seen.tenant }),
      });
    }
    json(res, 404, { error: 'not_found', error_description: `fake Entra has no ${url.pathname}` });
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}`),
    requests,
    apps,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface FakeMsi {
  /** The IDENTITY_ENDPOINT value. */
  endpoint: string;
  identityHeader: string;
  requests: MsiRequest[];
  close(): Promise<void>;
}

/** The App Service / Container Apps managed identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER). */
export async function startFakeMsi(): Promise<FakeMsi> {
  const identityHeader = 'fake-identity-header-value';
  const requests: MsiRequest[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const seen: MsiRequest = {
      resource: url.searchParams.get('resource') ?? '',
      ...(url.searchParams.get('client_id') ? { clientId: url.searchParams.get('client_id')! } : {}),
      ...(typeof req.headers['x-identity-header'] === 'string' ? { identityHeader: req.headers['x-identity-header'] } : {}),
      ...(url.searchParams.get('api-version') ? { apiVersion: url.searchParams.get('api-version')! } : {}),
    };
    requests.push(seen);
    if (url.pathname !== '/msi/token' || seen.identityHeader !== identityHeader) {
      return json(res, 400, { statusCode: 400, message: 'missing or wrong X-IDENTITY-HEADER' });
    }
    json(res, 200, {
      access_token: fakeJwt({ aud: seen.resource, oid: seen.clientId ?? 'system-assigned' }),
      expires_on: String(Math.floor(Date.now() / 1000) + 3600),
      resource: seen.resource,
      token_type: 'Bearer',
      client_id: seen.clientId ?? '00000000-0000-0000-0000-0000000000aa',
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/msi/token`,
    identityHeader,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Verifies a client assertion JWT (RS256 or PS256, as MSAL signs them) against a certificate. */
function assertionSignedBy(assertion: string, certPem: string): boolean {
  const [h, p, s] = assertion.split('.');
  if (!h || !p || !s) return false;
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { alg?: string };
  const key = createPublicKey(certPem);
  const data = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s, 'base64url');
  if (header.alg === 'RS256') return createVerify('RSA-SHA256').update(data).verify(key, sig);
  if (header.alg === 'PS256') {
    return verifySignature('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);
  }
  return false;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
