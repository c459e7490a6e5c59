//! FIDO metadata (MDS3): BLOBs made here (own root and signer, entries with
//! each status), verified, tampered, reloaded; and the attestation policy
//! they drive, through whole registrations with packed attestation.

use base64::Engine;
use hwkey::authenticator::generate_attestation;
use hwkey::authenticator::state::AttestationMaterial;
use hwkey::crypto::default_provider;
use hwkey::proto::cose::CoseAlgorithm;
use hwkey::server::metadata::jws::der_ecdsa_to_raw;
use hwkey::server::metadata::{AttestationRequirement, Metadata, MetadataService, default_roots};
use hwkey::server::testing::{ResponseParams, SoftCredential};
use hwkey::server::{RegistrationRequest, RelyingParty, RpConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const RP: &str = "example.com";
const ORIGIN: &str = "https://example.com";
const AAGUID_A: [u8; 16] = [0xA1; 16];
const AAGUID_B: [u8; 16] = [0xB2; 16];
const AAGUID_A_STR: &str = "a1a1a1a1-a1a1-a1a1-a1a1-a1a1a1a1a1a1";
const AAGUID_B_STR: &str = "b2b2b2b2-b2b2-b2b2-b2b2-b2b2b2b2b2b2";

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

fn b64url(d: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
}

fn material(aaguid: &[u8; 16]) -> AttestationMaterial {
    generate_attestation(default_provider(), aaguid).unwrap()
}

/// A compact JWS of `payload`, ES256, signed by `signer`'s batch key, x5c = [batch cert].
fn blob(signer: &AttestationMaterial, payload: &Value) -> Vec<u8> {
    let p = default_provider();
    let header = json!({"alg": "ES256", "typ": "JWT", "x5c": [b64(&signer.cert.0)]});
    let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(payload.to_string().as_bytes()));
    let der = p.p256_sign(&signer.key.0, input.as_bytes()).unwrap();
    let raw = der_ecdsa_to_raw(&der, 32).unwrap();
    format!("{input}.{}", b64url(&raw)).into_bytes()
}

fn entry(aaguid: &str, name: &str, root: &[u8], statuses: &[(&str, Option<&[u8]>)]) -> Value {
    entry_roots(aaguid, name, &[root], statuses)
}

fn entry_roots(aaguid: &str, name: &str, roots: &[&[u8]], statuses: &[(&str, Option<&[u8]>)]) -> Value {
    let reports: Vec<Value> = statuses
        .iter()
        .enumerate()
        .map(|(i, (s, cert))| {
            let mut r = json!({"status": s, "effectiveDate": format!("2024-01-{:02}", i + 1)});
            if let Some(c) = cert {
                r["certificate"] = json!(b64(c));
            }
            r
        })
        .collect();
    json!({
        "aaguid": aaguid,
        "metadataStatement": {
            "aaguid": aaguid, "description": name, "protocolFamily": "fido2", "schema": 3,
            "attestationTypes": ["basic_full"],
            "attestationRootCertificates": roots.iter().map(|r| b64(r)).collect::<Vec<_>>(),
            "icon": "data:image/png;base64,AAAA"
        },
        "statusReports": reports,
        "timeOfLastStatusChange": "2024-01-01"
    })
}

fn payload(no: u64, next_update: &str, entries: Vec<Value>) -> Value {
    json!({"legalHeader": "test", "no": no, "nextUpdate": next_update, "entries": entries})
}

struct World {
    signer: AttestationMaterial,
    vendor_a: AttestationMaterial,
    vendor_b: AttestationMaterial,
}

fn world() -> World {
    World { signer: material(&[0; 16]), vendor_a: material(&AAGUID_A), vendor_b: material(&AAGUID_B) }
}

fn service(w: &World, entries: Vec<Value>) -> MetadataService {
    let b = blob(&w.signer, &payload(7, "2099-01-01", entries));
    MetadataService::load(default_provider(), &b, vec![w.signer.root_cert.0.clone()], SystemTime::now()).unwrap()
}

