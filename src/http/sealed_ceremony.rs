//! Pending ceremonies sealed in the ceremony cookie: the mode for several
//! server instances on one database (PostgreSQL), where keeping the state
//! on the server would cost a database write at options time and a delete
//! at verify time.
//!
//! The state of a ceremony (challenge, user, allowed credentials: the
//! `Pending` value of [`crate::http`]) is encrypted and authenticated with
//! AES-256-GCM and handed to the browser as the value of the HttpOnly
//! ceremony cookie. Nothing is stored when a ceremony starts, so a flood of
//! `/options` requests holds no server memory and writes nothing.
//!
//! **Single use.** Every sealed ceremony has a random 16-byte id. Verifying
//! it records the id in the store's table of used ceremonies, in the same
//! statement as the sign-in's counter update (PostgreSQL: one data-modifying
//! `WITH`; the counter moves only when the id was new), or first of all for
//! a registration. A second verify of the same cookie, on any instance,
//! finds the id taken and gets `no_pending_ceremony`, exactly as when the
//! state lived in the database. Ids are kept until the ceremony expires and
//! then purged by the maintenance task.
//!
//! **Keys.** The sealing key is derived (HKDF-SHA256) from the server's
//! session secret, which every instance reads from the shared database; each
//! token is sealed under a key of its own, HMAC-SHA256(sealing key, label |
//! id), so random ids never make two messages share a GCM key and nonce.
//!
//! Layout, before base64url:
//!
//! ```text
//! version (1, = 1) | id (16) | expires ms (8, BE) | ciphertext | tag (16)
//! ```
//!
//! The version, id and expiry are the additional authenticated data: a
//! token whose expiry was changed does not open.

use crate::crypto::{CryptoProvider, HashAlg};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const ID_LEN: usize = 16;
const TAG_LEN: usize = 16;
const HEADER: usize = 1 + ID_LEN + 8;
const KEY_LABEL: &[u8] = b"hwkey-ceremony-key-v1";
const TOKEN_LABEL: &[u8] = b"hwkey-ceremony-token-v1";
/// The largest sealed token, in bytes before base64url (a cookie of at most
/// about 4,000 characters, under every browser's 4,096-byte limit).
pub(crate) const MAX_TOKEN_LEN: usize = 2_900;
/// The smallest well-formed token.
pub(crate) const MIN_TOKEN_LEN: usize = HEADER + TAG_LEN;

/// The key that seals ceremony cookies.
pub(crate) struct CeremonySeal {
    key: Zeroizing<[u8; 32]>,
    provider: &'static dyn CryptoProvider,
}

impl std::fmt::Debug for CeremonySeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CeremonySeal").finish_non_exhaustive()
    }
}

/// What an authentic token holds.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The ceremony's id (for single use).
    pub id: [u8; ID_LEN],
    /// When it expires (Unix ms).
    pub expires_ms: i64,
    /// The sealed state.
    pub plain: Zeroizing<Vec<u8>>,
}

impl CeremonySeal {
    /// The sealing key derived from the server's session secret.
    pub(crate) fn derive(provider: &'static dyn CryptoProvider, secret: &[u8]) -> Option<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        provider.hkdf_sha256(KEY_LABEL, secret, b"ceremony cookie", &mut key[..]).ok()?;
        Some(CeremonySeal { key, provider })
    }

    fn token_key(&self, id: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        let k: [u8; 32] = self.provider.hmac(HashAlg::Sha256, &self.key[..], &[TOKEN_LABEL, id]).try_into().ok()?;
        Some(Zeroizing::new(k))
    }

    /// A new token for `plain` with a fresh random id, expiring at
    /// `expires_ms`; `None` when the random source or the cipher fails.
    pub(crate) fn seal(&self, expires_ms: i64, plain: &[u8]) -> Option<([u8; ID_LEN], Vec<u8>)> {
        let mut id = [0u8; ID_LEN];
        self.provider.fill_random(&mut id).ok()?;
        let mut header = Vec::with_capacity(HEADER + plain.len() + TAG_LEN);
        header.push(VERSION);
        header.extend_from_slice(&id);
        header.extend_from_slice(&expires_ms.to_be_bytes());
        let key = self.token_key(&id)?;
        // Each token has a key of its own: the zero nonce is used once per key.
        let sealed = self.provider.aes256_gcm_seal(&key[..], &[0u8; 12], &header, plain).ok()?;
        header.extend_from_slice(&sealed);
        Some((id, header))
    }

    /// The contents of `token` if it is well formed and authentic (expired
    /// or not: the caller tells the two apart).
    pub(crate) fn open(&self, token: &[u8]) -> Option<Opened> {
        if token.len() < MIN_TOKEN_LEN || token.len() > MAX_TOKEN_LEN || token.first() != Some(&VERSION) {
            return None;
        }
        let (header, body) = token.split_at(HEADER);
        let id: [u8; ID_LEN] = header.get(1..1 + ID_LEN)?.try_into().ok()?;
        let expires_ms = i64::from_be_bytes(header.get(1 + ID_LEN..HEADER)?.try_into().ok()?);
        let key = self.token_key(&id)?;
        let plain = self.provider.aes256_gcm_open(&key[..], &[0u8; 12], header, body).ok()?;
        Some(Opened { id, expires_ms, plain: Zeroizing::new(plain.to_vec()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::default_provider;

    fn seal() -> CeremonySeal {
        CeremonySeal::derive(default_provider(), &[7; 32]).expect("derive")
    }

    #[test]
    fn a_token_opens_to_what_was_sealed() {
        let s = seal();
        let (id, t) = s.seal(1_234, b"{\"kind\":\"authentication\"}").expect("seal");
        let o = s.open(&t).expect("open");
        assert_eq!(o.id, id);
        assert_eq!(o.expires_ms, 1_234);
        assert_eq!(&o.plain[..], b"{\"kind\":\"authentication\"}");
        let (id2, t2) = s.seal(1_234, b"x").expect("seal");
        assert_ne!(id, id2, "fresh ids");
        assert_ne!(t, t2);
    }

    #[test]
    fn every_flipped_bit_truncation_and_other_key_is_refused() {
        let s = seal();
        let (_, t) = s.seal(99, b"state").expect("seal");
        for i in 0..t.len() {
            for bit in 0..8 {
                let mut bad = t.clone();
                bad[i] ^= 1 << bit;
                assert!(s.open(&bad).is_none(), "byte {i} bit {bit}");
            }
        }
        for n in 0..t.len() {
            assert!(s.open(&t[..n]).is_none(), "truncated to {n}");
        }
        let other = CeremonySeal::derive(default_provider(), &[8; 32]).expect("derive");
        assert!(other.open(&t).is_none());
        assert!(s.open(&[1; MAX_TOKEN_LEN + 1]).is_none());
    }
}
