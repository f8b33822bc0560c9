#!/usr/bin/env bash
# The benchmark suite: every Portcullis path beside the raw operation it is built on or the peer users
# would pick instead (better-auth, oidc-provider), in one run, as ratios of medians. See docs/benchmarks.md.
#
#   scripts/bench.sh           full run on release builds; writes bench/results/latest.json,
#                              docs/benchmarks.md (its results section), README.md (its figures
#                              table) and docs/img/*.svg
#   scripts/bench.sh --quick   CI check on debug builds: every pair runs once, briefly, and must produce
#                              sane figures; writes only a temporary JSON and claims no figures
#
# It installs what it needs, idempotently: Debian's wrk, PostgreSQL (scripts/ensure-postgres.sh), and the
# pinned npm peers (bench/peers, better-sqlite3 built from source) and the e2e packages (supertokens-node,
# through e2e/setup.sh). Everything listens on 127.0.0.1 only;
# every load loop is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=full
case "${1:-}" in
  --quick) mode=quick ;;
  "") ;;
  *) echo "usage: scripts/bench.sh [--quick]" >&2; exit 2 ;;
esac
if [ "$mode" = full ]; then
  profile=release runs=3 http_seconds=10 load_seconds=10 inproc_seconds=2 startup_runs=5
  login_clients=8 chain_clients=16 prefill=20000
else
  profile=${BENCH_PROFILE:-debug} runs=1 http_seconds=1 load_seconds=1 inproc_seconds=0.2 startup_runs=1
  login_clients=2 chain_clients=2 prefill=200
fi
began=$(date +%s)
# Other work on the machine skews both sides of a pair alike, but it is recorded with the figures.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# --- what the suite needs -------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  echo "bench: installing Debian's wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
bash scripts/ensure-postgres.sh >/dev/null
bash e2e/setup.sh
(
  cd bench/peers
  # npm ci wipes node_modules: skip it when the installed tree already matches the lock file.
  want="$(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)"
  if [ "$(cat node_modules/.bench-stamp 2>/dev/null)" != "$want" ]; then
    echo "bench: npm ci in bench/peers (builds better-sqlite3 from source, about 2 minutes)"
    # node-gyp builds against Debian's Node headers; it cannot download any.
    npm_config_nodedir=/usr npm ci --no-audit --no-fund --loglevel=error >/dev/null
    echo "$want" >node_modules/.bench-stamp
  fi
)
if [ "$profile" = release ]; then
  cargo build --release --locked -q -p portcullis -p demo-app -p portcullis-bench
else
  cargo build --locked -q -p portcullis -p demo-app -p portcullis-bench
fi
bin="${CARGO_TARGET_DIR:-$root/target}/$profile"

work=$(mktemp -d)
pids=()
pg_db="portcullis_bench_$$"
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
samples="$work/samples.jsonl"
: >"$samples"
export RUST_LOG=warn NODE_ENV=production

# `start NAME COMMAND…` runs a server in the background and sets `url` to the URL it announces on stdout (it
# binds port 0). Not called in a command substitution, so the server's pid reaches `pids`.
start() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 600); do
    url=$(grep -o 'http://[0-9.:]*' "$work/$name.out" 2>/dev/null | head -n 1 || true)
    [ -n "$url" ] && return
    sleep 0.05
  done
  echo "bench: $name did not start" >&2
  cat "$work/$name.err" >&2
  exit 1
}

# --- servers ----------------------------------------------------------------------------------------
# The load comes from one address at thousands of requests a second: the per-IP rate limits and the
# per-IP captcha escalation would refuse it, so the servers under load run with both off (each request
# then skips their counter upsert; docs/benchmarks.md says so).
unlimited=(PORTCULLIS_LOGIN__PAGE_REQUESTS_PER_IP_PER_MINUTE=0 PORTCULLIS_LOGIN__API_REQUESTS_PER_IP_PER_MINUTE=0
  PORTCULLIS_LOGIN__CAPTCHA_IP_ALLOWANCE=0)

