//! Post-quantum credentials end to end: hwkey's relying party asks for
//! ML-DSA (or an RFC 9864 identifier) first, hwkey's WebAuthn client talks
//! CTAPHID (64-byte reports, in memory) to the software authenticator, which
//! creates the credential and signs; the relying party verifies the
//! registration (attestation none, packed self, packed x5c) and the sign-in.
//! Also: getInfo lists the algorithms, the authenticator picks the first
//! algorithm it supports in the RP's order, and the largest response
//! (ML-DSA-87 with packed attestation) fits in a CTAPHID message.
#![cfg(all(feature = "client", feature = "virtual", feature = "server"))]

use hwkey::authenticator::{AttestationMode, Authenticator, AuthenticatorConfig};
use hwkey::client::webauthn::{FixedPin, WebAuthnClient};
use hwkey::client::{Device, Op};
use hwkey::crypto::{all_providers, cose_verify};
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::cose::{CoseAlgorithm as A, CoseKey};
use hwkey::server::attestation::AttestationType;
use hwkey::server::*;
use hwkey::transport::ctaphid::{DeviceConfig, MAX_MESSAGE_LEN};
use hwkey::transport::memory::MemoryDevice;
use std::time::{Duration, SystemTime};

const ORIGIN: &str = "https://login.example.com";

fn op() -> Op {
    Op::timeout(Duration::from_secs(20))
}

fn device(provider: &'static dyn hwkey::crypto::CryptoProvider, mode: AttestationMode) -> (MemoryDevice, Device) {
    let cfg = AuthenticatorConfig { provider, attestation: mode, ..AuthenticatorConfig::default() };
    let d = MemoryDevice::spawn(Authenticator::new(cfg).unwrap(), DeviceConfig::default());
    let dev = Device::open(d.connect(), &op()).unwrap();
    (d, dev)
}

struct Outcome {
    fmt: String,
    attestation: AttestationType,
    attestation_object_len: usize,
    key: CoseKey,
}

/// Register and sign in once with an RP offering `algorithms` (first choice first).
fn ceremony(
    provider: &'static dyn hwkey::crypto::CryptoProvider,
    mode: AttestationMode,
    algorithms: Vec<A>,
    conveyance: AttestationConveyance,
) -> Outcome {
    let mut cfg = RpConfig::new("example.com", "Example", ORIGIN);
    cfg.algorithms = algorithms;
    cfg.attestation = conveyance;
    let rp = RelyingParty::with_provider(cfg, provider).unwrap();
    let (_d, mut dev) = device(provider, mode);
    let ui = FixedPin::new(None);
    let (opts, state) = rp
        .start_registration(
            RegistrationRequest { user_id: vec![3; 16], user_name: "pq".into(), ..Default::default() },
            SystemTime::now(),
        )
        .unwrap();
    let reg = WebAuthnClient::new(&ui).register(&mut dev, &opts, ORIGIN, &op()).unwrap();
    let ao = reg.response.attestation_object.0.clone();
    let att = AttestationObject::parse(&ao).unwrap();
    let result = rp.finish_registration_json(state, &serde_json::to_vec(&reg).unwrap(), SystemTime::now()).unwrap();
    let record = result.credential;
    let key = CoseKey::from_bytes(&record.public_key.0).unwrap();

    for tamper in [true, false] {
        let (opts, state) = rp
            .start_authentication(
                AuthenticationRequest {
                    user_id: Some(record.user_id.0.clone()),
                    allow_credentials: vec![hwkey::proto::webauthn::CredentialDescriptor::public_key(
                        record.credential_id.0.clone(),
                        None,
                    )],
                    ..Default::default()
                },
                SystemTime::now(),
            )
            .unwrap();
        let mut a = WebAuthnClient::new(&ui).authenticate(&mut dev, &opts, ORIGIN, &op()).unwrap();
        if tamper {
            // One bit of the signature changed: refused.
            let s = &mut a.response.signature.0;
            let i = s.len() / 3;
            s[i] ^= 4;
            let e = rp.finish_authentication(state, &a, &record, SystemTime::now()).unwrap_err();
            assert_eq!(e.code(), "bad_signature");
        } else {
            let r = rp.finish_authentication(state, &a, &record, SystemTime::now()).unwrap();
            assert_eq!(r.credential_id, record.credential_id.0);
        }
    }
    Outcome { fmt: att.fmt, attestation: result.attestation.attestation_type, attestation_object_len: ao.len(), key }
}

#[test]
fn get_info_lists_the_algorithms() {
    let (_d, dev) = device(hwkey::crypto::default_provider(), AttestationMode::Packed);
    let algs: Vec<i64> = dev.info().unwrap().algorithms.clone().unwrap().iter().map(|p| p.alg).collect();
    assert_eq!(algs, vec![-7, -8, -9, -19, -48, -49, -50]);
}

