#!/usr/bin/env bash
# Runs the whole test suite: every crate's unit, integration and doc tests, the compile-fail
# fixtures and the examples. Starts whatever local service a test needs if it is not running.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/services.sh
source scripts/services.sh
ensure_services

# The real Python and TypeScript peers (abxbus 2.5, bubus 1.5.6) that interop, bridge and
# semaphore tests run against: installed once here so the test processes find them ready.
if command -v "${PYTHON:-python3}" >/dev/null 2>&1; then
  interop/env.sh all
fi

# The monitor's browser tests (crates/bubus-monitor/tests/browser.rs) drive Debian's headless
# Chromium through chromedriver: installed here when missing. Without them those tests skip with
# a warning, except on CI (`CI=true`), where they fail.
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "test.sh: WARNING: chromium/chromedriver missing and cannot be installed here; the monitor's browser tests will skip" >&2
  fi
fi

cargo test --workspace --all-targets "$@"
cargo test --workspace --doc "$@"

# Interop with Python bubus 1.5.6 (interop/run.sh): needs python3. A machine without it skips
# the suite with a warning; CI (`CI=true`, set by .ci/run) fails instead of skipping silently.
if command -v "${PYTHON:-python3}" >/dev/null 2>&1; then
  interop/run.sh
elif [ "${CI:-}" = "true" ]; then
  echo "test.sh: python3 is required for the Python interop suite (interop/run.sh)" >&2
  exit 1
else
  echo "test.sh: WARNING: python3 not found; skipping the Python interop suite (interop/run.sh)" >&2
fi
