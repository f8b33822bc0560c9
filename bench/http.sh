#!/usr/bin/env bash
# Protected requests per second over HTTP through the demo app (the SDK verifying a Bearer access token
# locally), beside the demo app's unprotected page as the HTTP baseline of the same server.
# wrk (Debian) drives loopback with -t1 -c32; results are the median of the runs.
#   bench/http.sh [seconds per run] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
runs=${2:-3}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p portcullis -p demo-app

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

export PORTCULLIS_DATA_DIR="$work/data" PORTCULLIS_SERVER__LISTEN=127.0.0.1:0 RUST_LOG=warn
./target/release/portcullis serve >"$work/server.out" 2>"$work/server.err" &
pids+=($!)
until grep -q 'http://' "$work/server.out" 2>/dev/null; do sleep 0.05; done
server=$(grep -o 'http://[0-9.:]*' "$work/server.out" | head -n 1)
org=$(./target/release/portcullis org create bench --json | sed -n 's/.*"id": "\([^"]*\)".*/\1/p')
key=$(./target/release/portcullis org api-key create "$org" --json | sed -n 's/.*"key": "\([^"]*\)".*/\1/p')
PORTCULLIS_URL="$server" DEMO_API_KEY="$key" DEMO_LISTEN=127.0.0.1:0 DEMO_DEV_MODE=1 \
  ./target/release/demo-app >"$work/demo.out" 2>"$work/demo.err" &
pids+=($!)
until grep -q 'http://' "$work/demo.out" 2>/dev/null; do sleep 0.05; done
demo=$(grep -o 'http://[0-9.:]*' "$work/demo.out" | head -n 1)
token=$(curl -s -D - -o /dev/null -X POST "$demo/dev/sign-in" -H 'content-type: application/json' \
  -H 'st-auth-mode: header' -d '{"userId":"bench-user"}' | sed -n 's/^st-access-token: \([^\r]*\).*/\1/p')
[ -n "$token" ] || { echo "sign-in failed" >&2; exit 1; }
curl -sf "$demo/api/me" -H "authorization: Bearer $token" >/dev/null

cat >"$work/count.lua" <<'LUA'
-- Counts non-200 answers so a broken run cannot pass for a fast one.
local bad = 0
response = function(status) if status ~= 200 then bad = bad + 1 end end
done = function() if bad > 0 then io.stderr:write("non-200 answers: " .. bad .. "\n"); os.exit(1) end end
LUA

measure() {
  wrk -t1 -c32 -d"${seconds}s" -s "$work/count.lua" "$@" | awk '/Requests\/sec/ {print $2}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

protected=(); page=()
for _ in $(seq "$runs"); do
  protected+=("$(measure -H "authorization: Bearer $token" "$demo/api/me")")
  page+=("$(measure "$demo/")")
done
p=$(printf '%s\n' "${protected[@]}" | median)
b=$(printf '%s\n' "${page[@]}" | median)
echo "| pair | Portcullis | req/s | baseline | req/s | ratio |"
echo "| --- | --- | --- | --- | --- | --- |"
printf '| protected request over HTTP (wrk -t1 -c32, %ss x %s) | GET /api/me through the SDK (EdDSA verify) | %.0f | GET / on the same app | %.0f | %.2f |\n' \
  "$seconds" "$runs" "$p" "$b" "$(echo "$p / $b" | bc -l)"