# Starts `portcullis serve` as NAME on SQLite (WAL, synchronous=NORMAL unless SYNC says otherwise) in DIR,
# with the dev outbox for login codes and an organization for the login, token and refresh pairs: sets url,
# org, secret and key.
serve_sqlite() {
  local name=$1 dir=$2
  local env_=(env PORTCULLIS_DATA_DIR="$dir" PORTCULLIS_SERVER__LISTEN=127.0.0.1:0
    PORTCULLIS_STORE__SQLITE_SYNCHRONOUS="${SYNC:-normal}"
    PORTCULLIS_LOGIN__DEV_OUTBOX=true PORTCULLIS_LOG__LEVEL=warn "${unlimited[@]}")
  org=$("${env_[@]}" "$bin/portcullis" org create bench --json | sed -n 's/.*"id": "\([^"]*\)".*/\1/p')
  "${env_[@]}" "$bin/portcullis" org configure "$org" --whitelist https://app.example.com \
    --redirect-uri https://app.example.com/callback >/dev/null
  secret=$("${env_[@]}" "$bin/portcullis" org secret create "$org" --json | sed -n 's/.*"secret": "\([^"]*\)".*/\1/p')
  key=$("${env_[@]}" "$bin/portcullis" org api-key create "$org" --json | sed -n 's/.*"key": "\([^"]*\)".*/\1/p')
  start "$name" "${env_[@]}" "$bin/portcullis" serve
}

