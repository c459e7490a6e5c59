//! `libhwkey_sk.so`: an OpenSSH security-key provider (`ssh-keygen -w`,
//! `SecurityKeyProvider`, `SSH_SK_PROVIDER`) for `ecdsa-sk` and `ed25519-sk`
//! keys (CONTRACTS §4). This crate is the FFI shim of `sk-api.h` (API version
//! `0x000a0000`, OpenSSH 9.x): it converts the C arguments, calls
//! [`hwkey::desktop::sk`], and allocates the answers with `malloc`, because
//! OpenSSH frees them with `free`.
//!
//! The device: the `device` option, else `HWKEY_DEVICE` (`hid:PATH`,
//! `udp:HOST:PORT`), else every FIDO HID device. `HWKEY_SK_DEBUG=1` prints
//! debug messages to stderr (never stdout: `ssh-sk-helper` speaks on it).
//!
//! Every entry point catches panics (they become `SSH_SK_ERR_GENERAL`);
//! every `unsafe` block says why it is sound.

use hwkey::desktop::sk::{self, SkAlg, SkError, SkOption, SkOptions, SkProvider};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use zeroize::Zeroizing;

/// `struct sk_enroll_response`.
#[repr(C)]
pub struct SkEnrollResponse {
    flags: u8,
    public_key: *mut u8,
    public_key_len: usize,
    key_handle: *mut u8,
    key_handle_len: usize,
    signature: *mut u8,
    signature_len: usize,
    attestation_cert: *mut u8,
    attestation_cert_len: usize,
    authdata: *mut u8,
    authdata_len: usize,
}

/// `struct sk_sign_response`.
#[repr(C)]
pub struct SkSignResponse {
    flags: u8,
    counter: u32,
    sig_r: *mut u8,
    sig_r_len: usize,
    sig_s: *mut u8,
    sig_s_len: usize,
}

/// `struct sk_resident_key`.
#[repr(C)]
pub struct SkResidentKey {
    alg: u32,
    slot: usize,
    application: *mut c_char,
    key: SkEnrollResponse,
    flags: u8,
    user_id: *mut u8,
    user_id_len: usize,
}

/// `struct sk_option`.
#[repr(C)]
pub struct SkOptionC {
    name: *mut c_char,
    value: *mut c_char,
    required: u8,
}

fn debug(m: &str) {
    if std::env::var_os("HWKEY_SK_DEBUG").is_some_and(|v| !v.is_empty() && v != "0") {
        eprintln!("hwkey_sk: {m}");
    }
}

/// A malloc'd copy of `v` (null for empty), as OpenSSH frees it.
fn c_copy(v: &[u8]) -> Result<(*mut u8, usize), SkError> {
    if v.is_empty() {
        return Ok((std::ptr::null_mut(), 0));
    }
    // SAFETY: malloc of a non-zero size; checked for null below.
    let p = unsafe { libc::malloc(v.len()) } as *mut u8;
    if p.is_null() {
        return Err(SkError::General);
    }
    // SAFETY: `p` is a fresh allocation of `v.len()` bytes, disjoint from `v`.
    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), p, v.len()) };
    Ok((p, v.len()))
}

/// A malloc'd NUL-terminated copy of `s`.
fn c_string(s: &str) -> Result<*mut c_char, SkError> {
    let mut b = s.as_bytes().to_vec();
    if b.contains(&0) {
        return Err(SkError::General);
    }
    b.push(0);
    Ok(c_copy(&b)?.0 as *mut c_char)
}

/// Zero and free a malloc'd buffer (null is fine).
///
/// # Safety
/// `p` is null or a malloc'd buffer of `len` bytes not used afterwards.
unsafe fn free_zero(p: *mut u8, len: usize) {
    if !p.is_null() {
        // SAFETY: per the contract, `p` is valid for `len` bytes and ours to free.
        unsafe {
            std::ptr::write_bytes(p, 0, len);
            libc::free(p as *mut c_void);
        }
    }
}

