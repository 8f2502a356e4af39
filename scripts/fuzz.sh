#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (or the ones named) for a few seconds each: the CI smoke run.
# A longer hunt: FUZZ_SECONDS=600 scripts/fuzz.sh wal_line_reader
#
# Targets start from the committed seeds in fuzz/seeds/<target>/ and grow a throwaway corpus, so
# the tree stays clean. A crash fails the run; libFuzzer leaves the input in
# fuzz/artifacts/<target>/ (reproduce with `cargo fuzz run <target> <file>`).
#
# cargo-fuzz drives libFuzzer with rustc flags that are nightly-only (-Zsanitizer=address);
# RUSTC_BOOTSTRAP=1, scoped to these cargo-fuzz commands, lets the stable toolchain accept them.
# The fuzz crate is its own workspace with its own target directory (fuzz/target).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi

corpus_root="$(mktemp -d)"
trap 'rm -rf "$corpus_root"' EXIT

for target in "${targets[@]}"; do
  echo "fuzz.sh: $target for ${seconds}s"
  mkdir -p "$corpus_root/$target"
  RUSTC_BOOTSTRAP=1 cargo fuzz build "$target"
  log="$corpus_root/$target.log"
  if RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus_root/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  else
    status=$?
    # The panic message (or sanitizer report), then libFuzzer's summary and reproduction hints.
    grep -E -A6 "panicked at|^==[0-9]+==ERROR" "$log" | cut -c1-4000 >&2 || true
    tail -n 20 "$log" >&2
    echo "fuzz.sh: $target failed (exit $status); the crashing input is in fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
done
