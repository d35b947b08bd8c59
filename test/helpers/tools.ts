import { spawnSync } from 'node:child_process';

/**
 * Why a test that needs an optional tool must skip: false when `tool` is on PATH, else a message
 * naming it and how .ci/run installs it. For `describe(name, { skip: needs('kubectl') }, ...)`.
 */
export function needs(tool: string, aptPackage = tool): string | false {
  const probe = process.platform === 'win32' ? spawnSync('where', [tool]) : spawnSync('sh', ['-c', `command -v ${tool}`]);
  return probe.status === 0 ? false : `needs ${tool} (apt-get install ${aptPackage}; .ci/run installs it)`;
}
