//! Relying-party storage (feature `store`): users, credentials, pending
//! ceremonies, sessions and a security audit log, behind one async trait,
//! [`Store`], with an SQLite backend ([`sqlite`], feature `sqlite`) and a
//! PostgreSQL backend ([`postgres`], feature `postgres`). [`DbStore`] picks
//! one from a URL at run time.
//!
//! Two operations carry the concurrency guarantees that several server
//! instances on one database rely on:
//!
//! - [`Store::take_ceremony`] deletes and returns a pending ceremony in one
//!   statement (`DELETE ... RETURNING`), so of any number of concurrent
//!   verifications of one challenge exactly one gets the state. (SQLite, the
//!   single-machine backend, keeps pending ceremonies in process memory and
//!   removes them under a lock instead; see the `sqlite` module. Several server
//!   instances share ceremonies only through PostgreSQL.)
//! - [`Store::record_sign_in`] advances a signature counter by
//!   compare-and-set (`... SET sign_count = $new WHERE id = $id AND
//!   sign_count < $new`): concurrent sign-ins never move a counter backwards,
//!   and a sign-in that lost the race to a higher counter is told so instead
//!   of overwriting it.
//!
//! Both backends create their tables on connect (embedded migrations).
//! Ceremony cookies are stored only as SHA-256 digests. Sessions are signed
//! tokens (see `http`): the store keeps the signing secret
//! ([`Store::session_secret`]) and the sessions signed out before they
//! expired, nothing per sign-in.

use crate::proto::webauthn::Base64Url;
use crate::server::attestation::AttestationType;
use crate::server::{CredentialRecord, unix_ms};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::SystemTime;
use zeroize::Zeroizing;

pub mod account;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod audited;
pub mod ceremony_cache;
#[cfg(feature = "sqlite")]
pub(crate) mod clear_hints;
pub mod json_estimate;
pub mod otp;
#[cfg(feature = "postgres")]
mod otp_postgres;
#[cfg(feature = "sqlite")]
mod otp_sqlite;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod session_index;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_writer;

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Another user already has this username.
    #[error("the username is already taken")]
    UsernameTaken,
    /// A credential with this ID is already registered.
    #[error("the credential is already registered")]
    DuplicateCredential,
    /// The database could not be reached or refused the statement.
    #[error("database error: {0}")]
    Database(String),
    /// A stored value cannot be decoded (the database was changed by hand or is damaged).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database URL is not one this build supports.
    #[error("unsupported database URL: {0}")]
    UnsupportedUrl(String),
    /// The SQLite file is already open in another store (another server
    /// process, most likely). The SQLite store serves from caches that only
    /// its own writes keep current, so one file has one store; several
    /// server instances belong on PostgreSQL.
    #[error("{0}")]
    InUse(String),
    /// A cap on held state is reached (pending ceremonies by count or
    /// bytes), or the database is unreachable or too slow for now: try
    /// again later (HTTP: 503 `overloaded` with `Retry-After`).
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// A value is over one of the store's caps (a name or nickname over
    /// [`MAX_NAME_CHARS`] characters).
    #[error("invalid value: {0}")]
    Invalid(String),
}

impl StoreError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::UsernameTaken => "username_taken",
            StoreError::DuplicateCredential => "credential_excluded",
            StoreError::Database(_) => "storage_error",
            StoreError::Corrupt(_) => "storage_corrupt",
            StoreError::UnsupportedUrl(_) => "unsupported_database",
            StoreError::InUse(_) => "database_in_use",
            StoreError::Overloaded(_) => "overloaded",
            StoreError::Invalid(_) => "malformed_request",
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if database_unavailable(&e) {
            return StoreError::Overloaded(format!("the database is unavailable: {e}"));
        }
        StoreError::Database(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database(format!("migration failed: {e}"))
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The WebAuthn user handle: 32 random bytes, no personal data.
    pub handle: Base64Url,
    /// The unique account name.
    pub username: String,
    /// The name shown to the user.
    pub display_name: String,
    /// Created, milliseconds since the Unix epoch.
    pub created_unix_ms: i64,
}

