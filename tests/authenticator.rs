//! In-process tests of the software CTAP 2.1 authenticator: requests built
//! with the `proto` types, PIN/UV tokens obtained through the platform side of
//! `crypto::pin_protocol`, signatures checked with `crypto::cose_verify`.
#![cfg(feature = "virtual")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hwkey::authenticator::{AttestationMode, Authenticator, AuthenticatorConfig, Poll, UserPresence};
use hwkey::crypto::pin_protocol::{PinUvAuthProtocol, SharedSecret, pad_pin, pin_hash};
use hwkey::crypto::{SecretBytes, cose_verify, default_provider};
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::cbor::Value;
use hwkey::proto::cose::{CoseAlgorithm, CoseKey};
use hwkey::proto::ctap1;
use hwkey::proto::ctap2::client_pin::{ClientPinRequest, ClientPinResponse, permissions};
use hwkey::proto::ctap2::config::{ConfigRequest, ConfigSubcommand, SetMinPinLengthParams};
use hwkey::proto::ctap2::credential_management::{
    CredentialManagementParams, CredentialManagementRequest, CredentialManagementResponse,
    CredentialManagementSubcommand as Cm,
};
use hwkey::proto::ctap2::get_assertion::{GetAssertionRequest, GetAssertionResponse, GetNextAssertionRequest};
use hwkey::proto::ctap2::get_info::{GetInfoRequest, GetInfoResponse};
use hwkey::proto::ctap2::large_blobs::{EMPTY_LARGE_BLOB_ARRAY, LargeBlobsRequest, LargeBlobsResponse};
use hwkey::proto::ctap2::make_credential::{CommandOptions, MakeCredentialRequest, MakeCredentialResponse};
use hwkey::proto::ctap2::reset::ResetRequest;
use hwkey::proto::ctap2::selection::SelectionRequest;
use hwkey::proto::ctap2::{
    Ctap2Error, CtapCodec, CtapRequest, CtapStatus, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity, decode_response,
};
use hwkey::proto::extensions::{
    GetAssertionExtensionOutputs, GetAssertionExtensions, HmacSecretInput, MakeCredentialExtensionOutputs,
    MakeCredentialExtensions,
};

const CDH: [u8; 32] = [0x42; 32];
const PIN: &str = "1234";

fn dev() -> Authenticator {
    Authenticator::in_memory().unwrap()
}

fn dev_with(f: impl FnOnce(&mut AuthenticatorConfig)) -> Authenticator {
    let mut c = AuthenticatorConfig::default();
    f(&mut c);
    Authenticator::new(c).unwrap()
}

fn call<Q: CtapRequest, R: CtapCodec>(a: &mut Authenticator, req: &Q) -> Result<R, CtapStatus> {
    let resp = a.handle_cbor(&req.to_request_bytes());
    decode_response::<R>(&resp).map_err(|e| match e {
        Ctap2Error::Status(s) => s,
        other => panic!("bad response {other:?}"),
    })
}

/// A call whose success has no body.
fn call_empty<Q: CtapRequest>(a: &mut Authenticator, req: &Q) -> Result<(), CtapStatus> {
    let resp = a.handle_cbor(&req.to_request_bytes());
    match resp.split_first() {
        Some((0, [])) => Ok(()),
        Some((0, _)) => panic!("unexpected body"),
        Some((s, _)) => Err(CtapStatus::from_code(*s)),
        None => panic!("empty"),
    }
}

fn info(a: &mut Authenticator) -> GetInfoResponse {
    call(a, &GetInfoRequest).unwrap()
}

fn mc(rp: &str, user: &[u8]) -> MakeCredentialRequest {
    MakeCredentialRequest {
        client_data_hash: CDH.to_vec(),
        rp: PublicKeyCredentialRpEntity { id: rp.into(), name: Some("RP".into()) },
        user: PublicKeyCredentialUserEntity {
            id: user.to_vec(),
            name: Some(format!("user-{}", user[0])),
            display_name: Some("User".into()),
        },
        pub_key_cred_params: vec![PublicKeyCredentialParameters::public_key(-7)],
        ..Default::default()
    }
}

fn rk(mut r: MakeCredentialRequest) -> MakeCredentialRequest {
    r.options = Some(CommandOptions { rk: Some(true), up: None, uv: None });
    r
}

fn ga(rp: &str, allow: &[&[u8]]) -> GetAssertionRequest {
    GetAssertionRequest {
        rp_id: rp.into(),
        client_data_hash: CDH.to_vec(),
        allow_list: (!allow.is_empty())
            .then(|| allow.iter().map(|id| PublicKeyCredentialDescriptor::public_key(id.to_vec())).collect()),
        ..Default::default()
    }
}

struct Created {
    id: Vec<u8>,
    key: CoseKey,
    resp: MakeCredentialResponse,
}

fn create(a: &mut Authenticator, req: &MakeCredentialRequest) -> Result<Created, CtapStatus> {
    let resp: MakeCredentialResponse = call(a, req)?;
    let ad = resp.parsed_auth_data().unwrap();
    let acd = ad.attested_credential.unwrap();
    Ok(Created { id: acd.credential_id, key: acd.public_key, resp })
}

fn verify_assertion(r: &GetAssertionResponse, key: &CoseKey) {
    let mut msg = r.auth_data.clone();
    msg.extend_from_slice(&CDH);
    cose_verify::verify(default_provider(), key, &msg, &r.signature).expect("assertion signature");
}

// ---- platform side of clientPIN ----

fn shared(a: &mut Authenticator, proto: PinUvAuthProtocol) -> (CoseKey, SharedSecret) {
    let r: ClientPinResponse = call(a, &ClientPinRequest::get_key_agreement(proto.number())).unwrap();
    proto.encapsulate(default_provider(), &r.key_agreement.unwrap()).unwrap()
}

fn set_pin(a: &mut Authenticator, proto: PinUvAuthProtocol, pin: &str) -> Result<(), CtapStatus> {
    let p = default_provider();
    let (k, s) = shared(a, proto);
    let enc = s.encrypt(p, &pad_pin(pin).unwrap()).unwrap();
    let param = s.authenticate(p, &enc);
    call_empty(a, &ClientPinRequest::set_pin(proto.number(), k, enc, param))
}

fn change_pin(a: &mut Authenticator, proto: PinUvAuthProtocol, old: &str, new: &str) -> Result<(), CtapStatus> {
    let p = default_provider();
    let (k, s) = shared(a, proto);
    let npe = s.encrypt(p, &pad_pin(new).unwrap()).unwrap();
    let phe = s.encrypt(p, &pin_hash(p, old)).unwrap();
    let mut msg = npe.clone();
    msg.extend_from_slice(&phe);
    let param = s.authenticate(p, &msg);
    call_empty(a, &ClientPinRequest::change_pin(proto.number(), k, npe, phe, param))
}

fn token(
    a: &mut Authenticator,
    proto: PinUvAuthProtocol,
    pin: &str,
    perms: u8,
    rp: Option<&str>,
) -> Result<SecretBytes, CtapStatus> {
    let p = default_provider();
    let (k, s) = shared(a, proto);
    let phe = s.encrypt(p, &pin_hash(p, pin)).unwrap();
    let r: ClientPinResponse =
        call(a, &ClientPinRequest::get_token_with_permissions(proto.number(), k, phe, perms, rp.map(str::to_owned)))?;
    Ok(s.decrypt(p, &r.pin_uv_auth_token.unwrap()).unwrap())
}

fn retries(a: &mut Authenticator) -> u64 {
    let r: ClientPinResponse = call(a, &ClientPinRequest::get_pin_retries()).unwrap();
    r.pin_retries.unwrap()
}

fn with_token_mc(mut r: MakeCredentialRequest, proto: PinUvAuthProtocol, t: &[u8]) -> MakeCredentialRequest {
    r.pin_uv_auth_param = Some(proto.authenticate(default_provider(), t, &r.client_data_hash));
    r.pin_uv_auth_protocol = Some(proto.number().into());
    r
}

fn with_token_ga(mut r: GetAssertionRequest, proto: PinUvAuthProtocol, t: &[u8]) -> GetAssertionRequest {
    r.pin_uv_auth_param = Some(proto.authenticate(default_provider(), t, &r.client_data_hash));
    r.pin_uv_auth_protocol = Some(proto.number().into());
    r
}

const PROTOCOLS: [PinUvAuthProtocol; 2] = [PinUvAuthProtocol::One, PinUvAuthProtocol::Two];

// ---- getInfo ----

#[test]
fn get_info_reports_ctap21_features() {
    let mut a = dev();
    let i = info(&mut a);
    for v in ["FIDO_2_0", "FIDO_2_1", "U2F_V2"] {
        assert!(i.supports_version(v), "{v}");
    }
    for e in ["credProtect", "hmac-secret", "credBlob", "largeBlobKey", "minPinLength"] {
        assert!(i.supports_extension(e), "{e}");
    }
    for (o, v) in [
        ("rk", true),
        ("up", true),
        ("clientPin", false),
        ("credMgmt", true),
        ("authnrCfg", true),
        ("largeBlobs", true),
        ("pinUvAuthToken", true),
        ("setMinPINLength", true),
        ("makeCredUvNotRqd", false),
        ("alwaysUv", false),
    ] {
        assert_eq!(i.option(o), Some(v), "{o}");
    }
    assert_eq!(i.pin_uv_auth_protocols, Some(vec![2, 1]));
    assert_eq!(i.max_msg_size, Some(7609));
    assert_eq!(i.aaguid, a.aaguid().to_vec());
    assert_ne!(i.aaguid, vec![0; 16]);
    assert!(i.max_credential_count_in_list.is_some() && i.max_credential_id_length.is_some());
    assert!(i.max_cred_blob_length.unwrap() >= 32);
    assert!(i.max_serialized_large_blob_array.unwrap() >= 1024);
    assert_eq!(i.min_pin_length, Some(4));
    assert!(i.firmware_version.is_some());
    let before = i.remaining_discoverable_credentials.unwrap();
    create(&mut a, &rk(mc("example.com", &[1]))).unwrap();
    assert_eq!(info(&mut a).remaining_discoverable_credentials, Some(before - 1));
    set_pin(&mut a, PinUvAuthProtocol::Two, PIN).unwrap();
    assert_eq!(info(&mut a).option("clientPin"), Some(true));
}