/// # Safety
/// `r`'s pointers are null or malloc'd with their lengths.
unsafe fn free_enroll_fields(r: &mut SkEnrollResponse) {
    // SAFETY: per the contract.
    unsafe {
        free_zero(r.public_key, r.public_key_len);
        free_zero(r.key_handle, r.key_handle_len);
        free_zero(r.signature, r.signature_len);
        free_zero(r.attestation_cert, r.attestation_cert_len);
        free_zero(r.authdata, r.authdata_len);
    }
}

fn fill_enroll(out: &mut SkEnrollResponse, r: &sk::EnrollResponse) -> Result<(), SkError> {
    out.flags = r.flags;
    (out.public_key, out.public_key_len) = c_copy(&r.public_key)?;
    (out.key_handle, out.key_handle_len) = c_copy(&r.key_handle)?;
    (out.signature, out.signature_len) = c_copy(&r.signature)?;
    (out.attestation_cert, out.attestation_cert_len) = c_copy(&r.attestation_cert)?;
    (out.authdata, out.authdata_len) = c_copy(&r.authdata)?;
    Ok(())
}

/// A calloc'd `T` (all fields zero/null).
fn c_calloc<T>() -> Result<*mut T, SkError> {
    // SAFETY: calloc of one element of T's size; checked for null. The
    // callers' T are repr(C) structs of integers and pointers, for which all
    // zero bytes is a valid value.
    let p = unsafe { libc::calloc(1, std::mem::size_of::<T>()) } as *mut T;
    if p.is_null() { Err(SkError::General) } else { Ok(p) }
}

/// # Safety
/// `p` is null or a NUL-terminated string.
unsafe fn opt_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the contract.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// # Safety
/// `options` is null or a NULL-terminated array of valid `sk_option` pointers.
unsafe fn read_options(options: *mut *mut SkOptionC) -> Result<Vec<SkOption>, SkError> {
    let mut out = Vec::new();
    if options.is_null() {
        return Ok(out);
    }
    for i in 0..64 {
        // SAFETY: the array is NULL-terminated; we stop at the terminator
        // (and refuse more than 64 options).
        let o = unsafe { *options.add(i) };
        if o.is_null() {
            return Ok(out);
        }
        // SAFETY: a valid `sk_option` whose strings are NUL-terminated.
        let (name, value, required) = unsafe {
            let o = &*o;
            (opt_str(o.name).unwrap_or(""), opt_str(o.value).unwrap_or(""), o.required != 0)
        };
        out.push(SkOption { name: name.to_owned(), value: value.to_owned(), required });
    }
    Err(SkError::General)
}

/// # Safety
/// `pin` is null or a NUL-terminated string.
unsafe fn read_pin(pin: *const c_char) -> Result<Option<Zeroizing<String>>, SkError> {
    if pin.is_null() {
        return Ok(None);
    }
    // SAFETY: per the contract.
    let b = unsafe { CStr::from_ptr(pin) }.to_bytes();
    let s = std::str::from_utf8(b).map_err(|_| SkError::General)?;
    Ok(Some(Zeroizing::new(s.to_owned())))
}

fn guard(what: &str, f: impl FnOnce() -> Result<(), SkError>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            debug(&format!("{what}: {e} ({})", e.name()));
            e.code()
        }
        Err(_) => {
            debug(&format!("{what}: internal error (panic caught)"));
            SkError::General.code()
        }
    }
}

