# shellcheck shell=bash
# A private, throwaway PostgreSQL cluster for tests and local runs, for machines where no
# server is given through DATABASE_URL. Sourced by scripts/test and scripts/dev.
#
# initdb refuses to run as root, so as root the cluster is made and run by the `postgres`
# user (the Debian packages create it).

pg_bindir() {
  local initdb
  initdb=$(command -v initdb 2>/dev/null || true)
  if [ -z "$initdb" ]; then
    initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  if [ -z "$initdb" ]; then
    echo "PostgreSQL's server binaries (initdb) are missing: apt-get install postgresql, or set DATABASE_URL" >&2
    return 1
  fi
  dirname "$(readlink -f "$initdb")"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs a command as the cluster's owner: ourselves, or `postgres` when we are root.
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# pg_start_private DIR: makes (unless it exists) and starts a cluster in DIR on a free port,
# and exports DATABASE_URL for it. Sets PG_PRIVATE_DIR for pg_stop_private. Tests trade
# durability for speed (no fsync); with PG_DURABLE=1 the cluster flushes every commit to
# disk as a production server does (the benchmark measures that). PG_SETTINGS adds server
# settings (`-c name=value ...`), to profile with pg_stat_statements, say.
pg_start_private() {
  local dir=$1 bindir port durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${PG_DURABLE:-}" != 1 ] || durability=""
  bindir=$(pg_bindir) || return 1
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    # The postgres user must reach the folder; a clone under /root, say, is closed to it.
    if ! runuser -u postgres -- test -x "$dir" 2>/dev/null || ! runuser -u postgres -- test -x "$(dirname "$dir")"; then
      dir=$(mktemp -d /tmp/wxauth-pg.XXXXXX)
    fi
    chown postgres: "$dir"
  fi
  dir=$(readlink -f "$dir")
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    pg_as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      return 1
    }
  fi
  port=$(free_port)
  pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $durability -c max_connections=300 ${PG_SETTINGS:-}" \
    start >/dev/null || {
    cat "$dir/postgres.log" >&2
    return 1
  }
  PG_PRIVATE_DIR=$dir
  PG_PRIVATE_BINDIR=$bindir
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "private PostgreSQL cluster in $dir on 127.0.0.1:$port" >&2
}

# pg_stop_private [remove]: stops the cluster pg_start_private started; removes it with "remove".
pg_stop_private() {
  [ -n "${PG_PRIVATE_DIR:-}" ] || return 0
  pg_as_owner "$PG_PRIVATE_BINDIR/pg_ctl" -D "$PG_PRIVATE_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  if [ "${1:-}" = remove ]; then
    rm -rf "$PG_PRIVATE_DIR"
  fi
  PG_PRIVATE_DIR=
}

# pooler_start DIR: starts PgBouncer (Debian's pgbouncer) in transaction mode in DIR, in front
# of the server of DATABASE_URL, every database of it, on a free port; sets POOLER_ADDR
# (127.0.0.1:PORT) and POOLER_PID_FILE for pooler_stop.
pooler_start() {
  local dir=$1
  [ -x /usr/sbin/pgbouncer ] || { echo "pgbouncer is missing: apt-get install pgbouncer" >&2; return 1; }
  local rest=${DATABASE_URL#*://}
  local user=${rest%%@*}
  local hostport=${rest#*@}
  hostport=${hostport%%/*}
  local host=${hostport%:*} port=${hostport##*:}
  [ "$host" != "$hostport" ] || port=5432
  local listen
  listen=$(free_port)
  mkdir -p "$dir"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$port user=$user
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 20
max_client_conn = 2000
ignore_startup_parameters = extra_float_digits
server_reset_query =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  [ "$(id -u)" != 0 ] || chown -R postgres: "$dir"
  pg_as_owner /usr/sbin/pgbouncer -d "$dir/pgbouncer.ini"
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$listen") 2>/dev/null && break
    sleep 0.1
  done
  POOLER_ADDR="127.0.0.1:$listen"
  POOLER_PID_FILE="$dir/pgbouncer.pid"
  echo "PgBouncer (transaction mode) in $dir on $POOLER_ADDR" >&2
}

# pooler_stop: stops the PgBouncer pooler_start started.
pooler_stop() {
  [ -n "${POOLER_PID_FILE:-}" ] && [ -f "$POOLER_PID_FILE" ] || return 0
  kill "$(cat "$POOLER_PID_FILE")" 2>/dev/null || true
  POOLER_PID_FILE=
}
