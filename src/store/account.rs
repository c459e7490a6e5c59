//! Storage of the account service ([`crate::account`]): passwords (Argon2id
//! PHC strings), session rows, consecutive failed sign-ins, and the raw
//! rows that hold encrypted secrets (for their migration and key rotation):
//! the [`AccountStore`] trait, a supertrait of [`Store`](super::Store).
//!
//! The store never sees a secret in the clear: TOTP secrets and the
//! session-signing secret reach it sealed by the account service
//! (`account::secrets`), and it keeps them as opaque bytes.
//!
//! - A session row is keyed by the session token's MAC (the token itself is
//!   never stored). A sign-in with a key writes its row in the same
//!   statement (PostgreSQL: one data-modifying `WITH`) or transaction
//!   (SQLite: the writer thread's group commit) as the counter update and
//!   the audit event ([`AccountStore::record_key_sign_in`]). Ending a
//!   session deletes its row; a token without a row is no session.
//! - A sign-in with a TOTP or recovery code spends the time step or uses
//!   up the code in one transaction with its session row, its audit events
//!   and what it clears ([`AccountStore::record_totp_sign_in`],
//!   [`AccountStore::record_recovery_sign_in`]).
//! - Consecutive failures move by single-statement upserts, so concurrent
//!   failures on several instances all count.

use super::{NewAuditEvent, SignCountUpdate, StoreError};
use std::future::Future;
use std::time::SystemTime;

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The session token's MAC (32 bytes): its identity.
    pub id: Vec<u8>,
    /// The signed-in user.
    pub user_handle: Vec<u8>,
    /// How the session was made (`account::SignInMethod::as_str`).
    pub method: String,
    /// Signed in, ms since the Unix epoch.
    pub created_unix_ms: i64,
    /// Last request seen (updated at most once a minute), ms since the Unix epoch.
    pub last_seen_unix_ms: i64,
    /// Expires, ms since the Unix epoch.
    pub expires_unix_ms: i64,
}

/// Which table a sealed secret lives in, for migration and rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretTable {
    /// `otp_totp.secret`, keyed by user handle.
    Totp,
    /// `otp_totp_pending.secret`, keyed by user handle.
    TotpPending,
    /// `server_secrets.secret`, keyed by name.
    ServerSecret,
}

impl SecretTable {
    fn select_all(self) -> &'static str {
        match self {
            SecretTable::Totp => "SELECT user_handle, secret FROM otp_totp",
            SecretTable::TotpPending => "SELECT user_handle, secret FROM otp_totp_pending",
            SecretTable::ServerSecret => "SELECT name, secret FROM server_secrets",
        }
    }
    fn compare_and_set(self) -> &'static str {
        match self {
            SecretTable::Totp => "UPDATE otp_totp SET secret = $3 WHERE user_handle = $1 AND secret = $2",
            SecretTable::TotpPending => {
                "UPDATE otp_totp_pending SET secret = $3 WHERE user_handle = $1 AND secret = $2"
            }
            SecretTable::ServerSecret => "UPDATE server_secrets SET secret = $3 WHERE name = $1 AND secret = $2",
        }
    }
}

/// A row holding a sealed secret: (row key, stored bytes).
pub type SecretRow = (Vec<u8>, Vec<u8>);

/// What a key sign-in lifts: the account's failures in a row (the lockout
/// of the fallback factors) and its attempt window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInClears {
    /// The user's handle (`account_failures`).
    pub user_handle: Vec<u8>,
    /// The account's throttle subject (`otp_attempts`).
    pub throttle_subject: String,
}

/// A sealed ceremony (its state held in the ceremony cookie) that a key
/// sign-in uses up in its own write: see `Store::consume_ceremony`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedCeremony {
    /// The ceremony's random id.
    pub id: Vec<u8>,
    /// When it expires (Unix ms); the id is kept until then.
    pub expires_unix_ms: i64,
}

/// What a sign-in with a TOTP or recovery code writes in the transaction
/// of its change ([`AccountStore::record_totp_sign_in`],
/// [`AccountStore::record_recovery_sign_in`]).
#[derive(Debug, Clone, Copy)]
pub struct CodeSignInWrites<'a> {
    /// The new session's row.
    pub session: &'a SessionRow,
    /// The audit events of the sign-in.
    pub events: &'a [NewAuditEvent],
    /// The attempt window forgotten, and whose failures in a row are cleared.
    pub clears: &'a SignInClears,
    /// Failures in a row at or above which they are kept: a code sign-in
    /// never lifts the lockout (only a key sign-in does).
    pub lockout_at: u32,
}