#[test]
fn ml_dsa_credentials_through_client_and_authenticator() {
    for provider in all_providers() {
        for alg in [A::ML_DSA_44, A::ML_DSA_65, A::ML_DSA_87] {
            for (mode, conveyance, fmt, kind) in [
                (AttestationMode::None, AttestationConveyance::None, "none", AttestationType::None),
                (
                    AttestationMode::SelfAttestation,
                    AttestationConveyance::Direct,
                    "packed",
                    AttestationType::SelfAttestation,
                ),
                (AttestationMode::Packed, AttestationConveyance::Direct, "packed", AttestationType::Basic),
            ] {
                // ML-DSA first, ES256 as the fallback the RP would also take.
                let o = ceremony(provider, mode, vec![alg, A::ES256], conveyance);
                let what = format!("{} {alg} {fmt} {kind:?}", provider.name());
                assert_eq!((o.fmt.as_str(), o.attestation), (fmt, kind), "{what}");
                assert_eq!(o.key.alg(), Some(alg), "{what}");
                assert!(matches!(o.key, CoseKey::Akp { .. }), "{what}");
                // The whole makeCredential response fits one CTAPHID message.
                assert!(o.attestation_object_len + 64 < MAX_MESSAGE_LEN, "{what}: {}", o.attestation_object_len);
            }
        }
    }
}

#[test]
fn classical_first_keeps_the_classical_choice() {
    // The default RP options: ES256 first, ML-DSA last; the authenticator takes ES256.
    let provider = hwkey::crypto::default_provider();
    let o = ceremony(
        provider,
        AttestationMode::None,
        RpConfig::new("x", "x", ORIGIN).algorithms,
        AttestationConveyance::None,
    );
    assert_eq!(o.key.alg(), Some(A::ES256));
}

#[test]
fn rfc_9864_ids_through_client_and_authenticator() {
    for provider in all_providers() {
        for (alg, offered) in [(A::ESP256, A::ES256), (A::ED25519, A::EDDSA)] {
            // The RP offers both the fully specified id (first) and its twin.
            let o =
                ceremony(provider, AttestationMode::SelfAttestation, vec![alg, offered], AttestationConveyance::Direct);
            assert_eq!(o.key.alg(), Some(alg), "{} {alg}", provider.name());
            assert_eq!(o.attestation, AttestationType::SelfAttestation);
        }
    }
}

#[test]
fn attestation_object_sizes() {
    // Printed for the report (run with --nocapture); asserted against FIPS 204 sizes.
    let provider = hwkey::crypto::default_provider();
    for alg in [A::ES256, A::EDDSA, A::ML_DSA_44, A::ML_DSA_65, A::ML_DSA_87] {
        for (mode, conveyance) in [
            (AttestationMode::None, AttestationConveyance::None),
            (AttestationMode::SelfAttestation, AttestationConveyance::Direct),
            (AttestationMode::Packed, AttestationConveyance::Direct),
        ] {
            let o = ceremony(provider, mode, vec![alg], conveyance);
            eprintln!(
                "attestationObject {:<10} {:<16} {:>5} bytes",
                alg.name(),
                format!("{mode:?}"),
                o.attestation_object_len
            );
            if let Some(level) = cose_verify::ml_dsa_level(alg) {
                assert!(o.attestation_object_len > level.public_key_len());
            }
        }
    }
}

#[test]
fn the_largest_make_credential_response_fits_a_ctaphid_message() {
    use hwkey::proto::ctap2::make_credential::{CommandOptions, MakeCredentialRequest};
    use hwkey::proto::ctap2::{
        CtapRequest, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
    };
    use hwkey::proto::extensions::MakeCredentialExtensions;
    // ML-DSA-87 with self attestation (the largest key and signature), a
    // 64-byte user id, long names, every extension at its largest output.
    for provider in all_providers() {
        let cfg = AuthenticatorConfig { provider, attestation: AttestationMode::SelfAttestation, ..Default::default() };
        let mut a = Authenticator::new(cfg).unwrap();
        let req = MakeCredentialRequest {
            client_data_hash: vec![7; 32],
            rp: PublicKeyCredentialRpEntity { id: "a".repeat(200) + ".example.com", name: Some("R".repeat(64)) },
            user: PublicKeyCredentialUserEntity {
                id: vec![1; 64],
                name: Some("u".repeat(64)),
                display_name: Some("d".repeat(64)),
            },
            pub_key_cred_params: vec![PublicKeyCredentialParameters::public_key(-50)],
            options: Some(CommandOptions { rk: Some(true), up: None, uv: None }),
            extensions: Some(MakeCredentialExtensions {
                cred_protect: Some(3),
                hmac_secret: Some(true),
                cred_blob: Some(vec![9; 32]),
                large_blob_key: Some(true),
                min_pin_length: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let resp = a.handle_cbor(&req.to_request_bytes());
        eprintln!(
            "{}: largest makeCredential response {} bytes (limit {MAX_MESSAGE_LEN})",
            provider.name(),
            resp.len()
        );
        assert_eq!(resp.first(), Some(&0), "status");
        assert!(resp.len() <= MAX_MESSAGE_LEN, "{} bytes", resp.len());
    }
}