#[test]
fn malformed_requests_get_status_codes() {
    let mut a = dev();
    assert_eq!(a.handle_cbor(&[]), vec![CtapStatus::InvalidLength.code()]);
    assert_eq!(a.handle_cbor(&[0x55]), vec![CtapStatus::InvalidCommand.code()]);
    assert_eq!(a.handle_cbor(&[0x01, 0xa1]), vec![CtapStatus::InvalidCbor.code()]);
    assert_eq!(a.handle_cbor(&[0x01, 0x01]), vec![CtapStatus::CborUnexpectedType.code()]);
    assert_eq!(a.handle_cbor(&[0x01, 0xa0]), vec![CtapStatus::MissingParameter.code()]);
    let big = vec![0x04; 7610];
    assert_eq!(a.handle_cbor(&big), vec![CtapStatus::InvalidLength.code()]);
    // Arbitrary bytes never panic (a cheap deterministic fuzz).
    let mut x: u64 = 0x1234_5678_9abc_def0;
    for n in 0..3000 {
        let len = (n % 97) + 1;
        let mut buf = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(x as u8);
        }
        buf[0] = [0x01, 0x02, 0x06, 0x08, 0x0a, 0x0b, 0x0c, 0x0d, 0x41][n % 9];
        if buf[0] == 0x0b || buf[0] == 0x07 {
            continue;
        }
        let r = a.handle_cbor(&buf);
        assert!(!r.is_empty());
        let _ = a.handle_u2f(&buf[1..]);
    }
}

// ---- makeCredential ----

#[test]
fn make_credential_packed_attestation_verifies() {
    use der::{Decode, Encode};
    let mut a = dev();
    let c = create(&mut a, &mc("example.com", &[1])).unwrap();
    let att = AttestationObject::parse(&c.resp.to_attestation_object().unwrap().to_bytes()).unwrap();
    assert_eq!(att.fmt, "packed");
    assert_eq!(att.auth_data.rp_id_hash, default_provider().sha256(&[b"example.com"]));
    assert!(att.auth_data.flags.up() && att.auth_data.flags.at() && !att.auth_data.flags.uv());
    assert_eq!(att.auth_data.attested_credential.as_ref().unwrap().aaguid, a.aaguid());
    assert_eq!(att.att_stmt.get_text("alg").and_then(Value::as_i64), Some(-7));
    let x5c = att.att_stmt.get_text("x5c").and_then(Value::as_array).unwrap();
    let cert_der = x5c[0].as_bytes().unwrap();
    let cert = x509_cert::Certificate::from_der(cert_der).unwrap();
    // WebAuthn §8.2.1 certificate requirements.
    assert_eq!(cert.tbs_certificate.version, x509_cert::certificate::Version::V3);
    let subject = cert.tbs_certificate.subject.to_string();
    assert!(subject.contains("OU=Authenticator Attestation") && subject.contains("C=") && subject.contains("O="));
    let exts = cert.tbs_certificate.extensions.as_ref().unwrap();
    let bc = exts.iter().find(|e| e.extn_id.to_string() == "2.5.29.19").unwrap();
    assert_eq!(bc.extn_value.as_bytes(), &[0x30, 0x00]);
    let aag = exts.iter().find(|e| e.extn_id.to_string() == "1.3.6.1.4.1.45724.1.1.4").unwrap();
    assert!(!aag.critical);
    assert_eq!(&aag.extn_value.as_bytes()[2..], &a.aaguid());
    let point = cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    let key = CoseKey::p256_from_sec1(point, CoseAlgorithm::ES256).unwrap();
    let mut signed = att.auth_data_raw.clone();
    signed.extend_from_slice(&CDH);
    let sig = att.att_stmt.get_text("sig").and_then(Value::as_bytes).unwrap();
    cose_verify::verify(default_provider(), &key, &signed, sig).unwrap();
    // The batch certificate chains to the root.
    let root = x509_cert::Certificate::from_der(a.attestation_root_der()).unwrap();
    let root_point = root.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    let root_key = CoseKey::p256_from_sec1(root_point, CoseAlgorithm::ES256).unwrap();
    cose_verify::verify(
        default_provider(),
        &root_key,
        &cert.tbs_certificate.to_der().unwrap(),
        cert.signature.raw_bytes(),
    )
    .unwrap();
    // And the credential signs.
    let r: GetAssertionResponse = call(&mut a, &ga("example.com", &[&c.id])).unwrap();
    verify_assertion(&r, &c.key);
}

#[test]
fn make_credential_eddsa_with_self_attestation() {
    let mut a = dev_with(|c| c.attestation = AttestationMode::SelfAttestation);
    let mut req = mc("example.com", &[1]);
    req.pub_key_cred_params =
        vec![PublicKeyCredentialParameters::public_key(-999), PublicKeyCredentialParameters::public_key(-8)];
    let c = create(&mut a, &req).unwrap();
    assert!(matches!(c.key, CoseKey::Okp { crv: 6, .. }));
    let att = c.resp.to_attestation_object().unwrap();
    assert_eq!(att.att_stmt.get_text("alg").and_then(Value::as_i64), Some(-8));
    assert!(att.att_stmt.get_text("x5c").is_none());
    let mut signed = att.auth_data_raw.clone();
    signed.extend_from_slice(&CDH);
    cose_verify::verify(
        default_provider(),
        &c.key,
        &signed,
        att.att_stmt.get_text("sig").and_then(Value::as_bytes).unwrap(),
    )
    .unwrap();
    let r: GetAssertionResponse = call(&mut a, &ga("example.com", &[&c.id])).unwrap();
    verify_assertion(&r, &c.key);

    let mut a = dev_with(|c| c.attestation = AttestationMode::None);
    let c = create(&mut a, &mc("example.com", &[1])).unwrap();
    assert_eq!(c.resp.fmt, "none");
}

#[test]
fn make_credential_rejects_bad_parameters() {
    let mut a = dev();
    let mut req = mc("example.com", &[1]);
    req.pub_key_cred_params = vec![PublicKeyCredentialParameters::public_key(-257)];
    assert_eq!(create(&mut a, &req).err(), Some(CtapStatus::UnsupportedAlgorithm));
    let mut req = mc("example.com", &[1]);
    req.options = Some(CommandOptions { rk: None, up: Some(false), uv: None });
    assert_eq!(create(&mut a, &req).err(), Some(CtapStatus::InvalidOption));
    let mut req = mc("example.com", &[1]);
    req.client_data_hash = vec![1; 31];
    assert_eq!(create(&mut a, &req).err(), Some(CtapStatus::InvalidLength));
    let mut req = mc("example.com", &[1]);
    req.extensions = Some(MakeCredentialExtensions { cred_protect: Some(4), ..Default::default() });
    assert_eq!(create(&mut a, &req).err(), Some(CtapStatus::InvalidParameter));
    let mut req = mc("example.com", &[1]);
    req.pin_uv_auth_param = Some(vec![0; 16]);
    assert_eq!(create(&mut a, &req).err(), Some(CtapStatus::MissingParameter));
}

#[test]
fn exclude_list_blocks_a_second_registration() {
    let mut a = dev();
    let c = create(&mut a, &mc("example.com", &[1])).unwrap();
    let mut req = mc("example.com", &[1]);
    req.exclude_list = Some(vec![PublicKeyCredentialDescriptor::public_key(c.id.clone())]);
    assert_eq!(create(&mut a, &req).err(), Some(CtapStatus::CredentialExcluded));
    // The same ID means nothing to another RP.
    let mut req = mc("other.example", &[1]);
    req.exclude_list = Some(vec![PublicKeyCredentialDescriptor::public_key(c.id)]);
    assert!(create(&mut a, &req).is_ok());
}

#[test]
fn non_resident_credential_ids_are_bound_to_their_rp() {
    let mut a = dev();
    let c = create(&mut a, &mc("example.com", &[1])).unwrap();
    assert_eq!(a.resident_credential_count(), 0);
    assert!(c.id.len() <= 128);
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &ga("evil.example", &[&c.id])).err(),
        Some(CtapStatus::NoCredentials)
    );
    let mut tampered = c.id.clone();
    tampered[20] ^= 1;
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &ga("example.com", &[&tampered])).err(),
        Some(CtapStatus::NoCredentials)
    );
    let r1: GetAssertionResponse = call(&mut a, &ga("example.com", &[&[1, 2, 3], &c.id])).unwrap();
    verify_assertion(&r1, &c.key);
    assert_eq!(r1.credential.as_ref().unwrap().id, c.id);
    assert!(r1.user.is_none());
    let r2: GetAssertionResponse = call(&mut a, &ga("example.com", &[&c.id])).unwrap();
    let (n1, n2) = (r1.parsed_auth_data().unwrap().sign_count, r2.parsed_auth_data().unwrap().sign_count);
    assert!(n2 > n1);
}

// ---- getAssertion ----

#[test]
fn discoverable_credentials_newest_first_with_get_next_assertion() {
    let mut a = dev();
    let mut keys = Vec::new();
    for u in 1..=3u8 {
        keys.push(create(&mut a, &rk(mc("example.com", &[u]))).unwrap());
    }
    create(&mut a, &rk(mc("other.example", &[9]))).unwrap();
    // Re-registering user 2 replaces its credential (and makes it the newest).
    let c2 = create(&mut a, &rk(mc("example.com", &[2]))).unwrap();
    assert_eq!(a.resident_credential_count(), 4);
    let r: GetAssertionResponse = call(&mut a, &ga("example.com", &[])).unwrap();
    assert_eq!(r.number_of_credentials, Some(3));
    assert_eq!(r.user.as_ref().unwrap().id, vec![2]);
    // Without UV, only the user ID is returned.
    assert!(r.user.as_ref().unwrap().name.is_none());
    verify_assertion(&r, &c2.key);
    let order: Vec<u8> = std::iter::once(2)
        .chain((0..2).map(|_| {
            let n: GetAssertionResponse = call(&mut a, &GetNextAssertionRequest).unwrap();
            assert!(n.number_of_credentials.is_none());
            let u = n.user.as_ref().unwrap().id[0];
            verify_assertion(&n, &keys[(u - 1) as usize].key);
            u
        }))
        .collect();
    assert_eq!(order, vec![2, 3, 1]);
    assert_eq!(call::<_, GetAssertionResponse>(&mut a, &GetNextAssertionRequest).err(), Some(CtapStatus::NotAllowed));
    // Another command in between ends the sequence.
    let _: GetAssertionResponse = call(&mut a, &ga("example.com", &[])).unwrap();
    info(&mut a);
    assert_eq!(call::<_, GetAssertionResponse>(&mut a, &GetNextAssertionRequest).err(), Some(CtapStatus::NotAllowed));
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &ga("nobody.example", &[])).err(),
        Some(CtapStatus::NoCredentials)
    );
}