fn with_provider<T>(options: &SkOptions, f: impl FnOnce(&SkProvider<'_>) -> T) -> Result<T, SkError> {
    let source = sk::device_source(options)?;
    let log = |m: &str| debug(m);
    let p = SkProvider { devices: &source, log: &log, timeout: sk::SK_TIMEOUT };
    Ok(f(&p))
}

/// `sk_api_version`: the sk-api version implemented.
#[unsafe(no_mangle)]
pub extern "C" fn sk_api_version() -> u32 {
    sk::SK_API_VERSION
}

/// `sk_enroll`: make a key.
///
/// # Safety
/// The arguments follow `sk-api.h`: `challenge` valid for `challenge_len`
/// bytes, `application` and `pin` NUL-terminated (pin may be null), `options`
/// null or NULL-terminated, `enroll_response` a valid out-pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sk_enroll(
    alg: u32,
    challenge: *const u8,
    challenge_len: usize,
    application: *const c_char,
    flags: u8,
    pin: *const c_char,
    options: *mut *mut SkOptionC,
    enroll_response: *mut *mut SkEnrollResponse,
) -> c_int {
    guard("sk_enroll", || {
        if enroll_response.is_null() || challenge.is_null() {
            return Err(SkError::General);
        }
        // SAFETY: a valid out-pointer per the contract.
        unsafe { *enroll_response = std::ptr::null_mut() };
        let alg = SkAlg::from_u32(alg).ok_or(SkError::Unsupported)?;
        // SAFETY: `challenge` is valid for `challenge_len` bytes per the contract.
        let challenge = unsafe { std::slice::from_raw_parts(challenge, challenge_len) };
        // SAFETY: per the contract.
        let application = unsafe { opt_str(application) }.ok_or(SkError::General)?;
        // SAFETY: per the contract.
        let pin = unsafe { read_pin(pin) }?;
        // SAFETY: per the contract.
        let opts = SkOptions::parse(&unsafe { read_options(options) }?, true)?;
        let r = with_provider(&opts, |p| {
            p.enroll(alg, challenge, application, flags, pin.as_deref().map(|s| s.as_str()), &opts)
        })??;
        let out = c_calloc::<SkEnrollResponse>()?;
        // SAFETY: `out` is a fresh zeroed allocation of the struct.
        let filled = fill_enroll(unsafe { &mut *out }, &r);
        if let Err(e) = filled {
            // SAFETY: `out` and its fields were allocated above and are not shared.
            unsafe {
                free_enroll_fields(&mut *out);
                libc::free(out as *mut c_void);
            }
            return Err(e);
        }
        // SAFETY: a valid out-pointer; OpenSSH owns the answer from here.
        unsafe { *enroll_response = out };
        Ok(())
    })
}

/// `sk_sign`: sign with a key.
///
/// # Safety
/// The arguments follow `sk-api.h` (see [`sk_enroll`]); `data` valid for
/// `data_len` bytes and `key_handle` for `key_handle_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sk_sign(
    alg: u32,
    data: *const u8,
    data_len: usize,
    application: *const c_char,
    key_handle: *const u8,
    key_handle_len: usize,
    flags: u8,
    pin: *const c_char,
    options: *mut *mut SkOptionC,
    sign_response: *mut *mut SkSignResponse,
) -> c_int {
    guard("sk_sign", || {
        if sign_response.is_null() || data.is_null() || key_handle.is_null() {
            return Err(SkError::General);
        }
        // SAFETY: a valid out-pointer per the contract.
        unsafe { *sign_response = std::ptr::null_mut() };
        let alg = SkAlg::from_u32(alg).ok_or(SkError::Unsupported)?;
        // SAFETY: valid for the given lengths per the contract.
        let (data, kh) = unsafe {
            (std::slice::from_raw_parts(data, data_len), std::slice::from_raw_parts(key_handle, key_handle_len))
        };
        // SAFETY: per the contract.
        let application = unsafe { opt_str(application) }.ok_or(SkError::General)?;
        // SAFETY: per the contract.
        let pin = unsafe { read_pin(pin) }?;
        // SAFETY: per the contract.
        let opts = SkOptions::parse(&unsafe { read_options(options) }?, false)?;
        let r = with_provider(&opts, |p| {
            p.sign(alg, data, application, kh, flags, pin.as_deref().map(|s| s.as_str()), &opts)
        })??;
        let out = c_calloc::<SkSignResponse>()?;
        let r_copy = c_copy(&r.sig_r);
        let s_copy = c_copy(&r.sig_s);
        match (r_copy, s_copy) {
            (Ok((rp, rl)), Ok((sp, sl))) => {
                // SAFETY: `out` is a fresh zeroed allocation of the struct.
                unsafe {
                    (*out).flags = r.flags;
                    (*out).counter = r.counter;
                    (*out).sig_r = rp;
                    (*out).sig_r_len = rl;
                    (*out).sig_s = sp;
                    (*out).sig_s_len = sl;
                    *sign_response = out;
                }
                Ok(())
            }
            (a, b) => {
                // SAFETY: whatever was allocated above is ours and unshared.
                unsafe {
                    if let Ok((p, l)) = a {
                        free_zero(p, l);
                    }
                    if let Ok((p, l)) = b {
                        free_zero(p, l);
                    }
                    libc::free(out as *mut c_void);
                }
                Err(SkError::General)
            }
        }
    })
}

