#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests of the PostgreSQL event store.
#
#   scripts/postgres.sh start DIR   # initdb in DIR (first time), start it, print its URL
#   scripts/postgres.sh stop DIR    # stop it (DIR stays; `start` brings it back
#                                   # on the same port; remove DIR yourself)
#
# The cluster listens on a Unix socket in DIR and on 127.0.0.1 at a free port,
# trusts local connections (it holds nothing but test data), and has a
# database `flags`. `start` prints `postgres://postgres@127.0.0.1:PORT/flags`;
# the tests read it from FLAGS_TEST_DATABASE_URL. PostgreSQL refuses to run as
# root, so as root the cluster runs as the `postgres` user that Debian's
# package creates. Binaries come from PATH or Debian's /usr/lib/postgresql/*/bin.
set -euo pipefail

command=${1:?usage: scripts/postgres.sh start|stop DIR}
dir=${2:?usage: scripts/postgres.sh start|stop DIR}

bin=$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)")")
if [ ! -x "$bin/pg_ctl" ]; then
  echo "postgres.sh: pg_ctl not found: install PostgreSQL (Debian: apt-get install postgresql)" >&2
  exit 1
fi

# Runs a PostgreSQL program as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$command" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    fresh=
    if [ ! -d "$dir/data" ]; then
      fresh=1
      as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
      python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' >"$dir/port"
    fi
    port=$(cat "$dir/port")
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-k $dir -h 127.0.0.1 -p $port -c max_connections=300 -c fsync=on" start >/dev/null ||
      { cat "$dir/server.log" >&2; exit 1; }
    if [ -n "$fresh" ]; then
      as_owner "$bin/createdb" -h "$dir" -p "$port" -U postgres flags
    fi
    echo "postgres://postgres@127.0.0.1:$port/flags"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  *)
    echo "postgres.sh: unknown command $command (start or stop)" >&2
    exit 2
    ;;
esac
