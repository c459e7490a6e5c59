//! The OpenSSH sk-api mapping (hwkey::desktop::sk) against software
//! authenticators in memory: enroll ecdsa-sk and ed25519-sk keys, sign and
//! check the signature the way sshd does (over SHA-256(application) || flags
//! || counter || SHA-256(data)), resident keys (existing-key detection,
//! force, loading them back), verify-required with a PIN, no-touch-required,
//! and the error codes.
#![cfg(all(feature = "desktop", feature = "virtual"))]

use hwkey::authenticator::{Authenticator, AuthenticatorConfig, UserPresence};
use hwkey::client::{Device, Op};
use hwkey::crypto::{EcCurve, HashAlg, default_provider};
use hwkey::desktop::sk::{self, SkAlg, SkError, SkOptions, SkProvider, flags};
use hwkey::transport::ctaphid::DeviceConfig;
use hwkey::transport::memory::MemoryDevice;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

struct Key {
    dev: MemoryDevice,
    grant: Arc<AtomicBool>,
}

fn key(pin: Option<&str>) -> Key {
    let grant = Arc::new(AtomicBool::new(true));
    let g = grant.clone();
    let mut a = Authenticator::new(AuthenticatorConfig {
        user_presence: UserPresence::Callback(Box::new(move |_| g.load(Ordering::SeqCst))),
        ..Default::default()
    })
    .unwrap();
    if let Some(p) = pin {
        a.set_pin(p).unwrap();
    }
    Key { dev: MemoryDevice::spawn(a, DeviceConfig::default()), grant }
}

