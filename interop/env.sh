#!/usr/bin/env bash
# The real peers the interop, bridge and semaphore tests run against, installed on first use from
# the package registries and reused after. Safe to call from many test processes at once (flock).
#
#   interop/env.sh python-abxbus   prints a python with abxbus[bridges] (interop/requirements-abxbus.txt)
#   interop/env.sh python-bubus    prints a python with bubus 1.5.6 (interop/requirements.txt)
#   interop/env.sh node-abxbus     prints a folder whose node_modules has TypeScript abxbus (interop/node)
#   interop/env.sh all             installs all three, prints nothing
#
# PYTHON picks the interpreter the virtual environments are made from (default python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}

# One installer at a time; the others wait, then find the work done.
exec 9>"$here/.env.lock"
flock 9

# venv_for DIR REQUIREMENTS: a virtual environment at DIR with exactly REQUIREMENTS installed.
venv_for() {
  local dir=$1 req=$2 stamp
  stamp="$dir/.installed"
  if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
    echo "$dir/bin/python"
    return
  fi
  echo "interop/env.sh: installing $(tr '\n' ' ' <"$req")into $dir" >&2
  rm -rf "$dir"
  "$python" -m venv "$dir" >&2
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
  cp "$req" "$stamp"
  echo "$dir/bin/python"
}

node_abxbus() {
  local dir="$here/node"
  if ! command -v npm >/dev/null 2>&1; then
    echo "interop/env.sh: npm not found; TypeScript abxbus needs Node.js 20+ and npm" >&2
    return 1
  fi
  if [ ! -f "$dir/node_modules/abxbus/package.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "interop/env.sh: installing TypeScript abxbus into $dir/node_modules" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
  echo "$dir"
}

case "${1:-}" in
  python-abxbus) venv_for "$here/.venv-abxbus" "$here/requirements-abxbus.txt" ;;
  python-bubus) venv_for "$here/.venv" "$here/requirements.txt" ;;
  node-abxbus) node_abxbus ;;
  all)
    venv_for "$here/.venv-abxbus" "$here/requirements-abxbus.txt" >/dev/null
    venv_for "$here/.venv" "$here/requirements.txt" >/dev/null
    node_abxbus >/dev/null
    ;;
  *)
    echo "usage: interop/env.sh python-abxbus|python-bubus|node-abxbus|all" >&2
    exit 2
    ;;
esac
