#!/usr/bin/env bash
# Statements per sign-in on PostgreSQL, counted by PostgreSQL itself
# (pg_stat_statements), for issue #11. Runs a throw-away cluster of its own
# on a free port (initdb/pg_ctl from Debian's postgresql package; as the
# postgres user when run as root) with pg_stat_statements preloaded, the
# release demo server on it, and the load generator for a few seconds;
# then prints every statement with its calls per sign-in, and the total.
#   bash .ci/pg-roundtrips.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
seconds="${1:-5}"
concurrency="${2:-32}"
pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
work="$(mktemp -d)"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres: "$work"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    as_pg "$pgbin/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
as_pg "$pgbin/initdb" -D "$work/data" -A trust -U postgres >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w start \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $work -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" >/dev/null
psql() { command psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql -qc "CREATE EXTENSION pg_stat_statements"
cargo build --quiet --release --example rp_server --example load_rp
bin="$CARGO_TARGET_DIR/release/examples"
hport="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$bin/rp_server" --bind "127.0.0.1:$hport" --origin "http://localhost:$hport" \
    --database "postgres://postgres@127.0.0.1:$port/postgres" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do grep -q '^listening on' "$work/server.log" && break; sleep 0.1; done
# Registrations and warm-up first, then count only the measured sign-ins.
"$bin/load_rp" --url "http://127.0.0.1:$hport" --origin "http://localhost:$hport" \
    --concurrency "$concurrency" --seconds 1 --warmup 0.5 >/dev/null
psql -qc "SELECT pg_stat_statements_reset()" >/dev/null
out="$("$bin/load_rp" --url "http://127.0.0.1:$hport" --origin "http://localhost:$hport" \
    --concurrency "$concurrency" --seconds "$seconds" --warmup 0)"
echo "$out"
# load_rp registers its virtual users again (new names) before it measures:
# those statements are counted too and shown separately by kind.
n="$(echo "$out" | sed -n 's/.*sign-ins \([0-9]*\) .*/\1/p')"
echo "--- statements per measured sign-in (pg_stat_statements; $n sign-ins)"
psql -F $'\t' -Atc "SELECT round(calls::numeric / $n, 3), left(regexp_replace(query, '\s+', ' ', 'g'), 140)
                    FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat_statements%'
                    ORDER BY calls DESC LIMIT 20"
psql -Atc "SELECT 'total statements per sign-in: ' || round(sum(calls)::numeric / $n, 2)
           FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat_statements%'"
