//! Signature verification per COSE algorithm: maps a [`CoseKey`] and a
//! [`CoseAlgorithm`] onto the provider's primitives, checking that key type,
//! curve and algorithm agree.
//!
//! The fully specified identifiers of RFC 9864 are accepted wherever their
//! polymorphic twins are: ESP256/ESP384/ESP512 on P-256/P-384/P-521 keys,
//! Ed25519 on Ed25519 keys; a key labelled with one twin verifies under the
//! other ([`algorithms_agree`]). Ed448 (and EdDSA on an Ed448 key) is refused
//! as an unsupported algorithm: neither provider has Ed448. ML-DSA-44/65/87
//! (RFC 9964) verify with AKP keys, pure ML-DSA with the empty context.

use super::provider::{CryptoError, CryptoProvider, EcCurve, HashAlg, MlDsaLevel, RsaPadding};
use crate::proto::cose::{CoseAlgorithm, CoseKey, curve};

/// The ML-DSA parameter set of a COSE algorithm, if it is one of -48/-49/-50.
pub fn ml_dsa_level(alg: CoseAlgorithm) -> Option<MlDsaLevel> {
    match alg {
        CoseAlgorithm::ML_DSA_44 => Some(MlDsaLevel::MlDsa44),
        CoseAlgorithm::ML_DSA_65 => Some(MlDsaLevel::MlDsa65),
        CoseAlgorithm::ML_DSA_87 => Some(MlDsaLevel::MlDsa87),
        _ => None,
    }
}

/// The COSE algorithm of an ML-DSA parameter set.
pub fn ml_dsa_cose_alg(level: MlDsaLevel) -> CoseAlgorithm {
    match level {
        MlDsaLevel::MlDsa44 => CoseAlgorithm::ML_DSA_44,
        MlDsaLevel::MlDsa65 => CoseAlgorithm::ML_DSA_65,
        MlDsaLevel::MlDsa87 => CoseAlgorithm::ML_DSA_87,
    }
}

/// Do two algorithm identifiers name the same operation: equal, or an RFC
/// 9864 fully specified identifier and its polymorphic twin (ESP256 and
/// ES256, Ed25519 and EdDSA, ...)? The key's curve is checked separately.
pub fn algorithms_agree(a: CoseAlgorithm, b: CoseAlgorithm) -> bool {
    a == b || a.polymorphic_twin() == Some(b) || b.polymorphic_twin() == Some(a)
}