fn rp(requirement: AttestationRequirement, md: Option<MetadataService>) -> RelyingParty {
    let mut cfg = RpConfig::new(RP, "Example", ORIGIN);
    cfg.attestation_policy.requirement = requirement;
    let rp = RelyingParty::new(cfg).unwrap();
    match md {
        Some(m) => rp.with_metadata(Arc::new(m)),
        None => rp,
    }
}

/// A packed registration by a key whose batch certificate is `vendor`'s,
/// claiming `aaguid`.
fn register(rp: &RelyingParty, vendor: Option<&AttestationMaterial>, aaguid: [u8; 16]) -> Result<Value, String> {
    let mut cred = SoftCredential::new(default_provider(), CoseAlgorithm::ES256).unwrap();
    cred.aaguid = aaguid;
    let mut p = ResponseParams::new(RP, ORIGIN);
    match vendor {
        Some(v) => {
            cred.attestation = Some((vec![v.cert.0.clone()], v.key.0.clone()));
            p.fmt = "packed".into();
        }
        None => p.fmt = "none".into(),
    }
    let (opts, state) = rp
        .start_registration(
            RegistrationRequest { user_id: b"user".to_vec(), user_name: "alice".into(), ..Default::default() },
            SystemTime::now(),
        )
        .unwrap();
    let resp = cred.register(&opts.challenge.0, &p).unwrap();
    let r = rp.finish_registration(state, &resp, SystemTime::now()).map_err(|e| e.code().to_string())?;
    Ok(serde_json::to_value(&r.authenticator).unwrap())
}

#[test]
fn a_blob_made_here_verifies_and_indexes_its_entries() {
    let w = world();
    let md =
        service(&w, vec![entry(AAGUID_A_STR, "Vendor A Key", &w.vendor_a.root_cert.0, &[("FIDO_CERTIFIED_L1", None)])]);
    let cur = md.current();
    assert_eq!(cur.serial(), 7);
    assert_eq!(cur.len(), 1);
    assert!(!cur.is_stale(SystemTime::now()));
    let e = cur.by_aaguid(&AAGUID_A).expect("entry");
    assert_eq!(e.name, "Vendor A Key");
    assert_eq!(e.roots, vec![w.vendor_a.root_cert.0.clone()]);
    assert!(cur.by_aaguid(&AAGUID_B).is_none());
}

#[test]
fn tampered_blob_wrong_root_and_bad_envelopes_are_refused() {
    let w = world();
    let good = blob(&w.signer, &payload(1, "2099-01-01", vec![]));
    let p = default_provider();
    let roots = vec![w.signer.root_cert.0.clone()];
    assert!(Metadata::from_blob(p, &good, &roots, SystemTime::now()).is_ok());
    // Change one payload character: the signature no longer covers it.
    let text = String::from_utf8(good.clone()).unwrap();
    let mut parts: Vec<String> = text.split('.').map(str::to_owned).collect();
    let forged = payload(1, "2099-01-01", vec![entry(AAGUID_A_STR, "Forged", &w.vendor_a.root_cert.0, &[])]);
    parts[1] = b64url(forged.to_string().as_bytes());
    let tampered = parts.join(".").into_bytes();
    assert_eq!(
        Metadata::from_blob(p, &tampered, &roots, SystemTime::now()).unwrap_err().code(),
        "metadata_bad_signature"
    );
    // A chain to another root.
    let other = vec![w.vendor_b.root_cert.0.clone()];
    assert_eq!(Metadata::from_blob(p, &good, &other, SystemTime::now()).unwrap_err().code(), "metadata_untrusted");
    // The real FIDO roots do not trust our signer.
    assert_eq!(default_roots().len(), 2);
    assert_eq!(
        Metadata::from_blob(p, &good, &default_roots(), SystemTime::now()).unwrap_err().code(),
        "metadata_untrusted"
    );
    // An unsupported alg, and a signature truncated.
    let hdr = b64url(json!({"alg": "HS256", "x5c": [b64(&w.signer.cert.0)]}).to_string().as_bytes());
    let hs = format!("{hdr}.{}.{}", parts[1], parts[2]).into_bytes();
    assert_eq!(
        Metadata::from_blob(p, &hs, &roots, SystemTime::now()).unwrap_err().code(),
        "metadata_unsupported_algorithm"
    );
    let short = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..10]).into_bytes();
    assert!(Metadata::from_blob(p, &short, &roots, SystemTime::now()).is_err());
}