#[test]
fn silent_preflight_with_up_false() {
    let mut a = dev();
    let c = create(&mut a, &mc("example.com", &[1])).unwrap();
    a.set_user_presence(UserPresence::Deny);
    let mut req = ga("example.com", &[&c.id]);
    req.options = Some(CommandOptions { rk: None, up: Some(false), uv: None });
    let r: GetAssertionResponse = call(&mut a, &req).unwrap();
    assert!(!r.parsed_auth_data().unwrap().flags.up());
    verify_assertion(&r, &c.key);
    // With presence required, the refusal is reported.
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &ga("example.com", &[&c.id])).err(),
        Some(CtapStatus::OperationDenied)
    );
    assert_eq!(create(&mut a, &mc("example.com", &[2])).err(), Some(CtapStatus::OperationDenied));
    let mut req = ga("example.com", &[&c.id]);
    req.options = Some(CommandOptions { rk: Some(true), up: None, uv: None });
    assert_eq!(call::<_, GetAssertionResponse>(&mut a, &req).err(), Some(CtapStatus::UnsupportedOption));
}

// ---- clientPIN ----

#[test]
fn set_pin_then_tokens_are_required_and_give_uv() {
    for proto in PROTOCOLS {
        let mut a = dev();
        assert_eq!(retries(&mut a), 8);
        assert_eq!(token(&mut a, proto, PIN, permissions::MAKE_CREDENTIAL, None).err(), Some(CtapStatus::PinNotSet));
        // Too short for the policy.
        let p = default_provider();
        let (k, s) = shared(&mut a, proto);
        let mut padded = vec![0u8; 64];
        padded[..3].copy_from_slice(b"123");
        let enc = s.encrypt(p, &padded).unwrap();
        let param = s.authenticate(p, &enc);
        assert_eq!(
            call_empty(&mut a, &ClientPinRequest::set_pin(proto.number(), k, enc, param)),
            Err(CtapStatus::PinPolicyViolation)
        );
        // A bad pinUvAuthParam.
        let (k, s) = shared(&mut a, proto);
        let enc = s.encrypt(p, &pad_pin(PIN).unwrap()).unwrap();
        assert_eq!(
            call_empty(&mut a, &ClientPinRequest::set_pin(proto.number(), k, enc, vec![0; proto.param_len()])),
            Err(CtapStatus::PinAuthInvalid)
        );
        set_pin(&mut a, proto, PIN).unwrap();
        assert_eq!(set_pin(&mut a, proto, "5678"), Err(CtapStatus::NotAllowed));
        // makeCredUvNotRqd = false: a token is required for every registration.
        assert_eq!(create(&mut a, &mc("example.com", &[1])).err(), Some(CtapStatus::PuatRequired));
        let t = token(&mut a, proto, PIN, permissions::MAKE_CREDENTIAL | permissions::GET_ASSERTION, None).unwrap();
        let c = create(&mut a, &rk(with_token_mc(mc("example.com", &[1]), proto, &t))).unwrap();
        assert!(c.resp.parsed_auth_data().unwrap().flags.uv());
        // The registration spent the token (CTAP 2.1 §6.5.5.7): a fresh one.
        let t = token(&mut a, proto, PIN, permissions::GET_ASSERTION, None).unwrap();
        let r: GetAssertionResponse = call(&mut a, &with_token_ga(ga("example.com", &[]), proto, &t)).unwrap();
        assert!(r.parsed_auth_data().unwrap().flags.uv());
        // With UV the user's name comes back.
        assert_eq!(r.user.as_ref().unwrap().name.as_deref(), Some("user-1"));
        verify_assertion(&r, &c.key);
        // getAssertion without a token still works (no UV).
        let r: GetAssertionResponse = call(&mut a, &ga("example.com", &[&c.id])).unwrap();
        assert!(!r.parsed_auth_data().unwrap().flags.uv());
        // A wrong pinUvAuthParam.
        let mut bad = with_token_mc(mc("example.com", &[2]), proto, &t);
        bad.pin_uv_auth_param = Some(vec![0; proto.param_len()]);
        assert_eq!(create(&mut a, &bad).err(), Some(CtapStatus::PinAuthInvalid));
        // Legacy getPinToken.
        let (k, s) = shared(&mut a, proto);
        let phe = s.encrypt(p, &pin_hash(p, PIN)).unwrap();
        let r: ClientPinResponse = call(&mut a, &ClientPinRequest::get_pin_token(proto.number(), k, phe)).unwrap();
        let legacy = s.decrypt(p, &r.pin_uv_auth_token.unwrap()).unwrap();
        assert_eq!(legacy.len(), 32);
        assert!(create(&mut a, &with_token_mc(mc("example.com", &[3]), proto, &legacy)).is_ok());
    }
}

#[test]
fn pin_probe_with_empty_pin_uv_auth_param() {
    let mut a = dev();
    let mut req = mc("example.com", &[1]);
    req.pin_uv_auth_param = Some(vec![]);
    req.pin_uv_auth_protocol = Some(2);
    assert_eq!(create(&mut a, &req).err(), Some(CtapStatus::PinNotSet));
    set_pin(&mut a, PinUvAuthProtocol::Two, PIN).unwrap();
    assert_eq!(create(&mut a, &req).err(), Some(CtapStatus::PinInvalid));
}

#[test]
fn change_pin_works_and_old_pin_stops_working() {
    for proto in PROTOCOLS {
        let mut a = dev();
        assert_eq!(change_pin(&mut a, proto, PIN, "4321"), Err(CtapStatus::PinNotSet));
        set_pin(&mut a, proto, PIN).unwrap();
        assert_eq!(change_pin(&mut a, proto, "0000", "4321"), Err(CtapStatus::PinInvalid));
        assert_eq!(retries(&mut a), 7);
        change_pin(&mut a, proto, PIN, "4321").unwrap();
        assert_eq!(retries(&mut a), 8);
        assert_eq!(token(&mut a, proto, PIN, permissions::GET_ASSERTION, None).err(), Some(CtapStatus::PinInvalid));
        assert!(token(&mut a, proto, "4321", permissions::GET_ASSERTION, None).is_ok());
    }
}

#[test]
fn pin_lockout_after_three_in_a_row_and_block_after_eight() {
    let proto = PinUvAuthProtocol::Two;
    let mut a = dev();
    set_pin(&mut a, proto, PIN).unwrap();
    let ga_perm = permissions::GET_ASSERTION;
    assert_eq!(token(&mut a, proto, "0000", ga_perm, None).err(), Some(CtapStatus::PinInvalid));
    assert_eq!(token(&mut a, proto, "0000", ga_perm, None).err(), Some(CtapStatus::PinInvalid));
    assert_eq!(token(&mut a, proto, "0000", ga_perm, None).err(), Some(CtapStatus::PinAuthBlocked));
    // Even the right PIN is refused until a power cycle, and costs no retry.
    assert_eq!(token(&mut a, proto, PIN, ga_perm, None).err(), Some(CtapStatus::PinAuthBlocked));
    let r: ClientPinResponse = call(&mut a, &ClientPinRequest::get_pin_retries()).unwrap();
    assert_eq!((r.pin_retries, r.power_cycle_state), (Some(5), Some(true)));
    a.power_cycle().unwrap();
    // A success resets the counter to 8.
    assert!(token(&mut a, proto, PIN, ga_perm, None).is_ok());
    assert_eq!(retries(&mut a), 8);
    // Eight wrong PINs in total block it for good.
    let mut results = Vec::new();
    for _ in 0..8 {
        let r = token(&mut a, proto, "0000", ga_perm, None).err().unwrap();
        results.push(r);
        if r == CtapStatus::PinAuthBlocked {
            a.power_cycle().unwrap();
        }
    }
    assert_eq!(results.last(), Some(&CtapStatus::PinBlocked));
    assert_eq!(retries(&mut a), 0);
    a.power_cycle().unwrap();
    assert_eq!(token(&mut a, proto, PIN, ga_perm, None).err(), Some(CtapStatus::PinBlocked));
    assert_eq!(change_pin(&mut a, proto, PIN, "9999"), Err(CtapStatus::PinBlocked));
}

