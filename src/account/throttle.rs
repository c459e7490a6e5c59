//! Throttling of the guessable factors (passwords, TOTP codes, recovery
//! codes), per account and per client address, and the lockout of the
//! fallback factors after [`LOCKOUT_AFTER`] failures in a row (NIST SP
//! 800-63B §5.2.2).
//!
//! - **Per account**: at most [`PER_ACCOUNT`] attempts within [`WINDOW`]
//!   (the subject is the normalized username, so unknown names are counted
//!   the same way); then 429 `too_many_attempts` with `Retry-After` until
//!   the oldest attempt leaves the window. A successful sign-in clears it.
//! - **Per client address**: at most [`PER_ADDRESS`] *failed* attempts
//!   within [`WINDOW`] from one address, whichever usernames they name: one
//!   client cannot spread guesses (or Argon2 work) over many accounts,
//!   while many people signing in successfully behind one NAT are not held
//!   up. (A code without the password step, for an unknown name or an
//!   account with a password, counts as a failure here.)
//! - **In a row**: every failure adds one to the account's consecutive
//!   failures (stored, so every server instance on one PostgreSQL database
//!   sees the same count); at [`LOCKOUT_AFTER`] the password, TOTP and
//!   recovery-code sign-ins of the account refuse every attempt, right or
//!   wrong, until a sign-in with a security key clears the count.
//!
//! Attempts are counted before they are checked, so concurrent guesses
//! cannot slip past a limit.

use super::AccountError;
use crate::store::Store;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// The throttling window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Attempts per account within [`WINDOW`].
pub const PER_ACCOUNT: u32 = 5;
/// Attempts per client address within [`WINDOW`].
pub const PER_ADDRESS: u32 = 50;
/// Failures in a row after which the fallback factors lock until a key sign-in.
pub const LOCKOUT_AFTER: u32 = 100;
/// The `Retry-After` of a locked account (it stays locked until a key sign-in).
pub const LOCKED_RETRY_AFTER_S: u64 = 3600;

/// The subject of an account's attempt window.
pub(crate) fn account_subject(normalized_username: &str) -> String {
    format!("login:{normalized_username}")
}

fn address_subject(addr: IpAddr) -> String {
    // IPv6 clients are counted per /64: one host holds a whole /64.
    match addr {
        IpAddr::V4(a) => format!("addr:{a}"),
        IpAddr::V6(a) => {
            let s = a.segments();
            format!("addr6:{:x}:{:x}:{:x}:{:x}", s[0], s[1], s[2], s[3])
        }
    }
}

async fn count<S: Store>(store: &S, subject: &str, limit: u32, now: SystemTime) -> Result<(), AccountError> {
    let w = store.count_otp_attempt(subject, now, WINDOW).await?;
    if w.count > limit {
        let ends = w.oldest_unix_ms.saturating_add(i64::try_from(WINDOW.as_millis()).unwrap_or(0));
        let wait_ms = ends.saturating_sub(crate::store::ms(now));
        let retry_after_s = u64::try_from(wait_ms / 1000).unwrap_or(0).max(1);
        return Err(AccountError::TooManyAttempts { retry_after_s });
    }
    Ok(())
}

/// Refuse when the caller's address has too many failures in the window,
/// then count an attempt on `subject` (an account's, see
/// [`account_subject`], or another of the account's, such as a TOTP
/// confirmation) and refuse when it is over its limit.
pub(crate) async fn attempt<S: Store>(
    store: &S,
    subject: &str,
    addr: Option<IpAddr>,
    now: SystemTime,
) -> Result<(), AccountError> {
    if let Some(a) = addr {
        let since = now.checked_sub(WINDOW).unwrap_or(SystemTime::UNIX_EPOCH);
        if store.attempts_since(&address_subject(a), since).await? >= PER_ADDRESS {
            // The oldest failure leaves the window within it; say the window.
            return Err(AccountError::TooManyAttempts { retry_after_s: WINDOW.as_secs() });
        }
    }
    count(store, subject, PER_ACCOUNT, now).await
}

/// Count a failed attempt from `addr`.
pub(crate) async fn address_failed<S: Store>(
    store: &S,
    addr: Option<IpAddr>,
    now: SystemTime,
) -> Result<(), AccountError> {
    if let Some(a) = addr {
        store.count_otp_attempt(&address_subject(a), now, WINDOW).await?;
    }
    Ok(())
}

/// Refuse when the account's fallback factors are locked.
pub(crate) async fn check_lockout<S: Store>(store: &S, user_handle: &[u8]) -> Result<(), AccountError> {
    if store.failures(user_handle).await? >= LOCKOUT_AFTER {
        return Err(AccountError::Locked);
    }
    Ok(())
}

/// Count a failure in a row.
pub(crate) async fn failed<S: Store>(store: &S, user_handle: &[u8], now: SystemTime) -> Result<(), AccountError> {
    store.add_failure(user_handle, now).await?;
    Ok(())
}

/// [`succeeded`], only when the window holds attempts (one read otherwise).
pub(crate) async fn succeeded_if_any<S: Store>(store: &S, subject: &str, now: SystemTime) -> Result<(), AccountError> {
    let since = now.checked_sub(WINDOW).unwrap_or(SystemTime::UNIX_EPOCH);
    if store.attempts_since(subject, since).await? > 0 {
        succeeded(store, subject).await?;
    }
    Ok(())
}

/// A successful sign-in: the account's window starts over.
pub(crate) async fn succeeded<S: Store>(store: &S, subject: &str) -> Result<(), AccountError> {
    store.clear_otp_attempts(subject).await?;
    Ok(())
}
