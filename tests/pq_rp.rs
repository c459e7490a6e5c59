//! The relying party with post-quantum credentials (ML-DSA-44/65/87, COSE
//! key type AKP) and the fully specified algorithm identifiers of RFC 9864,
//! on every compiled crypto provider:
//!
//! - default options offer ML-DSA after ES256 and the other classical ones;
//! - ML-DSA registrations (attestation none and packed self) and sign-ins
//!   verify; a changed signature, a changed attestation signature, an
//!   algorithm that was not offered are refused;
//! - ESP256 and Ed25519 credentials register where ES256 / EdDSA are offered;
//!   Ed448 is refused as an unsupported algorithm;
//! - the W3C WebAuthn L3 test vectors for ES384, ES512 and EdDSA verify under
//!   their RFC 9864 twins ESP384, ESP512 and Ed25519 (both as the signature
//!   algorithm and as the credential key's label), at the COSE level and, for
//!   packed x5c statements, with attStmt.alg replaced.
#![cfg(feature = "server")]

mod support;

use hwkey::crypto::cose_verify::{algorithms_agree, validate_credential_key, verify_with_alg};
use hwkey::crypto::{CryptoError, CryptoProvider, all_providers};
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::cbor::Value;
use hwkey::proto::cose::{CoseAlgorithm as A, CoseKey, curve};
use hwkey::proto::webauthn::*;
use hwkey::server::attestation::AttestationType;
use hwkey::server::testing::{ResponseParams, SoftCredential};
use hwkey::server::*;
use std::time::SystemTime;

const RP: &str = "example.com";
const ORIGIN: &str = "https://login.example.com";

fn rp_with(provider: &'static dyn CryptoProvider, algorithms: Option<Vec<A>>) -> RelyingParty {
    let mut cfg = RpConfig::new(RP, "Example", ORIGIN);
    if let Some(a) = algorithms {
        cfg.algorithms = a;
    }
    RelyingParty::with_provider(cfg, provider).unwrap()
}

fn start(rp: &RelyingParty) -> (CreationOptionsJson, RegistrationState) {
    rp.start_registration(
        RegistrationRequest { user_id: vec![9; 16], user_name: "pq".into(), ..Default::default() },
        SystemTime::now(),
    )
    .unwrap()
}

fn register(rp: &RelyingParty, cred: &SoftCredential, fmt: &str) -> Result<RegistrationResult, RegistrationError> {
    let (opts, state) = start(rp);
    let mut p = ResponseParams::new(RP, ORIGIN);
    p.fmt = fmt.into();
    let resp = cred.register(&opts.challenge.0, &p).unwrap();
    rp.finish_registration(state, &resp, SystemTime::now())
}

fn sign_in(
    rp: &RelyingParty,
    cred: &mut SoftCredential,
    record: &CredentialRecord,
    tamper: bool,
) -> Result<AuthenticationResult, AuthenticationError> {
    let (opts, state) = rp
        .start_authentication(
            AuthenticationRequest {
                user_id: Some(record.user_id.0.clone()),
                allow_credentials: vec![CredentialDescriptor::public_key(record.credential_id.0.clone(), None)],
                ..Default::default()
            },
            SystemTime::now(),
        )
        .unwrap();
    let mut resp = cred.assert(&opts.challenge.0, &ResponseParams::new(RP, ORIGIN)).unwrap();
    if tamper {
        let s = &mut resp.response.signature.0;
        let i = s.len() / 2;
        s[i] ^= 0x01;
    }
    rp.finish_authentication(state, &resp, record, SystemTime::now())
}

#[test]
fn default_options_offer_ml_dsa_after_the_classical_algorithms() {
    let rp = rp_with(hwkey::crypto::default_provider(), None);
    let (opts, _) = start(&rp);
    let algs: Vec<i64> = opts.pub_key_cred_params.iter().map(|p| p.alg.0).collect();
    assert_eq!(algs.first(), Some(&-7), "ES256 stays first");
    let first_pq = algs.iter().position(|a| (-50..=-48).contains(a)).unwrap();
    assert!(algs[..first_pq].iter().all(|a| !(-50..=-48).contains(a)));
    for classical in [-7, -8, -35, -257, -37] {
        let at = algs.iter().position(|a| *a == classical).unwrap();
        assert!(at < first_pq, "{classical} before ML-DSA in {algs:?}");
    }
    assert_eq!(&algs[first_pq..], &[-49, -48, -50]);
}

