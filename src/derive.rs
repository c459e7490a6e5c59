//! "Derive a stable 32-byte secret from the user's key", whichever key it is.
//!
//! A desktop program (password manager, disk unlock, local vault) wants the
//! same 32 bytes every time the user presents the same key, and different
//! bytes for another key or another purpose (salt). Two kinds of key can do
//! it, behind one API:
//!
//! | backend | source | what the key computes |
//! |---|---|---|
//! | [`Backend::YubikeyHmac`] | `YubikeyHmacSource` (feature `yubikey`) | HMAC-SHA1 with the secret of an OTP slot |
//! | [`Backend::Fido2HmacSecret`] | `Fido2HmacSecretSource` (feature `client`) | the CTAP2 hmac-secret of one credential (the function WebAuthn's prf is built on) |
//!
//! The recipe, the same for every backend:
//!
//! ```text
//! challenge = SHA-256("hwkey-derive-v1" || 0x00 || backend kind || 0x00 || salt)   (32 bytes)
//! response  = the key's keyed function of challenge      (YubiKey: HMAC-SHA1 slot;
//!                                                        FIDO2: hmac-secret, salt1 = challenge)
//! secret    = HKDF-SHA256(salt = salt, ikm = response,
//!                         info = "hwkey-derive-v1 " || backend kind)                (32 bytes)
//! check     = first 16 bytes of HMAC-SHA256(secret, "hwkey-derive-v1 key check")
//! ```
//!
//! [`enroll`] runs it once and returns an [`Enrollment`] (serde-serializable:
//! version, [`Backend`] with the parameters needed to ask the same key the
//! same question again, salt, check value) to store next to the protected
//! data; [`derive`](fn@derive) reruns it and confirms with the check value in
//! constant time, so a wrong key gives [`DeriveError::WrongKey`] rather than
//! garbage. The record holds no secret.
//!
//! A typical program:
//!
//! ```no_run
//! # #[cfg(all(feature = "client", feature = "yubikey"))]
//! # fn demo(enrollment: &hwkey::derive::Enrollment) -> Result<(), Box<dyn std::error::Error>> {
//! use hwkey::client::{Op, discovery};
//! use hwkey::client::webauthn::FixedPin;
//! use hwkey::derive::{Backend, Fido2HmacSecretSource, YubikeyHmacSource, derive};
//! use hwkey::yubikey::{OtpConnection, open_device};
//! use std::time::Duration;
//!
//! let secret = match &enrollment.backend {
//!     Backend::YubikeyHmac { .. } => {
//!         let mut conn = OtpConnection::new(open_device(None)?);
//!         let mut progress = |_| {};
//!         let mut source = YubikeyHmacSource::for_enrollment(&mut conn, enrollment, &mut progress)?;
//!         derive(enrollment, &mut source)?
//!     }
//!     Backend::Fido2HmacSecret { .. } => {
//!         let op = Op::timeout(Duration::from_secs(30));
//!         let mut dev = discovery::open(None, &op)?;
//!         let ui = FixedPin::new(None);
//!         let mut source = Fido2HmacSecretSource::for_enrollment(&mut dev, &ui, enrollment, op)?;
//!         derive(enrollment, &mut source)?
//!     }
//! };
//! # let _ = secret; Ok(()) }
//! ```
//!
//! Implement [`SecretSource`] to add a backend; a source only has to answer a
//! 32-byte challenge deterministically.

use crate::crypto::{HashAlg, default_provider};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

