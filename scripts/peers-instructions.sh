#!/usr/bin/env bash
# Instructions per message of bubus-peers cases, counted by callgrind on the current-thread
# runtime (docs/performance.md, "Against other Rust crates"). Instruction counts repeat from run to
# run where wall time does not, so they are the figures to compare before and after a change.
#
#   scripts/peers-instructions.sh                 # the workloads on every subject, and S1
#   scripts/peers-instructions.sh w1-seq/bubus w3/ractor s1/abxbus
#
# Each case runs twice under callgrind, with its messages scaled by LOW (default 1) and HIGH
# (default 3): setup, warm-up, calibration and teardown are the same in both runs, so
#   (instructions(HIGH) - instructions(LOW)) / (messages(HIGH) - messages(LOW))
# is the cost of one message, every thread included (the abxbus crate's bus threads too). The
# clock calibration quanta runs once per process (`quanta::Clock::new`, 6–14 M instructions, a
# number of rounds that varies from run to run) is taken out of each run's total, so it does not
# move the figure by ±70–175 per message.
# Builds the release binary first, unless BIN names a built one (another revision's, say).
# Prints one Markdown row per case.
set -euo pipefail
cd "$(dirname "$0")/.."

LOW="${LOW:-1}"
HIGH="${HIGH:-3}"
if [ -z "${BIN:-}" ]; then
  BIN=target/release/bubus-peers
  cargo build --release -p bubus-peers >&2
fi

# By default every workload case and S1, except tokio-events' W1 and W2: they take minutes
# natively (a temporary subscription per request, a dispatch quadratic in subscribers) and hours
# under callgrind. Name them to count them anyway.
if [ "$#" -eq 0 ]; then
  # shellcheck disable=SC2046
  set -- $("$BIN" --list | grep -E '^w' | grep -vE '^(w1-seq|w1-batch|w2)/tokio-events$') \
    s1/bubus s1/abxbus
fi

# Prints "<instructions> <units>" for one run of case $1 at scale $2.
count() {
  local err out cg
  err="$(mktemp)"
  cg="$(mktemp)"
  out="$(valgrind --tool=callgrind --callgrind-out-file="$cg" \
    "$BIN" one "$1" --runtime current --scale "$2" 2>"$err")" || {
    echo "peers-instructions: $1 at scale $2 failed:" >&2
    tail -5 "$err" >&2
    rm -f "$err" "$cg"
    return 1
  }
  local ir units calibration
  ir="$(sed -n 's/^==[0-9]*== Collected : \([0-9]*\).*/\1/p' "$err" | tail -1)"
  units="$(printf '%s\n' "$out" | grep '^{' | tail -1 | sed -n 's/.*"units":\([0-9]*\).*/\1/p')"
  # The inclusive cost of quanta's calibration (0 where the case never calibrates).
  calibration="$(callgrind_annotate --inclusive=yes --threshold=100 "$cg" 2>/dev/null |
    sed -n 's/^ *\([0-9,]*\) .*:quanta::Clock::new \[.*/\1/p' | tr -d , | head -1)"
  rm -f "$err" "$cg"
  if [ -n "$ir" ] && [ -n "$calibration" ]; then
    ir=$((ir - calibration))
  fi
  if [ -z "$ir" ] || [ -z "$units" ]; then
    echo "peers-instructions: no count for $1 at scale $2" >&2
    return 1
  fi
  echo "$ir $units"
}

echo "| case | instructions per unit | units (low, high) |"
echo "| --- | --- | --- |"
status=0
for case in "$@"; do
  if low="$(count "$case" "$LOW")" && high="$(count "$case" "$HIGH")"; then
    read -r ir_low units_low <<<"$low"
    read -r ir_high units_high <<<"$high"
    per=$(( (ir_high - ir_low) / (units_high - units_low) ))
    echo "| $case | $per | $units_low, $units_high |"
  else
    echo "| $case | failed | |"
    status=1
  fi
done
exit "$status"
