//! "A stable 32-byte secret from the user's key" with both backends (YubiKey
//! HMAC-SHA1 and FIDO2 hmac-secret): identical across runs and processes for
//! the same key and salt, different for another salt or key; enrollment
//! records round-trip; wrong keys, credentials and PINs give clear errors.
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
    assert!(matches!(e, DeriveError::WrongKey), "{e:?}");
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
        Ok(Backend::Fido2HmacSecret { rp_id: "example.com".into(), credential_id: "AAAA".into(), uv: false })
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

// ---------------------------------------------------------------------------
// FIDO2 hmac-secret backend.

mod fido2 {
    use super::*;
    use hwkey::authenticator::Authenticator;
    use hwkey::client::webauthn::{FixedPin, WebAuthnClient};
    use hwkey::client::{ClientError, Device, Op};
    use hwkey::derive::{Fido2HmacSecretSource, Fido2Options};
    use hwkey::proto::webauthn::{RequestOptionsJson, b64url_decode};
    use hwkey::transport::ctaphid::DeviceConfig;
    use hwkey::transport::memory::MemoryDevice;
    use hwkey::transport::udp::UdpTransport as CtapUdp;
    use std::process::Child;
    use std::time::Duration;

    const RP: &str = "vault.hwkey.test";

    fn op() -> Op {
        Op::timeout(Duration::from_secs(20))
    }

    fn memory() -> MemoryDevice {
        MemoryDevice::spawn(Authenticator::in_memory().unwrap(), DeviceConfig::default())
    }

    fn open(d: &MemoryDevice) -> Device {
        Device::open(d.connect(), &op()).unwrap()
    }

    /// Create a credential and enroll `salt` with it.
    fn enroll_on(dev: &mut Device, pin: Option<&str>, uv: Option<bool>, salt: &[u8]) -> (Enrollment, [u8; 32]) {
        let ui = FixedPin::new(pin.map(str::to_owned));
        let opts = Fido2Options { uv, ..Fido2Options::new(RP) };
        let mut src = Fido2HmacSecretSource::create(dev, &ui, &opts, op()).unwrap();
        let (e, s) = enroll(&mut src, salt).unwrap();
        (e, *s)
    }

    fn derive_on(dev: &mut Device, pin: Option<&str>, e: &Enrollment) -> Result<[u8; 32], DeriveError> {
        let ui = FixedPin::new(pin.map(str::to_owned));
        let mut src = Fido2HmacSecretSource::for_enrollment(dev, &ui, e, op())?;
        derive(e, &mut src).map(|s| *s)
    }

    fn unchecked_on(dev: &mut Device, e: &Enrollment, salt: &[u8]) -> [u8; 32] {
        let ui = FixedPin::new(None);
        let mut src = Fido2HmacSecretSource::for_enrollment(dev, &ui, e, op()).unwrap();
        *derive_unchecked(&e.backend, salt, &mut src).unwrap()
    }

    /// The documented recipe, with the key's hmac-secret output obtained
    /// through the plain WebAuthn client (hmacGetSecret, salt1 = challenge).
    fn expected(dev: &mut Device, pin: Option<&str>, e: &Enrollment, salt: &[u8]) -> [u8; 32] {
        let p = default_provider();
        let challenge = p.sha256(&[b"hwkey-derive-v1", b"\0", b"fido2_hmac_secret", b"\0", salt]);
        let Backend::Fido2HmacSecret { rp_id, credential_id, uv } = &e.backend else { panic!() };
        let req: RequestOptionsJson = serde_json::from_value(serde_json::json!({
            "challenge": "AAAAAAAAAAAAAAAAAAAAAA",
            "rpId": rp_id,
            "allowCredentials": [{"type": "public-key", "id": credential_id}],
            "userVerification": if *uv { "required" } else { "discouraged" },
            "extensions": {"hmacGetSecret": {"salt1": hwkey::proto::webauthn::b64url_encode(&challenge)}}
        }))
        .unwrap();
        let ui = FixedPin::new(pin.map(str::to_owned));
        let r = WebAuthnClient::new(&ui).authenticate(dev, &req, &format!("https://{rp_id}"), &op()).unwrap();
        let response = r.client_extension_results.hmac_get_secret.unwrap().output1;
        let mut out = [0u8; 32];
        p.hkdf_sha256(salt, &response, b"hwkey-derive-v1 fido2_hmac_secret", &mut out).unwrap();
        out
    }

