// hwkey demo page: register and sign in with security keys and passkeys.
// Everything here talks only to this server (no external resources).
"use strict";

// ------------------------------------------------------------ plain sentences

const MESSAGES = {
  malformed_request: "The server could not read that request. Usernames are 1 to 64 characters.",
  challenge_mismatch: "Your security key answered a different request. Please try again.",
  challenge_expired: "That took too long and the request expired. Please try again.",
  no_pending_ceremony: "This request was already used or has expired. Please start again.",
  origin_mismatch: "This page's address is not one the server accepts. Open the demo at its configured address.",
  rp_id_mismatch: "The security key signed for a different site.",
  bad_signature: "The security key's signature could not be verified. Try again, or use another key.",
  counter_regression: "This security key's use counter went backwards, so it may have been copied. Sign-in was refused for your safety.",
  unknown_credential: "This security key is not registered here. Register it first, or use the key you registered with.",
  credential_excluded: "This security key is already registered to this account.",
  user_verification_required: "Your security key has to verify it is you (PIN or fingerprint). Set up a PIN on the key and try again.",
  user_presence_required: "The security key did not confirm a touch. Try again and touch it when it blinks.",
  username_taken: "That username is taken. Sign in as that user to add a key, or choose another name.",
  unknown_user: "There is no account with that username. Check the spelling, or create an account.",
  no_credentials: "That account has no security keys left.",
  last_credential: "This is your only security key. Add another one before removing it.",
  not_signed_in: "You are not signed in (the session may have ended). Please sign in again.",
  reauthentication_required: "For your safety, this needs a recent sign-in with your security key (or your password and a second factor). Sign out, sign in that way, then try once more.",
  credential_not_allowed: "That security key does not belong to this account.",
  credential_user_mismatch: "That security key belongs to a different account.",
  user_handle_mismatch: "That security key belongs to a different account.",
  user_handle_missing: "The security key did not say which account it belongs to. Sign in with your username instead.",
  payload_too_large: "The request was too large.",
  cross_site_request: "The request came from another site and was refused.",
  algorithm_not_allowed: "Your security key uses a kind of key this site does not accept.",
  attestation_untrusted: "This site only accepts certain models of security key, and this one is not among them.",
  attestation_not_trusted: "This site only accepts security key models it can verify (by the FIDO Alliance's metadata), and this one could not be verified.",
  authenticator_revoked: "This model of security key has a known security problem, so this site no longer accepts it. Use another key.",
  invalid_credential_key: "Your security key sent a public key that could never be checked, so it was not registered.",
  invalid_credential_id: "Your security key sent an empty credential ID, so it was not registered.",
  invalid_backup_flags: "The security key reported inconsistent backup information.",
  backup_eligibility_changed: "The key's backup status changed since it was registered, so it cannot be trusted.",
  storage_error: "The server is having trouble right now. Please try again in a moment.",
  storage_corrupt: "The server is having trouble right now. Please try again in a moment.",
  internal_error: "The server is having trouble right now. Please try again in a moment.",
  network_error: "The server could not be reached. Check your connection and try again.",
  unsupported: "This browser cannot use security keys here.",
  // Authenticator app and recovery codes.
  invalid_code: "That code did not work. Check the username and the code; each code works only once, so for an authenticator app wait for the next code.",
  code_replayed: "A code that had already been used was tried again.",
  too_many_attempts: "Too many wrong attempts for this username. Wait 15 minutes and try again, or sign in with your security key.",
  missing_code: "Type the code from your authenticator app, or one of your recovery codes.",
  no_pending_enrollment: "The authenticator app set-up expired or was already finished. Start it again.",
  totp_already_enabled: "An authenticator app is already set up. Turn it off first to set up another one.",
  totp_not_enabled: "No authenticator app is set up.",
  // Passwords and sessions.
  invalid_credentials: "That username and password do not match.",
  password_required: "This account has a password: sign in with your password first, then use the code to finish.",
  password_too_short: "Choose a password of at least 8 characters.",
  password_too_long: "Choose a password of at most 256 characters.",
  password_too_common: "That password is one of the most common ones, so it is guessed first. Choose another.",
  no_password: "This account has no password.",
  overloaded: "The server is busy right now. Please try again in a moment.",
  method_not_allowed: "The server does not support that action here.",
  not_found: "The server does not know that address.",
  // Browser errors (DOMException names).
  NotAllowedError: "The request was cancelled or timed out. Try again and touch your security key when it blinks.",
  InvalidStateError: "This security key is already registered to this account.",
  NotSupportedError: "Your security key cannot do what this site asked for (for example, store a passkey).",
  SecurityError: "The browser refused: this page's address does not match the site's settings.",
  AbortError: "Cancelled.",
  ConstraintError: "Your security key cannot verify you (no PIN or fingerprint set up).",
  UnknownError: "The security key reported an error. Unplug it, plug it back in, and try again.",
};

