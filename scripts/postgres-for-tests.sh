#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the store tests and print its URL.
# Usage: export BIRTHDAY_TEST_POSTGRES_URL=$(bash scripts/postgres-for-tests.sh)
#        bash scripts/postgres-for-tests.sh stop    # stop it (the one /tmp/birthday-pg.last names)
# Prints nothing (and exits 0) where no server can be had, so those tests skip.
# The server's directory (a mktemp under /tmp, named in /tmp/birthday-pg.last) is removed once the
# server stops, however it is stopped (this script's `stop`, or pg_ctl stop as .ci/run does).
set -uo pipefail
find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
BIN=$(find_bin)
RUN=()
if [ "$(id -u)" = 0 ]; then RUN=(runuser -u postgres --); fi

if [ "${1:-}" = stop ]; then
  DIR=${2:-$(cat /tmp/birthday-pg.last 2>/dev/null || true)}
  [ -n "$DIR" ] && [ -n "$BIN" ] || exit 0
  "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
  rm -rf "$DIR"  # the watcher below would too, a moment later
  exit 0
fi

if [ -z "$BIN" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || true
  BIN=$(find_bin)
fi
[ -n "$BIN" ] || exit 0
DIR=$(mktemp -d /tmp/birthday-pg.XXXXXX)
STARTED=""
# Every way out but a started server removes the directory (initdb or every port failing).
trap '[ -n "$STARTED" ] || rm -rf "$DIR"' EXIT
if [ "$(id -u)" = 0 ]; then
  chown postgres "$DIR" || exit 0
fi
"${RUN[@]}" "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >&2 || exit 0
# Try a few ports: another server (or an earlier run) may hold one.
for PORT in ${BIRTHDAY_TEST_POSTGRES_PORT:-55432 55433 55434 55435 55436}; do
  if "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1" \
      -l "$DIR/log" -w start >&2; then
    STARTED=1
    PID=$(head -n 1 "$DIR/data/postmaster.pid")
    # Whoever stops the server (.ci/run runs pg_ctl stop itself) leaves the directory behind:
    # a watcher, detached from our stdout so that $(...) returns at once, removes it then.
    (
      while kill -0 "$PID" 2>/dev/null; do sleep 1; done
      rm -rf "$DIR"
      if [ "$(cat /tmp/birthday-pg.last 2>/dev/null)" = "$DIR" ]; then rm -f /tmp/birthday-pg.last; fi
    ) </dev/null >/dev/null 2>&1 &
    echo "$DIR" > /tmp/birthday-pg.last
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
    exit 0
  fi
done
exit 0
