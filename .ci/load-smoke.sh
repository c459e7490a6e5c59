#!/usr/bin/env bash
# Smoke run of the load generator against the demo server, on SQLite and on
# PostgreSQL: a few seconds of whole sign-ins (options, hwkey's software
# authenticator through the WebAuthn client, verify) over HTTP, which must
# all succeed. Debug builds, so the figures printed here mean nothing; the
# README says how the release figures are measured. Called from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --example rp_server --example load_rp
bin="$CARGO_TARGET_DIR/debug/examples"
work="$(mktemp -d)"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# The key file that seals TOTP secrets and the session key (one for both runs).
export HWKEY_SECRET_KEY_FILE="$work/secret-key"

run() {
    local database="$1" log="$work/server.log" port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$bin/rp_server" --bind "127.0.0.1:$port" --origin "http://localhost:$port" --database "$database" >"$log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do grep -q '^listening on' "$log" && break; sleep 0.1; done
    grep -q '^listening on' "$log" || { cat "$log"; echo "the demo server did not start"; return 1; }
    "$bin/load_rp" --url "http://127.0.0.1:$port" --origin "http://localhost:$port" \
        --concurrency 8 --seconds 3 --server-pid "$server"
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
}

echo "--- SQLite"
run "sqlite://$work/load.sqlite3"
if [ -n "${HWKEY_TEST_POSTGRES_URL:-}" ]; then
    echo "--- PostgreSQL"
    # A database of its own, new each run: what earlier runs sealed under
    # other key files must not be in it.
    db="hwkey_load_smoke"
    psql "$HWKEY_TEST_POSTGRES_URL" -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    run "${HWKEY_TEST_POSTGRES_URL%/*}/$db"
    psql "$HWKEY_TEST_POSTGRES_URL" -q -c "DROP DATABASE IF EXISTS $db" || true
else
    echo "--- PostgreSQL: skipped (HWKEY_TEST_POSTGRES_URL is not set)"
fi