#[cfg(feature = "client")]
pub use crate::client::derive::{Fido2HmacSecretSource, Fido2Options};
#[cfg(feature = "yubikey")]
pub use crate::yubikey::derive::YubikeyHmacSource;

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
        /// Whether the user is verified (PIN or built-in UV) on every
        /// derivation. A FIDO2 key keeps two hmac-secret keys per credential,
        /// one used with user verification and one without, so this is part
        /// of what makes the output stable.
        #[serde(default)]
        uv: bool,
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
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// The key answered, but it is not the enrolled key (or slot).
    #[error("this key is not the one enrolled (the key check does not match)")]
    WrongKey,
    /// The FIDO2 key presented does not hold the enrolled credential.
    #[error(
        "this security key does not hold the enrolled credential for {rp_id:?}: it is another key, or the key was reset"
    )]
    CredentialNotFound {
        /// The relying party id of the enrolled credential.
        rp_id: String,
    },
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
    /// The FIDO2 key verified the user when the enrollment did not, or the
    /// other way round; its hmac-secret answer would differ.
    #[error(
        "the security key {} the user but the enrollment was made {} user verification: the secret would differ; enroll again",
        if *enrolled { "did not verify" } else { "verified" },
        if *enrolled { "with" } else { "without" }
    )]
    UvMismatch {
        /// Whether the enrollment verifies the user.
        enrolled: bool,
    },
    /// The key cannot serve as a secret source (e.g. no hmac-secret).
    #[error("this key cannot derive secrets: {0}")]
    Unsupported(String),
    /// The YubiKey failed.
    #[cfg(feature = "yubikey")]
    #[error(transparent)]
    Device(#[from] crate::yubikey::YubikeyError),
    /// The FIDO2 key or the client failed (PIN, timeout, transport...).
    #[cfg(feature = "client")]
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
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

/// The derivation for a backend kind, salt and key response.
fn compute(kind: &str, salt: &[u8], source: &mut dyn SecretSource) -> Result<(DerivedSecret, [u8; 16]), DeriveError> {
    let p = default_provider();
    let challenge = p.sha256(&[DOMAIN, b"\0", kind.as_bytes(), b"\0", salt]);
    let response = source.respond(&challenge)?;
    if response.is_empty() {
        return Err(DeriveError::Other("the key returned an empty response".into()));
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    let info = [DOMAIN, b" ", kind.as_bytes()].concat();
    p.hkdf_sha256(salt, &response, &info, &mut secret[..]).map_err(|e| DeriveError::Other(e.to_string()))?;
    let mac = Zeroizing::new(p.hmac(HashAlg::Sha256, &secret[..], &[DOMAIN, b" key check"]));
    let mut check = [0u8; 16];
    let head = mac.get(..16).ok_or_else(|| DeriveError::Other("HMAC output too short".into()))?;
    check.copy_from_slice(head);
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

impl Enrollment {
    /// Check the version and decode the salt and check value.
    fn decoded(&self) -> Result<(Vec<u8>, Vec<u8>), DeriveError> {
        if self.version != 1 {
            return Err(DeriveError::BadEnrollment(format!("unsupported version {}", self.version)));
        }
        let salt = URL_SAFE_NO_PAD
            .decode(&self.salt)
            .map_err(|_| DeriveError::BadEnrollment("salt is not base64url".into()))?;
        let check = URL_SAFE_NO_PAD
            .decode(&self.check)
            .map_err(|_| DeriveError::BadEnrollment("check is not base64url".into()))?;
        if check.len() != 16 {
            return Err(DeriveError::BadEnrollment("check is not 16 bytes".into()));
        }
        Ok((salt, check))
    }

    /// The salt, decoded.
    pub fn salt_bytes(&self) -> Result<Vec<u8>, DeriveError> {
        Ok(self.decoded()?.0)
    }
}

/// Derive again from an enrollment; errors with [`DeriveError::WrongKey`] if
/// the key's answer does not match the enrolled check value.
pub fn derive(enrollment: &Enrollment, source: &mut dyn SecretSource) -> Result<DerivedSecret, DeriveError> {
    let (salt, check) = enrollment.decoded()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<u8>);
    impl SecretSource for Fixed {
        fn backend(&mut self) -> Result<Backend, DeriveError> {
            Ok(Backend::YubikeyHmac { slot: 1, serial: None })
        }
        fn respond(&mut self, _: &[u8; 32]) -> Result<Zeroizing<Vec<u8>>, DeriveError> {
            Ok(Zeroizing::new(self.0.clone()))
        }
    }

    #[test]
    fn bad_records_are_refused_not_panicked_on() {
        let (e, _) = enroll(&mut Fixed(vec![1; 20]), b"s").unwrap();
        for bad in [
            Enrollment { version: 2, ..e.clone() },
            Enrollment { check: "AAAA".into(), ..e.clone() },
            Enrollment { check: "%%".into(), ..e.clone() },
            Enrollment { salt: "%%".into(), ..e.clone() },
        ] {
            assert!(matches!(derive(&bad, &mut Fixed(vec![1; 20])), Err(DeriveError::BadEnrollment(_))));
        }
        assert!(matches!(derive(&e, &mut Fixed(vec![2; 20])), Err(DeriveError::WrongKey)));
        assert!(matches!(derive(&e, &mut Fixed(Vec::new())), Err(DeriveError::Other(_))));
        assert_eq!(e.salt_bytes().unwrap(), b"s");
    }
}