/// Verify `sig` over `msg` by `key` under `alg`. Algorithm and key must
/// agree (ES256 needs an EC2 P-256 key, etc.). RS1 is refused unless
/// `allow_rs1` (legacy TPMs only).
pub fn verify_with_alg(
    provider: &dyn CryptoProvider,
    alg: CoseAlgorithm,
    key: &CoseKey,
    msg: &[u8],
    sig: &[u8],
    allow_rs1: bool,
) -> Result<(), CryptoError> {
    if let Some(key_alg) = key.alg()
        && !algorithms_agree(key_alg, alg)
    {
        return Err(CryptoError::InvalidKey("key's alg does not match the algorithm"));
    }
    match (alg, key) {
        (CoseAlgorithm::ES256 | CoseAlgorithm::ESP256, CoseKey::Ec2 { crv: curve::P256, x, y, .. }) => {
            let mut p = [0u8; 65];
            p[0] = 4;
            p[1..33].copy_from_slice(x);
            p[33..].copy_from_slice(y);
            provider.verify_ecdsa(EcCurve::P256, HashAlg::Sha256, &p, msg, sig)
        }
        (CoseAlgorithm::ES384 | CoseAlgorithm::ESP384, CoseKey::Ec2 { crv: curve::P384, .. }) => {
            let p = key.sec1_uncompressed().unwrap_or_default();
            provider.verify_ecdsa(EcCurve::P384, HashAlg::Sha384, &p, msg, sig)
        }
        (CoseAlgorithm::ES512 | CoseAlgorithm::ESP512, CoseKey::Ec2 { crv: curve::P521, .. }) => {
            let p = key.sec1_uncompressed().unwrap_or_default();
            provider.verify_ecdsa(EcCurve::P521, HashAlg::Sha512, &p, msg, sig)
        }
        (CoseAlgorithm::EDDSA | CoseAlgorithm::ED25519, CoseKey::Okp { crv: curve::ED25519, x, .. }) => {
            provider.verify_ed25519(x, msg, sig)
        }
        (CoseAlgorithm::EDDSA | CoseAlgorithm::ED448, CoseKey::Okp { crv: curve::ED448, .. }) => {
            Err(CryptoError::Unsupported("Ed448"))
        }
        (a, CoseKey::Akp { alg: key_alg, public }) if a == *key_alg => match ml_dsa_level(a) {
            Some(level) => provider.verify_ml_dsa(level, public, msg, sig),
            None => Err(CryptoError::Unsupported("COSE algorithm")),
        },
        (CoseAlgorithm::ED448, _) => Err(CryptoError::Unsupported("Ed448")),
        (CoseAlgorithm::RS256, CoseKey::Rsa { n, e, .. }) => {
            provider.verify_rsa(RsaPadding::Pkcs1v15, HashAlg::Sha256, n, e, msg, sig)
        }
        (CoseAlgorithm::RS384, CoseKey::Rsa { n, e, .. }) => {
            provider.verify_rsa(RsaPadding::Pkcs1v15, HashAlg::Sha384, n, e, msg, sig)
        }
        (CoseAlgorithm::RS512, CoseKey::Rsa { n, e, .. }) => {
            provider.verify_rsa(RsaPadding::Pkcs1v15, HashAlg::Sha512, n, e, msg, sig)
        }
        (CoseAlgorithm::PS256, CoseKey::Rsa { n, e, .. }) => {
            provider.verify_rsa(RsaPadding::Pss, HashAlg::Sha256, n, e, msg, sig)
        }
        (CoseAlgorithm::PS384, CoseKey::Rsa { n, e, .. }) => {
            provider.verify_rsa(RsaPadding::Pss, HashAlg::Sha384, n, e, msg, sig)
        }
        (CoseAlgorithm::PS512, CoseKey::Rsa { n, e, .. }) => {
            provider.verify_rsa(RsaPadding::Pss, HashAlg::Sha512, n, e, msg, sig)
        }
        (CoseAlgorithm::RS1, CoseKey::Rsa { n, e, .. }) => {
            if allow_rs1 {
                provider.verify_rsa(RsaPadding::Pkcs1v15, HashAlg::Sha1, n, e, msg, sig)
            } else {
                Err(CryptoError::Unsupported("RS1 (SHA-1) is disabled; enable it explicitly for legacy TPMs"))
            }
        }
        (a, _) if a.name() == "unknown" => Err(CryptoError::Unsupported("COSE algorithm")),
        _ => Err(CryptoError::InvalidKey("key type or curve does not match the algorithm")),
    }
}

/// Verify by the key's own `alg` label (which must be present).
pub fn verify(provider: &dyn CryptoProvider, key: &CoseKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let alg = key.alg().ok_or(CryptoError::InvalidKey("COSE key has no alg"))?;
    verify_with_alg(provider, alg, key, msg, sig, false)
}

