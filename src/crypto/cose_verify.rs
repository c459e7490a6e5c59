//! Signature verification per COSE algorithm: maps a [`CoseKey`] and a
//! [`CoseAlgorithm`] onto the provider's primitives, checking that key type,
//! curve and algorithm agree.

use super::provider::{CryptoError, CryptoProvider, EcCurve, HashAlg, RsaPadding};
use crate::proto::cose::{CoseAlgorithm, CoseKey, curve};

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
        && key_alg != alg
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
        (CoseAlgorithm::ES384, CoseKey::Ec2 { crv: curve::P384, .. }) => {
            let p = key.sec1_uncompressed().unwrap_or_default();
            provider.verify_ecdsa(EcCurve::P384, HashAlg::Sha384, &p, msg, sig)
        }
        (CoseAlgorithm::ES512, CoseKey::Ec2 { crv: curve::P521, .. }) => {
            let p = key.sec1_uncompressed().unwrap_or_default();
            provider.verify_ecdsa(EcCurve::P521, HashAlg::Sha512, &p, msg, sig)
        }
        (CoseAlgorithm::EDDSA | CoseAlgorithm::ED25519, CoseKey::Okp { crv: curve::ED25519, x, .. }) => {
            provider.verify_ed25519(x, msg, sig)
        }
        (CoseAlgorithm::EDDSA, CoseKey::Okp { crv: curve::ED448, .. }) => Err(CryptoError::Unsupported("Ed448")),
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
        (a, _) if a.name() == "unknown" || a.0 <= -48 && a.0 >= -50 => Err(CryptoError::Unsupported("COSE algorithm")),
        _ => Err(CryptoError::InvalidKey("key type or curve does not match the algorithm")),
    }
}

/// Verify by the key's own `alg` label (which must be present).
pub fn verify(provider: &dyn CryptoProvider, key: &CoseKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let alg = key.alg().ok_or(CryptoError::InvalidKey("COSE key has no alg"))?;
    verify_with_alg(provider, alg, key, msg, sig, false)
}
