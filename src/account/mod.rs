//! The account service (feature `account`): users, factors, sign-in flows,
//! sessions, step-up, throttling and the security audit, over the storage
//! traits ([`Store`]), with no HTTP in it. `crate::http` is a thin adapter
//! over it; another framework's adapter would be as small.
//!
//! | file | what it decides |
//! |---|---|
//! | `policy.rs` | who may do what: which sessions may remove a key, change a factor or the password ([`StepUp`]), add a key ([`KeyEnrollment`]); the user-verification floor |
//! | `flows.rs` | the sign-in flows as typed states: [`PasswordAccepted`] (second factor pending), [`NewSession`] (signed in), by a key, password + second factor, or a fallback factor alone |
//! | `password.rs` | the password rules, Argon2id on a bounded pool (`overloaded` beyond it) |
//! | `throttle.rs` | per-account and per-address limits, the lockout after 100 failures in a row |
//! | `sessions.rs` | session tokens and their rows: list, end, the method they were made by |
//! | `secrets.rs` | TOTP secrets and the session key sealed with AES-256-GCM; the key file; rotation |
//! | `username.rs` | RFC 8265 usernames |
//! | `audit.rs` | bounded audit events, retention |
//!
//! The factors an account can hold: security keys (possession, at least
//! one), a password (knowledge), an authenticator app (TOTP, possession of
//! a phone) and recovery codes. The rules (CONTRACTS §2.1):
//!
//! - A password alone never signs in; with a password set, a TOTP or
//!   recovery code alone is refused (`password_required`).
//! - A session made by a TOTP or recovery code alone may add a key and
//!   nothing else that needs a recent sign-in (`reauthentication_required`).
//! - Wrong passwords and codes are throttled per account and per client
//!   address; 100 failures in a row lock the password and fallback factors
//!   until a key sign-in.
//! - Changing or removing the password, removing a key, turning TOTP on or
//!   off and new recovery codes end every other session of the account.
//! - Unknown usernames get the answers, and cost the work, of known ones.
//!
//! Used without HTTP:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hwkey::account::{AccountConfig, AccountService, SecretKeyring};
//! use hwkey::store::DbStore;
//! use std::sync::Arc;
//!
//! let store = DbStore::connect("sqlite::memory:").await?;
//! let keys = Arc::new(SecretKeyring::ephemeral()?);
//! let accounts = AccountService::new(store, keys, AccountConfig::default());
//! // Step one of a password sign-in: never a session by itself.
//! match accounts.login_password("Alice", "correct horse battery staple", None).await {
//!     Ok(step) => {
//!         // Step two: a TOTP code (or a key, or a recovery code) completes it.
//!         let signed_in = accounts.login_totp(Some(step), None, "123456", None).await?;
//!         println!("signed in by {}", signed_in.session.method.as_str());
//!     }
//!     Err(e) => println!("refused: {}", e.code()),
//! }
//! # Ok(()) }
//! ```

pub mod audit;
pub mod factors;
pub mod flows;
pub mod password;
pub mod policy;
pub mod secrets;
pub mod sessions;
pub mod throttle;
pub mod username;

pub use factors::{OtpStatus, TotpEnrollment};
pub use flows::{KeyRegistration, KeySignIn, NewSession, PasswordAccepted, SecondFactor, VerifiedAssertion};
pub use password::{Password, PasswordHasher};
pub use policy::{Authenticated, KeyEnrollment, SignInMethod, StepUp, Strength};
pub use secrets::{SecretError, SecretKeyring};
pub use sessions::Session;

