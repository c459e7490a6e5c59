//! The PAM authentication decision of `pam_hwkey` (CONTRACTS §4), as pam-u2f
//! makes it, in safe Rust and without PAM: the shim in `pam/` gathers the
//! user, the conversation and the module arguments and calls [`authenticate`].
//!
//! 1. Module arguments ([`PamOptions::parse`]), pam-u2f's names.
//! 2. The authfile: `authfile=` (absolute, or relative to the user's home),
//!    default `~/.config/Yubico/u2f_keys`; opened without blocking, refused
//!    when not a regular file, owned by someone else than the user or root,
//!    or writable by group or others ([`super::authfile::read_authfile`]).
//! 3. No file, or no line for the user: `PAM_IGNORE` with `nouserok`, else
//!    `PAM_AUTHINFO_UNAVAIL` (no file) or `PAM_USER_UNKNOWN` (no line), as
//!    pam-u2f does. Any other problem with the file is an error whatever
//!    `nouserok` says (pam-u2f's CVE-2025-23013 was the opposite).
//! 4. Devices are opened with a short deadline; when none answers the answer
//!    is `PAM_AUTHINFO_UNAVAIL`.
//! 5. Silent pre-flight: each credential is looked up on each device with
//!    `up = false` (CTAP2) or check-only (U2F), so that the user is asked to
//!    touch only a key that holds one (pam-u2f #247). `nodetect` skips it.
//! 6. The assertion: a fresh random clientDataHash, the options of the line
//!    and of the module (`userpresence`, `userverification`,
//!    `pinverification`), the PIN asked through the conversation, the touch
//!    cue once. It is verified here: RP ID hash, UP/UV flags as required,
//!    the credential ID, the signature by the authfile's public key.
//! 7. `PAM_SUCCESS` on the first verified assertion, else `PAM_AUTH_ERR`.
//!
//! Everything is bounded by `timeout=` (hwkey's addition, default 30 s).

use super::authfile::{self, AuthfileError, Credential, KeyHandle};
use super::devices::{DeviceSource, Specs};
use crate::client::pin::permissions;
use crate::client::{ClientError, Device, Op};
use crate::crypto::{CryptoProvider, default_provider};
use crate::proto::auth_data::AuthenticatorData;
use crate::proto::ctap2::PublicKeyCredentialDescriptor;
use crate::proto::ctap2::get_assertion::{GetAssertionRequest, GetAssertionResponse};
use crate::proto::ctap2::make_credential::CommandOptions;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The PAM return codes the module uses (Linux-PAM's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum PamCode {
    /// `PAM_SUCCESS`.
    Success = 0,
    /// `PAM_SERVICE_ERR`: the module is misconfigured.
    ServiceErr = 3,
    /// `PAM_SYSTEM_ERR`.
    SystemErr = 4,
    /// `PAM_AUTH_ERR`: the key did not authenticate the user.
    AuthErr = 7,
    /// `PAM_AUTHINFO_UNAVAIL`: no device answered, or the authfile is unusable.
    AuthInfoUnavail = 9,
    /// `PAM_USER_UNKNOWN`: the user has no line in the authfile.
    UserUnknown = 10,
    /// `PAM_CONV_ERR`.
    ConvErr = 19,
    /// `PAM_IGNORE`: `nouserok` and the user has no key.
    Ignore = 25,
}

impl PamCode {
    /// The numeric value.
    pub fn value(self) -> i32 {
        self as i32
    }
    /// A stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            PamCode::Success => "success",
            PamCode::ServiceErr => "service_error",
            PamCode::SystemErr => "system_error",
            PamCode::AuthErr => "auth_error",
            PamCode::AuthInfoUnavail => "authinfo_unavailable",
            PamCode::UserUnknown => "user_unknown",
            PamCode::ConvErr => "conversation_error",
            PamCode::Ignore => "ignore",
        }
    }
}