/// # Safety
/// `k` was built by [`resident_to_c`] and is not used afterwards.
unsafe fn free_resident(k: *mut SkResidentKey) {
    if k.is_null() {
        return;
    }
    // SAFETY: per the contract.
    unsafe {
        let r = &mut *k;
        if !r.application.is_null() {
            libc::free(r.application as *mut c_void);
        }
        free_zero(r.user_id, r.user_id_len);
        free_enroll_fields(&mut r.key);
        libc::free(k as *mut c_void);
    }
}

fn resident_to_c(k: &sk::ResidentKey) -> Result<*mut SkResidentKey, SkError> {
    let out = c_calloc::<SkResidentKey>()?;
    let fill = || -> Result<(), SkError> {
        // SAFETY: `out` is a fresh zeroed allocation of the struct, not shared.
        let o = unsafe { &mut *out };
        o.alg = k.alg.to_u32();
        o.slot = k.slot;
        o.flags = k.flags;
        o.application = c_string(&k.application)?;
        (o.user_id, o.user_id_len) = c_copy(&k.user_id)?;
        fill_enroll(&mut o.key, &k.key)
    };
    match fill() {
        Ok(()) => Ok(out),
        Err(e) => {
            // SAFETY: built here, not shared.
            unsafe { free_resident(out) };
            Err(e)
        }
    }
}

/// `sk_load_resident_keys`: the resident keys of applications `ssh:*`.
///
/// # Safety
/// The arguments follow `sk-api.h`: `pin` null or NUL-terminated, `options`
/// null or NULL-terminated, `rks` and `nrks` valid out-pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sk_load_resident_keys(
    pin: *const c_char,
    options: *mut *mut SkOptionC,
    rks: *mut *mut *mut SkResidentKey,
    nrks: *mut usize,
) -> c_int {
    guard("sk_load_resident_keys", || {
        if rks.is_null() || nrks.is_null() {
            return Err(SkError::General);
        }
        // SAFETY: valid out-pointers per the contract.
        unsafe {
            *rks = std::ptr::null_mut();
            *nrks = 0;
        }
        // SAFETY: per the contract.
        let pin = unsafe { read_pin(pin) }?;
        // SAFETY: per the contract.
        let opts = SkOptions::parse(&unsafe { read_options(options) }?, false)?;
        let keys = with_provider(&opts, |p| p.load_resident_keys(pin.as_deref().map(|s| s.as_str()), &opts))??;
        if keys.is_empty() {
            return Ok(());
        }
        // SAFETY: calloc of `len` pointers; checked for null.
        let arr =
            unsafe { libc::calloc(keys.len(), std::mem::size_of::<*mut SkResidentKey>()) } as *mut *mut SkResidentKey;
        if arr.is_null() {
            return Err(SkError::General);
        }
        for (i, k) in keys.iter().enumerate() {
            match resident_to_c(k) {
                // SAFETY: `i < keys.len()`, the array's length.
                Ok(p) => unsafe { *arr.add(i) = p },
                Err(e) => {
                    // SAFETY: entries 0..i were built above; the array is ours.
                    unsafe {
                        for j in 0..i {
                            free_resident(*arr.add(j));
                        }
                        libc::free(arr as *mut c_void);
                    }
                    return Err(e);
                }
            }
        }
        // SAFETY: valid out-pointers; OpenSSH owns the array from here.
        unsafe {
            *rks = arr;
            *nrks = keys.len();
        }
        Ok(())
    })
}
