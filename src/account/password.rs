//! Passwords, the knowledge factor (CONTRACTS §2.1): the rules a new
//! password must meet, and Argon2id hashing and verification on a bounded
//! pool.
//!
//! - **Rules** (NIST SP 800-63B §5.1.1.2): 8 to 256 characters after NFC
//!   normalization; not on the bundled list of the 10,000 most common
//!   passwords of 8 characters or more (`common_passwords.txt`, taken from
//!   the "10 million password list, top 1M" of SecLists, lowercased;
//!   compared lowercased); no other composition rules.
//! - **Hashing**: Argon2id, OWASP parameters (19 MiB of memory, two passes,
//!   one lane), a fresh 16-byte salt, stored as a PHC string.
//! - **Bounded work**: every hash or verification runs on tokio's blocking
//!   threads, never on the async executor, and at most
//!   [`PasswordHasher::capacity`] of them run at once. One over the cap is
//!   refused at once with `overloaded` (503, `Retry-After`), not queued: a
//!   flood of sign-ins cannot pile up memory (19 MiB each) or latency.
//! - **Constant work for unknown users**: [`PasswordHasher::verify`] with no
//!   stored hash verifies against a dummy hash of the same parameters, so an
//!   unknown username costs what a wrong password does.

use super::AccountError;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

/// Shortest password, in characters (after NFC).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password, in characters (after NFC).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Argon2id memory, KiB (OWASP Password Storage Cheat Sheet).
const M_COST_KIB: u32 = 19 * 1024;
/// Argon2id passes.
const T_COST: u32 = 2;
/// Argon2id lanes.
const P_COST: u32 = 1;

const COMMON: &str = include_str!("common_passwords.txt");

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
}

fn argon2() -> Result<Argon2<'static>, AccountError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| AccountError::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A password as the rules see it: NFC-normalized, zeroized on drop.
pub struct Password(Zeroizing<String>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

impl Password {
    /// The NFC form of `input` (no rules checked: what a sign-in compares).
    pub fn new(input: &str) -> Self {
        // Bound the work: anything longer is refused by the rules anyway,
        // and a sign-in with it simply fails.
        let bounded: String = input.chars().take(MAX_PASSWORD_CHARS * 4 + 1).collect();
        let bounded = Zeroizing::new(bounded);
        Password(Zeroizing::new(bounded.nfc().collect()))
    }

    /// Check the rules for a new password.
    pub fn check_new(&self) -> Result<(), AccountError> {
        let n = self.0.chars().count();
        if n < MIN_PASSWORD_CHARS {
            return Err(AccountError::PasswordTooShort);
        }
        if n > MAX_PASSWORD_CHARS {
            return Err(AccountError::PasswordTooLong);
        }
        let lower = Zeroizing::new(self.0.to_lowercase());
        if common().contains(lower.as_str()) {
            return Err(AccountError::PasswordTooCommon);
        }
        Ok(())
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Hashing and verification of passwords (and other Argon2 work, such as
/// recovery codes) on a bounded pool. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<tokio::sync::Semaphore>,
    capacity: usize,
    done: Arc<AtomicU64>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A pool running at most `capacity` (at least 1) Argon2 jobs at once.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        PasswordHasher {
            permits: Arc::new(tokio::sync::Semaphore::new(capacity)),
            capacity,
            done: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many jobs may run at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many Argon2 jobs ran (hashes and verifications, dummy ones included).
    pub fn jobs_done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// A slot for one job, if one is free; `overloaded` otherwise. A flow
    /// takes it before it counts an attempt, so a refused request (503)
    /// costs the caller no attempt.
    pub fn reserve(&self) -> Result<Slot, AccountError> {
        let permit =
            self.permits.clone().try_acquire_owned().map_err(|_| AccountError::Overloaded { retry_after_s: 1 })?;
        Ok(Slot(permit))
    }

    /// Run `job` on a blocking thread if a slot is free; `overloaded` otherwise.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, AccountError> {
        let slot = self.reserve()?;
        self.run_in(slot, job).await
    }

    /// Run `job` on a blocking thread in a reserved slot.
    pub async fn run_in<T: Send + 'static>(
        &self,
        slot: Slot,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        let permit = slot.0;
        let done = self.done.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            done.fetch_add(1, Ordering::Relaxed);
            job()
        })
        .await
        .map_err(|e| AccountError::Internal(format!("password worker: {e}")))
    }

    /// The PHC string of `password` (rules already checked).
    pub async fn hash(&self, password: Password) -> Result<String, AccountError> {
        self.run(move || {
            let mut salt = [0u8; 16];
            crate::crypto::default_provider()
                .fill_random(&mut salt)
                .map_err(|_| AccountError::Internal("the random source failed".into()))?;
            let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Internal(format!("salt: {e}")))?;
            argon2()?
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| AccountError::Internal(format!("argon2: {e}")))
        })
        .await?
    }

    /// Whether `password` matches `stored` (a PHC string); with no stored
    /// hash, the same work against a dummy hash, and false.
    pub async fn verify(&self, stored: Option<String>, password: Password) -> Result<bool, AccountError> {
        let slot = self.reserve()?;
        self.verify_in(slot, stored, password).await
    }

    /// [`PasswordHasher::verify`] in a reserved slot.
    pub async fn verify_in(
        &self,
        slot: Slot,
        stored: Option<String>,
        password: Password,
    ) -> Result<bool, AccountError> {
        self.run_in(slot, move || {
            let (phc, real) = match &stored {
                Some(s) => (s.as_str(), true),
                None => (dummy_hash(), false),
            };
            let Ok(parsed) = PasswordHash::new(phc) else { return false };
            let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
            ok && real
        })
        .await
    }
}

