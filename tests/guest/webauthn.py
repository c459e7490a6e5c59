"""WebAuthn through the uhid devices, run inside the guest (tests/guest/run.sh).

    webauthn.py python-client HIDRAW   python-fido2's CtapHidDevice + Fido2Client
                                       register and sign in; Fido2Server verifies
    webauthn.py hwkey-client HWKEY HIDRAW
                                       `hwkey webauthn register/login` through
                                       hwkey's hidapi backend; Fido2Server verifies

Exit status 0 when every step passed; the reason on stderr otherwise.
"""
import json
import subprocess
import sys

from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.hid import CtapHidDevice
from fido2.server import Fido2Server
from fido2.webauthn import (
    AuthenticationResponse,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
)

ORIGIN = "https://example.com"
RP = PublicKeyCredentialRpEntity(id="example.com", name="Example")
USER = PublicKeyCredentialUserEntity(id=b"user-1", name="alice", display_name="Alice")


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def python_client(path):
    devs = [d for d in CtapHidDevice.list_devices() if d.descriptor.path == path]
    if not devs:
        fail(f"CtapHidDevice.list_devices() does not list {path}: "
             f"{[d.descriptor.path for d in CtapHidDevice.list_devices()]}")
    dev = devs[0]
    print(f"python-fido2 found {path}: {dev.descriptor}")
    client = Fido2Client(dev, DefaultClientDataCollector(ORIGIN), UserInteraction())
    server = Fido2Server(RP, attestation="direct")
    options, state = server.register_begin(USER, user_verification="discouraged")
    result = client.make_credential(options.public_key)
    auth_data = server.register_complete(state, result)
    creds = [auth_data.credential_data]
    print(f"python-fido2 registered credential {auth_data.credential_data.credential_id.hex()[:16]}...")
    options, state = server.authenticate_begin(creds, user_verification="discouraged")
    selection = client.get_assertion(options.public_key)
    server.authenticate_complete(state, creds, selection.get_response(0))
    print("python-fido2 assertion verified by Fido2Server")


def hwkey(args, stdin):
    p = subprocess.run(args, input=stdin.encode(), capture_output=True, timeout=120)
    if p.returncode != 0:
        fail(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.decode(errors='replace')}")
    return json.loads(p.stdout)


def hwkey_client(exe, path):
    server = Fido2Server(RP, attestation="direct")
    options, state = server.register_begin(USER, user_verification="discouraged")
    reg = hwkey([exe, "webauthn", "register", "--origin", ORIGIN, "--options", "-", "--device", f"hid:{path}"],
                json.dumps(dict(options.public_key)))
    auth_data = server.register_complete(state, RegistrationResponse.from_dict(reg))
    creds = [auth_data.credential_data]
    print(f"hwkey webauthn register over {path}: Fido2Server accepted the attestation")
    options, state = server.authenticate_begin(creds, user_verification="discouraged")
    login = hwkey([exe, "webauthn", "login", "--origin", ORIGIN, "--options", "-", "--device", f"hid:{path}"],
                  json.dumps(dict(options.public_key)))
    server.authenticate_complete(state, creds, AuthenticationResponse.from_dict(login))
    print(f"hwkey webauthn login over {path}: Fido2Server verified the assertion")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "python-client":
        python_client(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "hwkey-client":
        hwkey_client(sys.argv[2], sys.argv[3])
    else:
        fail(__doc__)
