//! PostgreSQL storage (feature `postgres`): for deployments that run several
//! server instances on one database.
//!
//! The guarantees the instances rely on come from single statements:
//! `DELETE ... RETURNING` hands a pending ceremony to exactly one verifier,
//! and `UPDATE ... WHERE sign_count < $new` advances a counter by
//! compare-and-set. Deleting a credential locks its user's row, so two
//! concurrent deletions cannot remove a user's last two credentials.
//! Migrations run under sqlx's advisory lock, so instances may start together.
//!
//! Limits (CONTRACTS §2.2): every session runs with `statement_timeout`
//! 5 s and `idle_in_transaction_session_timeout` 10 s, and asks the server
//! for TCP keepalives (idle 30 s, interval 10 s, 3 probes); taking a pooled
//! connection waits at most 2 s. A database that is away or too slow is
//! [`StoreError::Overloaded`] (HTTP 503 `overloaded`), and the pool
//! reconnects by itself once it is back. Pending ceremonies are capped as
//! in process ([`CeremonyLimits`]): each one by size, and all of them by
//! count and bytes, counted in the table at most once a second per instance
//! and estimated in between.

use super::ceremony_cache::CeremonyLimits;
use super::{
    AuditEvent, AuditQuery, AuditRow, CEREMONY_GRACE_MS, CREDENTIAL_COLUMNS, CredentialRow, CredentialUserRow,
    DeleteOutcome, NewAuditEvent, PendingCeremony, SESSION_SECRET_NAME, SignCountUpdate, Store, StoreError,
    StoredCredential, UserRecord, UserRow, ms, transports_json,
};
use crate::server::CredentialRecord;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use zeroize::Zeroizing;

/// Embedded schema migrations.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/postgres");

/// The PostgreSQL store. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    ceremony_limits: CeremonyLimits,
    census: Arc<Mutex<Census>>,
}

/// Pending ceremonies in the table, as last counted plus what this
/// instance added since.
#[derive(Debug, Default)]
struct Census {
    count: usize,
    bytes: usize,
    counted_at: Option<Instant>,
}

/// How long a count of the ceremonies table is trusted.
const CENSUS_TTL: Duration = Duration::from_secs(1);

/// Session settings of every pooled connection (see the module docs).
const SESSION_SETTINGS: [(&str, &str); 5] = [
    ("statement_timeout", "5s"),
    ("idle_in_transaction_session_timeout", "10s"),
    ("tcp_keepalives_idle", "30"),
    ("tcp_keepalives_interval", "10"),
    ("tcp_keepalives_count", "3"),
];

/// Connections per server process to PostgreSQL, unless
/// `HWKEY_PG_POOL_SIZE` says otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 16;

