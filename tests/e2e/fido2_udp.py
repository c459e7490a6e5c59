#!/usr/bin/env python3
"""python-fido2 (2.2 or later) drives hwkey's software authenticator over UDP.

`hwkey virtual serve --udp 127.0.0.1:0 --pin PIN --fingerprint always` is
started here; python-fido2 has no UDP transport, so UdpCtapDevice below
speaks CTAPHID over UDP itself (CONTRACTS.md §3: one 64-byte report per
datagram, no report-id byte, answers to the sender's address).

Checks, each a section of main():
  1. getInfo: FIDO_2_2, hmac-secret-mc, thirdPartyPayment, perCredMgmtRO,
     encIdentifier / encCredStoreState readable with the persistent token.
  2. ML-DSA-65 credential and assertion verified by pyca/cryptography:
     check_ml_dsa() (key, packed self attestation, assertion, a tampered
     assertion refused).
  3. PRF at creation (hmac-secret-mc) equals PRF at sign-in.
  4. thirdPartyPayment: a payment-enabled credential says so at sign-in
     and in credential management.
  5. A pcmr (persistent, read-only) token lists credentials and cannot
     delete one.
  6. Fingerprint enrollment with FPBioEnrollment, then a UV token from the
     finger (getPinUvAuthTokenUsingUvWithPermissions) that makes a
     user-verified credential without the PIN.

Usage: fido2_udp.py --hwkey target/debug/hwkey
Exit status 0 when every check passes; the first failure is printed.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import threading
from typing import Callable

from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import STATUS, CtapDevice, CtapError
from fido2.ctap2 import Ctap2
from fido2.ctap2.bio import BioEnrollment, FPBioEnrollment
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.extensions import HmacSecretExtension, ThirdPartyPaymentExtension
from fido2.ctap2.pin import ClientPin
from fido2.hid import CAPABILITY, CTAPHID
from fido2.utils import sha256
from fido2.webauthn import AttestedCredentialData

PIN = "4321"
ORIGIN = "https://example.com"
RP = {"id": "example.com", "name": "Example"}
REPORT = 64
BROADCAST_CID = 0xFFFFFFFF


class UdpCtapDevice(CtapDevice):
    """A CTAPHID device reached over UDP: one 64-byte report per datagram."""

    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.connect((host, port))
        self._sock.settimeout(timeout)
        self._cid = BROADCAST_CID
        nonce = os.urandom(8)
        resp = self._exchange(CTAPHID.INIT, nonce)
        if len(resp) < 17 or resp[:8] != nonce:
            raise OSError("CTAPHID INIT: bad answer")
        (self._cid,) = struct.unpack(">I", resp[8:12])
        self._capabilities = resp[16]

    @property
    def capabilities(self) -> int:
        return self._capabilities

    def close(self) -> None:
        self._sock.close()

    @classmethod
    def list_devices(cls):
        return iter(())

    def _send(self, cmd: int, data: bytes) -> None:
        head = struct.pack(">IBH", self._cid, 0x80 | cmd, len(data))
        first, rest = data[: REPORT - 7], data[REPORT - 7 :]
        self._sock.send((head + first).ljust(REPORT, b"\0"))
        seq = 0
        while rest:
            chunk, rest = rest[: REPORT - 5], rest[REPORT - 5 :]
            self._sock.send((struct.pack(">IB", self._cid, seq) + chunk).ljust(REPORT, b"\0"))
            seq += 1

    def _recv_report(self) -> bytes:
        while True:
            r = self._sock.recv(REPORT + 16)
            if len(r) == REPORT and struct.unpack(">I", r[:4])[0] == self._cid:
                return r

    def _exchange(
        self,
        cmd: int,
        data: bytes,
        event: threading.Event | None = None,
        on_keepalive: Callable[[STATUS], None] | None = None,
    ) -> bytes:
        self._send(cmd, data)
        last_status = None
        while True:
            if event is not None and event.is_set():
                self._send(CTAPHID.CANCEL, b"")
                event = None
            r = self._recv_report()
            rcmd = r[4] & 0x7F
            if not r[4] & 0x80:
                continue  # a stray continuation packet
            if rcmd == CTAPHID.KEEPALIVE:
                status = r[7]
                if on_keepalive and status != last_status:
                    on_keepalive(STATUS(status))
                last_status = status
                continue
            if rcmd == CTAPHID.ERROR:
                raise CtapError(r[7])
            if rcmd != cmd:
                raise OSError(f"CTAPHID: answer to command 0x{rcmd:02x}, expected 0x{cmd:02x}")
            (length,) = struct.unpack(">H", r[5:7])
            out = bytearray(r[7 : 7 + length])
            seq = 0
            while len(out) < length:
                c = self._recv_report()
                if c[4] != seq:
                    raise OSError("CTAPHID: continuation out of sequence")
                out += c[5 : 5 + length - len(out)]
                seq += 1
            return bytes(out)

    def call(self, cmd, data=b"", event=None, on_keepalive=None) -> bytes:
        return self._exchange(cmd, bytes(data), event, on_keepalive)


class Pin(UserInteraction):
    """Gives the PIN when asked, counts UV requests."""

    def __init__(self, pin: str | None):
        self.pin = pin
        self.pin_requests = 0
        self.uv_requests = 0

    def request_pin(self, permissions, rp_id):
        self.pin_requests += 1
        return self.pin

    def request_uv(self, permissions, rp_id):
        self.uv_requests += 1
        return True


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"ok - {what}")


def creation(user: bytes, extensions: dict | None = None, uv: str = "required") -> dict:
    return {
        "rp": RP,
        "user": {"id": user, "name": f"user-{user.hex()}", "displayName": "User"},
        "challenge": os.urandom(32),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": uv},
        "extensions": extensions or {},
    }


def request(cred_id: bytes | None, extensions: dict | None = None, uv: str = "required") -> dict:
    r = {"challenge": os.urandom(32), "rpId": RP["id"], "userVerification": uv, "extensions": extensions or {}}
    if cred_id is not None:
        r["allowCredentials"] = [{"type": "public-key", "id": cred_id}]
    return r


def client(dev: CtapDevice, ui: UserInteraction, extensions=None) -> Fido2Client:
    kw = {} if extensions is None else {"extensions": extensions}
    return Fido2Client(dev, DefaultClientDataCollector(ORIGIN), ui, **kw)


def pin_token(ctap: Ctap2, permissions, rp_id=None) -> tuple[ClientPin, bytes]:
    cp = ClientPin(ctap)
    return cp, cp.get_pin_token(PIN, permissions, rp_id)


def check_info(ctap: Ctap2) -> None:
    info = ctap.get_info()
    check("FIDO_2_2" in info.versions, f"getInfo lists FIDO_2_2 ({info.versions})")
    for ext in ("hmac-secret", "hmac-secret-mc", "thirdPartyPayment"):
        check(ext in info.extensions, f"getInfo lists the {ext} extension")
    check(info.options.get("perCredMgmtRO") is True, "getInfo: perCredMgmtRO")
    check("bioEnroll" in info.options and "uv" in info.options, "getInfo: bioEnroll and uv options (a sensor)")
    check(info.max_pin_length == 63, "getInfo: maxPINLength 63")
    check(info.enc_identifier is not None and len(info.enc_identifier) == 32, "getInfo: encIdentifier")
    check(info.enc_cred_store_state is not None, "getInfo: encCredStoreState")


def check_ml_dsa(ctap: Ctap2, dev: CtapDevice) -> None:
    """An ML-DSA-65 credential and assertion, made through python-fido2 and
    verified by pyca/cryptography (no hwkey code on the verifying side)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import mldsa

    algs = [a.get("alg") for a in ctap.get_info().algorithms]
    check(-49 in algs, f"getInfo lists ML-DSA-65 (COSE -49) ({algs})")
    c = client(dev, Pin(PIN))
    opts = creation(b"\x05mldsa")
    opts["pubKeyCredParams"] = [{"type": "public-key", "alg": -49}, {"type": "public-key", "alg": -7}]
    reg = c.make_credential(opts)
    att = reg.response.attestation_object
    cred = att.auth_data.credential_data
    key = cred.public_key
    check(key.get(1) == 7 and key.get(3) == -49, f"ML-DSA-65 credential: AKP key, kty 7, alg -49 ({key.get(1)}, {key.get(3)})")
    raw = key.get(-1)
    check(isinstance(raw, bytes) and len(raw) == 1952, "ML-DSA-65 public key of 1952 bytes")
    pub = mldsa.MLDSA65PublicKey.from_public_bytes(raw)
    if att.fmt == "packed" and "x5c" not in att.att_stmt:
        check(att.att_stmt.get("alg") == -49, "packed self attestation names alg -49")
        pub.verify(att.att_stmt["sig"], bytes(att.auth_data) + reg.response.client_data.hash)
        print("ok - packed self attestation verified by pyca/cryptography")
    r = c.get_assertion(request(cred.credential_id)).get_response(0)
    signed = bytes(r.response.authenticator_data) + r.response.client_data.hash
    check(len(r.response.signature) == 3309, "ML-DSA-65 signature of 3309 bytes")
    pub.verify(r.response.signature, signed)
    print("ok - ML-DSA-65 assertion verified by pyca/cryptography")
    try:
        pub.verify(r.response.signature, signed[:-1] + bytes([signed[-1] ^ 1]))
    except InvalidSignature:
        print("ok - a tampered assertion is refused by pyca/cryptography")
    else:
        raise AssertionError("pyca/cryptography accepted a tampered ML-DSA-65 assertion")