#[test]
fn token_permissions_and_rp_binding() {
    let proto = PinUvAuthProtocol::Two;
    let mut a = dev();
    set_pin(&mut a, proto, PIN).unwrap();
    // A getAssertion-only token cannot register.
    let t = token(&mut a, proto, PIN, permissions::GET_ASSERTION, None).unwrap();
    assert_eq!(
        create(&mut a, &with_token_mc(mc("example.com", &[1]), proto, &t)).err(),
        Some(CtapStatus::PinAuthInvalid)
    );
    // A token bound to one RP is refused for another.
    let t = token(&mut a, proto, PIN, permissions::MAKE_CREDENTIAL, Some("example.com")).unwrap();
    assert_eq!(
        create(&mut a, &with_token_mc(mc("other.example", &[1]), proto, &t)).err(),
        Some(CtapStatus::PinAuthInvalid)
    );
    let c = create(&mut a, &with_token_mc(mc("example.com", &[1]), proto, &t)).unwrap();
    // An unbound token binds to its first RP.
    let t = token(&mut a, proto, PIN, permissions::GET_ASSERTION, None).unwrap();
    let r: GetAssertionResponse = call(&mut a, &with_token_ga(ga("example.com", &[&c.id]), proto, &t)).unwrap();
    verify_assertion(&r, &c.key);
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &with_token_ga(ga("other.example", &[&c.id]), proto, &t)).err(),
        Some(CtapStatus::PinAuthInvalid)
    );
    // A new token replaces the old one; the token's protocol must match.
    let t2 = token(&mut a, proto, PIN, permissions::GET_ASSERTION, None).unwrap();
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &with_token_ga(ga("example.com", &[&c.id]), proto, &t)).err(),
        Some(CtapStatus::PinAuthInvalid)
    );
    assert_eq!(
        call::<_, GetAssertionResponse>(
            &mut a,
            &with_token_ga(ga("example.com", &[&c.id]), PinUvAuthProtocol::One, &t2)
        )
        .err(),
        Some(CtapStatus::PinAuthInvalid)
    );
    // Permission checks at issuance.
    assert_eq!(token(&mut a, proto, PIN, 0, None).err(), Some(CtapStatus::InvalidParameter));
    assert_eq!(
        token(&mut a, proto, PIN, permissions::BIO_ENROLLMENT, None).err(),
        Some(CtapStatus::UnauthorizedPermission)
    );
    let p = default_provider();
    let (k, s) = shared(&mut a, proto);
    let phe = s.encrypt(p, &pin_hash(p, PIN)).unwrap();
    let mut req = ClientPinRequest::get_pin_token(2, k, phe);
    req.permissions = Some(3);
    assert_eq!(call::<_, ClientPinResponse>(&mut a, &req).err(), Some(CtapStatus::InvalidParameter));
    // Power cycle drops tokens.
    let t = token(&mut a, proto, PIN, permissions::GET_ASSERTION, None).unwrap();
    a.power_cycle().unwrap();
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &with_token_ga(ga("example.com", &[&c.id]), proto, &t)).err(),
        Some(CtapStatus::PinAuthInvalid)
    );
    // No built-in UV.
    let (k, _) = shared(&mut a, proto);
    assert_eq!(
        call::<_, ClientPinResponse>(&mut a, &ClientPinRequest::get_token_using_uv(2, k, 1, None)).err(),
        Some(CtapStatus::InvalidSubcommand)
    );
    let mut bad = ClientPinRequest::get_key_agreement(3);
    bad.pin_uv_auth_protocol = Some(3);
    assert_eq!(call::<_, ClientPinResponse>(&mut a, &bad).err(), Some(CtapStatus::InvalidParameter));
}

// ---- extensions ----

#[test]
fn cred_protect_is_enforced() {
    let proto = PinUvAuthProtocol::Two;
    let mut a = dev();
    let mut ids = Vec::new();
    for level in 1..=3u8 {
        let mut req = rk(mc("example.com", &[level]));
        req.extensions = Some(MakeCredentialExtensions { cred_protect: Some(level), ..Default::default() });
        let c = create(&mut a, &req).unwrap();
        let ext = c.resp.parsed_auth_data().unwrap().extensions.unwrap();
        assert_eq!(MakeCredentialExtensionOutputs::from_value(&ext).unwrap().cred_protect, Some(level));
        ids.push(c.id);
    }
    // Without UV: discoverable sign-in sees only level 1.
    let r: GetAssertionResponse = call(&mut a, &ga("example.com", &[])).unwrap();
    assert_eq!(r.number_of_credentials, Some(1));
    assert_eq!(r.user.unwrap().id, vec![1]);
    // With an allowList, levels 1 and 2 work, level 3 does not.
    assert!(call::<_, GetAssertionResponse>(&mut a, &ga("example.com", &[&ids[0]])).is_ok());
    assert!(call::<_, GetAssertionResponse>(&mut a, &ga("example.com", &[&ids[1]])).is_ok());
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &ga("example.com", &[&ids[2]])).err(),
        Some(CtapStatus::NoCredentials)
    );
    // A level-3 credential does not even trigger the exclude list without UV.
    let mut req = mc("example.com", &[7]);
    req.exclude_list = Some(vec![PublicKeyCredentialDescriptor::public_key(ids[2].clone())]);
    assert!(create(&mut a, &req).is_ok());
    // With UV everything is visible.
    set_pin(&mut a, proto, PIN).unwrap();
    let t = token(&mut a, proto, PIN, permissions::GET_ASSERTION, None).unwrap();
    let r: GetAssertionResponse = call(&mut a, &with_token_ga(ga("example.com", &[]), proto, &t)).unwrap();
    assert_eq!(r.number_of_credentials, Some(3));
    let t = token(&mut a, proto, PIN, permissions::GET_ASSERTION, None).unwrap();
    assert!(call::<_, GetAssertionResponse>(&mut a, &with_token_ga(ga("example.com", &[&ids[2]]), proto, &t)).is_ok());
    // Non-resident credentials carry their level in the ID.
    let t = token(&mut a, proto, PIN, permissions::MAKE_CREDENTIAL, None).unwrap();
    let mut req = with_token_mc(mc("example.com", &[8]), proto, &t);
    req.extensions = Some(MakeCredentialExtensions { cred_protect: Some(3), ..Default::default() });
    let c = create(&mut a, &req).unwrap();
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &ga("example.com", &[&c.id])).err(),
        Some(CtapStatus::NoCredentials)
    );
}

fn hmac_request(
    a: &mut Authenticator,
    proto: PinUvAuthProtocol,
    id: &[u8],
    salts: &[u8],
) -> (GetAssertionRequest, SharedSecret) {
    let p = default_provider();
    let (k, s) = shared(a, proto);
    let salt_enc = s.encrypt(p, salts).unwrap();
    let salt_auth = s.authenticate(p, &salt_enc);
    let mut req = ga("example.com", &[id]);
    req.extensions = Some(GetAssertionExtensions {
        hmac_secret: Some(HmacSecretInput {
            key_agreement: k,
            salt_enc,
            salt_auth,
            pin_uv_auth_protocol: Some(proto.number()),
        }),
        ..Default::default()
    });
    (req, s)
}

#[test]
fn hmac_secret_outputs_are_stable_and_uv_dependent() {
    let p = default_provider();
    let mut a = dev();
    let mut req = mc("example.com", &[1]);
    req.extensions = Some(MakeCredentialExtensions { hmac_secret: Some(true), ..Default::default() });
    let c = create(&mut a, &req).unwrap();
    let ext =
        MakeCredentialExtensionOutputs::from_value(&c.resp.parsed_auth_data().unwrap().extensions.unwrap()).unwrap();
    assert_eq!(ext.hmac_secret, Some(true));
    let salts: Vec<u8> = (0..64).collect();
    let mut outputs = Vec::new();
    for proto in PROTOCOLS {
        for n in [32, 64] {
            let (req, s) = hmac_request(&mut a, proto, &c.id, &salts[..n]);
            let r: GetAssertionResponse = call(&mut a, &req).unwrap();
            verify_assertion(&r, &c.key);
            let ad = r.parsed_auth_data().unwrap();
            let out = GetAssertionExtensionOutputs::from_value(ad.extensions.as_ref().unwrap()).unwrap();
            let plain = s.decrypt(p, &out.hmac_secret.unwrap()).unwrap();
            assert_eq!(plain.len(), n);
            outputs.push(plain[..32].to_vec());
        }
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "same salt, same output across protocols");
    // With UV the output differs.
    let proto = PinUvAuthProtocol::Two;
    set_pin(&mut a, proto, PIN).unwrap();
    let t = token(&mut a, proto, PIN, permissions::GET_ASSERTION, None).unwrap();
    let (req, s) = hmac_request(&mut a, proto, &c.id, &salts[..32]);
    let r: GetAssertionResponse = call(&mut a, &with_token_ga(req, proto, &t)).unwrap();
    let out =
        GetAssertionExtensionOutputs::from_value(r.parsed_auth_data().unwrap().extensions.as_ref().unwrap()).unwrap();
    assert_ne!(s.decrypt(p, &out.hmac_secret.unwrap()).unwrap().to_vec(), outputs[0]);
    // A bad saltAuth or salt length is refused.
    let (mut req, _) = hmac_request(&mut a, proto, &c.id, &salts[..32]);
    if let Some(h) = req.extensions.as_mut().and_then(|e| e.hmac_secret.as_mut()) {
        h.salt_auth[0] ^= 1;
    }
    assert_eq!(call::<_, GetAssertionResponse>(&mut a, &req).err(), Some(CtapStatus::PinAuthInvalid));
    let (req, _) = hmac_request(&mut a, proto, &c.id, &[0u8; 48]);
    assert_eq!(call::<_, GetAssertionResponse>(&mut a, &req).err(), Some(CtapStatus::InvalidLength));
}

