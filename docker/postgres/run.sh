#!/usr/bin/env bash
# Entry point of the local PostgreSQL image: on an empty PGDATA, initdb with the superuser
# POSTGRES_USER (password POSTGRES_PASSWORD) and create POSTGRES_DB; then the server in
# the foreground (exec: SIGTERM from `docker stop` is a smart shutdown).
set -euo pipefail

user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
: "${PGDATA:=/var/lib/postgresql/data}"

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [[ $db != postgres ]]; then
    pg_ctl --pgdata="$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    createdb --username="$user" --owner="$user" "$db"
    pg_ctl --pgdata="$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "postgres-run: initialized $PGDATA (user $user, database $db)"
fi

exec postgres -D "$PGDATA" -c listen_addresses='*'
