#!/usr/bin/env bash
# python-fido2 (2.2 or later, from PyPI) drives the software authenticator
# over UDP: CTAP 2.2 getInfo, PRF at creation (hmac-secret-mc) equal to PRF
# at sign-in, thirdPartyPayment, a pcmr token that lists but cannot delete,
# fingerprint enrollment with FPBioEnrollment and a UV token from it (and the
# ML-DSA-65 check once the authenticator offers it). Runs
# tests/e2e/fido2_udp.py; called from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import fido2, sys; from importlib.metadata import version; v = tuple(int(x) for x in version("fido2").split(".")[:2]); sys.exit(v < (2, 2))' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'fido2>=2.2'
fi
if ! python3 -c 'import cryptography' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check cryptography
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --bin hwkey
python3 tests/e2e/fido2_udp.py --hwkey "$CARGO_TARGET_DIR/debug/hwkey"