#[test]
fn cred_blob_and_large_blob_key() {
    let mut a = dev();
    let mut req = rk(mc("example.com", &[1]));
    req.extensions = Some(MakeCredentialExtensions {
        cred_blob: Some(b"hello blob".to_vec()),
        large_blob_key: Some(true),
        ..Default::default()
    });
    let c = create(&mut a, &req).unwrap();
    let ext =
        MakeCredentialExtensionOutputs::from_value(&c.resp.parsed_auth_data().unwrap().extensions.unwrap()).unwrap();
    assert_eq!(ext.cred_blob, Some(true));
    let lbk = c.resp.large_blob_key.clone().unwrap();
    assert_eq!(lbk.len(), 32);
    let mut g = ga("example.com", &[]);
    g.extensions =
        Some(GetAssertionExtensions { cred_blob: Some(true), large_blob_key: Some(true), ..Default::default() });
    let r: GetAssertionResponse = call(&mut a, &g).unwrap();
    let out =
        GetAssertionExtensionOutputs::from_value(r.parsed_auth_data().unwrap().extensions.as_ref().unwrap()).unwrap();
    assert_eq!(out.cred_blob.as_deref(), Some(&b"hello blob"[..]));
    assert_eq!(r.large_blob_key, Some(lbk));
    // credBlob on a non-resident credential lives in the ID; too long is refused softly.
    let mut req = mc("example.com", &[2]);
    req.extensions = Some(MakeCredentialExtensions { cred_blob: Some(vec![7; 20]), ..Default::default() });
    let c2 = create(&mut a, &req).unwrap();
    let mut g = ga("example.com", &[&c2.id]);
    g.extensions = Some(GetAssertionExtensions { cred_blob: Some(true), ..Default::default() });
    let r: GetAssertionResponse = call(&mut a, &g).unwrap();
    let out =
        GetAssertionExtensionOutputs::from_value(r.parsed_auth_data().unwrap().extensions.as_ref().unwrap()).unwrap();
    assert_eq!(out.cred_blob, Some(vec![7; 20]));
    let mut req = mc("example.com", &[3]);
    req.extensions = Some(MakeCredentialExtensions { cred_blob: Some(vec![7; 33]), ..Default::default() });
    let c3 = create(&mut a, &req).unwrap();
    let ext =
        MakeCredentialExtensionOutputs::from_value(&c3.resp.parsed_auth_data().unwrap().extensions.unwrap()).unwrap();
    assert_eq!(ext.cred_blob, Some(false));
    // largeBlobKey needs a resident credential.
    let mut req = mc("example.com", &[4]);
    req.extensions = Some(MakeCredentialExtensions { large_blob_key: Some(true), ..Default::default() });
    assert_eq!(create(&mut a, &req).err(), Some(CtapStatus::InvalidOption));
}

// ---- authenticatorConfig and minPinLength ----

fn config_req(
    a: &mut Authenticator,
    proto: PinUvAuthProtocol,
    t: Option<&[u8]>,
    sub: ConfigSubcommand,
    params: Option<Value>,
) -> Result<(), CtapStatus> {
    let param =
        t.map(|t| proto.authenticate(default_provider(), t, &ConfigRequest::auth_message_for(sub, params.as_ref())));
    call_empty(
        a,
        &ConfigRequest {
            sub_command: sub,
            sub_command_params: params,
            pin_uv_auth_protocol: t.map(|_| proto.number().into()),
            pin_uv_auth_param: param,
        },
    )
}

#[test]
fn authenticator_config_always_uv_and_min_pin_length() {
    let proto = PinUvAuthProtocol::Two;
    let mut a = dev();
    // Without a PIN, config needs no token.
    config_req(&mut a, proto, None, ConfigSubcommand::ToggleAlwaysUv, None).unwrap();
    assert_eq!(info(&mut a).option("alwaysUv"), Some(true));
    assert!(!info(&mut a).supports_version("U2F_V2"));
    let reg = ctap1::RegisterRequest { challenge: [5; 32], application: [6; 32] };
    assert_eq!(a.handle_u2f(&reg.to_apdu().encode()), vec![0x69, 0x86]);
    assert_eq!(create(&mut a, &mc("example.com", &[1])).err(), Some(CtapStatus::PuatRequired));
    set_pin(&mut a, proto, PIN).unwrap();
    assert_eq!(config_req(&mut a, proto, None, ConfigSubcommand::ToggleAlwaysUv, None), Err(CtapStatus::PuatRequired));
    let t = token(&mut a, proto, PIN, permissions::AUTHENTICATOR_CONFIG, None).unwrap();
    config_req(&mut a, proto, Some(&t), ConfigSubcommand::ToggleAlwaysUv, None).unwrap();
    assert_eq!(info(&mut a).option("alwaysUv"), Some(false));
    // A token without acfg is refused.
    let t_mc = token(&mut a, proto, PIN, permissions::MAKE_CREDENTIAL, None).unwrap();
    assert_eq!(
        config_req(&mut a, proto, Some(&t_mc), ConfigSubcommand::ToggleAlwaysUv, None),
        Err(CtapStatus::PinAuthInvalid)
    );
    // setMinPINLength: raise to 6 for example.com; the 4-digit PIN must change.
    let t = token(&mut a, proto, PIN, permissions::AUTHENTICATOR_CONFIG, None).unwrap();
    let params = SetMinPinLengthParams {
        new_min_pin_length: Some(6),
        min_pin_length_rp_ids: Some(vec!["example.com".into()]),
        force_change_pin: None,
        pin_complexity_policy: None,
    };
    config_req(&mut a, proto, Some(&t), ConfigSubcommand::SetMinPinLength, Some(params.to_value())).unwrap();
    let i = info(&mut a);
    assert_eq!((i.min_pin_length, i.force_pin_change), (Some(6), Some(true)));
    assert_eq!(
        token(&mut a, proto, PIN, permissions::MAKE_CREDENTIAL, None).err(),
        Some(CtapStatus::PinPolicyViolation)
    );
    assert_eq!(change_pin(&mut a, proto, PIN, "12345"), Err(CtapStatus::PinPolicyViolation));
    change_pin(&mut a, proto, PIN, "123456").unwrap();
    assert_eq!(info(&mut a).force_pin_change, Some(false));
    // Lowering is refused.
    let t =
        token(&mut a, proto, "123456", permissions::AUTHENTICATOR_CONFIG | permissions::MAKE_CREDENTIAL, None).unwrap();
    let lower = SetMinPinLengthParams { new_min_pin_length: Some(4), ..Default::default() };
    assert_eq!(
        config_req(&mut a, proto, Some(&t), ConfigSubcommand::SetMinPinLength, Some(lower.to_value())),
        Err(CtapStatus::PinPolicyViolation)
    );
    // forceChangePin.
    let force = SetMinPinLengthParams { force_change_pin: Some(true), ..Default::default() };
    config_req(&mut a, proto, Some(&t), ConfigSubcommand::SetMinPinLength, Some(force.to_value())).unwrap();
    assert_eq!(info(&mut a).force_pin_change, Some(true));
    change_pin(&mut a, proto, "123456", "654321").unwrap();
    // minPinLength extension: reported only to listed RPs.
    let t = token(&mut a, proto, "654321", permissions::MAKE_CREDENTIAL, None).unwrap();
    let mut req = with_token_mc(mc("example.com", &[1]), proto, &t);
    req.extensions = Some(MakeCredentialExtensions { min_pin_length: Some(true), ..Default::default() });
    let c = create(&mut a, &req).unwrap();
    let ext =
        MakeCredentialExtensionOutputs::from_value(&c.resp.parsed_auth_data().unwrap().extensions.unwrap()).unwrap();
    assert_eq!(ext.min_pin_length, Some(6));
    let t = token(&mut a, proto, "654321", permissions::MAKE_CREDENTIAL, None).unwrap();
    let mut req = with_token_mc(mc("other.example", &[1]), proto, &t);
    req.extensions = Some(MakeCredentialExtensions { min_pin_length: Some(true), ..Default::default() });
    let c = create(&mut a, &req).unwrap();
    assert!(c.resp.parsed_auth_data().unwrap().extensions.is_none());
    assert_eq!(config_req(&mut a, proto, None, ConfigSubcommand::Other(9), None), Err(CtapStatus::PuatRequired));
}

// ---- credentialManagement ----

fn cm(
    a: &mut Authenticator,
    proto: PinUvAuthProtocol,
    t: &[u8],
    sub: Cm,
    params: Option<CredentialManagementParams>,
) -> Result<CredentialManagementResponse, CtapStatus> {
    let msg = CredentialManagementRequest::auth_message_for(sub, params.as_ref());
    let needs = !matches!(sub, Cm::EnumerateRpsGetNextRp | Cm::EnumerateCredentialsGetNextCredential);
    call(
        a,
        &CredentialManagementRequest {
            sub_command: sub,
            sub_command_params: params,
            pin_uv_auth_protocol: needs.then_some(proto.number().into()),
            pin_uv_auth_param: needs.then(|| proto.authenticate(default_provider(), t, &msg)),
        },
    )
}