/// The default touch cue (pam-u2f's).
pub const DEFAULT_CUE: &str = "Please touch the device.";
/// The PIN prompt (pam-u2f's).
pub const PIN_PROMPT: &str = "Please enter the PIN: ";
/// The default overall timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The module arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamOptions {
    /// `authfile=`.
    pub authfile: Option<String>,
    /// `expand`: `%u` and `%%` in `authfile`.
    pub expand: bool,
    /// `origin=` (RP ID of new-format credentials).
    pub origin: Option<String>,
    /// `appid=` (RP ID of old-format credentials).
    pub appid: Option<String>,
    /// `cue`.
    pub cue: bool,
    /// `cue_prompt=`.
    pub cue_prompt: Option<String>,
    /// `nouserok`.
    pub nouserok: bool,
    /// `userpresence=0|1` (absent: the line's `+presence`, else the key's default).
    pub userpresence: Option<bool>,
    /// `userverification=0|1`.
    pub userverification: Option<bool>,
    /// `pinverification=0|1`.
    pub pinverification: Option<bool>,
    /// `debug`.
    pub debug: bool,
    /// `debug_file=stderr`: debug messages to stderr as well as syslog
    /// (other `debug_file` values are not supported).
    pub debug_stderr: bool,
    /// `device=SPEC[,SPEC...]` (default: every FIDO HID device).
    pub devices: Specs,
    /// `max_devices=` (keys per user; default 24).
    pub max_devices: usize,
    /// `nodetect`: no silent pre-flight.
    pub nodetect: bool,
    /// `timeout=SECONDS` (hwkey): the whole authentication.
    pub timeout: Duration,
}

impl Default for PamOptions {
    fn default() -> Self {
        PamOptions {
            authfile: None,
            expand: false,
            origin: None,
            appid: None,
            cue: false,
            cue_prompt: None,
            nouserok: false,
            userpresence: None,
            userverification: None,
            pinverification: None,
            debug: false,
            debug_stderr: false,
            devices: Specs::default(),
            max_devices: authfile::DEFAULT_MAX_DEVICES,
            nodetect: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// pam-u2f options hwkey knows and deliberately does not implement.
pub const UNSUPPORTED_OPTIONS: &[&str] =
    &["authpending_file", "openasuser", "alwaysok", "interactive", "prompt", "manual", "sshformat", "conf"];

impl PamOptions {
    /// Parse module arguments. Returns the options and one message per
    /// argument that was not understood (unknown, unsupported or a bad value);
    /// such arguments are ignored. A `device=` that does not parse is an
    /// error (the administrator named a device; using others would surprise).
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<(Self, Vec<String>), String> {
        let mut o = PamOptions::default();
        let mut warnings = Vec::new();
        for arg in args {
            let a = arg.as_ref();
            // `[cue_prompt=Touch it]`: PAM keeps spaces inside brackets.
            let a = a.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(a);
            let (k, v) = match a.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (a, None),
            };
            let flag01 = |v: Option<&str>| match v {
                Some("1") => Some(Some(true)),
                Some("0") => Some(Some(false)),
                _ => None,
            };
            match (k, v) {
                ("authfile", Some(v)) => o.authfile = Some(v.to_owned()),
                ("expand", None) => o.expand = true,
                ("origin", Some(v)) if !v.is_empty() => o.origin = Some(v.to_owned()),
                ("appid", Some(v)) if !v.is_empty() => o.appid = Some(v.to_owned()),
                ("cue", None) => o.cue = true,
                ("cue_prompt", Some(v)) => o.cue_prompt = Some(v.to_owned()),
                ("nouserok", None) => o.nouserok = true,
                ("debug", None) => o.debug = true,
                ("debug_file", Some("stderr")) => o.debug_stderr = true,
                ("debug_file", Some("syslog")) => {}
                ("debug_file", Some(v)) => {
                    warnings.push(format!("debug_file={v}: only stderr and syslog are supported"))
                }
                ("nodetect", None) => o.nodetect = true,
                ("userpresence", v) if flag01(v).is_some() => o.userpresence = flag01(v).flatten(),
                ("userverification", v) if flag01(v).is_some() => o.userverification = flag01(v).flatten(),
                ("pinverification", v) if flag01(v).is_some() => o.pinverification = flag01(v).flatten(),
                ("device", Some(v)) => o.devices = Specs::parse(v).map_err(|e| format!("device={v}: {e}"))?,
                ("max_devices", Some(v)) => match v.parse::<usize>() {
                    Ok(n) if n > 0 && n <= 256 => o.max_devices = n,
                    _ => warnings.push(format!("max_devices={v}: not a number from 1 to 256, ignored")),
                },
                ("timeout", Some(v)) => match v.parse::<u64>() {
                    Ok(n) if n > 0 && n <= 600 => o.timeout = Duration::from_secs(n),
                    _ => warnings.push(format!("timeout={v}: not a number of seconds from 1 to 600, ignored")),
                },
                (k, _) if UNSUPPORTED_OPTIONS.contains(&k) => {
                    warnings.push(format!("option {k} is not supported by pam_hwkey, ignored"))
                }
                _ => warnings.push(format!("unknown or malformed option {a:?}, ignored")),
            }
        }
        Ok((o, warnings))
    }
}

/// The user logging in, as the shim looked it up (getpwnam).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`PAM_USER`).
    pub name: String,
    /// The user's uid.
    pub uid: u32,
    /// The home directory (absolute).
    pub home: PathBuf,
}

/// The PAM conversation, as the decision needs it.
pub trait Conversation {
    /// Ask for a secret without echo; `None` when the application cannot answer.
    fn prompt_secret(&mut self, prompt: &str) -> Option<Zeroizing<String>>;
    /// Show an informational message.
    fn info(&mut self, message: &str);
}

/// Everything [`authenticate`] needs from its caller.
pub struct Request<'a> {
    /// The module arguments.
    pub options: &'a PamOptions,
    /// The user.
    pub user: &'a UserInfo,
    /// The host name (the default origin is `pam://` + it).
    pub hostname: &'a str,
    /// The conversation.
    pub conv: &'a mut dyn Conversation,
    /// Where devices come from.
    pub devices: &'a dyn DeviceSource,
    /// Debug messages (only called with `debug`, and for warnings an
    /// administrator must see: an unusable authfile).
    pub log: &'a dyn Fn(LogLevel, &str),
}