/// Storage for the account service. See the module documentation.
pub trait AccountStore: Send + Sync + 'static {
    /// The user's password hash (PHC string), if a password is set.
    fn password_hash(&self, user_handle: &[u8]) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Set (`Some`) or remove (`None`) the user's password hash; true when
    /// something changed (removing an unset password changes nothing).
    fn set_password_hash(
        &self,
        user_handle: &[u8],
        hash: Option<&str>,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Set (`Some`) or remove (`None`) the user's password hash, end every
    /// other session of the user (all but `keep`) and append `event`, in one
    /// transaction. (changed, sessions ended); nothing happens when removing
    /// an unset password.
    fn change_password(
        &self,
        user_handle: &[u8],
        hash: Option<&str>,
        keep: &[u8],
        event: &NewAuditEvent,
        now: SystemTime,
    ) -> impl Future<Output = Result<(bool, u64), StoreError>> + Send;

    /// [`OtpStore::confirm_totp`](super::otp::OtpStore::confirm_totp), and
    /// when it confirms: every other session of the user (all but `keep`)
    /// ended and `events` appended, in the same transaction. The sessions
    /// ended, or `None` (and nothing written) when there was no such pending
    /// enrollment.
    #[allow(clippy::too_many_arguments)]
    fn confirm_totp_with_events(
        &self,
        user_handle: &[u8],
        secret: &[u8],
        step: u64,
        recovery_hashes: &[String],
        keep: &[u8],
        events: &[NewAuditEvent],
        now: SystemTime,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// [`OtpStore::delete_totp`](super::otp::OtpStore::delete_totp), and when
    /// TOTP was on: the other sessions (all but `keep`) ended and `event`
    /// appended, in the same transaction. The sessions ended, or `None` (and
    /// nothing written) when TOTP was not on.
    fn delete_totp_with_event(
        &self,
        user_handle: &[u8],
        keep: &[u8],
        event: &NewAuditEvent,
        now: SystemTime,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// [`OtpStore::replace_recovery_codes`](super::otp::OtpStore::replace_recovery_codes),
    /// the other sessions (all but `keep`) ended and `event` appended, in
    /// one transaction; the sessions ended.
    fn replace_recovery_codes_with_event(
        &self,
        user_handle: &[u8],
        hashes: &[String],
        keep: &[u8],
        event: &NewAuditEvent,
        now: SystemTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// [`Store::delete_credential`](super::Store::delete_credential), and when
    /// it deletes: the other sessions (all but `keep`) ended and `event`
    /// appended, in the same transaction. (outcome, sessions ended); any
    /// outcome but [`DeleteOutcome::Deleted`](super::DeleteOutcome::Deleted)
    /// writes nothing.
    fn delete_credential_with_event(
        &self,
        user_handle: &[u8],
        credential_id: &[u8],
        keep: &[u8],
        event: &NewAuditEvent,
        now: SystemTime,
    ) -> impl Future<Output = Result<(super::DeleteOutcome, u64), StoreError>> + Send;

    /// [`AccountStore::end_session`] and, when the session existed, `event`
    /// appended in the same transaction; false (no event) when the user has
    /// no such session.
    fn end_session_with_event(
        &self,
        user_handle: &[u8],
        id: &[u8],
        event: &NewAuditEvent,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Store a new session row.
    fn insert_session(&self, session: &SessionRow) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A sign-in with a TOTP code: [`OtpStore::advance_totp_step`](super::otp::OtpStore::advance_totp_step)
    /// and, when the step advances, the session row inserted, the events
    /// appended and the clears made ([`CodeSignInWrites`]), in one
    /// transaction. False, and nothing written, when the stored step was
    /// not lower (the code was used already, maybe concurrently); an error,
    /// and nothing written, when any of the writes fails (the audit log's
    /// included).
    fn record_totp_sign_in(
        &self,
        user_handle: &[u8],
        step: u64,
        writes: CodeSignInWrites<'_>,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A sign-in with a recovery code: [`OtpStore::consume_recovery_code`](super::otp::OtpStore::consume_recovery_code)
    /// and, when the code was still there, the session row inserted, the
    /// events appended and the clears made ([`CodeSignInWrites`]), in one
    /// transaction. False, and nothing written, when the code was gone; an
    /// error, and the code left unused, when any of the writes fails.
    fn record_recovery_sign_in(
        &self,
        user_handle: &[u8],
        code_id: i64,
        writes: CodeSignInWrites<'_>,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A sign-in with a key: [`Store::record_sign_in_with_event`](super::Store::record_sign_in_with_event)
    /// and, when the sign-in is recorded ([`SignCountUpdate::Advanced`]),
    /// `session` inserted in the same statement or transaction. A backend
    /// for which [`AccountStore::key_sign_in_clears`] is true also lifts
    /// `clears` (the account's failures in a row and its attempt window) in
    /// that write; otherwise the caller does it. With a `ceremony`, the
    /// write also records it used, and writes nothing else when it was used
    /// already ([`SignCountUpdate::CeremonyUsed`]).
    #[allow(clippy::too_many_arguments)] // the sign-in's parts, each its own type
    fn record_key_sign_in(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
        event: NewAuditEvent,
        session: &SessionRow,
        clears: &SignInClears,
        ceremony: Option<&UsedCeremony>,
    ) -> impl Future<Output = Result<SignCountUpdate, StoreError>> + Send;

    /// Does [`AccountStore::record_key_sign_in`] lift its `clears` itself
    /// when the sign-in is recorded (SQLite: in the writer's transaction, no
    /// read on the sign-in path)?
    fn key_sign_in_clears(&self) -> bool {
        false
    }

    /// The session row `id`.
    fn session_row(&self, id: &[u8]) -> impl Future<Output = Result<Option<SessionRow>, StoreError>> + Send;

    /// The user's unexpired sessions, newest first.
    fn sessions_of_user(
        &self,
        user_handle: &[u8],
        now: SystemTime,
    ) -> impl Future<Output = Result<Vec<SessionRow>, StoreError>> + Send;

    /// End the user's session `id`; false when the user has no such session.
    fn end_session(&self, user_handle: &[u8], id: &[u8]) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// End every session of the user but `keep`; how many ended.
    fn end_other_sessions(
        &self,
        user_handle: &[u8],
        keep: Option<&[u8]>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Note a request on session `id` at `now`.
    fn touch_session(&self, id: &[u8], now: SystemTime) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Count one more failed sign-in in a row for the user; the new count.
    fn add_failure(&self, user_handle: &[u8], now: SystemTime) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// The user's failed sign-ins in a row.
    fn failures(&self, user_handle: &[u8]) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Forget the user's failed sign-ins (after a key sign-in).
    fn clear_failures(&self, user_handle: &[u8]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The server secret `name`, inserting `candidate` first when there is
    /// none (racing first callers agree on one).
    fn server_secret(&self, name: &str, candidate: &[u8]) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// Every row of `table`: (row key, stored bytes).
    fn secret_rows(&self, table: SecretTable) -> impl Future<Output = Result<Vec<SecretRow>, StoreError>> + Send;

    /// Replace the stored bytes of a row of `table` by compare-and-set:
    /// false when they were not `old` any more.
    fn replace_secret(
        &self,
        table: SecretTable,
        key: &[u8],
        old: &[u8],
        new: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every user's (handle, username), for the username migration.
    fn usernames(&self) -> impl Future<Output = Result<Vec<SecretRow>, StoreError>> + Send;

    /// Rename a user by compare-and-set (`old` must still be its name);
    /// false when it was not, or `new` is taken.
    fn rename_user(
        &self,
        user_handle: &[u8],
        old: &str,
        new: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// How many attempts `subject` made since `since` (read only; see
    /// [`OtpStore::count_otp_attempt`](super::otp::OtpStore::count_otp_attempt) for counting one).
    fn attempts_since(&self, subject: &str, since: SystemTime) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Delete audit events older than `before` and session rows that
    /// expired; how many rows went.
    fn purge_account_data(
        &self,
        audit_before: SystemTime,
        now: SystemTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// SQL both backends share (`$N` placeholders work in both).
pub(crate) mod sql {
    pub const PASSWORD: &str = "SELECT hash FROM account_passwords WHERE user_handle = $1";
    pub const SET_PASSWORD: &str = "INSERT INTO account_passwords (user_handle, hash, updated_ms) VALUES ($1, $2, $3) \
                                    ON CONFLICT (user_handle) DO UPDATE SET hash = excluded.hash, updated_ms = excluded.updated_ms";
    pub const DELETE_PASSWORD: &str = "DELETE FROM account_passwords WHERE user_handle = $1";
    pub const INSERT_SESSION: &str = "INSERT INTO account_sessions (id, user_handle, method, created_ms, last_seen_ms, expires_ms) \
                                      VALUES ($1, $2, $3, $4, $5, $6)";
    pub const SESSION: &str =
        "SELECT id, user_handle, method, created_ms, last_seen_ms, expires_ms FROM account_sessions WHERE id = $1";
    pub const SESSIONS_OF_USER: &str = "SELECT id, user_handle, method, created_ms, last_seen_ms, expires_ms FROM account_sessions \
                                        WHERE user_handle = $1 AND expires_ms > $2 ORDER BY created_ms DESC LIMIT 1000";
    pub const END_SESSION: &str = "DELETE FROM account_sessions WHERE user_handle = $1 AND id = $2";
    pub const END_OTHERS: &str = "DELETE FROM account_sessions WHERE user_handle = $1 AND id <> $2";
    pub const END_ALL: &str = "DELETE FROM account_sessions WHERE user_handle = $1";
    /// Only when the last note is a minute old: a session in use costs one write a minute.
    pub const TOUCH: &str = "UPDATE account_sessions SET last_seen_ms = $2 WHERE id = $1 AND last_seen_ms < $2 - 60000";
    pub const ADD_FAILURE: &str = "INSERT INTO account_failures (user_handle, consecutive, updated_ms) VALUES ($1, 1, $2) \
                                   ON CONFLICT (user_handle) DO UPDATE SET consecutive = account_failures.consecutive + 1, \
                                   updated_ms = excluded.updated_ms RETURNING consecutive";
    pub const FAILURES: &str = "SELECT consecutive FROM account_failures WHERE user_handle = $1";
    pub const CLEAR_FAILURES: &str = "DELETE FROM account_failures WHERE user_handle = $1";
    pub const USERNAMES: &str = "SELECT handle, username FROM users";
    pub const RENAME_USER: &str = "UPDATE users SET username = $3 WHERE handle = $1 AND username = $2 \
                                   AND NOT EXISTS (SELECT 1 FROM users WHERE username = $3)";
    pub const ATTEMPTS_SINCE: &str = "SELECT COUNT(*) FROM otp_attempts WHERE subject = $1 AND at_ms >= $2";
    pub const INSERT_AUDIT: &str = "INSERT INTO audit_log (at_ms, event, username, user_handle, credential_id, code, detail) \
                                    VALUES ($1, $2, $3, $4, $5, $6, $7)";
    pub const PURGE_AUDIT: &str = "DELETE FROM audit_log WHERE at_ms < $1";
    pub const PURGE_SESSIONS: &str = "DELETE FROM account_sessions WHERE expires_ms < $1";
}

/// A session row as both backends read it.
#[derive(sqlx::FromRow)]
pub(crate) struct SessionDbRow {
    pub id: Vec<u8>,
    pub user_handle: Vec<u8>,
    pub method: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub expires_ms: i64,
}

impl From<SessionDbRow> for SessionRow {
    fn from(r: SessionDbRow) -> Self {
        SessionRow {
            id: r.id,
            user_handle: r.user_handle,
            method: r.method,
            created_unix_ms: r.created_ms,
            last_seen_unix_ms: r.last_seen_ms,
            expires_unix_ms: r.expires_ms,
        }
    }
}

pub(crate) fn count_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// The implementation over one sqlx pool, for both backends (their SQL is
/// the same here); `$pool` is an expression giving the pool for writes and
/// `$read` the one for reads.
macro_rules! impl_account_sql {
    ($ty:ty, $db:ty, |$s:ident| $write:expr, $read:expr) => {
        impl $ty {
            pub(crate) async fn acct_password_hash(&self, h: &[u8]) -> Result<Option<String>, StoreError> {
                let $s = self;
                Ok(sqlx::query_scalar::<_, String>(sql::PASSWORD).bind(h).fetch_optional($read).await?)
            }
            pub(crate) async fn acct_set_password_hash(
                &self,
                h: &[u8],
                hash: Option<&str>,
                now: SystemTime,
            ) -> Result<bool, StoreError> {
                let $s = self;
                let r = match hash {
                    Some(hash) => {
                        sqlx::query(sql::SET_PASSWORD).bind(h).bind(hash).bind(super::ms(now)).execute($write).await?
                    }
                    None => sqlx::query(sql::DELETE_PASSWORD).bind(h).execute($write).await?,
                };
                Ok(r.rows_affected() > 0)
            }
            pub(crate) async fn acct_change_password(
                &self,
                h: &[u8],
                hash: Option<&str>,
                keep: &[u8],
                e: &NewAuditEvent,
                now: SystemTime,
            ) -> Result<(bool, u64), StoreError> {
                let $s = self;
                let now = super::ms(now);
                let mut tx = $s.begin_write().await?;
                let changed = match hash {
                    Some(hash) => sqlx::query(sql::SET_PASSWORD).bind(h).bind(hash).bind(now).execute(&mut *tx).await?,
                    None => sqlx::query(sql::DELETE_PASSWORD).bind(h).execute(&mut *tx).await?,
                }
                .rows_affected()
                    > 0;
                if !changed {
                    return Ok((false, 0));
                }
                let (ended, ids) = self.acct_end_others_in(&mut tx, h, Some(keep)).await?;
                sqlx::query(sql::INSERT_AUDIT)
                    .bind(now)
                    .bind(e.kind.as_str())
                    .bind(e.username.as_deref())
                    .bind(e.user_handle.as_deref())
                    .bind(e.credential_id.as_deref())
                    .bind(e.code.as_deref())
                    .bind(e.detail.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.acct_forget_sessions(h, &ids);
                Ok((true, ended))
            }
            /// Note session `r` in the in-memory index (SQLite) before its
            /// row is inserted; an error for an id no token has.
            pub(crate) fn acct_note_session(&self, r: &SessionRow) -> Result<(), StoreError> {
                match self.session_index() {
                    Some(index) if !index.add(&r.user_handle, &r.id, r.expires_unix_ms) => {
                        Err(StoreError::Database(format!("a session id of {} bytes", r.id.len())))
                    }
                    _ => Ok(()),
                }
            }
            /// Forget ended sessions' ids (SQLite): after the commit that deleted their rows.
            pub(crate) fn acct_forget_sessions(&self, h: &[u8], ids: &[super::session_index::SessionId]) {
                if let Some(index) = self.session_index() {
                    index.forget(h, ids);
                }
            }
            /// End the user's sessions but `keep` (all of them for `None`)
            /// in `tx`, which holds the write lock (it wrote already, or
            /// began with [`begin_write`](Self::begin_write)); the rows
            /// ended, and the ids to [forget](Self::acct_forget_sessions)
            /// once `tx` committed.
            pub(crate) async fn acct_end_others_in(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                h: &[u8],
                keep: Option<&[u8]>,
            ) -> Result<(u64, Vec<super::session_index::SessionId>), StoreError> {
                use super::session_index::{IDS_PER_STATEMENT, end_ids_sql};
                let Some(index) = self.session_index() else {
                    let r = match keep {
                        Some(k) => sqlx::query(sql::END_OTHERS).bind(h).bind(k).execute(&mut **tx).await?,
                        None => sqlx::query(sql::END_ALL).bind(h).execute(&mut **tx).await?,
                    };
                    return Ok((r.rows_affected(), Vec::new()));
                };
                // No id is empty: binding one keeps every row.
                let keep = keep.unwrap_or(&[]);
                let ids: Vec<_> = index.ids_of(h).into_iter().filter(|i| i[..] != *keep).collect();
                let mut ended = 0;
                for chunk in ids.chunks(IDS_PER_STATEMENT) {
                    let statement = end_ids_sql(chunk.len());
                    let mut q = sqlx::query(&statement).bind(h).bind(keep);
                    for id in chunk {
                        q = q.bind(&id[..]);
                    }
                    ended += q.execute(&mut **tx).await?.rows_affected();
                }
                Ok((ended, ids))
            }
            pub(crate) async fn acct_insert_session(&self, r: &SessionRow) -> Result<(), StoreError> {
                let $s = self;
                self.acct_note_session(r)?;
                sqlx::query(sql::INSERT_SESSION)
                    .bind(&r.id)
                    .bind(&r.user_handle)
                    .bind(&r.method)
                    .bind(r.created_unix_ms)
                    .bind(r.last_seen_unix_ms)
                    .bind(r.expires_unix_ms)
                    .execute($write)
                    .await?;
                Ok(())
            }
            pub(crate) async fn acct_session_row(&self, id: &[u8]) -> Result<Option<SessionRow>, StoreError> {
                let $s = self;
                let r: Option<SessionDbRow> = sqlx::query_as(sql::SESSION).bind(id).fetch_optional($read).await?;
                Ok(r.map(Into::into))
            }
            pub(crate) async fn acct_sessions_of_user(
                &self,
                h: &[u8],
                now: SystemTime,
            ) -> Result<Vec<SessionRow>, StoreError> {
                use super::session_index::{IDS_PER_STATEMENT, rows_of_ids_sql};
                let $s = self;
                let now = super::ms(now);
                let Some(index) = self.session_index() else {
                    let r: Vec<SessionDbRow> =
                        sqlx::query_as(sql::SESSIONS_OF_USER).bind(h).bind(now).fetch_all($read).await?;
                    return Ok(r.into_iter().map(Into::into).collect());
                };
                let mut rows: Vec<SessionRow> = Vec::new();
                for chunk in index.live_ids_of(h, now).chunks(IDS_PER_STATEMENT) {
                    let statement = rows_of_ids_sql(chunk.len());
                    let mut q = sqlx::query_as::<_, SessionDbRow>(&statement).bind(h).bind(now);
                    for id in chunk {
                        q = q.bind(&id[..]);
                    }
                    rows.extend(q.fetch_all($read).await?.into_iter().map(SessionRow::from));
                }
                // As SESSIONS_OF_USER: newest first, at most 1000.
                rows.sort_by(|a, b| b.created_unix_ms.cmp(&a.created_unix_ms));
                rows.truncate(1000);
                Ok(rows)
            }
            pub(crate) async fn acct_end_session(&self, h: &[u8], id: &[u8]) -> Result<bool, StoreError> {
                let $s = self;
                let ended = sqlx::query(sql::END_SESSION).bind(h).bind(id).execute($write).await?.rows_affected() > 0;
                if ended {
                    self.acct_forget_sessions(h, super::session_index::SessionIndex::id(id).as_slice());
                }
                Ok(ended)
            }
            pub(crate) async fn acct_end_other_sessions(
                &self,
                h: &[u8],
                keep: Option<&[u8]>,
            ) -> Result<u64, StoreError> {
                let $s = self;
                let mut tx = $s.begin_write().await?;
                let (ended, ids) = self.acct_end_others_in(&mut tx, h, keep).await?;
                tx.commit().await?;
                self.acct_forget_sessions(h, &ids);
                Ok(ended)
            }
            pub(crate) async fn acct_touch_session(&self, id: &[u8], now: SystemTime) -> Result<(), StoreError> {
                let $s = self;
                sqlx::query(sql::TOUCH).bind(id).bind(super::ms(now)).execute($write).await?;
                Ok(())
            }
            pub(crate) async fn acct_add_failure(&self, h: &[u8], now: SystemTime) -> Result<u32, StoreError> {
                let $s = self;
                self.note_failure_row(h);
                let n: i64 =
                    sqlx::query_scalar(sql::ADD_FAILURE).bind(h).bind(super::ms(now)).fetch_one($write).await?;
                Ok(count_u32(n))
            }
            pub(crate) async fn acct_failures(&self, h: &[u8]) -> Result<u32, StoreError> {
                let $s = self;
                let n: Option<i64> = sqlx::query_scalar(sql::FAILURES).bind(h).fetch_optional($read).await?;
                Ok(n.map(count_u32).unwrap_or(0))
            }
            pub(crate) async fn acct_clear_failures(&self, h: &[u8]) -> Result<(), StoreError> {
                let $s = self;
                sqlx::query(sql::CLEAR_FAILURES).bind(h).execute($write).await?;
                Ok(())
            }
            pub(crate) async fn acct_server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
                let $s = self;
                sqlx::query(super::session_sql::INSERT_SECRET)
                    .bind(name)
                    .bind(candidate)
                    .bind(super::ms(SystemTime::now()))
                    .execute($write)
                    .await?;
                Ok(sqlx::query_scalar(super::session_sql::SELECT_SECRET).bind(name).fetch_one($write).await?)
            }
            pub(crate) async fn acct_secret_rows(&self, t: SecretTable) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
                let $s = self;
                if t == SecretTable::ServerSecret {
                    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(t.select_all()).fetch_all($write).await?;
                    return Ok(rows.into_iter().map(|(k, v)| (k.into_bytes(), v)).collect());
                }
                Ok(sqlx::query_as(t.select_all()).fetch_all($write).await?)
            }
            pub(crate) async fn acct_replace_secret(
                &self,
                t: SecretTable,
                key: &[u8],
                old: &[u8],
                new: &[u8],
            ) -> Result<bool, StoreError> {
                let $s = self;
                let q = sqlx::query(t.compare_and_set());
                let q = if t == SecretTable::ServerSecret {
                    q.bind(String::from_utf8_lossy(key).into_owned())
                } else {
                    q.bind(key.to_vec())
                };
                Ok(q.bind(old).bind(new).execute($write).await?.rows_affected() > 0)
            }
            pub(crate) async fn acct_usernames(&self) -> Result<Vec<SecretRow>, StoreError> {
                let $s = self;
                let rows: Vec<(Vec<u8>, String)> = sqlx::query_as(sql::USERNAMES).fetch_all($write).await?;
                Ok(rows.into_iter().map(|(h, u)| (h, u.into_bytes())).collect())
            }
            pub(crate) async fn acct_rename_user(&self, h: &[u8], old: &str, new: &str) -> Result<bool, StoreError> {
                let $s = self;
                let r = sqlx::query(sql::RENAME_USER).bind(h).bind(old).bind(new).execute($write).await;
                match r {
                    Ok(r) => Ok(r.rows_affected() > 0),
                    Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
            pub(crate) async fn acct_attempts_since(
                &self,
                subject: &str,
                since: SystemTime,
            ) -> Result<u32, StoreError> {
                let $s = self;
                let n: i64 = sqlx::query_scalar(sql::ATTEMPTS_SINCE)
                    .bind(subject)
                    .bind(super::ms(since))
                    .fetch_one($read)
                    .await?;
                Ok(count_u32(n))
            }
            pub(crate) async fn acct_purge(
                &self,
                audit_before: SystemTime,
                now: SystemTime,
            ) -> Result<u64, StoreError> {
                let $s = self;
                let a = sqlx::query(sql::PURGE_AUDIT).bind(super::ms(audit_before)).execute($write).await?;
                let b = sqlx::query(sql::PURGE_SESSIONS).bind(super::ms(now)).execute($write).await?;
                if let Some(index) = self.session_index() {
                    index.forget_expired(super::ms(now));
                }
                Ok(a.rows_affected() + b.rows_affected())
            }
        }
    };
}

#[cfg(feature = "sqlite")]
impl_account_sql!(super::sqlite::SqliteStore, sqlx::Sqlite, |s| s.write_pool(), s.read_pool());
#[cfg(feature = "postgres")]
impl_account_sql!(super::postgres::PgStore, sqlx::Postgres, |s| s.pool(), s.pool());

macro_rules! forward_account {
    ($ty:ty) => {
        impl AccountStore for $ty {
            async fn password_hash(&self, h: &[u8]) -> Result<Option<String>, StoreError> {
                self.acct_password_hash(h).await
            }
            async fn set_password_hash(
                &self,
                h: &[u8],
                hash: Option<&str>,
                now: SystemTime,
            ) -> Result<bool, StoreError> {
                self.acct_set_password_hash(h, hash, now).await
            }
            async fn change_password(
                &self,
                h: &[u8],
                hash: Option<&str>,
                keep: &[u8],
                event: &NewAuditEvent,
                now: SystemTime,
            ) -> Result<(bool, u64), StoreError> {
                self.acct_change_password(h, hash, keep, event, now).await
            }
            async fn insert_session(&self, r: &SessionRow) -> Result<(), StoreError> {
                self.acct_insert_session(r).await
            }
            async fn record_totp_sign_in(
                &self,
                h: &[u8],
                step: u64,
                w: CodeSignInWrites<'_>,
                now: SystemTime,
            ) -> Result<bool, StoreError> {
                self.aud_totp_sign_in(h, step, w, now).await
            }
            async fn record_recovery_sign_in(
                &self,
                h: &[u8],
                code_id: i64,
                w: CodeSignInWrites<'_>,
                now: SystemTime,
            ) -> Result<bool, StoreError> {
                self.aud_recovery_sign_in(h, code_id, w, now).await
            }
            async fn confirm_totp_with_events(
                &self,
                h: &[u8],
                secret: &[u8],
                step: u64,
                recovery_hashes: &[String],
                keep: &[u8],
                events: &[NewAuditEvent],
                now: SystemTime,
            ) -> Result<Option<u64>, StoreError> {
                self.aud_confirm_totp(h, secret, step, recovery_hashes, keep, events, now).await
            }
            async fn delete_totp_with_event(
                &self,
                h: &[u8],
                keep: &[u8],
                event: &NewAuditEvent,
                now: SystemTime,
            ) -> Result<Option<u64>, StoreError> {
                self.aud_delete_totp(h, keep, event, now).await
            }
            async fn replace_recovery_codes_with_event(
                &self,
                h: &[u8],
                hashes: &[String],
                keep: &[u8],
                event: &NewAuditEvent,
                now: SystemTime,
            ) -> Result<u64, StoreError> {
                self.aud_replace_recovery_codes(h, hashes, keep, event, now).await
            }
            async fn delete_credential_with_event(
                &self,
                h: &[u8],
                credential_id: &[u8],
                keep: &[u8],
                event: &NewAuditEvent,
                now: SystemTime,
            ) -> Result<(super::DeleteOutcome, u64), StoreError> {
                self.aud_delete_credential(h, credential_id, keep, event, now).await
            }
            async fn end_session_with_event(
                &self,
                h: &[u8],
                id: &[u8],
                event: &NewAuditEvent,
                now: SystemTime,
            ) -> Result<bool, StoreError> {
                self.aud_end_session(h, id, event, now).await
            }
            async fn record_key_sign_in(
                &self,
                credential_id: &[u8],
                new_sign_count: u32,
                backed_up: bool,
                now: SystemTime,
                event: NewAuditEvent,
                session: &SessionRow,
                clears: &SignInClears,
                ceremony: Option<&UsedCeremony>,
            ) -> Result<SignCountUpdate, StoreError> {
                self.key_sign_in(credential_id, new_sign_count, backed_up, now, event, session, clears, ceremony).await
            }
            fn key_sign_in_clears(&self) -> bool {
                self.clears_in_key_sign_in()
            }
            async fn session_row(&self, id: &[u8]) -> Result<Option<SessionRow>, StoreError> {
                self.acct_session_row(id).await
            }
            async fn sessions_of_user(&self, h: &[u8], now: SystemTime) -> Result<Vec<SessionRow>, StoreError> {
                self.acct_sessions_of_user(h, now).await
            }
            async fn end_session(&self, h: &[u8], id: &[u8]) -> Result<bool, StoreError> {
                self.acct_end_session(h, id).await
            }
            async fn end_other_sessions(&self, h: &[u8], keep: Option<&[u8]>) -> Result<u64, StoreError> {
                self.acct_end_other_sessions(h, keep).await
            }
            async fn touch_session(&self, id: &[u8], now: SystemTime) -> Result<(), StoreError> {
                self.acct_touch_session(id, now).await
            }
            async fn add_failure(&self, h: &[u8], now: SystemTime) -> Result<u32, StoreError> {
                self.acct_add_failure(h, now).await
            }
            async fn failures(&self, h: &[u8]) -> Result<u32, StoreError> {
                self.acct_failures(h).await
            }
            async fn clear_failures(&self, h: &[u8]) -> Result<(), StoreError> {
                self.acct_clear_failures(h).await
            }
            async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
                self.acct_server_secret(name, candidate).await
            }
            async fn secret_rows(&self, t: SecretTable) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
                self.acct_secret_rows(t).await
            }
            async fn replace_secret(
                &self,
                t: SecretTable,
                key: &[u8],
                old: &[u8],
                new: &[u8],
            ) -> Result<bool, StoreError> {
                self.acct_replace_secret(t, key, old, new).await
            }
            async fn attempts_since(&self, subject: &str, since: SystemTime) -> Result<u32, StoreError> {
                self.acct_attempts_since(subject, since).await
            }
            async fn usernames(&self) -> Result<Vec<SecretRow>, StoreError> {
                self.acct_usernames().await
            }
            async fn rename_user(&self, h: &[u8], old: &str, new: &str) -> Result<bool, StoreError> {
                let renamed = self.acct_rename_user(h, old, new).await?;
                if renamed {
                    self.renamed_user(h, old, new);
                }
                Ok(renamed)
            }
            async fn purge_account_data(&self, audit_before: SystemTime, now: SystemTime) -> Result<u64, StoreError> {
                self.acct_purge(audit_before, now).await
            }
        }
    };
}

#[cfg(feature = "sqlite")]
impl super::sqlite::SqliteStore {
    /// Drop a renamed user from the cache (it serves by username).
    fn renamed_user(&self, handle: &[u8], old: &str, new: &str) {
        self.invalidate_cached_user(handle, old, new);
    }
}

#[cfg(feature = "postgres")]
impl super::postgres::PgStore {
    /// PostgreSQL keeps no cache.
    fn renamed_user(&self, _handle: &[u8], _old: &str, _new: &str) {}
}

#[cfg(feature = "sqlite")]
forward_account!(super::sqlite::SqliteStore);
#[cfg(feature = "postgres")]
forward_account!(super::postgres::PgStore);

macro_rules! delegate_acct {
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
impl AccountStore for super::DbStore {
    async fn password_hash(&self, h: &[u8]) -> Result<Option<String>, StoreError> {
        delegate_acct!(self, s => s.password_hash(h))
    }
    async fn set_password_hash(&self, h: &[u8], hash: Option<&str>, now: SystemTime) -> Result<bool, StoreError> {
        delegate_acct!(self, s => s.set_password_hash(h, hash, now))
    }
    async fn change_password(
        &self,
        h: &[u8],
        hash: Option<&str>,
        keep: &[u8],
        event: &NewAuditEvent,
        now: SystemTime,
    ) -> Result<(bool, u64), StoreError> {
        delegate_acct!(self, s => s.change_password(h, hash, keep, event, now))
    }
    async fn insert_session(&self, r: &SessionRow) -> Result<(), StoreError> {
        delegate_acct!(self, s => s.insert_session(r))
    }
    async fn record_totp_sign_in(
        &self,
        h: &[u8],
        step: u64,
        w: CodeSignInWrites<'_>,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        delegate_acct!(self, s => s.record_totp_sign_in(h, step, w, now))
    }
    async fn record_recovery_sign_in(
        &self,
        h: &[u8],
        code_id: i64,
        w: CodeSignInWrites<'_>,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        delegate_acct!(self, s => s.record_recovery_sign_in(h, code_id, w, now))
    }
    async fn confirm_totp_with_events(
        &self,
        h: &[u8],
        secret: &[u8],
        step: u64,
        recovery_hashes: &[String],
        keep: &[u8],
        events: &[NewAuditEvent],
        now: SystemTime,
    ) -> Result<Option<u64>, StoreError> {
        delegate_acct!(self, s => s.confirm_totp_with_events(h, secret, step, recovery_hashes, keep, events, now))
    }
    async fn delete_totp_with_event(
        &self,
        h: &[u8],
        keep: &[u8],
        event: &NewAuditEvent,
        now: SystemTime,
    ) -> Result<Option<u64>, StoreError> {
        delegate_acct!(self, s => s.delete_totp_with_event(h, keep, event, now))
    }
    async fn replace_recovery_codes_with_event(
        &self,
        h: &[u8],
        hashes: &[String],
        keep: &[u8],
        event: &NewAuditEvent,
        now: SystemTime,
    ) -> Result<u64, StoreError> {
        delegate_acct!(self, s => s.replace_recovery_codes_with_event(h, hashes, keep, event, now))
    }
    async fn delete_credential_with_event(
        &self,
        h: &[u8],
        credential_id: &[u8],
        keep: &[u8],
        event: &NewAuditEvent,
        now: SystemTime,
    ) -> Result<(super::DeleteOutcome, u64), StoreError> {
        delegate_acct!(self, s => s.delete_credential_with_event(h, credential_id, keep, event, now))
    }
    async fn end_session_with_event(
        &self,
        h: &[u8],
        id: &[u8],
        event: &NewAuditEvent,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        delegate_acct!(self, s => s.end_session_with_event(h, id, event, now))
    }
    async fn record_key_sign_in(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
        event: NewAuditEvent,
        session: &SessionRow,
        clears: &SignInClears,
        ceremony: Option<&UsedCeremony>,
    ) -> Result<SignCountUpdate, StoreError> {
        delegate_acct!(self, s => s.record_key_sign_in(credential_id, new_sign_count, backed_up, now, event, session, clears, ceremony))
    }
    fn key_sign_in_clears(&self) -> bool {
        match self {
            #[cfg(feature = "sqlite")]
            super::DbStore::Sqlite(s) => s.key_sign_in_clears(),
            #[cfg(feature = "postgres")]
            super::DbStore::Postgres(s) => s.key_sign_in_clears(),
        }
    }
    async fn session_row(&self, id: &[u8]) -> Result<Option<SessionRow>, StoreError> {
        delegate_acct!(self, s => s.session_row(id))
    }
    async fn sessions_of_user(&self, h: &[u8], now: SystemTime) -> Result<Vec<SessionRow>, StoreError> {
        delegate_acct!(self, s => s.sessions_of_user(h, now))
    }
    async fn end_session(&self, h: &[u8], id: &[u8]) -> Result<bool, StoreError> {
        delegate_acct!(self, s => s.end_session(h, id))
    }
    async fn end_other_sessions(&self, h: &[u8], keep: Option<&[u8]>) -> Result<u64, StoreError> {
        delegate_acct!(self, s => s.end_other_sessions(h, keep))
    }
    async fn touch_session(&self, id: &[u8], now: SystemTime) -> Result<(), StoreError> {
        delegate_acct!(self, s => s.touch_session(id, now))
    }
    async fn add_failure(&self, h: &[u8], now: SystemTime) -> Result<u32, StoreError> {
        delegate_acct!(self, s => s.add_failure(h, now))
    }
    async fn failures(&self, h: &[u8]) -> Result<u32, StoreError> {
        delegate_acct!(self, s => s.failures(h))
    }
    async fn clear_failures(&self, h: &[u8]) -> Result<(), StoreError> {
        delegate_acct!(self, s => s.clear_failures(h))
    }
    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        delegate_acct!(self, s => s.server_secret(name, candidate))
    }
    async fn secret_rows(&self, t: SecretTable) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        delegate_acct!(self, s => s.secret_rows(t))
    }
    async fn replace_secret(&self, t: SecretTable, key: &[u8], old: &[u8], new: &[u8]) -> Result<bool, StoreError> {
        delegate_acct!(self, s => s.replace_secret(t, key, old, new))
    }
    async fn attempts_since(&self, subject: &str, since: SystemTime) -> Result<u32, StoreError> {
        delegate_acct!(self, s => s.attempts_since(subject, since))
    }
    async fn usernames(&self) -> Result<Vec<SecretRow>, StoreError> {
        delegate_acct!(self, s => s.usernames())
    }
    async fn rename_user(&self, h: &[u8], old: &str, new: &str) -> Result<bool, StoreError> {
        delegate_acct!(self, s => s.rename_user(h, old, new))
    }
    async fn purge_account_data(&self, audit_before: SystemTime, now: SystemTime) -> Result<u64, StoreError> {
        delegate_acct!(self, s => s.purge_account_data(audit_before, now))
    }
}
