//! Signed session tokens: the value of the session cookie.
//!
//! A session is not a database row but a token the server signed: who (the
//! user handle), until when, and a random nonce, under HMAC-SHA256 with a
//! secret the store keeps ([`Store::session_secret`](crate::store::Store::session_secret)),
//! so every server process on one database accepts it and it survives a
//! restart. A sign-in then writes nothing for its session. Signing out
//! records the token's MAC (its id) as revoked until the token would have
//! expired anyway; every authenticated request checks that list.
//!
//! Layout, before base64url:
//!
//! ```text
//! version (1, = 1) | issued ms (8, BE) | expires ms (8, BE) | nonce (16)
//! | handle length (1) | user handle (1..=64) | MAC (32)
//! ```
//!
//! The MAC covers a domain label and every byte before it; it is compared
//! in constant time. Anything malformed, mis-signed or expired is simply no
//! session.

use crate::crypto::{CryptoProvider, HashAlg, ct_eq};

const VERSION: u8 = 1;
const LABEL: &[u8] = b"hwkey-session-v1";
const NONCE_LEN: usize = 16;
const MAC_LEN: usize = 32;
/// User handles are 1 to 64 bytes (WebAuthn §5.4.3).
const MAX_HANDLE: usize = 64;
const FIXED: usize = 1 + 8 + 8 + NONCE_LEN + 1;
/// The longest token, in bytes (before base64url).
pub(crate) const MAX_TOKEN_LEN: usize = FIXED + MAX_HANDLE + MAC_LEN;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// The token's MAC: its identity for revocation.
    pub id: [u8; 32],
    /// The signed-in user.
    pub user_handle: Vec<u8>,
    /// When the user signed in (Unix ms).
    pub issued_ms: i64,
    /// When it stops being valid (Unix ms).
    pub expires_ms: i64,
}

/// Sign a token for `user_handle`, valid from `now_ms` until `expires_ms`;
/// `None` when the handle is not 1 to 64 bytes.
pub(crate) fn issue(
    provider: &dyn CryptoProvider,
    secret: &[u8],
    user_handle: &[u8],
    nonce: &[u8; NONCE_LEN],
    now_ms: i64,
    expires_ms: i64,
) -> Option<(Vec<u8>, [u8; 32])> {
    let len = u8::try_from(user_handle.len()).ok().filter(|l| (1..=MAX_HANDLE as u8).contains(l))?;
    let mut t = Vec::with_capacity(FIXED + user_handle.len() + MAC_LEN);
    t.push(VERSION);
    t.extend_from_slice(&now_ms.to_be_bytes());
    t.extend_from_slice(&expires_ms.to_be_bytes());
    t.extend_from_slice(nonce);
    t.push(len);
    t.extend_from_slice(user_handle);
    let mac = mac(provider, secret, &t)?;
    t.extend_from_slice(&mac);
    Some((t, mac))
}

/// The session of `token` if it is well formed, signed with `secret` and not
/// expired at `now_ms`. (Revocation is the caller's next check.)
pub(crate) fn open(provider: &dyn CryptoProvider, secret: &[u8], token: &[u8], now_ms: i64) -> Option<Session> {
    if token.len() < FIXED + 1 + MAC_LEN || token.len() > MAX_TOKEN_LEN || token[0] != VERSION {
        return None;
    }
    let (body, tag) = token.split_at(token.len() - MAC_LEN);
    let handle_len = usize::from(*body.get(FIXED - 1)?);
    if handle_len == 0 || body.len() != FIXED + handle_len {
        return None;
    }
    let expected = mac(provider, secret, body)?;
    if !ct_eq(&expected, tag) {
        return None;
    }
    let issued_ms = i64::from_be_bytes(body.get(1..9)?.try_into().ok()?);
    let expires_ms = i64::from_be_bytes(body.get(9..17)?.try_into().ok()?);
    if expires_ms <= now_ms {
        return None;
    }
    Some(Session { id: expected, user_handle: body[FIXED..].to_vec(), issued_ms, expires_ms })
}

fn mac(provider: &dyn CryptoProvider, secret: &[u8], body: &[u8]) -> Option<[u8; 32]> {
    provider.hmac(HashAlg::Sha256, secret, &[LABEL, body]).try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::default_provider;

    const KEY: &[u8] = &[7; 32];

    fn token(handle: &[u8], expires: i64) -> Vec<u8> {
        issue(default_provider(), KEY, handle, &[1; 16], 1_000, expires).expect("valid handle").0
    }

    #[test]
    fn a_token_opens_with_its_key_until_it_expires() {
        let p = default_provider();
        let (t, id) = issue(p, KEY, b"user-1", &[9; 16], 1_000, 5_000).expect("issue");
        let s = open(p, KEY, &t, 4_999).expect("valid");
        assert_eq!(s, Session { id, user_handle: b"user-1".to_vec(), issued_ms: 1_000, expires_ms: 5_000 });
        assert_eq!(open(p, KEY, &t, 5_000), None, "expired at its expiry");
        assert_eq!(open(p, &[8; 32], &t, 2_000), None, "another key");
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let p = default_provider();
        let t = token(b"handle", 10_000);
        for i in 0..t.len() {
            for bit in 0..8 {
                let mut bad = t.clone();
                bad[i] ^= 1 << bit;
                assert_eq!(open(p, KEY, &bad, 2_000), None, "byte {i} bit {bit}");
            }
        }
        for n in 0..t.len() {
            assert_eq!(open(p, KEY, &t[..n], 2_000), None, "truncated to {n}");
        }
        let mut long = t.clone();
        long.push(0);
        assert_eq!(open(p, KEY, &long, 2_000), None);
        assert_eq!(open(p, KEY, &[], 2_000), None);
        assert_eq!(open(p, KEY, &[1; MAX_TOKEN_LEN + 1], 2_000), None);
    }

    #[test]
    fn handles_must_be_1_to_64_bytes_and_nonces_make_tokens_distinct() {
        let p = default_provider();
        assert!(issue(p, KEY, b"", &[0; 16], 0, 1).is_none());
        assert!(issue(p, KEY, &[1; 65], &[0; 16], 0, 1).is_none());
        let (t64, _) = issue(p, KEY, &[1; 64], &[0; 16], 0, 10).expect("64-byte handle");
        assert_eq!(t64.len(), MAX_TOKEN_LEN);
        assert!(open(p, KEY, &t64, 5).is_some());
        let a = issue(p, KEY, b"u", &[0; 16], 0, 10).expect("a").1;
        let b = issue(p, KEY, b"u", &[1; 16], 0, 10).expect("b").1;
        assert_ne!(a, b);
    }
}