#[test]
fn credential_management() {
    let proto = PinUvAuthProtocol::One;
    let mut a = dev();
    set_pin(&mut a, proto, PIN).unwrap();
    for (rp, u) in [("a.example", 1u8), ("b.example", 2), ("b.example", 3)] {
        let t = token(&mut a, proto, PIN, permissions::MAKE_CREDENTIAL, None).unwrap();
        let mut req = rk(with_token_mc(mc(rp, &[u]), proto, &t));
        req.extensions = Some(MakeCredentialExtensions { large_blob_key: Some(true), ..Default::default() });
        create(&mut a, &req).unwrap();
    }
    // Without a token: refused.
    assert_eq!(
        call::<_, CredentialManagementResponse>(
            &mut a,
            &CredentialManagementRequest {
                sub_command: Cm::GetCredsMetadata,
                sub_command_params: None,
                pin_uv_auth_protocol: None,
                pin_uv_auth_param: None
            }
        )
        .err(),
        Some(CtapStatus::PuatRequired)
    );
    let t_ga = token(&mut a, proto, PIN, permissions::GET_ASSERTION, None).unwrap();
    assert_eq!(cm(&mut a, proto, &t_ga, Cm::GetCredsMetadata, None).err(), Some(CtapStatus::PinAuthInvalid));
    let t = token(&mut a, proto, PIN, permissions::CREDENTIAL_MANAGEMENT, None).unwrap();
    let m = cm(&mut a, proto, &t, Cm::GetCredsMetadata, None).unwrap();
    assert_eq!(m.existing_resident_credentials_count, Some(3));
    assert!(m.max_possible_remaining_resident_credentials_count.unwrap() > 0);
    let first = cm(&mut a, proto, &t, Cm::EnumerateRpsBegin, None).unwrap();
    assert_eq!(first.total_rps, Some(2));
    let second = cm(&mut a, proto, &t, Cm::EnumerateRpsGetNextRp, None).unwrap();
    let mut rps = vec![first.rp.unwrap().id, second.rp.clone().unwrap().id];
    rps.sort();
    assert_eq!(rps, vec!["a.example", "b.example"]);
    assert_eq!(cm(&mut a, proto, &t, Cm::EnumerateRpsGetNextRp, None).err(), Some(CtapStatus::NotAllowed));
    let b_hash = default_provider().sha256(&[b"b.example"]).to_vec();
    let params = CredentialManagementParams { rp_id_hash: Some(b_hash), ..Default::default() };
    let c1 = cm(&mut a, proto, &t, Cm::EnumerateCredentialsBegin, Some(params.clone())).unwrap();
    assert_eq!(c1.total_credentials, Some(2));
    assert!(c1.public_key.is_some() && c1.large_blob_key.is_some() && c1.cred_protect == Some(1));
    let c2 = cm(&mut a, proto, &t, Cm::EnumerateCredentialsGetNextCredential, None).unwrap();
    let mut users = vec![c1.user.clone().unwrap().id[0], c2.user.clone().unwrap().id[0]];
    users.sort();
    assert_eq!(users, vec![2, 3]);
    // Update the user's names.
    let new_user = PublicKeyCredentialUserEntity {
        id: c1.user.as_ref().unwrap().id.clone(),
        name: Some("renamed".into()),
        display_name: Some("Renamed".into()),
    };
    let up = CredentialManagementParams {
        credential_id: c1.credential_id.clone(),
        user: Some(new_user.clone()),
        ..Default::default()
    };
    cm(&mut a, proto, &t, Cm::UpdateUserInformation, Some(up)).unwrap();
    let wrong = CredentialManagementParams {
        credential_id: c1.credential_id.clone(),
        user: Some(PublicKeyCredentialUserEntity { id: vec![99], ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(cm(&mut a, proto, &t, Cm::UpdateUserInformation, Some(wrong)).err(), Some(CtapStatus::InvalidParameter));
    let again = cm(&mut a, proto, &t, Cm::EnumerateCredentialsBegin, Some(params.clone())).unwrap();
    let renamed = [again.user.clone().unwrap()]
        .into_iter()
        .chain(std::iter::once(
            cm(&mut a, proto, &t, Cm::EnumerateCredentialsGetNextCredential, None).unwrap().user.unwrap(),
        ))
        .find(|u| u.id == new_user.id)
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("renamed"));
    // Delete one: it can no longer sign, even by ID.
    let del = CredentialManagementParams { credential_id: c1.credential_id.clone(), ..Default::default() };
    cm(&mut a, proto, &t, Cm::DeleteCredential, Some(del.clone())).unwrap();
    assert_eq!(cm(&mut a, proto, &t, Cm::DeleteCredential, Some(del)).err(), Some(CtapStatus::NoCredentials));
    let m = cm(&mut a, proto, &t, Cm::GetCredsMetadata, None).unwrap();
    assert_eq!(m.existing_resident_credentials_count, Some(2));
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &ga("b.example", &[&c1.credential_id.unwrap().id])).err(),
        Some(CtapStatus::NoCredentials)
    );
    let none = CredentialManagementParams { rp_id_hash: Some(vec![0; 32]), ..Default::default() };
    assert_eq!(cm(&mut a, proto, &t, Cm::EnumerateCredentialsBegin, Some(none)).err(), Some(CtapStatus::NoCredentials));
}

#[test]
fn credential_management_token_bound_to_an_rp_is_limited_to_that_rp() {
    // D2 (CTAP 2.1 §6.8): a cm token with a permissions RP ID cannot read
    // metadata or enumerate RPs, and reaches only its own RP's credentials.
    let proto = PinUvAuthProtocol::Two;
    let p = default_provider();
    let mut a = dev();
    set_pin(&mut a, proto, PIN).unwrap();
    for (rp, u) in [("a.example.com", 1u8), ("b.example.com", 2)] {
        let t = token(&mut a, proto, PIN, permissions::MAKE_CREDENTIAL, None).unwrap();
        create(&mut a, &rk(with_token_mc(mc(rp, &[u]), proto, &t))).unwrap();
    }
    let unbound = token(&mut a, proto, PIN, permissions::CREDENTIAL_MANAGEMENT, None).unwrap();
    let hash = |rp: &str| p.sha256(&[rp.as_bytes()]).to_vec();
    let enumerate = |rp: &str| CredentialManagementParams { rp_id_hash: Some(hash(rp)), ..Default::default() };
    let b_cred = cm(&mut a, proto, &unbound, Cm::EnumerateCredentialsBegin, Some(enumerate("b.example.com")))
        .unwrap()
        .credential_id
        .unwrap();
    let a_cred = cm(&mut a, proto, &unbound, Cm::EnumerateCredentialsBegin, Some(enumerate("a.example.com")))
        .unwrap()
        .credential_id
        .unwrap();

    let t = token(&mut a, proto, PIN, permissions::CREDENTIAL_MANAGEMENT, Some("a.example.com")).unwrap();
    assert_eq!(cm(&mut a, proto, &t, Cm::GetCredsMetadata, None).err(), Some(CtapStatus::PinAuthInvalid));
    assert_eq!(cm(&mut a, proto, &t, Cm::EnumerateRpsBegin, None).err(), Some(CtapStatus::PinAuthInvalid));
    assert_eq!(
        cm(&mut a, proto, &t, Cm::EnumerateCredentialsBegin, Some(enumerate("b.example.com"))).err(),
        Some(CtapStatus::PinAuthInvalid)
    );
    let del_b = CredentialManagementParams { credential_id: Some(b_cred.clone()), ..Default::default() };
    assert_eq!(
        cm(&mut a, proto, &t, Cm::DeleteCredential, Some(del_b.clone())).err(),
        Some(CtapStatus::PinAuthInvalid)
    );
    let upd_b = CredentialManagementParams {
        credential_id: Some(b_cred.clone()),
        user: Some(PublicKeyCredentialUserEntity { id: vec![2], name: Some("x".into()), display_name: None }),
        ..Default::default()
    };
    assert_eq!(cm(&mut a, proto, &t, Cm::UpdateUserInformation, Some(upd_b)).err(), Some(CtapStatus::PinAuthInvalid));
    // Its own RP: allowed.
    let own = cm(&mut a, proto, &t, Cm::EnumerateCredentialsBegin, Some(enumerate("a.example.com"))).unwrap();
    assert_eq!(own.credential_id.as_ref(), Some(&a_cred));
    let upd_a = CredentialManagementParams {
        credential_id: Some(a_cred.clone()),
        user: Some(PublicKeyCredentialUserEntity { id: vec![1], name: Some("y".into()), display_name: None }),
        ..Default::default()
    };
    cm(&mut a, proto, &t, Cm::UpdateUserInformation, Some(upd_a)).unwrap();
    let del_a = CredentialManagementParams { credential_id: Some(a_cred), ..Default::default() };
    cm(&mut a, proto, &t, Cm::DeleteCredential, Some(del_a)).unwrap();
    // b.example.com's credential survived (a fresh token: getting the bound
    // one replaced the first).
    let unbound = token(&mut a, proto, PIN, permissions::CREDENTIAL_MANAGEMENT, None).unwrap();
    let left = cm(&mut a, proto, &unbound, Cm::EnumerateCredentialsBegin, Some(enumerate("b.example.com"))).unwrap();
    assert_eq!(left.credential_id, Some(b_cred));
    assert_eq!(
        cm(&mut a, proto, &unbound, Cm::GetCredsMetadata, None).unwrap().existing_resident_credentials_count,
        Some(1)
    );
}

// ---- token permissions are spent (CTAP 2.1 §6.5.5.7) ----

#[test]
fn token_permissions_are_cleared_after_user_presence() {
    // D5: a token authorizes one makeCredential / one getAssertion with user
    // presence; afterwards only largeBlobWrite survives.
    let proto = PinUvAuthProtocol::Two;
    let mut a = dev();
    set_pin(&mut a, proto, PIN).unwrap();
    let all = permissions::MAKE_CREDENTIAL | permissions::GET_ASSERTION | permissions::LARGE_BLOB_WRITE;
    let t = token(&mut a, proto, PIN, all, Some("example.com")).unwrap();
    let c = create(&mut a, &rk(with_token_mc(mc("example.com", &[1]), proto, &t))).unwrap();
    assert_eq!(
        create(&mut a, &with_token_mc(mc("example.com", &[2]), proto, &t)).err(),
        Some(CtapStatus::PinAuthInvalid)
    );
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &with_token_ga(ga("example.com", &[&c.id]), proto, &t)).err(),
        Some(CtapStatus::PinAuthInvalid)
    );

    let t = token(&mut a, proto, PIN, permissions::GET_ASSERTION, Some("example.com")).unwrap();
    // A silent (up=false) assertion does not spend the token.
    let mut silent = with_token_ga(ga("example.com", &[&c.id]), proto, &t);
    silent.options = Some(CommandOptions { rk: None, up: Some(false), uv: None });
    for _ in 0..2 {
        call::<_, GetAssertionResponse>(&mut a, &silent).unwrap();
    }
    call::<_, GetAssertionResponse>(&mut a, &with_token_ga(ga("example.com", &[&c.id]), proto, &t)).unwrap();
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &with_token_ga(ga("example.com", &[&c.id]), proto, &t)).err(),
        Some(CtapStatus::PinAuthInvalid)
    );
}

#[test]
fn token_not_used_within_the_initial_window_expires() {
    let proto = PinUvAuthProtocol::Two;
    let mut a = dev_with(|c| c.token_initial_use = Duration::from_millis(150));
    set_pin(&mut a, proto, PIN).unwrap();
    let c = {
        let t = token(&mut a, proto, PIN, permissions::MAKE_CREDENTIAL, Some("example.com")).unwrap();
        create(&mut a, &with_token_mc(mc("example.com", &[1]), proto, &t)).unwrap()
    };
    // Used in time: stays valid past the window (until its lifetime ends).
    let t = token(&mut a, proto, PIN, permissions::GET_ASSERTION, Some("example.com")).unwrap();
    let mut silent = with_token_ga(ga("example.com", &[&c.id]), proto, &t);
    silent.options = Some(CommandOptions { rk: None, up: Some(false), uv: None });
    call::<_, GetAssertionResponse>(&mut a, &silent).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    call::<_, GetAssertionResponse>(&mut a, &silent).unwrap();
    // Not used in time: expired.
    let t = token(&mut a, proto, PIN, permissions::GET_ASSERTION, Some("example.com")).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &with_token_ga(ga("example.com", &[&c.id]), proto, &t)).err(),
        Some(CtapStatus::PinAuthInvalid)
    );
}

