//! `pam_hwkey.so`: a Linux PAM module (`auth` only) for FIDO2/U2F security
//! keys, reading pam-u2f authfiles (CONTRACTS §4). This crate is the FFI
//! shim: it reads the module arguments, the user (`pam_get_user`,
//! `getpwnam_r`), the host name and the conversation (`pam_get_item`), and
//! calls [`hwkey::desktop::pam::authenticate`], where the decision is made
//! in safe Rust.
//!
//! Bindings: the five PAM functions and types needed are declared here by
//! hand from `<security/pam_appl.h>` and `<security/pam_modules.h>`
//! (Linux-PAM). The maintained crates were considered: `pamsm` is GPL-3.0
//! (hwkey is MIT OR Apache-2.0) and `pam-sys` is a pre-release of generated
//! bindings; neither buys much for five declarations. The symbols are
//! resolved against the libpam of the process that loads the module.
//!
//! Every entry point catches panics (a panic never unwinds into sudo, sshd
//! or a display manager: it becomes `PAM_SYSTEM_ERR`); every `unsafe` block
//! says why it is sound.

use hwkey::desktop::pam::{self, Conversation, LogLevel, PamCode, PamOptions, Request, UserInfo};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use zeroize::Zeroizing;

const PAM_SUCCESS: c_int = 0;
const PAM_SYSTEM_ERR: c_int = 4;
const PAM_CONV: c_int = 5;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_TEXT_INFO: c_int = 4;
const PAM_SILENT: c_int = 0x8000;

/// `struct pam_message`.
#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

/// `struct pam_response`.
#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

/// `struct pam_conv`.
#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

/// `pam_handle_t` (opaque).
#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn pam_get_user(pamh: *mut PamHandle, user: *mut *const c_char, prompt: *const c_char) -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
}

fn syslog(level: LogLevel, msg: &str) {
    let prio = libc::LOG_AUTHPRIV | if level == LogLevel::Warning { libc::LOG_WARNING } else { libc::LOG_DEBUG };
    let Ok(m) = CString::new(format!("pam_hwkey: {}", msg.replace('\0', " "))) else { return };
    // SAFETY: a constant "%s" format with one NUL-terminated string argument
    // that lives across the call; syslog(3) does not keep the pointers.
    unsafe { libc::syslog(prio, c"%s".as_ptr(), m.as_ptr()) };
}

/// The PAM conversation of the calling application.
struct PamConversation {
    pamh: *mut PamHandle,
    silent: bool,
}

impl PamConversation {
    fn converse(&self, style: c_int, text: &str) -> Option<Zeroizing<String>> {
        let mut item: *const c_void = std::ptr::null();
        // SAFETY: `pamh` is the live handle PAM passed to the entry point
        // running now; pam_get_item stores a pointer owned by PAM in `item`.
        let rc = unsafe { pam_get_item(self.pamh, PAM_CONV, &mut item) };
        if rc != PAM_SUCCESS || item.is_null() {
            return None;
        }
        // SAFETY: for PAM_CONV the item is a `struct pam_conv` set by the
        // application, valid for the whole transaction.
        let conv = unsafe { &*(item as *const PamConv) };
        let f = conv.conv?;
        let text = CString::new(text.replace('\0', " ")).ok()?;
        let msg = PamMessage { msg_style: style, msg: text.as_ptr() };
        let mut msgp: *const PamMessage = &msg;
        let mut resp: *mut PamResponse = std::ptr::null_mut();
        // SAFETY: one message, Linux-PAM's array-of-pointers layout; `msg`
        // and `text` outlive the call; the application allocates `resp`
        // (malloc) and hands it to us.
        let rc = unsafe { f(1, &mut msgp, &mut resp, conv.appdata_ptr) };
        if resp.is_null() {
            return None;
        }
        // SAFETY: `resp` points to one `struct pam_response` the application
        // allocated with malloc; we own it and its `resp` string from here.
        let out = unsafe {
            let r = &mut *resp;
            let s = if r.resp.is_null() {
                None
            } else {
                let bytes = CStr::from_ptr(r.resp).to_bytes();
                let s = std::str::from_utf8(bytes).ok().map(|s| Zeroizing::new(s.to_owned()));
                // Wipe the application's copy of the secret before freeing it.
                std::ptr::write_bytes(r.resp, 0, bytes.len());
                libc::free(r.resp as *mut c_void);
                s
            };
            libc::free(resp as *mut c_void);
            s
        };
        if rc != PAM_SUCCESS { None } else { out }
    }
}

