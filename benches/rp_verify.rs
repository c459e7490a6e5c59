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
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