/// How important a log message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Only with `debug`.
    Debug,
    /// Always (syslog warning).
    Warning,
}

/// Expand `%u` and `%%` in an authfile path (`expand`).
pub fn expand_path(path: &str, user: &str) -> Result<String, String> {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => out.push_str(user),
            Some('%') => out.push('%'),
            other => return Err(format!("unknown expansion %{}", other.map(String::from).unwrap_or_default())),
        }
    }
    Ok(out)
}

/// The authfile path for `user` under `options`.
pub fn authfile_path(options: &PamOptions, user: &UserInfo) -> Result<PathBuf, String> {
    let Some(f) = &options.authfile else {
        return Ok(user.home.join(".config/Yubico/u2f_keys"));
    };
    let f = if options.expand { expand_path(f, &user.name)? } else { f.clone() };
    if f.is_empty() {
        return Err("authfile= is empty".into());
    }
    let p = PathBuf::from(&f);
    Ok(if p.is_absolute() { p } else { user.home.join(p) })
}

/// What one credential requires of an assertion, after the module options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirements {
    /// `up`: `Some(true)` required (and checked), `Some(false)` not asked,
    /// `None` left to the key (asked by default, not checked).
    pub up: Option<bool>,
    /// `uv` likewise (built-in verification).
    pub uv: Option<bool>,
    /// The PIN is required.
    pub pin: bool,
}

impl Requirements {
    /// pam-u2f's rule: a module option `=1` or the line's option turns it
    /// on; a module option `=0` turns it off; else the key decides.
    pub fn of(options: &PamOptions, c: &Credential) -> Self {
        let pick = |module: Option<bool>, line: bool| match (module, line) {
            (Some(true), _) | (_, true) => Some(true),
            (Some(false), false) => Some(false),
            (None, false) => None,
        };
        Requirements {
            up: pick(options.userpresence, c.options.presence),
            uv: pick(options.userverification, c.options.verification),
            pin: pick(options.pinverification, c.options.pin) == Some(true),
        }
    }
}

fn rp_for<'a>(c: &Credential, origin: &'a str, appid: &'a str) -> &'a str {
    if c.old_format { appid } else { origin }
}