/// Check that a credential public key can ever verify a signature under
/// `alg`, before it is stored (WebAuthn L3 §7.1 step 19 asks only that the
/// algorithm was offered; a key that fails here would fail at every
/// sign-in): key type, curve and algorithm agree, an EC point is on its
/// curve, an RSA modulus has at least 2048 bits and an odd exponent of at
/// least 3, an OKP key is an Ed25519 key that is neither of small order nor
/// non-canonically encoded (an X25519 key labelled EdDSA is refused), an AKP
/// key is an ML-DSA key of its parameter set's size (every such byte string
/// decodes: pkDecode has no invalid inputs).
pub fn validate_credential_key(
    provider: &dyn CryptoProvider,
    alg: CoseAlgorithm,
    key: &CoseKey,
) -> Result<(), CryptoError> {
    if let Some(key_alg) = key.alg()
        && !algorithms_agree(key_alg, alg)
    {
        return Err(CryptoError::InvalidKey("key's alg does not match the algorithm"));
    }
    let ec_curve = |crv: i64| match crv {
        curve::P256 => Some(EcCurve::P256),
        curve::P384 => Some(EcCurve::P384),
        curve::P521 => Some(EcCurve::P521),
        _ => None,
    };
    match key {
        CoseKey::Ec2 { crv, .. } => {
            let want = match alg {
                CoseAlgorithm::ES256 | CoseAlgorithm::ESP256 => curve::P256,
                CoseAlgorithm::ES384 | CoseAlgorithm::ESP384 => curve::P384,
                CoseAlgorithm::ES512 | CoseAlgorithm::ESP512 => curve::P521,
                _ => return Err(CryptoError::InvalidKey("an EC2 key needs an ECDSA algorithm")),
            };
            if *crv != want {
                return Err(CryptoError::InvalidKey("the key's curve does not match the algorithm"));
            }
            let c = ec_curve(*crv).ok_or(CryptoError::InvalidKey("unknown curve"))?;
            let point = key.sec1_uncompressed().ok_or(CryptoError::InvalidKey("EC coordinates"))?;
            provider.validate_ec_point(c, &point)
        }
        CoseKey::Okp { crv, x, .. } => {
            if alg == CoseAlgorithm::ED448 || (*crv == curve::ED448 && alg == CoseAlgorithm::EDDSA) {
                return Err(CryptoError::Unsupported("Ed448"));
            }
            if !matches!(alg, CoseAlgorithm::EDDSA | CoseAlgorithm::ED25519) {
                return Err(CryptoError::InvalidKey("an OKP key needs EdDSA"));
            }
            if *crv != curve::ED25519 {
                return Err(CryptoError::InvalidKey("only Ed25519 OKP keys can sign here (not X25519 or Ed448)"));
            }
            if super::ed25519_key_is_weak(x) {
                return Err(CryptoError::InvalidKey("Ed25519 key of small order or non-canonical"));
            }
            Ok(())
        }
        CoseKey::Rsa { n, e, .. } => {
            if !matches!(
                alg,
                CoseAlgorithm::RS256
                    | CoseAlgorithm::RS384
                    | CoseAlgorithm::RS512
                    | CoseAlgorithm::PS256
                    | CoseAlgorithm::PS384
                    | CoseAlgorithm::PS512
                    | CoseAlgorithm::RS1
            ) {
                return Err(CryptoError::InvalidKey("an RSA key needs an RSA algorithm"));
            }
            let n = super::provider::strip_leading_zeros(n);
            let e = super::provider::strip_leading_zeros(e);
            let bits = n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
            if bits < 2048 {
                return Err(CryptoError::InvalidKey("RSA modulus under 2048 bits"));
            }
            if n.len() > 2048 {
                return Err(CryptoError::InvalidKey("RSA modulus over 16384 bits"));
            }
            let e_odd = e.last().is_some_and(|b| b & 1 == 1);
            if !e_odd || e.len() > 8 || (e.len() == 1 && e[0] < 3) {
                return Err(CryptoError::InvalidKey("RSA public exponent must be odd, at least 3, at most 64 bits"));
            }
            Ok(())
        }
        CoseKey::Akp { alg: key_alg, public } => {
            let level = ml_dsa_level(*key_alg).ok_or(CryptoError::Unsupported("AKP key algorithm"))?;
            if alg != *key_alg {
                return Err(CryptoError::InvalidKey("an ML-DSA key needs its own ML-DSA algorithm"));
            }
            if public.len() != level.public_key_len() {
                return Err(CryptoError::InvalidKey("ML-DSA public key has the wrong length"));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod key_validation_tests {
    use super::*;

    fn ed(x: Vec<u8>, crv: i64) -> CoseKey {
        CoseKey::Okp { alg: Some(CoseAlgorithm::EDDSA), crv, x }
    }

    #[test]
    fn small_order_ed25519_keys_are_refused_by_every_provider() {
        // With A = identity, R = identity and S = 0 satisfy [S]B = R + [k]A for every message.
        let mut identity = vec![0u8; 32];
        identity[0] = 1;
        let mut sig = identity.clone();
        sig.extend_from_slice(&[0u8; 32]);
        for p in crate::crypto::all_providers() {
            assert_eq!(
                p.verify_ed25519(&identity, b"any message", &sig),
                Err(CryptoError::BadSignature),
                "{}",
                p.name()
            );
            assert!(validate_credential_key(p, CoseAlgorithm::EDDSA, &ed(identity.clone(), curve::ED25519)).is_err());
        }
    }

    #[test]
    fn weak_and_mislabelled_keys() {
        let mut non_canonical = vec![0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        assert!(crate::crypto::ed25519_key_is_weak(&non_canonical));
        assert!(crate::crypto::ed25519_key_is_weak(&[0u8; 32]));
        let mut neg_zero = [0u8; 32];
        neg_zero[31] = 0x80;
        assert!(crate::crypto::ed25519_key_is_weak(&neg_zero));
        // A real Ed25519 public key (RFC 8032 test 1) is fine.
        let good = hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
        assert!(!crate::crypto::ed25519_key_is_weak(&good));
        for p in crate::crypto::all_providers() {
            assert!(validate_credential_key(p, CoseAlgorithm::EDDSA, &ed(good.clone(), curve::ED25519)).is_ok());
            // X25519 labelled EdDSA.
            assert!(validate_credential_key(p, CoseAlgorithm::EDDSA, &ed(good.clone(), curve::X25519)).is_err());
            // An EC2 point off the curve, and a curve that does not fit the algorithm.
            let off =
                CoseKey::Ec2 { alg: Some(CoseAlgorithm::ES256), crv: curve::P256, x: vec![1; 32], y: vec![2; 32] };
            assert!(validate_credential_key(p, CoseAlgorithm::ES256, &off).is_err(), "{}", p.name());
            let wrong_crv = CoseKey::Ec2 { alg: None, crv: curve::P384, x: vec![1; 48], y: vec![2; 48] };
            assert!(validate_credential_key(p, CoseAlgorithm::ES256, &wrong_crv).is_err());
            // RSA 1024 and an even exponent.
            let mut n = vec![0xc5u8; 128];
            n[127] |= 1;
            let small = CoseKey::Rsa { alg: None, n: n.clone(), e: vec![1, 0, 1] };
            assert!(validate_credential_key(p, CoseAlgorithm::RS256, &small).is_err());
            let big = CoseKey::Rsa { alg: None, n: vec![0xc5u8; 256], e: vec![1, 0, 1] };
            assert!(validate_credential_key(p, CoseAlgorithm::RS256, &big).is_ok());
            let even = CoseKey::Rsa { alg: None, n: vec![0xc5u8; 256], e: vec![1, 0, 0] };
            assert!(validate_credential_key(p, CoseAlgorithm::RS256, &even).is_err());
            // A real P-256 point (the generator) is accepted.
            let gx = hex::decode("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296").unwrap();
            let gy = hex::decode("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5").unwrap();
            let g = CoseKey::Ec2 { alg: Some(CoseAlgorithm::ES256), crv: curve::P256, x: gx, y: gy };
            assert!(validate_credential_key(p, CoseAlgorithm::ES256, &g).is_ok(), "{}", p.name());
        }
    }
}
