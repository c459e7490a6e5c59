//! otpauth:// URIs (src/otp/uri.rs). Input: the URI text (lossy UTF-8).
//! Checked: no panic; a parsed URI validates, serializes, and parses back to
//! the same value (parse -> serialize -> parse stable); the TOTP/HOTP it
//! describes computes codes without panicking.
#![no_main]
use hwkey::otp::uri::KeyUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    hwkey_fuzz::timed(|| {
        let Ok(k) = KeyUri::parse(&text) else { return };
        let _ = k.secret_warning();
        if k.validate().is_err() {
            return;
        }
        let s = k.to_uri().expect("a valid URI serializes");
        let k2 = KeyUri::parse(&s).unwrap_or_else(|e| panic!("serialized URI does not parse: {e}: {s}"));
        assert_eq!(k2, k, "parse -> serialize -> parse changes the URI");
        assert_eq!(k2.to_uri().ok().as_deref(), Some(s.as_str()), "serialization is not stable");
        if let Some(t) = k.totp() {
            let _ = t.code_at(hwkey_fuzz::NOW_UNIX as i64);
            let _ = t.code_at(i64::MAX);
            let _ = t.code_at(i64::MIN);
            let _ = t.code_at_step(u64::MAX);
        }
        if let Some(h) = k.hotp() {
            let _ = h.code(u64::MAX);
            let _ = h.verify("000000", u64::MAX - 1, 5);
        }
    });
});
