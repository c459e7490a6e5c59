//! Relying-party costs: assertion and registration verification per provider,
//! and the wire parsers on their own.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use hwkey::proto::cose::CoseAlgorithm;
use hwkey::server::testing::{ResponseParams, SoftCredential};
use hwkey::server::{AuthenticationRequest, RegistrationRequest, RelyingParty, RpConfig};
use std::time::SystemTime;

fn bench(c: &mut Criterion) {
    let now = SystemTime::now();
    for provider in hwkey::crypto::all_providers() {
        let rp =
            RelyingParty::with_provider(RpConfig::new("example.com", "x", "https://example.com"), provider).unwrap();
        let params = ResponseParams::new("example.com", "https://example.com");
        for alg in [CoseAlgorithm::ES256, CoseAlgorithm::EDDSA] {
            let mut cred = SoftCredential::new(provider, alg).unwrap();
            let (o, st) = rp
                .start_registration(
                    RegistrationRequest { user_id: vec![1], user_name: "a".into(), ..Default::default() },
                    now,
                )
                .unwrap();
            let reg_json = serde_json::to_vec(&cred.register(&o.challenge, &params).unwrap()).unwrap();
            let record = rp.finish_registration_json(st.clone(), &reg_json, now).unwrap().credential;
            c.bench_function(&format!("{}/registration_none/{}", provider.name(), alg.name()), |b| {
                b.iter(|| rp.finish_registration_json(st.clone(), black_box(&reg_json), now).unwrap())
            });
            let (o, st) = rp
                .start_authentication(AuthenticationRequest { user_id: Some(vec![1]), ..Default::default() }, now)
                .unwrap();
            let json = serde_json::to_vec(&cred.assert(&o.challenge, &params).unwrap()).unwrap();
            c.bench_function(&format!("{}/assertion/{}", provider.name(), alg.name()), |b| {
                b.iter(|| {
                    rp.finish_authentication_json(st.clone(), black_box(&json), |_, _| Some(&record), now).unwrap()
                })
            });
        }
    }
    let cred = SoftCredential::new(hwkey::crypto::default_provider(), CoseAlgorithm::ES256).unwrap();
    let reg = cred.register(&[1; 32], &ResponseParams::new("example.com", "https://example.com")).unwrap();
    let ao = reg.response.attestation_object.0.clone();
    c.bench_function("proto/attestation_object_parse", |b| {
        b.iter(|| hwkey::proto::AttestationObject::parse(black_box(&ao)).unwrap())
    });
    largest_inputs(c);
}

/// The largest inputs a 64 KiB body can carry (issue #11, CPU isolation):
/// an assertion whose signed authenticator data holds a CBOR extensions map
/// of 10,000 keys (in descending order, the slow path of the duplicate-key
/// check), and the CBOR decoder on a 48 KiB map of 12,000 keys. These run
/// inline on the async executor: if they take a few hundred microseconds,
/// a blocking pool would cost more in hand-offs than it saves.
fn largest_inputs(c: &mut Criterion) {
    use hwkey::proto::cbor::Value;
    let now = SystemTime::now();
    let provider = hwkey::crypto::default_provider();
    let rp = RelyingParty::with_provider(RpConfig::new("example.com", "x", "https://example.com"), provider).unwrap();
    let mut params = ResponseParams::new("example.com", "https://example.com");
    let mut cred = SoftCredential::new(provider, CoseAlgorithm::ES256).unwrap();
    let (o, st) = rp
        .start_registration(RegistrationRequest { user_id: vec![1], user_name: "a".into(), ..Default::default() }, now)
        .unwrap();
    let reg_json = serde_json::to_vec(&cred.register(&o.challenge, &params).unwrap()).unwrap();
    let record = rp.finish_registration_json(st, &reg_json, now).unwrap().credential;
    let keys = |n: i128, descending: bool| {
        let mut m: Vec<(Value, Value)> = (0..n).map(|k| (Value::Integer(1000 + k), Value::Null)).collect();
        if descending {
            m.reverse();
        }
        Value::Map(m)
    };
    params.extensions = Some(keys(10_000, true));
    params.flags |= hwkey::proto::auth_data::Flags::ED;
    let (o, st) =
        rp.start_authentication(AuthenticationRequest { user_id: Some(vec![1]), ..Default::default() }, now).unwrap();
    let json = serde_json::to_vec(&cred.assert(&o.challenge, &params).unwrap()).unwrap();
    assert!(json.len() <= 64 * 1024, "{} bytes", json.len());
    c.bench_function(&format!("largest/assertion_64k_body_10000_extension_keys ({} bytes)", json.len()), |b| {
        b.iter(|| {
            // The verdict does not matter here (unknown extensions may be refused); the cost does.
            let _ = rp.finish_authentication_json(st.clone(), black_box(&json), |_, _| Some(&record), now);
        })
    });
    for descending in [false, true] {
        let bytes = keys(12_000, descending).to_vec();
        let order = if descending { "descending" } else { "canonical" };
        c.bench_function(&format!("largest/cbor_map_12000_keys_{order} ({} bytes)", bytes.len()), |b| {
            b.iter(|| hwkey::proto::cbor::decode(black_box(&bytes)).unwrap())
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