impl UserRecord {
    /// A new user with a fresh random 32-byte handle.
    pub fn new(
        username: impl Into<String>,
        display_name: impl Into<String>,
        now: SystemTime,
    ) -> Result<Self, StoreError> {
        let handle = crate::crypto::default_provider()
            .random_bytes(32)
            .map_err(|_| StoreError::Database("random source failed".into()))?;
        Ok(UserRecord {
            handle: Base64Url(handle),
            username: username.into(),
            display_name: display_name.into(),
            created_unix_ms: ms(now),
        })
    }
}

/// A stored credential: the WebAuthn credential record and its bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredential {
    /// The credential record the ceremonies use.
    pub record: CredentialRecord,
    /// A name the user gave the credential.
    pub nickname: String,
    /// Registered, milliseconds since the Unix epoch.
    pub created_unix_ms: i64,
    /// Last successful sign-in, milliseconds since the Unix epoch.
    pub last_used_unix_ms: Option<i64>,
}

/// A pending ceremony as stored: the caller's opaque state and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCeremony {
    /// The opaque state (JSON) the caller stored.
    pub state: String,
    /// Expires, milliseconds since the Unix epoch.
    pub expires_unix_ms: i64,
}

/// What a compare-and-set sign-count update found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignCountUpdate {
    /// The counter was advanced to the new value (or the credential keeps no counter).
    Advanced,
    /// The stored counter was already at or above the new value (a concurrent
    /// sign-in with a higher counter won); it holds `current`.
    NotAdvanced {
        /// The counter as stored.
        current: u32,
    },
    /// No such credential (it was deleted meanwhile).
    NotFound,
    /// The sign-in's sealed ceremony was used already (a replay of its
    /// cookie, or a concurrent verify of it won): nothing was written.
    CeremonyUsed,
}

/// What deleting a credential did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Deleted.
    Deleted,
    /// The user has no credential with this ID.
    NotFound,
    /// Refused: it is the user's only credential, and deleting it would lock the account.
    LastCredential,
}

/// Kinds of security events in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A credential was registered.
    Registration,
    /// A registration attempt failed (the code says why).
    RegistrationFailed,
    /// A user signed in.
    SignIn,
    /// A sign-in attempt failed (the code says why).
    SignInFailed,
    /// A signature counter did not increase: a cloned authenticator is likely.
    CounterRegression,
    /// A credential was renamed.
    CredentialRenamed,
    /// A credential was removed.
    CredentialRemoved,
    /// A user signed out.
    SignOut,
    /// A TOTP enrollment was started (secret issued, not yet confirmed).
    TotpEnrollmentStarted,
    /// TOTP was enabled (the enrollment was confirmed with a code).
    TotpEnabled,
    /// TOTP was disabled.
    TotpDisabled,
    /// A new set of recovery codes was issued (replacing the old one).
    RecoveryCodesGenerated,
    /// A recovery code was used to sign in.
    RecoveryCodeUsed,
    /// The password was set, changed or removed.
    PasswordChanged,
}

impl AuditKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Registration => "registration",
            AuditKind::RegistrationFailed => "registration_failed",
            AuditKind::SignIn => "sign_in",
            AuditKind::SignInFailed => "sign_in_failed",
            AuditKind::CounterRegression => "counter_regression",
            AuditKind::CredentialRenamed => "credential_renamed",
            AuditKind::CredentialRemoved => "credential_removed",
            AuditKind::SignOut => "sign_out",
            AuditKind::TotpEnrollmentStarted => "totp_enrollment_started",
            AuditKind::TotpEnabled => "totp_enabled",
            AuditKind::TotpDisabled => "totp_disabled",
            AuditKind::RecoveryCodesGenerated => "recovery_codes_generated",
            AuditKind::RecoveryCodeUsed => "recovery_code_used",
            AuditKind::PasswordChanged => "password_changed",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "registration" => AuditKind::Registration,
            "registration_failed" => AuditKind::RegistrationFailed,
            "sign_in" => AuditKind::SignIn,
            "sign_in_failed" => AuditKind::SignInFailed,
            "counter_regression" => AuditKind::CounterRegression,
            "credential_renamed" => AuditKind::CredentialRenamed,
            "credential_removed" => AuditKind::CredentialRemoved,
            "sign_out" => AuditKind::SignOut,
            "totp_enrollment_started" => AuditKind::TotpEnrollmentStarted,
            "totp_enabled" => AuditKind::TotpEnabled,
            "totp_disabled" => AuditKind::TotpDisabled,
            "recovery_codes_generated" => AuditKind::RecoveryCodesGenerated,
            "recovery_code_used" => AuditKind::RecoveryCodeUsed,
            "password_changed" => AuditKind::PasswordChanged,
            _ => return None,
        })
    }
}

