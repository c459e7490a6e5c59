//! Inherence: fingerprint enrollment and built-in user verification, the
//! client against the software authenticator's simulated sensor, in
//! process over CTAPHID reports. One test group per sensor mode
//! (always, never, after:N), then UV lockout and the PIN fallback,
//! permissions, persistence, and the `uv` option of makeCredential /
//! getAssertion.
#![cfg(all(feature = "client", feature = "virtual"))]

use hwkey::authenticator::{Authenticator, AuthenticatorConfig, FingerprintMode, UserPresence};
use hwkey::client::bio::{EnrollEvent, status};
use hwkey::client::pin::{PinUvAuthToken, permissions};
use hwkey::client::webauthn::{FixedPin, WebAuthnClient};
use hwkey::client::{ClientError, Device, Op};
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::auth_data::AuthenticatorData;
use hwkey::proto::ctap2::bio_enrollment::{BioEnrollmentRequest, BioEnrollmentSubcommand};
use hwkey::proto::ctap2::client_pin::ClientPinRequest;
use hwkey::proto::ctap2::get_assertion::GetAssertionRequest;
use hwkey::proto::ctap2::make_credential::{CommandOptions, MakeCredentialRequest};
use hwkey::proto::ctap2::{
    CtapStatus, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
};
use hwkey::proto::webauthn::*;
use hwkey::transport::ctaphid::DeviceConfig;
use hwkey::transport::memory::MemoryDevice;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ORIGIN: &str = "https://login.example.com";
const PIN: &str = "123456";

fn op() -> Op {
    Op::timeout(Duration::from_secs(10))
}

/// An authenticator with a sensor in `mode` and a PIN, shared so that tests
/// can power-cycle it behind the device.
struct Key {
    auth: Arc<Mutex<Authenticator>>,
    mem: MemoryDevice,
}

impl Key {
    fn new(mode: FingerprintMode) -> Self {
        Self::with(AuthenticatorConfig { fingerprint: Some(mode), ..Default::default() }, Some(PIN))
    }
    fn with(config: AuthenticatorConfig, pin: Option<&str>) -> Self {
        let mut a = Authenticator::new(config).unwrap();
        if let Some(p) = pin {
            a.set_pin(p).unwrap();
        }
        let auth = Arc::new(Mutex::new(a));
        let mem = MemoryDevice::spawn(auth.clone(), DeviceConfig::default());
        Key { auth, mem }
    }
    fn open(&self) -> Device {
        Device::open(self.mem.connect(), &op()).unwrap()
    }
    fn power_cycle(&self) {
        self.auth.lock().unwrap().power_cycle().unwrap();
    }
}

fn be_token(dev: &mut Device) -> PinUvAuthToken {
    dev.pin_token(PIN, permissions::BIO_ENROLLMENT, None, &op()).unwrap()
}

/// Enroll one finger with the PIN; returns its ID and the progress seen.
fn enroll(dev: &mut Device, name: Option<&str>) -> (Vec<u8>, Vec<EnrollEvent>) {
    let t = be_token(dev);
    let mut events = Vec::new();
    let id = dev.bio_enroll(&t, name, None, &mut |e| events.push(e), &op()).unwrap();
    (id, events)
}

fn creation(user: u8, uv: &str) -> CreationOptionsJson {
    serde_json::from_value(json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": b64url_encode(&[user]), "name": format!("user-{user}"), "displayName": "User"},
        "challenge": "AAECAwQFBgcICQoLDA0ODw",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": uv},
    }))
    .unwrap()
}

fn request(uv: &str) -> RequestOptionsJson {
    serde_json::from_value(
        json!({"challenge": "ZmVkY2JhOTg3NjU0MzIxMA", "rpId": "example.com", "userVerification": uv}),
    )
    .unwrap()
}

fn register(dev: &mut Device, pin: Option<&str>, uv: &str) -> Result<AuthenticatorData, ClientError> {
    let ui = FixedPin::new(pin.map(str::to_owned));
    let r = WebAuthnClient::new(&ui).register(dev, &creation(1, uv), ORIGIN, &op())?;
    Ok(AttestationObject::parse(&r.response.attestation_object).unwrap().auth_data)
}

