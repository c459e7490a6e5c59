#!/usr/bin/env python3
"""End-to-end test of the demo relying party in a real browser.

Starts examples/rp_server (binary given by --server-bin or HWKEY_RP_SERVER_BIN)
on a free port with an in-memory database, starts headless Chromium (Debian
package `chromium`), attaches the DevTools protocol's WebAuthn virtual
authenticator, and drives the demo page by its buttons:

  register (security key) -> sign out -> sign in by username -> adding the
  same key again is refused -> a second key (discoverable) -> sign out ->
  sign in without a username -> rename a key -> remove a key -> an unknown
  username is explained -> screenshot -> set up an authenticator app (QR code,
  secret read from the page, TOTP computed here, recovery codes shown once)
  -> sign out -> sign in with a recovery code, which then is refused a second
  time -> sign in with an app code, which then is refused a second time.

Only the `websockets` package from PyPI is needed besides the standard library.
Exit status 0 on success; on failure the last screenshot and the browser's
console are kept next to --screenshot.
"""

import argparse
import asyncio
import contextlib
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets


def totp(secret_b32, at=None, period=30):
    """RFC 6238 with HMAC-SHA1 and 6 digits, as an authenticator app computes it."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    step = int((time.time() if at is None else at) // period)
    mac = hmac.new(key, step.to_bytes(8, "big"), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[off:off + 4], 'big') & 0x7FFFFFFF) % 1000000:06d}", step


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cdp:
    """A minimal DevTools protocol client on one page target."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending = {}
        self.events = []
        self.console = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self.pending:
                self.pending.pop(msg["id"]).set_result(msg)
            else:
                self.events.append(msg)
                if msg.get("method") == "Runtime.consoleAPICalled":
                    args = msg["params"].get("args", [])
                    self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
                elif msg.get("method") == "Runtime.exceptionThrown":
                    self.console.append("EXCEPTION " + json.dumps(msg["params"].get("exceptionDetails", {}))[:500])

    async def send(self, method, params=None, timeout=30):
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        msg = await asyncio.wait_for(fut, timeout)
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg.get("result", {})

    async def eval(self, expr):
        r = await self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluate {expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")


class Page:
    def __init__(self, cdp, screenshot):
        self.cdp = cdp
        self.screenshot_path = screenshot

    async def wait_for(self, expr, timeout=20, what=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.cdp.eval(expr):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or expr}; status: {await self.status()}")

    async def click(self, selector):
        """A real mouse click in the middle of the element."""
        box = await self.cdp.eval(
            f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
                 if (!e) return null; e.scrollIntoView({{block: 'center'}});
                 const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"""
        )
        assert box, f"no element {selector}"
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            params = {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
            await self.cdp.send("Input.dispatchMouseEvent", params)

    async def type_into(self, selector, text):
        await self.click(selector)
        await self.cdp.eval(f"document.querySelector({json.dumps(selector)}).select()")
        await self.cdp.send("Input.insertText", {"text": text})

    async def status(self):
        return await self.cdp.eval(
            "(() => { const s = document.getElementById('status');"
            " return {state: s.dataset.state, code: s.dataset.code || null,"
            " text: document.getElementById('status-text').textContent}; })()"
        )

    async def finished(self, timeout=30):
        """Wait until the status line leaves 'working'; return it."""
        await self.wait_for(
            "document.getElementById('status').dataset.state !== 'working' && !document.body.classList.contains('busy')",
            timeout,
            "the step to finish",
        )
        return await self.status()

    async def expect_success(self, contains, timeout=30):
        st = await self.finished(timeout)
        assert st["state"] == "success", f"expected success, got {st}"
        assert contains in st["text"], f"expected {contains!r} in {st['text']!r}"
        print(f"  ok: {st['text']}")

    async def expect_error(self, code, contains, timeout=30):
        st = await self.finished(timeout)
        assert st["state"] == "error", f"expected an error, got {st}"
        assert st["code"] == code, f"expected code {code}, got {st}"
        assert contains in st["text"], f"expected {contains!r} in {st['text']!r}"
        print(f"  ok (error shown): {st['text']}")

    async def keys(self):
        return await self.cdp.eval(
            "[...document.querySelectorAll('#keys li')].map(li => ({id: li.dataset.id,"
            " name: li.querySelector('.nickname').textContent,"
            " badges: [...li.querySelectorAll('.badge')].map(b => b.textContent)}))"
        )

    async def visible(self, section):
        return await self.cdp.eval(f"!document.getElementById({json.dumps(section)}).hidden")

    async def screenshot(self, path=None):
        r = await self.cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path = path or self.screenshot_path
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))
        return path


async def add_authenticator(cdp):
    r = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return r["authenticatorId"]


async def scenario(page, cdp, url):
    await cdp.send("Page.enable")
    await cdp.send("Runtime.enable")
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    key_a = await add_authenticator(cdp)
    await cdp.send("Page.navigate", {"url": url})
    await page.wait_for("document.readyState === 'complete' && document.getElementById('status').dataset.state === 'idle'"
                        " && !document.body.classList.contains('busy')", what="the demo page")
    assert await page.visible("signed-out")
    assert not await page.visible("unsupported"), "the page says this browser cannot use security keys"
    print("page loaded")

    print("1. register a security key")
    await page.type_into("#reg-username", "alice")
    await page.click("#register-btn")
    await page.expect_success("Registered!")
    assert await page.visible("signed-in")
    keys = await page.keys()
    assert len(keys) == 1, keys
    assert await cdp.eval("document.getElementById('whoami').textContent") == "alice"

    print("2. sign out, sign in by username")
    await page.click("#logout-btn")
    await page.expect_success("Signed out")
    assert await page.visible("signed-out")
    await page.type_into("#login-username", "alice")
    await page.click("#login-btn")
    await page.expect_success("Welcome back, alice")
    assert await page.visible("signed-in")

    print("3. the same key cannot be added twice")
    await page.click("#add-key-btn")
    await page.expect_error("InvalidStateError", "already registered")
    assert len(await page.keys()) == 1

    print("4. a second key, as a passkey")
    await cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": key_a})
    await add_authenticator(cdp)
    await page.click("#add-passkey")
    await page.click("#add-key-btn")
    await page.expect_success("Added another security key")
    keys = await page.keys()
    assert len(keys) == 2, keys
    assert "passkey" in keys[1]["badges"], keys

    print("5. sign out, sign in with the passkey (no username)")
    await page.click("#logout-btn")
    await page.expect_success("Signed out")
    await page.click("#passkey-btn")
    await page.expect_success("Welcome back, alice")

    print("6. rename a key")
    first = keys[0]["id"]
    await page.click(f"#keys li[data-id='{first}'] .rename-btn")
    await page.wait_for("!!document.querySelector('.rename-input')", what="the rename form")
    await page.type_into(".rename-input", "Blue key")
    await page.click(".save-btn")
    await page.expect_success("Renamed to “Blue key”")
    keys = await page.keys()
    assert keys[0]["name"] == "Blue key", keys

    print("7. remove a key")
    await page.click(f"#keys li[data-id='{first}'] .remove-btn")
    await page.wait_for("document.querySelector('.remove-btn').dataset.confirm === '1'", what="remove confirmation")
    await page.click(f"#keys li[data-id='{first}'] .remove-btn")
    await page.expect_success("Removed “Blue key”")
    keys = await page.keys()
    assert len(keys) == 1 and keys[0]["id"] != first, keys
    await page.wait_for("document.querySelectorAll('#activity li').length > 0", what="the activity list")
    shot = await page.screenshot()
    print(f"screenshot (signed in): {shot}")

    print("8. the last key cannot be removed; errors read as sentences")
    await page.click("#keys li .remove-btn")
    await page.click("#keys li .remove-btn")
    await page.expect_error("last_credential", "only security key")
    await page.click("#logout-btn")
    await page.expect_success("Signed out")
    # An unknown username is not revealed (CONTRACTS §2.1): a wrong password
    # and an unknown name read the same.
    await page.type_into("#pw-username", "nobody")
    await page.type_into("#pw-password", "some password here")
    await page.click("#pw-login-btn")
    await page.expect_error("invalid_credentials", "do not match")
    shot = await page.screenshot(page.screenshot_path.replace(".png", "-signed-out.png"))
    print(f"screenshot (error): {shot}")

    print("9. set up an authenticator app")
    await page.click("#passkey-btn")
    await page.expect_success("Welcome back, alice")
    await page.wait_for("!document.getElementById('totp-enroll-btn').hidden", what="the set-up button")
    await page.click("#totp-enroll-btn")
    await page.wait_for("!document.getElementById('totp-enroll').hidden && !document.body.classList.contains('busy')",
                        what="the enrollment panel")
    secret = await cdp.eval("document.getElementById('totp-secret').dataset.secret")
    shown = await cdp.eval("document.getElementById('totp-secret').textContent")
    assert secret and shown.replace(" ", "") == secret, (secret, shown)
    qr = await cdp.eval("document.getElementById('totp-qr').src")
    assert qr.startswith("data:image/svg+xml"), qr[:60]
    await page.wait_for("document.getElementById('totp-qr').complete"
                        " && document.getElementById('totp-qr').naturalWidth > 0", what="the QR image")
    code, confirm_step = totp(secret)
    await page.type_into("#totp-confirm-code", code)
    await page.click("#totp-confirm-btn")
    await page.expect_success("authenticator app is set up")
    codes = await cdp.eval("[...document.querySelectorAll('#recovery-codes li')].map(li => li.textContent)")
    assert len(codes) == 10, codes
    assert await page.visible("recovery-show")
    await page.wait_for("document.getElementById('recovery-state').dataset.remaining === '10'", what="10 codes left")
    shot = await page.screenshot(page.screenshot_path.replace(".png", "-recovery-codes.png"))
    print(f"screenshot (recovery codes): {shot}")
    await page.click("#recovery-done-btn")
    assert not await page.visible("recovery-show")
    await page.wait_for("!document.getElementById('totp-disable-btn').hidden", what="the app shown as on")

    print("10. no key at hand: sign in with a recovery code, once")
    await page.click("#logout-btn")
    await page.expect_success("Signed out")
    await page.type_into("#fallback-username", "alice")
    await page.type_into("#fallback-code", codes[0])
    await page.click("#recovery-login-btn")
    await page.expect_success("recovery code is now used up; you have 9 left")
    await page.wait_for("document.getElementById('recovery-state').dataset.remaining === '9'", what="9 codes left")
    await page.click("#logout-btn")
    await page.expect_success("Signed out")
    await page.type_into("#fallback-username", "alice")
    await page.type_into("#fallback-code", codes[0])
    await page.click("#recovery-login-btn")
    await page.expect_error("invalid_code", "did not work")

    print("11. sign in with an authenticator app code, once (waiting for the next 30-second step)")
    while totp(secret)[1] <= confirm_step:
        await asyncio.sleep(0.5)
    code, step11 = totp(secret)
    await page.type_into("#fallback-code", code)
    await page.click("#totp-login-btn")
    await page.expect_success("signed in with your authenticator app")
    assert await page.visible("signed-in")
    await page.click("#logout-btn")
    await page.expect_success("Signed out")
    await page.type_into("#fallback-username", "alice")
    await page.type_into("#fallback-code", code)
    await page.click("#totp-login-btn")
    await page.expect_error("invalid_code", "only once")
    shot = await page.screenshot(page.screenshot_path.replace(".png", "-fallback.png"))
    print(f"screenshot (fallback sign-in): {shot}")

    print("12. a code alone cannot change factors; with the passkey, set a password")
    while totp(secret)[1] <= step11:
        await asyncio.sleep(0.5)
    await page.type_into("#fallback-username", "alice")
    await page.type_into("#fallback-code", totp(secret)[0])
    await page.click("#totp-login-btn")
    await page.expect_success("signed in with your authenticator app")
    await page.type_into("#new-password", "correct horse battery staple")
    await page.click("#password-set-btn")
    await page.expect_error("reauthentication_required", "recent sign-in")
    await page.click("#logout-btn")
    await page.expect_success("Signed out")
    await page.click("#passkey-btn")
    await page.expect_success("Welcome back, alice")
    await page.type_into("#new-password", "password123")
    await page.click("#password-set-btn")
    await page.expect_error("password_too_common", "most common")
    await page.type_into("#new-password", "correct horse battery staple")
    await page.click("#password-set-btn")
    await page.expect_success("Your password is set")
    await page.wait_for("document.getElementById('password-state').dataset.set === 'true'", what="the password shown as set")
    used_step = totp(secret)[1]

    print("13. sign out; sign in with password + authenticator app code")
    await page.click("#logout-btn")
    await page.expect_success("Signed out")
    await page.type_into("#pw-username", "alice")
    await page.type_into("#pw-password", "wrong password!")
    await page.click("#pw-login-btn")
    await page.expect_error("invalid_credentials", "do not match")
    await page.type_into("#pw-password", "correct horse battery staple")
    await page.click("#pw-login-btn")
    await page.wait_for("!document.getElementById('second-step').hidden && !document.body.classList.contains('busy')",
                        what="the second-factor step")
    assert await page.visible("signed-out"), "a password alone must not sign in"
    while totp(secret)[1] <= used_step:
        await asyncio.sleep(0.5)
    await page.type_into("#second-code", totp(secret)[0])
    await page.click("#second-totp-btn")
    await page.expect_success("password and your authenticator app")
    assert await page.visible("signed-in")
    await page.wait_for("!!document.querySelector(\"#sessions li[data-current='true'][data-method='password+totp']\")",
                        what="this session listed as password+totp")

    print("14. sign out; sign in with password + security key")
    await page.click("#logout-btn")
    await page.expect_success("Signed out")
    await page.type_into("#pw-username", "alice")
    await page.type_into("#pw-password", "correct horse battery staple")
    await page.click("#pw-login-btn")
    await page.wait_for("!document.getElementById('second-step').hidden && !document.body.classList.contains('busy')",
                        what="the second-factor step")
    await page.click("#second-key-btn")
    await page.expect_success("password and security key")
    await page.wait_for("!!document.querySelector(\"#sessions li[data-current='true'][data-method='password+security_key']\")",
                        what="this session listed as password+security_key")
    shot = await page.screenshot(page.screenshot_path.replace(".png", "-password.png"))
    print(f"screenshot (password + key): {shot}")


@contextlib.asynccontextmanager
async def chromium_page(chromium, screenshot):
    """Headless Chromium on a fresh profile; yields (page, cdp) on its first
    tab. On failure keeps a screenshot at `screenshot` and prints the console."""
    profile = tempfile.mkdtemp(prefix="hwkey-chromium-")
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--window-size=1000,1400", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.monotonic() > deadline or browser.poll() is not None:
                raise RuntimeError("Chromium did not start (no DevToolsActivePort)")
            await asyncio.sleep(0.1)
        devtools_port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json/list", timeout=10))
        page_target = next(t for t in targets if t.get("type") == "page")
        async with websockets.connect(page_target["webSocketDebuggerUrl"], max_size=None) as ws:
            cdp = Cdp(ws)
            page = Page(cdp, screenshot)
            try:
                yield page, cdp
            except BaseException:
                try:
                    print(f"failure screenshot: {await page.screenshot(screenshot)}", file=sys.stderr)
                except Exception:
                    pass
                for line in cdp.console[-30:]:
                    print(f"console: {line}", file=sys.stderr)
                raise
            finally:
                cdp.reader.cancel()
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)


async def run(args):
    port = free_port()
    origin = f"http://localhost:{port}"
    server = subprocess.Popen(
        [args.server_bin, "--bind", f"127.0.0.1:{port}", "--origin", origin, "--rp-id", "localhost",
         "--database", "sqlite::memory:"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline().strip()
        assert line == f"listening on http://127.0.0.1:{port}", f"server said {line!r}"
        print(line)
        async with chromium_page(args.chromium, args.screenshot.replace(".png", "-failure.png")) as (page, cdp):
            page.screenshot_path = args.screenshot
            await scenario(page, cdp, origin + "/")
        print("browser end-to-end: all steps passed")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server-bin", default=os.environ.get("HWKEY_RP_SERVER_BIN", "target/debug/examples/rp_server"))
    ap.add_argument("--chromium", default=os.environ.get("HWKEY_CHROMIUM", shutil.which("chromium") or "chromium"))
    ap.add_argument("--screenshot", default=os.path.join(tempfile.gettempdir(), "hwkey-e2e.png"))
    args = ap.parse_args()
    try:
        asyncio.run(asyncio.wait_for(run(args), 240))
    except Exception as e:
        print(f"browser end-to-end FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