def check_prf(dev: CtapDevice) -> None:
    salt = os.urandom(32)
    c = client(dev, Pin(PIN), [HmacSecretExtension()])
    reg = c.make_credential(creation(b"\x01prf", {"prf": {"eval": {"first": salt}}}))
    prf = reg.client_extension_results.prf
    check(prf is not None and prf.enabled is True, "PRF enabled at creation")
    at_creation = prf.results.first if prf.results else None
    check(at_creation is not None and len(at_creation) == 32, "PRF result at creation (hmac-secret-mc)")
    cred_id = reg.raw_id
    sel = c.get_assertion(request(cred_id, {"prf": {"eval": {"first": salt}}}))
    at_signin = sel.get_response(0).client_extension_results.prf.results.first
    check(at_signin == at_creation, "PRF at creation equals PRF at sign-in")
    other = c.get_assertion(request(cred_id, {"prf": {"eval": {"first": os.urandom(32)}}})).get_response(0)
    check(other.client_extension_results.prf.results.first != at_creation, "another salt, another PRF")


def check_third_party_payment(ctap: Ctap2, dev: CtapDevice) -> bytes:
    c = client(dev, Pin(PIN), [ThirdPartyPaymentExtension()])
    reg = c.make_credential(creation(b"\x02pay", {"payment": {"isPayment": True}}))
    pay_id = reg.raw_id
    plain = c.make_credential(creation(b"\x03plain"))
    for cred_id, expected in ((pay_id, True), (plain.raw_id, False)):
        res = c.get_assertion(request(cred_id, {"payment": {"isPayment": True}})).get_response(0)
        ext = res.response.authenticator_data.extensions or {}
        check(ext.get("thirdPartyPayment") is expected, f"getAssertion says thirdPartyPayment={expected}")
    cp, token = pin_token(ctap, ClientPin.PERMISSION.CREDENTIAL_MGMT)
    cm = CredentialManagement(ctap, cp.protocol, token)
    creds = cm.enumerate_creds(sha256(RP["id"].encode()))
    flags = {c[CredentialManagement.RESULT.CREDENTIAL_ID]["id"]: c.get(CredentialManagement.RESULT.THIRD_PARTY_PAYMENT) for c in creds}
    check(flags.get(pay_id) is True and flags.get(plain.raw_id) is False, "credential management reports thirdPartyPayment")
    return plain.raw_id