/// An event to append to the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// What happened.
    pub kind: AuditKind,
    /// The account, when known.
    pub username: Option<String>,
    /// The user handle, when known.
    pub user_handle: Option<Vec<u8>>,
    /// The credential, when known.
    pub credential_id: Option<Vec<u8>>,
    /// The error code of a failure.
    pub code: Option<String>,
    /// Free text (error message, counter values).
    pub detail: String,
}

impl NewAuditEvent {
    /// An event of `kind` with nothing else filled in.
    pub fn new(kind: AuditKind) -> Self {
        NewAuditEvent {
            kind,
            username: None,
            user_handle: None,
            credential_id: None,
            code: None,
            detail: String::new(),
        }
    }

    /// With the account.
    pub fn user(mut self, username: &str, handle: &[u8]) -> Self {
        self.username = Some(username.to_owned());
        self.user_handle = Some(handle.to_vec());
        self
    }

    /// With the account name only.
    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.to_owned());
        self
    }

    /// With the credential.
    pub fn credential(mut self, credential_id: &[u8]) -> Self {
        self.credential_id = Some(credential_id.to_vec());
        self
    }

    /// With an error code.
    pub fn code(mut self, code: &str) -> Self {
        self.code = Some(code.to_owned());
        self
    }

    /// With free text.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// An event read back from the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Sequence number (increasing).
    pub id: i64,
    /// When, milliseconds since the Unix epoch.
    pub at_unix_ms: i64,
    /// What happened (an [`AuditKind`] name).
    pub kind: String,
    /// The account, when known.
    pub username: Option<String>,
    /// The user handle, when known.
    pub user_handle: Option<Base64Url>,
    /// The credential, when known.
    pub credential_id: Option<Base64Url>,
    /// The error code of a failure.
    pub code: Option<String>,
    /// Free text.
    pub detail: String,
}

/// A filter over the audit log; every field set narrows the result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    /// Only events of this account.
    pub username: Option<String>,
    /// Only events of this kind.
    pub kind: Option<AuditKind>,
    /// Only events at or after this time (ms since the Unix epoch).
    pub since_unix_ms: Option<i64>,
    /// At most this many, newest first (0: 100).
    pub limit: u32,
}

impl AuditQuery {
    pub(crate) fn effective_limit(&self) -> i64 {
        if self.limit == 0 { 100 } else { i64::from(self.limit.min(10_000)) }
    }

    /// The SELECT for this query, with only the filters that are set (so
    /// that both databases can use an index: `audit_by_username` (username,
    /// at_ms) with a username, `audit_by_time` (at_ms) without), newest
    /// first in the order of those indexes, so that the database reads only
    /// the rows it returns. Parameters, numbered in this order: username,
    /// kind, since, limit; bind them with [`AuditQuery::bind`].
    pub(crate) fn select_sql(&self) -> String {
        let mut sql =
            String::from("SELECT id, at_ms, event, username, user_handle, credential_id, code, detail FROM audit_log");
        let mut n = 0;
        let filters = [
            (self.username.is_some(), "username = "),
            (self.kind.is_some(), "event = "),
            (self.since_unix_ms.is_some(), "at_ms >= "),
        ];
        for (set, filter) in filters {
            if set {
                n += 1;
                sql.push_str(if n == 1 { " WHERE " } else { " AND " });
                sql.push_str(&format!("{filter}${n}"));
            }
        }
        sql.push_str(&format!(" ORDER BY at_ms DESC, id DESC LIMIT ${}", n + 1));
        sql
    }