#[test]
fn expired_next_update_is_reported_not_refused() {
    let w = world();
    let b = blob(&w.signer, &payload(3, "2020-01-01", vec![]));
    let md =
        Metadata::from_blob(default_provider(), &b, std::slice::from_ref(&w.signer.root_cert.0), SystemTime::now())
            .unwrap();
    assert!(md.is_stale(SystemTime::now()));
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000); // 2017
    assert!(!md.is_stale(later));
}

#[test]
fn reload_keeps_the_old_blob_unless_the_new_one_verifies_and_is_newer() {
    let w = world();
    let md = service(&w, vec![]);
    assert_eq!(md.current().serial(), 7);
    let same = blob(&w.signer, &payload(7, "2099-01-01", vec![]));
    assert_eq!(md.reload(&same, SystemTime::now()).unwrap_err().code(), "metadata_not_newer");
    let older = blob(&w.signer, &payload(6, "2099-01-01", vec![]));
    assert!(md.reload(&older, SystemTime::now()).is_err());
    let forged = blob(&w.vendor_b, &payload(99, "2099-01-01", vec![]));
    assert_eq!(md.reload(&forged, SystemTime::now()).unwrap_err().code(), "metadata_untrusted");
    assert_eq!(md.current().serial(), 7, "failed reloads keep the BLOB in force");
    let newer =
        blob(&w.signer, &payload(8, "2099-01-01", vec![entry(AAGUID_A_STR, "A", &w.vendor_a.root_cert.0, &[])]));
    assert_eq!(md.reload(&newer, SystemTime::now()).unwrap(), 8);
    assert_eq!(md.current().len(), 1);
}

#[test]
fn metadata_policy_accepts_a_chain_to_the_entrys_own_root_and_names_the_authenticator() {
    let w = world();
    let md =
        service(&w, vec![entry(AAGUID_A_STR, "Vendor A Key", &w.vendor_a.root_cert.0, &[("FIDO_CERTIFIED_L2", None)])]);
    let rp = rp(AttestationRequirement::Metadata, Some(md));
    let info = register(&rp, Some(&w.vendor_a), AAGUID_A).unwrap();
    assert_eq!(info["name"], "Vendor A Key");
    assert_eq!(info["certification"], "FIDO_CERTIFIED_L2");
    assert_eq!(info["icon"], "data:image/png;base64,AAAA");
    assert_eq!(info["attested"], true);
}

/// Review finding (#13): anchors were global, so trusting one vendor's root
/// let that vendor's chain claim any AAGUID. A statement's roots now vouch
/// only for its own AAGUID.
#[test]
fn a_chain_from_vendor_as_root_claiming_vendor_bs_aaguid_is_refused() {
    let w = world();
    // Vendor A has two roots; under the second it issued a batch certificate
    // that claims vendor B's AAGUID.
    let rogue = material(&AAGUID_B);
    let entries = vec![
        entry_roots(
            AAGUID_A_STR,
            "Vendor A Key",
            &[&w.vendor_a.root_cert.0, &rogue.root_cert.0],
            &[("FIDO_CERTIFIED", None)],
        ),
        entry(AAGUID_B_STR, "Vendor B Key", &w.vendor_b.root_cert.0, &[("FIDO_CERTIFIED", None)]),
    ];
    let rp = rp(AttestationRequirement::Metadata, Some(service(&w, entries.clone())));
    assert_eq!(register(&rp, Some(&rogue), AAGUID_B).unwrap_err(), "attestation_not_trusted");
    // B's own chain passes, A's own chain passes.
    assert_eq!(register(&rp, Some(&w.vendor_b), AAGUID_B).unwrap()["name"], "Vendor B Key");
    assert_eq!(register(&rp, Some(&w.vendor_a), AAGUID_A).unwrap()["name"], "Vendor A Key");
    // A's real chain claiming B's AAGUID cannot even pass the packed check
    // (the certificate's AAGUID extension says A).
    assert!(register(&rp, Some(&w.vendor_a), AAGUID_B).is_err());
    // Even with A's root among the relying party's global anchors.
    let mut cfg = RpConfig::new(RP, "Example", ORIGIN);
    cfg.attestation_policy.requirement = AttestationRequirement::Metadata;
    cfg.attestation_policy.trust_anchors = vec![rogue.root_cert.0.clone()];
    let rp = RelyingParty::new(cfg).unwrap().with_metadata(Arc::new(service(&w, entries)));
    assert_eq!(register(&rp, Some(&rogue), AAGUID_B).unwrap_err(), "attestation_not_trusted");
}

