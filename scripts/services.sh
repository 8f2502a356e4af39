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
  # The servers the bridge crates test against (bubus-redis, bubus-nats, bubus-postgres); each
  # start command is the one the machine itself uses, run only when the port is closed.
  ensure_service PostgreSQL 5432 sh -c 'pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start'
  ensure_service Redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  ensure_service NATS 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
}
