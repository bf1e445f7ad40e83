#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the store tests and print its URL.
# Usage: export BIRTHDAY_TEST_POSTGRES_URL=$(bash scripts/postgres-for-tests.sh)
# Prints nothing (and exits 0) where no server can be had, so those tests skip.
set -uo pipefail
find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
BIN=$(find_bin)
if [ -z "$BIN" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || true
  BIN=$(find_bin)
fi
[ -n "$BIN" ] || exit 0
DIR=$(mktemp -d /tmp/birthday-pg.XXXXXX)
RUN=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$DIR" || exit 0
  RUN=(runuser -u postgres --)
fi
"${RUN[@]}" "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >&2 || exit 0
# Try a few ports: another server (or an earlier run) may hold one.
for PORT in ${BIRTHDAY_TEST_POSTGRES_PORT:-55432 55433 55434 55435 55436}; do
  if "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1" \
      -l "$DIR/log" -w start >&2; then
    echo "$DIR" > /tmp/birthday-pg.last
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
    exit 0
  fi
done
exit 0
