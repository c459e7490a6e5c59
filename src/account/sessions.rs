//! Sessions: signed tokens (the value of the session cookie) backed by a
//! session row.
//!
//! A token says who (the user handle), how they signed in
//! ([`SignInMethod`]), since and until when, with a random nonce, under
//! HMAC-SHA256 with the server's session secret (stored encrypted, see
//! `secrets.rs`), so every server process on one database accepts it and it
//! survives a restart. Its id is derived from it: the store keeps one row
//! per session under that id
//! ([`SessionRow`](crate::store::account::SessionRow)), so sessions can be
//! listed and ended, and a token whose row is gone (signed out, ended from
//! another session, or ended because a factor changed) is no session.
//!
//! Layout, before base64url:
//!
//! ```text
//! version (1, = 3) | issued ms (8, BE) | expires ms (8, BE) | nonce (16)
//! | method (1) | handle length (1) | user handle (1..=64) | MAC (32)
//! ```
//!
//! The MAC covers a domain label and every byte before it; it is compared
//! in constant time. Anything malformed, mis-signed or expired is simply no
//! session.
//!
//! **Ids.** A version-3 token's id is its issue time (8 bytes, big-endian)
//! followed by the first 24 bytes of its MAC: ids sort by time, so the
//! store's index of session rows grows at one end, and a sign-in's insert
//! touches the same few index pages as the ones just before it instead of a
//! random page of a large index (the SQLite writer commits them in batches:
//! random ids made each batch write a page per sign-in, about a quarter of
//! the sign-in rate). The 192 bits of MAC keep ids unguessable and
//! distinct. A version-2 token (before this layout) keeps its id, the whole
//! MAC, so nobody is signed out by the change. (Version-1 tokens, from
//! before sessions had rows and methods, are refused: their holders sign in
//! again once.)

use super::policy::SignInMethod;
use crate::crypto::{CryptoProvider, HashAlg, ct_eq};

const VERSION: u8 = 3;
/// Tokens issued before session ids sorted by time (still opened).
const VERSION_2: u8 = 2;
const LABEL: &[u8] = b"hwkey-session-v2";
const NONCE_LEN: usize = 16;
const MAC_LEN: usize = 32;
/// User handles are 1 to 64 bytes (WebAuthn §5.4.3).
const MAX_HANDLE: usize = 64;
const FIXED: usize = 1 + 8 + 8 + NONCE_LEN + 1 + 1;
/// The longest token, in bytes (before base64url).
pub(crate) const MAX_TOKEN_LEN: usize = FIXED + MAX_HANDLE + MAC_LEN;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The token's identity for revocation: issue time and MAC (see the
    /// module documentation).
    pub id: [u8; 32],
    /// The signed-in user.
    pub user_handle: Vec<u8>,
    /// When the user signed in (Unix ms).
    pub issued_ms: i64,
    /// When it stops being valid (Unix ms).
    pub expires_ms: i64,
    /// How the user signed in.
    pub method: SignInMethod,
}

/// Sign a token for `user_handle`, valid from `now_ms` until `expires_ms`;
/// `None` when the handle is not 1 to 64 bytes.
pub(crate) fn issue(
    provider: &dyn CryptoProvider,
    secret: &[u8],
    user_handle: &[u8],
    method: SignInMethod,
    nonce: &[u8; NONCE_LEN],
    now_ms: i64,
    expires_ms: i64,
) -> Option<(Vec<u8>, [u8; 32])> {
    issue_labeled(LABEL, provider, secret, user_handle, method.tag(), nonce, now_ms, expires_ms)
}

/// The token of a password step (a password accepted, a second factor
/// pending): the session layout under another label, so neither kind of
/// token passes for the other.
pub(crate) fn issue_password_step(
    provider: &dyn CryptoProvider,
    secret: &[u8],
    user_handle: &[u8],
    nonce: &[u8; NONCE_LEN],
    now_ms: i64,
    expires_ms: i64,
) -> Option<Vec<u8>> {
    issue_labeled(STEP_LABEL, provider, secret, user_handle, 0, nonce, now_ms, expires_ms).map(|(t, _)| t)
}

/// A password step token's (user handle, issued ms, expires ms), if valid at `now_ms`.
pub(crate) fn open_password_step(
    provider: &dyn CryptoProvider,
    secret: &[u8],
    token: &[u8],
    now_ms: i64,
) -> Option<(Vec<u8>, i64, i64)> {
    let (_, handle, issued, expires, tag) = open_labeled(STEP_LABEL, provider, secret, token, now_ms)?;
    (tag == 0).then_some((handle, issued, expires))
}

const STEP_LABEL: &[u8] = b"hwkey-password-step-v1";

#[allow(clippy::too_many_arguments)]
fn issue_labeled(
    label: &[u8],
    provider: &dyn CryptoProvider,
    secret: &[u8],
    user_handle: &[u8],
    tag: u8,
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
    t.push(tag);
    t.push(len);
    t.extend_from_slice(user_handle);
    let mac = mac(provider, label, secret, &t)?;
    t.extend_from_slice(&mac);
    Some((t, session_id(VERSION, now_ms, &mac)))
}

/// The id of a token of `version` issued at `issued_ms` with `mac`.
fn session_id(version: u8, issued_ms: i64, mac: &[u8; 32]) -> [u8; 32] {
    if version == VERSION_2 {
        return *mac;
    }
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&issued_ms.to_be_bytes());
    id[8..].copy_from_slice(&mac[..24]);
    id
}

