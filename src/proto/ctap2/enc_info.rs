//! The encrypted getInfo members of CTAP 2.2 (§6.4): `encIdentifier` (0x19)
//! and `encCredStoreState` (0x1E). Each is `iv || AES-128-CBC(key, iv, value)`
//! of a 16-byte value, with `key = HKDF-SHA-256(salt = 32 zero bytes,
//! IKM = persistentPinUvAuthToken, info = label, L = 16)`: only a platform
//! holding the persistent token (permission `pcmr`) can read them.
//!
//! AES-128-CBC comes from the [`CryptoProvider`] (both providers have it),
//! so the members are there whichever provider a build has.

use crate::crypto::CryptoProvider;

/// HKDF info of encIdentifier.
pub const IDENTIFIER_LABEL: &[u8] = b"encIdentifier";
/// HKDF info of encCredStoreState.
pub const CRED_STORE_STATE_LABEL: &[u8] = b"encCredStoreState";

fn key(provider: &dyn CryptoProvider, ppuat: &[u8], label: &[u8]) -> Option<zeroize::Zeroizing<[u8; 16]>> {
    let mut k = zeroize::Zeroizing::new([0u8; 16]);
    provider.hkdf_sha256(&[0u8; 32], ppuat, label, k.as_mut()).ok()?;
    Some(k)
}

/// Encrypt a 16-byte value under the persistent token; `None` without AES-128.
pub fn encrypt(
    provider: &dyn CryptoProvider,
    ppuat: &[u8],
    label: &[u8],
    iv: &[u8; 16],
    value: &[u8; 16],
) -> Option<Vec<u8>> {
    let k = key(provider, ppuat, label)?;
    let mut block = *value;
    provider.aes128_cbc_encrypt(&k[..], iv, &mut block).ok()?;
    let mut out = iv.to_vec();
    out.extend_from_slice(&block);
    Some(out)
}

/// Decrypt an encrypted member (`iv || one block`); `None` if malformed.
pub fn decrypt(provider: &dyn CryptoProvider, ppuat: &[u8], label: &[u8], enc: &[u8]) -> Option<[u8; 16]> {
    if enc.len() != 32 {
        return None;
    }
    let (iv, ct) = enc.split_at(16);
    let mut iv16 = [0u8; 16];
    iv16.copy_from_slice(iv);
    let mut block = [0u8; 16];
    block.copy_from_slice(ct);
    let k = key(provider, ppuat, label)?;
    provider.aes128_cbc_decrypt(&k[..], &iv16, &mut block).ok()?;
    Some(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_label_separation() {
        let p = crate::crypto::default_provider();
        let token = [5u8; 32];
        let enc = encrypt(p, &token, IDENTIFIER_LABEL, &[9; 16], &[1; 16]).unwrap();
        assert_eq!(enc.len(), 32);
        assert_eq!(&enc[..16], &[9; 16]);
        assert_eq!(decrypt(p, &token, IDENTIFIER_LABEL, &enc), Some([1; 16]));
        assert_ne!(decrypt(p, &token, CRED_STORE_STATE_LABEL, &enc), Some([1; 16]));
        assert_ne!(decrypt(p, &[6u8; 32], IDENTIFIER_LABEL, &enc), Some([1; 16]));
        assert_eq!(decrypt(p, &token, IDENTIFIER_LABEL, &enc[..31]), None);
    }

    /// NIST SP 800-38A F.2.1 (CBC-AES128, first block), in every provider
    /// of this build: the members no longer need the RustCrypto one.
    #[test]
    fn aes128_cbc_known_answer_in_every_provider() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
        };
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let iv: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let plain = hex("6bc1bee22e409f96e93d7e117393172a");
        let cipher = hex("7649abac8119b246cee98e9b12e9197d");
        for p in crate::crypto::all_providers() {
            let mut block = plain.clone();
            p.aes128_cbc_encrypt(&key, &iv, &mut block).unwrap();
            assert_eq!(block, cipher, "{}", p.name());
            p.aes128_cbc_decrypt(&key, &iv, &mut block).unwrap();
            assert_eq!(block, plain, "{}", p.name());
            assert!(p.aes128_cbc_encrypt(&key[..15], &iv, &mut block).is_err(), "{}: a short key", p.name());
            assert!(p.aes128_cbc_encrypt(&key, &iv, &mut block[..15]).is_err(), "{}: a partial block", p.name());
        }
    }
}