use crate::crypto::{CryptoProvider, HashAlg};
use crate::store::{NewAuditEvent, Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// The clock the service reads (tests move it).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The account service's settings.
#[derive(Clone)]
pub struct AccountConfig {
    /// How long a session lasts after sign-in.
    pub session_ttl: Duration,
    /// How recent a sign-in must be for sensitive changes (see `policy.rs`).
    pub recent_sign_in: Duration,
    /// How long after the password the second factor may come.
    pub second_factor_window: Duration,
    /// How long audit events are kept.
    pub audit_retention: Duration,
    /// How many Argon2 jobs may run at once (see `password.rs`).
    pub password_concurrency: usize,
    /// The issuer shown in authenticator apps.
    pub issuer: String,
    /// The time source.
    pub clock: Clock,
}

impl Default for AccountConfig {
    fn default() -> Self {
        AccountConfig {
            session_ttl: Duration::from_secs(12 * 3600),
            recent_sign_in: Duration::from_secs(10 * 60),
            second_factor_window: Duration::from_secs(5 * 60),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            password_concurrency: std::thread::available_parallelism().map(usize::from).unwrap_or(2),
            issuer: "hwkey".into(),
            clock: Arc::new(SystemTime::now),
        }
    }
}

impl std::fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountConfig")
            .field("session_ttl", &self.session_ttl)
            .field("recent_sign_in", &self.recent_sign_in)
            .field("second_factor_window", &self.second_factor_window)
            .field("audit_retention", &self.audit_retention)
            .field("password_concurrency", &self.password_concurrency)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The one answer to every refused fallback code.
pub const INVALID_CODE_MESSAGE: &str = "that username and code do not match (a code works only once; \
                                        for an authenticator app, wait for the next code)";

/// Why the account service refused or failed. [`AccountError::code`] is the
/// contract's snake_case code.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The request is malformed (a username with a control character, ...).
    #[error("{0}")]
    Malformed(String),
    /// No valid session.
    #[error("sign in first")]
    NotSignedIn,
    /// This needs a recent sign-in with a key or the password and a second
    /// factor (`minutes` 0: the session was made by a fallback factor alone).
    #[error("{}", reauth_message(*.minutes))]
    ReauthenticationRequired {
        /// The recent-sign-in window, in minutes (0: a fallback-only session).
        minutes: u64,
    },
    /// A wrong password, or an unknown username.
    #[error("that username and password do not match")]
    InvalidCredentials,
    /// A wrong, replayed or unknown code.
    #[error("{}", INVALID_CODE_MESSAGE)]
    InvalidCode,
    /// The code confirming an authenticator app is not the current one.
    #[error("that code is not the one your authenticator app shows now; check the app's clock and try again")]
    WrongEnrollmentCode,
    /// The account has a password: a code alone is not enough.
    #[error("sign in with your password first; then the code completes the sign-in")]
    PasswordRequired,
    /// Too many attempts: wait.
    #[error("too many attempts; try again in {} minutes", .retry_after_s.div_ceil(60))]
    TooManyAttempts {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// 100 failures in a row: the password and codes are locked until a key sign-in.
    #[error("too many failed attempts in a row: sign in with your security key to unlock the password and codes")]
    Locked,
    /// The password workers are all busy.
    #[error("the server is busy; try again in a moment")]
    Overloaded {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// A new password shorter than 8 characters.
    #[error("the password must be at least {} characters", password::MIN_PASSWORD_CHARS)]
    PasswordTooShort,
    /// A new password longer than 256 characters.
    #[error("the password must be at most {} characters", password::MAX_PASSWORD_CHARS)]
    PasswordTooLong,
    /// A new password on the list of common passwords.
    #[error("that password is one of the most common ones; choose another")]
    PasswordTooCommon,
    /// No password is set (removing one).
    #[error("no password is set")]
    NoPassword,
    /// No authenticator app set-up is pending.
    #[error("no authenticator app set-up is waiting for a code (it expired or was finished); start again")]
    NoPendingEnrollment,
    /// TOTP is on already.
    #[error("an authenticator app is already set up; turn it off first to set up another")]
    TotpAlreadyEnabled,
    /// TOTP is off.
    #[error("no authenticator app is set up")]
    TotpNotEnabled,
    /// The last key of an account cannot go.
    #[error("this is your only security key; add another before removing it")]
    LastCredential,
    /// The user has no such key.
    #[error("you have no security key with that ID")]
    UnknownCredential,
    /// The user has no such session.
    #[error("you have no session with that ID")]
    UnknownSession,
    /// The username belongs to another account.
    #[error("that username is taken")]
    UsernameTaken,
    /// A stored secret does not open.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The store failed.
    #[error("the server's storage failed; try again later")]
    Storage(StoreError),
    /// Something else failed on the server.
    #[error("internal error: {0}")]
    Internal(String),
}

fn reauth_message(minutes: u64) -> String {
    if minutes == 0 {
        "you signed in with a code alone: sign in with your security key (or your password and a second factor) to do this"
            .into()
    } else {
        format!("this needs a sign-in within the last {minutes} minutes: sign in again, then retry")
    }
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UsernameTaken => AccountError::UsernameTaken,
            other => AccountError::Storage(other),
        }
    }
}

