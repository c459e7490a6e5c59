//! "Derive a stable 32-byte secret from the user's key."
//!
//! A desktop program (password manager, disk unlock) wants the same 32 bytes
//! every time the user presents the same key, and different bytes for another
//! key or another purpose (salt). The recipe, the same for every backend:
//!
//! ```text
//! challenge = SHA-256("hwkey-derive-v1" || 0x00 || backend kind || 0x00 || salt)   (32 bytes)
//! response  = the key's keyed function of challenge      (YubiKey: HMAC-SHA1 slot;
//!                                                        FIDO2: hmac-secret / prf)
//! secret    = HKDF-SHA256(salt = salt, ikm = response,
//!                         info = "hwkey-derive-v1 " || backend kind)                (32 bytes)
//! check     = first 16 bytes of HMAC-SHA256(secret, "hwkey-derive-v1 key check")
//! ```
//!
//! [`enroll`] runs it once and returns an [`Enrollment`] (serde-serializable:
//! version, [`Backend`] with its parameters, salt, check value) to store next
//! to the protected data; [`derive`](fn@derive) reruns it and confirms with the check
//! value in constant time, so a wrong key gives [`DeriveError::WrongKey`]
//! rather than garbage. Backends implement [`SecretSource`]; this module
//! provides [`YubikeyHmacSource`]; the FIDO2 hmac-secret/prf source belongs to
//! the client side and only needs to answer a 32-byte challenge (as salt1).

use super::YubikeyError;
use super::chalresp::{Slot, challenge_response};
use super::device::{FeatureReportTransport, OtpConnection, Progress};
use crate::crypto::{HashAlg, default_provider};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

const DOMAIN: &[u8] = b"hwkey-derive-v1";

/// Which kind of key produced the secret, with what it needs to do it again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Backend {
    /// A YubiKey OTP slot programmed for HMAC-SHA1 challenge-response.
    YubikeyHmac {
        /// Slot 1 or 2.
        slot: u8,
        /// The serial of the key enrolled (informational: a backup key with
        /// the same slot secret derives the same bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serial: Option<u32>,
    },
    /// A FIDO2 credential's hmac-secret (WebAuthn prf) output.
    Fido2HmacSecret {
        /// The relying party id the credential is scoped to.
        rp_id: String,
        /// The credential id, unpadded base64url.
        credential_id: String,
    },
}

impl Backend {
    /// A short stable name used in the derivation.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::YubikeyHmac { .. } => "yubikey_hmac",
            Backend::Fido2HmacSecret { .. } => "fido2_hmac_secret",
        }
    }
}

/// A record of an enrollment, to be stored (it holds no secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Enrollment {
    /// Format version (1).
    pub version: u32,
    /// The backend and its parameters.
    pub backend: Backend,
    /// The salt, unpadded base64url.
    pub salt: String,
    /// The key-check value, unpadded base64url (16 bytes).
    pub check: String,
}

/// Errors of secret derivation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeriveError {
    /// The key answered, but it is not the enrolled key (or slot).
    #[error("this key is not the one enrolled (the key check does not match)")]
    WrongKey,
    /// The enrollment record is not usable.
    #[error("bad enrollment record: {0}")]
    BadEnrollment(String),
    /// The enrollment is for another backend than the key presented.
    #[error("the enrollment is for a {enrolled} key, not a {presented} key")]
    BackendMismatch {
        /// The enrolled backend kind.
        enrolled: &'static str,
        /// The presented backend kind.
        presented: &'static str,
    },
    /// The device failed.
    #[error(transparent)]
    Device(#[from] YubikeyError),
    /// Another backend's failure, as text.
    #[error("{0}")]
    Other(String),
}

/// A 32-byte derived secret, zeroized on drop.
pub type DerivedSecret = Zeroizing<[u8; 32]>;

/// A key that computes a keyed function of a 32-byte challenge.
pub trait SecretSource {
    /// The backend record for enrollment.
    fn backend(&mut self) -> Result<Backend, DeriveError>;
    /// The key's response to `challenge` (deterministic for a given key).
    fn respond(&mut self, challenge: &[u8; 32]) -> Result<Zeroizing<Vec<u8>>, DeriveError>;
}

/// The YubiKey HMAC-SHA1 challenge-response backend.
pub struct YubikeyHmacSource<'a, T: FeatureReportTransport> {
    conn: &'a mut OtpConnection<T>,
    slot: Slot,
    progress: &'a mut dyn FnMut(Progress),
}

