//! "A stable 32-byte secret from the user's key" with the YubiKey HMAC-SHA1
//! backend: identical across runs and processes for the same key and salt,
//! different for another salt or key; enrollment records round-trip.
#![cfg(all(feature = "yubikey", feature = "cli"))]

use hwkey::crypto::{HashAlg, default_provider};
use hwkey::yubikey::derive::{
    Backend, DeriveError, Enrollment, SecretSource, YubikeyHmacSource, derive, derive_unchecked, enroll,
};
use hwkey::yubikey::{OtpConnection, Slot, UdpTransport, VirtualYubikey};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use zeroize::Zeroizing;

const KEY: [u8; 20] = [0x42; 20];

fn yk(key: &[u8], slot: u8) -> OtpConnection<VirtualYubikey> {
    let mut v = VirtualYubikey::new(100);
    v.set_hmac_slot(slot, key, false).unwrap();
    OtpConnection::new(v)
}

fn derive_with<T: hwkey::yubikey::FeatureReportTransport>(
    conn: &mut OtpConnection<T>,
    slot: Slot,
    salt: &[u8],
) -> [u8; 32] {
    let mut progress = |_| {};
    let mut src = YubikeyHmacSource::new(conn, slot, &mut progress);
    *derive_unchecked(&Backend::YubikeyHmac { slot: slot.number(), serial: None }, salt, &mut src).unwrap()
}

/// The documented recipe, computed independently of the module.
fn expected(key: &[u8], salt: &[u8]) -> [u8; 32] {
    let p = default_provider();
    let challenge = p.sha256(&[b"hwkey-derive-v1", b"\0", b"yubikey_hmac", b"\0", salt]);
    let response = p.hmac(HashAlg::Sha1, key, &[&challenge]);
    let mut out = [0u8; 32];
    p.hkdf_sha256(salt, &response, b"hwkey-derive-v1 yubikey_hmac", &mut out).unwrap();
    out
}

#[test]
fn same_key_same_salt_same_secret() {
    let a = derive_with(&mut yk(&KEY, 1), Slot::One, b"salt A");
    let b = derive_with(&mut yk(&KEY, 1), Slot::One, b"salt A");
    assert_eq!(a, b);
    assert_eq!(a, expected(&KEY, b"salt A"));
    // Another slot holding the same secret derives the same bytes.
    assert_eq!(derive_with(&mut yk(&KEY, 2), Slot::Two, b"salt A"), a);
    assert_ne!(derive_with(&mut yk(&KEY, 1), Slot::One, b"salt B"), a);
    assert_ne!(derive_with(&mut yk(&[0x43; 20], 1), Slot::One, b"salt A"), a);
}

#[test]
fn enrollment_roundtrip_and_wrong_key() {
    let mut conn = yk(&KEY, 2);
    let mut progress = |_| {};
    let (enr, secret) = enroll(&mut YubikeyHmacSource::new(&mut conn, Slot::Two, &mut progress), b"vault").unwrap();
    assert_eq!(enr.backend, Backend::YubikeyHmac { slot: 2, serial: Some(100) });
    let json = serde_json::to_string(&enr).unwrap();
    assert!(json.contains("\"kind\":\"yubikey_hmac\""), "{json}");
    let enr2: Enrollment = serde_json::from_str(&json).unwrap();
    let again = derive(&enr2, &mut YubikeyHmacSource::new(&mut conn, Slot::Two, &mut progress)).unwrap();
    assert_eq!(*again, *secret);
    assert_eq!(*secret, expected(&KEY, b"vault"));
    // Another key: refused, not garbage.
    let mut other = yk(&[1; 20], 2);
    let e = derive(&enr2, &mut YubikeyHmacSource::new(&mut other, Slot::Two, &mut progress)).unwrap_err();
    assert_eq!(e, DeriveError::WrongKey);
    // Empty slot: the device error comes through.
    let e = derive(&enr2, &mut YubikeyHmacSource::new(&mut conn, Slot::One, &mut progress)).unwrap_err();
    assert!(e.to_string().contains("not programmed"), "{e}");
    // A corrupted record.
    let mut bad = enr2.clone();
    bad.salt = "!!".into();
    assert!(matches!(
        derive(&bad, &mut YubikeyHmacSource::new(&mut conn, Slot::Two, &mut progress)),
        Err(DeriveError::BadEnrollment(_))
    ));
}

/// A stand-in FIDO2 hmac-secret source: shows the backend seam.
struct FakeFido;
impl SecretSource for FakeFido {
    fn backend(&mut self) -> Result<Backend, DeriveError> {
        Ok(Backend::Fido2HmacSecret { rp_id: "example.com".into(), credential_id: "AAAA".into() })
    }
    fn respond(&mut self, challenge: &[u8; 32]) -> Result<Zeroizing<Vec<u8>>, DeriveError> {
        Ok(Zeroizing::new(default_provider().hmac(HashAlg::Sha256, b"cred-random", &[challenge])))
    }
}

#[test]
fn backends_do_not_mix() {
    let (enr, s1) = enroll(&mut FakeFido, b"salt").unwrap();
    assert_eq!(*derive(&enr, &mut FakeFido).unwrap(), *s1);
    let mut conn = yk(&KEY, 1);
    let mut progress = |_| {};
    let e = derive(&enr, &mut YubikeyHmacSource::new(&mut conn, Slot::One, &mut progress)).unwrap_err();
    assert!(matches!(e, DeriveError::BackendMismatch { .. }));
}

#[test]
fn identical_across_processes() {
    let mut outs = Vec::new();
    for _ in 0..2 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hwkey"))
            .args(["virtual", "yubikey", "--udp", "127.0.0.1:0", "--slot1-hmac", &hex::encode(KEY)])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on udp://").unwrap().to_string();
        let mut conn = OtpConnection::new(UdpTransport::connect(&addr).unwrap());
        outs.push(derive_with(&mut conn, Slot::One, b"cross-process"));
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0], expected(&KEY, b"cross-process"));
}