def check_pcmr(ctap: Ctap2, victim: bytes) -> None:
    cp, token = pin_token(ctap, ClientPin.PERMISSION.PERSISTENT_CREDENTIAL_MGMT)
    # The persistent token is the same one each time it is asked for.
    _, again = pin_token(ctap, ClientPin.PERMISSION.PERSISTENT_CREDENTIAL_MGMT)
    check(token == again, "pcmr: the persistent token is stable")
    cm = CredentialManagement(ctap, cp.protocol, token)
    meta = cm.get_metadata()
    count = meta[CredentialManagement.RESULT.EXISTING_CRED_COUNT]
    check(count >= 3, f"pcmr token reads the metadata ({count} credentials)")
    rps = cm.enumerate_rps()
    check([r[CredentialManagement.RESULT.RP]["id"] for r in rps] == [RP["id"]], "pcmr token lists the RPs")
    creds = cm.enumerate_creds(sha256(RP["id"].encode()))
    check(len(creds) == count, "pcmr token lists the credentials")
    try:
        cm.delete_cred({"type": "public-key", "id": victim})
        raise AssertionError("pcmr token deleted a credential")
    except CtapError as e:
        check(e.code == CtapError.ERR.PIN_AUTH_INVALID, f"pcmr token cannot delete ({e.code.name})")
    check(len(cm.enumerate_creds(sha256(RP["id"].encode()))) == count, "the credential is still there")
    # The encrypted getInfo members open with the persistent token.
    info = ctap.get_info()
    ident = info.get_identifier(token)
    check(ident is not None and len(ident) == 16, "encIdentifier decrypts with the persistent token")
    check(ctap.get_info().get_identifier(token) == ident, "encIdentifier is stable (fresh IV, same identifier)")
    state = info.get_cred_store_state(token)
    # A change to the credential store changes encCredStoreState.
    cp2, cm_token = pin_token(ctap, ClientPin.PERMISSION.CREDENTIAL_MGMT)
    CredentialManagement(ctap, cp2.protocol, cm_token).delete_cred({"type": "public-key", "id": victim})
    check(ctap.get_info().get_cred_store_state(token) != state, "encCredStoreState changes with the credentials")