function sentence(code, fallback) {
  if (MESSAGES[code]) return MESSAGES[code];
  if (fallback) return "Something went wrong: " + fallback;
  return "Something went wrong (" + code + "). Please try again.";
}

// ------------------------------------------------------------ status line

const statusBox = () => document.getElementById("status");

function setStatus(state, text, code) {
  const box = statusBox();
  box.dataset.state = state;
  if (code) box.dataset.code = code; else delete box.dataset.code;
  document.getElementById("status-text").textContent = text;
}

function working(step, of, text) { setStatus("working", "Step " + step + " of " + of + ": " + text); }
function success(text) { setStatus("success", text); }
function failure(err) {
  // Server errors carry a code; browser errors are DOMExceptions, known by name
  // (their numeric `code` is a legacy field).
  const code = err instanceof ApiError ? err.code : (err && err.name) || "error";
  setStatus("error", sentence(code, err && err.message), code);
}

class ApiError extends Error {
  constructor(code, message) { super(message || code); this.code = code; }
}

// ------------------------------------------------------------ base64url and WebAuthn JSON

function b64uToBuf(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  const pad = b64.length % 4 === 0 ? "" : "=".repeat(4 - (b64.length % 4));
  const bin = atob(b64 + pad);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function bufToB64u(buf) {
  const bytes = new Uint8Array(buf);
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function descriptors(list) {
  return (list || []).map((d) => Object.assign({}, d, { id: b64uToBuf(d.id) }));
}

function parseCreation(json) {
  if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
    return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  }
  const o = Object.assign({}, json);
  o.challenge = b64uToBuf(json.challenge);
  o.user = Object.assign({}, json.user, { id: b64uToBuf(json.user.id) });
  o.excludeCredentials = descriptors(json.excludeCredentials);
  return o;
}

function parseRequest(json) {
  if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
    return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  }
  const o = Object.assign({}, json);
  o.challenge = b64uToBuf(json.challenge);
  o.allowCredentials = descriptors(json.allowCredentials);
  return o;
}

function credentialToJSON(cred) {
  if (typeof cred.toJSON === "function") {
    try { return cred.toJSON(); } catch (_) { /* fall back below */ }
  }
  const r = cred.response;
  const out = {
    id: cred.id,
    rawId: bufToB64u(cred.rawId),
    type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
    clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    response: { clientDataJSON: bufToB64u(r.clientDataJSON) },
  };
  if (r.attestationObject) {
    out.response.attestationObject = bufToB64u(r.attestationObject);
    if (r.getTransports) out.response.transports = r.getTransports();
    if (r.getAuthenticatorData) out.response.authenticatorData = bufToB64u(r.getAuthenticatorData());
    if (r.getPublicKeyAlgorithm) out.response.publicKeyAlgorithm = r.getPublicKeyAlgorithm();
    if (r.getPublicKey) {
      const pk = r.getPublicKey();
      if (pk) out.response.publicKey = bufToB64u(pk);
    }
  } else {
    out.response.authenticatorData = bufToB64u(r.authenticatorData);
    out.response.signature = bufToB64u(r.signature);
    if (r.userHandle && r.userHandle.byteLength) out.response.userHandle = bufToB64u(r.userHandle);
  }
  return out;
}

// ------------------------------------------------------------ server calls

async function api(method, path, body) {
  let resp;
  try {
    resp = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError("network_error", String(e));
  }
  let data = null;
  try { data = await resp.json(); } catch (_) { data = null; }
  if (!resp.ok) {
    const err = new ApiError((data && data.error) || "http_" + resp.status, data && data.message);
    err.data = data;
    throw err;
  }
  return data;
}

// ------------------------------------------------------------ WebAuthn Level 3: capabilities, autofill, signals

// What the browser says it can do (PublicKeyCredential.getClientCapabilities).
let capabilities = {};

