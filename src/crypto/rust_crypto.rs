//! The pure-Rust provider (feature `rust-crypto`), on the RustCrypto crates:
//! `p256`, `p384`, `p521`, `ed25519-dalek`, `rsa`, `ml-dsa`, `sha1`, `sha2`,
//! `hmac`, `hkdf`, `aes` + `cbc`, `aes-gcm`, with randomness from the OS.
//!
//! It needs no C toolchain (wasm and other targets aws-lc-rs does not reach).
//! It is slower than [`super::aws_lc`] but implements the same trait and
//! passes the same tests.

use super::provider::*;
use hmac::Mac;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::Digest;
use zeroize::Zeroizing;

/// The pure-Rust provider (feature `rust-crypto`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCryptoProvider;

fn digest_parts<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = D::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

fn hmac_parts<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of every length; new_from_slice cannot fail for it.
    match <M as Mac>::new_from_slice(key) {
        Ok(mut m) => {
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn p256_secret(scalar: &[u8]) -> Result<p256::SecretKey, CryptoError> {
    if scalar.len() != 32 {
        return Err(CryptoError::InvalidKey("P-256 private key must be 32 bytes"));
    }
    p256::SecretKey::from_slice(scalar).map_err(|_| CryptoError::InvalidKey("P-256 private key rejected"))
}

fn ed25519_seed(seed: &[u8]) -> Result<ed25519_dalek::SigningKey, CryptoError> {
    let s: [u8; 32] = seed.try_into().map_err(|_| CryptoError::InvalidKey("Ed25519 seed must be 32 bytes"))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&s))
}

fn ml_dsa_seed(seed: &[u8]) -> Result<Zeroizing<ml_dsa::Seed>, CryptoError> {
    ml_dsa::Seed::try_from(seed)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::InvalidKey("ML-DSA seed must be 32 bytes"))
}

fn ml_dsa_public_of<P: ml_dsa::MlDsaParams>(seed: &ml_dsa::Seed) -> Vec<u8> {
    use ml_dsa::Keypair;
    ml_dsa::SigningKey::<P>::from_seed(seed).verifying_key().encode().to_vec()
}

fn ml_dsa_sign_with<P: ml_dsa::MlDsaParams>(seed: &ml_dsa::Seed, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
    // Hedged signing (FIPS 204 Algorithm 2) with the empty context; the
    // expanded key zeroizes itself on drop.
    let key = ml_dsa::ExpandedSigningKey::<P>::from_seed(seed);
    let sig = key
        .sign_randomized(msg, &[], &mut ml_dsa::common::getrandom::SysRng)
        .map_err(|_| CryptoError::InvalidKey("ML-DSA signing failed"))?;
    Ok(sig.encode().to_vec())
}

fn ml_dsa_verify_with<P: ml_dsa::MlDsaParams>(pk: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let enc = ml_dsa::EncodedVerifyingKey::<P>::try_from(pk)
        .map_err(|_| CryptoError::InvalidKey("ML-DSA public key has the wrong length"))?;
    let key = ml_dsa::VerifyingKey::<P>::decode(&enc);
    // sigDecode (FIPS 204 Algorithm 27) refuses malformed hints and an out-of-range z.
    let sig = ml_dsa::Signature::<P>::try_from(sig).map_err(|_| CryptoError::BadSignature)?;
    if key.verify_with_context(msg, &[], &sig) { Ok(()) } else { Err(CryptoError::BadSignature) }
}

fn aes_cbc_check(key_len: usize, key: &[u8], data: &[u8]) -> Result<(), CryptoError> {
    if key.len() != key_len || !data.len().is_multiple_of(16) {
        return Err(CryptoError::InvalidInput("AES-CBC needs a key of the cipher's size and whole blocks"));
    }
    Ok(())
}