impl PgStore {
    /// Connect to `postgres://...` with a pool of [`DEFAULT_POOL_SIZE`]
    /// connections (`HWKEY_PG_POOL_SIZE` overrides it), and migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let size = std::env::var("HWKEY_PG_POOL_SIZE")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_POOL_SIZE);
        Self::connect_with_pool_size(url, size).await
    }

    /// Connect with a pool of `max_connections`, and migrate.
    pub async fn connect_with_pool_size(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(format!("{}: {e}", super::redact_url(url))))?
            .options(SESSION_SETTINGS);
        // No ping before each acquire: it would double the round trips of
        // every query; a dead connection shows up as an error on use instead.
        let pool = PgPoolOptions::new()
            .test_before_acquire(false)
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(2))
            .idle_timeout(Duration::from_secs(60))
            .max_lifetime(Duration::from_secs(30 * 60))
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PgStore { pool, ceremony_limits: CeremonyLimits::default(), census: Arc::default() })
    }

    /// The same store with other caps on pending ceremonies.
    pub fn with_ceremony_limits(mut self, limits: CeremonyLimits) -> Self {
        self.ceremony_limits = limits;
        self
    }

    /// Whether one more ceremony of `bytes` fits under the caps; counts the
    /// table when the last count is older than [`CENSUS_TTL`], after
    /// deleting expired ceremonies if it is full.
    async fn ceremony_room(&self, bytes: usize) -> Result<(), StoreError> {
        let l = self.ceremony_limits;
        let over = |c: &Census| c.count >= l.max_count || c.bytes.saturating_add(bytes) > l.max_bytes;
        let full = |c: &Census| {
            StoreError::Overloaded(format!(
                "too many pending ceremonies ({}, {} bytes); try again later",
                c.count, c.bytes
            ))
        };
        if bytes > l.max_one_bytes {
            return Err(StoreError::Overloaded(format!("a ceremony of {bytes} bytes is over the cap")));
        }
        let fresh = {
            let c = self.census.lock().unwrap_or_else(PoisonError::into_inner);
            let fresh = c.counted_at.is_some_and(|t| t.elapsed() < CENSUS_TTL);
            if fresh && over(&c) {
                return Err(full(&c));
            }
            fresh
        };
        if !fresh {
            let mut counted = self.count_ceremonies().await?;
            if over(&counted) {
                sqlx::query("DELETE FROM ceremonies WHERE expires_ms < $1")
                    .bind(ms(SystemTime::now()))
                    .execute(&self.pool)
                    .await?;
                counted = self.count_ceremonies().await?;
            }
            let mut c = self.census.lock().unwrap_or_else(PoisonError::into_inner);
            *c = counted;
            if over(&c) {
                return Err(full(&c));
            }
        }
        let mut c = self.census.lock().unwrap_or_else(PoisonError::into_inner);
        c.count = c.count.saturating_add(1);
        c.bytes = c.bytes.saturating_add(bytes);
        Ok(())
    }

    async fn count_ceremonies(&self) -> Result<Census, StoreError> {
        let row = sqlx::query("SELECT COUNT(*), COALESCE(SUM(octet_length(state)), 0)::BIGINT FROM ceremonies")
            .fetch_one(&self.pool)
            .await?;
        let count: i64 = row.try_get(0)?;
        let bytes: i64 = row.try_get(1)?;
        Ok(Census {
            count: usize::try_from(count).unwrap_or(usize::MAX),
            bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            counted_at: Some(Instant::now()),
        })
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for operators' own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction (PostgreSQL serializes what needs it with row locks).
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Nothing to note: PostgreSQL lifts failures in the sign-in's statement.
    pub(crate) fn note_failure_row(&self, _user: &[u8]) {}

    /// None: PostgreSQL finds a user's sessions with its on-disk index
    /// (instances share the database, so no one process could keep it).
    pub(crate) fn session_index(&self) -> Option<&super::session_index::SessionIndex> {
        None
    }
}

/// A user and their credentials, oldest first, in one statement (no rows:
/// no such user; one row of NULL credential columns: a user without one).
const USER_WITH_CREDENTIALS: &str = "SELECT u.handle AS u_handle, u.username AS u_username, \
     u.display_name AS u_display_name, u.created_ms AS u_created_ms, c.id, c.user_handle, c.public_key, \
     c.algorithm, c.sign_count, c.uv_initialized, c.transports, c.backup_eligible, c.backed_up, c.aaguid, \
     c.attestation_format, c.attestation_type, c.attestation_trusted, c.discoverable, c.nickname, c.created_ms, \
     c.last_used_ms FROM users u LEFT JOIN credentials c ON c.user_handle = u.handle \
     WHERE u.username = $1 ORDER BY c.created_ms, c.id";

/// Moves the counter forward, and only forward.
const ADVANCE: &str = "UPDATE credentials SET sign_count = $2, backed_up = $3, last_used_ms = $4 \
                       WHERE id = $1 AND sign_count < $2 RETURNING sign_count";
