//! The YubiKey HMAC-SHA1 backend of "a stable 32-byte secret from the user's
//! key".
//!
//! The backend-neutral part (the [`SecretSource`] trait, [`Enrollment`],
//! [`enroll`], [`derive`](fn@derive)) lives in [`crate::derive`] and is
//! re-exported here, so `hwkey::yubikey::derive::*` keeps working; this
//! module adds [`YubikeyHmacSource`], which answers the derivation's 32-byte
//! challenge with the HMAC-SHA1 challenge-response of an OTP slot.

use super::chalresp::{Slot, challenge_response};
use super::device::{FeatureReportTransport, OtpConnection, Progress};
pub use crate::derive::{
    Backend, DeriveError, DerivedSecret, Enrollment, SecretSource, derive, derive_unchecked, enroll, random_salt,
};
use zeroize::Zeroizing;

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

    /// Use the slot recorded in `enrollment` (which must be a YubiKey
    /// enrollment, else [`DeriveError::BackendMismatch`]).
    pub fn for_enrollment(
        conn: &'a mut OtpConnection<T>,
        enrollment: &Enrollment,
        progress: &'a mut dyn FnMut(Progress),
    ) -> Result<Self, DeriveError> {
        match &enrollment.backend {
            Backend::YubikeyHmac { slot, .. } => {
                let slot =
                    Slot::from_number(u64::from(*slot)).map_err(|e| DeriveError::BadEnrollment(e.to_string()))?;
                Ok(Self::new(conn, slot, progress))
            }
            other => Err(DeriveError::BackendMismatch { enrolled: other.kind(), presented: "yubikey_hmac" }),
        }
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