/// Does `dev` hold credential `c` under `rp`? `Ok(false)` when the device
/// answered no; `Err` when it did not answer properly.
fn preflight(dev: &mut Device, c: &Credential, rp: &str, needs_uv: bool, op: &Op) -> Result<bool, ClientError> {
    let provider = default_provider();
    match &c.key_handle {
        KeyHandle::Resident if !dev.is_ctap2() || dev.option("rk") != Some(true) => Ok(false),
        KeyHandle::Resident => {
            // A discoverable credential of the RP, found without user presence.
            // One that needs UV (credProtect 3) hides here: then try the key anyway.
            let req = GetAssertionRequest {
                rp_id: rp.to_owned(),
                client_data_hash: provider.random_bytes(32).map_err(|e| ClientError::Malformed(e.to_string()))?,
                options: Some(CommandOptions { up: Some(false), ..Default::default() }),
                ..Default::default()
            };
            match dev.get_assertion(&req, op) {
                Ok(_) => Ok(true),
                Err(ClientError::NoCredentials) => Ok(needs_uv),
                Err(e @ (ClientError::Hid(_) | ClientError::Timeout | ClientError::Cancelled)) => Err(e),
                Err(_) => Ok(true),
            }
        }
        KeyHandle::Id(id) if dev.is_ctap2() => {
            let req = GetAssertionRequest {
                rp_id: rp.to_owned(),
                client_data_hash: provider.random_bytes(32).map_err(|e| ClientError::Malformed(e.to_string()))?,
                allow_list: Some(vec![PublicKeyCredentialDescriptor::public_key(id.clone())]),
                options: Some(CommandOptions { up: Some(false), ..Default::default() }),
                ..Default::default()
            };
            match dev.get_assertion(&req, op) {
                Ok(_) => Ok(true),
                Err(ClientError::NoCredentials) => Ok(false),
                // Some keys refuse up=false for a credential they hold.
                Err(ClientError::Status(crate::proto::ctap2::CtapStatus::UnsupportedOption)) => Ok(true),
                Err(e @ (ClientError::Hid(_) | ClientError::Timeout | ClientError::Cancelled)) => Err(e),
                Err(_) => Ok(false),
            }
        }
        KeyHandle::Id(id) => dev.u2f_check(&provider.sha256(&[rp.as_bytes()]), id, op),
    }
}

/// Whether the device can satisfy the requirements (pam-u2f's
/// `match_device_opts`), and the `uv` option to send.
fn device_fits(dev: &Device, r: &Requirements) -> Option<Option<bool>> {
    if r.pin && dev.option("clientPin") != Some(true) {
        return None;
    }
    if r.uv == Some(true) && dev.option("uv") != Some(true) {
        return None;
    }
    if !dev.is_ctap2() {
        // U2F: presence only.
        return if r.pin || r.uv == Some(true) || r.up == Some(false) { None } else { Some(None) };
    }
    match r.uv {
        Some(false) if dev.option("uv").is_none() => Some(None),
        uv => Some(uv),
    }
}

/// Verify one assertion against the credential.
pub fn verify_assertion(
    provider: &dyn CryptoProvider,
    c: &Credential,
    rp: &str,
    client_data_hash: &[u8],
    r: &Requirements,
    resp: &GetAssertionResponse,
) -> Result<(), &'static str> {
    let ad = AuthenticatorData::parse(&resp.auth_data).map_err(|_| "malformed authenticator data")?;
    if ad.rp_id_hash != provider.sha256(&[rp.as_bytes()]) {
        return Err("RP ID hash mismatch");
    }
    if r.up == Some(true) && !ad.flags.up() {
        return Err("user presence required but not asserted");
    }
    if (r.pin || r.uv == Some(true)) && !ad.flags.uv() {
        return Err("user verification required but not asserted");
    }
    if let (KeyHandle::Id(id), Some(got)) = (&c.key_handle, &resp.credential)
        && &got.id != id
    {
        return Err("the key answered for another credential");
    }
    let key = c.cose_key()?;
    let mut msg = resp.auth_data.clone();
    msg.extend_from_slice(client_data_hash);
    crate::crypto::cose_verify::verify(provider, &key, &msg, &resp.signature).map_err(|_| "bad signature")
}

