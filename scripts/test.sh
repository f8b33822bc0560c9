#!/usr/bin/env bash
# Runs the whole Portcullis test suite on a fresh machine: formatting, lints, every test on both storage
# backends, a short run of every fuzz target, the API contract test, the README's run command, the
# reliability harnesses and the browser tests. It installs or starts what the tests need (PostgreSQL,
# Debian's Chromium, npm and PyPI packages, cargo-fuzz) and fails loudly otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-postgres.sh
# A real SMTP server for the mail delivery test.
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check aiosmtpd==1.4.6

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked

# Every fuzz target for a few seconds from its checked-in corpus (AddressSanitizer build; docs/fuzzing.md).
echo "== fuzz smoke"
bash scripts/fuzz.sh smoke

# The API contract: schemathesis drives every operation of /openapi.json against a running server.
echo "== API contract (schemathesis)"
bash scripts/contract-test.sh

# The README's run command, literally (release build, start, /health, stop), so it cannot rot.
echo "== README commands"
bash scripts/readme-commands.sh

# Crash safety: SIGKILL under load, 20 kills per backend, every client's promise checked (docs/reliability.md).
echo "== crash safety (SIGKILL under load)"
cargo build --release --locked -p portcullis -p portcullis-reliability
target/release/portcullis-reliability crash --kills 20 --portcullis target/release/portcullis
# Three instances on one PostgreSQL, ending with a PostgreSQL restart under load (docs/reliability.md).
echo "== several instances"
target/release/portcullis-reliability instances --portcullis target/release/portcullis
# Soak, quick mode: two minutes of mixed traffic on SQLite with the rate limits on (the 30-minute run and
# its chart: docs/reliability.md).
echo "== soak (quick)"
target/release/portcullis-reliability soak --minutes 2 --warm-up-minutes 1 --portcullis target/release/portcullis

# Browser tests: the real supertokens-web-js in Debian's Chromium against the demo app and the server.
echo "== browser tests (e2e/)"
bash e2e/setup.sh
cargo build --locked -p portcullis -p demo-app
(cd e2e && npm test)
bash scripts/bench.sh --quick