// ---- largeBlobs ----

#[test]
fn large_blobs_read_and_write_in_fragments() {
    let proto = PinUvAuthProtocol::Two;
    let p = default_provider();
    let mut a = dev();
    let read = |a: &mut Authenticator, offset: u64, n: u64| -> Result<Vec<u8>, CtapStatus> {
        let r: LargeBlobsResponse = call(a, &LargeBlobsRequest { get: Some(n), offset, ..Default::default() })?;
        Ok(r.config.unwrap())
    };
    assert_eq!(read(&mut a, 0, 1000).unwrap(), EMPTY_LARGE_BLOB_ARRAY.to_vec());
    assert_eq!(read(&mut a, 5, 3).unwrap(), EMPTY_LARGE_BLOB_ARRAY[5..8].to_vec());
    assert_eq!(read(&mut a, 100, 3).err(), Some(CtapStatus::InvalidParameter));
    assert_eq!(read(&mut a, 0, 8000).err(), Some(CtapStatus::InvalidLength));
    // A new array: CBOR array of one byte string, then its truncated hash.
    let mut array = Value::Array(vec![Value::Bytes(vec![0xAB; 300])]).to_vec();
    let h = p.sha256(&[&array]);
    array.extend_from_slice(&h[..16]);
    set_pin(&mut a, proto, PIN).unwrap();
    let t = token(&mut a, proto, PIN, permissions::LARGE_BLOB_WRITE, None).unwrap();
    let write = |a: &mut Authenticator, offset: usize, frag: &[u8], length: Option<usize>, t: &[u8]| {
        let msg = LargeBlobsRequest::auth_message(offset as u64, &p.sha256(&[frag]));
        call_empty(
            a,
            &LargeBlobsRequest {
                set: Some(frag.to_vec()),
                offset: offset as u64,
                length: length.map(|l| l as u64),
                pin_uv_auth_param: Some(proto.authenticate(p, t, &msg)),
                pin_uv_auth_protocol: Some(2),
                get: None,
            },
        )
    };
    write(&mut a, 0, &array[..200], Some(array.len()), &t).unwrap();
    // Nothing is visible until the write completes.
    assert_eq!(read(&mut a, 0, 1000).unwrap(), EMPTY_LARGE_BLOB_ARRAY.to_vec());
    assert_eq!(write(&mut a, 150, &array[200..], None, &t), Err(CtapStatus::InvalidSeq));
    write(&mut a, 0, &array[..200], Some(array.len()), &t).unwrap();
    write(&mut a, 200, &array[200..], None, &t).unwrap();
    assert_eq!(read(&mut a, 0, 1000).unwrap(), array);
    // A corrupted array is refused and the old one kept.
    let mut bad = array.clone();
    bad[10] ^= 1;
    assert_eq!(write(&mut a, 0, &bad, Some(bad.len()), &t), Err(CtapStatus::IntegrityFailure));
    assert_eq!(read(&mut a, 0, 1000).unwrap(), array);
    // Permission and size checks.
    let t_ga = token(&mut a, proto, PIN, permissions::GET_ASSERTION, None).unwrap();
    assert_eq!(write(&mut a, 0, &array, Some(array.len()), &t_ga), Err(CtapStatus::PinAuthInvalid));
    assert_eq!(write(&mut a, 0, &array, Some(1 << 20), &t), Err(CtapStatus::LargeBlobStorageFull));
}

// ---- reset and selection ----

#[test]
fn reset_within_window_with_presence() {
    let mut a = dev();
    let c = create(&mut a, &rk(mc("example.com", &[1]))).unwrap();
    set_pin(&mut a, PinUvAuthProtocol::Two, PIN).unwrap();
    a.set_user_presence(UserPresence::Deny);
    assert_eq!(call_empty(&mut a, &ResetRequest), Err(CtapStatus::OperationDenied));
    a.set_user_presence(UserPresence::Approve);
    call_empty(&mut a, &ResetRequest).unwrap();
    assert_eq!(a.resident_credential_count(), 0);
    assert_eq!(info(&mut a).option("clientPin"), Some(false));
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &ga("example.com", &[&c.id])).err(),
        Some(CtapStatus::NoCredentials)
    );
    // Non-resident credentials die too (new master key).
    let c2 = create(&mut a, &mc("example.com", &[2])).unwrap();
    call_empty(&mut a, &ResetRequest).unwrap();
    assert_eq!(
        call::<_, GetAssertionResponse>(&mut a, &ga("example.com", &[&c2.id])).err(),
        Some(CtapStatus::NoCredentials)
    );

    let mut a = dev_with(|c| c.reset_window = Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(call_empty(&mut a, &ResetRequest), Err(CtapStatus::NotAllowed));
    a.power_cycle().unwrap();
    call_empty(&mut a, &ResetRequest).unwrap();
}

#[test]
fn selection_needs_presence() {
    let mut a = dev();
    call_empty(&mut a, &SelectionRequest).unwrap();
    a.set_user_presence(UserPresence::Deny);
    assert_eq!(call_empty(&mut a, &SelectionRequest), Err(CtapStatus::OperationDenied));
}

// ---- user presence, keepalive, cancel ----

