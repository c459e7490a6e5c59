#!/usr/bin/env bash
# PostgreSQL tests of the relying-party server: two instances on one database
# (single-use challenges, 200 concurrent sign-ins, restart). Each test creates
# and drops its own database on the server named by HWKEY_TEST_POSTGRES_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
export HWKEY_TEST_POSTGRES_URL="${HWKEY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo test --features postgres --test postgres -- --nocapture