fn login(dev: &mut Device, pin: Option<&str>, uv: &str) -> Result<AuthenticatorData, ClientError> {
    let ui = FixedPin::new(pin.map(str::to_owned));
    let r = WebAuthnClient::new(&ui).authenticate(dev, &request(uv), ORIGIN, &op())?;
    Ok(AuthenticatorData::parse(&r.response.authenticator_data).unwrap())
}

#[test]
fn always_match_enroll_list_rename_delete_and_uv_without_pin() {
    let key = Key::new(FingerprintMode::AlwaysMatch);
    let mut dev = key.open();
    // A sensor without fingers: present, not configured.
    assert_eq!(dev.option("bioEnroll"), Some(false));
    assert_eq!(dev.option("uv"), Some(false));
    let info = dev.info().unwrap();
    assert_eq!(info.uv_modality, Some(2));
    assert_eq!(info.preferred_platform_uv_attempts, Some(3));
    let sensor = dev.bio_sensor_info(&op()).unwrap();
    assert_eq!((sensor.fingerprint_kind, sensor.max_samples, sensor.max_name_len), (Some(1), Some(4), Some(64)));
    // No finger yet: no UV token, and the list is empty.
    assert!(matches!(
        dev.uv_token(permissions::GET_ASSERTION, Some("example.com"), &op()),
        Err(ClientError::Unsupported(_))
    ));
    let t = be_token(&mut dev);
    assert!(dev.bio_list(&t, &op()).unwrap().is_empty());

    let (id, events) = enroll(&mut dev, Some("right index"));
    // One touch prompt per sample, with the remaining count, and a good status each time.
    assert_eq!(
        events,
        vec![
            EnrollEvent::Touch { remaining: None },
            EnrollEvent::Sample { status: status::GOOD, remaining: 3 },
            EnrollEvent::Touch { remaining: Some(3) },
            EnrollEvent::Sample { status: status::GOOD, remaining: 2 },
            EnrollEvent::Touch { remaining: Some(2) },
            EnrollEvent::Sample { status: status::GOOD, remaining: 1 },
            EnrollEvent::Touch { remaining: Some(1) },
            EnrollEvent::Sample { status: status::GOOD, remaining: 0 },
        ]
    );
    assert_eq!(dev.option("bioEnroll"), Some(true));
    assert_eq!(dev.option("uv"), Some(true));
    let t = be_token(&mut dev);
    let list = dev.bio_list(&t, &op()).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].template_id.clone(), list[0].name.as_deref()), (id.clone(), Some("right index")));

    // Built-in UV: UV required, no PIN given, and the key verifies the user.
    let ad = register(&mut dev, None, "required").unwrap();
    assert!(ad.flags.uv() && ad.flags.up());
    let ad = login(&mut dev, None, "required").unwrap();
    assert!(ad.flags.uv());
    // Two matches since the PIN was last entered (the enrollment used the PIN).
    assert_eq!(dev.refresh_info(&op()).unwrap().uv_count_since_last_pin_entry, Some(2));
    // A token from the finger can manage fingers (be permission).
    let t = dev.uv_token(permissions::BIO_ENROLLMENT, None, &op()).unwrap();
    assert!(t.via_uv);
    let second = dev.bio_enroll(&t, Some("left thumb"), None, &mut |_| {}, &op()).unwrap();
    let names: Vec<_> = dev.bio_list(&t, &op()).unwrap().into_iter().map(|e| e.name.unwrap_or_default()).collect();
    assert_eq!(names, vec!["right index", "left thumb"]);
    assert!(matches!(dev.bio_rename(&t, b"nope", "x", &op()), Err(ClientError::NoSuchFingerprint)));
    let long = "x".repeat(65);
    assert!(matches!(dev.bio_rename(&t, &second, &long, &op()), Err(ClientError::Status(CtapStatus::InvalidLength))));

    dev.bio_delete(&t, &id, &op()).unwrap();
    assert!(matches!(dev.bio_delete(&t, &id, &op()), Err(ClientError::NoSuchFingerprint)));
    dev.bio_delete(&t, &second, &op()).unwrap();
    // The last finger gone: UV is not configured any more.
    assert_eq!(dev.option("uv"), Some(false));
    assert!(dev.bio_list(&t, &op()).unwrap().is_empty());
}