/// AES-CBC encryption in place without padding, with cipher `C`.
fn aes_cbc_encrypt<C>(key_len: usize, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError>
where
    C: aes::cipher::BlockCipher + aes::cipher::BlockEncrypt + aes::cipher::KeyInit,
{
    use cbc::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
    aes_cbc_check(key_len, key, data)?;
    let len = data.len();
    let enc = cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|_| CryptoError::InvalidKey("AES key"))?;
    enc.encrypt_padded_mut::<NoPadding>(data, len).map(|_| ()).map_err(|_| CryptoError::InvalidInput("AES-CBC encrypt"))
}

/// AES-CBC decryption in place without padding, with cipher `C`.
fn aes_cbc_decrypt<C>(key_len: usize, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError>
where
    C: aes::cipher::BlockCipher + aes::cipher::BlockDecrypt + aes::cipher::KeyInit,
{
    use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::NoPadding};
    aes_cbc_check(key_len, key, data)?;
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| CryptoError::InvalidKey("AES key"))?;
    dec.decrypt_padded_mut::<NoPadding>(data).map(|_| ()).map_err(|_| CryptoError::InvalidInput("AES-CBC decrypt"))
}

impl CryptoProvider for RustCryptoProvider {
    fn name(&self) -> &'static str {
        "rust-crypto"
    }

    fn digest(&self, alg: HashAlg, parts: &[&[u8]]) -> Vec<u8> {
        match alg {
            HashAlg::Sha1 => digest_parts::<sha1::Sha1>(parts),
            HashAlg::Sha256 => digest_parts::<sha2::Sha256>(parts),
            HashAlg::Sha384 => digest_parts::<sha2::Sha384>(parts),
            HashAlg::Sha512 => digest_parts::<sha2::Sha512>(parts),
        }
    }

    fn sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut h = sha2::Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    fn hmac(&self, alg: HashAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match alg {
            HashAlg::Sha1 => hmac_parts::<hmac::Hmac<sha1::Sha1>>(key, parts),
            HashAlg::Sha256 => hmac_parts::<hmac::Hmac<sha2::Sha256>>(key, parts),
            HashAlg::Sha384 => hmac_parts::<hmac::Hmac<sha2::Sha384>>(key, parts),
            HashAlg::Sha512 => hmac_parts::<hmac::Hmac<sha2::Sha512>>(key, parts),
        }
    }

    fn hkdf_sha256(&self, salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
        if out.len() > 255 * 32 {
            return Err(CryptoError::InvalidInput("HKDF output too long"));
        }
        hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm)
            .expand(info, out)
            .map_err(|_| CryptoError::InvalidInput("HKDF expand"))
    }

    fn verify_ecdsa(
        &self,
        curve: EcCurve,
        hash: HashAlg,
        point: &[u8],
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        // A hash shorter than the curve order is the same integer left-padded
        // with zeros (FIPS 186-5); the ecdsa crate wants at least half the
        // field size, so pad short hashes (SHA-256 with P-521) to the field size.
        let field_len: usize = match curve {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
            EcCurve::P521 => 66,
        };
        let digest = self.digest(hash, &[msg]);
        let mut prehash = vec![0u8; field_len.saturating_sub(digest.len())];
        prehash.extend_from_slice(&digest);
        let bad = |_| CryptoError::BadSignature;
        match curve {
            EcCurve::P256 => {
                let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?;
                let s = p256::ecdsa::Signature::from_der(sig).map_err(bad)?;
                vk.verify_prehash(&prehash, &s).map_err(bad)
            }
            EcCurve::P384 => {
                let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?;
                let s = p384::ecdsa::Signature::from_der(sig).map_err(bad)?;
                vk.verify_prehash(&prehash, &s).map_err(bad)
            }
            EcCurve::P521 => {
                let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?;
                let s = p521::ecdsa::Signature::from_der(sig).map_err(bad)?;
                vk.verify_prehash(&prehash, &s).map_err(bad)
            }
        }
    }

    fn validate_ec_point(&self, curve: EcCurve, point: &[u8]) -> Result<(), CryptoError> {
        if point.first() != Some(&4) {
            return Err(CryptoError::InvalidKey("EC point must be uncompressed"));
        }
        let ok = match curve {
            EcCurve::P256 => p256::PublicKey::from_sec1_bytes(point).is_ok(),
            EcCurve::P384 => p384::PublicKey::from_sec1_bytes(point).is_ok(),
            EcCurve::P521 => p521::PublicKey::from_sec1_bytes(point).is_ok(),
        };
        if ok { Ok(()) } else { Err(CryptoError::InvalidKey("not a point on the curve")) }
    }

    fn verify_ed25519(&self, pk: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        if ed25519_key_is_weak(pk) {
            return Err(CryptoError::BadSignature);
        }
        let pk: [u8; 32] = pk.try_into().map_err(|_| CryptoError::InvalidKey("Ed25519 public key must be 32 bytes"))?;
        // As aws-lc-rs does: a key that is not a curve point made no signature.
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).map_err(|_| CryptoError::BadSignature)?;
        let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| CryptoError::BadSignature)?;
        vk.verify_strict(msg, &sig).map_err(|_| CryptoError::BadSignature)
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
        use rsa::traits::PublicKeyParts;
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        if n.is_empty() || e.is_empty() || n.len() > 1024 || e.len() > 8 {
            return Err(CryptoError::InvalidKey("RSA modulus or exponent out of range"));
        }
        let key =
            rsa::RsaPublicKey::new_with_max_size(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e), 8192)
                .map_err(|_| CryptoError::BadSignature)?;
        // aws-lc-rs accepts 1024-bit moduli only with SHA-1 and reports other
        // keys it refuses as a failed verification; so does this provider.
        let min_bits = if hash == HashAlg::Sha1 { 1024 } else { 2048 };
        if key.n().bits() < min_bits {
            return Err(CryptoError::BadSignature);
        }
        let hashed = self.digest(hash, &[msg]);
        let res = match (padding, hash) {
            (RsaPadding::Pkcs1v15, HashAlg::Sha1) => key.verify(rsa::Pkcs1v15Sign::new::<sha1::Sha1>(), &hashed, sig),
            (RsaPadding::Pkcs1v15, HashAlg::Sha256) => {
                key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &hashed, sig)
            }
            (RsaPadding::Pkcs1v15, HashAlg::Sha384) => {
                key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), &hashed, sig)
            }
            (RsaPadding::Pkcs1v15, HashAlg::Sha512) => {
                key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), &hashed, sig)
            }
            (RsaPadding::Pss, HashAlg::Sha256) => key.verify(rsa::Pss::new::<sha2::Sha256>(), &hashed, sig),
            (RsaPadding::Pss, HashAlg::Sha384) => key.verify(rsa::Pss::new::<sha2::Sha384>(), &hashed, sig),
            (RsaPadding::Pss, HashAlg::Sha512) => key.verify(rsa::Pss::new::<sha2::Sha512>(), &hashed, sig),
            (RsaPadding::Pss, HashAlg::Sha1) => return Err(CryptoError::Unsupported("RSA padding/hash combination")),
        };
        res.map_err(|_| CryptoError::BadSignature)
    }

    fn p256_generate(&self) -> Result<SecretBytes, CryptoError> {
        // Rejection-sample a scalar in [1, n-1] from the OS random source.
        loop {
            let mut s = Zeroizing::new(vec![0u8; 32]);
            self.fill_random(&mut s)?;
            if p256_secret(&s).is_ok() {
                return Ok(s);
            }
        }
    }

    fn p256_public(&self, scalar: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let sk = p256_secret(scalar)?;
        Ok(sk.public_key().to_encoded_point(false).as_bytes().to_vec())
    }

    fn p256_sign(&self, scalar: &[u8], msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use p256::ecdsa::signature::Signer;
        let sk = p256::ecdsa::SigningKey::from(p256_secret(scalar)?);
        let sig: p256::ecdsa::Signature =
            sk.try_sign(msg).map_err(|_| CryptoError::InvalidKey("P-256 signing failed"))?;
        Ok(sig.to_der().as_bytes().to_vec())
    }

    fn p256_ecdh(&self, scalar: &[u8], peer: &[u8]) -> Result<SecretBytes, CryptoError> {
        let sk = p256_secret(scalar)?;
        let pk =
            p256::PublicKey::from_sec1_bytes(peer).map_err(|_| CryptoError::InvalidKey("peer public key rejected"))?;
        // Only uncompressed points, as aws-lc-rs accepts them.
        if peer.len() != 65 {
            return Err(CryptoError::InvalidKey("peer public key rejected"));
        }
        let shared = p256::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk.as_affine());
        Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
    }

    fn ed25519_public(&self, seed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(ed25519_seed(seed)?.verifying_key().to_bytes().to_vec())
    }

    fn ed25519_sign(&self, seed: &[u8], msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use ed25519_dalek::Signer;
        Ok(ed25519_seed(seed)?.sign(msg).to_bytes().to_vec())
    }

    fn ml_dsa_public(&self, level: MlDsaLevel, seed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let seed = ml_dsa_seed(seed)?;
        Ok(match level {
            MlDsaLevel::MlDsa44 => ml_dsa_public_of::<ml_dsa::MlDsa44>(&seed),
            MlDsaLevel::MlDsa65 => ml_dsa_public_of::<ml_dsa::MlDsa65>(&seed),
            MlDsaLevel::MlDsa87 => ml_dsa_public_of::<ml_dsa::MlDsa87>(&seed),
        })
    }

    fn ml_dsa_sign(&self, level: MlDsaLevel, seed: &[u8], msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let seed = ml_dsa_seed(seed)?;
        match level {
            MlDsaLevel::MlDsa44 => ml_dsa_sign_with::<ml_dsa::MlDsa44>(&seed, msg),
            MlDsaLevel::MlDsa65 => ml_dsa_sign_with::<ml_dsa::MlDsa65>(&seed, msg),
            MlDsaLevel::MlDsa87 => ml_dsa_sign_with::<ml_dsa::MlDsa87>(&seed, msg),
        }
    }

    fn verify_ml_dsa(&self, level: MlDsaLevel, public_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        if public_key.len() != level.public_key_len() {
            return Err(CryptoError::InvalidKey("ML-DSA public key has the wrong length"));
        }
        if sig.len() != level.signature_len() {
            return Err(CryptoError::BadSignature);
        }
        match level {
            MlDsaLevel::MlDsa44 => ml_dsa_verify_with::<ml_dsa::MlDsa44>(public_key, msg, sig),
            MlDsaLevel::MlDsa65 => ml_dsa_verify_with::<ml_dsa::MlDsa65>(public_key, msg, sig),
            MlDsaLevel::MlDsa87 => ml_dsa_verify_with::<ml_dsa::MlDsa87>(public_key, msg, sig),
        }
    }

    fn aes256_cbc_encrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
        aes_cbc_encrypt::<aes::Aes256>(32, key, iv, data)
    }

    fn aes256_cbc_decrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
        aes_cbc_decrypt::<aes::Aes256>(32, key, iv, data)
    }

    fn aes128_cbc_encrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
        aes_cbc_encrypt::<aes::Aes128>(16, key, iv, data)
    }

    fn aes128_cbc_decrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
        aes_cbc_decrypt::<aes::Aes128>(16, key, iv, data)
    }

    fn aes256_gcm_seal(
        &self,
        key: &[u8],
        nonce: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let c = aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::InvalidKey("AES-GCM key"))?;
        c.encrypt(aes_gcm::Nonce::from_slice(nonce), Payload { msg: plaintext, aad })
            .map_err(|_| CryptoError::InvalidInput("AES-GCM seal"))
    }

    fn aes256_gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8; 12],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let c = aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::InvalidKey("AES-GCM key"))?;
        c.decrypt(aes_gcm::Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::DecryptFailed)
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), CryptoError> {
        use rand_core::RngCore;
        rand_core::OsRng.try_fill_bytes(buf).map_err(|_| CryptoError::Rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
    }

    #[test]
    fn sha256_abc() {
        let p = RustCryptoProvider;
        assert_eq!(
            p.sha256(&[b"a", b"bc"]).to_vec(),
            h("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }

    #[test]
    fn hkdf_rfc5869_case1() {
        let p = RustCryptoProvider;
        let mut okm = [0u8; 42];
        p.hkdf_sha256(&h("000102030405060708090a0b0c"), &[0x0b; 22], &h("f0f1f2f3f4f5f6f7f8f9"), &mut okm).unwrap();
        assert_eq!(
            okm.to_vec(),
            h("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
    }

    #[test]
    fn bad_lengths_are_errors() {
        let p = RustCryptoProvider;
        assert!(p.p256_public(&[1; 31]).is_err());
        assert!(p.ed25519_public(&[1; 31]).is_err());
        assert!(p.verify_ed25519(&[0; 3], b"m", &[0; 64]).is_err());
        assert!(p.verify_ecdsa(EcCurve::P256, HashAlg::Sha256, &[4; 10], b"m", &[0x30]).is_err());
        assert!(p.verify_rsa(RsaPadding::Pkcs1v15, HashAlg::Sha256, &[], &[1], b"", &[]).is_err());
        let mut d = [0u8; 15];
        assert!(p.aes256_cbc_encrypt(&[0; 32], &[0; 16], &mut d).is_err());
        assert!(p.aes256_gcm_open(&[0; 32], &[0; 12], b"", &[0; 3]).is_err());
    }
}

/// Both providers must agree on every primitive.
#[cfg(all(test, feature = "aws-lc"))]
mod cross_provider {
    use super::super::aws_lc::AwsLcProvider;
    use super::*;

    fn both() -> [&'static dyn CryptoProvider; 2] {
        [&AwsLcProvider, &RustCryptoProvider]
    }

    #[test]
    fn hashes_and_hmac_agree() {
        let msg: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        for alg in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let [a, b] = both();
            assert_eq!(a.digest(alg, &[&msg[..7], &msg[7..]]), b.digest(alg, &[&msg]));
            assert_eq!(b.digest(alg, &[&msg]).len(), alg.output_len());
            for key in [&b"k"[..], &[7u8; 200][..]] {
                assert_eq!(a.hmac(alg, key, &[&msg]), b.hmac(alg, key, &[&msg[..100], &msg[100..]]));
            }
        }
        let [a, b] = both();
        assert_eq!(a.sha256(&[b"x"]), b.sha256(&[b"x"]));
    }

    #[test]
    fn hkdf_agrees() {
        for p in both() {
            let mut okm = [0u8; 42];
            p.hkdf_sha256(
                &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
                &[0x0b; 22],
                &[0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9],
                &mut okm,
            )
            .unwrap();
            let want = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
            let got: String = okm.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, want, "{}", p.name());
        }
        let [a, b] = both();
        let (mut x, mut y) = ([0u8; 80], [0u8; 80]);
        a.hkdf_sha256(b"", b"ikm", b"info", &mut x).unwrap();
        b.hkdf_sha256(b"", b"ikm", b"info", &mut y).unwrap();
        assert_eq!(x, y);
    }

    #[test]
    fn aes_agrees() {
        let [a, b] = both();
        let key = [0x42u8; 32];
        let iv = [9u8; 16];
        let pt: Vec<u8> = (0..64u8).collect();
        let (mut x, mut y) = (pt.clone(), pt.clone());
        a.aes256_cbc_encrypt(&key, &iv, &mut x).unwrap();
        b.aes256_cbc_encrypt(&key, &iv, &mut y).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, pt);
        a.aes256_cbc_decrypt(&key, &iv, &mut y).unwrap();
        b.aes256_cbc_decrypt(&key, &iv, &mut x).unwrap();
        assert_eq!((x.clone(), y), (pt.clone(), pt.clone()));
        let nonce = [3u8; 12];
        let s1 = a.aes256_gcm_seal(&key, &nonce, b"aad", &pt).unwrap();
        let s2 = b.aes256_gcm_seal(&key, &nonce, b"aad", &pt).unwrap();
        assert_eq!(s1, s2);
        assert_eq!(&a.aes256_gcm_open(&key, &nonce, b"aad", &s2).unwrap()[..], &pt[..]);
        assert_eq!(&b.aes256_gcm_open(&key, &nonce, b"aad", &s1).unwrap()[..], &pt[..]);
        let mut bad = s1.clone();
        if let Some(l) = bad.last_mut() {
            *l ^= 1;
        }
        for p in both() {
            assert_eq!(p.aes256_gcm_open(&key, &nonce, b"aad", &bad), Err(CryptoError::DecryptFailed));
            assert_eq!(p.aes256_gcm_open(&key, &nonce, b"other", &s1), Err(CryptoError::DecryptFailed));
        }
    }

    #[test]
    fn p256_sign_verify_ecdh_agree() {
        for signer in both() {
            let k = signer.p256_generate().unwrap();
            let pubk = signer.p256_public(&k).unwrap();
            let sig = signer.p256_sign(&k, b"message").unwrap();
            for verifier in both() {
                assert_eq!(verifier.p256_public(&k).unwrap(), pubk);
                verifier.verify_ecdsa(EcCurve::P256, HashAlg::Sha256, &pubk, b"message", &sig).unwrap();
                assert_eq!(
                    verifier.verify_ecdsa(EcCurve::P256, HashAlg::Sha256, &pubk, b"messagE", &sig),
                    Err(CryptoError::BadSignature)
                );
            }
        }
        let [a, b] = both();
        let (ka, kb) = (a.p256_generate().unwrap(), b.p256_generate().unwrap());
        let (pa, pb) = (a.p256_public(&ka).unwrap(), b.p256_public(&kb).unwrap());
        let z1 = a.p256_ecdh(&ka, &pb).unwrap();
        let z2 = b.p256_ecdh(&kb, &pa).unwrap();
        let z3 = b.p256_ecdh(&ka, &pb).unwrap();
        assert_eq!(z1, z2);
        assert_eq!(z1, z3);
        assert_eq!(z1.len(), 32);
        for p in both() {
            assert!(p.p256_ecdh(&ka, &[4u8; 65]).is_err());
        }
    }

    #[test]
    fn ed25519_agrees() {
        let [a, b] = both();
        let seed = [5u8; 32];
        assert_eq!(a.ed25519_public(&seed).unwrap(), b.ed25519_public(&seed).unwrap());
        let pk = a.ed25519_public(&seed).unwrap();
        let s1 = a.ed25519_sign(&seed, b"msg").unwrap();
        let s2 = b.ed25519_sign(&seed, b"msg").unwrap();
        assert_eq!(s1, s2);
        for p in both() {
            p.verify_ed25519(&pk, b"msg", &s1).unwrap();
            assert_eq!(p.verify_ed25519(&pk, b"msh", &s1), Err(CryptoError::BadSignature));
        }
    }

    #[test]
    fn rsa_verify_agrees() {
        use rsa::traits::PublicKeyParts;
        let mut rng = rand_core::OsRng;
        let sk = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let (n, e) = (sk.n().to_bytes_be(), sk.e().to_bytes_be());
        let msg = b"attestation";
        let digest = sha2::Sha256::digest(msg);
        let pkcs = sk.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest).unwrap();
        let pss = sk.sign_with_rng(&mut rng, rsa::Pss::new::<sha2::Sha256>(), &digest).unwrap();
        for p in both() {
            p.verify_rsa(RsaPadding::Pkcs1v15, HashAlg::Sha256, &n, &e, msg, &pkcs).unwrap();
            p.verify_rsa(RsaPadding::Pss, HashAlg::Sha256, &n, &e, msg, &pss).unwrap();
            assert!(p.verify_rsa(RsaPadding::Pss, HashAlg::Sha256, &n, &e, msg, &pkcs).is_err());
            assert!(p.verify_rsa(RsaPadding::Pkcs1v15, HashAlg::Sha256, &n, &e, b"other", &pkcs).is_err());
        }
    }
}