#[test]
fn pending_user_presence_can_be_polled_and_cancelled() {
    let mut a = dev_with(|c| c.user_presence = UserPresence::Delay(Duration::from_millis(150)));
    let req = mc("example.com", &[1]).to_request_bytes();
    assert_eq!(a.start_cbor(&req), Poll::Pending);
    assert!(a.is_pending());
    // Another command while waiting: busy.
    assert_eq!(a.start_cbor(&GetInfoRequest.to_request_bytes()), Poll::Ready(vec![CtapStatus::ChannelBusy.code()]));
    let mut polls = 0;
    let resp = loop {
        match a.poll() {
            Poll::Pending => {
                polls += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Poll::Ready(r) => break r,
        }
    };
    assert!(polls >= 3, "keepalive opportunities: {polls}");
    assert!(decode_response::<MakeCredentialResponse>(&resp).is_ok());
    // Cancel.
    assert_eq!(a.start_cbor(&req), Poll::Pending);
    assert_eq!(a.cancel(), Some(vec![CtapStatus::KeepaliveCancel.code()]));
    assert!(!a.is_pending());
    assert_eq!(a.cancel(), None);
    // Cancel through the flag, from another thread.
    assert_eq!(a.start_cbor(&req), Poll::Pending);
    let flag = a.cancel_flag();
    std::thread::spawn(move || flag.cancel()).join().unwrap();
    assert_eq!(a.poll(), Poll::Ready(vec![CtapStatus::KeepaliveCancel.code()]));
    // Timeout.
    let mut a = dev_with(|c| {
        c.user_presence = UserPresence::Delay(Duration::from_secs(10));
        c.up_timeout = Duration::from_millis(30);
    });
    assert_eq!(a.handle_cbor(&SelectionRequest.to_request_bytes()), vec![CtapStatus::UserActionTimeout.code()]);
}

#[test]
fn user_presence_callback_sees_the_request() {
    let asked = Arc::new(AtomicUsize::new(0));
    let seen = asked.clone();
    let mut a = dev_with(move |c| {
        c.user_presence = UserPresence::Callback(Box::new(move |r| {
            seen.fetch_add(1, Ordering::SeqCst);
            r.rp_id.as_deref() == Some("example.com")
        }))
    });
    assert!(create(&mut a, &mc("example.com", &[1])).is_ok());
    assert_eq!(create(&mut a, &mc("other.example", &[1])).err(), Some(CtapStatus::OperationDenied));
    assert_eq!(asked.load(Ordering::SeqCst), 2);
}

// ---- U2F ----

#[test]
fn u2f_register_and_authenticate() {
    let p = default_provider();
    let mut a = dev();
    let ver = a.handle_u2f(&[0, 3, 0, 0, 0, 0, 0]);
    assert_eq!(ver, b"U2F_V2\x90\x00".to_vec());
    let app = p.sha256(&[b"https://example.com"]);
    let reg = ctap1::RegisterRequest { challenge: [5; 32], application: app };
    let resp = a.handle_u2f(&reg.to_apdu().encode());
    let data = ctap1::parse_response(&resp).unwrap();
    let r = ctap1::RegisterResponse::parse(data).unwrap();
    assert_eq!(r.certificate, a.attestation_cert_der());
    let att = AttestationObject::parse(&r.to_attestation_object(&app).unwrap().to_bytes()).unwrap();
    assert_eq!(att.fmt, "fido-u2f");
    let pk = att.auth_data.attested_credential.unwrap().public_key;
    let auth = |control| ctap1::AuthenticateRequest {
        control,
        challenge: [6; 32],
        application: app,
        key_handle: r.key_handle.clone(),
    };
    let resp = a.handle_u2f(&auth(ctap1::control::ENFORCE_USER_PRESENCE_AND_SIGN).to_apdu().encode());
    let ar = ctap1::AuthenticateResponse::parse(ctap1::parse_response(&resp).unwrap()).unwrap();
    assert_eq!(ar.user_presence, 1);
    let mut msg = ar.auth_data(&app);
    msg.extend_from_slice(&[6; 32]);
    cose_verify::verify(p, &pk, &msg, &ar.signature).unwrap();
    // Check-only: "conditions not satisfied" means the key handle is ours.
    let resp = a.handle_u2f(&auth(ctap1::control::CHECK_ONLY).to_apdu().encode());
    assert_eq!(ctap1::parse_response(&resp), Err(ctap1::Ctap1Error::Status(0x6985)));
    // Another application: wrong data.
    let mut other = auth(ctap1::control::ENFORCE_USER_PRESENCE_AND_SIGN);
    other.application = [0; 32];
    let resp = a.handle_u2f(&other.to_apdu().encode());
    assert_eq!(ctap1::parse_response(&resp), Err(ctap1::Ctap1Error::Status(0x6A80)));
    // No presence: conditions not satisfied.
    a.set_user_presence(UserPresence::Deny);
    let resp = a.handle_u2f(&auth(ctap1::control::ENFORCE_USER_PRESENCE_AND_SIGN).to_apdu().encode());
    assert_eq!(ctap1::parse_response(&resp), Err(ctap1::Ctap1Error::Status(0x6985)));
    let resp = a.handle_u2f(&reg.to_apdu().encode());
    assert_eq!(ctap1::parse_response(&resp), Err(ctap1::Ctap1Error::Status(0x6985)));
    // A CTAP2 ES256 credential also answers over U2F (same RP ID hash).
    a.set_user_presence(UserPresence::Approve);
    let c = create(&mut a, &mc("example.com", &[1])).unwrap();
    let app2 = p.sha256(&[b"example.com"]);
    let req = ctap1::AuthenticateRequest { control: 3, challenge: [1; 32], application: app2, key_handle: c.id };
    let resp = a.handle_u2f(&req.to_apdu().encode());
    assert!(ctap1::parse_response(&resp).is_ok());
    // Bad framing and unknown instructions.
    assert_eq!(a.handle_u2f(&[0, 1]), vec![0x67, 0x00]);
    assert_eq!(a.handle_u2f(&[0, 9, 0, 0]), vec![0x6D, 0x00]);
    assert_eq!(a.handle_u2f(&[0x80, 3, 0, 0]), vec![0x6E, 0x00]);
}

#[test]
fn authenticator_is_send_and_pin_can_be_set_directly() {
    fn assert_send<T: Send>() {}
    assert_send::<Authenticator>();
    let mut a = dev();
    assert!(a.set_pin("12").is_err());
    a.set_pin("246810").unwrap();
    assert_eq!(info(&mut a).option("clientPin"), Some(true));
    assert!(token(&mut a, PinUvAuthProtocol::Two, "246810", permissions::GET_ASSERTION, None).is_ok());
}

// ---- persistence ----

#[test]
fn state_survives_restart_and_credentials_still_sign() {
    let dir =
        std::env::temp_dir().join(format!("hwkey-auth-test-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let _ = std::fs::remove_file(&path);
    let cfg =
        |path: &std::path::Path| AuthenticatorConfig { state_path: Some(path.to_path_buf()), ..Default::default() };
    let (resident, non_resident, aaguid, counter) = {
        let mut a = Authenticator::new(cfg(&path)).unwrap();
        let r = create(&mut a, &rk(mc("example.com", &[1]))).unwrap();
        let n = create(&mut a, &mc("example.com", &[2])).unwrap();
        set_pin(&mut a, PinUvAuthProtocol::Two, PIN).unwrap();
        let g: GetAssertionResponse = call(&mut a, &ga("example.com", &[&n.id])).unwrap();
        (r, n, a.aaguid(), g.parsed_auth_data().unwrap().sign_count)
    };
    // No temporary files are left behind, and the file is private.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let mut a = Authenticator::new(cfg(&path)).unwrap();
    assert_eq!(a.aaguid(), aaguid);
    assert_eq!(a.resident_credential_count(), 1);
    assert_eq!(info(&mut a).option("clientPin"), Some(true));
    let t = token(&mut a, PinUvAuthProtocol::Two, PIN, permissions::GET_ASSERTION, None).unwrap();
    let r: GetAssertionResponse =
        call(&mut a, &with_token_ga(ga("example.com", &[]), PinUvAuthProtocol::Two, &t)).unwrap();
    assert_eq!(r.user.as_ref().unwrap().id, vec![1]);
    verify_assertion(&r, &resident.key);
    let r: GetAssertionResponse = call(&mut a, &ga("example.com", &[&non_resident.id])).unwrap();
    verify_assertion(&r, &non_resident.key);
    assert!(r.parsed_auth_data().unwrap().sign_count > counter, "counter persists");
    drop(a);
    // A corrupted file is an error, not a silent reset.
    std::fs::write(&path, b"{\"version\": 1").unwrap();
    assert!(Authenticator::new(cfg(&path)).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- hostile platforms ----

mod hostile {
    use super::*;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            (0u64..5).prop_map(Value::from),
            proptest::collection::vec(any::<u8>(), 0..70).prop_map(Value::Bytes),
            "[a-z-]{0,12}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (prop_oneof![(-3i64..12).prop_map(Value::from), "[a-zA-Z-]{1,12}".prop_map(Value::Text)], inner),
                    0..5
                )
                .prop_map(|m| {
                    let mut out: Vec<(Value, Value)> = Vec::new();
                    for (k, v) in m {
                        if !out.iter().any(|(x, _)| *x == k) {
                            out.push((k, v));
                        }
                    }
                    Value::Map(out)
                }),
            ]
        })
    }

    /// Request maps with the commands' integer keys and values of any type.
    fn request() -> impl Strategy<Value = (u8, Value)> {
        let cmd =
            prop_oneof![Just(1u8), Just(2), Just(4), Just(6), Just(8), Just(0x0a), Just(0x0c), Just(0x0d), Just(0x41)];
        (cmd, proptest::collection::vec((1i64..12, value()), 0..8)).prop_map(|(c, entries)| {
            let mut m: Vec<(Value, Value)> = Vec::new();
            for (k, v) in entries {
                if !m.iter().any(|(x, _)| *x == Value::from(k)) {
                    m.push((Value::from(k), v));
                }
            }
            (c, Value::Map(m))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn structured_garbage_never_panics((cmd, body) in request(), pin in any::<bool>()) {
            let mut a = Authenticator::in_memory().unwrap();
            if pin {
                a.set_pin(PIN).unwrap();
            }
            let mut req = vec![cmd];
            req.extend(body.to_vec());
            let resp = a.handle_cbor(&req);
            prop_assert!(!resp.is_empty());
            if resp[0] == 0 && resp.len() > 1 {
                prop_assert!(hwkey::proto::cbor::decode(&resp[1..]).is_ok());
            }
        }
    }

    fn valid_requests(a: &mut Authenticator) -> Vec<(u8, Value)> {
        let p = default_provider();
        let c = create(a, &rk(mc("example.com", &[1]))).unwrap();
        let (k, s) = shared(a, PinUvAuthProtocol::Two);
        let salt_enc = s.encrypt(p, &[1u8; 32]).unwrap();
        let mut g = ga("example.com", &[&c.id]);
        g.extensions = Some(GetAssertionExtensions {
            hmac_secret: Some(HmacSecretInput {
                key_agreement: k.clone(),
                salt_auth: s.authenticate(p, &salt_enc),
                salt_enc,
                pin_uv_auth_protocol: Some(2),
            }),
            cred_blob: Some(true),
            large_blob_key: Some(true),
            ..Default::default()
        });
        let mut m = rk(mc("example.com", &[2]));
        m.extensions = Some(MakeCredentialExtensions {
            cred_protect: Some(2),
            hmac_secret: Some(true),
            cred_blob: Some(vec![1; 8]),
            large_blob_key: Some(true),
            min_pin_length: Some(true),
            ..Default::default()
        });
        m.exclude_list = Some(vec![PublicKeyCredentialDescriptor::public_key(c.id.clone())]);
        let enc = s.encrypt(p, &pad_pin("5678").unwrap()).unwrap();
        let phe = s.encrypt(p, &pin_hash(p, PIN)).unwrap();
        vec![
            (1, m.to_value()),
            (2, g.to_value()),
            (6, ClientPinRequest::set_pin(2, k.clone(), enc.clone(), s.authenticate(p, &enc)).to_value()),
            (6, ClientPinRequest::change_pin(2, k.clone(), enc, phe.clone(), vec![0; 32]).to_value()),
            (6, ClientPinRequest::get_token_with_permissions(2, k, phe, 0x3f, Some("example.com".into())).to_value()),
            (
                0x0a,
                CredentialManagementRequest {
                    sub_command: Cm::UpdateUserInformation,
                    sub_command_params: Some(CredentialManagementParams {
                        rp_id_hash: Some(vec![0; 32]),
                        credential_id: Some(PublicKeyCredentialDescriptor::public_key(c.id)),
                        user: Some(PublicKeyCredentialUserEntity { id: vec![1], ..Default::default() }),
                    }),
                    pin_uv_auth_protocol: Some(2),
                    pin_uv_auth_param: Some(vec![0; 32]),
                }
                .to_value(),
            ),
            (
                0x0d,
                ConfigRequest {
                    sub_command: ConfigSubcommand::SetMinPinLength,
                    sub_command_params: Some(
                        SetMinPinLengthParams {
                            new_min_pin_length: Some(6),
                            min_pin_length_rp_ids: Some(vec!["x".into()]),
                            force_change_pin: Some(true),
                            pin_complexity_policy: None,
                        }
                        .to_value(),
                    ),
                    pin_uv_auth_protocol: None,
                    pin_uv_auth_param: None,
                }
                .to_value(),
            ),
            (
                0x0c,
                LargeBlobsRequest { set: Some(vec![0x80; 40]), offset: 0, length: Some(40), ..Default::default() }
                    .to_value(),
            ),
            (0x0c, LargeBlobsRequest { get: Some(10), offset: 3, ..Default::default() }.to_value()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn mutated_valid_requests_never_panic(which in 0usize..9, slot in 0usize..12, del in any::<bool>(), v in value(),
            deep in any::<bool>()) {
            let mut a = Authenticator::in_memory().unwrap();
            let reqs = valid_requests(&mut a);
            let (cmd, mut body) = reqs[which].clone();
            if let Value::Map(m) = &mut body {
                let i = slot % m.len().max(1);
                if del && !m.is_empty() {
                    m.remove(i);
                } else if let Some(e) = m.get_mut(i) {
                    // Mutate one level down when the value is itself a map.
                    match (&mut e.1, deep) {
                        (Value::Map(inner), true) if !inner.is_empty() => {
                            let j = slot % inner.len();
                            inner[j].1 = v;
                        }
                        _ => e.1 = v,
                    }
                }
            }
            let mut req = vec![cmd];
            req.extend(body.to_vec());
            let resp = a.handle_cbor(&req);
            prop_assert!(!resp.is_empty());
            // The untouched requests still work afterwards.
            prop_assert_eq!(a.handle_cbor(&[0x04])[0], 0);
        }
    }
}