    /// Bind this query's parameters to `sql` from [`AuditQuery::select_sql`]
    /// (rows of `O`: [`AuditRow`], or the rows of a plan of that query).
    pub(crate) fn bind<'q, DB, O>(
        &'q self,
        sql: &'q str,
    ) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>
    where
        DB: sqlx::Database,
        O: for<'r> sqlx::FromRow<'r, DB::Row>,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        let mut q = sqlx::query_as(sql);
        if let Some(u) = &self.username {
            q = q.bind(u.as_str());
        }
        if let Some(k) = self.kind {
            q = q.bind(k.as_str());
        }
        if let Some(t) = self.since_unix_ms {
            q = q.bind(t);
        }
        q.bind(self.effective_limit())
    }
}

/// Storage for the relying party. Implementations must be safe to share
/// between tasks and between server instances on one database.
pub trait Store: otp::OtpStore + account::AccountStore + Send + Sync + 'static {
    /// Store a newly registered credential, creating `new_user` first when
    /// given (atomically: both or neither). Fails with
    /// [`StoreError::UsernameTaken`] or [`StoreError::DuplicateCredential`].
    fn add_credential(
        &self,
        new_user: Option<&UserRecord>,
        credential: &CredentialRecord,
        nickname: &str,
        now: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The user with this username.
    fn user_by_username(&self, username: &str) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;

    /// The user with this handle.
    fn user_by_handle(&self, handle: &[u8]) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;

    /// A user's credentials, oldest first.
    fn credentials_of_user(
        &self,
        handle: &[u8],
    ) -> impl Future<Output = Result<Vec<StoredCredential>, StoreError>> + Send;

    /// A user and their credentials by username, in one round trip where the
    /// backend can (the sign-in hot path). `None` when there is no such user.
    fn user_with_credentials(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<(UserRecord, Vec<StoredCredential>)>, StoreError>> + Send {
        async move {
            let Some(user) = self.user_by_username(username).await? else { return Ok(None) };
            let creds = self.credentials_of_user(&user.handle).await?;
            Ok(Some((user, creds)))
        }
    }

    /// A credential and its user.
    fn credential(
        &self,
        credential_id: &[u8],
    ) -> impl Future<Output = Result<Option<(StoredCredential, UserRecord)>, StoreError>> + Send;

    /// After a successful assertion: advance the counter to `new_sign_count`
    /// by compare-and-set, and store the backup state and the time of use.
    fn record_sign_in(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
    ) -> impl Future<Output = Result<SignCountUpdate, StoreError>> + Send;

    /// [`Store::record_sign_in`], and, when the outcome is
    /// [`SignCountUpdate::Advanced`], `event` appended to the audit log in
    /// the same transaction: a recorded sign-in always has its audit event,
    /// and the sign-in path pays for one commit instead of two. Any other
    /// outcome writes no event (the caller decides what to log). The default
    /// does the two one after the other; the built-in stores do them at once.
    fn record_sign_in_with_event(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
        event: NewAuditEvent,
    ) -> impl Future<Output = Result<SignCountUpdate, StoreError>> + Send {
        async move {
            let r = self.record_sign_in(credential_id, new_sign_count, backed_up, now).await?;
            if r == SignCountUpdate::Advanced {
                self.audit(event, now).await?;
            }
            Ok(r)
        }
    }

    /// Rename one of the user's credentials; false when the user has no such credential.
    fn rename_credential(
        &self,
        user_handle: &[u8],
        credential_id: &[u8],
        nickname: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Delete one of the user's credentials, unless it is the last one.
    fn delete_credential(
        &self,
        user_handle: &[u8],
        credential_id: &[u8],
    ) -> impl Future<Output = Result<DeleteOutcome, StoreError>> + Send;

    /// Store a pending ceremony under `id` (a digest of the ceremony cookie).
    fn put_ceremony(
        &self,
        id: &[u8],
        state: &str,
        expires: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Remove and return the pending ceremony `id`, atomically (one
    /// statement, or one locked map removal for SQLite's in-memory
    /// ceremonies): of concurrent callers, at most one gets it. Expired ceremonies are
    /// returned too (the caller reports them as expired).
    fn take_ceremony(&self, id: &[u8]) -> impl Future<Output = Result<Option<PendingCeremony>, StoreError>> + Send;

    /// Record that the sealed ceremony `id` (its state held by the client,
    /// see `crate::http::sealed_ceremony`) is used, keeping the id until
    /// `expires`: true the first time, false for every later call with the
    /// same id, from any process on the database. A key sign-in records its
    /// ceremony in its own write instead
    /// ([`AccountStore::record_key_sign_in`](account::AccountStore::record_key_sign_in)).
    fn consume_ceremony(&self, id: &[u8], expires: SystemTime)
    -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The secret that signs session tokens: 32 random bytes made the first
    /// time it is asked for and kept in the database, so that every server
    /// process on one database accepts the others' sessions, and sessions
    /// survive a restart. Racing first calls agree on one secret.
    fn session_secret(&self) -> impl Future<Output = Result<Zeroizing<Vec<u8>>, StoreError>> + Send;

    /// Sign a session out before it expires: `id` identifies the token,
    /// kept until `expires` (after which the token is refused anyway).
    fn revoke_session(&self, id: &[u8], expires: SystemTime) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether the session `id` was signed out.
    fn session_revoked(&self, id: &[u8]) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Append to the audit log.
    fn audit(&self, event: NewAuditEvent, now: SystemTime) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Read the audit log, newest first.
    fn audit_events(&self, query: &AuditQuery) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;

    /// Delete expired ceremonies (pending and used), sign-outs of expired sessions and TOTP
    /// enrollments left unconfirmed for [`otp::PENDING_TOTP_MAX_AGE`];
    /// returns how many rows went.
    fn purge_expired(&self, now: SystemTime) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// True when this store keeps pending ceremonies in this process's
    /// memory (SQLite): then a caller may keep them itself, typed, with the
    /// same guarantees, and skip encoding them for the store.
    fn ceremonies_in_process(&self) -> bool {
        false
    }
}

/// The `server_secrets` row that holds the session-signing secret.
pub(crate) const SESSION_SECRET_NAME: &str = "session-mac-v1";

/// SQL shared by both backends (`$N` placeholders work in both): the
/// session secret (racing first callers: one insert wins, all read it) and
/// session revocations.
pub(crate) mod session_sql {
    pub const INSERT_SECRET: &str =
        "INSERT INTO server_secrets (name, secret, created_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";
    pub const SELECT_SECRET: &str = "SELECT secret FROM server_secrets WHERE name = $1";
    pub const REVOKE: &str =
        "INSERT INTO revoked_sessions (id, expires_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";
    pub const IS_REVOKED: &str = "SELECT 1 FROM revoked_sessions WHERE id = $1";
    pub const PURGE: &str = "DELETE FROM revoked_sessions WHERE expires_ms < $1";
    /// A sealed ceremony used (see `Store::consume_ceremony`): one row when it was new.
    pub const CONSUME_CEREMONY: &str =
        "INSERT INTO used_ceremonies (id, expires_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";
    /// Used ceremonies past their expiry.
    pub const PURGE_USED_CEREMONIES: &str = "DELETE FROM used_ceremonies WHERE expires_ms < $1";
}

/// How long a ceremony is kept after it expired, so a late verify is told
/// "expired" rather than "nothing pending".
pub(crate) const CEREMONY_GRACE_MS: i64 = 3_600_000;

/// Milliseconds since the Unix epoch as stored (i64).
pub(crate) fn ms(t: SystemTime) -> i64 {
    i64::try_from(unix_ms(t)).unwrap_or(i64::MAX)
}

/// A credential row as both backends store it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CredentialRow {
    pub id: Vec<u8>,
    pub user_handle: Vec<u8>,
    pub public_key: Vec<u8>,
    pub algorithm: i64,
    pub sign_count: i64,
    pub uv_initialized: bool,
    pub transports: String,
    pub backup_eligible: bool,
    pub backed_up: bool,
    pub aaguid: String,
    pub attestation_format: String,
    pub attestation_type: String,
    pub attestation_trusted: bool,
    pub discoverable: Option<bool>,
    pub nickname: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

/// The credential columns, in [`CredentialRow`] order, for SELECT lists.
pub(crate) const CREDENTIAL_COLUMNS: &str = "c.id, c.user_handle, c.public_key, c.algorithm, c.sign_count, \
     c.uv_initialized, c.transports, c.backup_eligible, c.backed_up, c.aaguid, c.attestation_format, \
     c.attestation_type, c.attestation_trusted, c.discoverable, c.nickname, c.created_ms, c.last_used_ms";

/// A user row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    pub handle: Vec<u8>,
    pub username: String,
    pub display_name: String,
    pub created_ms: i64,
}

impl From<UserRow> for UserRecord {
    fn from(r: UserRow) -> Self {
        UserRecord {
            handle: Base64Url(r.handle),
            username: r.username,
            display_name: r.display_name,
            created_unix_ms: r.created_ms,
        }
    }
}

/// A credential row joined with its user's row (columns prefixed `u_`).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CredentialUserRow {
    #[sqlx(flatten)]
    pub cred: CredentialRow,
    pub u_username: String,
    pub u_display_name: String,
    pub u_created_ms: i64,
}

impl CredentialUserRow {
    pub(crate) fn into_pair(self) -> Result<(StoredCredential, UserRecord), StoreError> {
        let user = UserRecord {
            handle: Base64Url(self.cred.user_handle.clone()),
            username: self.u_username,
            display_name: self.u_display_name,
            created_unix_ms: self.u_created_ms,
        };
        Ok((self.cred.into_stored()?, user))
    }
}

/// Group joined (credential, user) rows of one user.
pub(crate) fn group_user_credentials(
    rows: Vec<CredentialUserRow>,
) -> Result<Option<(UserRecord, Vec<StoredCredential>)>, StoreError> {
    let mut user = None;
    let mut creds = Vec::with_capacity(rows.len());
    for row in rows {
        let (c, u) = row.into_pair()?;
        user.get_or_insert(u);
        creds.push(c);
    }
    Ok(user.map(|u| (u, creds)))
}

/// The SELECT of credentials joined with their users.
pub(crate) const CREDENTIAL_USER_SELECT: &str = "u.username AS u_username, u.display_name AS u_display_name, \
     u.created_ms AS u_created_ms FROM credentials c JOIN users u ON u.handle = c.user_handle";

/// An audit row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub event: String,
    pub username: Option<String>,
    pub user_handle: Option<Vec<u8>>,
    pub credential_id: Option<Vec<u8>>,
    pub code: Option<String>,
    pub detail: String,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent {
            id: r.id,
            at_unix_ms: r.at_ms,
            kind: r.event,
            username: r.username,
            user_handle: r.user_handle.map(Base64Url),
            credential_id: r.credential_id.map(Base64Url),
            code: r.code,
            detail: r.detail,
        }
    }
}