#[test]
fn ml_dsa_registration_and_sign_in() {
    for provider in all_providers() {
        for alg in [A::ML_DSA_44, A::ML_DSA_65, A::ML_DSA_87] {
            let rp = rp_with(provider, None);
            for fmt in ["none", "packed"] {
                let mut cred = SoftCredential::new(provider, alg).unwrap();
                let what = format!("{} {alg} {fmt}", provider.name());
                let reg = register(&rp, &cred, fmt).unwrap_or_else(|e| panic!("{what}: {e}"));
                let record = reg.credential;
                assert_eq!(record.algorithm, alg, "{what}");
                assert_eq!(
                    reg.attestation.attestation_type,
                    if fmt == "none" { AttestationType::None } else { AttestationType::SelfAttestation }
                );
                // The stored key is the AKP key, byte for byte.
                assert_eq!(CoseKey::from_bytes(&record.public_key.0).unwrap(), cred.public_key, "{what}");
                let r = sign_in(&rp, &mut cred, &record, false).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(r.credential_id, record.credential_id.0);
                assert!(r.user_verified);
                // A changed signature is refused.
                let e = sign_in(&rp, &mut cred, &record, true).unwrap_err();
                assert_eq!(e.code(), "bad_signature", "{what}");
            }
        }
    }
}

#[test]
fn ml_dsa_refusals() {
    let provider = hwkey::crypto::default_provider();
    let cred = SoftCredential::new(provider, A::ML_DSA_65).unwrap();
    // Not offered: an RP that lists only classical algorithms.
    let classical = rp_with(provider, Some(vec![A::ES256, A::EDDSA]));
    assert_eq!(register(&classical, &cred, "none").unwrap_err().code(), "algorithm_not_allowed");
    // Offered ML-DSA-44 only: an ML-DSA-65 key is not it.
    let only44 = rp_with(provider, Some(vec![A::ML_DSA_44]));
    assert_eq!(register(&only44, &cred, "none").unwrap_err().code(), "algorithm_not_allowed");

    // A packed self attestation with a changed signature, or whose alg names
    // another ML-DSA parameter set.
    let rp = rp_with(provider, None);
    for (edit, code) in [("sig", "attestation_bad_signature"), ("alg", "attestation_mismatch")] {
        let (opts, state) = start(&rp);
        let mut p = ResponseParams::new(RP, ORIGIN);
        p.fmt = "packed".into();
        let mut resp = cred.register(&opts.challenge.0, &p).unwrap();
        let ao = AttestationObject::parse(&resp.response.attestation_object.0).unwrap();
        let mut stmt = match ao.att_stmt {
            Value::Map(m) => m,
            _ => unreachable!(),
        };
        for (k, v) in stmt.iter_mut() {
            match (k.as_text(), edit, v) {
                (Some("sig"), "sig", Value::Bytes(s)) => s[100] ^= 0x80,
                (Some("alg"), "alg", v) => *v = Value::from(A::ML_DSA_44.0),
                _ => {}
            }
        }
        let rebuilt = hwkey::proto::cbor::MapBuilder::new()
            .insert("fmt", "packed")
            .insert("attStmt", Value::Map(stmt))
            .insert("authData", ao.auth_data_raw.clone())
            .build()
            .to_vec();
        resp.response.attestation_object = Base64Url(rebuilt);
        let e = rp.finish_registration(state, &resp, SystemTime::now()).unwrap_err();
        assert_eq!(e.code(), code, "{edit}: {e}");
    }
}

#[test]
fn rfc_9864_ids_register_where_their_twins_are_offered() {
    for provider in all_providers() {
        // Default options offer ES256 and EdDSA, not ESP256 or Ed25519.
        let rp = rp_with(provider, None);
        for alg in [A::ESP256, A::ED25519] {
            for fmt in ["none", "packed"] {
                let mut cred = SoftCredential::new(provider, alg).unwrap();
                let reg = register(&rp, &cred, fmt).unwrap_or_else(|e| panic!("{} {alg} {fmt}: {e}", provider.name()));
                assert_eq!(reg.credential.algorithm, alg);
                sign_in(&rp, &mut cred, &reg.credential, false).unwrap();
                assert_eq!(sign_in(&rp, &mut cred, &reg.credential, true).unwrap_err().code(), "bad_signature");
            }
        }
        // The twin must have been offered: ESP256 is not EdDSA.
        let eddsa_only = rp_with(provider, Some(vec![A::EDDSA]));
        let cred = SoftCredential::new(provider, A::ESP256).unwrap();
        assert_eq!(register(&eddsa_only, &cred, "none").unwrap_err().code(), "algorithm_not_allowed");
        // Ed448 (-53, or EdDSA on an Ed448 key): offered through EdDSA, but
        // neither provider has Ed448.
        for label in [A::ED448, A::EDDSA] {
            let mut cred = SoftCredential::new(provider, A::EDDSA).unwrap();
            cred.public_key = CoseKey::Okp { alg: Some(label), crv: curve::ED448, x: vec![5; 57] };
            let e = register(&rp, &cred, "none").unwrap_err();
            assert_eq!(e.code(), "invalid_credential_key");
            assert!(e.to_string().contains("unsupported algorithm: Ed448"), "{e}");
        }
    }
}

