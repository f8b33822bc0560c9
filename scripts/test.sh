#!/usr/bin/env bash
# Runs the whole Portcullis test suite on a fresh machine: formatting, lints, every test on both storage
# backends, a short run of every fuzz target, the API contract test, the README's run command, the
# reliability harnesses and the browser tests. It installs or starts what the tests need (PostgreSQL,
# Debian's Chromium, npm and PyPI packages, cargo-fuzz) and fails loudly otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

# `phase NAME` starts a phase; on exit, even a failing one, every phase's duration is printed last, so the
# tail of a CI log says where the time went.
phase_name=setup phase_started=$SECONDS timings=()
phase() {
  timings+=("$(printf '%6d s  %s' $((SECONDS - phase_started)) "$phase_name")")
  phase_name=$1 phase_started=$SECONDS
  echo "== $1"
}
trap 'status=$?; phase end; printf "%s\n" "== seconds per phase (exit $status)" "${timings[@]}"' EXIT

bash scripts/ensure-postgres.sh
# A real SMTP server for the mail delivery test.
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check aiosmtpd==1.4.6

phase "cargo fmt"
cargo fmt --all -- --check
phase "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "cargo test"
cargo test --workspace --locked

# Every fuzz target for a few seconds from its checked-in corpus (AddressSanitizer build; docs/fuzzing.md).
phase "fuzz smoke"
bash scripts/fuzz.sh smoke

# The API contract: schemathesis drives every operation of /openapi.json against a running server.
phase "API contract (schemathesis)"
bash scripts/contract-test.sh

# The README's run command, literally (release build, start, /health, stop), so it cannot rot.
phase "README commands"
bash scripts/readme-commands.sh

# Crash safety: SIGKILL under load, 20 kills per backend, every client's promise checked (docs/reliability.md).
phase "crash safety (SIGKILL under load)"
cargo build --release --locked -p portcullis -p portcullis-reliability
target/release/portcullis-reliability crash --kills 20 --portcullis target/release/portcullis
# Three instances on one PostgreSQL, ending with a PostgreSQL restart under load (docs/reliability.md).
phase "several instances"
target/release/portcullis-reliability instances --portcullis target/release/portcullis
# Soak, quick mode: two minutes of mixed traffic on SQLite with the rate limits on (the 30-minute run and
# its chart: docs/reliability.md).
phase "soak (quick)"
target/release/portcullis-reliability soak --minutes 2 --warm-up-minutes 1 --portcullis target/release/portcullis

# Browser tests: the real supertokens-web-js in Debian's Chromium against the demo app and the server.
phase "browser tests (e2e/)"
bash e2e/setup.sh
cargo build --locked -p portcullis -p demo-app
(cd e2e && npm test)
phase "benchmarks (quick)"
bash scripts/bench.sh --quick
