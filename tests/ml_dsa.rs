//! ML-DSA (FIPS 204) in both crypto providers and in the COSE layer:
//!
//! - each provider verifies the other's signatures, for ML-DSA-44/65/87;
//! - key generation from a seed gives the same public key in both providers
//!   and the one of the Wycheproof keygen vectors and of the COSE examples of
//!   RFC 9964 (draft-ietf-cose-dilithium, seed = 32 zero bytes);
//! - the COSE_Sign1 example signatures of RFC 9964 verify (Sig_structure as
//!   signed, empty context), and not once a bit is flipped;
//! - the Wycheproof verification vectors with an empty context (modified
//!   signatures, malformed hints, wrong lengths, boundary cases) reach their
//!   stated verdict on every provider.
//!
//! Data: `tests/data/ml_dsa_wycheproof.json` (C2SP/wycheproof) and
//! `tests/data/ml_dsa_cose_examples.json` (cose-wg/draft-ietf-cose-dilithium);
//! both name their source commit.

use hwkey::crypto::cose_verify::{ml_dsa_cose_alg, validate_credential_key, verify_with_alg};
use hwkey::crypto::{CryptoError, MlDsaLevel, all_providers};
use hwkey::proto::cose::{CoseAlgorithm, CoseKey};
use serde_json::Value as Json;

