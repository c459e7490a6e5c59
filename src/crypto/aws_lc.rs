//! The default provider, on aws-lc-rs (ML-DSA included: its `PqdsaKeyPair`,
//! stable since aws-lc-rs 1.18).

use super::provider::*;
use aws_lc_rs::{agreement, cipher, digest, hkdf, hmac, rand, signature};
use zeroize::Zeroizing;

/// The aws-lc-rs provider (feature `aws-lc`, on by default).
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLcProvider;

fn digest_alg(alg: HashAlg) -> &'static digest::Algorithm {
    match alg {
        HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => &digest::SHA256,
        HashAlg::Sha384 => &digest::SHA384,
        HashAlg::Sha512 => &digest::SHA512,
    }
}

fn hmac_alg(alg: HashAlg) -> hmac::Algorithm {
    match alg {
        HashAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => hmac::HMAC_SHA256,
        HashAlg::Sha384 => hmac::HMAC_SHA384,
        HashAlg::Sha512 => hmac::HMAC_SHA512,
    }
}

struct OutLen(usize);
impl hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn p256_keypair(scalar: &[u8]) -> Result<signature::EcdsaKeyPair, CryptoError> {
    if scalar.len() != 32 {
        return Err(CryptoError::InvalidKey("P-256 private key must be 32 bytes"));
    }
    // RFC 5915 ECPrivateKey without the optional public key; aws-lc derives it.
    let mut der = Zeroizing::new(Vec::with_capacity(51));
    der.extend_from_slice(&[0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20]);
    der.extend_from_slice(scalar);
    der.extend_from_slice(&[0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
    signature::EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der)
        .map_err(|_| CryptoError::InvalidKey("P-256 private key rejected"))
}

fn ml_dsa_signing(level: MlDsaLevel) -> &'static signature::PqdsaSigningAlgorithm {
    match level {
        MlDsaLevel::MlDsa44 => &signature::ML_DSA_44_SIGNING,
        MlDsaLevel::MlDsa65 => &signature::ML_DSA_65_SIGNING,
        MlDsaLevel::MlDsa87 => &signature::ML_DSA_87_SIGNING,
    }
}

fn ml_dsa_keypair(level: MlDsaLevel, seed: &[u8]) -> Result<signature::PqdsaKeyPair, CryptoError> {
    if seed.len() != MlDsaLevel::SEED_LEN {
        return Err(CryptoError::InvalidKey("ML-DSA seed must be 32 bytes"));
    }
    signature::PqdsaKeyPair::from_seed(ml_dsa_signing(level), seed)
        .map_err(|_| CryptoError::InvalidKey("ML-DSA seed rejected"))
}