#[test]
fn each_status_has_its_effect() {
    let w = world();
    let root = w.vendor_a.root_cert.0.clone();
    let other_cert = w.vendor_b.cert.0.clone();
    let own_cert = w.vendor_a.cert.0.clone();
    // (status reports, outcome under `metadata`, outcome under `certified`)
    type Case<'a> = (Vec<(&'a str, Option<&'a [u8]>)>, Result<(), &'a str>, Result<(), &'a str>);
    let cases: Vec<Case> = vec![
        // (reports, under `metadata`, under `certified`)
        (vec![("FIDO_CERTIFIED_L1", None)], Ok(()), Ok(())),
        (vec![("NOT_FIDO_CERTIFIED", None)], Ok(()), Err("attestation_not_trusted")),
        (vec![("FIDO_CERTIFIED_L1", None), ("UPDATE_AVAILABLE", None)], Ok(()), Ok(())),
        (vec![("FIDO_CERTIFIED_L1", None), ("NOT_FIDO_CERTIFIED", None)], Ok(()), Err("attestation_not_trusted")),
        (vec![("SELF_ASSERTION_SUBMITTED", None)], Ok(()), Err("attestation_not_trusted")),
        (
            vec![("FIDO_CERTIFIED_L1", None), ("REVOKED", None)],
            Err("authenticator_revoked"),
            Err("authenticator_revoked"),
        ),
        (vec![("ATTESTATION_KEY_COMPROMISE", None)], Err("authenticator_revoked"), Err("authenticator_revoked")),
        (vec![("FIDO_CERTIFIED", None), ("ATTESTATION_KEY_COMPROMISE", Some(&other_cert))], Ok(()), Ok(())),
        (
            vec![("FIDO_CERTIFIED", None), ("ATTESTATION_KEY_COMPROMISE", Some(&own_cert))],
            Err("authenticator_revoked"),
            Err("authenticator_revoked"),
        ),
        (vec![("USER_KEY_REMOTE_COMPROMISE", None)], Err("authenticator_revoked"), Err("authenticator_revoked")),
        (vec![("USER_KEY_PHYSICAL_COMPROMISE", None)], Err("authenticator_revoked"), Err("authenticator_revoked")),
        (vec![("USER_VERIFICATION_BYPASS", None)], Ok(()), Err("attestation_not_trusted")),
    ];
    for (reports, under_metadata, under_certified) in cases {
        for (req, want) in
            [(AttestationRequirement::Metadata, under_metadata), (AttestationRequirement::Certified, under_certified)]
        {
            let rp = rp(req, Some(service(&w, vec![entry(AAGUID_A_STR, "A", &root, &reports)])));
            let got = register(&rp, Some(&w.vendor_a), AAGUID_A).map(|_| ());
            assert_eq!(got, want.map_err(String::from), "{reports:?} under {req:?}");
        }
        // Under `any`, only the refusing statuses refuse.
        let rp = rp(AttestationRequirement::Any, Some(service(&w, vec![entry(AAGUID_A_STR, "A", &root, &reports)])));
        let got = register(&rp, Some(&w.vendor_a), AAGUID_A);
        assert_eq!(got.is_err(), under_metadata == Err("authenticator_revoked"), "{reports:?} under any");
    }
}