#[test]
fn never_match_falls_back_to_pin_and_locks_out_after_five() {
    let key = Key::new(FingerprintMode::NeverMatch);
    let mut dev = key.open();
    // Enrollment still works.
    enroll(&mut dev, None);
    assert_eq!(dev.option("uv"), Some(true));
    assert_eq!(dev.uv_retries(&op()).unwrap(), 5);
    // One attempt: not recognized, with the retries left.
    let e = dev.uv_token(permissions::GET_ASSERTION, Some("example.com"), &op()).unwrap_err();
    assert!(matches!(e, ClientError::UvInvalid { retries: Some(4) }), "{e:?}");
    // The WebAuthn client tries preferredPlatformUvAttempts (3) times, then the PIN.
    let ad = register(&mut dev, Some(PIN), "required").unwrap();
    assert!(ad.flags.uv());
    // The PIN restored the UV retries.
    assert_eq!(dev.uv_retries(&op()).unwrap(), 5);
    // Without a PIN to fall back on, the UV failure is the answer.
    let e = login(&mut dev, None, "required").unwrap_err();
    assert!(matches!(e, ClientError::PinRequired), "{e:?}");
    assert_eq!(dev.uv_retries(&op()).unwrap(), 2);
    for _ in 0..2 {
        let _ = dev.uv_token(permissions::GET_ASSERTION, Some("example.com"), &op());
    }
    // Five failures in a row: blocked, and it survives a power cycle.
    assert_eq!(dev.uv_retries(&op()).unwrap(), 0);
    key.power_cycle();
    let mut dev = key.open();
    assert_eq!(dev.uv_retries(&op()).unwrap(), 0);
    let e = dev.uv_token(permissions::GET_ASSERTION, Some("example.com"), &op()).unwrap_err();
    assert!(matches!(e, ClientError::UvBlocked), "{e:?}");
    // Blocked UV: the client goes straight to the PIN.
    let ad = login(&mut dev, Some(PIN), "required").unwrap();
    assert!(ad.flags.uv());
    assert_eq!(dev.uv_retries(&op()).unwrap(), 5);
}

#[test]
fn match_after_n_tries() {
    let key = Key::new(FingerprintMode::MatchAfter(2));
    let mut dev = key.open();
    // During enrollment the first two samples are of poor quality and do not count.
    let (_, events) = enroll(&mut dev, None);
    let statuses: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            EnrollEvent::Sample { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, vec![status::POOR_QUALITY, status::POOR_QUALITY, 0, 0, 0, 0]);
    assert_eq!(events.first(), Some(&EnrollEvent::Touch { remaining: None }));
    assert!(events.contains(&EnrollEvent::Sample { status: status::POOR_QUALITY, remaining: 4 }));
    // Two misses, then a match: within the three preferred attempts, no PIN needed.
    let t = dev.uv_token_with_retries(permissions::GET_ASSERTION, Some("example.com"), &op()).unwrap();
    assert!(t.via_uv);
    assert_eq!(dev.uv_retries(&op()).unwrap(), 5, "a match restores the retries");
    let ad = register(&mut dev, None, "required").unwrap();
    assert!(ad.flags.uv());
    // Each verification starts again: one attempt alone is a miss.
    let e = dev.uv_token(permissions::GET_ASSERTION, Some("example.com"), &op()).unwrap_err();
    assert!(matches!(e, ClientError::UvInvalid { retries: Some(4) }), "{e:?}");
}

