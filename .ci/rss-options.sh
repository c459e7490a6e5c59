#!/usr/bin/env bash
# Memory figure of issue #11 (for a quiet machine): the release demo server's
# RSS after 100,000 `POST /api/login/options` at concurrency 64 (each leaves
# a pending ceremony), against its idle size; must stay under 300 MB above it.
#   bash .ci/rss-options.sh [DATABASE_URL] [REQUESTS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d)"
database="${1:-sqlite://$work/rss.sqlite3}"
requests="${2:-100000}"
concurrency="${3:-64}"
cargo build --quiet --release --example rp_server --example rss_options
bin="$CARGO_TARGET_DIR/release/examples"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$bin/rp_server" --bind "127.0.0.1:$port" --origin "http://localhost:$port" --database "$database" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do grep -q '^listening on' "$work/server.log" && break; sleep 0.1; done
grep -q '^listening on' "$work/server.log" || { cat "$work/server.log"; exit 1; }
sleep 1
"$bin/rss_options" --url "http://127.0.0.1:$port" --requests "$requests" --concurrency "$concurrency" --server-pid "$server"
