#!/usr/bin/env bash
# Interop with Python bubus 1.5.6: Python writes events (JSON and a WAL) that Rust must read
# with every field intact, Rust writes events that Python must validate with every field intact,
# and Python's copies of those come back to Rust. See interop/README.md.
#
# Usage: interop/run.sh [--update-goldens]
#   --update-goldens  also copy this run's files to crates/bubus/tests/golden/wire/python156/
#
# Needs python3 (with venv). The venv is made once in interop/.venv (PYTHON=... picks the
# interpreter); later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

update_goldens=false
for arg in "$@"; do
  case "$arg" in
    --update-goldens) update_goldens=true ;;
    *) echo "usage: interop/run.sh [--update-goldens]" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "interop: $python not found; the Python interop suite needs Python 3.11+ with venv" >&2
  exit 1
fi

venv=interop/.venv
want=$(sed -n 's/^bubus==//p' interop/requirements.txt)
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('bubus') != '$want')" 2>/dev/null; then
  echo "interop: creating $venv with bubus $want"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r interop/requirements.txt
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bubus-interop.XXXXXX")
trap 'rm -rf "$work"' EXIT
export BUBUS_INTEROP_DIR=$work
py() { (cd interop/python && "$root/$venv/bin/python" "$@"); }
rust() { cargo test --quiet -p bubus --test interop_python -- --exact "$1"; }

# The test binary first, so the stages below only run it.
cargo test --quiet -p bubus --test interop_python --no-run

echo "interop: 1. Python 1.5.6 writes events and a WAL"
py make_events.py "$work"
echo "interop: 1. Rust reads them"
rust stage1_python_events_read_intact
echo "interop: 2. Rust writes events"
rust stage2_rust_writes_events_for_python
echo "interop: 2. Python 1.5.6 validates them and writes them back"
py check_rust_events.py "$work"
echo "interop: 3. Rust reads Python's copies back"
rust stage3_python_round_trip_reads_back_intact

if $update_goldens; then
  golden=crates/bubus/tests/golden/wire/python156
  cp "$work"/py_events.json "$work"/py_wal.jsonl "$work"/rust_events.json "$work"/py_roundtrip.jsonl "$golden"/
  echo "interop: copied this run's files to $golden"
fi
echo "interop: ok"