#[test]
fn uv_token_permissions_and_rp_binding() {
    let key = Key::new(FingerprintMode::AlwaysMatch);
    let mut dev = key.open();
    enroll(&mut dev, None);
    // mc/ga need an RP ID.
    let (ka, _) = {
        let r = dev.client_pin(&ClientPinRequest::get_key_agreement(2), &op()).unwrap();
        (r.key_agreement.unwrap(), ())
    };
    let (platform, _) = hwkey::crypto::pin_protocol::PinUvAuthProtocol::Two.encapsulate(dev.provider(), &ka).unwrap();
    let e = dev
        .client_pin(&ClientPinRequest::get_token_using_uv(2, platform.clone(), permissions::GET_ASSERTION, None), &op())
        .unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::MissingParameter)), "{e:?}");
    let e = dev.client_pin(&ClientPinRequest::get_token_using_uv(2, platform.clone(), 0x80, None), &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::UnauthorizedPermission)), "{e:?}");
    let e = dev.client_pin(&ClientPinRequest::get_token_using_uv(2, platform, 0, None), &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::InvalidParameter)), "{e:?}");

    // A UV token without the be permission cannot manage fingers.
    let t = dev.uv_token(permissions::CREDENTIAL_MANAGEMENT, None, &op()).unwrap();
    let e = dev.bio_list(&t, &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::PinAuthInvalid)), "{e:?}");
    // Unauthenticated bioEnrollment calls are refused (but cancel and sensor info need none).
    let req = BioEnrollmentRequest::fingerprint(BioEnrollmentSubcommand::EnumerateEnrollments, None);
    assert!(matches!(dev.bio_enrollment(&req, &op()), Err(ClientError::Status(CtapStatus::PuatRequired))));
    dev.bio_cancel(&op()).unwrap();

    // A UV token bound to example.com does not sign for other.example.
    let t = dev.uv_token(permissions::GET_ASSERTION, Some("example.com"), &op()).unwrap();
    let cdh = vec![7u8; 32];
    let ga = GetAssertionRequest {
        rp_id: "other.example".into(),
        client_data_hash: cdh.clone(),
        pin_uv_auth_param: Some(t.authenticate(&cdh)),
        pin_uv_auth_protocol: Some(t.protocol().number().into()),
        ..Default::default()
    };
    assert!(matches!(dev.get_assertion(&ga, &op()), Err(ClientError::Status(CtapStatus::PinAuthInvalid))));
}

#[test]
fn be_permission_needs_a_sensor() {
    let key = Key::with(AuthenticatorConfig::default(), Some(PIN));
    let mut dev = key.open();
    assert_eq!(dev.option("bioEnroll"), None);
    assert_eq!(dev.option("uv"), None);
    let e = dev.pin_token(PIN, permissions::BIO_ENROLLMENT, None, &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::UnauthorizedPermission)), "{e:?}");
    assert!(matches!(dev.bio_sensor_info(&op()), Err(ClientError::Unsupported(_))));
    let e = dev.client_pin(&ClientPinRequest::get_uv_retries(), &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::InvalidSubcommand)), "{e:?}");
}

fn mc_with_uv_option(rp: &str) -> MakeCredentialRequest {
    MakeCredentialRequest {
        client_data_hash: vec![1; 32],
        rp: PublicKeyCredentialRpEntity { id: rp.into(), name: None },
        user: PublicKeyCredentialUserEntity { id: vec![9], name: Some("u".into()), display_name: None },
        pub_key_cred_params: vec![PublicKeyCredentialParameters::public_key(-7)],
        options: Some(CommandOptions { rk: Some(true), up: None, uv: Some(true) }),
        ..Default::default()
    }
}

#[test]
fn uv_option_of_make_credential_and_get_assertion() {
    let key = Key::new(FingerprintMode::AlwaysMatch);
    let mut dev = key.open();
    // No finger: the uv option is invalid (and a PIN-protected key wants a token).
    let e = dev.make_credential(&mc_with_uv_option("example.com"), &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::InvalidOption)), "{e:?}");
    enroll(&mut dev, None);
    // With a finger: uv=true stands in for the token although a PIN is set.
    let r = dev.make_credential(&mc_with_uv_option("example.com"), &op()).unwrap();
    let ad = r.parsed_auth_data().unwrap();
    assert!(ad.flags.uv() && ad.flags.up());
    let id = ad.attested_credential.unwrap().credential_id;
    let ga = GetAssertionRequest {
        rp_id: "example.com".into(),
        client_data_hash: vec![2; 32],
        allow_list: Some(vec![PublicKeyCredentialDescriptor::public_key(id)]),
        options: Some(CommandOptions { rk: None, up: None, uv: Some(true) }),
        ..Default::default()
    };
    let a = dev.get_assertion(&ga, &op()).unwrap();
    assert!(a.parsed_auth_data().unwrap().flags.uv());
    // The user's name comes back only with UV.
    assert_eq!(a.user.and_then(|u| u.name), Some("u".to_owned()));
}

