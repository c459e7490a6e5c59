#!/usr/bin/env python3
"""WebAuthn Level 3 features of the demo page, in headless Chromium.

Uses the DevTools protocol's virtual authenticators and the page helpers of
browser.py. Before the page's scripts run, PublicKeyCredential's Signal API
functions and navigator.credentials.get/create are wrapped so that every call
is recorded (and still reaches the browser), and
isConditionalMediationAvailable and getClientCapabilities().conditionalGet
answer true (headless Chromium has no autofill UI, so it says false; the
wrapper lets the test see the page start its conditional get). Checks, in order:

  1. the page has a username field with autocomplete="username webauthn"
     and starts a conditional get on load;
  2. removing a key calls signalAllAcceptedCredentials with the remaining ids;
  3. a sign-in with a credential the server has deleted calls
     signalUnknownCredential with that credential's id and the RP ID;
  4. under --attestation-policy certified with a metadata BLOB made here
     (own root and signer; one entry for the virtual authenticator's AAGUID
     whose attestationRootCertificates is its packed attestation
     certificate, status FIDO_CERTIFIED_L1), a registration shows the
     authenticator's name on the page; without the entry it is refused.

Needs the `websockets` and `cryptography` packages from PyPI.
"""

import argparse
import asyncio
import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import chromium_page, free_port  # noqa: E402

VIRTUAL_AAGUID = "01020304-0506-0708-0102-030405060708"
AUTHENTICATOR_NAME = "Chromium Virtual Authenticator (test metadata)"

WRAP = r"""
(() => {
  window.__calls = [];
  const record = (name, arg) => {
    let copy = null;
    try { copy = JSON.parse(JSON.stringify(arg)); } catch (_) { copy = String(arg); }
    window.__calls.push({ name, arg: copy });
  };
  if (window.PublicKeyCredential) {
    for (const n of ["signalUnknownCredential", "signalAllAcceptedCredentials", "signalCurrentUserDetails"]) {
      const orig = PublicKeyCredential[n];
      PublicKeyCredential[n] = function (arg) {
        record(n, arg);
        return typeof orig === "function" ? orig.call(PublicKeyCredential, arg) : Promise.resolve();
      };
    }
    PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(true);
    const caps = PublicKeyCredential.getClientCapabilities;
    PublicKeyCredential.getClientCapabilities = async () => {
      const c = typeof caps === "function" ? await caps.call(PublicKeyCredential) : {};
      return Object.assign({}, c, { conditionalGet: true });
    };
  }
  const pendingUntilAbort = (opts) => new Promise((_, reject) => {
    const s = opts && opts.signal;
    if (s) s.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
  });
  const get = navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = (opts) => {
    record("get", { mediation: (opts && opts.mediation) || null });
    return opts && opts.mediation === "conditional" ? pendingUntilAbort(opts) : get(opts);
  };
  const create = navigator.credentials.create.bind(navigator.credentials);
  navigator.credentials.create = (opts) => {
    record("create", { mediation: (opts && opts.mediation) || null });
    return opts && opts.mediation === "conditional" ? pendingUntilAbort(opts) : create(opts);
  };
})();
"""


def cbor(b, i=0):
    """A minimal CBOR decoder (definite lengths), enough for an attestation object."""
    ib = b[i]
    mt, ai = ib >> 5, ib & 31
    i += 1
    if ai < 24:
        v = ai
    elif ai in (24, 25, 26, 27):
        n = 1 << (ai - 24)
        v = int.from_bytes(b[i:i + n], "big")
        i += n
    else:
        raise ValueError("indefinite length")
    if mt == 0:
        return v, i
    if mt == 1:
        return -1 - v, i
    if mt == 2:
        return b[i:i + v], i + v
    if mt == 3:
        return b[i:i + v].decode(), i + v
    if mt == 4:
        out = []
        for _ in range(v):
            x, i = cbor(b, i)
            out.append(x)
        return out, i
    if mt == 5:
        out = {}
        for _ in range(v):
            k, i = cbor(b, i)
            x, i = cbor(b, i)
            out[k] = x
        return out, i
    if mt == 7:
        return {20: False, 21: True, 22: None}.get(ai), i
    raise ValueError(f"major type {mt}")


