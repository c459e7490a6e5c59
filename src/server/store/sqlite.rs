//! SQLite storage (feature `sqlite`): the embedded default.
//!
//! A database file runs in WAL mode (readers never block the writer) with
//! `synchronous = NORMAL` (no fsync per commit; a committed transaction
//! survives a process crash, and only a power loss can take the last few)
//! and a busy timeout. All writes go through one connection, so writers
//! queue in the pool instead of spinning on SQLite's busy handler; reads use
//! a pool of their own. Connections are not pinged before each use (sqlx's
//! default), which would add a round trip to the connection's worker thread
//! for every query. `sqlite::memory:` keeps everything in one connection
//! that lives as long as the store. Audit events are written in batches by a
//! background task (see [`SqliteStore::flush_audit`]); an event appended just
//! before a crash may be lost, never one appended before a flush or a close.

use super::{
    AuditEvent, AuditQuery, AuditRow, CEREMONY_GRACE_MS, CREDENTIAL_COLUMNS, CREDENTIAL_USER_SELECT, CredentialRow,
    CredentialUserRow, DeleteOutcome, NewAuditEvent, PendingCeremony, SignCountUpdate, Store, StoreError,
    StoredCredential, UserRecord, UserRow, group_user_credentials, ms, transports_json,
};
use crate::server::CredentialRecord;
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row};
use std::str::FromStr;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// Embedded schema migrations.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/server/store/migrations/sqlite");

/// The SQLite store. Cloning shares the pools.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    audit_tx: mpsc::UnboundedSender<AuditMsg>,
}

/// Audit events go to a writer task that inserts whatever has queued up in
/// one multi-row statement (group commit): under load, one statement carries
/// many events instead of one each. Reading the log first waits for the queue
/// to drain, so a reader sees every event appended before it asked.
#[derive(Debug)]
enum AuditMsg {
    Event(NewAuditEvent, i64),
    Flush(oneshot::Sender<()>),
}

const AUDIT_BATCH: usize = 256;

fn spawn_audit_writer(pool: SqlitePool) -> mpsc::UnboundedSender<AuditMsg> {
    let (tx, mut rx) = mpsc::unbounded_channel::<AuditMsg>();
    tokio::spawn(async move {
        let mut batch: Vec<(NewAuditEvent, i64)> = Vec::new();
        let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    AuditMsg::Event(e, at) => batch.push((e, at)),
                    AuditMsg::Flush(ack) => acks.push(ack),
                }
                if batch.len() < AUDIT_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                if let Err(e) = insert_audit(&pool, &batch).await {
                    tracing::error!("audit log write of {} events failed: {e}", batch.len());
                }
                batch.clear();
            }
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
        }
    });
    tx
}

async fn insert_audit(pool: &SqlitePool, events: &[(NewAuditEvent, i64)]) -> Result<(), sqlx::Error> {
    let mut qb: QueryBuilder<'_, Sqlite> =
        QueryBuilder::new("INSERT INTO audit_log (at_ms, event, username, user_handle, credential_id, code, detail) ");
    qb.push_values(events, |mut b, (e, at)| {
        b.push_bind(*at)
            .push_bind(e.kind.as_str())
            .push_bind(e.username.as_deref())
            .push_bind(e.user_handle.as_deref())
            .push_bind(e.credential_id.as_deref())
            .push_bind(e.code.as_deref())
            .push_bind(e.detail.as_str());
    });
    qb.build().execute(pool).await?;
    Ok(())
}

fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

