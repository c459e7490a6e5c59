//! pam-u2f authfiles (src/desktop/authfile.rs). Input: the authfile's
//! contents (raw bytes, as `read_authfile` returns them). The users looked
//! up are the first fields of the input's first lines (up to four distinct
//! UTF-8 names) and `alice`.
//! Checked, per user: no panic, each lookup within 50 ms (`timed`); every
//! credential returned has a COSE key of its type's length; the line
//! `format_line` writes for them is one line and parses back to the same
//! credentials (parse -> render -> parse stable), and renders the same again;
//! each credential's field parses back to itself; a new-format credential
//! rebuilt from its COSE key has the same key and options; a smaller
//! `max_devices` gives a prefix of the same list.
#![no_main]
use hwkey::desktop::authfile::{Credential, DEFAULT_MAX_DEVICES, credentials_for, format_line, parse_credential};
use libfuzzer_sys::fuzz_target;

/// The distinct user names of the first lines (their first non-empty field),
/// as `credentials_for` reads a line.
fn users(content: &[u8]) -> Vec<&str> {
    let mut out = vec!["alice"];
    for line in content.split(|&b| b == b'\n').take(8) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(first) = line.split(|&b| b == b':').find(|f| !f.is_empty()) else { continue };
        if let Ok(u) = std::str::from_utf8(first)
            && !out.contains(&u)
        {
            out.push(u);
        }
        if out.len() > 4 {
            break;
        }
    }
    out
}

fn check(content: &[u8], user: &str) {
    let mut got = None;
    hwkey_fuzz::timed(|| got = Some(credentials_for(content, user, DEFAULT_MAX_DEVICES)));
    let Some(Ok(creds)) = got else { return };
    for c in &creds {
        let key = c.cose_key().unwrap_or_else(|e| panic!("a parsed credential has no COSE key: {e}: {c:?}"));
        let field = c.to_field();
        let back = parse_credential(&field).unwrap_or_else(|e| panic!("rendered field does not parse: {e}: {field}"));
        assert_eq!(&back, c, "field parse -> render -> parse changed it: {field}");
        if !c.old_format {
            let again = Credential::from_cose_key(c.key_handle.clone(), &key, c.options)
                .unwrap_or_else(|e| panic!("its COSE key is not an authfile key: {e}: {c:?}"));
            assert_eq!(again.cose_key().as_ref(), Ok(&key), "from_cose_key changed the key");
            assert_eq!(again.options, c.options);
            assert_eq!(again.cose_type, c.cose_type);
        }
    }
    let line = format_line(user, &creds);
    assert!(!line.contains('\n'), "rendered line holds a newline: {line:?}");
    let reparsed = credentials_for(line.as_bytes(), user, DEFAULT_MAX_DEVICES)
        .unwrap_or_else(|e| panic!("rendered line does not parse: {e}: {line}"));
    assert_eq!(reparsed, creds, "line parse -> render -> parse changed it: {line}");
    assert_eq!(format_line(user, &reparsed), line, "rendering is not stable");
    if !creds.is_empty() {
        let one = credentials_for(content, user, 1).expect("fewer devices parse where more did");
        assert_eq!(one.as_slice(), &creds[..1], "max_devices = 1 is not a prefix");
    }
}

fuzz_target!(|data: &[u8]| {
    for user in users(data) {
        check(data, user);
    }
});