impl CryptoProvider for AwsLcProvider {
    fn name(&self) -> &'static str {
        "aws-lc-rs"
    }

    fn digest(&self, alg: HashAlg, parts: &[&[u8]]) -> Vec<u8> {
        let mut ctx = digest::Context::new(digest_alg(alg));
        for p in parts {
            ctx.update(p);
        }
        ctx.finish().as_ref().to_vec()
    }

    fn sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for p in parts {
            ctx.update(p);
        }
        let d = ctx.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    fn hmac(&self, alg: HashAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let key = hmac::Key::new(hmac_alg(alg), key);
        let mut ctx = hmac::Context::with_key(&key);
        for p in parts {
            ctx.update(p);
        }
        ctx.sign().as_ref().to_vec()
    }

    fn hkdf_sha256(&self, salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
        if out.len() > 255 * 32 {
            return Err(CryptoError::InvalidInput("HKDF output too long"));
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
        let info = [info];
        let okm = prk.expand(&info, OutLen(out.len())).map_err(|_| CryptoError::InvalidInput("HKDF expand"))?;
        okm.fill(out).map_err(|_| CryptoError::InvalidInput("HKDF fill"))
    }

    fn verify_ecdsa(
        &self,
        curve: EcCurve,
        hash: HashAlg,
        point: &[u8],
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        let alg: &'static signature::EcdsaVerificationAlgorithm = match (curve, hash) {
            (EcCurve::P256, HashAlg::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
            (EcCurve::P256, HashAlg::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
            (EcCurve::P256, HashAlg::Sha512) => &signature::ECDSA_P256_SHA512_ASN1,
            (EcCurve::P256, HashAlg::Sha1) => &signature::ECDSA_P256_SHA1_ASN1,
            (EcCurve::P384, HashAlg::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
            (EcCurve::P384, HashAlg::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
            (EcCurve::P384, HashAlg::Sha512) => &signature::ECDSA_P384_SHA512_ASN1,
            (EcCurve::P521, HashAlg::Sha256) => &signature::ECDSA_P521_SHA256_ASN1,
            (EcCurve::P521, HashAlg::Sha384) => &signature::ECDSA_P521_SHA384_ASN1,
            (EcCurve::P521, HashAlg::Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
            (EcCurve::P521, HashAlg::Sha1) => &signature::ECDSA_P521_SHA1_ASN1,
            _ => return Err(CryptoError::Unsupported("ECDSA curve/hash combination")),
        };
        signature::UnparsedPublicKey::new(alg, point).verify(msg, sig).map_err(|_| CryptoError::BadSignature)
    }

    fn validate_ec_point(&self, curve: EcCurve, point: &[u8]) -> Result<(), CryptoError> {
        let alg: &'static signature::EcdsaVerificationAlgorithm = match curve {
            EcCurve::P256 => &signature::ECDSA_P256_SHA256_ASN1,
            EcCurve::P384 => &signature::ECDSA_P384_SHA384_ASN1,
            EcCurve::P521 => &signature::ECDSA_P521_SHA512_ASN1,
        };
        if point.first() != Some(&4) {
            return Err(CryptoError::InvalidKey("EC point must be uncompressed"));
        }
        signature::ParsedPublicKey::new(alg, point)
            .map(|_| ())
            .map_err(|_| CryptoError::InvalidKey("not a point on the curve"))
    }

    fn verify_ed25519(&self, pk: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        if pk.len() != 32 {
            return Err(CryptoError::InvalidKey("Ed25519 public key must be 32 bytes"));
        }
        // aws-lc accepts small-order keys (for which, e.g., R = identity and
        // S = 0 verify for every message); refuse them as RustCrypto's
        // verify_strict does.
        if ed25519_key_is_weak(pk) {
            return Err(CryptoError::BadSignature);
        }
        signature::UnparsedPublicKey::new(&signature::ED25519, pk)
            .verify(msg, sig)
            .map_err(|_| CryptoError::BadSignature)
    }

    fn verify_rsa(
        &self,
        padding: RsaPadding,
        hash: HashAlg,
        n: &[u8],
        e: &[u8],
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        let params: &'static signature::RsaParameters = match (padding, hash) {
            (RsaPadding::Pkcs1v15, HashAlg::Sha1) => &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            (RsaPadding::Pkcs1v15, HashAlg::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (RsaPadding::Pkcs1v15, HashAlg::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (RsaPadding::Pkcs1v15, HashAlg::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (RsaPadding::Pss, HashAlg::Sha256) => &signature::RSA_PSS_2048_8192_SHA256,
            (RsaPadding::Pss, HashAlg::Sha384) => &signature::RSA_PSS_2048_8192_SHA384,
            (RsaPadding::Pss, HashAlg::Sha512) => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return Err(CryptoError::Unsupported("RSA padding/hash combination")),
        };
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        if n.is_empty() || e.is_empty() || n.len() > 1024 || e.len() > 8 {
            return Err(CryptoError::InvalidKey("RSA modulus or exponent out of range"));
        }
        signature::RsaPublicKeyComponents { n, e }.verify(params, msg, sig).map_err(|_| CryptoError::BadSignature)
    }

    fn p256_generate(&self) -> Result<SecretBytes, CryptoError> {
        // Rejection-sample a scalar in [1, n-1] from the RNG; p256_keypair validates.
        loop {
            let mut s = Zeroizing::new(vec![0u8; 32]);
            self.fill_random(&mut s)?;
            if p256_keypair(&s).is_ok() {
                return Ok(s);
            }
        }
    }

    fn p256_public(&self, scalar: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use signature::KeyPair;
        let kp = p256_keypair(scalar)?;
        Ok(kp.public_key().as_ref().to_vec())
    }

    fn p256_sign(&self, scalar: &[u8], msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let kp = p256_keypair(scalar)?;
        let rng = rand::SystemRandom::new();
        kp.sign(&rng, msg).map(|s| s.as_ref().to_vec()).map_err(|_| CryptoError::InvalidKey("P-256 signing failed"))
    }

    fn p256_ecdh(&self, scalar: &[u8], peer: &[u8]) -> Result<SecretBytes, CryptoError> {
        let key = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, scalar)
            .map_err(|_| CryptoError::InvalidKey("P-256 private key rejected"))?;
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, peer);
        agreement::agree(&key, peer, CryptoError::InvalidKey("peer public key rejected"), |z| {
            Ok(Zeroizing::new(z.to_vec()))
        })
    }

    fn ed25519_public(&self, seed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use signature::KeyPair;
        let kp = signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| CryptoError::InvalidKey("Ed25519 seed must be 32 bytes"))?;
        Ok(kp.public_key().as_ref().to_vec())
    }

    fn ed25519_sign(&self, seed: &[u8], msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let kp = signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| CryptoError::InvalidKey("Ed25519 seed must be 32 bytes"))?;
        Ok(kp.sign(msg).as_ref().to_vec())
    }

    fn ml_dsa_public(&self, level: MlDsaLevel, seed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use signature::KeyPair;
        let kp = ml_dsa_keypair(level, seed)?;
        Ok(kp.public_key().as_ref().to_vec())
    }

    fn ml_dsa_sign(&self, level: MlDsaLevel, seed: &[u8], msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        // aws-lc-rs signs pure ML-DSA with the empty context, hedged (fresh randomness per signature).
        let kp = ml_dsa_keypair(level, seed)?;
        let mut sig = vec![0u8; level.signature_len()];
        let n = kp.sign(msg, &mut sig).map_err(|_| CryptoError::InvalidKey("ML-DSA signing failed"))?;
        sig.truncate(n);
        Ok(sig)
    }

    fn verify_ml_dsa(&self, level: MlDsaLevel, public_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        // aws-lc also takes a SubjectPublicKeyInfo here; COSE carries the raw key only.
        if public_key.len() != level.public_key_len() {
            return Err(CryptoError::InvalidKey("ML-DSA public key has the wrong length"));
        }
        if sig.len() != level.signature_len() {
            return Err(CryptoError::BadSignature);
        }
        let alg: &'static signature::PqdsaVerificationAlgorithm = match level {
            MlDsaLevel::MlDsa44 => &signature::ML_DSA_44,
            MlDsaLevel::MlDsa65 => &signature::ML_DSA_65,
            MlDsaLevel::MlDsa87 => &signature::ML_DSA_87,
        };
        signature::UnparsedPublicKey::new(alg, public_key).verify(msg, sig).map_err(|_| CryptoError::BadSignature)
    }

    fn aes256_cbc_encrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
        aes_cbc(&cipher::AES_256, 32, key, iv, data, true)
    }

    fn aes256_cbc_decrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
        aes_cbc(&cipher::AES_256, 32, key, iv, data, false)
    }

    fn aes128_cbc_encrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
        aes_cbc(&cipher::AES_128, 16, key, iv, data, true)
    }

    fn aes128_cbc_decrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
        aes_cbc(&cipher::AES_128, 16, key, iv, data, false)
    }

    fn aes256_gcm_seal(
        &self,
        key: &[u8],
        nonce: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        use aws_lc_rs::aead;
        let k = aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::AES_256_GCM, key).map_err(|_| CryptoError::InvalidKey("AES-GCM key"))?,
        );
        let mut buf = plaintext.to_vec();
        k.seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(*nonce), aead::Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::InvalidInput("AES-GCM seal"))?;
        Ok(buf)
    }

    fn aes256_gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8; 12],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        use aws_lc_rs::aead;
        let k = aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::AES_256_GCM, key).map_err(|_| CryptoError::InvalidKey("AES-GCM key"))?,
        );
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = k
            .open_in_place(aead::Nonce::assume_unique_for_key(*nonce), aead::Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::DecryptFailed)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), CryptoError> {
        rand::fill(buf).map_err(|_| CryptoError::Rng)
    }
}