def b64url(d):
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def make_blob(directory, entries):
    """An MDS3 BLOB signed by a signer under a root made here; returns (blob path, root PEM path)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hwkey test MDS root")])
    root = (
        x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hwkey test MDS signer")]))
        .issuer_name(root_name).public_key(signer_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    signer_der = signer.public_bytes(serialization.Encoding.DER)
    header = {"alg": "ES256", "typ": "JWT", "x5c": [base64.b64encode(signer_der).decode()]}
    payload = {"legalHeader": "test", "no": 1, "nextUpdate": "2099-01-01", "entries": entries}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    r, s = decode_dss_signature(signer_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    jws = signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    blob_path = os.path.join(directory, "blob.jwt")
    root_path = os.path.join(directory, "root.pem")
    with open(blob_path, "w") as f:
        f.write(jws)
    with open(root_path, "wb") as f:
        f.write(root.public_bytes(serialization.Encoding.PEM))
    return blob_path, root_path


def entry(leaf_der):
    return {
        "aaguid": VIRTUAL_AAGUID,
        "metadataStatement": {
            "aaguid": VIRTUAL_AAGUID, "description": AUTHENTICATOR_NAME, "protocolFamily": "fido2", "schema": 3,
            "attestationTypes": ["basic_full"],
            "attestationRootCertificates": [base64.b64encode(leaf_der).decode()],
        },
        "statusReports": [{"status": "FIDO_CERTIFIED_L1", "effectiveDate": "2024-01-01"}],
        "timeOfLastStatusChange": "2024-01-01",
    }


class Server:
    def __init__(self, binary, extra):
        self.port = free_port()
        self.origin = f"http://localhost:{self.port}"
        self.proc = subprocess.Popen(
            [binary, "--bind", f"127.0.0.1:{self.port}", "--origin", self.origin, "--rp-id", "localhost",
             "--database", "sqlite::memory:", *extra],
            stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline().strip()
        assert line == f"listening on http://127.0.0.1:{self.port}", f"server said {line!r}"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def authenticator(cdp):
    r = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "usb", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    return r["authenticatorId"]


async def presence(cdp, auth_id, on):
    await cdp.send("WebAuthn.setAutomaticPresenceSimulation", {"authenticatorId": auth_id, "enabled": on})


async def calls(cdp, name):
    return await cdp.eval(f"window.__calls.filter(c => c.name === {json.dumps(name)}).map(c => c.arg)")


async def load(page, cdp, url):
    await cdp.send("Page.navigate", {"url": url})
    await page.wait_for("document.readyState === 'complete' && document.getElementById('status').dataset.state === 'idle'"
                        " && !document.body.classList.contains('busy')", what="the demo page")


async def scenario(page, cdp, args, workdir):
    await cdp.send("Page.enable")
    await cdp.send("Runtime.enable")
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    await cdp.send("Page.addScriptToEvaluateOnNewDocument", {"source": WRAP})
    key_a = await authenticator(cdp)

    plain = Server(args.server_bin, [])
    try:
        print("1. autofill field and a conditional get on load")
        await load(page, cdp, plain.origin + "/")
        fields = await cdp.eval("[...document.querySelectorAll('input')].filter(i =>"
                                " (i.getAttribute('autocomplete') || '').split(/\\s+/).includes('webauthn')).map(i => i.id)")
        assert fields, "no input with autocomplete=\"... webauthn\""
        await page.wait_for("window.__calls.some(c => c.name === 'get' && c.arg.mediation === 'conditional')",
                            what="a conditional get on load")
        print(f"  ok: fields {fields}; conditional get started")

        # The virtual authenticator's attestation certificate, for the metadata BLOB of step 4.
        ao = await cdp.eval("""(async () => { const c = await navigator.credentials.create({publicKey: {
              rp: {name: 'x', id: 'localhost'}, user: {id: new Uint8Array([7]), name: 'probe', displayName: 'probe'},
              challenge: new Uint8Array(32), pubKeyCredParams: [{type: 'public-key', alg: -7}], attestation: 'direct'}});
              return btoa(String.fromCharCode(...new Uint8Array(c.response.attestationObject))); })()""")
        obj, _ = cbor(base64.b64decode(ao))
        assert obj["fmt"] == "packed" and obj["attStmt"].get("x5c"), obj["fmt"]
        leaf = obj["attStmt"]["x5c"][0]
        await load(page, cdp, plain.origin + "/")

        print("2. removing a key signals the remaining credentials")
        await page.type_into("#reg-username", "dave")
        await page.click("#reg-passkey")
        await page.click("#register-btn")
        await page.expect_success("Registered!")
        await presence(cdp, key_a, False)
        key_b = await authenticator(cdp)
        await page.click("#add-key-btn")
        await page.expect_success("Added another security key")
        keys = await page.keys()
        assert len(keys) == 2, keys
        first, second = keys[0]["id"], keys[1]["id"]
        await page.click(f"#keys li[data-id='{first}'] .remove-btn")
        await page.wait_for("document.querySelector('.remove-btn').dataset.confirm === '1'", what="remove confirmation")
        await page.click(f"#keys li[data-id='{first}'] .remove-btn")
        await page.expect_success("Removed")
        accepted = await calls(cdp, "signalAllAcceptedCredentials")
        assert accepted, "signalAllAcceptedCredentials was not called"
        last = accepted[-1]
        assert last["allAcceptedCredentialIds"] == [second], last
        assert last["rpId"] == "localhost" and last["userId"], last
        details = await calls(cdp, "signalCurrentUserDetails")
        assert details and details[-1]["name"] == "dave", details
        print(f"  ok: signalAllAcceptedCredentials({last['allAcceptedCredentialIds']})")

        print("3. a credential the server deleted signals signalUnknownCredential")
        # (Step 2's signalAllAcceptedCredentials made Chromium drop the removed
        # credential from authenticator A, as the Signal API intends; so the
        # server deletes this one behind the page's back, as an administrator would.)
        await page.click("#logout-btn")
        await page.expect_success("Signed out")
        await cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": key_a})
        await cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": key_b})
        key_c = await authenticator(cdp)
        await page.type_into("#reg-username", "gina")
        await page.click("#register-btn")
        await page.expect_success("Registered!")
        await presence(cdp, key_c, False)
        key_d = await authenticator(cdp)
        await page.click("#add-key-btn")
        await page.expect_success("Added another security key")
        keys = await page.keys()
        assert len(keys) == 2, keys
        gone = keys[0]["id"]
        status = await cdp.eval(f"fetch('/api/credentials/{gone}', {{method: 'DELETE'}}).then(r => r.status)")
        assert status == 200, status
        await page.click("#logout-btn")
        await page.expect_success("Signed out")
        await cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": key_d})
        await presence(cdp, key_c, True)
        await page.click("#passkey-btn")
        await page.expect_error("unknown_credential", "")
        unknown = await calls(cdp, "signalUnknownCredential")
        assert unknown and unknown[-1] == {"rpId": "localhost", "credentialId": gone}, unknown
        print(f"  ok: signalUnknownCredential({unknown[-1]})")
    finally:
        plain.stop()

    print("4. certified policy with metadata: the authenticator is named")
    await cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": key_c})
    await authenticator(cdp)
    blob, root = make_blob(workdir, [entry(leaf)])
    certified = Server(args.server_bin, ["--metadata", blob, "--metadata-root", root, "--attestation-policy", "certified"])
    try:
        await load(page, cdp, certified.origin + "/")
        await page.type_into("#reg-username", "erin")
        await page.click("#register-btn")
        await page.expect_success(AUTHENTICATOR_NAME)
    finally:
        certified.stop()
    empty_blob, empty_root = make_blob(workdir, [])
    refusing = Server(args.server_bin, ["--metadata", empty_blob, "--metadata-root", empty_root,
                                        "--attestation-policy", "certified"])
    try:
        await load(page, cdp, refusing.origin + "/")
        await page.type_into("#reg-username", "frank")
        await page.click("#register-btn")
        await page.expect_error("attestation_not_trusted", "could not be verified")
    finally:
        refusing.stop()


async def run(args):
    workdir = tempfile.mkdtemp(prefix="hwkey-l3-")
    try:
        async with chromium_page(args.chromium, args.screenshot) as (page, cdp):
            await scenario(page, cdp, args, workdir)
        print("browser Level 3: all steps passed")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server-bin", default=os.environ.get("HWKEY_RP_SERVER_BIN", "target/debug/examples/rp_server"))
    ap.add_argument("--chromium", default=os.environ.get("HWKEY_CHROMIUM", shutil.which("chromium") or "chromium"))
    ap.add_argument("--screenshot", default=os.path.join(tempfile.gettempdir(), "hwkey-e2e-l3-failure.png"))
    args = ap.parse_args()
    try:
        asyncio.run(asyncio.wait_for(run(args), 240))
    except Exception as e:
        print(f"browser Level 3 FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
