#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: initdb and pg_ctl in a temporary directory,
# listening on loopback only, with a password user and a database for gcupload.
#
#   eval "$(.ci/postgres.sh start)"   # prints `export GCUPLOAD_TEST_PG_URL=...` and PG_TEST_DIR
#   .ci/postgres.sh stop              # stops the cluster in $PG_TEST_DIR and removes it
#
# Needs Debian's `postgresql` package (apt-get install -y postgresql). initdb refuses to run as
# root, so as root the cluster is owned by and run as the `postgres` user.
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -n "$bindir" ] || { echo "postgres.sh: no PostgreSQL found; apt-get install -y postgresql" >&2; exit 1; }
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
  port=${PG_TEST_PORT:-55432}
  # The first free port from there (another cluster, or another checkout's, may hold one).
  while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  dir=$(mktemp -d /tmp/gcupload-pg.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  pw=test-pw-$RANDOM$RANDOM
  printf '%s\n' "$pw" >"$dir/pw" && chmod 600 "$dir/pw"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir/pw"
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --pwfile="$dir/pw" >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  # Loopback only, the socket in the temporary directory; fsync off: the data is thrown away.
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  export PGPASSWORD=$pw
  "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE gcupload LOGIN CREATEDB PASSWORD '$pw'" -c "CREATE DATABASE gcupload OWNER gcupload" >&2
  echo "export PG_TEST_DIR=$dir"
  echo "export GCUPLOAD_TEST_PG_URL=postgres://gcupload:$pw@127.0.0.1:$port/gcupload"
  ;;
stop)
  dir=${PG_TEST_DIR:?set PG_TEST_DIR (printed by start)}
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
