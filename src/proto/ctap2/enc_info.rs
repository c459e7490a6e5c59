//! The encrypted getInfo members of CTAP 2.2 (§6.4): `encIdentifier` (0x19)
//! and `encCredStoreState` (0x1E). Each is `iv || AES-128-CBC(key, iv, value)`
//! of a 16-byte value, with `key = HKDF-SHA-256(salt = 32 zero bytes,
//! IKM = persistentPinUvAuthToken, info = label, L = 16)`: only a platform
//! holding the persistent token (permission `pcmr`) can read them.
//!
//! The [`CryptoProvider`] has no AES-128, so the block cipher here is the
//! RustCrypto `aes` crate (feature `rust-crypto`); without that feature the
//! authenticator leaves the members out and the client cannot decrypt them.

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
    aes128_cbc(&k, iv, &mut block, true)?;
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
    aes128_cbc(&k, &iv16, &mut block, false)?;
    Some(block)
}

#[cfg(feature = "rust-crypto")]
fn aes128_cbc(key: &[u8; 16], iv: &[u8; 16], block: &mut [u8; 16], encrypt: bool) -> Option<()> {
    use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
    if encrypt {
        let e = cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv).ok()?;
        e.encrypt_padded_mut::<NoPadding>(block, 16).ok().map(|_| ())
    } else {
        let d = cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv).ok()?;
        d.decrypt_padded_mut::<NoPadding>(block).ok().map(|_| ())
    }
}

#[cfg(not(feature = "rust-crypto"))]
fn aes128_cbc(_: &[u8; 16], _: &[u8; 16], _: &mut [u8; 16], _: bool) -> Option<()> {
    None
}

#[cfg(all(test, feature = "rust-crypto"))]
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
}
