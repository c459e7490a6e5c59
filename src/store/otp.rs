//! Storage of the fallback factors (authenticator-app TOTP and recovery
//! codes): the [`OtpStore`] trait, a supertrait of [`Store`](super::Store),
//! implemented by the SQLite and PostgreSQL backends and by
//! [`DbStore`](super::DbStore).
//!
//! What it keeps per user:
//!
//! - a *pending* TOTP enrollment (secret and parameters, until the user
//!   proves with a code that the authenticator app has it);
//! - the *confirmed* TOTP secret with its parameters and the last accepted
//!   time step, which only moves forward by compare-and-set
//!   ([`OtpStore::advance_totp_step`]: `UPDATE ... WHERE last_step < $step`),
//!   so a code (a time step) is accepted at most once, also when two requests
//!   race and when several server instances share a PostgreSQL database;
//! - recovery codes as Argon2id hashes, one row each, consumed by a single
//!   `DELETE` ([`OtpStore::consume_recovery_code`]): of concurrent uses of one
//!   code, exactly one succeeds;
//! - sign-in attempts per subject (the username as typed), for throttling.
//!
//! Secrets at rest: the server has no encryption key option, so the TOTP
//! secret is stored as raw bytes, protected only by the database's access
//! control (as an authenticator app's own copy is). Recovery codes are stored
//! only as slow hashes. In memory the secret is held in a
//! [`Zeroizing`] buffer.

use super::StoreError;
use std::future::Future;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// Unconfirmed TOTP enrollments older than this are deleted by
/// [`Store::purge_expired`](super::Store::purge_expired). The HTTP layer
/// lets an enrollment expire well before (ten minutes); this only keeps
/// abandoned secrets from lying in the database.
pub const PENDING_TOTP_MAX_AGE: Duration = Duration::from_secs(60 * 60);

/// Deletes unconfirmed enrollments created before $1 (Unix ms).
pub(crate) const PURGE_PENDING_TOTP: &str = "DELETE FROM otp_totp_pending WHERE created_ms < $1";

/// The creation time before which a pending enrollment is purged at `now_ms`.
pub(crate) fn pending_totp_cutoff(now_ms: i64) -> i64 {
    now_ms.saturating_sub(i64::try_from(PENDING_TOTP_MAX_AGE.as_millis()).unwrap_or(i64::MAX))
}

/// A TOTP secret and its parameters, pending or confirmed.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecretRecord {
    /// The shared secret (raw bytes). Zeroized on drop.
    pub secret: Zeroizing<Vec<u8>>,
    /// The HMAC algorithm as the otpauth URI spells it: `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// Digits per code (6 to 8).
    pub digits: u32,
    /// Time step in seconds.
    pub period: u64,
    /// Created (enrollment started, or confirmed), milliseconds since the Unix epoch.
    pub created_unix_ms: i64,
    /// Confirmed secrets: the time step of the last accepted code (the
    /// confirmation code's step at first). Always `None` for a pending one.
    pub last_step: Option<u64>,
    /// Confirmed secrets: the last sign-in with a code, milliseconds since the Unix epoch.
    pub last_used_unix_ms: Option<i64>,
}

impl std::fmt::Debug for TotpSecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpSecretRecord")
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("created_unix_ms", &self.created_unix_ms)
            .field("last_step", &self.last_step)
            .field("last_used_unix_ms", &self.last_used_unix_ms)
            .finish()
    }
}

/// One stored recovery code: its row id and its Argon2id hash (PHC string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryCodeHash {
    /// Row id, for [`OtpStore::consume_recovery_code`].
    pub id: i64,
    /// The PHC string (`$argon2id$...`).
    pub hash: String,
}

/// The attempts of one subject within the throttling window, the one just
/// counted included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptWindow {
    /// How many attempts.
    pub count: u32,
    /// The oldest of them, milliseconds since the Unix epoch.
    pub oldest_unix_ms: i64,
}

