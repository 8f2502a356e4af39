# Starts the local services the test suites use, when they are not already listening.
# Sourced by scripts/test.sh. Each entry: name, port, start command.

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-
}

ensure_service() {
  local name=$1 port=$2
  shift 2
  if port_open "$port"; then
    return 0
  fi
  echo "starting $name on port $port" >&2
  if ! "$@" >/dev/null 2>&1; then
    echo "warning: could not start $name; tests that need it will fail" >&2
    return 0
  fi
  for _ in $(seq 1 50); do
    port_open "$port" && return 0
    sleep 0.2
  done
  echo "warning: $name did not come up on port $port" >&2
}

ensure_services() {
  # The core crate needs no services; backend crates register theirs here.
  :
}
