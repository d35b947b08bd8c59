import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type FakeUpstream, startFakeUpstream } from './fake-upstream.js';

export interface AuthorizeCall {
  params: Record<string, string>;
}

export interface TokenCall {
  path: string;
  authorization: string | undefined;
  form: Record<string, string>;
  status: number;
}

export interface FakeDatabricksOidcOptions {
  /** Service principals for client credentials (M2M): client id -> secret, sent in HTTP Basic. */
  m2mClients?: Record<string, string>;
  /** The error_description of a refused client credentials grant (e.g. hostile text). */
  m2mRefusal?: string;
  /** Replace the discovery document (e.g. to name a token endpoint on another host). */
  discovery?: (origin: string) => Record<string, string>;
  /** Token federation (RFC 8693 exchange); absent: every exchange is refused. */
  federation?: FederationPolicy;
}

/**
 * What the fake's federation policy accepts: the subject JWT's audience (default: the SDKs' rule,
 * the workspace token endpoint or the account id), and a client_id (a service principal's policy)
 * or none (account-wide federation).
 */
export interface FederationPolicy {
  /** The client_id the exchange must carry; undefined: it must carry none. */
  clientId?: string;
  audience?: (where: { origin: string; accountId?: string }) => string;
  /** Answer without expires_in, so the client must take the lifetime from the JWT's exp. */
  omitExpiresIn?: boolean;
}

