//! One test per verification step of WebAuthn L3 §7.1 (registration) and
//! §7.2 (authentication): each builds a valid response, breaks only that step,
//! and asserts the step's specific error code.

use hwkey::crypto::default_provider;
use hwkey::proto::auth_data::Flags;
use hwkey::proto::cbor::MapBuilder;
use hwkey::proto::cose::CoseAlgorithm;
use hwkey::proto::webauthn::*;
use hwkey::server::testing::{ResponseParams, SoftCredential};
use hwkey::server::*;
use std::time::{Duration, SystemTime};

const RP: &str = "example.com";
const ORIGIN: &str = "https://login.example.com";

fn rp() -> RelyingParty {
    RelyingParty::new(RpConfig::new(RP, "Example", ORIGIN)).unwrap()
}

fn params() -> ResponseParams {
    ResponseParams::new(RP, ORIGIN)
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn start_reg(rp: &RelyingParty, uv: Option<UserVerification>) -> (Vec<u8>, RegistrationState) {
    let (opts, state) = rp
        .start_registration(
            RegistrationRequest {
                user_id: b"user-1".to_vec(),
                user_name: "alice".into(),
                user_verification: uv,
                ..Default::default()
            },
            now(),
        )
        .unwrap();
    (opts.challenge.0, state)
}

/// Register with params; return the error code or "ok".
fn reg_with(
    rp: &RelyingParty,
    cred: &SoftCredential,
    p: &ResponseParams,
    edit: impl FnOnce(&mut RegistrationResponseJson, &mut RegistrationState),
) -> Result<RegistrationResult, String> {
    let (challenge, mut state) = start_reg(rp, None);
    let mut resp = cred.register(&challenge, p).unwrap();
    edit(&mut resp, &mut state);
    rp.finish_registration(state, &resp, now()).map_err(|e| e.code().to_string())
}

fn new_cred() -> SoftCredential {
    SoftCredential::new(default_provider(), CoseAlgorithm::ES256).unwrap()
}

#[test]
fn registration_happy_path_es256_and_eddsa() {
    for alg in [CoseAlgorithm::ES256, CoseAlgorithm::EDDSA] {
        let rp = rp();
        let cred = SoftCredential::new(default_provider(), alg).unwrap();
        let r = reg_with(&rp, &cred, &params(), |_, _| {}).unwrap();
        assert_eq!(r.credential.credential_id.0, cred.credential_id);
        assert_eq!(r.credential.algorithm, alg);
        assert_eq!(r.credential.attestation_format, "none");
        assert!(r.user_verified);
        let mut p = params();
        p.fmt = "packed".into();
        let r = reg_with(&rp, &cred, &p, |_, _| {}).unwrap();
        assert_eq!(r.credential.attestation_format, "packed");
        assert_eq!(r.attestation.attestation_type, hwkey::server::attestation::AttestationType::SelfAttestation);
    }
}

fn reg_err(p: ResponseParams, edit: impl FnOnce(&mut RegistrationResponseJson, &mut RegistrationState)) -> String {
    reg_with(&rp(), &new_cred(), &p, edit).unwrap_err()
}

#[test]
fn reg_step3_credential_type() {
    assert_eq!(reg_err(params(), |r, _| r.type_ = "password".into()), "malformed_request");
}

#[test]
fn reg_expired_challenge() {
    assert_eq!(reg_err(params(), |_, s| s.expires_unix_ms = 1), "challenge_expired");
}

#[test]
fn reg_step5_client_data_json_malformed() {
    assert_eq!(
        reg_err(params(), |r, _| r.response.client_data_json = Base64Url(b"{not json".to_vec())),
        "malformed_client_data"
    );
}

#[test]
fn reg_step7_type() {
    let mut p = params();
    p.type_ = Some("webauthn.get".into());
    assert_eq!(reg_err(p, |_, _| {}), "client_data_type_mismatch");
}

#[test]
fn reg_step8_challenge() {
    assert_eq!(reg_err(params(), |_, s| s.challenge = Base64Url(vec![0; 32])), "challenge_mismatch");
}

#[test]
fn reg_step9_origin() {
    let mut p = params();
    p.origin = "https://evil.example.net".into();
    assert_eq!(reg_err(p, |_, _| {}), "origin_mismatch");
    // A subdomain is refused unless subdomains are opted in.
    let mut p = params();
    p.origin = "https://other.example.com".into();
    assert_eq!(reg_err(p.clone(), |_, _| {}), "origin_mismatch");
    let mut cfg = RpConfig::new(RP, "Example", ORIGIN);
    cfg.allow_subdomains = true;
    let rp = RelyingParty::new(cfg).unwrap();
    assert!(reg_with(&rp, &new_cred(), &p, |_, _| {}).is_ok());
}

#[test]
fn reg_step10_cross_origin_and_top_origin() {
    let mut p = params();
    p.cross_origin = Some(true);
    p.top_origin = Some("https://top.example.org".into());
    assert_eq!(reg_err(p.clone(), |_, _| {}), "cross_origin_not_allowed");
    let mut cfg = RpConfig::new(RP, "Example", ORIGIN);
    cfg.allow_cross_origin = true;
    cfg.allowed_top_origins = vec!["https://allowed.example.org".into()];
    let rp = RelyingParty::new(cfg.clone()).unwrap();
    assert_eq!(reg_with(&rp, &new_cred(), &p, |_, _| {}).unwrap_err(), "top_origin_mismatch");
    cfg.allowed_top_origins = vec!["https://top.example.org".into()];
    let rp = RelyingParty::new(cfg).unwrap();
    assert!(reg_with(&rp, &new_cred(), &p, |_, _| {}).is_ok());
    // topOrigin without crossOrigin is inconsistent.
    let code = reg_with(&rp, &new_cred(), &params(), |r, _| {
        let mut c = CollectedClientData::parse(&r.response.client_data_json).unwrap();
        c.cross_origin = Some(false);
        c.top_origin = Some("https://top.example.org".into());
        r.response.client_data_json = Base64Url(serde_json::to_vec(&c).unwrap());
    });
    assert_eq!(code.unwrap_err(), "top_origin_mismatch");
}

/// Review finding (#13): cross-origin allowed with no top origins configured
/// accepted any embedding site; it must accept none.
#[test]
fn cross_origin_with_no_configured_top_origins_refuses_every_top_origin() {
    let mut p = params();
    p.cross_origin = Some(true);
    p.top_origin = Some("https://evil.example.net".into());
    let mut cfg = RpConfig::new(RP, "Example", ORIGIN);
    cfg.allow_cross_origin = true;
    let rp = RelyingParty::new(cfg).unwrap();
    assert_eq!(reg_with(&rp, &new_cred(), &p, |_, _| {}).unwrap_err(), "top_origin_mismatch");
}

#[test]
fn reg_step12_attestation_object() {
    assert_eq!(
        reg_err(params(), |r, _| r.response.attestation_object = Base64Url(vec![0xa1, 0x01])),
        "malformed_attestation_object"
    );
}

#[test]
fn reg_step13_rp_id_hash() {
    let mut p = params();
    p.rp_id = "example.net".into();
    assert_eq!(reg_err(p, |_, _| {}), "rp_id_mismatch");
}

#[test]
fn reg_step14_user_present() {
    let mut p = params();
    p.flags = Flags::UV;
    assert_eq!(reg_err(p, |_, _| {}), "user_presence_required");
}

#[test]
fn reg_step15_user_verified() {
    let mut p = params();
    p.flags = Flags::UP;
    assert_eq!(
        reg_err(p.clone(), |_, s| s.user_verification = UserVerification::Required),
        "user_verification_required"
    );
    // Preferred does not enforce.
    assert!(reg_with(&rp(), &new_cred(), &p, |_, _| {}).is_ok());
}

#[test]
fn reg_step16_backup_flags() {
    let mut p = params();
    p.flags = Flags::UP | Flags::BS;
    assert_eq!(reg_err(p, |_, _| {}), "invalid_backup_flags");
    let mut p = params();
    p.flags = Flags::UP | Flags::BE | Flags::BS;
    let r = reg_with(&rp(), &new_cred(), &p, |_, _| {}).unwrap();
    assert!(r.credential.backup_eligible && r.credential.backed_up);
}

#[test]
fn reg_step19_algorithm() {
    let mut cfg = RpConfig::new(RP, "Example", ORIGIN);
    cfg.algorithms = vec![CoseAlgorithm::EDDSA];
    let rp = RelyingParty::new(cfg).unwrap();
    assert_eq!(reg_with(&rp, &new_cred(), &params(), |_, _| {}).unwrap_err(), "algorithm_not_allowed");
}

#[test]
fn reg_step20_extension_outputs() {
    let rp = rp();
    let (opts, state) = rp
        .start_registration(
            RegistrationRequest {
                user_id: b"u".to_vec(),
                user_name: "bob".into(),
                extensions: Some(ClientExtensionInputs {
                    credential_protection_policy: Some("userVerificationRequired".into()),
                    enforce_credential_protection_policy: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
    let cred = new_cred();
    let mut p = params();
    p.extensions = Some(MapBuilder::new().insert("credProtect", 1).build());
    let resp = cred.register(&opts.challenge, &p).unwrap();
    assert_eq!(rp.finish_registration(state.clone(), &resp, now()).unwrap_err().code(), "extension_mismatch");
    p.extensions = Some(MapBuilder::new().insert("credProtect", 3).build());
    let resp = cred.register(&opts.challenge, &p).unwrap();
    assert!(rp.finish_registration(state, &resp, now()).is_ok());
}

#[test]
fn reg_step21_format() {
    let mut p = params();
    p.fmt = "made-up".into();
    assert_eq!(reg_err(p, |_, _| {}), "attestation_format_unsupported");
}

#[test]
fn reg_step22_attestation_signature() {
    let mut p = params();
    p.fmt = "packed".into();
    let code = reg_err(p, |r, _| {
        // Re-sign nothing: change the client data after signing, keeping the challenge valid.
        let mut c = CollectedClientData::parse(&r.response.client_data_json).unwrap();
        c.cross_origin = None;
        let mut j = serde_json::to_value(&c).unwrap();
        j["extra"] = serde_json::json!("x");
        r.response.client_data_json = Base64Url(serde_json::to_vec(&j).unwrap());
    });
    assert_eq!(code, "attestation_bad_signature");
}

#[test]
fn reg_step24_trust_policy() {
    let mut cfg = RpConfig::new(RP, "Example", ORIGIN);
    cfg.attestation_policy.require_trusted = true;
    let rp = RelyingParty::new(cfg).unwrap();
    assert_eq!(reg_with(&rp, &new_cred(), &params(), |_, _| {}).unwrap_err(), "attestation_untrusted");
}

#[test]
fn reg_step25_credential_id_length() {
    let mut cred = new_cred();
    cred.credential_id = vec![7; 1024];
    assert_eq!(reg_with(&rp(), &cred, &params(), |_, _| {}).unwrap_err(), "credential_id_too_long");
    cred.credential_id = vec![7; 1023];
    assert!(reg_with(&rp(), &cred, &params(), |_, _| {}).is_ok());
}

#[test]
fn reg_attested_credential_id_is_authoritative() {
    let cred = new_cred();
    let r = reg_with(&rp(), &cred, &params(), |r, _| {
        r.raw_id = Base64Url(vec![1, 2, 3]);
        r.id = b64url_encode(&[1, 2, 3]);
    })
    .unwrap();
    assert_eq!(r.credential.credential_id.0, cred.credential_id);
}

#[test]
fn reg_step26_excluded_credential() {
    let cred = new_cred();
    let id = cred.credential_id.clone();
    assert_eq!(
        reg_with(&rp(), &cred, &params(), |_, s| s.exclude_credentials = vec![Base64Url(id)]).unwrap_err(),
        "credential_excluded"
    );
}

// ---------- §7.2 ----------

struct Fixture {
    rp: RelyingParty,
    cred: SoftCredential,
    record: CredentialRecord,
}

fn fixture_with(cfg: RpConfig, flags: u8) -> Fixture {
    let rp = RelyingParty::new(cfg).unwrap();
    let cred = new_cred();
    let mut p = params();
    p.flags = flags;
    let record = reg_with(&rp, &cred, &p, |_, _| {}).unwrap().credential;
    Fixture { rp, cred, record }
}

fn fixture() -> Fixture {
    fixture_with(RpConfig::new(RP, "Example", ORIGIN), Flags::UP | Flags::UV)
}

impl Fixture {
    fn login(
        &mut self,
        p: &ResponseParams,
        edit: impl FnOnce(&mut AuthenticationResponseJson, &mut AuthenticationState, &mut CredentialRecord),
    ) -> Result<AuthenticationResult, String> {
        let (opts, mut state) = self
            .rp
            .start_authentication(
                AuthenticationRequest {
                    user_id: Some(self.record.user_id.0.clone()),
                    allow_credentials: vec![CredentialDescriptor::public_key(
                        self.record.credential_id.0.clone(),
                        None,
                    )],
                    ..Default::default()
                },
                now(),
            )
            .unwrap();
        let mut resp = self.cred.assert(&opts.challenge, p).unwrap();
        let mut record = self.record.clone();
        edit(&mut resp, &mut state, &mut record);
        self.rp.finish_authentication(state, &resp, &record, now()).map_err(|e| e.code().to_string())
    }
}

fn auth_err(
    p: ResponseParams,
    edit: impl FnOnce(&mut AuthenticationResponseJson, &mut AuthenticationState, &mut CredentialRecord),
) -> String {
    fixture().login(&p, edit).unwrap_err()
}

#[test]
fn authentication_happy_path_and_counter_update() {
    let mut f = fixture();
    let r = f.login(&params(), |_, _, _| {}).unwrap();
    assert_eq!(r.new_sign_count, f.cred.sign_count);
    assert!(r.user_verified && !r.counter_regressed && !r.backup_state_changed);
    // Discoverable flow: no user identified, userHandle present.
    let (opts, state) = f.rp.start_authentication(AuthenticationRequest::default(), now()).unwrap();
    assert!(opts.allow_credentials.is_empty());
    let mut p = params();
    p.user_handle = Some(f.record.user_id.0.clone());
    let resp = f.cred.assert(&opts.challenge, &p).unwrap();
    assert!(f.rp.finish_authentication(state, &resp, &f.record, now()).is_ok());
}

#[test]
fn auth_expired() {
    assert_eq!(auth_err(params(), |_, s, _| s.expires_unix_ms = 1), "challenge_expired");
}

#[test]
fn auth_step5_allow_credentials() {
    assert_eq!(
        auth_err(params(), |_, s, _| s.allow_credentials = vec![Base64Url(vec![9; 16])]),
        "credential_not_allowed"
    );
}

#[test]
fn auth_step6_user_checks() {
    assert_eq!(
        auth_err(params(), |_, s, _| s.user_id = Some(Base64Url(b"other".to_vec()))),
        "credential_user_mismatch"
    );
    let mut p = params();
    p.user_handle = Some(b"someone-else".to_vec());
    assert_eq!(auth_err(p.clone(), |_, _, _| {}), "user_handle_mismatch");
    // Discoverable: userHandle required and must be the credential's user.
    assert_eq!(
        auth_err(params(), |_, s, _| {
            s.user_id = None;
            s.allow_credentials.clear()
        }),
        "user_handle_missing"
    );
    assert_eq!(
        auth_err(p, |_, s, _| {
            s.user_id = None;
            s.allow_credentials.clear()
        }),
        "user_handle_mismatch"
    );
}

#[test]
fn auth_step7_record_must_match() {
    assert_eq!(
        auth_err(params(), |_, s, r| {
            s.allow_credentials.clear();
            r.credential_id = Base64Url(vec![5; 16])
        }),
        "unknown_credential"
    );
}

#[test]
fn auth_step11_type() {
    let mut p = params();
    p.type_ = Some("webauthn.create".into());
    assert_eq!(auth_err(p, |_, _, _| {}), "client_data_type_mismatch");
}

#[test]
fn auth_step12_challenge() {
    assert_eq!(auth_err(params(), |_, s, _| s.challenge = Base64Url(vec![1; 32])), "challenge_mismatch");
}

#[test]
fn auth_step13_origin() {
    let mut p = params();
    p.origin = "http://login.example.com".into();
    assert_eq!(auth_err(p, |_, _, _| {}), "origin_mismatch");
}

#[test]
fn auth_step14_cross_origin() {
    let mut p = params();
    p.cross_origin = Some(true);
    assert_eq!(auth_err(p, |_, _, _| {}), "cross_origin_not_allowed");
}

#[test]
fn auth_authenticator_data_malformed() {
    assert_eq!(
        auth_err(params(), |r, _, _| r.response.authenticator_data = Base64Url(vec![0; 36])),
        "malformed_authenticator_data"
    );
}

#[test]
fn auth_step15_rp_id_hash_and_appid() {
    let mut p = params();
    p.rp_id = "example.org".into();
    assert_eq!(auth_err(p, |_, _, _| {}), "rp_id_mismatch");
    // With appid in play and the client reporting appid:true, SHA-256(appid) is expected.
    let mut p = params();
    p.rp_id = "https://example.com/appid.json".into();
    let mut f = fixture();
    let r = f
        .login(&p, |r, s, _| {
            s.appid = Some("https://example.com/appid.json".into());
            r.client_extension_results.appid = Some(true);
        })
        .unwrap();
    assert!(r.appid_used);
    // ... and then the RP ID hash is not accepted.
    assert_eq!(
        f.login(&params(), |r, s, _| {
            s.appid = Some("https://example.com/appid.json".into());
            r.client_extension_results.appid = Some(true);
        })
        .unwrap_err(),
        "rp_id_mismatch"
    );
}

#[test]
fn auth_step16_user_present() {
    let mut p = params();
    p.flags = Flags::UV;
    assert_eq!(auth_err(p, |_, _, _| {}), "user_presence_required");
}

#[test]
fn auth_step17_user_verified() {
    let mut p = params();
    p.flags = Flags::UP;
    assert_eq!(auth_err(p, |_, s, _| s.user_verification = UserVerification::Required), "user_verification_required");
}

#[test]
fn auth_step18_backup_flags() {
    let mut p = params();
    p.flags = Flags::UP | Flags::BS;
    assert_eq!(auth_err(p, |_, _, _| {}), "invalid_backup_flags");
    let mut p = params();
    p.flags = Flags::UP | Flags::BE;
    assert_eq!(auth_err(p, |_, _, _| {}), "backup_eligibility_changed");
    // A backup-state change is reported, not refused.
    let mut f = fixture_with(RpConfig::new(RP, "Example", ORIGIN), Flags::UP | Flags::BE);
    let mut p = params();
    p.flags = Flags::UP | Flags::BE | Flags::BS;
    let r = f.login(&p, |_, _, _| {}).unwrap();
    assert!(r.backup_state_changed && r.backed_up);
}

#[test]
fn auth_step21_signature() {
    assert_eq!(
        auth_err(params(), |r, _, _| {
            let n = r.response.signature.0.len();
            r.response.signature.0[n - 1] ^= 1;
        }),
        "bad_signature"
    );
    // A signature over different authenticator data (counter bumped after signing).
    assert_eq!(auth_err(params(), |r, _, _| r.response.authenticator_data.0[36] ^= 0x40), "bad_signature");
    // Stored key garbage.
    assert_eq!(auth_err(params(), |_, _, rec| rec.public_key = Base64Url(vec![0xa0])), "invalid_stored_key");
}

#[test]
fn auth_step22_counter() {
    assert_eq!(auth_err(params(), |_, _, rec| rec.sign_count = 1000), "counter_regression");
    assert_eq!(auth_err(params(), |_, _, rec| rec.sign_count = 2), "counter_regression"); // equal is a regression
    let mut cfg = RpConfig::new(RP, "Example", ORIGIN);
    cfg.counter_policy = CounterPolicy::Report;
    let mut f = fixture_with(cfg, Flags::UP | Flags::UV);
    let r = f.login(&params(), |_, _, rec| rec.sign_count = 1000).unwrap();
    assert!(r.counter_regressed);
    assert_eq!(r.new_sign_count, 1000, "a reported regression never moves the stored counter back");
    // Both zero: no counter in use.
    let mut f = fixture();
    f.cred.sign_count = u32::MAX; // wraps to 0 on the next assertion
    let r = f.login(&params(), |_, _, rec| rec.sign_count = 0).unwrap();
    assert!(!r.counter_regressed);
}

#[test]
fn state_round_trips_through_json_and_expires() {
    let rp = rp();
    let (_, state) = start_reg(&rp, None);
    let s = serde_json::to_string(&state).unwrap();
    let back: RegistrationState = serde_json::from_str(&s).unwrap();
    assert_eq!(back, state);
    let (opts, state) = rp.start_authentication(AuthenticationRequest::default(), now()).unwrap();
    assert_eq!(state.expires_unix_ms - state.created_unix_ms, 300_000);
    assert_eq!(opts.timeout, Some(300_000));
    let later = now() + Duration::from_secs(301);
    let mut cred = new_cred();
    let resp = cred.assert(&opts.challenge, &params()).unwrap();
    let record = reg_with(&rp, &cred, &params(), |_, _| {}).unwrap().credential;
    assert_eq!(rp.finish_authentication(state, &resp, &record, later).unwrap_err().code(), "challenge_expired");
}

/// Review finding (#13): credential public keys were only checked at the
/// first sign-in, so unusable keys registered. Each of these must be refused
/// at registration.
#[test]
fn unusable_credential_keys_are_refused_at_registration() {
    use hwkey::proto::cose::{CoseKey, curve};
    let rp = rp();
    // An EC2 point off the curve.
    let mut c = new_cred();
    c.public_key = CoseKey::Ec2 { alg: Some(CoseAlgorithm::ES256), crv: curve::P256, x: vec![1; 32], y: vec![2; 32] };
    assert_eq!(reg_with(&rp, &c, &params(), |_, _| {}).unwrap_err(), "invalid_credential_key");
    // ES256 on a P-384 key.
    let mut c = new_cred();
    c.public_key = CoseKey::Ec2 { alg: Some(CoseAlgorithm::ES256), crv: curve::P384, x: vec![1; 48], y: vec![2; 48] };
    assert!(reg_with(&rp, &c, &params(), |_, _| {}).is_err());
    // An X25519 key labelled EdDSA.
    let mut c = SoftCredential::new(default_provider(), CoseAlgorithm::EDDSA).unwrap();
    if let CoseKey::Okp { crv, .. } = &mut c.public_key {
        *crv = curve::X25519;
    }
    assert_eq!(reg_with(&rp, &c, &params(), |_, _| {}).unwrap_err(), "invalid_credential_key");
    // The Ed25519 identity point (small order).
    let mut c = SoftCredential::new(default_provider(), CoseAlgorithm::EDDSA).unwrap();
    let mut id = vec![0u8; 32];
    id[0] = 1;
    c.public_key = CoseKey::Okp { alg: Some(CoseAlgorithm::EDDSA), crv: curve::ED25519, x: id };
    assert_eq!(reg_with(&rp, &c, &params(), |_, _| {}).unwrap_err(), "invalid_credential_key");
    // A good key still registers.
    assert!(reg_with(&rp, &new_cred(), &params(), |_, _| {}).is_ok());
}

/// Review finding (#13): a zero-length credential ID registered.
#[test]
fn empty_credential_id_is_refused() {
    let rp = rp();
    let mut c = new_cred();
    c.credential_id = Vec::new();
    let err = reg_with(&rp, &c, &params(), |r, _| {
        r.id = String::new();
        r.raw_id = Base64Url(Vec::new());
    })
    .unwrap_err();
    assert!(err == "invalid_credential_id" || err == "malformed_attestation_object", "{err}");
}

/// A conditional create (L3 §7.1 step 14) registers without user presence;
/// an ordinary one does not.
#[test]
fn conditional_create_does_not_require_user_presence() {
    let rp = rp();
    let cred = new_cred();
    let mut p = params();
    p.flags &= !0x01; // UP clear
    assert_eq!(reg_with(&rp, &cred, &p, |_, _| {}).unwrap_err(), "user_presence_required");
    let (opts, state) = rp
        .start_registration(
            RegistrationRequest {
                user_id: b"user-1".to_vec(),
                user_name: "alice".into(),
                conditional: true,
                ..Default::default()
            },
            now(),
        )
        .unwrap();
    let resp = cred.register(&opts.challenge.0, &p).unwrap();
    assert!(rp.finish_registration(state, &resp, now()).is_ok());
}

// ---------- the user-verification floor ----------

fn rp_with_uv(uv: UserVerification) -> RpConfig {
    let mut cfg = RpConfig::new(RP, "Example", ORIGIN);
    cfg.user_verification = uv;
    cfg
}

fn start_reg_asking(rp: &RelyingParty, asked: Option<UserVerification>) -> (CreationOptionsJson, RegistrationState) {
    rp.start_registration(
        RegistrationRequest {
            user_id: b"user-1".to_vec(),
            user_name: "alice".into(),
            user_verification: asked,
            ..Default::default()
        },
        now(),
    )
    .unwrap()
}

fn asked_uv(o: &CreationOptionsJson) -> Option<&str> {
    o.authenticator_selection.as_ref().and_then(|s| s.user_verification.as_deref())
}

/// The configured user verification is a floor for library callers too: a
/// registration request may raise it, never lower it, and the finish
/// checks the floor even against a state that says less.
#[test]
fn a_registration_request_cannot_lower_the_configured_user_verification() {
    use UserVerification::*;
    let rp = RelyingParty::new(rp_with_uv(Required)).unwrap();
    let cred = new_cred();
    let mut no_uv = params();
    no_uv.flags = Flags::UP;
    for asked in [None, Some(Discouraged), Some(Preferred), Some(Required)] {
        let (opts, state) = start_reg_asking(&rp, asked);
        assert_eq!(asked_uv(&opts), Some("required"), "{asked:?}");
        assert_eq!(state.user_verification, Required, "{asked:?}");
        let resp = cred.register(&opts.challenge.0, &no_uv).unwrap();
        assert_eq!(rp.finish_registration(state, &resp, now()).unwrap_err().code(), "user_verification_required");
    }
    // A state saying less (made elsewhere, or before the floor was raised).
    let (opts, mut state) = start_reg_asking(&rp, None);
    state.user_verification = Discouraged;
    let resp = cred.register(&opts.challenge.0, &no_uv).unwrap();
    assert_eq!(rp.finish_registration(state, &resp, now()).unwrap_err().code(), "user_verification_required");
    // With UV it registers.
    let (opts, state) = start_reg_asking(&rp, Some(Discouraged));
    let resp = cred.register(&opts.challenge.0, &params()).unwrap();
    assert!(rp.finish_registration(state, &resp, now()).is_ok());

    // A request raises a lower floor, and the raised requirement is checked.
    let rp = RelyingParty::new(rp_with_uv(Discouraged)).unwrap();
    let (opts, state) = start_reg_asking(&rp, Some(Required));
    assert_eq!((asked_uv(&opts), state.user_verification), (Some("required"), Required));
    let resp = cred.register(&opts.challenge.0, &no_uv).unwrap();
    assert_eq!(rp.finish_registration(state, &resp, now()).unwrap_err().code(), "user_verification_required");
    let (opts, state) = start_reg_asking(&rp, Some(Preferred));
    assert_eq!((asked_uv(&opts), state.user_verification), (Some("preferred"), Preferred));
    let (opts, state) = start_reg_asking(&rp, None);
    assert_eq!((asked_uv(&opts), state.user_verification), (Some("discouraged"), Discouraged));
    let resp = cred.register(&opts.challenge.0, &no_uv).unwrap();
    assert!(rp.finish_registration(state, &resp, now()).is_ok());
}

/// The same floor for authentications.
#[test]
fn an_authentication_request_cannot_lower_the_configured_user_verification() {
    use UserVerification::*;
    let mut f = fixture_with(rp_with_uv(Required), Flags::UP | Flags::UV);
    let mut no_uv = params();
    no_uv.flags = Flags::UP;
    let start = |f: &Fixture, asked: Option<UserVerification>| {
        f.rp.start_authentication(
            AuthenticationRequest {
                user_id: Some(f.record.user_id.0.clone()),
                user_verification: asked,
                ..Default::default()
            },
            now(),
        )
        .unwrap()
    };
    for asked in [None, Some(Discouraged), Some(Preferred), Some(Required)] {
        let (opts, state) = start(&f, asked);
        assert_eq!(opts.user_verification.as_deref(), Some("required"), "{asked:?}");
        assert_eq!(state.user_verification, Required, "{asked:?}");
        let resp = f.cred.assert(&opts.challenge, &no_uv).unwrap();
        assert_eq!(
            f.rp.finish_authentication(state, &resp, &f.record, now()).unwrap_err().code(),
            "user_verification_required",
            "{asked:?}"
        );
    }
    // A state saying less is checked against the floor.
    assert_eq!(f.login(&no_uv, |_, s, _| s.user_verification = Discouraged).unwrap_err(), "user_verification_required");
    assert!(f.login(&params(), |_, s, _| s.user_verification = Discouraged).is_ok());

    // A request raises a lower floor, and the raised requirement is checked.
    let mut f = fixture_with(rp_with_uv(Discouraged), Flags::UP);
    let (opts, state) = start(&f, Some(Required));
    assert_eq!((opts.user_verification.as_deref(), state.user_verification), (Some("required"), Required));
    let resp = f.cred.assert(&opts.challenge, &no_uv).unwrap();
    assert_eq!(
        f.rp.finish_authentication(state, &resp, &f.record, now()).unwrap_err().code(),
        "user_verification_required"
    );
    let (opts, state) = start(&f, None);
    assert_eq!((opts.user_verification.as_deref(), state.user_verification), (Some("discouraged"), Discouraged));
    let resp = f.cred.assert(&opts.challenge, &no_uv).unwrap();
    assert!(f.rp.finish_authentication(state, &resp, &f.record, now()).is_ok());
}
