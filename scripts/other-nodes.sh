#!/usr/bin/env bash
# The suite under the other Node majors the project targets (22, 24), with the Linux binaries
# of the npm `node` package. Part of .ci/run after `npm test`; skipped with a message when the
# registry cannot be reached. Dot reporter: the CI log keeps one test summary, npm test's.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for major in 22 24; do
  dir="$(mktemp -d)"
  # mktemp makes it 0700: the tests that run a client as another user (nobody) need to execute
  # this Node too.
  chmod 755 "$dir"
  if ! (cd "$dir" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent "node@$major" >/dev/null 2>&1) || [ ! -x "$dir/node_modules/.bin/node" ]; then
    echo "Node $major: skipped (npm install node@$major failed: no registry?)"
    continue
  fi
  version="$("$dir/node_modules/.bin/node" --version)"
  if PATH="$dir/node_modules/.bin:$PATH" DBX_GATEWAY_TEST_REPORTER=dot node scripts/run-tests.mjs >"$dir/tests.log" 2>&1; then
    echo "Node $version: the whole suite passed"
  else
    echo "Node $version: FAILED"
    tail -60 "$dir/tests.log"
    status=1
  fi
done
exit "$status"