/** An unsigned JWT with these claims (the fake, like the gateway, does not verify signatures). */
export function makeJwt(claims: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'RS256', typ: 'JWT', kid: 'test' })}.${part(claims)}.${randomBytes(16).toString('base64url')}`;
}

function jwtClaims(jwt: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

export interface FakeDatabricksOidc {
  upstream: FakeUpstream;
  authorizeCalls: AuthorizeCall[];
  tokenCalls: TokenCall[];
  /** Refresh tokens the server would accept right now. */
  liveRefreshTokens: Set<string>;
  /** Revoke every refresh token (as an admin or an expiry would). */
  revokeAll(): void;
  close(): Promise<void>;
}

/**
 * A fake Databricks host with its OAuth endpoints over HTTPS (test CA): discovery at
 * /oidc/.well-known/oauth-authorization-server; an authorize endpoint that "signs the user in" at
 * once and redirects to redirect_uri with a code; the workspace token endpoint /oidc/v1/token and
 * the account one /oidc/accounts/{id}/v1/token. The token endpoint checks PKCE (S256 of the
 * verifier must equal the challenge), redirect_uri and client_id, rotates refresh tokens, and
 * checks client credentials in HTTP Basic. Other paths echo the Authorization they got.
 */
export async function startFakeDatabricksOidc(options: FakeDatabricksOidcOptions = {}): Promise<FakeDatabricksOidc> {
  const authorizeCalls: AuthorizeCall[] = [];
  const tokenCalls: TokenCall[] = [];
  const codes = new Map<string, { challenge: string; redirectUri: string; clientId: string }>();
  const liveRefreshTokens = new Set<string>();
  let issued = 0;

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const origin = `https://${req.headers.host}`;
    const url = new URL(req.url ?? '/', origin);
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c;
    });
    req.on('end', () => {
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (url.pathname === '/oidc/.well-known/oauth-authorization-server') {
        if (options.discovery) return json(200, options.discovery(origin));
        return json(200, { authorization_endpoint: `${origin}/oidc/v1/authorize`, token_endpoint: `${origin}/oidc/v1/token`, issuer: `${origin}/oidc` });
      }
      if (url.pathname === '/oidc/v1/authorize') {
        const params = Object.fromEntries(url.searchParams);
        authorizeCalls.push({ params });
        const code = randomBytes(12).toString('hex');
        codes.set(code, { challenge: params.code_challenge ?? '', redirectUri: params.redirect_uri ?? '', clientId: params.client_id ?? '' });
        const back = new URL(params.redirect_uri ?? 'http://invalid');
        back.searchParams.set('code', code);
        back.searchParams.set('state', params.state ?? '');
        res.writeHead(302, { location: back.href });
        return res.end();
      }
      const accountMatch = /^\/oidc\/accounts\/([^/]+)\/v1\/token$/.exec(url.pathname);
      const account = accountMatch !== null;
      if ((url.pathname === '/oidc/v1/token' || account) && req.method === 'POST') {
        const form = Object.fromEntries(new URLSearchParams(body));
        const reply = (status: number, value: unknown) => {
          tokenCalls.push({ path: url.pathname, authorization: req.headers.authorization, form, status });
          json(status, value);
        };
        if (form.grant_type === 'client_credentials') {
          const [id, secret] = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64')
            .toString()
            .split(':');
          if (!id || options.m2mClients?.[decodeURIComponent(id)] !== decodeURIComponent(secret ?? '')) {
            return reply(401, { error: 'invalid_client', error_description: options.m2mRefusal ?? 'Client authentication failed' });
          }
          issued++;
          return reply(200, { access_token: `m2m-${issued}-${account ? 'account' : 'workspace'}`, token_type: 'Bearer', expires_in: 3600, scope: form.scope });
        }
        if (form.grant_type === 'urn:ietf:params:oauth:grant-type:token-exchange') {
          const policy = options.federation;
          if (!policy) return reply(400, { error: 'invalid_request', error_description: 'no federation policy' });
          if (form.subject_token_type !== 'urn:ietf:params:oauth:token-type:jwt' || form.scope !== 'all-apis') {
            return reply(400, { error: 'invalid_request', error_description: 'subject_token_type must be jwt and scope all-apis' });
          }
          if (req.headers.authorization) return reply(400, { error: 'invalid_request', error_description: 'no client authentication expected' });
          if (form.client_id !== policy.clientId) {
            return reply(401, { error: 'invalid_client', error_description: `client_id ${form.client_id ?? '(none)'} does not match the policy` });
          }
          const claims = jwtClaims(form.subject_token ?? '');
          const accountId = accountMatch?.[1];
          const where = { origin, ...(accountId ? { accountId } : {}) };
          const expected = policy.audience ? policy.audience(where) : (accountId ?? `${origin}/oidc/v1/token`);
          if (!claims || claims.aud !== expected) {
            return reply(400, { error: 'invalid_grant', error_description: `audience ${String(claims?.aud)} is not ${expected}` });
          }
          const exp = typeof claims.exp === 'number' ? claims.exp : 0;
          const left = exp - Math.floor(Date.now() / 1000);
          if (left <= 0) return reply(400, { error: 'invalid_grant', error_description: 'subject token expired' });
          issued++;
          // Databricks tokens from a federation exchange live as long as the JWT.
          return reply(200, {
            access_token: `fed-${issued}-${account ? 'account' : 'workspace'}-${String(claims.sub)}`,
            token_type: 'Bearer',
            ...(policy.omitExpiresIn ? {} : { expires_in: left }),
          });
        }
        const issue = () => {
          issued++;
          const refresh = `refresh-${issued}-${randomBytes(8).toString('hex')}`;
          liveRefreshTokens.add(refresh);
          return { access_token: `u2m-access-${issued}`, refresh_token: refresh, token_type: 'Bearer', expires_in: 3600 };
        };
        if (form.grant_type === 'authorization_code') {
          const grant = codes.get(form.code ?? '');
          codes.delete(form.code ?? '');
          const pkce = createHash('sha256')
            .update(form.code_verifier ?? '')
            .digest('base64url');
          if (!grant || grant.challenge !== pkce || grant.redirectUri !== form.redirect_uri || grant.clientId !== form.client_id) {
            return reply(400, { error: 'invalid_grant', error_description: 'PKCE verification failed or the code is unknown' });
          }
          return reply(200, issue());
        }
        if (form.grant_type === 'refresh_token') {
          if (!liveRefreshTokens.delete(form.refresh_token ?? '') || form.client_id !== 'databricks-cli') {
            return reply(400, { error: 'invalid_grant', error_description: 'Refresh token is invalid' });
          }
          return reply(200, issue());
        }
        return reply(400, { error: 'unsupported_grant_type' });
      }
      json(200, { auth: req.headers.authorization ?? null });
    });
  };
  const upstream = await startFakeUpstream(handler);
  return {
    upstream,
    authorizeCalls,
    tokenCalls,
    liveRefreshTokens,
    revokeAll: () => liveRefreshTokens.clear(),
    close: () => upstream.close(),
  };
}