async function loadCapabilities() {
  try {
    if (window.PublicKeyCredential && typeof PublicKeyCredential.getClientCapabilities === "function") {
      capabilities = (await PublicKeyCredential.getClientCapabilities()) || {};
    }
  } catch (_) { capabilities = {}; }
  document.body.dataset.capabilities = Object.keys(capabilities).filter((k) => capabilities[k]).join(" ");
}

// Requests the browser completes on its own time: passkey autofill (a
// conditional get, started while signed out, completed when the user picks a
// passkey from the username field's suggestions) and conditional create.
// Only one WebAuthn request may be pending, so every other ceremony stops
// the one in the background first.
let background = null;

async function stopBackground() {
  const b = background;
  if (!b) return;
  background = null;
  b.controller.abort();
  await b.done;
  document.body.dataset.background = "stopped";
}

async function startAutofill() {
  if (background || capabilities.conditionalGet === false) return;
  let available = false;
  try {
    available = typeof PublicKeyCredential.isConditionalMediationAvailable === "function" &&
      await PublicKeyCredential.isConditionalMediationAvailable();
  } catch (_) { available = false; }
  if (!available) return;
  const controller = new AbortController();
  const done = (async () => {
    const options = await api("POST", "/api/login/options", {});
    const cred = await navigator.credentials.get({
      publicKey: parseRequest(options), mediation: "conditional", signal: controller.signal,
    });
    if (!cred || controller.signal.aborted) return;
    background = null;
    await guarded(async () => {
      working(2, 2, "Checking your passkey…");
      let r;
      try {
        r = await api("POST", "/api/login/verify", credentialToJSON(cred));
      } catch (e) {
        signalIfUnknown(e);
        throw e;
      }
      success("Welcome back, " + r.username + "! You are signed in with a passkey.");
      await refresh();
    });
  })().catch(() => { /* aborted, or the browser declined */ });
  background = { controller, done };
  document.body.dataset.background = "autofill";
}

// The Signal API keeps the user's passkey managers in step with the server.
function signal(name, arg) {
  const f = window.PublicKeyCredential && PublicKeyCredential[name];
  if (typeof f !== "function") return;
  try { Promise.resolve(f.call(PublicKeyCredential, arg)).catch(() => {}); } catch (_) { /* unsupported */ }
}

// The server no longer knows this credential: the manager may hide it.
function signalIfUnknown(e) {
  if (e && e.code === "unknown_credential" && e.data && e.data.credentialId && e.data.rpId) {
    signal("signalUnknownCredential", { rpId: e.data.rpId, credentialId: e.data.credentialId });
  }
}

// After sign-in, a removal or a rename: the credentials and names in force.
function signalAccount(me) {
  if (!me || !me.rpId || !me.userHandle) return;
  signal("signalAllAcceptedCredentials", {
    rpId: me.rpId, userId: me.userHandle, allAcceptedCredentialIds: me.credentials.map((c) => c.id),
  });
  signal("signalCurrentUserDetails", {
    rpId: me.rpId, userId: me.userHandle, name: me.username, displayName: me.displayName || me.username,
  });
}

// After a password sign-in the browser may save a passkey without a dialog
// (conditional create); nothing is shown if it declines.
// Not awaited: the request may stay pending until the user acts elsewhere.
function offerPasskey(username) {
  if (background || !capabilities.conditionalCreate || !username) return;
  const controller = new AbortController();
  const done = (async () => {
    const options = await api("POST", "/api/register/options",
      { username, residentKey: "required", mediation: "conditional", hints: ["client-device"] });
    if (controller.signal.aborted) return;
    const cred = await navigator.credentials.create({
      publicKey: parseCreation(options), mediation: "conditional", signal: controller.signal,
    });
    if (!cred || controller.signal.aborted) return;
    background = null;
    const r = await api("POST", "/api/register/verify", credentialToJSON(cred));
    success("Your password manager saved a passkey for " + r.username + ": next time, sign in with it.");
    await refresh();
  })().catch(() => { /* declined, aborted or unsupported */ });
  background = { controller, done };
  document.body.dataset.background = "conditional-create";
}

// ------------------------------------------------------------ ceremonies

let busy = false;

async function guarded(fn) {
  if (busy) return;
  busy = true;
  document.body.classList.add("busy");
  try { await fn(); } catch (e) { failure(e); } finally {
    busy = false;
    document.body.classList.remove("busy");
  }
}