impl From<username::UsernameError> for AccountError {
    fn from(e: username::UsernameError) -> Self {
        AccountError::Malformed(e.to_string())
    }
}

impl AccountError {
    /// The stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            AccountError::Malformed(_) => "malformed_request",
            AccountError::NotSignedIn => "not_signed_in",
            AccountError::ReauthenticationRequired { .. } => "reauthentication_required",
            AccountError::InvalidCredentials => "invalid_credentials",
            AccountError::InvalidCode | AccountError::WrongEnrollmentCode => "invalid_code",
            AccountError::PasswordRequired => "password_required",
            AccountError::TooManyAttempts { .. } | AccountError::Locked => "too_many_attempts",
            AccountError::Overloaded { .. } => "overloaded",
            AccountError::PasswordTooShort => "password_too_short",
            AccountError::PasswordTooLong => "password_too_long",
            AccountError::PasswordTooCommon => "password_too_common",
            AccountError::NoPassword => "no_password",
            AccountError::NoPendingEnrollment => "no_pending_enrollment",
            AccountError::TotpAlreadyEnabled => "totp_already_enabled",
            AccountError::TotpNotEnabled => "totp_not_enabled",
            AccountError::LastCredential => "last_credential",
            AccountError::UnknownCredential => "unknown_credential",
            AccountError::UnknownSession => "not_found",
            AccountError::UsernameTaken => "username_taken",
            AccountError::Secret(_) => "storage_corrupt",
            AccountError::Storage(e) => e.code(),
            AccountError::Internal(_) => "internal_error",
        }
    }

    /// Seconds a client should wait before retrying (`Retry-After`).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AccountError::TooManyAttempts { retry_after_s } | AccountError::Overloaded { retry_after_s } => {
                Some(*retry_after_s)
            }
            AccountError::Locked => Some(throttle::LOCKED_RETRY_AFTER_S),
            _ => None,
        }
    }
}

/// The name of the server secret that signs sessions (stored sealed).
const SESSION_SECRET_NAME: &str = crate::store::SESSION_SECRET_NAME;

struct Inner<S> {
    store: S,
    cfg: AccountConfig,
    keys: Arc<SecretKeyring>,
    hasher: PasswordHasher,
    provider: &'static dyn CryptoProvider,
    /// The session secret, opened once (after the secrets migration ran).
    secret: tokio::sync::OnceCell<Zeroizing<Vec<u8>>>,
    /// The key of the made-up credential ids (derived from the session
    /// secret once: an unknown username's `/api/login/options` costs no
    /// more than a known one's).
    made_up_key: tokio::sync::OnceCell<Zeroizing<Vec<u8>>>,
}

/// The account service. Cheap to clone (shared state).
pub struct AccountService<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for AccountService<S> {
    fn clone(&self) -> Self {
        AccountService { inner: self.inner.clone() }
    }
}

