#!/usr/bin/env bash
# Cross-tool test of post-quantum credentials: ML-DSA keys and signatures made
# by pyca/cryptography (>= 47, the first release with ML-DSA), registration
# and sign-in built by hand in Python, verified by hwkey's relying party over
# the demo server's HTTP API. Installs what it needs (PyPI `cryptography`),
# builds the example server, runs tests/e2e/pq_pyca.py. For .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'from cryptography.hazmat.primitives.asymmetric import mldsa; mldsa.MLDSA65PrivateKey.generate()' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'cryptography>=47'
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --example rp_server
python3 tests/e2e/pq_pyca.py --server-bin "$CARGO_TARGET_DIR/debug/examples/rp_server"