/// [`ADVANCE`], and the audit event ($5..$9) when it did (one statement, so
/// one commit: a data-modifying `WITH` runs exactly once).
const ADVANCE_LOGGED: &str = "WITH adv AS (UPDATE credentials SET sign_count = $2, backed_up = $3, last_used_ms = $4 \
                              WHERE id = $1 AND sign_count < $2 RETURNING sign_count), \
                              ev AS (INSERT INTO audit_log (at_ms, event, username, user_handle, credential_id, code, detail) \
                              SELECT $4, $5, $6, $7, $1, $8, $9 FROM adv) \
                              SELECT sign_count FROM adv";
/// When the counter did not move: the time of use (never backwards), and the
/// backup state of a credential without a counter.
const TOUCH: &str = "UPDATE credentials SET last_used_ms = GREATEST(COALESCE(last_used_ms, 0), $4), \
                     backed_up = CASE WHEN sign_count = 0 THEN $3 ELSE backed_up END \
                     WHERE id = $1 RETURNING sign_count";
/// [`TOUCH`] for a sign-in that reports no counter ($2 = 0), and the audit
/// event when the credential keeps none either (the sign-in is recorded).
const TOUCH_LOGGED: &str = "WITH t AS (UPDATE credentials SET last_used_ms = GREATEST(COALESCE(last_used_ms, 0), $4), \
                            backed_up = CASE WHEN sign_count = 0 THEN $3 ELSE backed_up END \
                            WHERE id = $1 RETURNING sign_count), \
                            ev AS (INSERT INTO audit_log (at_ms, event, username, user_handle, credential_id, code, detail) \
                            SELECT $4, $5, $6, $7, $1, $8, $9 FROM t WHERE t.sign_count = $2) \
                            SELECT sign_count FROM t";

/// A key sign-in's whole write, one statement: the sealed ceremony used up
/// ($14 id, NULL when the ceremony was held elsewhere; $15 its expiry), and
/// only when it was new: the counter moved forward ([`ADVANCE`]), the audit
/// event ($5..$9), the session row ($10 id, $11 user handle, $12 method,
/// $13 expiry), the account's failures and attempt window ($16 throttle
/// subject) lifted. Answers one row: the new counter (NULL when it did not
/// move) and whether the ceremony was new.
const ADVANCE_SESSION: &str = "WITH uc AS (INSERT INTO used_ceremonies (id, expires_ms) SELECT $14, $15 \
                              WHERE $14::bytea IS NOT NULL ON CONFLICT (id) DO NOTHING RETURNING 1), \
                              fresh AS (SELECT 1 WHERE $14::bytea IS NULL OR EXISTS (SELECT 1 FROM uc)), \
                              adv AS (UPDATE credentials SET sign_count = $2, backed_up = $3, last_used_ms = $4 \
                              WHERE id = $1 AND sign_count < $2 AND EXISTS (SELECT 1 FROM fresh) RETURNING sign_count), \
                              ev AS (INSERT INTO audit_log (at_ms, event, username, user_handle, credential_id, code, detail) \
                              SELECT $4, $5, $6, $7, $1, $8, $9 FROM adv), \
                              se AS (INSERT INTO account_sessions (id, user_handle, method, created_ms, last_seen_ms, expires_ms) \
                              SELECT $10, $11, $12, $4, $4, $13 FROM adv), \
                              cf AS (DELETE FROM account_failures WHERE user_handle = $11 AND EXISTS (SELECT 1 FROM adv)), \
                              ca AS (DELETE FROM otp_attempts WHERE subject = $16 AND EXISTS (SELECT 1 FROM adv)) \
                              SELECT (SELECT sign_count FROM adv), EXISTS (SELECT 1 FROM fresh)";