    #[test]
    fn same_key_same_salt_same_secret() {
        let d = memory();
        let mut dev = open(&d);
        let (e, s) = enroll_on(&mut dev, None, None, b"salt A");
        let Backend::Fido2HmacSecret { rp_id, credential_id, uv } = &e.backend else { panic!("{e:?}") };
        assert_eq!((rp_id.as_str(), *uv), (RP, false));
        assert!(!b64url_decode(credential_id).unwrap().is_empty());
        // Through the stored record, several times.
        let e2: Enrollment = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(e2, e);
        for _ in 0..3 {
            assert_eq!(derive_on(&mut dev, None, &e2).unwrap(), s);
        }
        // Again from a fresh connection to the same key.
        let mut dev2 = open(&d);
        assert_eq!(derive_on(&mut dev2, None, &e2).unwrap(), s);
        // The recipe as documented.
        assert_eq!(expected(&mut dev, None, &e, b"salt A"), s);
        // Another salt, same credential: other bytes (and stable too).
        let b = unchecked_on(&mut dev, &e, b"salt B");
        assert_ne!(b, s);
        assert_eq!(unchecked_on(&mut dev, &e, b"salt B"), b);
        assert_eq!(unchecked_on(&mut dev, &e, b"salt A"), s);
    }

    #[test]
    fn another_key_other_secret_and_wrong_credential_is_refused() {
        let (da, db) = (memory(), memory());
        let (mut a, mut b) = (open(&da), open(&db));
        let (ea, sa) = enroll_on(&mut a, None, None, b"same salt");
        let (eb, sb) = enroll_on(&mut b, None, None, b"same salt");
        assert_ne!(sa, sb);
        // Another credential on the same key: other bytes too.
        let (ea2, sa2) = enroll_on(&mut a, None, None, b"same salt");
        assert_ne!(sa2, sa);
        assert_ne!(ea2.backend, ea.backend);
        // Key B does not hold A's credential: a clear error, not garbage.
        let e = derive_on(&mut b, None, &ea).unwrap_err();
        assert!(matches!(e, DeriveError::CredentialNotFound { .. }), "{e:?}");
        assert!(e.to_string().contains("does not hold the enrolled credential"), "{e}");
        // A record whose check value belongs to another credential: WrongKey.
        let mut crossed = ea.clone();
        crossed.check = eb.check.clone();
        assert!(matches!(derive_on(&mut a, None, &crossed), Err(DeriveError::WrongKey)));
        // A credential id that is no credential at all.
        let mut bogus = ea.clone();
        if let Backend::Fido2HmacSecret { credential_id, .. } = &mut bogus.backend {
            *credential_id = "AAECAwQFBgcICQoLDA0ODw".into();
        }
        assert!(matches!(derive_on(&mut a, None, &bogus), Err(DeriveError::CredentialNotFound { .. })));
        // Malformed records.
        let mut bad = ea.clone();
        if let Backend::Fido2HmacSecret { credential_id, .. } = &mut bad.backend {
            *credential_id = "!!".into();
        }
        assert!(matches!(derive_on(&mut a, None, &bad), Err(DeriveError::BadEnrollment(_))));
        let yk = Enrollment { backend: Backend::YubikeyHmac { slot: 1, serial: None }, ..ea.clone() };
        assert!(matches!(derive_on(&mut a, None, &yk), Err(DeriveError::BackendMismatch { .. })));
        // A FIDO2 enrollment offered to a YubiKey: refused before any device I/O.
        let mut conn = yk_conn();
        let mut progress = |_| {};
        assert!(matches!(
            YubikeyHmacSource::for_enrollment(&mut conn, &ea, &mut progress),
            Err(DeriveError::BackendMismatch { .. })
        ));
    }

    fn yk_conn() -> OtpConnection<VirtualYubikey> {
        yk(&KEY, 1)
    }