impl Conversation for PamConversation {
    fn prompt_secret(&mut self, prompt: &str) -> Option<Zeroizing<String>> {
        self.converse(PAM_PROMPT_ECHO_OFF, prompt)
    }
    fn info(&mut self, message: &str) {
        if !self.silent {
            let _ = self.converse(PAM_TEXT_INFO, message);
        }
    }
}

fn lookup_user(name: &CStr) -> Option<UserInfo> {
    let mut pw: libc::passwd = zeroed_passwd();
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: all pointers are valid for the call: `name` is NUL-terminated,
    // `pw` and `result` are locals, `buf` is a writable buffer of the length
    // passed; on success `pw`'s strings point into `buf`, read below while
    // `buf` lives.
    let rc =
        unsafe { libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr() as *mut c_char, buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pw.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpwnam_r succeeded: pw_dir is a NUL-terminated string in `buf`.
    let home = unsafe { CStr::from_ptr(pw.pw_dir) };
    let home = PathBuf::from(std::ffi::OsStr::from_bytes(home.to_bytes()));
    if !home.is_absolute() {
        return None;
    }
    Some(UserInfo { name: name.to_str().ok()?.to_owned(), uid: pw.pw_uid, home })
}

fn zeroed_passwd() -> libc::passwd {
    // SAFETY: `struct passwd` is plain old data (integers and pointers);
    // all-zero is a valid value (null pointers), overwritten by getpwnam_r.
    unsafe { std::mem::zeroed() }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; gethostname NUL-terminates
    // within it when the name fits (the last byte stays 0 otherwise).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut c_char, buf.len() - 1) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// # Safety
/// Called by libpam with its handle and `argc` NUL-terminated arguments.
unsafe fn authenticate(pamh: *mut PamHandle, flags: c_int, argc: c_int, argv: *const *const c_char) -> PamCode {
    let mut args = Vec::new();
    if !argv.is_null() {
        for i in 0..usize::try_from(argc).unwrap_or(0) {
            // SAFETY: libpam passes `argc` valid pointers to NUL-terminated strings.
            let a = unsafe { *argv.add(i) };
            if !a.is_null() {
                // SAFETY: as above.
                args.push(unsafe { CStr::from_ptr(a) }.to_string_lossy().into_owned());
            }
        }
    }
    let (options, warnings) = match PamOptions::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            syslog(LogLevel::Warning, &e);
            return PamCode::ServiceErr;
        }
    };
    for w in &warnings {
        syslog(LogLevel::Warning, w);
    }
    let mut user: *const c_char = std::ptr::null();
    // SAFETY: live handle; PAM stores a pointer to a string it owns.
    let rc = unsafe { pam_get_user(pamh, &mut user, std::ptr::null()) };
    if rc != PAM_SUCCESS || user.is_null() {
        return PamCode::ConvErr;
    }
    // SAFETY: pam_get_user succeeded: a NUL-terminated string owned by PAM.
    let user = unsafe { CStr::from_ptr(user) };
    let Some(info) = lookup_user(user) else {
        if options.debug {
            syslog(LogLevel::Debug, &format!("no passwd entry for {:?}", user));
        }
        return PamCode::UserUnknown;
    };
    let host = hostname();
    let mut conv = PamConversation { pamh, silent: flags & PAM_SILENT != 0 };
    let to_stderr = options.debug_stderr;
    let log = |l: LogLevel, m: &str| {
        if to_stderr {
            eprintln!("pam_hwkey: {m}");
        }
        syslog(l, m)
    };
    let mut req = Request {
        options: &options,
        user: &info,
        hostname: &host,
        conv: &mut conv,
        devices: &options.devices,
        log: &log,
    };
    let t = std::time::Instant::now();
    let code = pam::authenticate(&mut req);
    if options.debug {
        log(LogLevel::Debug, &format!("{} ({}) after {} us", code.name(), code.value(), t.elapsed().as_micros()));
    }
    code
}

/// `pam_sm_authenticate`: authenticate the user with a security key.
///
/// # Safety
/// Called by libpam with a valid handle and `argc` argument strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut c_void,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the arguments are libpam's, passed through unchanged.
        unsafe { authenticate(pamh as *mut PamHandle, flags, argc, argv) }
    }));
    match r {
        Ok(code) => code.value(),
        Err(_) => {
            syslog(LogLevel::Warning, "internal error (panic caught); refusing");
            PAM_SYSTEM_ERR
        }
    }
}

/// `pam_sm_setcred`: nothing to set; success, as pam-u2f.
///
/// # Safety
/// Called by libpam; the arguments are not used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut c_void,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    PAM_SUCCESS
}