# Cost as the store grows: the same server on stores that `portcullis-bench prefill` first filled with
# sessions and a tenth as many users (the quick mode's are small, so it only checks that the pairs run).
# Each is driven right after the server on the store without them, which is the pair's baseline.
if [ "$mode" = full ]; then scale_sizes=(100k:100000 1m:1000000); else scale_sizes=(100k:1000 1m:2000); fi
declare -A scale_url scale_org scale_secret scale_key
for entry in "${scale_sizes[@]}"; do
  size=${entry%%:*} sessions=${entry#*:}
  "$bin/portcullis-bench" prefill --data-dir "$work/scale-$size" --sessions "$sessions" --users $((sessions / 10))
  serve_sqlite "portcullis-$size" "$work/scale-$size"
  scale_url[$size]=$url scale_org[$size]=$org scale_secret[$size]=$secret scale_key[$size]=$key
done

# A server with a sync per commit (`synchronous = FULL`), where concurrent rotations share one commit's sync.
SYNC=full serve_sqlite portcullis-full "$work/sqlite-full"
full_server=$url full_key=$key

# The server most pairs drive, on a store holding only what the runs add (last, so its org, secret and key
# are the ones set).
serve_sqlite portcullis "$work/sqlite"
server=$url

# The same on PostgreSQL, in a fresh database.
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $pg_db" >/dev/null
pg_env=(env PORTCULLIS_DATA_DIR="$work/pg" PORTCULLIS_SERVER__LISTEN=127.0.0.1:0 PORTCULLIS_LOG__LEVEL=warn
  PORTCULLIS_STORE__BACKEND=postgres PORTCULLIS_STORE__POSTGRES_URL="postgres://postgres@127.0.0.1:5432/$pg_db"
  "${unlimited[@]}")
pg_org=$("${pg_env[@]}" "$bin/portcullis" org create bench --json | sed -n 's/.*"id": "\([^"]*\)".*/\1/p')
pg_key=$("${pg_env[@]}" "$bin/portcullis" org api-key create "$pg_org" --json | sed -n 's/.*"key": "\([^"]*\)".*/\1/p')
start portcullis-pg "${pg_env[@]}" "$bin/portcullis" serve
pg_server=$url

# The demo app (the SDK in an axum app), signed in through its dev sign-in for a Bearer access token.
start demo env PORTCULLIS_URL="$server" DEMO_API_KEY="$key" DEMO_LISTEN=127.0.0.1:0 DEMO_DEV_MODE=1 "$bin/demo-app"
demo=$url
token=$(curl -s -D - -o /dev/null -X POST "$demo/dev/sign-in" -H 'content-type: application/json' \
  -H 'st-auth-mode: header' -d '{"userId":"bench-user"}' | sed -n 's/^st-access-token: \([^\r]*\).*/\1/p')
[ -n "$token" ] || { echo "bench: demo sign-in failed" >&2; exit 1; }
curl -sf "$demo/api/me" -H "authorization: Bearer $token" >/dev/null

# A supertokens-node 24 backend (express; e2e/supertokens-apps/node-app.mjs) whose core is the same
# Portcullis, signed in for a header-mode access token.
start supertokens-node env CONNECTION_URI="$server/supertokens/appid-$org" API_KEY="$key" \
  node e2e/supertokens-apps/node-app.mjs
stnode=$url
st_token=$(curl -s -D - -o /dev/null -X POST "$stnode/login" -H 'content-type: application/json' \
  -H 'st-auth-mode: header' -d '{"userId":"bench-user"}' | sed -n 's/^st-access-token: \([^\r]*\).*/\1/p')
[ -n "$st_token" ] || { echo "bench: supertokens-node sign-in failed" >&2; exit 1; }
curl -sf "$stnode/me-db" -H "authorization: Bearer $st_token" >/dev/null

# better-auth on SQLite, signed up and in with email and password, for its session cookies.
start better-auth env DB_FILE="$work/better-auth.db" node bench/peers/better-auth.mjs
better=$url
curl -sf -o /dev/null "$better/api/auth/sign-up/email" -H 'content-type: application/json' -H 'origin: http://127.0.0.1' \
  -d '{"email":"bench@example.com","password":"bench-password-1234","name":"Bench"}'
cookies=$(curl -sf -D - -o /dev/null "$better/api/auth/sign-in/email" -H 'content-type: application/json' \
  -H 'origin: http://127.0.0.1' -d '{"email":"bench@example.com","password":"bench-password-1234"}' |
  sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\);.*/\1/p' | paste -sd ';' | sed 's/;/; /g')
case "$cookies" in *better-auth.session_data=*) ;; *) echo "bench: no better-auth cookie cache: $cookies" >&2; exit 1 ;; esac
curl -sf "$better/api/auth/get-session" -H "cookie: $cookies" | grep -q '"session":{'

start oidc-provider node bench/peers/oidc-provider.mjs
oidc=$url

# --- measurements -------------------------------------------------------------------------------------
# wrk -t1 -c32 on one URL; every answer must be 200 and contain $expect, or the run fails.
wrk_sample() {
  local pair=$1 side=$2 run=$3 expect=$4 url=$5
  shift 5
  cat >"$work/check.lua" <<LUA
-- Counts wrong answers so a broken run cannot pass for a fast one.
local bad = 0
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, '$expect', 1, true) then bad = bad + 1 end
end
done = function() if bad > 0 then io.stderr:write("wrong answers: " .. bad .. "\n"); os.exit(1) end end
LUA
  wrk -t1 -c32 -d"${http_seconds}s" --latency -s "$work/check.lua" "$@" "$url" >"$work/wrk.out"
  awk -v pair="$pair" -v side="$side" -v run="$run" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } /Requests\/sec/ { rps = $2 }
    END { printf "{\"pair\":\"%s\",\"side\":\"%s\",\"run\":%d,\"value\":%s,\"unit\":\"req/s\",\"p50Ms\":%s,\"p99Ms\":%s,\"clients\":32}\n", pair, side, run, rps, p50, p99 }
  ' "$work/wrk.out" >>"$samples"
  echo "  $pair $side: $(grep 'Requests/sec' "$work/wrk.out")"
}