#[test]
fn a_status_effective_in_the_future_is_not_yet_in_force() {
    let w = world();
    let mut e = entry(AAGUID_A_STR, "A", &w.vendor_a.root_cert.0, &[("FIDO_CERTIFIED", None)]);
    e["statusReports"].as_array_mut().unwrap().push(json!({"status": "REVOKED", "effectiveDate": "2999-01-01"}));
    let rp = rp(AttestationRequirement::Certified, Some(service(&w, vec![e])));
    assert!(register(&rp, Some(&w.vendor_a), AAGUID_A).is_ok());
}

#[test]
fn metadata_policies_refuse_what_they_cannot_prove() {
    let w = world();
    let entries = vec![entry(AAGUID_A_STR, "A", &w.vendor_a.root_cert.0, &[("FIDO_CERTIFIED", None)])];
    let rp_md = rp(AttestationRequirement::Metadata, Some(service(&w, entries.clone())));
    // No attestation at all.
    assert_eq!(register(&rp_md, None, AAGUID_A).unwrap_err(), "attestation_not_trusted");
    // An AAGUID the BLOB does not know.
    let unknown = material(&[0xC3; 16]);
    assert_eq!(register(&rp_md, Some(&unknown), [0xC3; 16]).unwrap_err(), "attestation_not_trusted");
    // A policy that needs metadata, with none loaded.
    let rp_none = rp(AttestationRequirement::Certified, None);
    assert_eq!(register(&rp_none, Some(&w.vendor_a), AAGUID_A).unwrap_err(), "attestation_not_trusted");
    // `any` accepts all of these.
    let rp_any = rp(AttestationRequirement::Any, Some(service(&w, entries)));
    assert!(register(&rp_any, None, AAGUID_A).is_ok());
    assert!(register(&rp_any, Some(&unknown), [0xC3; 16]).is_ok());
}

#[test]
fn aaguid_allow_list() {
    let w = world();
    let mut cfg = RpConfig::new(RP, "Example", ORIGIN);
    cfg.attestation_policy.allowed_aaguids = vec![AAGUID_A_STR.to_uppercase()];
    let rp = RelyingParty::new(cfg).unwrap();
    assert!(register(&rp, Some(&w.vendor_a), AAGUID_A).is_ok());
    assert_eq!(register(&rp, Some(&w.vendor_b), AAGUID_B).unwrap_err(), "attestation_not_trusted");
}

#[test]
fn passkey_providers_are_named_without_attestation() {
    let icloud = hwkey::proto::auth_data::aaguid_from_string("fbfc3007-154e-4ecc-8c0b-6e020557d7bd").unwrap();
    let rp = rp(AttestationRequirement::Any, None);
    let info = register(&rp, None, icloud).unwrap();
    assert_eq!(info["name"], "iCloud Keychain");
    assert_eq!(info["attested"], false);
    assert!(info.get("certification").is_none());
    // An unknown AAGUID has no name.
    assert_eq!(register(&rp, None, [0x42; 16]).unwrap(), Value::Null);
}

// ------------------------------------------------------------ real statements
//
// The metadata statements of four real authenticators (tests/data/mds/, with
// their public origin in its README), in a BLOB signed here; and real
// attestation chains from ../shared/vectors.

#[path = "support/vectors.rs"]
mod vectors;

fn real_entries() -> Vec<Value> {
    ["yubikey5", "yubikey_bio", "feitian", "solokeys"]
        .iter()
        .map(|n| {
            let p = format!("{}/tests/data/mds/{n}.json", env!("CARGO_MANIFEST_DIR"));
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        })
        .collect()
}

/// The x5c chain of a real registration in the shared vectors.
fn real_chain(case_name: &str) -> Vec<Vec<u8>> {
    let file = vectors::load("real-device-registrations.json");
    let case = file["cases"].as_array().unwrap().iter().find(|c| c["name"] == case_name).expect(case_name);
    let cred: Value = match &case["credential"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        v => v.clone(),
    };
    let ao = vectors::b64(cred["response"]["attestationObject"].as_str().unwrap());
    let obj = hwkey::proto::attestation::AttestationObject::parse(&ao).unwrap();
    match obj.att_stmt.get_text("x5c") {
        Some(hwkey::proto::cbor::Value::Array(a)) => {
            a.iter().filter_map(|c| c.as_bytes().map(<[u8]>::to_vec)).collect()
        }
        _ => panic!("{case_name} has no x5c"),
    }
}

