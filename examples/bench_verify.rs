//! Measures what a whole WebAuthn assertion verification costs against the
//! bare signature check inside it.
//!
//! In one process: (a) the median time of a bare ECDSA P-256 verification
//! with the default provider's backend (aws-lc-rs) over the same kind of
//! message (authenticatorData || SHA-256(clientDataJSON)), and (b) the median
//! time of one complete `finish_authentication_json` of an ES256 assertion:
//! JSON parsing, client-data checks, authenticator-data parsing, hashing and
//! the signature check (storage excluded). The last line is
//! `{"p256_verify_us": X, "assertion_verify_us": Y, "ratio": R}`.
//!
//! Run: `cargo run --release --example bench_verify`

use hwkey::crypto::CryptoProvider;
use hwkey::proto::cose::CoseAlgorithm;
use hwkey::server::testing::{ResponseParams, SoftCredential};
use hwkey::server::{AuthenticationRequest, CredentialRecord, RegistrationRequest, RelyingParty, RpConfig};
use std::hint::black_box;
use std::time::{Instant, SystemTime};

const BATCHES: usize = 41;
const PER_BATCH: usize = 400;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn batch_us(f: &mut impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..PER_BATCH {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / PER_BATCH as f64
}

/// Medians of two measurements taken in alternating batches, so both see the
/// same machine load.
fn paired_median_us(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    batch_us(&mut a);
    batch_us(&mut b);
    let (mut va, mut vb) = (Vec::new(), Vec::new());
    for _ in 0..BATCHES {
        va.push(batch_us(&mut a));
        vb.push(batch_us(&mut b));
    }
    (median(va), median(vb))
}

/// Median over batches of the mean time per call, in microseconds.
fn median_us(mut f: impl FnMut()) -> f64 {
    for _ in 0..PER_BATCH {
        f();
    }
    let mut v: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..PER_BATCH {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / PER_BATCH as f64
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Setup {
    rp: RelyingParty,
    record: CredentialRecord,
    state: hwkey::server::AuthenticationState,
    json: Vec<u8>,
    signed: Vec<u8>,
    signature: Vec<u8>,
    point: Vec<u8>,
}

fn setup(provider: &'static dyn CryptoProvider) -> Setup {
    let rp =
        RelyingParty::with_provider(RpConfig::new("example.com", "Example", "https://login.example.com"), provider)
            .expect("config");
    let now = SystemTime::now();
    let params = ResponseParams::new("example.com", "https://login.example.com");
    let mut cred = SoftCredential::new(provider, CoseAlgorithm::ES256).expect("key");
    let (opts, st) = rp
        .start_registration(
            RegistrationRequest { user_id: vec![1; 16], user_name: "alice".into(), ..Default::default() },
            now,
        )
        .expect("start");
    let reg = cred.register(&opts.challenge, &params).expect("register");
    let record = rp.finish_registration(st, &reg, now).expect("registration verifies").credential;
    let (opts, state) = rp
        .start_authentication(AuthenticationRequest { user_id: Some(vec![1; 16]), ..Default::default() }, now)
        .expect("start");
    let resp = cred.assert(&opts.challenge, &params).expect("assert");
    let json = serde_json::to_vec(&resp).expect("json");
    let cdh = provider.sha256(&[&resp.response.client_data_json]);
    let signed = [&resp.response.authenticator_data[..], &cdh[..]].concat();
    let point = cred.public_key.sec1_uncompressed().expect("EC2");
    Setup { rp, record, state, json, signed, signature: resp.response.signature.0, point }
}

fn finish_once(s: &Setup, now: SystemTime) {
    let r = s.rp.finish_authentication_json(s.state.clone(), black_box(&s.json), |_, _| Some(&s.record), now);
    assert!(r.is_ok(), "assertion must verify: {r:?}");
}

fn assertion_us(s: &Setup) -> f64 {
    let now = SystemTime::now();
    median_us(|| finish_once(s, now))
}

fn registration_us(provider: &'static dyn CryptoProvider, fmt: &str) -> f64 {
    let rp =
        RelyingParty::with_provider(RpConfig::new("example.com", "Example", "https://login.example.com"), provider)
            .expect("config");
    let now = SystemTime::now();
    let mut params = ResponseParams::new("example.com", "https://login.example.com");
    params.fmt = fmt.into();
    let cred = SoftCredential::new(provider, CoseAlgorithm::ES256).expect("key");
    let (opts, st) = rp
        .start_registration(
            RegistrationRequest { user_id: vec![1; 16], user_name: "alice".into(), ..Default::default() },
            now,
        )
        .expect("start");
    let json = serde_json::to_vec(&cred.register(&opts.challenge, &params).expect("register")).expect("json");
    median_us(|| {
        assert!(rp.finish_registration_json(st.clone(), black_box(&json), now).is_ok());
    })
}

/// The W3C L3 packed.ES256 vector (x5c attestation), when ../shared/vectors is present.
fn registration_x5c_us(provider: &'static dyn CryptoProvider) -> Option<f64> {
    use hwkey::proto::webauthn::*;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/webauthn-l3-test-vectors.json");
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let case = file["cases"].as_array()?.iter().find(|c| c["name"] == "packed.ES256")?;
    let hex = |v: &serde_json::Value| -> Option<Vec<u8>> {
        let s = v["hex"].as_str()?;
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
    };
    let reg = &case["registration"];
    let id = hex(&reg["credential_id"])?;
    let resp = RegistrationResponseJson {
        id: b64url_encode(&id),
        raw_id: Base64Url(id),
        response: AttestationResponseJson {
            client_data_json: Base64Url(hex(&reg["clientDataJSON"])?),
            attestation_object: Base64Url(hex(&reg["attestationObject"])?),
            authenticator_data: None,
            transports: None,
            public_key: None,
            public_key_algorithm: None,
        },
        authenticator_attachment: None,
        client_extension_results: Default::default(),
        type_: "public-key".into(),
    };
    let json = serde_json::to_vec(&resp).ok()?;
    let rp = RelyingParty::with_provider(RpConfig::new("example.org", "W3C", "https://example.org"), provider).ok()?;
    let (_, mut st) = rp
        .start_registration(
            RegistrationRequest { user_id: vec![1], user_name: "w3c".into(), ..Default::default() },
            SystemTime::now(),
        )
        .ok()?;
    st.challenge = Base64Url(hex(&reg["challenge"])?);
    let now = SystemTime::now();
    if let Err(e) = rp.finish_registration_json(st.clone(), &json, now) {
        eprintln!("packed x5c registration does not verify ({}): not measured", e.code());
        return None;
    }
    Some(median_us(|| {
        let _ = black_box(rp.finish_registration_json(st.clone(), black_box(&json), now));
    }))
}

fn main() {
    let provider = hwkey::crypto::default_provider();
    let s = setup(provider);

    let now = SystemTime::now();
    #[cfg(feature = "aws-lc")]
    let bare = || {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
        let k = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, black_box(&s.point));
        assert!(k.verify(black_box(&s.signed), black_box(&s.signature)).is_ok());
    };
    #[cfg(not(feature = "aws-lc"))]
    let bare = || {
        let r = provider.verify_ecdsa(
            hwkey::crypto::EcCurve::P256,
            hwkey::crypto::HashAlg::Sha256,
            &s.point,
            &s.signed,
            &s.signature,
        );
        assert!(r.is_ok());
    };
    let (x, y) = paired_median_us(bare, || finish_once(&s, now));

    eprintln!("provider {}: bare P-256 verify {x:.2} µs, full assertion finish {y:.2} µs", provider.name());
    for p in hwkey::crypto::all_providers() {
        let sp = setup(p);
        eprintln!("provider {:12} assertion finish (ES256, JSON to verdict): {:.2} µs", p.name(), assertion_us(&sp));
        eprintln!(
            "provider {:12} registration, none attestation:          {:.2} µs",
            p.name(),
            registration_us(p, "none")
        );
        eprintln!(
            "provider {:12} registration, packed self attestation:   {:.2} µs",
            p.name(),
            registration_us(p, "packed")
        );
        if let Some(t) = registration_x5c_us(p) {
            eprintln!("provider {:12} registration, packed x5c (W3C vector):   {t:.2} µs", p.name());
        }
    }
    println!("{{\"p256_verify_us\": {x:.2}, \"assertion_verify_us\": {y:.2}, \"ratio\": {:.3}}}", y / x);
}
