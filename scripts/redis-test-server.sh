#!/usr/bin/env bash
# The Redis the tests of @pqc-mcp/redis run against: loopback only, no persistence.
#   scripts/redis-test-server.sh start   installs redis-server (Debian package) if missing, starts it, waits for PONG
#   scripts/redis-test-server.sh stop    stops it
# Port: PQC_TEST_REDIS_PORT (default 6390); the tests read PQC_TEST_REDIS_URL (default redis://127.0.0.1:6390).
set -euo pipefail
PORT="${PQC_TEST_REDIS_PORT:-6390}"
PIDFILE="${TMPDIR:-/tmp}/pqc-mcp-redis-$PORT.pid"

ping() {
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG
  else
    # No redis-cli: speak RESP over bash's /dev/tcp.
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'PING\r\n' >&3 && timeout 1 head -c 7 <&3 | grep -q PONG) 2>/dev/null
  fi
}

install() {
  command -v redis-server >/dev/null 2>&1 && return 0
  echo "redis-server not found: installing the Debian package"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
}

case "${1:-}" in
  start)
    if ping; then
      echo "redis already answering on 127.0.0.1:$PORT"
      exit 0
    fi
    install
    redis-server --port "$PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
      --pidfile "$PIDFILE" --logfile "${TMPDIR:-/tmp}/pqc-mcp-redis-$PORT.log"
    for _ in $(seq 1 50); do
      if ping; then
        echo "redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$PORT"
        exit 0
      fi
      sleep 0.1
    done
    echo "redis did not start on 127.0.0.1:$PORT; see ${TMPDIR:-/tmp}/pqc-mcp-redis-$PORT.log" >&2
    exit 1
    ;;
  stop)
    if command -v redis-cli >/dev/null 2>&1 && ping; then
      redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
    elif [ -f "$PIDFILE" ]; then
      kill "$(cat "$PIDFILE")" 2>/dev/null || true
    fi
    for _ in $(seq 1 50); do
      ping || { rm -f "$PIDFILE"; echo "redis on 127.0.0.1:$PORT stopped"; exit 0; }
      sleep 0.1
    done
    echo "redis on 127.0.0.1:$PORT did not stop" >&2
    exit 1
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