#[test]
fn uv_option_with_a_finger_that_never_matches() {
    let key = Key::new(FingerprintMode::NeverMatch);
    let mut dev = key.open();
    enroll(&mut dev, None);
    for left in (1..5).rev() {
        let e = dev.make_credential(&mc_with_uv_option("example.com"), &op()).unwrap_err();
        assert!(matches!(e, ClientError::Status(CtapStatus::UvInvalid) | ClientError::UvInvalid { .. }), "{e:?}");
        assert_eq!(dev.uv_retries(&op()).unwrap(), left);
    }
    let e = dev.make_credential(&mc_with_uv_option("example.com"), &op()).unwrap_err();
    assert!(matches!(e, ClientError::UvBlocked), "{e:?}");
    // Blocked before any touch from now on.
    let e = dev.make_credential(&mc_with_uv_option("example.com"), &op()).unwrap_err();
    assert!(matches!(e, ClientError::UvBlocked), "{e:?}");
    assert_eq!(key.auth.lock().unwrap().resident_credential_count(), 0);
}

#[test]
fn enrollments_persist_like_credentials_and_reset_erases_them() {
    let dir = std::env::temp_dir().join(format!("hwkey-bio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let _ = std::fs::remove_file(&path);
    let config = || AuthenticatorConfig {
        state_path: Some(path.clone()),
        fingerprint: Some(FingerprintMode::AlwaysMatch),
        ..Default::default()
    };
    let id = {
        let key = Key::with(config(), Some(PIN));
        let mut dev = key.open();
        enroll(&mut dev, Some("index")).0
    };
    // A new process on the same state file: the finger is still there.
    let key = Key::with(config(), None);
    assert_eq!(key.auth.lock().unwrap().enrollment_count(), 1);
    let mut dev = key.open();
    assert_eq!(dev.option("uv"), Some(true));
    let t = dev.uv_token(permissions::BIO_ENROLLMENT, None, &op()).unwrap();
    let list = dev.bio_list(&t, &op()).unwrap();
    assert_eq!((list[0].template_id.clone(), list[0].name.clone()), (id, Some("index".to_owned())));
    // The state file holds no biometric data beyond ID and name, and reset erases it.
    dev.reset(&op()).unwrap();
    assert_eq!(dev.option("uv"), Some(false));
    assert_eq!(key.auth.lock().unwrap().enrollment_count(), 0);
    drop(dev);
    drop(key);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn enrollment_needs_the_finger_and_ends_with_other_commands() {
    let key = Key::new(FingerprintMode::AlwaysMatch);
    let mut dev = key.open();
    let t = be_token(&mut dev);
    // The user does not touch: the enrollment is refused, nothing is stored.
    key.auth.lock().unwrap().set_user_presence(UserPresence::Deny);
    let e = dev.bio_enroll(&t, None, None, &mut |_| {}, &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::OperationDenied)), "{e:?}");
    key.auth.lock().unwrap().set_user_presence(UserPresence::Approve);
    assert_eq!(key.auth.lock().unwrap().enrollment_count(), 0);
    // An enrollment interrupted by another command cannot be continued.
    let begin = {
        let mut req = BioEnrollmentRequest::fingerprint(BioEnrollmentSubcommand::EnrollBegin, None);
        req.pin_uv_auth_param = Some(t.authenticate(&req.auth_message()));
        req.pin_uv_auth_protocol = Some(2);
        dev.bio_enrollment(&req, &op()).unwrap()
    };
    assert_eq!(begin.remaining_samples, Some(3));
    dev.get_info(&op()).unwrap();
    let params = hwkey::proto::ctap2::bio_enrollment::BioEnrollmentParams {
        template_id: begin.template_id.clone(),
        ..Default::default()
    };
    let mut req = BioEnrollmentRequest::fingerprint(BioEnrollmentSubcommand::EnrollCaptureNextSample, Some(params));
    req.pin_uv_auth_param = Some(t.authenticate(&req.auth_message()));
    req.pin_uv_auth_protocol = Some(2);
    let e = dev.bio_enrollment(&req, &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::NotAllowed)), "{e:?}");
    // The sensor holds five fingers at most.
    for _ in 0..5 {
        enroll(&mut dev, None);
    }
    let t = be_token(&mut dev);
    let e = dev.bio_enroll(&t, None, None, &mut |_| {}, &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::FpDatabaseFull)), "{e:?}");
}