async function registerKey(username, passkey) {
  const steps = 3;
  working(1, steps, "Asking the server to start registration…");
  await stopBackground();
  const body = { username, hints: passkey ? ["client-device", "hybrid"] : ["security-key"] };
  if (passkey) body.residentKey = "required";
  const options = await api("POST", "/api/register/options", body);
  working(2, steps, "Touch your security key now (it may blink). If it asks for a PIN, enter it.");
  const cred = await navigator.credentials.create({ publicKey: parseCreation(options) });
  if (!cred) throw new ApiError("NotAllowedError");
  working(3, steps, "Checking your security key's answer…");
  const result = await api("POST", "/api/register/verify", credentialToJSON(cred));
  return result;
}

async function signIn(username) {
  const steps = 3;
  working(1, steps, username ? "Looking up " + username + "…" : "Asking the server to start sign-in…");
  await stopBackground();
  const body = username ? { username } : { hints: ["client-device", "hybrid"] };
  const options = await api("POST", "/api/login/options", body);
  working(2, steps, username
    ? "Touch your security key now (it may blink)."
    : "Choose your passkey, then touch your security key.");
  const cred = await navigator.credentials.get({ publicKey: parseRequest(options) });
  if (!cred) throw new ApiError("NotAllowedError");
  working(3, steps, "Checking your security key's answer…");
  try {
    return await api("POST", "/api/login/verify", credentialToJSON(cred));
  } catch (e) {
    signalIfUnknown(e);
    throw e;
  }
}

// " (YubiKey 5 Series)" when the server knows the authenticator.
function authenticatorName(r) {
  return r && r.authenticator && r.authenticator.name ? " (" + r.authenticator.name + ")" : "";
}

// ------------------------------------------------------------ account view

function fmtTime(ms) {
  if (ms === null || ms === undefined) return "never";
  return new Date(ms).toLocaleString();
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

function renderKeys(creds) {
  const list = document.getElementById("keys");
  list.replaceChildren();
  for (const c of creds) {
    const name = el("span", { class: "nickname" }, c.nickname);
    const badges = el("span", { class: "badges" });
    if (c.discoverable) badges.append(el("span", { class: "badge" }, "passkey"));
    if (c.backedUp) badges.append(el("span", { class: "badge" }, "synced"));
    const meta = el("div", { class: "meta" },
      "Added " + fmtTime(c.createdAt) + " · last used " + fmtTime(c.lastUsedAt) + " · used " + c.signCount + " times");
    const rename = el("button", { type: "button", class: "secondary rename-btn" }, "Rename");
    const remove = el("button", { type: "button", class: "danger remove-btn" }, "Remove");
    const li = el("li", { "data-id": c.id }, el("div", { class: "row" }, name, badges), meta,
      el("div", { class: "actions" }, rename, remove));
    rename.addEventListener("click", () => startRename(li, c));
    remove.addEventListener("click", () => {
      if (remove.dataset.confirm !== "1") {
        remove.dataset.confirm = "1";
        remove.textContent = "Click again to remove";
        setStatus("idle", "Click “Click again to remove” to remove “" + c.nickname + "”.");
        return;
      }
      guarded(async () => {
        working(1, 1, "Removing “" + c.nickname + "”…");
        await api("DELETE", "/api/credentials/" + c.id);
        success("Removed “" + c.nickname + "”.");
        await refresh();
      });
    });
    list.append(li);
  }
}

function startRename(li, c) {
  const input = el("input", { class: "rename-input", value: c.nickname, maxLength: 64 });
  const save = el("button", { type: "submit", class: "save-btn" }, "Save");
  const cancel = el("button", { type: "button", class: "secondary" }, "Cancel");
  const form = el("form", { class: "rename-form" }, input, save, cancel);
  const actions = li.querySelector(".actions");
  actions.replaceChildren(form);
  input.focus();
  setStatus("idle", "Type a new name for this key, then Save.");
  cancel.addEventListener("click", () => refresh());
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const nickname = input.value.trim();
      working(1, 1, "Renaming…");
      await api("PATCH", "/api/credentials/" + c.id, { nickname });
      success("Renamed to “" + nickname + "”.");
      await refresh();
    });
  });
}