def check_bio(ctap: Ctap2, dev: CtapDevice) -> None:
    check(BioEnrollment.is_supported(ctap.info), "bioEnrollment supported")
    check(ctap.get_info().options.get("uv") is False, "uv not configured before enrollment")
    cp, token = pin_token(ctap, ClientPin.PERMISSION.BIO_ENROLL)
    bio = FPBioEnrollment(ctap, cp.protocol, token)
    sensor = bio.get_fingerprint_sensor_info()
    samples = sensor[BioEnrollment.RESULT.MAX_SAMPLES_REQUIRED]
    check(samples >= 1, f"sensor info: {samples} samples per enrollment")
    ctx = bio.enroll()
    template_id = None
    touches = 0
    while template_id is None:
        touches += 1
        template_id = ctx.capture()
        print(f"  sample {touches}: {ctx.remaining} left")
    check(touches == samples, f"enrolled with {touches} samples")
    bio.set_name(template_id, "right index")
    enrolled = bio.enumerate_enrollments()
    check(enrolled == {template_id: "right index"}, "enumerateEnrollments lists the named finger")
    info = ctap.get_info()
    check(info.options.get("uv") is True and info.options.get("bioEnroll") is True, "uv and bioEnroll after enrollment")
    check(cp.get_uv_retries() > 0, "UV retries left")
    # A UV token from the finger: no PIN involved.
    uv = ClientPin(ctap)
    perms = ClientPin.PERMISSION.MAKE_CREDENTIAL | ClientPin.PERMISSION.GET_ASSERTION
    uv_token = uv.get_uv_token(perms, RP["id"])
    check(len(uv_token) == 32, "UV token from the fingerprint")
    cdh = sha256(b"bio client data")
    att = ctap.make_credential(
        cdh, RP, {"id": b"\x04bio", "name": "bio"}, [{"type": "public-key", "alg": -7}],
        pin_uv_param=uv.protocol.authenticate(uv_token, cdh), pin_uv_protocol=uv.protocol.VERSION,
    )
    check(att.auth_data.is_user_verified(), "makeCredential with the UV token is user-verified")
    # Fido2Client now prefers the finger: it never asks for the PIN.
    ui = Pin(None)
    reg = client(dev, ui).make_credential(creation(b"\x05finger"))
    check(reg.response.attestation_object.auth_data.is_user_verified(), "Fido2Client: user verified by fingerprint")
    check(ui.pin_requests == 0 and ui.uv_requests >= 1, "Fido2Client used UV, not the PIN")
    acd = reg.response.attestation_object.auth_data.credential_data
    check(isinstance(acd, AttestedCredentialData), "attested credential data")
    # One token at a time: the UV tokens above replaced the PIN token; the
    # finger itself now grants the bioEnrollment permission.
    be = ClientPin(ctap)
    bio = FPBioEnrollment(ctap, be.protocol, be.get_uv_token(ClientPin.PERMISSION.BIO_ENROLL))
    bio.remove_enrollment(template_id)
    check(bio.enumerate_enrollments() == {}, "removeEnrollment (with a UV token): no fingers left")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hwkey", default="target/debug/hwkey")
    args = ap.parse_args()
    proc = subprocess.Popen(
        [args.hwkey, "virtual", "serve", "--udp", "127.0.0.1:0", "--pin", PIN, "--fingerprint", "always"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if not line.startswith("listening on udp://"):
            print(f"hwkey virtual serve did not start: {line!r}", file=sys.stderr)
            return 1
        host, port = line.removeprefix("listening on udp://").rsplit(":", 1)
        dev = UdpCtapDevice(host, int(port))
        check(bool(dev.capabilities & CAPABILITY.CBOR), "CTAPHID INIT over UDP: CBOR capability")
        ctap = Ctap2(dev)
        check_info(ctap)
        check_ml_dsa(ctap, dev)
        check_prf(dev)
        victim = check_third_party_payment(ctap, dev)
        check_pcmr(ctap, victim)
        check_bio(ctap, dev)
        print("all python-fido2 checks passed")
        return 0
    except (AssertionError, CtapError, OSError, ValueError, KeyError) as e:
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