pub(crate) fn attestation_type_from_str(s: &str) -> Option<AttestationType> {
    Some(match s {
        "none" => AttestationType::None,
        "self" => AttestationType::SelfAttestation,
        "basic" => AttestationType::Basic,
        "att_ca" => AttestationType::AttCa,
        "anon_ca" => AttestationType::AnonCa,
        _ => return None,
    })
}

impl CredentialRow {
    pub(crate) fn into_stored(self) -> Result<StoredCredential, StoreError> {
        let sign_count = u32::try_from(self.sign_count)
            .map_err(|_| StoreError::Corrupt(format!("sign_count {} out of range", self.sign_count)))?;
        let transports: Vec<String> =
            serde_json::from_str(&self.transports).map_err(|e| StoreError::Corrupt(format!("transports: {e}")))?;
        // Rows written before the cap: reduced on the way out.
        let transports = crate::proto::webauthn::known_transports(&transports);
        let attestation_type = attestation_type_from_str(&self.attestation_type)
            .ok_or_else(|| StoreError::Corrupt(format!("attestation type {:?}", self.attestation_type)))?;
        Ok(StoredCredential {
            record: CredentialRecord {
                credential_id: Base64Url(self.id),
                user_id: Base64Url(self.user_handle),
                public_key: Base64Url(self.public_key),
                algorithm: crate::proto::cose::CoseAlgorithm(self.algorithm),
                sign_count,
                uv_initialized: self.uv_initialized,
                transports,
                backup_eligible: self.backup_eligible,
                backed_up: self.backed_up,
                aaguid: self.aaguid,
                attestation_format: self.attestation_format,
                attestation_type,
                attestation_trusted: self.attestation_trusted,
                discoverable: self.discoverable,
            },
            nickname: self.nickname,
            created_unix_ms: self.created_ms,
            last_used_unix_ms: self.last_used_ms,
        })
    }
}