/// [`ADVANCE_SESSION`] for a sign-in that reports no counter ($2 = 0): the
/// time of use ([`TOUCH`]) and, when the credential keeps no counter either
/// (the sign-in is recorded), the rest. Answers the stored counter (NULL:
/// no such credential) and whether the ceremony was new.
const TOUCH_SESSION: &str = "WITH uc AS (INSERT INTO used_ceremonies (id, expires_ms) SELECT $14, $15 \
                            WHERE $14::bytea IS NOT NULL ON CONFLICT (id) DO NOTHING RETURNING 1), \
                            fresh AS (SELECT 1 WHERE $14::bytea IS NULL OR EXISTS (SELECT 1 FROM uc)), \
                            t AS (UPDATE credentials SET last_used_ms = GREATEST(COALESCE(last_used_ms, 0), $4), \
                            backed_up = CASE WHEN sign_count = 0 THEN $3 ELSE backed_up END \
                            WHERE id = $1 AND EXISTS (SELECT 1 FROM fresh) RETURNING sign_count), \
                            rec AS (SELECT 1 FROM t WHERE t.sign_count = $2), \
                            ev AS (INSERT INTO audit_log (at_ms, event, username, user_handle, credential_id, code, detail) \
                            SELECT $4, $5, $6, $7, $1, $8, $9 FROM rec), \
                            se AS (INSERT INTO account_sessions (id, user_handle, method, created_ms, last_seen_ms, expires_ms) \
                            SELECT $10, $11, $12, $4, $4, $13 FROM rec), \
                            cf AS (DELETE FROM account_failures WHERE user_handle = $11 AND EXISTS (SELECT 1 FROM rec)), \
                            ca AS (DELETE FROM otp_attempts WHERE subject = $16 AND EXISTS (SELECT 1 FROM rec)) \
                            SELECT (SELECT sign_count FROM t), EXISTS (SELECT 1 FROM fresh)";

impl PgStore {
    /// A key sign-in: ceremony, counter, audit event, session row and the
    /// account's failures and attempt window in one statement (one round
    /// trip, one commit), unless the counter did not move.
    pub(crate) fn clears_in_key_sign_in(&self) -> bool {
        true
    }

