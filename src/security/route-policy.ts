import type { RouteConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';

/** Methods that only read (the safe methods of RFC 9110 section 9.2.1 that the Databricks API uses). */
const READ_METHODS = new Set(['GET', 'HEAD']);

/** Route policy: `readOnly: true` lets only GET and HEAD through. */
export function assertAllowedByPolicy(route: RouteConfig, method: string): void {
  if (route.readOnly && !READ_METHODS.has(method)) {
    throw new GatewayError(
      'GATEWAY_FORBIDDEN',
      `route ${route.name} is read-only (routes.${route.name}.readOnly: true): ${method} is not allowed, only GET and HEAD`,
    );
  }
}