/// The RFC 9864 identifier whose polymorphic twin is `alg`.
fn fully_specified(alg: A) -> A {
    [A::ESP256, A::ESP384, A::ESP512, A::ED25519].into_iter().find(|f| f.polymorphic_twin() == Some(alg)).unwrap()
}

/// Re-encode a COSE key with another alg label.
fn relabel(key: &CoseKey, alg: A) -> CoseKey {
    match key.clone() {
        CoseKey::Ec2 { crv, x, y, .. } => CoseKey::Ec2 { alg: Some(alg), crv, x, y },
        CoseKey::Okp { crv, x, .. } => CoseKey::Okp { alg: Some(alg), crv, x },
        other => other,
    }
}

#[test]
fn w3c_vectors_verify_under_the_fully_specified_twins() {
    let v = support::vectors::load("webauthn-l3-test-vectors.json");
    let case = |name: &str| v["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    let mut checked = 0;
    for (name, poly, full) in [
        ("packed.ES384", A::ES384, A::ESP384),
        ("packed.ES512", A::ES512, A::ESP512),
        ("packed.EdDSA", A::EDDSA, A::ED25519),
    ] {
        let c = case(name);
        let att = AttestationObject::parse(&support::vectors::hexf(&c["registration"]["attestationObject"])).unwrap();
        let key = att.auth_data.attested_credential.clone().unwrap().public_key;
        assert_eq!(key.alg(), Some(poly), "{name}");
        let a = &c["authentication"];
        let ad = support::vectors::hexf(&a["authenticatorData"]);
        let cdj = support::vectors::hexf(&a["clientDataJSON"]);
        let sig = support::vectors::hexf(&a["signature"]);
        for p in all_providers() {
            let msg = [ad.clone(), p.sha256(&[&cdj]).to_vec()].concat();
            assert!(algorithms_agree(poly, full) && algorithms_agree(full, poly));
            // Polymorphic key, fully specified algorithm; and the reverse; and fully specified both.
            assert_eq!(verify_with_alg(p, full, &key, &msg, &sig, false), Ok(()), "{} {name}", p.name());
            let relabelled = relabel(&key, full);
            assert_eq!(verify_with_alg(p, poly, &relabelled, &msg, &sig, false), Ok(()), "{} {name}", p.name());
            assert_eq!(verify_with_alg(p, full, &relabelled, &msg, &sig, false), Ok(()), "{} {name}", p.name());
            assert_eq!(validate_credential_key(p, full, &relabelled), Ok(()), "{} {name}", p.name());
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(verify_with_alg(p, full, &relabelled, &msg, &bad, false).is_err());
            checked += 1;
        }
        // The packed x5c statement with attStmt.alg set to the twin.
        let cdh =
            hwkey::crypto::default_provider().sha256(&[&support::vectors::hexf(&c["registration"]["clientDataJSON"])]);
        let mut stmt = match att.att_stmt.clone() {
            Value::Map(m) => m,
            _ => unreachable!(),
        };
        // attStmt.alg names the attestation key's algorithm (ES256 for
        // these vectors' P-256 attestation keys): use its twin.
        let mut stmt_alg = None;
        for (k, val) in stmt.iter_mut() {
            if k.as_text() == Some("alg") {
                let twin = fully_specified(A(val.as_i64().unwrap()));
                stmt_alg = Some(twin);
                *val = Value::from(twin.0);
            }
        }
        let stmt_alg = stmt_alg.unwrap();
        assert!(stmt_alg.polymorphic_twin().is_some(), "{name}: {stmt_alg}");
        let stmt = Value::Map(stmt);
        for provider in all_providers() {
            let ctx = hwkey::server::attestation::AttestationContext {
                provider,
                now_unix: 1_750_000_000,
                allow_safetynet: false,
                allow_rs1: false,
            };
            let r = hwkey::server::attestation::verify_attestation_with_policy(
                "packed",
                &stmt,
                &att.auth_data,
                &att.auth_data_raw,
                &cdh,
                &ctx,
                &Default::default(),
            );
            assert!(r.is_ok(), "{} {name} with attStmt.alg {stmt_alg}: {r:?}", provider.name());
        }
    }
    assert_eq!(checked, 3 * all_providers().len());
}

#[test]
fn ed448_is_an_unsupported_algorithm_everywhere() {
    let key = CoseKey::Okp { alg: Some(A::ED448), crv: curve::ED448, x: vec![5; 57] };
    for p in all_providers() {
        assert_eq!(verify_with_alg(p, A::ED448, &key, b"m", &[0; 114], false), Err(CryptoError::Unsupported("Ed448")));
        assert_eq!(validate_credential_key(p, A::ED448, &key), Err(CryptoError::Unsupported("Ed448")));
    }
}
