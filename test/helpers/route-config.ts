import type { RouteConfig } from '../../src/config/types.js';

/** A workspace route config as loadConfig would build it (route "prod", default credential), with `overrides`. */
export function routeConfig(overrides: Partial<RouteConfig> = {}): RouteConfig {
  return {
    name: 'prod',
    kind: 'workspace',
    upstream: new URL('https://adb-1.1.azuredatabricks.net'),
    credential: { type: 'default' },
    readOnly: false,
    source: 'test',
    ...overrides,
  };
}