/// Storage of TOTP secrets, recovery codes and sign-in attempts. See the
/// module documentation for the guarantees.
pub trait OtpStore: Send + Sync + 'static {
    /// Store (replacing any earlier one) the user's pending TOTP enrollment.
    /// `record.last_step` is ignored.
    fn put_pending_totp(
        &self,
        user_handle: &[u8],
        record: &TotpSecretRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The user's pending TOTP enrollment.
    fn pending_totp(
        &self,
        user_handle: &[u8],
    ) -> impl Future<Output = Result<Option<TotpSecretRecord>, StoreError>> + Send;

    /// Atomically: take the pending enrollment whose secret is `secret`, make
    /// it the user's confirmed TOTP secret with `last_step = step` (replacing
    /// any earlier one), and replace the user's recovery codes with
    /// `recovery_hashes`. False (and nothing changed) when no such pending
    /// enrollment exists (it was confirmed concurrently, or replaced).
    fn confirm_totp(
        &self,
        user_handle: &[u8],
        secret: &[u8],
        step: u64,
        recovery_hashes: &[String],
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The user's confirmed TOTP secret.
    fn totp(&self, user_handle: &[u8]) -> impl Future<Output = Result<Option<TotpSecretRecord>, StoreError>> + Send;

    /// Record that a code of time step `step` was accepted, by
    /// compare-and-set: true only if the stored last step was lower (or
    /// unset). A false answer means the step (or a later one) was used
    /// already, possibly by a concurrent request: refuse the code.
    fn advance_totp_step(
        &self,
        user_handle: &[u8],
        step: u64,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Remove the user's confirmed and pending TOTP secrets; true if a
    /// confirmed one existed. Recovery codes are kept.
    fn delete_totp(&self, user_handle: &[u8]) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The user's unused recovery codes (hashes), oldest first.
    fn recovery_code_hashes(
        &self,
        user_handle: &[u8],
    ) -> impl Future<Output = Result<Vec<RecoveryCodeHash>, StoreError>> + Send;

    /// Consume recovery code `id` of the user, atomically: true for exactly
    /// one of any number of concurrent callers, false once it is gone.
    fn consume_recovery_code(
        &self,
        user_handle: &[u8],
        id: i64,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replace all of the user's recovery codes with `hashes`.
    fn replace_recovery_codes(
        &self,
        user_handle: &[u8],
        hashes: &[String],
        now: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Count an attempt of `subject` at `now` and return the attempts within
    /// `window` before it, this one included. Attempts are counted before
    /// they are checked, so concurrent attempts cannot all see a count under
    /// the limit. Attempts older than `window` (of every subject) are dropped.
    fn count_otp_attempt(
        &self,
        subject: &str,
        now: SystemTime,
        window: Duration,
    ) -> impl Future<Output = Result<AttemptWindow, StoreError>> + Send;

    /// Forget the attempts of `subject` (after a successful sign-in).
    fn clear_otp_attempts(&self, subject: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A TOTP row as both backends store it.
#[derive(sqlx::FromRow)]
pub(crate) struct TotpRow {
    pub secret: Vec<u8>,
    pub algorithm: String,
    pub digits: i64,
    pub period: i64,
    pub created_ms: i64,
    pub last_step: Option<i64>,
    pub last_used_ms: Option<i64>,
}

impl TotpRow {
    pub(crate) fn into_record(self) -> Result<TotpSecretRecord, StoreError> {
        let secret = Zeroizing::new(self.secret);
        let digits = u32::try_from(self.digits)
            .ok()
            .filter(|d| (6..=8).contains(d))
            .ok_or_else(|| StoreError::Corrupt(format!("TOTP digits {}", self.digits)))?;
        let period = u64::try_from(self.period)
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| StoreError::Corrupt(format!("TOTP period {}", self.period)))?;
        let last_step = self
            .last_step
            .map(|s| u64::try_from(s).map_err(|_| StoreError::Corrupt(format!("TOTP last step {s}"))))
            .transpose()?;
        Ok(TotpSecretRecord {
            secret,
            algorithm: self.algorithm,
            digits,
            period,
            created_unix_ms: self.created_ms,
            last_step,
            last_used_unix_ms: self.last_used_ms,
        })
    }
}

/// A time step or period as stored (BIGINT).
pub(crate) fn to_i64(what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Database(format!("{what} {v} does not fit the database")))
}

/// The window's start in stored milliseconds.
pub(crate) fn window_start_ms(now: SystemTime, window: Duration) -> i64 {
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    super::ms(now).saturating_sub(window_ms)
}

/// The TOTP columns, in [`TotpRow`] order.
pub(crate) const TOTP_COLUMNS: &str = "secret, algorithm, digits, period, created_ms, last_step, last_used_ms";

macro_rules! delegate_otp {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            super::DbStore::Sqlite($s) => $e.await,
            #[cfg(feature = "postgres")]
            super::DbStore::Postgres($s) => $e.await,
        }
    };
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl OtpStore for super::DbStore {
    async fn put_pending_totp(&self, user_handle: &[u8], record: &TotpSecretRecord) -> Result<(), StoreError> {
        delegate_otp!(self, s => s.put_pending_totp(user_handle, record))
    }
    async fn pending_totp(&self, user_handle: &[u8]) -> Result<Option<TotpSecretRecord>, StoreError> {
        delegate_otp!(self, s => s.pending_totp(user_handle))
    }
    async fn confirm_totp(
        &self,
        user_handle: &[u8],
        secret: &[u8],
        step: u64,
        recovery_hashes: &[String],
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        delegate_otp!(self, s => s.confirm_totp(user_handle, secret, step, recovery_hashes, now))
    }
    async fn totp(&self, user_handle: &[u8]) -> Result<Option<TotpSecretRecord>, StoreError> {
        delegate_otp!(self, s => s.totp(user_handle))
    }
    async fn advance_totp_step(&self, user_handle: &[u8], step: u64, now: SystemTime) -> Result<bool, StoreError> {
        delegate_otp!(self, s => s.advance_totp_step(user_handle, step, now))
    }
    async fn delete_totp(&self, user_handle: &[u8]) -> Result<bool, StoreError> {
        delegate_otp!(self, s => s.delete_totp(user_handle))
    }
    async fn recovery_code_hashes(&self, user_handle: &[u8]) -> Result<Vec<RecoveryCodeHash>, StoreError> {
        delegate_otp!(self, s => s.recovery_code_hashes(user_handle))
    }
    async fn consume_recovery_code(&self, user_handle: &[u8], id: i64, now: SystemTime) -> Result<bool, StoreError> {
        delegate_otp!(self, s => s.consume_recovery_code(user_handle, id, now))
    }
    async fn replace_recovery_codes(
        &self,
        user_handle: &[u8],
        hashes: &[String],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        delegate_otp!(self, s => s.replace_recovery_codes(user_handle, hashes, now))
    }
    async fn count_otp_attempt(
        &self,
        subject: &str,
        now: SystemTime,
        window: Duration,
    ) -> Result<AttemptWindow, StoreError> {
        delegate_otp!(self, s => s.count_otp_attempt(subject, now, window))
    }
    async fn clear_otp_attempts(&self, subject: &str) -> Result<(), StoreError> {
        delegate_otp!(self, s => s.clear_otp_attempts(subject))
    }
}