impl<S: Store> AccountService<S> {
    /// A service over `store`, sealing secrets with `keys`.
    pub fn new(store: S, keys: Arc<SecretKeyring>, cfg: AccountConfig) -> Self {
        let hasher = PasswordHasher::new(cfg.password_concurrency);
        AccountService {
            inner: Arc::new(Inner {
                store,
                cfg,
                keys,
                hasher,
                provider: crate::crypto::default_provider(),
                secret: tokio::sync::OnceCell::new(),
                made_up_key: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The settings.
    pub fn config(&self) -> &AccountConfig {
        &self.inner.cfg
    }

    /// The Argon2 pool.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    pub(crate) fn keys(&self) -> &SecretKeyring {
        &self.inner.keys
    }

    pub(crate) fn provider(&self) -> &'static dyn CryptoProvider {
        self.inner.provider
    }

    /// Now, by the configured clock.
    pub fn now(&self) -> SystemTime {
        (self.inner.cfg.clock)()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        crate::store::ms(self.now())
    }

    /// Seal secrets stored in the clear and re-seal those under an older
    /// key (see `secrets.rs`), and open the session secret. Runs once, on
    /// the first request that needs a session, or when called at start.
    pub async fn prepare(&self) -> Result<(), AccountError> {
        self.session_secret().await.map(|_| ())
    }

    pub(crate) async fn session_secret(&self) -> Result<&[u8], AccountError> {
        let s = self
            .inner
            .secret
            .get_or_try_init(|| async {
                let names = username::migrate(&self.inner.store).await?;
                if names.renamed > 0 || !names.conflicts.is_empty() {
                    tracing::warn!(
                        "usernames: {} renamed to their RFC 8265 form; {} left as they were (taken or invalid)",
                        names.renamed,
                        names.conflicts.len()
                    );
                }
                let report = secrets::migrate(&self.inner.store, &self.inner.keys).await?;
                if report.sealed_clear > 0 || report.rotated > 0 {
                    tracing::warn!(
                        "secrets at rest: sealed {} stored in the clear, re-sealed {} under key {}",
                        report.sealed_clear,
                        report.rotated,
                        self.inner.keys.current_key_id()
                    );
                }
                let name = SESSION_SECRET_NAME.as_bytes();
                let fresh = Zeroizing::new(
                    self.inner
                        .provider
                        .random_bytes(32)
                        .map_err(|_| AccountError::Internal("the random source failed".into()))?,
                );
                let candidate = self.inner.keys.seal(secrets::Purpose::ServerSecret, name, &fresh)?;
                let stored = self.inner.store.server_secret(SESSION_SECRET_NAME, &candidate).await?;
                Ok::<_, AccountError>(self.inner.keys.open(secrets::Purpose::ServerSecret, name, &stored)?)
            })
            .await?;
        Ok(s.as_slice())
    }

    /// A key derived from the session secret for `purpose` (made-up
    /// credential ids, ...).
    /// The key of the made-up credential ids (`derived_key`, kept).
    pub(crate) async fn made_up_key(&self) -> Result<&[u8], AccountError> {
        let k = self
            .inner
            .made_up_key
            .get_or_try_init(|| async { self.derived_key(b"made-up-credentials").await.map(Zeroizing::new) })
            .await?;
        Ok(k.as_slice())
    }

    pub(crate) async fn derived_key(&self, purpose: &[u8]) -> Result<Vec<u8>, AccountError> {
        let secret = self.session_secret().await?;
        Ok(self.inner.provider.hmac(HashAlg::Sha256, secret, &[b"hwkey-derived-v1:", purpose]))
    }

    /// The canonical form of a username (RFC 8265, see `username.rs`).
    pub fn normalize_username(&self, input: &str) -> Result<String, AccountError> {
        Ok(username::normalize(input)?)
    }

    /// Append `event` to the audit log, its request fields bounded for the caller.
    pub async fn audit(&self, event: NewAuditEvent, authenticated: bool) {
        if let Err(e) = self.inner.store.audit(audit::bounded(event, authenticated), self.now()).await {
            tracing::error!("audit log write failed: {e}");
        }
    }

    /// The maintenance pass: expired ceremonies, sessions and enrollments,
    /// and audit events past the retention period. How many rows went.
    pub async fn purge(&self) -> Result<u64, AccountError> {
        let now = self.now();
        let before = now.checked_sub(self.inner.cfg.audit_retention).unwrap_or(SystemTime::UNIX_EPOCH);
        let a = self.inner.store.purge_expired(now).await?;
        let b = self.inner.store.purge_account_data(before, now).await?;
        Ok(a + b)
    }

    /// The step-up proof for `auth` (see `policy.rs`).
    pub fn step_up<'a>(&self, auth: &'a Authenticated) -> Result<StepUp<'a>, AccountError> {
        policy::step_up(auth, self.now_ms(), self.inner.cfg.recent_sign_in)
    }

    /// The proof that `auth` may add a key (see `policy.rs`).
    pub fn may_add_key<'a>(&self, auth: &'a Authenticated) -> Result<KeyEnrollment<'a>, AccountError> {
        policy::may_add_key(auth, self.now_ms(), self.inner.cfg.recent_sign_in)
    }
}
