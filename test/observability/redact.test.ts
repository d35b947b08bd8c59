import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CredentialSetupError, createCredential } from '../../src/auth/credentials/index.js';
import type { CredentialSpec, RouteConfig } from '../../src/config/types.js';
import { scrubSecrets } from '../../src/observability/redact.js';
import { routeConfig } from '../helpers/route-config.js';

const route: RouteConfig = routeConfig();

// Shapes of real secrets (made up, not live).
const JWT = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyQGV4YW1wbGUuY29tIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
const PAT = 'dapi0123456789abcdef0123456789abcdef-2';
const DOSE = 'dose0123456789abcdef0123456789abcdef';
/** Entra ID client secret: 3 chars, a digit, "Q~", 34 of [A-Za-z0-9_~.-]: 40 in all. */
const ENTRA = 'Abc8Q~x.yZ0123456789abcdefghij_klmnop.q-';
const OPAQUE = 'r3fr3sh-t0k3n-opaque-value';

/** [text, the secret in it that must not survive] */
const SECRETS: Array<[string, string]> = [
  [`token ${JWT} was refused`, JWT],
  [`invalid token: ${PAT}`, PAT],
  [`secret ${DOSE} expired`, DOSE],
  [`Authorization: Bearer ${OPAQUE}`, OPAQUE],
  [`Authorization: Basic ZGF0YWJyaWNrcy1jbGk6c2VjcmV0`, 'ZGF0YWJyaWNrcy1jbGk6c2VjcmV0'],
  [`POST /token?grant_type=authorization_code&access_token=${OPAQUE}&x=1`, OPAQUE],
  [`grant_type=refresh_token&refresh_token=${OPAQUE}&client_id=databricks-cli`, OPAQUE],
  [`{"client_id":"abc","client_secret":"${OPAQUE}"}`, OPAQUE],
  [`{"client_secret": "short"}`, 'short'],
  [`{ "access_token" : "${OPAQUE}", "token_type": "Bearer" }`, OPAQUE],
  [`body: {\\"refresh_token\\":\\"${OPAQUE}\\"}`, OPAQUE],
  [`{ clientSecret: '${OPAQUE}' }`, OPAQUE],
  [`DATABRICKS_TOKEN=${OPAQUE} databricks clusters list`, OPAQUE],
  [`AZURE_CLIENT_SECRET=hunter2 az login`, 'hunter2'],
  [`--client-secret=${OPAQUE}`, OPAQUE],
  [`password: ${OPAQUE}`, OPAQUE],
  [`metadata secret: 7c9e6679-7425-40de-944b-e07fc1f1ca4d`, '7c9e6679-7425-40de-944b-e07fc1f1ca4d'],
  [`opaque ${'x'.repeat(24)}${'Y9'.repeat(10)}`, `${'x'.repeat(24)}${'Y9'.repeat(10)}`],
  [ENTRA, ENTRA],
  [`AADSTS7000215: Invalid client secret provided. Secret ${ENTRA} was sent.`, ENTRA],
  [`clientSecret=${ENTRA}`, ENTRA],
  [`{"clientSecret":"${ENTRA}","tenantId":"t"}`, ENTRA],
  [`credential: {"type":"azure-client-secret","secretValue":"${ENTRA}"}`, ENTRA],
];

/** Help and error text from src/ that reaches scrubSecrets (logs, error bodies, doctor, status). */
function helpTexts(): string[] {
  const built = (spec: CredentialSpec, env: NodeJS.ProcessEnv = {}) => createCredential(spec, { env, route });
  const setupError = (spec: CredentialSpec) => {
    try {
      built(spec);
    } catch (err) {
      assert.ok(err instanceof CredentialSetupError);
      return err.message;
    }
    assert.fail(`${spec.type} built without its settings`);
  };
  const none = built({ type: 'default' }, { PATH: '/nonexistent' });
  const credentials = [
    none,
    built({ type: 'pat', token: PAT }),
    built({ type: 'databricks-m2m', clientId: 'c', clientSecret: OPAQUE }),
    built({ type: 'azure-client-secret', tenantId: 't', clientId: 'c', clientSecret: ENTRA }),
    built({ type: 'azure-client-secret', tenantId: 't', clientId: 'c', clientCertificatePath: '/etc/sp.pem' }),
    built({ type: 'databricks-u2m' }, { HOME: '/home/someone' }),
  ];
  return [
    ...credentials.flatMap((c) => [c.hint, c.reason]),
    // As token-cache.ts words a credential that gives no token.
    `no usable token from credential ${none.type}: ${none.reason}. Fix: ${none.hint}`,
    setupError({ type: 'azure-client-secret' }),
    setupError({ type: 'databricks-m2m' }),
    'the token expires in 30 s',
    'token: 30 s left, refreshing',
    'the token endpoint returned no refresh token (was offline_access granted?); the gateway could not refresh this login',
    'refresh_token: the stored one was revoked; the refresh_token grant needs a new login',
    'request 7c9e6679-7425-40de-944b-e07fc1f1ca4d (trace 0af7651916cd43dd8448eb211c80319c) failed',
    'metadataService.secret: must be at least 16 characters (or leave it out for a random one per start)',
    'password: required, secret: optional',
  ];
}

describe('scrubSecrets', () => {
  it('redacts every secret shape it knows, alone and embedded', () => {
    for (const [text, secret] of SECRETS) {
      const out = scrubSecrets(text);
      assert.ok(!out.includes(secret), `${JSON.stringify(text)} -> ${JSON.stringify(out)}`);
      assert.match(out, /\[REDACTED\]/, text);
    }
  });

  it('recognises an Entra ID client secret (with "." and "~"), alone, after clientSecret= and in JSON', () => {
    assert.equal(ENTRA.length, 40);
    assert.equal(scrubSecrets(ENTRA), '[REDACTED]');
    assert.equal(scrubSecrets(`the secret ${ENTRA} expired`), 'the secret [REDACTED] expired');
    assert.equal(scrubSecrets(`clientSecret=${ENTRA}&tenantId=t`), 'clientSecret=[REDACTED]&tenantId=t');
    assert.equal(scrubSecrets(`{"clientSecret":"${ENTRA}"}`), '{"clientSecret":"[REDACTED]"}');
    assert.equal(scrubSecrets(`{"value":"${ENTRA}"}`), '{"value":"[REDACTED]"}');
  });

  it('keeps the surrounding text of a redacted pair', () => {
    assert.equal(scrubSecrets(`{"client_id":"abc","client_secret":"${OPAQUE}"}`), '{"client_id":"abc","client_secret":"[REDACTED]"}');
    assert.equal(scrubSecrets(`a=1&refresh_token=${OPAQUE}&b=2`), 'a=1&refresh_token=[REDACTED]&b=2');
    assert.equal(scrubSecrets(`Authorization: Bearer ${JWT}`), 'Authorization: Bearer [REDACTED]');
    assert.equal(scrubSecrets(`DATABRICKS_TOKEN=${PAT}`), 'DATABRICKS_TOKEN=[REDACTED]');
  });

  it('does not mangle help text that names secrets and tokens in prose', () => {
    const texts = helpTexts();
    assert.ok(
      texts.some((t) => t.includes('azure-client-secret: tenantId, clientId and clientSecret')),
      'the default chain message is among them',
    );
    for (const text of texts) assert.equal(scrubSecrets(text), text);
  });

  it('is stable: scrubbing scrubbed text changes nothing', () => {
    for (const text of [...SECRETS.map(([t]) => t), ...helpTexts()]) {
      const once = scrubSecrets(text);
      assert.equal(scrubSecrets(once), once, text);
    }
  });
});
