#!/usr/bin/env bash
# Runs the whole Portcullis test suite on a fresh machine: formatting, lints, and every test on both
# storage backends. It installs or starts what the tests need (PostgreSQL) and fails loudly otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-postgres.sh

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