struct Ctx<'a, 'b> {
    req: &'a mut Request<'b>,
    cued: bool,
}

impl Ctx<'_, '_> {
    fn debug(&self, m: &str) {
        if self.req.options.debug {
            (self.req.log)(LogLevel::Debug, m);
        }
    }
    fn warn(&self, m: &str) {
        (self.req.log)(LogLevel::Warning, m);
    }
    fn cue(&mut self) {
        if self.req.options.cue && !self.cued {
            self.cued = true;
            let p = self.req.options.cue_prompt.clone().unwrap_or_else(|| DEFAULT_CUE.to_owned());
            self.req.conv.info(&p);
        }
    }
}

/// One attempt on one device: Ok(true) verified, Ok(false) refused.
fn attempt(
    ctx: &mut Ctx<'_, '_>,
    dev: &mut Device,
    c: &Credential,
    rp: &str,
    r: &Requirements,
    uv_opt: Option<bool>,
    op: &Op,
) -> Result<bool, ClientError> {
    let provider = default_provider();
    let cdh = provider.random_bytes(32).map_err(|e| ClientError::Malformed(e.to_string()))?;
    if !dev.is_ctap2() {
        let KeyHandle::Id(id) = &c.key_handle else { return Ok(false) };
        let mut ch = [0u8; 32];
        ch.copy_from_slice(&cdh);
        ctx.cue();
        let app = provider.sha256(&[rp.as_bytes()]);
        let u = dev.u2f_authenticate(&ch, &app, id, op)?;
        // U2F signs appParam || flags || counter || challenge: authenticator data || hash.
        let mut auth_data = app.to_vec();
        auth_data.push(u.user_presence);
        auth_data.extend_from_slice(&u.counter.to_be_bytes());
        let resp = GetAssertionResponse { auth_data, signature: u.signature, ..Default::default() };
        return Ok(match verify_assertion(provider, c, rp, &cdh, r, &resp) {
            Ok(()) => true,
            Err(e) => {
                ctx.debug(&format!("{}: {e}", dev.describe()));
                false
            }
        });
    }
    let mut req = GetAssertionRequest {
        rp_id: rp.to_owned(),
        client_data_hash: cdh.clone(),
        allow_list: match &c.key_handle {
            KeyHandle::Resident => None,
            KeyHandle::Id(id) => Some(vec![PublicKeyCredentialDescriptor::public_key(id.clone())]),
        },
        ..Default::default()
    };
    if r.pin {
        let Some(pin) = ctx.req.conv.prompt_secret(PIN_PROMPT) else {
            ctx.debug("the conversation gave no PIN");
            return Err(ClientError::PinRequired);
        };
        let token = dev.pin_token(&pin, permissions::GET_ASSERTION, Some(rp), op)?;
        req.pin_uv_auth_param = Some(token.authenticate(&cdh));
        req.pin_uv_auth_protocol = Some(token.protocol().number() as u64);
        req.options = Some(CommandOptions { up: r.up, ..Default::default() });
    } else {
        req.options = Some(CommandOptions { up: r.up, uv: uv_opt, ..Default::default() });
    }
    if r.up != Some(false) || r.uv == Some(true) {
        ctx.cue();
    }
    let first = dev.get_assertion(&req, op)?;
    let n = first.number_of_credentials.unwrap_or(1).clamp(1, 16);
    let mut resp = first;
    for i in 0..n {
        if i > 0 {
            resp = dev.get_next_assertion(op)?;
        }
        match verify_assertion(provider, c, rp, &cdh, r, &resp) {
            Ok(()) => return Ok(true),
            Err(e) => ctx.debug(&format!("{}: assertion {}: {e}", dev.describe(), i + 1)),
        }
    }
    Ok(false)
}

