#!/usr/bin/env python3
"""Cross-tool test: hwkey's relying party registers and signs in ML-DSA credentials made by pyca/cryptography.

The ML-DSA keys and signatures come from pyca/cryptography (>= 47, pure
ML-DSA with the empty context, as RFC 9964 section 5 requires); the
attestation object (packed self attestation, and "none"), authenticator data
and clientDataJSON are built here by hand, with a small CBOR encoder of our
own. No hwkey code is on this side: the script only talks HTTP to the demo
server (examples/rp_server.rs, CONTRACTS section 2), which it starts on a
free port with an in-memory database.

For each of ML-DSA-44, ML-DSA-65 and ML-DSA-87:
  1. a registration whose packed self-attestation signature has one bit
     changed must be refused;
  2. the same registration, untouched, must be accepted;
  3. a sign-in whose signature has one bit changed must be refused
     (bad_signature), and one signed by another ML-DSA key as well;
  4. a correct sign-in must be accepted, with the signature counter reported.
ML-DSA-65 is also registered with attestation "none". Exit status 0 only if
every step gave the expected answer.
"""

import argparse
import base64
import hashlib
import http.cookiejar
import json
import os
import secrets
import socket
import subprocess
import sys
import urllib.error
import urllib.request

from cryptography.hazmat.primitives.asymmetric import mldsa

# COSE (RFC 9964): key type AKP and the three ML-DSA algorithms.
KTY_AKP = 7
ALGS = {
    "ML-DSA-44": (-48, mldsa.MLDSA44PrivateKey, 1312, 2420),
    "ML-DSA-65": (-49, mldsa.MLDSA65PrivateKey, 1952, 3309),
    "ML-DSA-87": (-50, mldsa.MLDSA87PrivateKey, 2592, 4627),
}


# ---- a minimal deterministic CBOR encoder (RFC 8949 section 4.2.1 / CTAP2 canonical) ----

def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | ai]) + n.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR")


def cbor(v):
    if isinstance(v, bool) or v is None:
        raise TypeError("not needed here")
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, (bytes, bytearray)):
        return _head(2, len(v)) + bytes(v)
    if isinstance(v, str):
        b = v.encode()
        return _head(3, len(b)) + b
    if isinstance(v, list):
        return _head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        items = sorted(((cbor(k), cbor(x)) for k, x in v.items()), key=lambda kv: (len(kv[0]), kv[0]))
        return _head(5, len(items)) + b"".join(k + x for k, x in items)
    raise TypeError(type(v))


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def sha256(b):
    return hashlib.sha256(b).digest()


# ---- the relying party over HTTP ----

class Rp:
    def __init__(self, base, origin):
        self.base = base
        self.origin = origin
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def post(self, path, body):
        req = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Origin": self.origin},
            method="POST",
        )
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")