impl<'a, T: FeatureReportTransport> YubikeyHmacSource<'a, T> {
    /// Use `slot` of the key behind `conn`; `progress` hears touch prompts.
    pub fn new(conn: &'a mut OtpConnection<T>, slot: Slot, progress: &'a mut dyn FnMut(Progress)) -> Self {
        YubikeyHmacSource { conn, slot, progress }
    }
}

impl<T: FeatureReportTransport> SecretSource for YubikeyHmacSource<'_, T> {
    fn backend(&mut self) -> Result<Backend, DeriveError> {
        Ok(Backend::YubikeyHmac { slot: self.slot.number(), serial: self.conn.serial().ok() })
    }

    fn respond(&mut self, challenge: &[u8; 32]) -> Result<Zeroizing<Vec<u8>>, DeriveError> {
        let r = challenge_response(self.conn, self.slot, challenge, self.progress)?;
        Ok(Zeroizing::new(r.to_vec()))
    }
}

/// The derivation for a backend kind, salt and key response.
fn compute(kind: &str, salt: &[u8], source: &mut dyn SecretSource) -> Result<(DerivedSecret, [u8; 16]), DeriveError> {
    let p = default_provider();
    let challenge = p.sha256(&[DOMAIN, b"\0", kind.as_bytes(), b"\0", salt]);
    let response = source.respond(&challenge)?;
    let mut secret = Zeroizing::new([0u8; 32]);
    let info = [DOMAIN, b" ", kind.as_bytes()].concat();
    p.hkdf_sha256(salt, &response, &info, &mut secret[..]).map_err(|e| DeriveError::Other(e.to_string()))?;
    let mac = p.hmac(HashAlg::Sha256, &secret[..], &[DOMAIN, b" key check"]);
    let mut check = [0u8; 16];
    check.copy_from_slice(&mac[..16]);
    Ok((secret, check))
}

/// Enroll: derive the secret for `salt` and return it with the record to store.
pub fn enroll(source: &mut dyn SecretSource, salt: &[u8]) -> Result<(Enrollment, DerivedSecret), DeriveError> {
    let backend = source.backend()?;
    let (secret, check) = compute(backend.kind(), salt, source)?;
    let e =
        Enrollment { version: 1, backend, salt: URL_SAFE_NO_PAD.encode(salt), check: URL_SAFE_NO_PAD.encode(check) };
    Ok((e, secret))
}

/// A fresh random 32-byte salt.
pub fn random_salt() -> Result<[u8; 32], DeriveError> {
    let mut s = [0u8; 32];
    default_provider().fill_random(&mut s).map_err(|e| DeriveError::Other(e.to_string()))?;
    Ok(s)
}

/// Derive again from an enrollment; errors with [`DeriveError::WrongKey`] if
/// the key's answer does not match the enrolled check value.
pub fn derive(enrollment: &Enrollment, source: &mut dyn SecretSource) -> Result<DerivedSecret, DeriveError> {
    if enrollment.version != 1 {
        return Err(DeriveError::BadEnrollment(format!("unsupported version {}", enrollment.version)));
    }
    let salt = URL_SAFE_NO_PAD
        .decode(&enrollment.salt)
        .map_err(|_| DeriveError::BadEnrollment("salt is not base64url".into()))?;
    let check = URL_SAFE_NO_PAD
        .decode(&enrollment.check)
        .map_err(|_| DeriveError::BadEnrollment("check is not base64url".into()))?;
    let presented = source.backend()?;
    if presented.kind() != enrollment.backend.kind() {
        return Err(DeriveError::BackendMismatch { enrolled: enrollment.backend.kind(), presented: presented.kind() });
    }
    let (secret, got) = compute(enrollment.backend.kind(), &salt, source)?;
    if !crate::crypto::ct_eq(&got, &check) {
        return Err(DeriveError::WrongKey);
    }
    Ok(secret)
}

/// Derive without an enrollment record (no key check): the same key and salt
/// always give the same 32 bytes.
pub fn derive_unchecked(
    kind: &Backend,
    salt: &[u8],
    source: &mut dyn SecretSource,
) -> Result<DerivedSecret, DeriveError> {
    Ok(compute(kind.kind(), salt, source)?.0)
}