function renderActivity(events) {
  const list = document.getElementById("activity");
  list.replaceChildren();
  const names = {
    registration: "Security key registered",
    registration_failed: "Registration failed",
    sign_in: "Signed in",
    sign_in_failed: "Sign-in failed",
    counter_regression: "Possible cloned key detected",
    credential_renamed: "Key renamed",
    credential_removed: "Key removed",
    sign_out: "Signed out",
    totp_enrollment_started: "Authenticator app set-up started",
    totp_enabled: "Authenticator app turned on",
    totp_disabled: "Authenticator app turned off",
    recovery_codes_generated: "New recovery codes made",
    recovery_code_used: "Recovery code used",
    password_changed: "Password set, changed or removed",
  };
  for (const e of events) {
    let text = fmtTime(e.at) + " — " + (names[e.event] || e.event);
    if (e.code) text += ": " + sentence(e.code);
    list.append(el("li", { class: e.code ? "bad" : "" }, text));
  }
}

const METHOD_NAMES = {
  "security_key": "security key",
  "password+security_key": "password and security key",
  "password+totp": "password and authenticator app",
  "password+recovery_code": "password and recovery code",
  "totp": "authenticator app code only",
  "recovery_code": "recovery code only",
};

async function refreshSessions() {
  let r;
  try { r = await api("GET", "/api/sessions"); } catch (_) { return; }
  const list = document.getElementById("sessions");
  list.replaceChildren(...r.sessions.map((s) => {
    const li = el("li", { "data-method": s.method, "data-current": String(s.current) },
      el("span", {}, (s.current ? "This browser" : "Another browser") + " · signed in with " +
        (METHOD_NAMES[s.method] || s.method) + " · " + fmtTime(s.createdAt) + " · last seen " + fmtTime(s.lastSeenAt)));
    if (!s.current) {
      const end = el("button", { type: "button", class: "secondary" }, "Sign it out");
      end.addEventListener("click", () => guarded(async () => {
        await api("DELETE", "/api/sessions/" + s.id);
        success("That session is signed out.");
        await refresh();
      }));
      li.append(end);
    }
    return li;
  }));
}

async function refresh() {
  let me = null;
  try {
    me = await api("GET", "/api/me");
  } catch (e) {
    if (e.code !== "not_signed_in") throw e;
  }
  document.getElementById("signed-out").hidden = !!me;
  document.getElementById("signed-in").hidden = !me;
  if (me) {
    document.getElementById("whoami").textContent = me.username;
    renderKeys(me.credentials);
    signalAccount(me);
    await refreshOtp();
    await refreshSessions();
    try {
      renderActivity((await api("GET", "/api/me/activity")).events);
    } catch (_) { /* activity is optional */ }
  }
  return me;
}

// ------------------------------------------------------------ authenticator app and recovery codes

async function refreshOtp() {
  let st;
  try {
    st = await api("GET", "/api/otp");
  } catch (_) {
    document.getElementById("totp-state").textContent = "Could not load the authenticator app settings.";
    return;
  }
  const t = st.totp;
  const enrolling = !document.getElementById("totp-enroll").hidden;
  document.getElementById("totp-state").textContent = t.enabled
    ? "On since " + fmtTime(t.enabledAt) + " · last used to sign in " + fmtTime(t.lastUsedAt) + "."
    : "Not set up. With an authenticator app on your phone you can sign in when your key is not at hand.";
  document.getElementById("totp-enroll-btn").hidden = t.enabled || enrolling;
  document.getElementById("totp-disable-btn").hidden = !t.enabled;
  const pw = document.getElementById("password-state");
  pw.dataset.set = String(!!st.passwordSet);
  pw.textContent = st.passwordSet
    ? "A password is set. Signing in with it always takes a second factor too."
    : "No password. You can add one as a knowledge factor; it never signs you in by itself.";
  document.getElementById("password-set-btn").textContent = st.passwordSet ? "Change password" : "Set password";
  document.getElementById("password-remove-btn").hidden = !st.passwordSet;
  const n = st.recoveryCodesRemaining;
  const state = document.getElementById("recovery-state");
  state.dataset.remaining = String(n);
  state.textContent = n === 0
    ? "You have no recovery codes. Make some, so you can get in if you lose your key and phone."
    : "You have " + n + " unused recovery code" + (n === 1 ? "" : "s") + "." + (n <= 3 ? " Make new ones soon." : "");
}

function showRecoveryCodes(codes) {
  const list = document.getElementById("recovery-codes");
  list.replaceChildren(...codes.map((c) => el("li", {}, c)));
  document.getElementById("recovery-show").hidden = false;
}

