# Shared by scripts/bench.sh and bench/scale.sh (sourced): `start NAME COMMAND…` runs a server in the
# background and sets `url` to the URL it announces on stdout (it binds port 0). The caller defines `work`
# (a directory for the server's output) and `pids` (the servers its trap stops). Not called in a command
# substitution, so the server's pid reaches `pids`.
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