impl SqliteStore {
    /// Open (creating if missing) `sqlite://FILE` or `sqlite::memory:`, and migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(format!("{url}: {e}")))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let store = if is_memory(url) {
            let pool = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(base)
                .await?;
            let audit_tx = spawn_audit_writer(pool.clone());
            SqliteStore { write: pool.clone(), read: pool, audit_tx }
        } else {
            let opts = base.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal);
            let write = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(opts.clone())
                .await?;
            MIGRATOR.run(&write).await?;
            let readers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 8) as u32;
            let read = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(readers)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(opts)
                .await?;
            let audit_tx = spawn_audit_writer(write.clone());
            return Ok(SqliteStore { write, read, audit_tx });
        };
        MIGRATOR.run(&store.write).await?;
        Ok(store)
    }

    /// Write queued audit events, then close both pools.
    pub async fn close(&self) {
        self.flush_audit().await;
        self.read.close().await;
        self.write.close().await;
    }

    /// Wait until every audit event appended so far is written.
    pub async fn flush_audit(&self) {
        let (ack, done) = oneshot::channel();
        if self.audit_tx.send(AuditMsg::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }

    /// The writer pool (one connection), for operators' own queries.
    pub fn write_pool(&self) -> &SqlitePool {
        &self.write
    }
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

const USER_COLUMNS: &str = "handle, username, display_name, created_ms";

impl Store for SqliteStore {
    async fn add_credential(
        &self,
        new_user: Option<&UserRecord>,
        c: &CredentialRecord,
        nickname: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
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
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn user_by_handle(&self, handle: &[u8]) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE handle = $1"))
            .bind(handle)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn credentials_of_user(&self, handle: &[u8]) -> Result<Vec<StoredCredential>, StoreError> {
        let rows: Vec<CredentialRow> = sqlx::query_as(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials c WHERE c.user_handle = $1 ORDER BY c.created_ms, c.id"
        ))
        .bind(handle)
        .fetch_all(&self.read)
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
        .fetch_optional(&self.read)
        .await?;
        row.map(CredentialUserRow::into_pair).transpose()
    }

    async fn user_with_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(UserRecord, Vec<StoredCredential>)>, StoreError> {
        let rows: Vec<CredentialUserRow> = sqlx::query_as(&format!(
            "SELECT {CREDENTIAL_COLUMNS}, {CREDENTIAL_USER_SELECT} WHERE u.username = $1 ORDER BY c.created_ms, c.id"
        ))
        .bind(username)
        .fetch_all(&self.read)
        .await?;
        match group_user_credentials(rows)? {
            Some(found) => Ok(Some(found)),
            // No credentials (or no user): one more look to tell which.
            None => Ok(self.user_by_username(username).await?.map(|u| (u, Vec::new()))),
        }
    }

    async fn record_sign_in(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
    ) -> Result<SignCountUpdate, StoreError> {
        let now = ms(now);
        if new_sign_count > 0 {
            let advanced = sqlx::query(
                "UPDATE credentials SET sign_count = $2, backed_up = $3, last_used_ms = $4 \
                 WHERE id = $1 AND sign_count < $2 RETURNING sign_count",
            )
            .bind(credential_id)
            .bind(i64::from(new_sign_count))
            .bind(backed_up)
            .bind(now)
            .fetch_optional(&self.write)
            .await?;
            if advanced.is_some() {
                return Ok(SignCountUpdate::Advanced);
            }
        }
        let row = sqlx::query(
            "UPDATE credentials SET last_used_ms = MAX(COALESCE(last_used_ms, 0), $2), \
             backed_up = CASE WHEN sign_count = 0 THEN $3 ELSE backed_up END \
             WHERE id = $1 RETURNING sign_count",
        )
        .bind(credential_id)
        .bind(now)
        .bind(backed_up)
        .fetch_optional(&self.write)
        .await?;
        let Some(row) = row else { return Ok(SignCountUpdate::NotFound) };
        let current: i64 = row.try_get(0)?;
        let current = u32::try_from(current).map_err(|_| StoreError::Corrupt(format!("sign_count {current}")))?;
        if new_sign_count == 0 && current == 0 {
            Ok(SignCountUpdate::Advanced)
        } else {
            Ok(SignCountUpdate::NotAdvanced { current })
        }
    }

    async fn record_sign_in_with_session(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        session_id: &[u8],
        user_handle: &[u8],
        now: SystemTime,
        session_expires: SystemTime,
    ) -> Result<SignCountUpdate, StoreError> {
        // Three statements in one call to the writer connection: the session,
        // the compare-and-set (a row with `advanced` = 1 when it moved the
        // counter), and the time of use (a row with the counter as stored).
        let rows = sqlx::query(
            "INSERT INTO sessions (id, user_handle, created_ms, expires_ms) VALUES ($5, $6, $4, $7); \
             UPDATE credentials SET sign_count = $2, backed_up = $3, last_used_ms = $4 \
             WHERE id = $1 AND sign_count < $2 AND $2 > 0 RETURNING 1 AS advanced, sign_count; \
             UPDATE credentials SET last_used_ms = MAX(COALESCE(last_used_ms, 0), $4), \
             backed_up = CASE WHEN sign_count = 0 THEN $3 ELSE backed_up END \
             WHERE id = $1 RETURNING 0 AS advanced, sign_count",
        )
        .bind(credential_id)
        .bind(i64::from(new_sign_count))
        .bind(backed_up)
        .bind(ms(now))
        .bind(session_id)
        .bind(user_handle)
        .bind(ms(session_expires))
        .fetch_all(&self.write)
        .await?;
        let mut current = None;
        for row in &rows {
            let advanced: i64 = row.try_get(0)?;
            if advanced == 1 {
                return Ok(SignCountUpdate::Advanced);
            }
            let c: i64 = row.try_get(1)?;
            current = Some(u32::try_from(c).map_err(|_| StoreError::Corrupt(format!("sign_count {c}")))?);
        }
        Ok(match current {
            None => SignCountUpdate::NotFound,
            Some(0) if new_sign_count == 0 => SignCountUpdate::Advanced,
            Some(current) => SignCountUpdate::NotAdvanced { current },
        })
    }

    async fn rename_credential(
        &self,
        user_handle: &[u8],
        credential_id: &[u8],
        nickname: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE credentials SET nickname = $3 WHERE id = $1 AND user_handle = $2")
            .bind(credential_id)
            .bind(user_handle)
            .bind(nickname)
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_credential(&self, user_handle: &[u8], credential_id: &[u8]) -> Result<DeleteOutcome, StoreError> {
        // One writer connection: the count and the delete cannot interleave with another delete.
        let r = sqlx::query(
            "DELETE FROM credentials WHERE id = $1 AND user_handle = $2 \
             AND (SELECT COUNT(*) FROM credentials WHERE user_handle = $2) > 1",
        )
        .bind(credential_id)
        .bind(user_handle)
        .execute(&self.write)
        .await?;
        if r.rows_affected() > 0 {
            return Ok(DeleteOutcome::Deleted);
        }
        let exists = sqlx::query("SELECT 1 FROM credentials WHERE id = $1 AND user_handle = $2")
            .bind(credential_id)
            .bind(user_handle)
            .fetch_optional(&self.write)
            .await?;
        Ok(if exists.is_some() { DeleteOutcome::LastCredential } else { DeleteOutcome::NotFound })
    }

    async fn put_ceremony(&self, id: &[u8], state: &str, expires: SystemTime) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO ceremonies (id, state, expires_ms) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(state)
            .bind(ms(expires))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn take_ceremony(&self, id: &[u8]) -> Result<Option<PendingCeremony>, StoreError> {
        let row = sqlx::query("DELETE FROM ceremonies WHERE id = $1 RETURNING state, expires_ms")
            .bind(id)
            .fetch_optional(&self.write)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(PendingCeremony { state: r.try_get(0)?, expires_unix_ms: r.try_get(1)? })),
        }
    }

    async fn create_session(
        &self,
        id: &[u8],
        user_handle: &[u8],
        now: SystemTime,
        expires: SystemTime,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (id, user_handle, created_ms, expires_ms) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(user_handle)
            .bind(ms(now))
            .bind(ms(expires))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn session_user(&self, id: &[u8], now: SystemTime) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT u.handle, u.username, u.display_name, u.created_ms FROM sessions s \
             JOIN users u ON u.handle = s.user_handle WHERE s.id = $1 AND s.expires_ms > $2",
        )
        .bind(id)
        .bind(ms(now))
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn delete_session(&self, id: &[u8]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id).execute(&self.write).await?;
        Ok(())
    }

    async fn audit(&self, e: NewAuditEvent, now: SystemTime) -> Result<(), StoreError> {
        match self.audit_tx.send(AuditMsg::Event(e, ms(now))) {
            Ok(()) => Ok(()),
            // The writer task is gone (its runtime shut down): write directly.
            Err(mpsc::error::SendError(AuditMsg::Event(e, at))) => Ok(insert_audit(&self.write, &[(e, at)]).await?),
            Err(_) => Ok(()),
        }
    }

    async fn audit_events(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        self.flush_audit().await;
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at_ms, event, username, user_handle, credential_id, code, detail FROM audit_log \
             WHERE ($1 IS NULL OR username = $1) AND ($2 IS NULL OR event = $2) AND ($3 IS NULL OR at_ms >= $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(q.username.as_deref())
        .bind(q.kind.map(|k| k.as_str()))
        .bind(q.since_unix_ms)
        .bind(q.effective_limit())
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn purge_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        let now = ms(now);
        let a = sqlx::query("DELETE FROM ceremonies WHERE expires_ms < $1")
            .bind(now.saturating_sub(CEREMONY_GRACE_MS))
            .execute(&self.write)
            .await?;
        let b = sqlx::query("DELETE FROM sessions WHERE expires_ms < $1").bind(now).execute(&self.write).await?;
        Ok(a.rows_affected() + b.rows_affected())
    }
}