function hideEnrollment() {
  document.getElementById("totp-enroll").hidden = true;
  document.getElementById("totp-qr").removeAttribute("src");
  document.getElementById("totp-secret").textContent = "";
  document.getElementById("totp-confirm-code").value = "";
}

async function fallbackSignIn(kind) {
  const username = document.getElementById("fallback-username").value.trim();
  const code = document.getElementById("fallback-code").value.trim();
  if (!username) throw new ApiError("malformed_request", "Enter your username.");
  if (!code) throw new ApiError("missing_code");
  working(1, 1, kind === "totp" ? "Checking your authenticator app code…" : "Checking your recovery code…");
  const r = await api("POST", kind === "totp" ? "/api/login/totp" : "/api/login/recovery", { username, code });
  document.getElementById("fallback-code").value = "";
  if (kind === "totp") {
    success("Welcome back, " + r.username + "! You are signed in with your authenticator app.");
  } else {
    const n = r.recoveryCodesRemaining;
    success("Welcome back, " + r.username + "! That recovery code is now used up; you have " + n +
      " left." + (n <= 3 ? " Make new ones below." : ""));
  }
  await refresh();
}

function showSecondStep(on) {
  document.getElementById("second-step").hidden = !on;
  document.getElementById("password-login-form").hidden = on;
}

async function finishWithCode(kind) {
  const code = document.getElementById("second-code").value.trim();
  if (!code) throw new ApiError("missing_code");
  working(2, 2, kind === "totp" ? "Checking your authenticator app code…" : "Checking your recovery code…");
  const r = await api("POST", kind === "totp" ? "/api/login/totp" : "/api/login/recovery", { code });
  document.getElementById("second-code").value = "";
  showSecondStep(false);
  success("Welcome back, " + r.username + "! You are signed in with your password and " +
    (kind === "totp" ? "your authenticator app." : "a recovery code."));
  await refresh();
  offerPasskey(r.username);
}

function initPassword() {
  document.getElementById("password-login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const username = document.getElementById("pw-username").value.trim();
      const password = document.getElementById("pw-password").value;
      if (!username || !password) throw new ApiError("malformed_request", "Enter your username and password.");
      working(1, 2, "Checking your password…");
      await api("POST", "/api/login/password", { username, password });
      document.getElementById("pw-password").value = "";
      showSecondStep(true);
      setStatus("idle", "Step 2 of 2: your password is right. Now use your security key, or type a code.");
    });
  });
  document.getElementById("second-key-btn").addEventListener("click", () => guarded(async () => {
    const username = document.getElementById("pw-username").value.trim();
    const r = await signIn(username);
    showSecondStep(false);
    success("Welcome back, " + r.username + "! You are signed in with your password and security key.");
    await refresh();
    offerPasskey(r.username);
  }));
  document.getElementById("second-code-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const kind = ev.submitter && ev.submitter.id === "second-recovery-btn" ? "recovery" : "totp";
    guarded(() => finishWithCode(kind));
  });
  document.getElementById("password-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const password = document.getElementById("new-password").value;
      working(1, 1, "Saving your password…");
      await api("POST", "/api/account/password", { password });
      document.getElementById("new-password").value = "";
      success("Your password is set. Your other sessions were signed out.");
      await refresh();
    });
  });
  document.getElementById("password-remove-btn").addEventListener("click", () => guarded(async () => {
    working(1, 1, "Removing your password…");
    await api("DELETE", "/api/account/password");
    success("Your password is removed. Your other sessions were signed out.");
    await refresh();
  }));
}