    #[allow(clippy::too_many_arguments)] // the sign-in's parts, each its own type
    pub(crate) async fn key_sign_in(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
        event: NewAuditEvent,
        session: &super::account::SessionRow,
        clears: &super::account::SignInClears,
        ceremony: Option<&super::account::UsedCeremony>,
    ) -> Result<SignCountUpdate, StoreError> {
        let now = ms(now);
        let run = |sql: &'static str| {
            sqlx::query(sql)
                .bind(credential_id)
                .bind(i64::from(new_sign_count))
                .bind(backed_up)
                .bind(now)
                .bind(event.kind.as_str())
                .bind(event.username.as_deref())
                .bind(event.user_handle.as_deref())
                .bind(event.code.as_deref())
                .bind(event.detail.as_str())
                .bind(session.id.as_slice())
                .bind(session.user_handle.as_slice())
                .bind(session.method.as_str())
                .bind(session.expires_unix_ms)
                .bind(ceremony.map(|c| c.id.as_slice()))
                .bind(ceremony.map_or(0, |c| c.expires_unix_ms))
                .bind(clears.throttle_subject.as_str())
                .fetch_one(&self.pool)
        };
        let row = run(if new_sign_count > 0 { ADVANCE_SESSION } else { TOUCH_SESSION }).await?;
        let (count, fresh): (Option<i64>, bool) = (row.try_get(0)?, row.try_get(1)?);
        if !fresh {
            return Ok(SignCountUpdate::CeremonyUsed);
        }
        let count = match (new_sign_count, count) {
            (0, None) => return Ok(SignCountUpdate::NotFound),
            (0, Some(c)) => c,
            (_, Some(_)) => return Ok(SignCountUpdate::Advanced),
            // The counter did not move (or no such credential): the time of
            // use, and what is stored, in a second statement (the rare path;
            // the ceremony is used up by the first).
            (_, None) => {
                let Some(row) = self.touch(credential_id, backed_up, now).await? else {
                    return Ok(SignCountUpdate::NotFound);
                };
                row.try_get(0)?
            }
        };
        let current = u32::try_from(count).map_err(|_| StoreError::Corrupt(format!("sign_count {count}")))?;
        if new_sign_count == 0 && current == 0 {
            Ok(SignCountUpdate::Advanced)
        } else {
            Ok(SignCountUpdate::NotAdvanced { current })
        }
    }

    async fn touch(
        &self,
        credential_id: &[u8],
        backed_up: bool,
        now: i64,
    ) -> Result<Option<sqlx::postgres::PgRow>, StoreError> {
        Ok(sqlx::query(TOUCH)
            .bind(credential_id)
            .bind(0i64)
            .bind(backed_up)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The sign-in update, with its audit event in the same statement when
    /// one is given.
    async fn sign_in(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
        event: Option<&NewAuditEvent>,
    ) -> Result<SignCountUpdate, StoreError> {
        let now = ms(now);
        let run = |sql: &'static str, logged: bool| {
            let q = sqlx::query(sql).bind(credential_id).bind(i64::from(new_sign_count)).bind(backed_up).bind(now);
            match event.filter(|_| logged) {
                Some(e) => q
                    .bind(e.kind.as_str())
                    .bind(e.username.as_deref())
                    .bind(e.user_handle.as_deref())
                    .bind(e.code.as_deref())
                    .bind(e.detail.as_str()),
                None => q,
            }
            .fetch_optional(&self.pool)
        };
        if new_sign_count > 0 {
            let sql = if event.is_some() { ADVANCE_LOGGED } else { ADVANCE };
            if run(sql, true).await?.is_some() {
                return Ok(SignCountUpdate::Advanced);
            }
        }
        let logged = event.is_some() && new_sign_count == 0;
        let row = run(if logged { TOUCH_LOGGED } else { TOUCH }, logged).await?;
        let Some(row) = row else { return Ok(SignCountUpdate::NotFound) };
        let current: i64 = row.try_get(0)?;
        let current = u32::try_from(current).map_err(|_| StoreError::Corrupt(format!("sign_count {current}")))?;
        if new_sign_count == 0 && current == 0 {
            Ok(SignCountUpdate::Advanced)
        } else {
            Ok(SignCountUpdate::NotAdvanced { current })
        }
    }
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

const USER_COLUMNS: &str = "handle, username, display_name, created_ms";

impl Store for PgStore {
    async fn add_credential(
        &self,
        new_user: Option<&UserRecord>,
        c: &CredentialRecord,
        nickname: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        super::check_new_credential(new_user, nickname)?;
        let mut tx = self.pool.begin().await?;
        if let Some(u) = new_user {
            sqlx::query("INSERT INTO users (handle, username, display_name, created_ms) VALUES ($1, $2, $3, $4)")
                .bind(&u.handle.0)
                .bind(&u.username)
                .bind(&u.display_name)
                .bind(u.created_unix_ms)
                .execute(&mut *tx)
                .await
                .map_err(|e| if unique_violation(&e) { StoreError::UsernameTaken } else { e.into() })?;
        }
        sqlx::query(
            "INSERT INTO credentials (id, user_handle, public_key, algorithm, sign_count, uv_initialized, \
             transports, backup_eligible, backed_up, aaguid, attestation_format, attestation_type, \
             attestation_trusted, discoverable, nickname, created_ms, last_used_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL)",
        )
        .bind(&c.credential_id.0)
        .bind(&c.user_id.0)
        .bind(&c.public_key.0)
        .bind(c.algorithm.0)
        .bind(i64::from(c.sign_count))
        .bind(c.uv_initialized)
        .bind(transports_json(&c.transports))
        .bind(c.backup_eligible)
        .bind(c.backed_up)
        .bind(&c.aaguid)
        .bind(&c.attestation_format)
        .bind(c.attestation_type.as_str())
        .bind(c.attestation_trusted)
        .bind(c.discoverable)
        .bind(nickname)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| if unique_violation(&e) { StoreError::DuplicateCredential } else { e.into() })?;
        tx.commit().await?;
        Ok(())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn user_by_handle(&self, handle: &[u8]) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE handle = $1"))
            .bind(handle)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn credentials_of_user(&self, handle: &[u8]) -> Result<Vec<StoredCredential>, StoreError> {
        let rows: Vec<CredentialRow> = sqlx::query_as(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials c WHERE c.user_handle = $1 ORDER BY c.created_ms, c.id"
        ))
        .bind(handle)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(CredentialRow::into_stored).collect()
    }

    async fn credential(&self, credential_id: &[u8]) -> Result<Option<(StoredCredential, UserRecord)>, StoreError> {
        let row: Option<CredentialUserRow> = sqlx::query_as(&format!(
            "SELECT {CREDENTIAL_COLUMNS}, u.username AS u_username, u.display_name AS u_display_name, \
             u.created_ms AS u_created_ms FROM credentials c JOIN users u ON u.handle = c.user_handle \
             WHERE c.id = $1"
        ))
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(CredentialUserRow::into_pair).transpose()
    }

    async fn user_with_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(UserRecord, Vec<StoredCredential>)>, StoreError> {
        // One statement whether or not the user exists or has credentials
        // (users LEFT JOIN credentials): an unknown name costs the same
        // round trip as a known one, so its timing tells nothing.
        let rows = sqlx::query(USER_WITH_CREDENTIALS).bind(username).fetch_all(&self.pool).await?;
        let mut found: Option<(UserRecord, Vec<StoredCredential>)> = None;
        for row in rows {
            if found.is_none() {
                let user = UserRecord {
                    handle: crate::proto::webauthn::Base64Url(row.try_get("u_handle")?),
                    username: row.try_get("u_username")?,
                    display_name: row.try_get("u_display_name")?,
                    created_unix_ms: row.try_get("u_created_ms")?,
                };
                found = Some((user, Vec::new()));
            }
            // No credential on this row: the user has none.
            if row.try_get::<Option<Vec<u8>>, _>("id")?.is_some()
                && let Some((_, creds)) = &mut found
            {
                creds.push(<CredentialRow as sqlx::FromRow<_>>::from_row(&row)?.into_stored()?);
            }
        }
        Ok(found)
    }

    async fn record_sign_in(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
    ) -> Result<SignCountUpdate, StoreError> {
        self.sign_in(credential_id, new_sign_count, backed_up, now, None).await
    }

    async fn record_sign_in_with_event(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
        event: NewAuditEvent,
    ) -> Result<SignCountUpdate, StoreError> {
        self.sign_in(credential_id, new_sign_count, backed_up, now, Some(&event)).await
    }

    async fn rename_credential(
        &self,
        user_handle: &[u8],
        credential_id: &[u8],
        nickname: &str,
    ) -> Result<bool, StoreError> {
        super::check_name("the nickname", nickname)?;
        let r = sqlx::query("UPDATE credentials SET nickname = $3 WHERE id = $1 AND user_handle = $2")
            .bind(credential_id)
            .bind(user_handle)
            .bind(nickname)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_credential(&self, user_handle: &[u8], credential_id: &[u8]) -> Result<DeleteOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock the user: concurrent deletions of the same user's credentials serialize here.
        sqlx::query("SELECT 1 FROM users WHERE handle = $1 FOR UPDATE")
            .bind(user_handle)
            .fetch_optional(&mut *tx)
            .await?;
        let exists = sqlx::query("SELECT 1 FROM credentials WHERE id = $1 AND user_handle = $2")
            .bind(credential_id)
            .bind(user_handle)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(DeleteOutcome::NotFound);
        }
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM credentials WHERE user_handle = $1")
            .bind(user_handle)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if count <= 1 {
            return Ok(DeleteOutcome::LastCredential);
        }
        sqlx::query("DELETE FROM credentials WHERE id = $1 AND user_handle = $2")
            .bind(credential_id)
            .bind(user_handle)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DeleteOutcome::Deleted)
    }

    async fn put_ceremony(&self, id: &[u8], state: &str, expires: SystemTime) -> Result<(), StoreError> {
        self.ceremony_room(state.len()).await?;
        sqlx::query("INSERT INTO ceremonies (id, state, expires_ms) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(state)
            .bind(ms(expires))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn take_ceremony(&self, id: &[u8]) -> Result<Option<PendingCeremony>, StoreError> {
        let row = sqlx::query("DELETE FROM ceremonies WHERE id = $1 RETURNING state, expires_ms")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(PendingCeremony { state: r.try_get(0)?, expires_unix_ms: r.try_get(1)? })),
        }
    }

    async fn consume_ceremony(&self, id: &[u8], expires: SystemTime) -> Result<bool, StoreError> {
        let r =
            sqlx::query(super::session_sql::CONSUME_CEREMONY).bind(id).bind(ms(expires)).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    async fn session_secret(&self) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let fresh = Zeroizing::new(
            crate::crypto::default_provider()
                .random_bytes(32)
                .map_err(|_| StoreError::Database("random source failed".into()))?,
        );
        // Racing instances: one insert wins, and everyone reads the winner.
        sqlx::query(super::session_sql::INSERT_SECRET)
            .bind(SESSION_SECRET_NAME)
            .bind(fresh.as_slice())
            .bind(ms(SystemTime::now()))
            .execute(&self.pool)
            .await?;
        let row =
            sqlx::query(super::session_sql::SELECT_SECRET).bind(SESSION_SECRET_NAME).fetch_one(&self.pool).await?;
        let secret: Vec<u8> = row.try_get(0)?;
        Ok(Zeroizing::new(secret))
    }

    async fn revoke_session(&self, id: &[u8], expires: SystemTime) -> Result<(), StoreError> {
        sqlx::query(super::session_sql::REVOKE).bind(id).bind(ms(expires)).execute(&self.pool).await?;
        Ok(())
    }

    async fn session_revoked(&self, id: &[u8]) -> Result<bool, StoreError> {
        let row = sqlx::query(super::session_sql::IS_REVOKED).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.is_some())
    }

    async fn audit(&self, e: NewAuditEvent, now: SystemTime) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at_ms, event, username, user_handle, credential_id, code, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(ms(now))
        .bind(e.kind.as_str())
        .bind(e.username)
        .bind(e.user_handle)
        .bind(e.credential_id)
        .bind(e.code)
        .bind(e.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn audit_events(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = q.select_sql();
        let rows: Vec<AuditRow> = q.bind(&sql).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn purge_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        let now = ms(now);
        let a = sqlx::query("DELETE FROM ceremonies WHERE expires_ms < $1")
            .bind(now.saturating_sub(CEREMONY_GRACE_MS))
            .execute(&self.pool)
            .await?;
        let b = sqlx::query(super::session_sql::PURGE).bind(now).execute(&self.pool).await?;
        let c = sqlx::query(super::otp::PURGE_PENDING_TOTP)
            .bind(super::otp::pending_totp_cutoff(now))
            .execute(&self.pool)
            .await?;
        // Kept an hour past expiry, so that an instance whose clock is
        // behind never takes an expired id for an unused one.
        let used = sqlx::query(super::session_sql::PURGE_USED_CEREMONIES)
            .bind(now.saturating_sub(CEREMONY_GRACE_MS))
            .execute(&self.pool)
            .await?;
        Ok(used.rows_affected() + a.rows_affected() + b.rows_affected() + c.rows_affected())
    }
}
