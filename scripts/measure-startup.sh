#!/usr/bin/env bash
# Start-up time (exec → first healthy /health answer) and idle RSS of `portcullis serve`, five runs,
# on the embedded default in a throwaway data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p portcullis
binary="$PWD/target/release/portcullis"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
port=7499
for run in 1 2 3 4 5; do
  start=$(date +%s%N)
  PORTCULLIS_SERVER__LISTEN="127.0.0.1:$port" "$binary" serve >/dev/null 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.002; done
  end=$(date +%s%N)
  sleep 1
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  echo "run $run: startup_ms=$(( (end - start) / 1000000 )) idle_rss_kb=$rss"
  kill -TERM "$pid"
  wait "$pid"
done