function initOtp() {
  document.getElementById("fallback-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const kind = ev.submitter && ev.submitter.id === "recovery-login-btn" ? "recovery" : "totp";
    guarded(() => fallbackSignIn(kind));
  });

  document.getElementById("totp-enroll-btn").addEventListener("click", () => guarded(async () => {
    working(1, 2, "Making a new secret for your authenticator app…");
    const r = await api("POST", "/api/otp/totp/enroll", {});
    document.getElementById("totp-qr").src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(r.qrSvg);
    document.getElementById("totp-secret").textContent = r.secret.replace(/(.{4})(?=.)/g, "$1 ");
    document.getElementById("totp-secret").dataset.secret = r.secret;
    document.getElementById("totp-enroll").hidden = false;
    document.getElementById("totp-enroll-btn").hidden = true;
    document.getElementById("totp-confirm-code").focus();
    setStatus("idle", "Step 2 of 2: scan the QR code (or type the key), then type the code the app shows and Confirm.");
  }));

  document.getElementById("totp-confirm-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const code = document.getElementById("totp-confirm-code").value.trim();
      if (!code) throw new ApiError("missing_code");
      working(2, 2, "Checking the code…");
      const r = await api("POST", "/api/otp/totp/confirm", { code });
      hideEnrollment();
      showRecoveryCodes(r.recoveryCodes);
      success("Your authenticator app is set up. Save the recovery codes below now: they are shown only once.");
      await refresh();
    });
  });

  document.getElementById("totp-cancel-btn").addEventListener("click", () => {
    hideEnrollment();
    setStatus("idle", "Authenticator app set-up cancelled.");
    guarded(refresh);
  });

  const disable = document.getElementById("totp-disable-btn");
  disable.addEventListener("click", () => {
    if (disable.dataset.confirm !== "1") {
      disable.dataset.confirm = "1";
      disable.textContent = "Click again to turn it off";
      setStatus("idle", "Click “Click again to turn it off” to stop signing in with your authenticator app.");
      return;
    }
    guarded(async () => {
      delete disable.dataset.confirm;
      disable.textContent = "Turn off the authenticator app";
      working(1, 1, "Turning off the authenticator app…");
      await api("DELETE", "/api/otp/totp");
      success("The authenticator app is turned off. Your recovery codes still work.");
      await refresh();
    });
  });

  document.getElementById("recovery-regenerate-btn").addEventListener("click", () => guarded(async () => {
    working(1, 1, "Making new recovery codes…");
    const r = await api("POST", "/api/otp/recovery/regenerate", {});
    showRecoveryCodes(r.recoveryCodes);
    success("New recovery codes are ready; the old ones no longer work. Save these now: they are shown only once.");
    await refresh();
  }));

  document.getElementById("recovery-done-btn").addEventListener("click", () => {
    document.getElementById("recovery-show").hidden = true;
    document.getElementById("recovery-codes").replaceChildren();
    setStatus("idle", "Recovery codes hidden. Keep them safe.");
  });
}

// ------------------------------------------------------------ wiring

function init() {
  if (!window.PublicKeyCredential || !navigator.credentials || !window.isSecureContext) {
    document.getElementById("unsupported").hidden = false;
    setStatus("error", sentence("unsupported"), "unsupported");
  }

  document.getElementById("register-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const username = document.getElementById("reg-username").value.trim();
      if (!username) throw new ApiError("malformed_request", "Enter a username first.");
      const passkey = document.getElementById("reg-passkey").checked;
      const r = await registerKey(username, passkey);
      success("Registered! Your security key" + authenticatorName(r) + " now signs you in as " + r.username + ".");
      await refresh();
    });
  });

  document.getElementById("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const username = document.getElementById("login-username").value.trim();
      if (!username) throw new ApiError("malformed_request", "Enter your username, or use “Sign in with a passkey”.");
      const r = await signIn(username);
      success("Welcome back, " + r.username + "! You are signed in.");
      await refresh();
    });
  });

  document.getElementById("passkey-btn").addEventListener("click", () => guarded(async () => {
    const r = await signIn(null);
    success("Welcome back, " + r.username + "! You are signed in with a passkey.");
    await refresh();
  }));

  document.getElementById("add-key-btn").addEventListener("click", () => guarded(async () => {
    const username = document.getElementById("whoami").textContent;
    const passkey = document.getElementById("add-passkey").checked;
    const r = await registerKey(username, passkey);
    success("Added another security key" + authenticatorName(r) + " to " + username + ".");
    await refresh();
  }));

  initOtp();
  initPassword();

  document.getElementById("logout-btn").addEventListener("click", () => guarded(async () => {
    working(1, 1, "Signing out…");
    await stopBackground();
    hideEnrollment();
    document.getElementById("recovery-show").hidden = true;
    document.getElementById("recovery-codes").replaceChildren();
    await api("POST", "/api/logout", {});
    success("Signed out.");
    await refresh();
    startAutofill();
  }));

  guarded(async () => {
    await loadCapabilities();
    const me = await refresh();
    if (statusBox().dataset.state === "idle" || statusBox().dataset.state === "working") {
      setStatus("idle", me ? "Signed in as " + me.username + "." : "Create an account, or sign in.");
    }
    if (!me) startAutofill();
  });
}

document.addEventListener("DOMContentLoaded", init);