load() { "$bin/portcullis-bench" load "$@" --seconds "$load_seconds" --samples "$samples"; }

echo "bench ($mode): $runs run(s) of each pair, interleaved"
for run in $(seq "$runs"); do
  echo "run $run"
  wrk_sample protected-http portcullis "$run" '"userId"' "$demo/api/me" -H "authorization: Bearer $token"
  wrk_sample protected-http baseline "$run" '"session":{' "$better/api/auth/get-session" -H "cookie: $cookies"
  # The same app's page without a token: how far verification keeps the protected request from HTTP's ceiling.
  grep "\"pair\":\"protected-http\",\"side\":\"portcullis\",\"run\":$run," "$samples" |
    sed 's/"protected-http"/"protected-http-ceiling"/' >>"$samples"
  wrk_sample protected-http-ceiling baseline "$run" '<title>Portcullis demo</title>' "$demo/"
  load portcullis-login --url "$server" --clients "$login_clients" --client-id "$org" --client-secret "$secret" \
    --pair login-http --side portcullis --run "$run"
  load better-auth-login --url "$better" --clients "$login_clients" --pair login-http --side baseline --run "$run"
  load portcullis-token --url "$server" --clients "$chain_clients" --client-id "$org" --client-secret "$secret" \
    --pair token-http --side portcullis --run "$run"
  load oidc-provider-token --url "$oidc" --clients "$chain_clients" --pair token-http --side baseline --run "$run"
  load portcullis-refresh --url "$server" --clients "$chain_clients" --api-key "$key" \
    --pair refresh-sqlite-http --side portcullis --run "$run"
  "$bin/portcullis-bench" raw-rotation sqlite --seconds "$load_seconds" --samples "$samples" --prefill "$prefill" \
    --pair refresh-sqlite-http --run "$run"
  load portcullis-refresh --url "$full_server" --clients "$chain_clients" --api-key "$full_key" \
    --pair refresh-sqlite-full-http --side portcullis --run "$run"
  "$bin/portcullis-bench" raw-rotation sqlite --seconds "$load_seconds" --samples "$samples" --prefill "$prefill" \
    --synchronous full --pair refresh-sqlite-full-http --run "$run"
  for entry in "${scale_sizes[@]}"; do
    size=${entry%%:*}
    # This run's figures on the store without the prefill are the baselines of the scale pairs.
    for kind in login:login-http refresh:refresh-sqlite-http; do
      pair=${kind#*:} scaled="${kind%%:*}-scale-$size"
      grep "\"pair\":\"$pair\",\"side\":\"portcullis\",\"run\":$run," "$samples" |
        sed "s/\"$pair\",\"side\":\"portcullis\"/\"$scaled\",\"side\":\"baseline\"/" >>"$samples"
    done
    load portcullis-login --url "${scale_url[$size]}" --clients "$login_clients" --client-id "${scale_org[$size]}" \
      --client-secret "${scale_secret[$size]}" --pair "login-scale-$size" --side portcullis --run "$run"
    load portcullis-refresh --url "${scale_url[$size]}" --clients "$chain_clients" --api-key "${scale_key[$size]}" \
      --pair "refresh-scale-$size" --side portcullis --run "$run"
  done
  load portcullis-refresh --url "$pg_server" --clients "$chain_clients" --api-key "$pg_key" \
    --pair refresh-postgres-http --side portcullis --run "$run"
  "$bin/portcullis-bench" raw-rotation postgres --seconds "$load_seconds" --samples "$samples" --prefill "$prefill" \
    --pair refresh-postgres-http --run "$run"
  load app-refresh --url "$demo" --clients "$chain_clients" --pair supertokens-node-refresh --side portcullis --run "$run"
  load app-refresh --url "$stnode" --sign-in-path /login --clients "$chain_clients" \
    --pair supertokens-node-refresh --side baseline --run "$run"
  wrk_sample supertokens-core-verify portcullis "$run" '"userId"' "$stnode/me-db" -H "authorization: Bearer $st_token"
  wrk_sample supertokens-core-verify baseline "$run" '"userId"' "$stnode/me" -H "authorization: Bearer $st_token"
done

# Only the servers under test are left running while the in-process pairs measure: stop them all.
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

echo "in-process pairs"
"$bin/portcullis-bench" --pairs verify refresh-sqlite refresh-postgres connectors login \
  --seconds "$inproc_seconds" --runs "$runs" --prefill "$prefill" --samples "$samples" >"$work/inprocess.out"
sed 's/^/  /' "$work/inprocess.out" | grep -v '^  |' | grep -v '^  $' || true

# Start-up from spawn to the first good answer: a first start on fresh data, then a restart on the data
# it created (the usual case), with the resident set one second after the restart.
echo "start-up and idle memory"
ours=(env PORTCULLIS_DATA_DIR="$work/startup-data" PORTCULLIS_SERVER__LISTEN=127.0.0.1:0 PORTCULLIS_LOG__LEVEL=warn
  "$bin/portcullis" serve)
theirs=(env DB_FILE="$work/startup.db" node bench/peers/better-auth.mjs)
for run in $(seq "$startup_runs"); do
  rm -rf "$work/startup-data" "$work/startup.db"*
  for side in portcullis baseline; do
    if [ "$side" = portcullis ]; then cmd=("${ours[@]}") path=/health; else cmd=("${theirs[@]}") path=/api/auth/ok; fi
    "$bin/portcullis-bench" startup --pair first-start --side "$side" --run "$run" --path "$path" \
      --samples "$samples" -- "${cmd[@]}"
    "$bin/portcullis-bench" startup --pair startup --rss-pair idle-rss --side "$side" --run "$run" --path "$path" \
      --samples "$samples" -- "${cmd[@]}"
  done
done

# The console's pages over a store of the issue's size (10,000 users, 100,000 audit rows); the quick mode
# only checks that every page answers. Printed, not charted: docs/benchmarks.md quotes the full run.
echo "console pages"
if [ "$mode" = full ]; then console_size=(--users 10000 --audit-rows 100000 --fetches 200); else console_size=(--users 100 --audit-rows 1000 --fetches 3); fi
"$bin/portcullis-bench" console-pages --portcullis "$bin/portcullis" "${console_size[@]}" >"$work/console.out"
sed 's/^/  /' "$work/console.out"

# --- report ---------------------------------------------------------------------------------------------
machine="$(nproc)-core $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr), $(rustc --version | cut -d' ' -f1-2), Node $(node --version), wrk $(wrk -v 2>&1 | sed -n 's/^wrk [^0-9]*\([0-9.]*\).*/\1/p' | head -n 1), $(date -u +%Y-%m-%d)"
method="Median of $runs interleaved runs per side; ratio = median of the per-run ratios. wrk -t1 -c32 -d${http_seconds}s; flows ${load_seconds}s per run ($login_clients clients for logins, $chain_clients for token chains); in-process ${inproc_seconds}s per run; start-up and memory over $startup_runs starts. Built with the $profile profile. Load average before the run: $load_before."
if [ "$mode" = full ]; then
  mkdir -p bench/results docs/img
  "$bin/portcullis-bench" report --samples "$samples" --json bench/results/latest.json --doc docs/benchmarks.md \
    --readme README.md --img docs/img --img-link img --machine "$machine" --method "$method" --mode full
  cp "$samples" bench/results/latest-samples.jsonl
else
  "$bin/portcullis-bench" report --samples "$samples" --json "$work/quick.json" --machine "$machine" \
    --method "$method" --mode quick >/dev/null
  echo "bench --quick: every pair ran and produced sane figures (too short to quote)"
fi
echo "bench ($mode) took $(( $(date +%s) - began )) s"
