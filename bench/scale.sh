#!/usr/bin/env bash
# Cost as the store grows (performance goal 5): refresh and complete email-code logins over HTTP against
# two `portcullis serve` (release, SQLite), one on a fresh store and one whose store already holds
# 1,000,000 sessions and 100,000 users (`portcullis-bench prefill`). The two are driven in turn, run by
# run, by the same load driver as scripts/bench.sh; the ratio large / small is the figure.
#   bench/scale.sh [RUNS] [SECONDS]    (defaults: 3 runs of 10 s)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3} seconds=${2:-10}
sessions=${SCALE_SESSIONS:-1000000} users=${SCALE_USERS:-100000}
cargo build --release --locked -q -p portcullis -p portcullis-bench
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
samples="$work/samples.jsonl"
: >"$samples"
export RUST_LOG=warn

source bench/lib.sh

echo "scale: filling the large store ($sessions sessions, $users users)"
"$bin/portcullis-bench" prefill --data-dir "$work/large" --sessions "$sessions" --users "$users"
declare -A url org secret key
for size in small large; do
  env_=(env PORTCULLIS_DATA_DIR="$work/$size" PORTCULLIS_SERVER__LISTEN=127.0.0.1:0 PORTCULLIS_LOGIN__DEV_OUTBOX=true
    PORTCULLIS_LOG__LEVEL=warn PORTCULLIS_LOGIN__PAGE_REQUESTS_PER_IP_PER_MINUTE=0
    PORTCULLIS_LOGIN__API_REQUESTS_PER_IP_PER_MINUTE=0 PORTCULLIS_LOGIN__CAPTCHA_IP_ALLOWANCE=0)
  org[$size]=$("${env_[@]}" "$bin/portcullis" org create bench --json | sed -n 's/.*"id": "\([^"]*\)".*/\1/p')
  "${env_[@]}" "$bin/portcullis" org configure "${org[$size]}" --whitelist https://app.example.com \
    --redirect-uri https://app.example.com/callback >/dev/null
  secret[$size]=$("${env_[@]}" "$bin/portcullis" org secret create "${org[$size]}" --json | sed -n 's/.*"secret": "\([^"]*\)".*/\1/p')
  key[$size]=$("${env_[@]}" "$bin/portcullis" org api-key create "${org[$size]}" --json | sed -n 's/.*"key": "\([^"]*\)".*/\1/p')
  start "$size" "${env_[@]}" "$bin/portcullis" serve
  url[$size]=$url
done

load() { "$bin/portcullis-bench" load "$@" --seconds "$seconds" --samples "$samples"; }
echo "scale: uptime before the runs: $(uptime)"
for run in $(seq "$runs"); do
  for size in small large; do
    load portcullis-refresh --url "${url[$size]}" --clients 16 --api-key "${key[$size]}" \
      --pair refresh-http-scale --side "$size" --run "$run"
    load portcullis-login --url "${url[$size]}" --clients 8 --client-id "${org[$size]}" \
      --client-secret "${secret[$size]}" --pair login-http-scale --side "$size" --run "$run"
  done
done

python3 - "$samples" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for pair in ("refresh-http-scale", "login-http-scale"):
    by = {side: sorted(r["value"] for r in rows if r["pair"] == pair and r["side"] == side) for side in ("small", "large")}
    runs = {side: [r["value"] for r in sorted((r for r in rows if r["pair"] == pair and r["side"] == side), key=lambda r: r["run"])] for side in by}
    ratios = [large / small for small, large in zip(runs["small"], runs["large"])]
    print(f"{pair}: small {statistics.median(by['small']):,.0f}/s, large {statistics.median(by['large']):,.0f}/s, "
          f"large/small {statistics.median(ratios):.2f} (runs {', '.join(f'{r:.2f}' for r in ratios)})")
PY
