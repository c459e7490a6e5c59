//! Regressions from the fuzz campaign (issue 16, `fuzz/STATUS.md`): every
//! crash, slow input or oracle disagreement a target found, as a unit test.
//! Each reproducer is also in the target's corpus under `fuzz/corpus/`.

use hwkey::proto::cbor::{self, Value};
use std::time::{Duration, Instant};

/// A CBOR map of `n` distinct integer keys, each with a 2-byte string value.
fn big_map(n: usize) -> Vec<u8> {
    Value::Map((0..n as i64).map(|i| (Value::from(i), Value::Bytes(vec![0; 2]))).collect()).to_vec()
}

/// Issue 16 finding 2 (fixed under issue 11): the duplicate-key check
/// compared every key with every earlier one, so a 128 KiB map took seconds
/// to decode. Target `cbor_decode`, reproducer `big_map`. The bound is the
/// fuzz campaign's hang limit (1 s), far above linear time (a few ms) and
/// far below what the quadratic check took.
#[test]
fn cbor_big_map_decodes_in_linear_time() {
    // 32 000 entries: 64 001 items, within the decoder's 65 536-item limit.
    let input = big_map(32_000);
    assert!(input.len() > 128 * 1024);
    let start = Instant::now();
    let v = cbor::decode(&input).expect("distinct keys decode");
    let took = start.elapsed();
    assert_eq!(v.as_map().map(<[_]>::len), Some(32_000));
    assert!(took < Duration::from_secs(1), "a {} byte map took {took:?}", input.len());
}

/// Duplicate keys are still refused after the check is made linear: the
/// same key first and last, with 298 others between.
#[test]
fn cbor_duplicate_keys_are_refused() {
    let mut entries: Vec<(Value, Value)> = (0..299).map(|i| (Value::from(i as i64), Value::Null)).collect();
    entries.push((Value::from(0i64), Value::Null));
    let m = Value::Map(entries).to_vec();
    assert!(matches!(cbor::decode(&m), Err(cbor::CborError::DuplicateKey { .. })), "{:?}", cbor::decode(&m));
}

/// Found by the fuzz smoke of `cbor_decode` after the linear check landed:
/// a byte changed in the 4096-entry seed put one key out of order, and a
/// later key equal to an earlier one was accepted (it was only compared with
/// its predecessor), so the canonical re-encoding held a duplicate key.
#[test]
fn a_duplicate_after_an_out_of_order_key_is_refused() {
    let m = Value::Map(vec![
        (Value::from(5i64), Value::Null),
        (Value::from(1i64), Value::Null),
        (Value::from(5i64), Value::Null),
    ])
    .to_vec();
    assert!(matches!(cbor::decode(&m), Err(cbor::CborError::DuplicateKey { .. })), "{:?}", cbor::decode(&m));
    // Whatever decodes re-encodes to something that decodes.
    let ok = Value::Map(vec![
        (Value::from(5i64), Value::Null),
        (Value::from(1i64), Value::Null),
        (Value::from(7i64), Value::Null),
    ])
    .to_vec();
    let v = cbor::decode(&ok).expect("distinct keys");
    assert!(cbor::decode(&cbor::encode(&v)).is_ok());
}

#[cfg(feature = "server")]
mod server {
    use hwkey::server::RpConfig;
    use hwkey::server::client_data::check_client_data;
    use hwkey::server::origin::origin_allowed;

    /// Issue 16 finding 1 (fixed under issue 11): a non-ASCII origin host
    /// with `allow_subdomains` sliced a `&str` inside a UTF-8 sequence and
    /// panicked. "aéxample.com" is 13 bytes; its last 11 (the length of
    /// "example.com") start inside "é". Target `client_data`, reproducer in
    /// its corpus.
    #[test]
    fn non_ascii_origin_host_is_refused_without_panic() {
        let mut c = RpConfig::new("example.com", "Example", "https://example.com");
        c.allow_subdomains = true;
        for o in ["https://a\u{e9}xample.com", "https://\u{e9}\u{e9}xample.com", "https://x.\u{1F600}example.com"] {
            let r = std::panic::catch_unwind(|| origin_allowed(o, &c));
            assert_eq!(r.ok(), Some(false), "{o}");
        }
        let challenge = hwkey::proto::webauthn::b64url_encode(&[0x42; 32]);
        let cdj =
            format!(r#"{{"type":"webauthn.get","challenge":"{challenge}","origin":"https://a\u00e9xample.com"}}"#);
        let r =
            std::panic::catch_unwind(|| check_client_data(cdj.as_bytes(), "webauthn.get", &[0x42; 32], &c).is_err());
        assert_eq!(r.ok(), Some(true));
    }
}

/// Fuzz finding (target `otpauth_uri`): the label's issuer was trimmed but
/// the `issuer` parameter was not, so a URI whose issuer parameter starts
/// with whitespace (and has no issuer in the label) parsed, serialized with
/// the untrimmed issuer in the label, and the serialization no longer
/// parsed ("the issuer parameter differs from the label's issuer").
#[cfg(feature = "otp")]
#[test]
fn otpauth_issuer_parameter_is_trimmed_like_the_label() {
    use hwkey::otp::uri::KeyUri;
    let k = KeyUri::parse("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP&issuer=%0D%20ACME").expect("parses");
    assert_eq!(k.issuer.as_deref(), Some("ACME"));
    let s = k.to_uri().expect("serializes");
    assert_eq!(KeyUri::parse(&s).expect("its serialization parses"), k);
    // Both places trimmed alike: the same issuer, so no mismatch.
    let k = KeyUri::parse("otpauth://totp/%20ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20").expect("parses");
    assert_eq!(k.issuer.as_deref(), Some("ACME"));
}