/// A reserved place on the pool ([`PasswordHasher::reserve`]); freed when dropped.
#[derive(Debug)]
pub struct Slot(tokio::sync::OwnedSemaphorePermit);

/// A hash of a random password nobody knows, with the same parameters.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut pw = Zeroizing::new([0u8; 24]);
        let _ = crate::crypto::default_provider().fill_random(&mut pw[..]);
        let salt = SaltString::encode_b64(&[7u8; 16]).ok();
        match (argon2(), salt) {
            (Ok(a), Some(salt)) => a.hash_password(&pw[..], &salt).map(|h| h.to_string()).unwrap_or_default(),
            _ => String::new(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules() {
        assert!(matches!(Password::new("short").check_new(), Err(AccountError::PasswordTooShort)));
        assert!(matches!(Password::new(&"a".repeat(257)).check_new(), Err(AccountError::PasswordTooLong)));
        assert!(matches!(Password::new("Password").check_new(), Err(AccountError::PasswordTooCommon)));
        assert!(matches!(Password::new("qwertyuiop").check_new(), Err(AccountError::PasswordTooCommon)));
        assert!(Password::new("correct horse battery staple").check_new().is_ok());
        // Eight characters, not eight bytes; NFC first.
        assert!(Password::new("ééééééé").check_new().is_err());
        assert!(Password::new("e\u{301}e\u{301}e\u{301}e\u{301}xyzw").check_new().is_ok());
        assert_eq!(common().len(), 10_000);
    }

    #[tokio::test]
    async fn hash_verify_and_dummy() {
        let h = PasswordHasher::new(2);
        let phc = h.hash(Password::new("correct horse battery staple")).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify(Some(phc.clone()), Password::new("correct horse battery staple")).await.expect("v"));
        assert!(!h.verify(Some(phc), Password::new("correct horse battery stapler")).await.expect("v"));
        assert!(!h.verify(None, Password::new("anything at all")).await.expect("v"));
        assert_eq!(h.jobs_done(), 4);
    }

    #[tokio::test]
    async fn over_the_cap_is_refused_not_queued() {
        let h = PasswordHasher::new(1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h2 = h.clone();
        let busy = tokio::spawn(async move { h2.run(move || rx.recv().ok()).await });
        // Wait until the first job holds the slot.
        while h.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = h.verify(None, Password::new("x")).await;
        assert!(matches!(refused, Err(AccountError::Overloaded { retry_after_s: 1 })));
        tx.send(()).expect("release");
        assert!(busy.await.expect("join").is_ok());
    }
}