/// Authenticate the user with a key: the whole decision (module docs).
pub fn authenticate(req: &mut Request<'_>) -> PamCode {
    let deadline = Instant::now() + req.options.timeout;
    let mut ctx = Ctx { req, cued: false };
    let o = ctx.req.options;
    let user = ctx.req.user;
    let origin = o.origin.clone().unwrap_or_else(|| format!("pam://{}", ctx.req.hostname));
    let appid = o.appid.clone().unwrap_or_else(|| origin.clone());
    ctx.debug(&format!("user {}, origin {origin}, appid {appid}", user.name));

    let path = match authfile_path(o, user) {
        Ok(p) => p,
        Err(e) => {
            ctx.warn(&format!("authfile: {e}"));
            return PamCode::ServiceErr;
        }
    };
    ctx.debug(&format!("authfile {}", path.display()));
    let content = match authfile::read_authfile(&path, user.uid) {
        Ok(c) => c,
        Err(AuthfileError::NotFound) if o.nouserok => {
            ctx.debug("no authfile, nouserok: ignore");
            return PamCode::Ignore;
        }
        Err(AuthfileError::NotFound) => {
            ctx.debug("no authfile");
            return PamCode::AuthInfoUnavail;
        }
        Err(e) => {
            ctx.warn(&format!("authfile {} refused: {e}", path.display()));
            return PamCode::AuthInfoUnavail;
        }
    };
    let creds = match authfile::credentials_for(&content, &user.name, o.max_devices) {
        Ok(c) => c,
        Err(e) => {
            ctx.warn(&format!("authfile {}: {e}", path.display()));
            return PamCode::AuthInfoUnavail;
        }
    };
    if creds.is_empty() {
        ctx.debug(&format!("no key for {} in the authfile", user.name));
        return if o.nouserok { PamCode::Ignore } else { PamCode::UserUnknown };
    }
    ctx.debug(&format!("{} key(s) for {}", creds.len(), user.name));

    let open_op = Op::until(deadline.min(Instant::now() + Duration::from_secs(5)));
    let log = |m: &str| ctx.debug(m);
    let mut devices = ctx.req.devices.open_all(&open_op, &log);
    if devices.is_empty() {
        ctx.debug("no device answered");
        return PamCode::AuthInfoUnavail;
    }
    ctx.debug(&format!("{} device(s)", devices.len()));

    // Pre-flight: (credential, device) pairs worth a touch, in authfile order.
    let mut pairs: Vec<(usize, usize, Requirements, Option<bool>)> = Vec::new();
    let mut answered = vec![false; devices.len()];
    for (ci, c) in creds.iter().enumerate() {
        let r = Requirements::of(o, c);
        let rp = rp_for(c, &origin, &appid);
        for (di, dev) in devices.iter_mut().enumerate() {
            let Some(uv_opt) = device_fits(dev, &r) else {
                answered[di] = true;
                ctx.debug(&format!("key {}: {} lacks the PIN/UV this credential needs", ci + 1, dev.describe()));
                continue;
            };
            if o.nodetect {
                answered[di] = true;
                pairs.push((ci, di, r, uv_opt));
                continue;
            }
            let pre_op = Op::until(deadline.min(Instant::now() + Duration::from_secs(3)));
            match preflight(dev, c, rp, r.pin || r.uv == Some(true), &pre_op) {
                Ok(true) => {
                    answered[di] = true;
                    ctx.debug(&format!("key {}: held by {}", ci + 1, dev.describe()));
                    pairs.push((ci, di, r, uv_opt));
                }
                Ok(false) => answered[di] = true,
                Err(e) => ctx.debug(&format!("key {}: pre-flight on {}: {e}", ci + 1, dev.describe())),
            }
        }
    }
    if pairs.is_empty() {
        return if answered.iter().any(|a| *a) {
            ctx.debug("no device holds a key of the user");
            PamCode::AuthErr
        } else {
            ctx.debug("no device answered the pre-flight");
            PamCode::AuthInfoUnavail
        };
    }

    for (ci, di, r, uv_opt) in pairs {
        if Instant::now() >= deadline {
            ctx.debug("timed out");
            break;
        }
        let (Some(c), Some(dev)) = (creds.get(ci), devices.get_mut(di)) else { continue };
        let rp = rp_for(c, &origin, &appid);
        let op = Op::until(deadline);
        match attempt(&mut ctx, dev, c, rp, &r, uv_opt, &op) {
            Ok(true) => {
                ctx.debug(&format!("key {} on {}: verified", ci + 1, dev.describe()));
                return PamCode::Success;
            }
            Ok(false) => ctx.debug(&format!("key {} on {}: not verified", ci + 1, dev.describe())),
            Err(ClientError::PinRequired) => return PamCode::AuthErr,
            Err(e) => ctx.debug(&format!("key {} on {}: {e}", ci + 1, dev.describe())),
        }
    }
    PamCode::AuthErr
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desktop::authfile::{CoseType, CredentialOptions};

    #[test]
    fn options_as_pam_u2f_names_them() {
        let (o, w) = PamOptions::parse(&[
            "authfile=/etc/u2f_mappings",
            "cue",
            "[cue_prompt=Touch it now]",
            "nouserok",
            "pinverification=1",
            "userverification=0",
            "userpresence=1",
            "origin=pam://box",
            "appid=pam://old",
            "debug",
            "debug_file=stderr",
            "max_devices=3",
            "nodetect",
            "timeout=7",
            "device=udp:127.0.0.1:9,/dev/hidraw1",
            "alwaysok",
            "userpresence=2",
            "bogus",
        ])
        .unwrap();
        assert_eq!(o.authfile.as_deref(), Some("/etc/u2f_mappings"));
        assert!(o.cue && o.nouserok && o.debug && o.debug_stderr && o.nodetect);
        assert_eq!(o.cue_prompt.as_deref(), Some("Touch it now"));
        assert_eq!((o.pinverification, o.userverification, o.userpresence), (Some(true), Some(false), Some(true)));
        assert_eq!((o.origin.as_deref(), o.appid.as_deref()), (Some("pam://box"), Some("pam://old")));
        assert_eq!((o.max_devices, o.timeout), (3, Duration::from_secs(7)));
        assert_eq!(o.devices.0.len(), 2);
        // alwaysok is refused (ignored with a warning), as are bad values and unknown options.
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("alwaysok"));
        assert!(PamOptions::parse(&["device=usb:1"]).is_err());
    }

    #[test]
    fn requirements_follow_pam_u2f() {
        let c = |opts: &str| Credential {
            key_handle: KeyHandle::Resident,
            public_key: vec![0; 64],
            cose_type: CoseType::Es256,
            options: CredentialOptions::parse(opts),
            old_format: false,
        };
        let o = |args: &[&str]| PamOptions::parse(args).unwrap().0;
        let r = Requirements::of(&o(&[]), &c("+presence"));
        assert_eq!(r, Requirements { up: Some(true), uv: None, pin: false });
        let r = Requirements::of(&o(&["userpresence=0"]), &c(""));
        assert_eq!(r.up, Some(false));
        // The line wins over =0 (pam-u2f: "=1 or the line" turns it on).
        let r = Requirements::of(&o(&["userpresence=0", "pinverification=0"]), &c("+presence+pin"));
        assert_eq!(r, Requirements { up: Some(true), uv: None, pin: true });
        let r = Requirements::of(&o(&["userverification=1"]), &c(""));
        assert_eq!(r.uv, Some(true));
    }

    #[test]
    fn authfile_paths() {
        let u = UserInfo { name: "al".into(), uid: 1000, home: "/home/al".into() };
        let o = |args: &[&str]| PamOptions::parse(args).unwrap().0;
        assert_eq!(authfile_path(&o(&[]), &u).unwrap(), PathBuf::from("/home/al/.config/Yubico/u2f_keys"));
        assert_eq!(
            authfile_path(&o(&["authfile=.ssh/u2f_keys"]), &u).unwrap(),
            PathBuf::from("/home/al/.ssh/u2f_keys")
        );
        assert_eq!(authfile_path(&o(&["authfile=/etc/m"]), &u).unwrap(), PathBuf::from("/etc/m"));
        assert_eq!(authfile_path(&o(&["expand", "authfile=/etc/%u/%%k"]), &u).unwrap(), PathBuf::from("/etc/al/%k"));
        assert!(authfile_path(&o(&["expand", "authfile=/etc/%x"]), &u).is_err());
        assert!(authfile_path(&o(&["authfile="]), &u).is_err());
    }
}
