#!/usr/bin/env bash
# Two builds of `portcullis` side by side under the same refresh load (16 clients, SQLite, interleaved
# runs), with their idle and loaded RSS, and the raw rotation transaction of the same run: how a change to
# the server moves the refresh pair, measured A/B rather than across runs.
#   bench/ab-refresh.sh BINARY_A BINARY_B [seconds per run] [runs]
# SYNCHRONOUS=full runs both servers and the raw transaction with SQLite's `synchronous = FULL`.
# Build the load driver first: cargo build --release -p portcullis-bench
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/ab-refresh.sh BINARY_A BINARY_B [seconds] [runs]" >&2; exit 2; }
seconds=${3:-5}
runs=${4:-3}
synchronous=${SYNCHRONOUS:-normal}
driver=./target/release/portcullis-bench
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

declare -A url key pid
start() { # side binary
  local side=$1 bin=$2
  local envs=(env PORTCULLIS_DATA_DIR="$work/$side" PORTCULLIS_SERVER__LISTEN=127.0.0.1:0 PORTCULLIS_LOG__LEVEL=warn
    PORTCULLIS_LOGIN__PAGE_REQUESTS_PER_IP_PER_MINUTE=0 PORTCULLIS_LOGIN__API_REQUESTS_PER_IP_PER_MINUTE=0
    PORTCULLIS_LOGIN__CAPTCHA_IP_ALLOWANCE=0 PORTCULLIS_STORE__SQLITE_SYNCHRONOUS="$synchronous")
  local org
  org=$("${envs[@]}" "$bin" org create bench --json | sed -n 's/.*"id": "\([^"]*\)".*/\1/p')
  key[$side]=$("${envs[@]}" "$bin" org api-key create "$org" --json | sed -n 's/.*"key": "\([^"]*\)".*/\1/p')
  "${envs[@]}" "$bin" serve >"$work/$side.out" 2>"$work/$side.err" &
  pid[$side]=$!
  pids+=($!)
  until grep -q 'http://' "$work/$side.out" 2>/dev/null; do sleep 0.05; done
  url[$side]=$(grep -o 'http://[0-9.:]*' "$work/$side.out" | head -n 1)
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

start a "$1"
start b "$2"
sleep 1
echo "idle RSS kB: a $(rss "${pid[a]}"), b $(rss "${pid[b]}")"
for run in $(seq "$runs"); do
  for side in a b; do
    "$driver" load portcullis-refresh --url "${url[$side]}" --clients 16 --api-key "${key[$side]}" \
      --pair refresh --side "$side" --run "$run" --seconds "$seconds" --samples "$work/samples.jsonl"
  done
done
echo "RSS after the load kB: a $(rss "${pid[a]}"), b $(rss "${pid[b]}")"
"$driver" raw-rotation sqlite --seconds "$seconds" --samples "$work/samples.jsonl" --prefill 20000 --pair refresh --run 1 \
  --synchronous "$synchronous"