fn basic(chain: Vec<Vec<u8>>) -> hwkey::server::attestation::VerifiedAttestation {
    hwkey::server::attestation::VerifiedAttestation {
        fmt: "packed".into(),
        attestation_type: hwkey::server::attestation::AttestationType::Basic,
        chain,
    }
}

const YUBIKEY_5CI_CASE: &str =
    "py_webauthn/TestVerifyRegistrationResponsePacked.test_verify_attestation_with_okp_public_key";
const FEITIAN_CASE: &str = "go-webauthn/Test_VerifyPackedFormat/ShouldSuccessfullyVerifyES256";

#[test]
fn real_metadata_statements_index_and_report_their_certification() {
    let w = world();
    let md = service(&w, real_entries());
    let cur = md.current();
    assert_eq!(cur.len(), 4, "every real entry parses ({} skipped)", cur.skipped());
    let aaguid = |s| hwkey::proto::auth_data::aaguid_from_string(s).unwrap();
    let today = SystemTime::now();
    let y5 = cur.by_aaguid(&aaguid("fa2b99dc-9e39-4257-8f92-4a30d23c4118")).unwrap();
    assert_eq!(y5.name, "YubiKey 5 Series with NFC");
    let bio = cur.by_aaguid(&aaguid("d8522d9f-575b-4866-88a9-ba99fa02f35b")).unwrap();
    assert_eq!(bio.name, "YubiKey Bio Series");
    let days = (today.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400) as i64;
    assert_eq!(bio.certification(days).map(|s| s.as_str()), Some("FIDO_CERTIFIED_L1"));
    assert!(bio.refusal(&[], days).is_none());
    let solo = cur.by_aaguid(&aaguid("8876631b-d4a0-427f-5773-0ec71c9e0279")).unwrap();
    assert!(solo.name.starts_with("Solo"));
    // The U2F Feitian entry has no AAGUID: it is indexed by its attestation
    // key identifiers, not by AAID.
    assert!(cur.by_aaid("f4b64a68c334e901b8e23c6e66e6866c31931f5d").is_none());
}

#[test]
fn a_real_yubikey_chain_ends_in_the_yubico_root_of_the_real_statement_and_a_feitian_chain_does_not() {
    let w = world();
    let md = service(&w, real_entries());
    let cur = md.current();
    let p = default_provider();
    let y5_aaguid = hwkey::proto::auth_data::aaguid_from_string("fa2b99dc-9e39-4257-8f92-4a30d23c4118").unwrap();
    let roots = cur.by_aaguid(&y5_aaguid).unwrap().roots.clone();
    let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let yubikey = real_chain(YUBIKEY_5CI_CASE);
    let feitian = real_chain(FEITIAN_CASE);
    assert!(
        hwkey::server::trust::evaluate(p, &yubikey, &roots, now).is_trusted(),
        "a real YubiKey chain, Yubico's root"
    );
    assert!(!hwkey::server::trust::evaluate(p, &feitian, &roots, now).is_trusted(), "Feitian's chain, Yubico's root");
    // Scoped anchors with real chains: a Feitian chain claiming the YubiKey 5
    // AAGUID is refused under `metadata`, a Yubico chain is accepted (the
    // real chain comes from a 5Ci; the policy checks the chain against the
    // entry's roots, which are the same Yubico root for every YubiKey).
    let decide = |chain: Vec<Vec<u8>>| {
        hwkey::server::metadata::decide(
            p,
            Some(&cur),
            AttestationRequirement::Metadata,
            &[],
            &y5_aaguid,
            &basic(chain),
            SystemTime::now(),
        )
    };
    assert_eq!(decide(feitian).unwrap_err().code(), "attestation_not_trusted");
    let info = decide(yubikey).unwrap().unwrap();
    assert_eq!(info.name, "YubiKey 5 Series with NFC");
    assert!(info.attested);
}
