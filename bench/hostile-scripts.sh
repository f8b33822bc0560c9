#!/usr/bin/env bash
# /health latency while 16 API-key callers run an infinite loop in a connector hook, for one `portcullis`
# binary: p50/p90 in ms, idle and loaded. Run it for two builds one after the other to compare them:
#   bench/hostile-scripts.sh <old build>/portcullis before 7431; bench/hostile-scripts.sh target/release/portcullis after 7432
set -u
bin=$1; label=$2; port=$3
data=$(mktemp -d)
defs=$(mktemp -d)
cat >"$defs/loop.yaml" <<'YAML'
name: loop
base_url: http://127.0.0.2:9
auth: { type: api_key, header: Authorization, prefix: "Bearer " }
methods:
  forever:
    path: /data
    script: |
      function before_action() { while (true) {} }
YAML
export PORTCULLIS_DATA_DIR=$data PORTCULLIS_SERVER__LISTEN=127.0.0.1:$port PORTCULLIS_CONNECTORS__DIR=$defs \
  PORTCULLIS_CONNECTORS__SCRIPT_TIMEOUT_SECS=30 PORTCULLIS_LOG__LEVEL=error \
  PORTCULLIS_LOGIN__API_REQUESTS_PER_IP_PER_MINUTE=0 PORTCULLIS_LOGIN__PAGE_REQUESTS_PER_IP_PER_MINUTE=0
org=$("$bin" org create hm --json | sed -n 's/.*"id": "\([^"]*\)".*/\1/p')
key=$("$bin" org api-key create "$org" --json | sed -n 's/.*"key": "\([^"]*\)".*/\1/p')
"$bin" serve >/dev/null 2>&1 & pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
token=$(cat "$data/admin.token")
curl -s -o /dev/null -X POST "http://127.0.0.1:$port/admin/v1/organizations/$org/connector-accounts" \
  -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"id":"a1","connector":"loop","authValue":"k"}'
stats() { sort -n | awk '{a[NR]=$1} END {printf "p50 %.2f ms, p90 %.2f ms (n=%d)\n", a[int(NR*0.5)]*1000, a[int(NR*0.9)]*1000, NR}'; }
idle=$(for _ in $(seq 200); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/health"; done | stats)
for _ in $(seq 16); do
  curl -s -o /dev/null -m 25 -X POST "http://127.0.0.1:$port/api/v1/connectors/loop/accounts/a1/calls" \
    -H "Authorization: Bearer $key" -H 'content-type: application/json' -d '{"method":"forever"}' &
done
sleep 2
loaded=$(for _ in $(seq 200); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/health"; done | stats)
echo "$label idle: $idle"
echo "$label 16 spinning callers: $loaded"
kill $pid; wait 2>/dev/null; rm -rf "$data" "$defs"