/// Whether `e` says the database is away or too slow for now (connection
/// refused or lost, pool exhausted, statement timeout, server shutting
/// down), as opposed to a statement it refused: a passing condition, which
/// the HTTP layer answers with 503 `overloaded` and `Retry-After`.
fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            // PostgreSQL SQLSTATE: class 08 connection exception; 57014
            // query_canceled (statement_timeout); 57P01..57P03 shutdown,
            // crash shutdown, cannot connect now; 53300 too many connections.
            c.starts_with("08") || matches!(c.as_ref(), "57014" | "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Transports as stored (a JSON array): the known values only, at most
/// [`MAX_TRANSPORTS`](crate::proto::webauthn::MAX_TRANSPORTS).
pub(crate) fn transports_json(t: &[String]) -> String {
    serde_json::to_string(&crate::proto::webauthn::known_transports(t)).unwrap_or_else(|_| "[]".into())
}

/// Longest username, display name or nickname the store keeps, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The store's cap on names: [`MAX_NAME_CHARS`] characters.
pub(crate) fn check_name(what: &str, s: &str) -> Result<(), StoreError> {
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(StoreError::Invalid(format!("{what} is longer than {MAX_NAME_CHARS} characters")));
    }
    Ok(())
}

/// The caps of [`Store::add_credential`]'s names.
pub(crate) fn check_new_credential(new_user: Option<&UserRecord>, nickname: &str) -> Result<(), StoreError> {
    if let Some(u) = new_user {
        check_name("the username", &u.username)?;
        check_name("the display name", &u.display_name)?;
    }
    check_name("the nickname", nickname)
}