fn load(name: &str) -> Json {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn hexf(v: &Json) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn level_of(name: &str) -> MlDsaLevel {
    match name {
        "ML-DSA-44" => MlDsaLevel::MlDsa44,
        "ML-DSA-65" => MlDsaLevel::MlDsa65,
        _ => MlDsaLevel::MlDsa87,
    }
}

#[test]
fn sizes_are_those_of_fips_204() {
    let want =
        [(MlDsaLevel::MlDsa44, 1312, 2420), (MlDsaLevel::MlDsa65, 1952, 3309), (MlDsaLevel::MlDsa87, 2592, 4627)];
    for p in all_providers() {
        for (level, pk_len, sig_len) in want {
            assert_eq!((level.public_key_len(), level.signature_len()), (pk_len, sig_len));
            let seed = p.ml_dsa_generate(level).unwrap();
            assert_eq!(seed.len(), 32);
            assert_eq!(p.ml_dsa_public(level, &seed).unwrap().len(), pk_len, "{} {}", p.name(), level.name());
            assert_eq!(p.ml_dsa_sign(level, &seed, b"m").unwrap().len(), sig_len, "{} {}", p.name(), level.name());
        }
    }
}

#[test]
fn each_provider_verifies_the_others_signatures() {
    let providers = all_providers();
    for signer in &providers {
        for level in MlDsaLevel::ALL {
            let seed = signer.ml_dsa_generate(level).unwrap();
            let pk = signer.ml_dsa_public(level, &seed).unwrap();
            let msg = format!("signed by {} with {}", signer.name(), level.name()).into_bytes();
            let sig = signer.ml_dsa_sign(level, &seed, &msg).unwrap();
            // Hedged signing: a second signature of the same message differs.
            let sig2 = signer.ml_dsa_sign(level, &seed, &msg).unwrap();
            assert_ne!(sig, sig2, "{} {}: signatures must be randomized", signer.name(), level.name());
            for verifier in &providers {
                let who = format!("{} -> {} {}", signer.name(), verifier.name(), level.name());
                // The same seed expands to the same key everywhere.
                assert_eq!(verifier.ml_dsa_public(level, &seed).unwrap(), pk, "{who}");
                assert_eq!(verifier.verify_ml_dsa(level, &pk, &msg, &sig), Ok(()), "{who}");
                assert_eq!(verifier.verify_ml_dsa(level, &pk, &msg, &sig2), Ok(()), "{who}");
                let mut bad = sig.clone();
                bad[7] ^= 0x20;
                assert_eq!(verifier.verify_ml_dsa(level, &pk, &msg, &bad), Err(CryptoError::BadSignature), "{who}");
                assert_eq!(
                    verifier.verify_ml_dsa(level, &pk, b"another message", &sig),
                    Err(CryptoError::BadSignature),
                    "{who}"
                );
                // Truncated or extended signatures, and keys of another size.
                assert_eq!(
                    verifier.verify_ml_dsa(level, &pk, &msg, &sig[..sig.len() - 1]),
                    Err(CryptoError::BadSignature),
                    "{who}"
                );
                let mut long = sig.clone();
                long.push(0);
                assert_eq!(verifier.verify_ml_dsa(level, &pk, &msg, &long), Err(CryptoError::BadSignature), "{who}");
                assert!(matches!(
                    verifier.verify_ml_dsa(level, &pk[..pk.len() - 1], &msg, &sig),
                    Err(CryptoError::InvalidKey(_))
                ));
                // A signature is bound to its parameter set.
                for other in MlDsaLevel::ALL.into_iter().filter(|l| *l != level) {
                    assert!(verifier.verify_ml_dsa(other, &pk, &msg, &sig).is_err(), "{who} as {}", other.name());
                }
                // Through the COSE layer, with an AKP key.
                let key = CoseKey::Akp { alg: ml_dsa_cose_alg(level), public: pk.clone() };
                let key = CoseKey::from_bytes(&key.to_bytes()).unwrap();
                assert_eq!(validate_credential_key(*verifier, ml_dsa_cose_alg(level), &key), Ok(()));
                assert_eq!(verify_with_alg(*verifier, ml_dsa_cose_alg(level), &key, &msg, &sig, false), Ok(()));
                assert_eq!(
                    verify_with_alg(*verifier, ml_dsa_cose_alg(level), &key, &msg, &bad, false),
                    Err(CryptoError::BadSignature)
                );
                assert!(verify_with_alg(*verifier, CoseAlgorithm::ES256, &key, &msg, &sig, false).is_err());
            }
        }
    }
}

#[test]
fn seeds_of_the_wrong_length_are_refused() {
    for p in all_providers() {
        for level in MlDsaLevel::ALL {
            for len in [0, 31, 33, 64] {
                assert!(matches!(p.ml_dsa_public(level, &vec![1; len]), Err(CryptoError::InvalidKey(_))));
                assert!(matches!(p.ml_dsa_sign(level, &vec![1; len], b"m"), Err(CryptoError::InvalidKey(_))));
            }
        }
    }
}

#[test]
fn keygen_vectors() {
    let w = load("ml_dsa_wycheproof.json");
    let c = load("ml_dsa_cose_examples.json");
    let mut n = 0;
    for p in all_providers() {
        for name in ["ML-DSA-44", "ML-DSA-65", "ML-DSA-87"] {
            let level = level_of(name);
            for kg in w[name]["keygen"].as_array().unwrap() {
                let got = p.ml_dsa_public(level, &hexf(&kg["seed"])).unwrap();
                assert_eq!(hex::encode(got), kg["publicKey"].as_str().unwrap(), "{} {name} wycheproof", p.name());
                n += 1;
            }
            let ex = &c[name];
            let got = p.ml_dsa_public(level, &hexf(&ex["priv"])).unwrap();
            assert_eq!(
                hex::encode(got),
                ex["raw_public_key"].as_str().unwrap(),
                "{} {name} RFC 9964 example",
                p.name()
            );
            n += 1;
        }
    }
    assert!(n >= 12);
}

#[test]
fn rfc_9964_cose_examples_verify() {
    let c = load("ml_dsa_cose_examples.json");
    for name in ["ML-DSA-44", "ML-DSA-65", "ML-DSA-87"] {
        let level = level_of(name);
        let ex = &c[name];
        let pk = hexf(&ex["raw_public_key"]);
        let tbs = hexf(&ex["raw_to_be_signed"]);
        let sig = hexf(&ex["raw_signature"]);
        // The example COSE_Key holds the seed (priv, -2) and a kid: it is a
        // private key, which a credential public key must never be.
        let full = CoseKey::from_bytes(&hexf(&ex["key"]));
        assert!(
            matches!(full, Err(hwkey::proto::cose::CoseError::Malformed(m)) if m.contains("private key")),
            "{name}"
        );
        let key = CoseKey::Akp { alg: ml_dsa_cose_alg(level), public: pk.clone() };
        for p in all_providers() {
            assert_eq!(p.verify_ml_dsa(level, &pk, &tbs, &sig), Ok(()), "{} {name}", p.name());
            assert_eq!(verify_with_alg(p, ml_dsa_cose_alg(level), &key, &tbs, &sig, false), Ok(()));
            let mut bad = tbs.clone();
            bad[20] ^= 1;
            assert_eq!(p.verify_ml_dsa(level, &pk, &bad, &sig), Err(CryptoError::BadSignature), "{} {name}", p.name());
        }
    }
}

#[test]
fn wycheproof_verify_vectors() {
    let w = load("ml_dsa_wycheproof.json");
    let (mut valid, mut invalid) = (0, 0);
    for p in all_providers() {
        for name in ["ML-DSA-44", "ML-DSA-65", "ML-DSA-87"] {
            let level = level_of(name);
            for g in w[name]["verify"].as_array().unwrap() {
                let pk = hexf(&g["publicKey"]);
                for t in g["tests"].as_array().unwrap() {
                    let got = p.verify_ml_dsa(level, &pk, &hexf(&t["msg"]), &hexf(&t["sig"]));
                    let what = format!("{} {name} tcId {} ({}): {got:?}", p.name(), t["tcId"], t["comment"]);
                    match t["result"].as_str().unwrap() {
                        "valid" => {
                            assert_eq!(got, Ok(()), "{what}");
                            valid += 1;
                        }
                        _ => {
                            assert!(got.is_err(), "{what}");
                            invalid += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!("wycheproof ML-DSA: {valid} valid and {invalid} invalid verdicts reached");
    assert!(valid >= 20 && invalid >= 50);
}
