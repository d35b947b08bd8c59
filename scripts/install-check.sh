#!/usr/bin/env bash
# The package as a user installs it, run from outside the checkout: `npx dbx-gateway` resolves the
# checkout's own bin only inside it, so the README tells people to install the command; this proves
# that the packed tarball carries what it needs (dist/, the rendered help, runtime dependencies in
# `dependencies`) and works from any folder with an empty HOME.
#
# Steps: `npm pack` (its `prepare` builds dist/), install the tarball into a temporary prefix, then
# from another folder: `dbx-gateway --version`, the demo (`serve --port 0 --demo`) answering curl,
# and `token demo` answered by that running gateway. Any failed step stops the run with its output.
# The install fetches the dependencies from the registry (or npm's cache), like a user's install.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout="$PWD"

tmp="$(mktemp -d)"
gateway_pid=""
cleanup() {
  if [ -n "$gateway_pid" ]; then
    kill "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "install-check: FAILED: $*" >&2
  exit 1
}

step() { echo "install-check: $*"; }

step "npm pack"
mkdir "$tmp/pack"
npm pack --pack-destination "$tmp/pack" >"$tmp/pack.log" 2>&1 || { cat "$tmp/pack.log" >&2; fail "npm pack"; }
tgz="$(find "$tmp/pack" -name 'dbx-gateway-*.tgz' | head -n 1)"
[ -n "$tgz" ] || fail "npm pack made no tarball in $tmp/pack"
tar -tzf "$tgz" >"$tmp/contents"
for entry in package/package.json package/bin/dbx-gateway.cjs package/dist/cli/index.js package/dist/cli/help.txt package/README.md; do
  grep -qxF "$entry" "$tmp/contents" || fail "$(basename "$tgz") lacks $entry (package.json \"files\", and \`prepare\` building dist/)"
done
if grep -qE '^package/(src|test|bench)/' "$tmp/contents"; then fail "$(basename "$tgz") carries sources or tests: $(grep -E '^package/(src|test|bench)/' "$tmp/contents" | head -n 3)"; fi

step "npm install -g --prefix (outside the checkout) $(basename "$tgz")"
prefix="$tmp/prefix"
npm install -g --prefix "$prefix" --no-audit --no-fund --prefer-offline "$tgz" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "npm install -g --prefix $prefix $tgz"; }
[ -x "$prefix/bin/dbx-gateway" ] || fail "the install made no $prefix/bin/dbx-gateway"

# Another folder, an empty HOME (no config, no ~/.databrickscfg, no run files of a gateway the user
# has running) and a PATH of the installed command and node only: nothing from the checkout.
elsewhere="$tmp/elsewhere"
home="$tmp/home"
mkdir "$elsewhere" "$home"
node_dir="$(dirname "$(command -v node)")"
user() { (cd "$elsewhere" && env -i HOME="$home" PATH="$prefix/bin:$node_dir" "$@"); }
[ "$(user /bin/sh -c 'command -v dbx-gateway')" = "$prefix/bin/dbx-gateway" ] || fail "dbx-gateway on PATH is not the installed one"
case "$(cd "$prefix" && pwd -P)" in "$checkout"/*) fail "the prefix $prefix is inside the checkout" ;; esac

step "dbx-gateway --version"
expected="$(node -p "require('./package.json').version")"
version="$(user dbx-gateway --version)" || fail "dbx-gateway --version"
[ "$version" = "$expected" ] || fail "dbx-gateway --version printed '$version', expected '$expected'"
user dbx-gateway --help >"$tmp/help.txt" || fail "dbx-gateway --help"
grep -q 'dbx-gateway' "$tmp/help.txt" || fail "dbx-gateway --help printed no usage"

step "dbx-gateway serve --port 0 --demo"
# Not through user(): a function run with & is a subshell that forks again for user()'s own
# subshell, so $! would be a shell that kill stops while the gateway keeps running. One subshell
# that execs makes $! the gateway itself.
(cd "$elsewhere" && exec env -i HOME="$home" PATH="$prefix/bin:$node_dir" dbx-gateway serve --port 0 --demo --log-format json) >"$tmp/serve.out" 2>"$tmp/serve.err" &
gateway_pid=$!
url=""
# The JSON log's "listening on" line carries the URL (test/helpers/spawn-gateway.ts reads the same).
for _ in $(seq 1 300); do
  url="$(sed -n 's/.*"url":"\(http:\/\/[^"]*\)".*/\1/p' "$tmp/serve.out" | head -n 1)"
  [ -n "$url" ] && break
  kill -0 "$gateway_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  cat "$tmp/serve.out" "$tmp/serve.err" >&2
  fail "the installed gateway did not say where it listens"
fi
grep -q 'demo' "$tmp/serve.out" || { cat "$tmp/serve.out" >&2; fail "the gateway did not announce the demo"; }

step "curl $url/ws/demo/api/2.0/clusters/list"
body="$(curl -sS --fail-with-body --max-time 30 "$url/ws/demo/api/2.0/clusters/list")" ||
  { echo "$body" >&2; cat "$tmp/serve.out" "$tmp/serve.err" >&2; fail "the demo route did not answer"; }
case "$body" in *'"clusters"'*) ;; *) fail "the demo route answered without clusters: $body" ;; esac

step "dbx-gateway token demo"
# The demo's token source lives only in the running gateway: a token here means the CLI found it.
token="$(user dbx-gateway token demo --output json 2>"$tmp/token.err")" ||
  { cat "$tmp/token.err" >&2; fail "dbx-gateway token demo"; }
case "$token" in *'"access_token":"'*) ;; *) fail "dbx-gateway token demo printed no token: $token" ;; esac

kill "$gateway_pid"
wait "$gateway_pid" 2>/dev/null || true
gateway_pid=""
step "ok: the packed package installs and runs outside the checkout"
