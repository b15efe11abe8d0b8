#!/bin/sh
# The official postgres image's first start, in short: a fresh PGDATA gets a cluster whose superuser
# is POSTGRES_USER (default postgres) with the password from POSTGRES_PASSWORD_FILE or
# POSTGRES_PASSWORD (scram-sha-256 over TCP, trust on the local socket), and the database
# POSTGRES_DB (default: the user's name). During that setup the server listens on its socket only,
# so a TCP readiness check (pg_isready -h 127.0.0.1) succeeds only once the real server runs.
set -eu

if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    user=${POSTGRES_USER:-postgres}
    database=${POSTGRES_DB:-$user}
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        password=$(cat "$POSTGRES_PASSWORD_FILE")
    else
        password=${POSTGRES_PASSWORD:-}
    fi
    if [ -z "$password" ]; then
        echo "error: database is uninitialized and superuser password is not specified" \
            "(POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE)" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "$password" > "$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$database" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --quiet --username "$user" --dbname postgres \
            -c "CREATE DATABASE \"$database\" OWNER \"$user\""
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
