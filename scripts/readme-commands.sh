#!/usr/bin/env bash
# Runs the README's run command exactly as written, from the repository root with no PORTCULLIS_*
# variable set, as a newcomer on a fresh clone would: waits for the banner (the command builds first),
# asks the announced URL for /health, stops the server with SIGTERM and expects a clean exit. It also
# checks that the README's test command is the one CI runs. So the two commands cannot rot unnoticed.
set -euo pipefail
cd "$(dirname "$0")/.."

# The first two ```sh blocks under "## The two commands" are the run command and the test command.
mapfile -t commands < <(awk '
  /^## The two commands/ { inside = 1; next }
  inside && /^## / { exit }
  inside && /^```sh$/ { getline; print }
' README.md)
if [ "${#commands[@]}" -ne 2 ]; then
  echo "readme: expected two commands under '## The two commands' in README.md, found ${#commands[@]}" >&2
  exit 1
fi
run_command=${commands[0]}
test_command=${commands[1]}
if ! grep -qF "$test_command" .ci/run; then
  echo "readme: the test command '$test_command' is not what .ci/run runs" >&2
  exit 1
fi

if ss -ltnH 'sport = :7420' | grep -q .; then
  echo "readme: port 7420 is taken; stop whatever listens there (the README's server?) and run again" >&2
  exit 1
fi
# A data directory the run creates goes again; an existing one (a developer's own) is left as it was.
created_data_dir=false
[ -e portcullis-data ] || created_data_dir=true
log=$(mktemp)
cleanup() {
  if [ -n "${pgid:-}" ]; then kill -TERM -- "-$pgid" 2>/dev/null || true; fi
  rm -f "$log"
  if $created_data_dir; then rm -rf portcullis-data; fi
}
trap cleanup EXIT

echo "readme: running \`$run_command\`"
# Its own process group, so that stopping it reaches the server whether or not cargo execs it.
unset $(env | awk -F= '/^PORTCULLIS_/ { print $1 }') 2>/dev/null || true
setsid bash -c "exec $run_command" >"$log" 2>&1 &
pgid=$!

# The first run builds the release binary: give it the time a cold build takes on two cores.
url=""
for _ in $(seq 1 3600); do
  url=$(grep -o 'is serving on http://[^ ]*' "$log" | head -1 | cut -d' ' -f4 || true)
  [ -n "$url" ] && break
  if ! kill -0 "$pgid" 2>/dev/null; then
    echo "readme: \`$run_command\` exited before serving:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.5
done
if [ -z "$url" ]; then
  echo "readme: no banner after 30 minutes:" >&2
  cat "$log" >&2
  exit 1
fi
health=$(curl -sf "$url/health")
echo "readme: $url/health answered $health"
case "$health" in
  *'"status":"ok"'*) ;;
  *) echo "readme: unexpected /health answer" >&2; exit 1 ;;
esac

kill -TERM -- "-$pgid"
status=0
wait "$pgid" || status=$?
unset pgid
if [ "$status" -ne 0 ]; then
  echo "readme: the server exited with status $status after SIGTERM:" >&2
  cat "$log" >&2
  exit 1
fi
echo "readme: the run command served and stopped cleanly; its banner was:"
sed -n '/is serving on/,/Stop with Ctrl-C/p' "$log"
