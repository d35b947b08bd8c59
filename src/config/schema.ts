import { z } from 'zod';

/** pino's levels, for logLevel in the file and DBX_GATEWAY_LOG_LEVEL. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** Route names become URL segments (/ws/NAME): keep them to characters that never need encoding. */
export const ROUTE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * A Databricks account id is a UUID (https://learn.microsoft.com/azure/databricks/admin/account-settings/#account-id):
 * it goes into URLs and into `token --output cmd|powershell|env` assignments, so nothing else is taken.
 */
export const ACCOUNT_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const ACCOUNT_ID_HINT = 'the account id is a UUID such as 00000000-0000-0000-0000-000000000000 (the accounts console shows it)';

const port = z
  .number({ error: 'must be a port number (1-65535)' })
  .int('must be a whole number')
  .min(1, 'must be between 1 and 65535')
  .max(65535, 'must be between 1 and 65535');

const credentialObject = z.looseObject({
  type: z.string({ error: 'must name a credential type, e.g. type: azure-cli' }),
});

/** `credential: azure-cli` or `credential: { type: azure-client-secret, tenantId: ..., ... }`. */
export const credentialSchema = z.union([z.string(), credentialObject], {
  error: 'must be a credential type name or an object with a type',
});

export const routeSchema = z.strictObject({
  host: z.string().optional(),
  profile: z.string().optional(),
  accountId: z.string().regex(ACCOUNT_ID_PATTERN, `not a UUID; ${ACCOUNT_ID_HINT}`).optional(),
  credential: credentialSchema.optional(),
  readOnly: z.boolean().optional(),
  port: port.optional(),
  caFile: z.string().optional(),
  proxy: z.string().optional(),
  azureResourceId: z.string().optional(),
  allowMethods: z.array(z.string().regex(/^[A-Za-z]+$/, 'must be an HTTP method such as GET')).optional(),
  denyPaths: z.array(z.string()).optional(),
  allowTokenCreation: z.boolean().optional(),
  metadataService: z.boolean().optional(),
  sparkConnect: z.strictObject({ port }).optional(),
  postgres: z
    .strictObject({
      port,
      endpoint: z.string().optional(),
      instance: z.string().optional(),
      host: z.string().optional(),
      database: z.string().optional(),
      user: z.string().optional(),
    })
    .optional(),
});

/** `alice: sha256:<hex>` or `alice: { hash: sha256:<hex>, routes: [dev] }`. */
export const inboundKeySchema = z.union([z.string(), z.strictObject({ hash: z.string(), routes: z.array(z.string()).optional() })]);

const positiveMs = z.number().int('must be a whole number of milliseconds').positive('must be positive');

export const fileConfigSchema = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().optional(),
      port: port.optional(),
      tls: z
        .union([z.literal('auto'), z.strictObject({ certFile: z.string(), keyFile: z.string() })], {
          error: 'must be auto, or { certFile, keyFile } with PEM files',
        })
        .optional(),
    })
    .optional(),
  credential: credentialSchema.optional(),
  routes: z.record(z.string(), routeSchema).optional(),
  allowedHosts: z.array(z.string()).optional(),
  allowedOrigins: z.array(z.string()).optional(),
  inboundKeys: z.record(z.string(), inboundKeySchema).optional(),
  limits: z
    .strictObject({
      maxHeaderBytes: z
        .number()
        .int()
        .min(1024, 'must be at least 1024')
        .max(1 << 20, 'must be at most 1048576')
        .optional(),
      maxConnections: z.number().int().positive('must be positive').optional(),
      maxConnectionsPerClient: z.number().int().positive('must be positive').optional(),
      requestsPerMinutePerKey: z.number().int().positive('must be positive').optional(),
    })
    .optional(),
  timeouts: z
    .strictObject({
      connectMs: positiveMs.optional(),
      headersMs: positiveMs.optional(),
      idleMs: positiveMs.optional(),
      drainMs: positiveMs.optional(),
    })
    .optional(),
  metadataService: z
    .union([
      z.boolean(),
      z.strictObject({
        secret: z.string().min(16, 'must be at least 16 characters (or leave it out for a random one per start)').optional(),
      }),
    ])
    .optional(),
  logLevel: z.enum(LOG_LEVELS).optional(),
  logFormat: z.enum(['text', 'json']).optional(),
});

export type FileConfig = z.infer<typeof fileConfigSchema>;
export type FileRoute = z.infer<typeof routeSchema>;