/// The session of `token` if it is well formed, signed with `secret` and not
/// expired at `now_ms`. (Revocation is the caller's next check.)
pub(crate) fn open(provider: &dyn CryptoProvider, secret: &[u8], token: &[u8], now_ms: i64) -> Option<Session> {
    let (id, user_handle, issued_ms, expires_ms, tag) = open_labeled(LABEL, provider, secret, token, now_ms)?;
    let method = SignInMethod::from_tag(tag)?;
    Some(Session { id, user_handle, issued_ms, expires_ms, method })
}

type Opened = ([u8; 32], Vec<u8>, i64, i64, u8);

fn open_labeled(
    label: &[u8],
    provider: &dyn CryptoProvider,
    secret: &[u8],
    token: &[u8],
    now_ms: i64,
) -> Option<Opened> {
    let version = *token.first()?;
    if token.len() < FIXED + 1 + MAC_LEN || token.len() > MAX_TOKEN_LEN || !(version == VERSION || version == VERSION_2)
    {
        return None;
    }
    let (body, tag) = token.split_at(token.len() - MAC_LEN);
    let handle_len = usize::from(*body.get(FIXED - 1)?);
    if handle_len == 0 || body.len() != FIXED + handle_len {
        return None;
    }
    let expected = mac(provider, label, secret, body)?;
    if !ct_eq(&expected, tag) {
        return None;
    }
    let issued_ms = i64::from_be_bytes(body.get(1..9)?.try_into().ok()?);
    let expires_ms = i64::from_be_bytes(body.get(9..17)?.try_into().ok()?);
    let tag = *body.get(FIXED - 2)?;
    if expires_ms <= now_ms {
        return None;
    }
    Some((session_id(version, issued_ms, &expected), body.get(FIXED..)?.to_vec(), issued_ms, expires_ms, tag))
}

fn mac(provider: &dyn CryptoProvider, label: &[u8], secret: &[u8], body: &[u8]) -> Option<[u8; 32]> {
    provider.hmac(HashAlg::Sha256, secret, &[label, body]).try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::default_provider;

    const KEY: &[u8] = &[7; 32];

    fn token(handle: &[u8], expires: i64) -> Vec<u8> {
        issue(default_provider(), KEY, handle, SignInMethod::Key, &[1; 16], 1_000, expires).expect("valid handle").0
    }

    #[test]
    fn a_token_opens_with_its_key_until_it_expires() {
        let p = default_provider();
        let (t, id) = issue(p, KEY, b"user-1", SignInMethod::Totp, &[9; 16], 1_000, 5_000).expect("issue");
        let s = open(p, KEY, &t, 4_999).expect("valid");
        assert_eq!(
            s,
            Session {
                id,
                user_handle: b"user-1".to_vec(),
                issued_ms: 1_000,
                expires_ms: 5_000,
                method: SignInMethod::Totp
            }
        );
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
    fn a_password_step_token_is_no_session_and_a_session_no_password_step() {
        let p = default_provider();
        let step = issue_password_step(p, KEY, b"user", &[3; 16], 0, 10).expect("step");
        assert_eq!(open(p, KEY, &step, 5), None);
        assert_eq!(open_password_step(p, KEY, &step, 5), Some((b"user".to_vec(), 0, 10)));
        let session = token(b"user", 10);
        assert_eq!(open_password_step(p, KEY, &session, 5), None);
    }

    /// Ids sort by issue time (the session index grows at one end), and a
    /// version-2 token, issued before, keeps its id (the whole MAC) and
    /// stays valid.
    #[test]
    fn ids_sort_by_time_and_version_2_tokens_keep_their_ids() {
        let p = default_provider();
        let (_, early) = issue(p, KEY, b"u", SignInMethod::Key, &[9; 16], 1_000, 9_000).expect("a");
        let (_, late) = issue(p, KEY, b"u", SignInMethod::Key, &[0; 16], 1_001, 9_000).expect("b");
        assert!(early < late, "ids in issue order");
        assert_eq!(&early[..8], &1_000i64.to_be_bytes());
        // A version-2 token: the same layout with version byte 2, MAC over it.
        let (mut v2, _) = issue(p, KEY, b"u", SignInMethod::Key, &[5; 16], 1_000, 9_000).expect("c");
        v2[0] = VERSION_2;
        v2.truncate(v2.len() - MAC_LEN);
        let m = mac(p, LABEL, KEY, &v2).expect("mac");
        v2.extend_from_slice(&m);
        let s = open(p, KEY, &v2, 2_000).expect("a version-2 token still opens");
        assert_eq!(s.id, m, "its id is its MAC, as before");
        v2[0] = 1;
        assert_eq!(open(p, KEY, &v2, 2_000), None, "version 1 is refused");
    }

    #[test]
    fn handles_must_be_1_to_64_bytes_and_nonces_make_tokens_distinct() {
        let p = default_provider();
        assert!(issue(p, KEY, b"", SignInMethod::Key, &[0; 16], 0, 1).is_none());
        assert!(issue(p, KEY, &[1; 65], SignInMethod::Key, &[0; 16], 0, 1).is_none());
        let (t64, _) = issue(p, KEY, &[1; 64], SignInMethod::Key, &[0; 16], 0, 10).expect("64-byte handle");
        assert_eq!(t64.len(), MAX_TOKEN_LEN);
        assert!(open(p, KEY, &t64, 5).is_some());
        let a = issue(p, KEY, b"u", SignInMethod::Key, &[0; 16], 0, 10).expect("a").1;
        let b = issue(p, KEY, b"u", SignInMethod::Key, &[1; 16], 0, 10).expect("b").1;
        assert_ne!(a, b);
    }
}
