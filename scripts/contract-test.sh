#!/usr/bin/env bash
# The API contract test: schemathesis (pinned, from PyPI, in a venv under target/) generates requests from
# the server's own OpenAPI description (/openapi.json) and checks every answer against it: no 5xx, only
# documented statuses and content types, bodies that match their schemas. The server runs on a fresh
# SQLite data directory; scripts/contract/setup.py makes an organization, an API key, a client secret, a
# session, a connector account (its API is scripts/contract/upstream.py) and two real logins.
# Usage: bash scripts/contract-test.sh [more `st run` options, e.g. --max-examples 20]
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
venv=target/contract-venv
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build --locked --quiet -p portcullis

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 scripts/contract/upstream.py >"$work/upstream.port" &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$work/upstream.port" ] && break; sleep 0.1; done
upstream="http://127.0.0.1:$(cat "$work/upstream.port")"
mkdir "$work/connectors"
printf 'name: upstream\nbase_url: %s\nauth:\n  type: api_key\ntest_auth_method: list\nmethods:\n  list:\n    path: /data\n' \
  "$upstream" >"$work/connectors/upstream.yaml"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
PORTCULLIS_ADMIN__TOKEN="$admin_token" \
  PORTCULLIS_LOG__FORMAT=json \
  PORTCULLIS_LOGIN__DEV_OUTBOX=true \
  PORTCULLIS_LOGIN__API_REQUESTS_PER_IP_PER_MINUTE=1000000 \
  PORTCULLIS_LOGIN__PAGE_REQUESTS_PER_IP_PER_MINUTE=1000000 \
  PORTCULLIS_CONNECTORS__DIR="$work/connectors" \
  PORTCULLIS_CONNECTORS__EGRESS_ALLOW='["127.0.0.1"]' \
  target/debug/portcullis --data-dir "$work/store" serve --port "$port" >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS "$base/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$base/health" >/dev/null || { cat "$work/server.log"; exit 1; }

eval "$(python3 scripts/contract/setup.py "$base" "$admin_token")"
export CONTRACT_ADMIN_TOKEN="$admin_token"
export SCHEMATHESIS_HOOKS=scripts/contract/hooks.py
status=0
"$venv/bin/st" --config-file scripts/contract/schemathesis.toml run "$base/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --seed 1 --no-color "$@" || status=$?
if grep -q '"level":"ERROR"\|panicked' "$work/server.log"; then
  echo "contract-test: the server logged errors:" >&2
  grep '"level":"ERROR"\|panicked' "$work/server.log" | head -20 >&2
  status=1
fi
for secret in "$admin_token" "$CONTRACT_API_KEY" "$CONTRACT_CLIENT_SECRET" "$CONTRACT_USERINFO_TOKEN"; do
  if grep -qF -- "$secret" "$work/server.log"; then
    echo "contract-test: a secret appears in the server's log" >&2
    status=1
  fi
done
exit "$status"
