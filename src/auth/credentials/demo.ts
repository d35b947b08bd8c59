import { databricksClientCredentials } from './databricks-m2m.js';
import type { CredentialProvider } from './provider.js';

/**
 * The built-in demo workspace's own token source: Databricks OAuth M2M against its embedded
 * /oidc endpoints, with the demo's fixed client id and secret.
 */
export const demoProvider: CredentialProvider = {
  type: 'demo',
  lookedFor: 'the built-in demo workspace',
  detect: () => undefined,
  create: (_spec, ctx, reason) =>
    databricksClientCredentials({
      type: 'demo',
      route: ctx.route,
      clientId: 'demo-client',
      clientSecret: 'demo-secret',
      reason,
      hint: 'restart dbx-gateway (the demo workspace is built in)',
    }),
};