    #[test]
    fn with_a_pin() {
        let d = memory();
        let mut dev = open(&d);
        dev.set_pin("123456", &op()).unwrap();
        assert_eq!(dev.option("clientPin"), Some(true));
        // The key has a PIN: by default every derivation verifies the user;
        // one FixedPin serves credential creation and the first derivation.
        let (e, s) = enroll_on(&mut dev, Some("123456"), None, b"pin salt");
        assert!(matches!(e.backend, Backend::Fido2HmacSecret { uv: true, .. }), "{e:?}");
        assert_eq!(derive_on(&mut dev, Some("123456"), &e).unwrap(), s);
        assert_eq!(expected(&mut dev, Some("123456"), &e, b"pin salt"), s);
        let e_none = derive_on(&mut dev, None, &e).unwrap_err();
        assert!(matches!(e_none, DeriveError::Client(ClientError::PinRequired)), "{e_none:?}");
        let e_bad = derive_on(&mut dev, Some("000000"), &e).unwrap_err();
        assert!(matches!(e_bad, DeriveError::Client(ClientError::PinInvalid { .. })), "{e_bad:?}");
        assert!(e_bad.to_string().contains("wrong PIN"), "{e_bad}");
        // Still fine afterwards.
        assert_eq!(derive_on(&mut dev, Some("123456"), &e).unwrap(), s);
        // An enrollment without user verification on the same key needs no PIN
        // to derive, and is stable too.
        let (e2, s2) = enroll_on(&mut dev, Some("123456"), Some(false), b"pin salt");
        assert!(matches!(e2.backend, Backend::Fido2HmacSecret { uv: false, .. }));
        assert_eq!(derive_on(&mut dev, None, &e2).unwrap(), s2);
        assert_ne!(s2, s);
    }

    #[test]
    fn uv_on_a_key_without_pin_is_a_clear_error() {
        let d = memory();
        let mut dev = open(&d);
        let ui = FixedPin::new(None);
        let opts = Fido2Options { uv: Some(true), ..Fido2Options::new(RP) };
        let e = Fido2HmacSecretSource::create(&mut dev, &ui, &opts, op()).unwrap_err();
        assert!(e.to_string().contains("set a PIN first"), "{e}");
    }

    struct Server(Child, String);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn serve(state: &std::path::Path, pin: Option<&str>) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hwkey"));
        cmd.args(["virtual", "serve", "--udp", "127.0.0.1:0", "--state"]).arg(state);
        if let Some(p) = pin {
            cmd.args(["--pin", p]);
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on udp://").unwrap_or_else(|| panic!("{line:?}")).to_owned();
        Server(child, addr)
    }

    fn connect(s: &Server) -> Device {
        Device::open(CtapUdp::connect(&s.1).unwrap(), &op()).unwrap()
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("hwkey-derive-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn identical_across_processes() {
        for pin in [None, Some("4321")] {
            let tag = if pin.is_some() { "pin" } else { "nopin" };
            let state = temp(&format!("{tag}.json"));
            let (enrollment, first) = {
                let s = serve(&state, pin);
                let mut dev = connect(&s);
                enroll_on(&mut dev, pin, None, b"cross-process")
            };
            assert_eq!(matches!(enrollment.backend, Backend::Fido2HmacSecret { uv: true, .. }), pin.is_some());
            let record = serde_json::to_string(&enrollment).unwrap();
            // A second process on the same state file: the same key.
            let s = serve(&state, pin);
            let mut dev = connect(&s);
            let again: Enrollment = serde_json::from_str(&record).unwrap();
            assert_eq!(derive_on(&mut dev, pin, &again).unwrap(), first, "{tag}");
            assert_eq!(expected(&mut dev, pin, &again, b"cross-process"), first);
            assert_ne!(unchecked_on_pin(&mut dev, pin, &again, b"another salt"), first);
            drop(s);
            // Another process with another state file: another key.
            let other_state = temp(&format!("{tag}-other.json"));
            let other = serve(&other_state, pin);
            let mut dev = connect(&other);
            let e = derive_on(&mut dev, pin, &again).unwrap_err();
            assert!(matches!(e, DeriveError::CredentialNotFound { .. }), "{e:?}");
            let (_, theirs) = enroll_on(&mut dev, pin, None, b"cross-process");
            assert_ne!(theirs, first);
            let _ = std::fs::remove_file(&state);
            let _ = std::fs::remove_file(&other_state);
        }
    }

    fn unchecked_on_pin(dev: &mut Device, pin: Option<&str>, e: &Enrollment, salt: &[u8]) -> [u8; 32] {
        let ui = FixedPin::new(pin.map(str::to_owned));
        let mut src = Fido2HmacSecretSource::for_enrollment(dev, &ui, e, op()).unwrap();
        *derive_unchecked(&e.backend, salt, &mut src).unwrap()
    }
}
