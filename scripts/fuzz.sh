#!/usr/bin/env bash
# Builds and runs the fuzz targets of fuzz/ (cargo fuzz, libFuzzer, AddressSanitizer). libFuzzer needs
# nightly features; RUSTC_BOOTSTRAP=1 enables them on the stable toolchain.
#
#   scripts/fuzz.sh smoke              every target for a few seconds from its seed corpus (the test command)
#   scripts/fuzz.sh run SECONDS RUNS [TARGET...]
#                                      each target until RUNS executions or SECONDS, whichever first; new
#                                      inputs go to fuzz/corpus-work/<target> (not checked in)
#
# A crash stops the run and leaves the input in fuzz/artifacts/<target>/; every crash becomes a regression
# test (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build --release --debug-assertions)
bin=fuzz/target/x86_64-unknown-linux-gnu/release
mapfile -t all < <(cd fuzz && cargo fuzz list)

mode=${1:-smoke}
case "$mode" in
  smoke) seconds=5; runs=-1; targets=("${all[@]}") ;;
  run) seconds=${2:?seconds}; runs=${3:?runs}; shift 3; targets=("${@:-${all[@]}}") ;;
  *) echo "usage: scripts/fuzz.sh smoke | run SECONDS RUNS [TARGET...]" >&2; exit 2 ;;
esac
if [ "${#targets[@]}" -eq 0 ]; then targets=("${all[@]}"); fi

for target in "${targets[@]}"; do
  if [ "$mode" = smoke ]; then
    # The checked-in corpus stays as it is: new inputs go to a scratch directory.
    work=$(mktemp -d)
  else
    work=fuzz/corpus-work/$target
    mkdir -p "$work"
  fi
  mkdir -p "fuzz/artifacts/$target"
  log=$(mktemp)
  status=0
  "$bin/$target" "$work" "fuzz/corpus/$target" -max_total_time="$seconds" -runs="$runs" -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="fuzz/artifacts/$target/" -print_final_stats=1 >"$log" 2>&1 || status=$?
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz: $target: ${execs:-?} executions in at most ${seconds}s, exit $status"
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    exit "$status"
  fi
  rm -f "$log"
  if [ "$mode" = smoke ]; then rm -rf "$work"; fi
done