/// A store chosen at run time from a database URL.
#[derive(Debug, Clone)]
pub enum DbStore {
    /// SQLite (`sqlite://FILE`, `sqlite::memory:`).
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL (`postgres://...`).
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgStore),
}

impl DbStore {
    /// Connect to `url` and run the migrations: `sqlite://FILE` (created if
    /// missing), `sqlite::memory:`, or `postgres://...` / `postgresql://...`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        #[cfg(feature = "sqlite")]
        if url.starts_with("sqlite:") {
            return Ok(DbStore::Sqlite(sqlite::SqliteStore::connect(url).await?));
        }
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbStore::Postgres(postgres::PgStore::connect(url).await?));
        }
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }

    /// The same store with other caps on the pending ceremonies it keeps
    /// in the database (PostgreSQL). SQLite's ceremonies are held by the
    /// HTTP layer in process, capped by `HttpOptions::ceremony_limits`.
    pub fn with_ceremony_limits(self, limits: ceremony_cache::CeremonyLimits) -> Self {
        match self {
            #[cfg(feature = "postgres")]
            DbStore::Postgres(s) => DbStore::Postgres(s.with_ceremony_limits(limits)),
            #[allow(unreachable_patterns)]
            other => {
                let _ = limits;
                other
            }
        }
    }

    /// Close the connections (waits for queries in flight).
    pub async fn close(&self) {
        match self {
            #[cfg(feature = "sqlite")]
            DbStore::Sqlite(s) => s.close().await,
            #[cfg(feature = "postgres")]
            DbStore::Postgres(s) => s.close().await,
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

/// The URL without a password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            DbStore::Sqlite($s) => $e.await,
            #[cfg(feature = "postgres")]
            DbStore::Postgres($s) => $e.await,
        }
    };
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl Store for DbStore {
    async fn add_credential(
        &self,
        new_user: Option<&UserRecord>,
        credential: &CredentialRecord,
        nickname: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.add_credential(new_user, credential, nickname, now))
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        delegate!(self, s => s.user_by_username(username))
    }
    async fn user_by_handle(&self, handle: &[u8]) -> Result<Option<UserRecord>, StoreError> {
        delegate!(self, s => s.user_by_handle(handle))
    }
    async fn credentials_of_user(&self, handle: &[u8]) -> Result<Vec<StoredCredential>, StoreError> {
        delegate!(self, s => s.credentials_of_user(handle))
    }
    async fn credential(&self, credential_id: &[u8]) -> Result<Option<(StoredCredential, UserRecord)>, StoreError> {
        delegate!(self, s => s.credential(credential_id))
    }
    async fn user_with_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(UserRecord, Vec<StoredCredential>)>, StoreError> {
        delegate!(self, s => s.user_with_credentials(username))
    }
    async fn record_sign_in(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
    ) -> Result<SignCountUpdate, StoreError> {
        delegate!(self, s => s.record_sign_in(credential_id, new_sign_count, backed_up, now))
    }
    async fn record_sign_in_with_event(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
        event: NewAuditEvent,
    ) -> Result<SignCountUpdate, StoreError> {
        delegate!(self, s => s.record_sign_in_with_event(credential_id, new_sign_count, backed_up, now, event))
    }
    async fn rename_credential(
        &self,
        user_handle: &[u8],
        credential_id: &[u8],
        nickname: &str,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.rename_credential(user_handle, credential_id, nickname))
    }
    async fn delete_credential(&self, user_handle: &[u8], credential_id: &[u8]) -> Result<DeleteOutcome, StoreError> {
        delegate!(self, s => s.delete_credential(user_handle, credential_id))
    }
    async fn put_ceremony(&self, id: &[u8], state: &str, expires: SystemTime) -> Result<(), StoreError> {
        delegate!(self, s => s.put_ceremony(id, state, expires))
    }
    async fn take_ceremony(&self, id: &[u8]) -> Result<Option<PendingCeremony>, StoreError> {
        delegate!(self, s => s.take_ceremony(id))
    }
    async fn consume_ceremony(&self, id: &[u8], expires: SystemTime) -> Result<bool, StoreError> {
        delegate!(self, s => s.consume_ceremony(id, expires))
    }
    async fn session_secret(&self) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        delegate!(self, s => s.session_secret())
    }
    async fn revoke_session(&self, id: &[u8], expires: SystemTime) -> Result<(), StoreError> {
        delegate!(self, s => s.revoke_session(id, expires))
    }
    async fn session_revoked(&self, id: &[u8]) -> Result<bool, StoreError> {
        delegate!(self, s => s.session_revoked(id))
    }
    async fn audit(&self, event: NewAuditEvent, now: SystemTime) -> Result<(), StoreError> {
        delegate!(self, s => s.audit(event, now))
    }
    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        delegate!(self, s => s.audit_events(query))
    }
    async fn purge_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        delegate!(self, s => s.purge_expired(now))
    }
    fn ceremonies_in_process(&self) -> bool {
        match self {
            #[cfg(feature = "sqlite")]
            DbStore::Sqlite(s) => s.ceremonies_in_process(),
            #[cfg(feature = "postgres")]
            DbStore::Postgres(s) => s.ceremonies_in_process(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn audit_kinds_round_trip() {
        for k in [
            AuditKind::Registration,
            AuditKind::RegistrationFailed,
            AuditKind::SignIn,
            AuditKind::SignInFailed,
            AuditKind::CounterRegression,
            AuditKind::CredentialRenamed,
            AuditKind::CredentialRemoved,
            AuditKind::SignOut,
            AuditKind::TotpEnrollmentStarted,
            AuditKind::TotpEnabled,
            AuditKind::TotpDisabled,
            AuditKind::RecoveryCodesGenerated,
            AuditKind::RecoveryCodeUsed,
            AuditKind::PasswordChanged,
        ] {
            assert_eq!(AuditKind::parse(k.as_str()), Some(k));
        }
    }
}