/// AES-CBC in place without padding, with a `key_len`-byte key of `alg`.
fn aes_cbc(
    alg: &'static cipher::Algorithm,
    key_len: usize,
    key: &[u8],
    iv: &[u8; 16],
    data: &mut [u8],
    encrypt: bool,
) -> Result<(), CryptoError> {
    if key.len() != key_len || !data.len().is_multiple_of(16) {
        return Err(CryptoError::InvalidInput("AES-CBC needs a key of the cipher's size and whole blocks"));
    }
    if data.is_empty() {
        return Ok(());
    }
    let k = cipher::UnboundCipherKey::new(alg, key).map_err(|_| CryptoError::InvalidKey("AES key"))?;
    if encrypt {
        let enc = cipher::EncryptingKey::cbc(k).map_err(|_| CryptoError::InvalidKey("AES key"))?;
        enc.less_safe_encrypt(data, cipher::EncryptionContext::Iv128((*iv).into()))
            .map(|_| ())
            .map_err(|_| CryptoError::InvalidInput("AES-CBC encrypt"))
    } else {
        let dec = cipher::DecryptingKey::cbc(k).map_err(|_| CryptoError::InvalidKey("AES key"))?;
        dec.decrypt(data, cipher::DecryptionContext::Iv128((*iv).into()))
            .map(|_| ())
            .map_err(|_| CryptoError::InvalidInput("AES-CBC decrypt"))
    }
}