def flip(sig, i=None):
    b = bytearray(sig)
    b[len(b) // 2 if i is None else i] ^= 0x01
    return bytes(b)


def client_data(kind, challenge, origin):
    # The JSON-compatible serialization of CollectedClientData (WebAuthn L3 section 5.8.1.1).
    return json.dumps(
        {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}, separators=(",", ":")
    ).encode()


class Credential:
    """An ML-DSA credential held by this script: pyca/cryptography key, our own authenticator data."""

    def __init__(self, name):
        self.name = name
        self.alg, cls, self.pk_len, self.sig_len = ALGS[name]
        self.key = cls.generate()
        self.public = self.key.public_key().public_bytes_raw()
        assert len(self.public) == self.pk_len, (name, len(self.public))
        self.cred_id = secrets.token_bytes(32)
        self.count = 0

    def cose_key(self):
        return cbor({1: KTY_AKP, 3: self.alg, -1: self.public})

    def sign(self, msg):
        sig = self.key.sign(msg)  # pure ML-DSA, empty context
        assert len(sig) == self.sig_len
        self.key.public_key().verify(sig, msg)
        return sig

    def registration(self, options, origin, fmt="packed", tamper=False):
        rp_id = options["rp"]["id"]
        cdj = client_data("webauthn.create", options["challenge"], origin)
        flags = 0x01 | 0x04 | 0x40  # UP, UV, AT
        auth_data = (
            sha256(rp_id.encode())
            + bytes([flags])
            + self.count.to_bytes(4, "big")
            + bytes(16)  # AAGUID: none
            + len(self.cred_id).to_bytes(2, "big")
            + self.cred_id
            + self.cose_key()
        )
        if fmt == "packed":
            sig = self.sign(auth_data + sha256(cdj))
            att_stmt = {"alg": self.alg, "sig": flip(sig) if tamper else sig}
        else:
            att_stmt = {}
        att_obj = cbor({"fmt": fmt, "attStmt": att_stmt, "authData": auth_data})
        return {
            "id": b64u(self.cred_id),
            "rawId": b64u(self.cred_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64u(cdj),
                "attestationObject": b64u(att_obj),
                "transports": ["usb"],
                "publicKeyAlgorithm": self.alg,
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "cross-platform",
        }, len(att_obj)

    def assertion(self, options, origin, user_handle, tamper=False, signer=None):
        self.count += 1
        cdj = client_data("webauthn.get", options["challenge"], origin)
        auth_data = sha256(options["rpId"].encode()) + bytes([0x01 | 0x04]) + self.count.to_bytes(4, "big")
        msg = auth_data + sha256(cdj)
        sig = (signer or self.key).sign(msg)
        if tamper:
            sig = flip(sig)
        return {
            "id": b64u(self.cred_id),
            "rawId": b64u(self.cred_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64u(cdj),
                "authenticatorData": b64u(auth_data),
                "signature": b64u(sig),
                "userHandle": user_handle,
            },
            "clientExtensionResults": {},
        }


class Checks:
    def __init__(self):
        self.failed = []

    def expect(self, what, ok, detail):
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")
        if not ok:
            self.failed.append(what)


def refused(status, body):
    return 400 <= status < 500 and body.get("verified") is False


def scenario(base, origin, checks):
    for name in ALGS:
        rp = Rp(base, origin)
        user = f"pq-{name.lower()}"
        cred = Credential(name)

        # 1. Registration with a changed attestation signature: refused.
        st, opts = rp.post("/api/register/options", {"username": user, "attestation": "direct"})
        checks.expect(f"{name} register/options", st == 200, f"HTTP {st}")
        algs = [p["alg"] for p in opts.get("pubKeyCredParams", [])]
        checks.expect(f"{name} offered", cred.alg in algs and algs[0] == -7, f"pubKeyCredParams {algs}")
        body, _ = cred.registration(opts, origin, tamper=True)
        st, r = rp.post("/api/register/verify", body)
        checks.expect(f"{name} tampered attestation signature refused", refused(st, r), f"HTTP {st} {r.get('error')}")

        # 2. The same credential, correctly signed: registered.
        st, opts = rp.post("/api/register/options", {"username": user, "attestation": "direct"})
        body, size = cred.registration(opts, origin)
        st, r = rp.post("/api/register/verify", body)
        ok = st == 200 and r.get("verified") is True and r.get("credentialId") == b64u(cred.cred_id)
        checks.expect(
            f"{name} packed self attestation accepted",
            ok and r.get("attestationFormat") == "packed",
            f"HTTP {st} {r} (attestationObject {size} bytes)",
        )
        user_handle = opts["user"]["id"]

        # 3. Sign-ins that must fail: a changed signature, another key's signature.
        for what, kw in (("changed signature", {"tamper": True}),
                         ("signature by another ML-DSA key", {"signer": ALGS[name][1].generate()})):
            st, lo = rp.post("/api/login/options", {"username": user})
            allowed = [c["id"] for c in lo.get("allowCredentials", [])]
            checks.expect(f"{name} login/options lists the credential", b64u(cred.cred_id) in allowed, f"{allowed}")
            st, r = rp.post("/api/login/verify", cred.assertion(lo, origin, user_handle, **kw))
            checks.expect(
                f"{name} sign-in with a {what} refused",
                refused(st, r) and r.get("error") == "bad_signature",
                f"HTTP {st} {r.get('error')}",
            )

        # 4. A correct sign-in.
        st, lo = rp.post("/api/login/options", {"username": user})
        st, r = rp.post("/api/login/verify", cred.assertion(lo, origin, user_handle))
        checks.expect(
            f"{name} sign-in accepted",
            st == 200 and r.get("verified") is True and r.get("signCount") == cred.count,
            f"HTTP {st} {r}",
        )

    # ML-DSA-65 with attestation "none".
    rp = Rp(base, origin)
    cred = Credential("ML-DSA-65")
    st, opts = rp.post("/api/register/options", {"username": "pq-none"})
    body, size = cred.registration(opts, origin, fmt="none")
    st, r = rp.post("/api/register/verify", body)
    checks.expect("ML-DSA-65 attestation none accepted", st == 200 and r.get("attestationFormat") == "none",
                  f"HTTP {st} {r} (attestationObject {size} bytes)")
    st, lo = rp.post("/api/login/options", {"username": "pq-none"})
    st, r = rp.post("/api/login/verify", cred.assertion(lo, origin, opts["user"]["id"]))
    checks.expect("ML-DSA-65 (none) sign-in accepted", st == 200 and r.get("verified") is True, f"HTTP {st} {r}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server-bin", default=os.environ.get("HWKEY_RP_SERVER_BIN", "target/debug/examples/rp_server"))
    args = ap.parse_args()
    import cryptography

    print(f"pyca/cryptography {cryptography.__version__}")
    port = free_port()
    origin = f"http://localhost:{port}"
    server = subprocess.Popen(
        [args.server_bin, "--bind", f"127.0.0.1:{port}", "--origin", origin, "--rp-id", "localhost",
         "--database", "sqlite::memory:"],
        stdout=subprocess.PIPE,
        text=True,
    )
    checks = Checks()
    try:
        line = server.stdout.readline().strip()
        if line != f"listening on http://127.0.0.1:{port}":
            print(f"server said {line!r}")
            return 1
        scenario(f"http://127.0.0.1:{port}", origin, checks)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    if checks.failed:
        print(f"pq_pyca: {len(checks.failed)} check(s) failed: {checks.failed}")
        return 1
    print("pq_pyca: hwkey's relying party verified pyca/cryptography's ML-DSA credentials; tampered ones refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
