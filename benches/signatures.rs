//! Signature costs per algorithm and provider: ES256, EdDSA and
//! ML-DSA-44/65/87 (FIPS 204), sign and verify of a 69-byte message (the
//! size of authenticatorData || SHA-256(clientDataJSON) in an assertion).
//! Private keys are held as the authenticator holds them (P-256 scalar,
//! Ed25519 seed, ML-DSA 32-byte seed), so "sign" includes what each provider
//! does per call to use that form: for ML-DSA that is the key expansion from
//! the seed (ML-DSA.KeyGen_internal), benchmarked on its own as "keygen".
//!
//! Before the benchmarks it prints the WebAuthn attestation object sizes the
//! software authenticator produces per algorithm and attestation mode.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use hwkey::authenticator::{AttestationMode, Authenticator, AuthenticatorConfig};
use hwkey::crypto::{CryptoProvider, EcCurve, HashAlg, MlDsaLevel};
use hwkey::proto::ctap2::CtapRequest;
use hwkey::proto::ctap2::make_credential::{MakeCredentialRequest, MakeCredentialResponse};
use hwkey::proto::ctap2::{
    PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity, decode_response,
};

const MSG: [u8; 69] = [0x5a; 69];

fn bench_provider(c: &mut Criterion, p: &'static dyn CryptoProvider) {
    let name = p.name();
    let scalar = p.p256_generate().unwrap();
    let point = p.p256_public(&scalar).unwrap();
    let sig = p.p256_sign(&scalar, &MSG).unwrap();
    c.bench_function(&format!("{name}/ES256/sign"), |b| b.iter(|| p.p256_sign(&scalar, black_box(&MSG)).unwrap()));
    c.bench_function(&format!("{name}/ES256/verify"), |b| {
        b.iter(|| p.verify_ecdsa(EcCurve::P256, HashAlg::Sha256, &point, black_box(&MSG), &sig).unwrap())
    });

    let seed = p.ed25519_generate().unwrap();
    let pk = p.ed25519_public(&seed).unwrap();
    let sig = p.ed25519_sign(&seed, &MSG).unwrap();
    c.bench_function(&format!("{name}/EdDSA/sign"), |b| b.iter(|| p.ed25519_sign(&seed, black_box(&MSG)).unwrap()));
    c.bench_function(&format!("{name}/EdDSA/verify"), |b| {
        b.iter(|| p.verify_ed25519(&pk, black_box(&MSG), &sig).unwrap())
    });

    for level in MlDsaLevel::ALL {
        let l = level.name();
        let seed = p.ml_dsa_generate(level).unwrap();
        let pk = p.ml_dsa_public(level, &seed).unwrap();
        let sig = p.ml_dsa_sign(level, &seed, &MSG).unwrap();
        c.bench_function(&format!("{name}/{l}/keygen"), |b| {
            b.iter(|| p.ml_dsa_public(level, black_box(&seed)).unwrap())
        });
        c.bench_function(&format!("{name}/{l}/sign"), |b| {
            b.iter(|| p.ml_dsa_sign(level, &seed, black_box(&MSG)).unwrap())
        });
        c.bench_function(&format!("{name}/{l}/verify"), |b| {
            b.iter(|| p.verify_ml_dsa(level, &pk, black_box(&MSG), &sig).unwrap())
        });
    }
}

/// The attestation object of one makeCredential on a fresh software authenticator.
fn attestation_object_len(alg: i64, mode: AttestationMode) -> usize {
    let cfg = AuthenticatorConfig { attestation: mode, ..AuthenticatorConfig::default() };
    let mut a = Authenticator::new(cfg).unwrap();
    let req = MakeCredentialRequest {
        client_data_hash: vec![7; 32],
        rp: PublicKeyCredentialRpEntity { id: "example.com".into(), name: Some("Example".into()) },
        user: PublicKeyCredentialUserEntity { id: vec![1; 16], name: Some("u".into()), display_name: None },
        pub_key_cred_params: vec![PublicKeyCredentialParameters::public_key(alg)],
        ..Default::default()
    };
    let resp: MakeCredentialResponse = decode_response(&a.handle_cbor(&req.to_request_bytes())).unwrap();
    resp.to_attestation_object().unwrap().to_bytes().len()
}

fn sizes() {
    println!("attestation object sizes (bytes; software authenticator, 16-byte user id, no extensions):");
    println!("{:<10} {:>6} {:>6} {:>12}", "algorithm", "none", "self", "packed x5c");
    for (name, alg) in [("ES256", -7), ("EdDSA", -8), ("ML-DSA-44", -48), ("ML-DSA-65", -49), ("ML-DSA-87", -50)] {
        println!(
            "{name:<10} {:>6} {:>6} {:>12}",
            attestation_object_len(alg, AttestationMode::None),
            attestation_object_len(alg, AttestationMode::SelfAttestation),
            attestation_object_len(alg, AttestationMode::Packed),
        );
    }
}

fn bench(c: &mut Criterion) {
    sizes();
    for p in hwkey::crypto::all_providers() {
        bench_provider(c, p);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
