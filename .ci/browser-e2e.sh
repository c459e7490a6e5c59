#!/usr/bin/env bash
# Browser end-to-end test of the demo relying party: headless Chromium with the
# DevTools WebAuthn virtual authenticator drives the demo page by its buttons.
# Installs what it needs (Debian `chromium`, PyPI `websockets`), builds the
# example server, runs tests/e2e/browser.py. Called from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi
if ! python3 -c 'import websockets' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check websockets
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --example rp_server
shot_dir="${HWKEY_E2E_ARTIFACTS:-$CARGO_TARGET_DIR/e2e}"
mkdir -p "$shot_dir"
python3 tests/e2e/browser.py \
    --server-bin "$CARGO_TARGET_DIR/debug/examples/rp_server" \
    --screenshot "$shot_dir/demo.png"
if ! python3 -c 'import cryptography' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check cryptography
fi
python3 tests/e2e/browser_l3.py \
    --server-bin "$CARGO_TARGET_DIR/debug/examples/rp_server" \
    --screenshot "$shot_dir/demo-l3-failure.png"