fn with<T>(keys: &[&Key], f: impl FnOnce(&SkProvider<'_>) -> T) -> T {
    let source = |op: &Op| keys.iter().map(|k| Device::open(k.dev.connect(), op).unwrap()).collect::<Vec<_>>();
    let log = |m: &str| eprintln!("sk: {m}");
    let p = SkProvider { devices: &source, log: &log, timeout: Duration::from_secs(10) };
    f(&p)
}

fn der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let int = |v: &[u8]| {
        let mut b = v.to_vec();
        if b.first().is_none_or(|x| x & 0x80 != 0) {
            b.insert(0, 0);
        }
        let mut out = vec![0x02, b.len() as u8];
        out.extend(b);
        out
    };
    let body = [int(r), int(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

/// sshd's check of an sk signature.
fn ssh_verify(alg: SkAlg, public_key: &[u8], application: &str, data: &[u8], sig: &sk::SignResponse) -> bool {
    let p = default_provider();
    let mut msg = p.sha256(&[application.as_bytes()]).to_vec();
    msg.push(sig.flags);
    msg.extend_from_slice(&sig.counter.to_be_bytes());
    msg.extend_from_slice(&p.sha256(&[data]));
    match alg {
        SkAlg::Ecdsa => {
            p.verify_ecdsa(EcCurve::P256, HashAlg::Sha256, public_key, &msg, &der(&sig.sig_r, &sig.sig_s)).is_ok()
        }
        SkAlg::Ed25519 => sig.sig_s.is_empty() && p.verify_ed25519(public_key, &msg, &sig.sig_r).is_ok(),
    }
}

const UP: u8 = flags::USER_PRESENCE_REQD;

#[test]
fn enroll_and_sign_ecdsa_and_ed25519() {
    let k = key(None);
    for (alg, len) in [(SkAlg::Ecdsa, 65), (SkAlg::Ed25519, 32)] {
        let e = with(&[&k], |p| p.enroll(alg, b"challenge", "ssh:", UP, None, &SkOptions::default())).unwrap();
        assert_eq!(e.public_key.len(), len);
        assert_eq!(e.flags, UP);
        assert!(!e.key_handle.is_empty());
        assert!(!e.signature.is_empty(), "packed attestation signature");
        assert!(!e.authdata.is_empty());
        let s = with(&[&k], |p| p.sign(alg, b"to be signed", "ssh:", &e.key_handle, UP, None, &SkOptions::default()))
            .unwrap();
        assert_eq!(s.flags & 0x01, 0x01, "UP flag");
        assert!(ssh_verify(alg, &e.public_key, "ssh:", b"to be signed", &s));
        assert!(!ssh_verify(alg, &e.public_key, "ssh:", b"other data", &s));
        assert!(!ssh_verify(alg, &e.public_key, "ssh:other", b"to be signed", &s));
    }
}

#[test]
fn sign_finds_the_key_that_holds_the_credential() {
    let (a, b) = (key(None), key(None));
    let e = with(&[&a], |p| p.enroll(SkAlg::Ecdsa, b"c", "ssh:", UP, None, &SkOptions::default())).unwrap();
    let s = with(&[&b, &a], |p| p.sign(SkAlg::Ecdsa, b"m", "ssh:", &e.key_handle, UP, None, &SkOptions::default()))
        .unwrap();
    assert!(ssh_verify(SkAlg::Ecdsa, &e.public_key, "ssh:", b"m", &s));
    // A key without it: not found.
    let r = with(&[&b], |p| p.sign(SkAlg::Ecdsa, b"m", "ssh:", &e.key_handle, UP, None, &SkOptions::default()));
    assert_eq!(r.unwrap_err(), SkError::DeviceNotFound);
    assert_eq!(
        with(&[], |p| p.enroll(SkAlg::Ecdsa, b"c", "ssh:", UP, None, &SkOptions::default())).unwrap_err(),
        SkError::DeviceNotFound
    );
}

#[test]
fn no_touch_required() {
    let k = key(None);
    let e = with(&[&k], |p| p.enroll(SkAlg::Ed25519, b"c", "ssh:", 0, None, &SkOptions::default())).unwrap();
    k.grant.store(false, Ordering::SeqCst);
    let s =
        with(&[&k], |p| p.sign(SkAlg::Ed25519, b"m", "ssh:", &e.key_handle, 0, None, &SkOptions::default())).unwrap();
    assert_eq!(s.flags & 0x01, 0, "no UP flag");
    assert!(ssh_verify(SkAlg::Ed25519, &e.public_key, "ssh:", b"m", &s));
    // With touch required and the touch refused: an error, not a hang.
    let r = with(&[&k], |p| p.sign(SkAlg::Ed25519, b"m", "ssh:", &e.key_handle, UP, None, &SkOptions::default()));
    assert!(r.is_err());
}

#[test]
fn resident_keys_need_the_pin_and_load_back() {
    let k = key(Some("1234"));
    let rk = UP | flags::RESIDENT_KEY;
    let o = sk::SkOptions::parse(&[sk::SkOption { name: "user".into(), value: "alice".into(), required: true }], true)
        .unwrap();
    assert_eq!(with(&[&k], |p| p.enroll(SkAlg::Ecdsa, b"c", "ssh:", rk, None, &o)).unwrap_err(), SkError::PinRequired);
    assert_eq!(
        with(&[&k], |p| p.enroll(SkAlg::Ecdsa, b"c", "ssh:", rk, Some("0000"), &o)).unwrap_err(),
        SkError::PinRequired
    );
    let e = with(&[&k], |p| p.enroll(SkAlg::Ecdsa, b"c", "ssh:", rk, Some("1234"), &o)).unwrap();
    // The same application and user again: exists, unless forced.
    assert_eq!(
        with(&[&k], |p| p.enroll(SkAlg::Ecdsa, b"c", "ssh:", rk, Some("1234"), &o)).unwrap_err(),
        SkError::CredentialExists
    );
    let forced =
        with(&[&k], |p| p.enroll(SkAlg::Ecdsa, b"c", "ssh:", rk | flags::FORCE_OPERATION, Some("1234"), &o)).unwrap();
    let e2 =
        with(&[&k], |p| p.enroll(SkAlg::Ed25519, b"c", "ssh:work", rk, Some("1234"), &SkOptions::default())).unwrap();
    // A non-ssh resident credential is not listed.
    let _ = e;
    assert_eq!(with(&[&k], |p| p.load_resident_keys(None, &SkOptions::default())).unwrap_err(), SkError::PinRequired);
    let keys = with(&[&k], |p| p.load_resident_keys(Some("1234"), &SkOptions::default())).unwrap();
    let mut apps: Vec<_> = keys.iter().map(|r| (r.application.clone(), r.alg)).collect();
    apps.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(apps, vec![("ssh:".to_owned(), SkAlg::Ecdsa), ("ssh:work".to_owned(), SkAlg::Ed25519)]);
    let mine = keys.iter().find(|r| r.application == "ssh:").unwrap();
    assert_eq!(mine.key.public_key, forced.public_key, "the forced enrollment replaced the first");
    assert_eq!(&mine.user_id[..5], b"alice");
    let work = keys.iter().find(|r| r.application == "ssh:work").unwrap();
    assert_eq!(work.key.key_handle, e2.key_handle);
    // The loaded key signs.
    let s = with(&[&k], |p| {
        p.sign(SkAlg::Ed25519, b"m", "ssh:work", &work.key.key_handle, UP, None, &SkOptions::default())
    })
    .unwrap();
    assert!(ssh_verify(SkAlg::Ed25519, &work.key.public_key, "ssh:work", b"m", &s));
}

#[test]
fn verify_required_needs_the_pin_to_sign() {
    let k = key(Some("1234"));
    let f = UP | flags::USER_VERIFICATION_REQD;
    let e = with(&[&k], |p| p.enroll(SkAlg::Ecdsa, b"c", "ssh:", f, Some("1234"), &SkOptions::default())).unwrap();
    assert_eq!(e.flags, f);
    let r = with(&[&k], |p| p.sign(SkAlg::Ecdsa, b"m", "ssh:", &e.key_handle, f, None, &SkOptions::default()));
    assert_eq!(r.unwrap_err(), SkError::PinRequired);
    let r = with(&[&k], |p| p.sign(SkAlg::Ecdsa, b"m", "ssh:", &e.key_handle, f, Some("9999"), &SkOptions::default()));
    assert_eq!(r.unwrap_err(), SkError::PinRequired);
    let s = with(&[&k], |p| p.sign(SkAlg::Ecdsa, b"m", "ssh:", &e.key_handle, f, Some("1234"), &SkOptions::default()))
        .unwrap();
    assert_eq!(s.flags & 0x05, 0x05, "UP and UV flags");
    assert!(ssh_verify(SkAlg::Ecdsa, &e.public_key, "ssh:", b"m", &s));
}
