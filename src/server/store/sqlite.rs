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
//! that lives as long as the store.
//!
//! Sign-ins (counter compare-and-set, time of use, session) and audit events
//! go to one writer task that commits whatever has queued up in one
//! transaction, sent to the writer connection's thread as one call (group
//! commit). A sign-in is answered only after its transaction committed, so
//! an accepted sign-in's counter is as durable as with a direct write; if a
//! batch fails, its parts are written one by one. Audit events are not
//! waited for: an event appended just before a crash may be lost, never one
//! appended before a flush or a close (see [`SqliteStore::flush_audit`]).
//!
//! Pending ceremonies (the state between `…/options` and `…/verify`) live in
//! an in-process map, not in the database: SQLite is the single-machine
//! backend, so the process that issued a challenge is the one that verifies
//! it, and a sign-in then costs one round trip to the writer connection
//! instead of three. Taking a ceremony removes it under a lock, so of
//! concurrent verifications of one challenge exactly one gets the state, as
//! with the database. What changes: a ceremony does not survive a restart
//! (the browser starts again, as after an expired challenge), and two
//! server processes on one SQLite file do not see each other's ceremonies
//! (run several instances on PostgreSQL, which keeps ceremonies in the
//! database). At most [`MAX_PENDING_CEREMONIES`] are held; beyond that,
//! expired ones are dropped first, then new ones are refused.

use super::{
    AuditEvent, AuditQuery, AuditRow, CEREMONY_GRACE_MS, CREDENTIAL_COLUMNS, CREDENTIAL_USER_SELECT, CredentialRow,
    CredentialUserRow, DeleteOutcome, NewAuditEvent, PendingCeremony, SignCountUpdate, Store, StoreError,
    StoredCredential, UserRecord, UserRow, group_user_credentials, ms, transports_json,
};
use crate::server::CredentialRecord;
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// Embedded schema migrations.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/server/store/migrations/sqlite");

/// The SQLite store. Cloning shares the pools.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    writer: mpsc::UnboundedSender<WriteMsg>,
    ceremonies: Arc<Mutex<Ceremonies>>,
}

/// How many pending ceremonies the SQLite store holds in memory at most.
pub const MAX_PENDING_CEREMONIES: usize = 200_000;

/// Pending ceremonies by id (a digest of the ceremony cookie): state and
/// expiry (Unix ms).
#[derive(Debug, Default)]
struct Ceremonies {
    by_id: HashMap<Box<[u8]>, (String, i64)>,
}

impl Ceremonies {
    /// Drop ceremonies that expired before `before_ms`; how many went.
    fn purge(&mut self, before_ms: i64) -> u64 {
        let n = self.by_id.len();
        self.by_id.retain(|_, (_, expires)| *expires >= before_ms);
        (n - self.by_id.len()) as u64
    }
}

/// Audit events and sign-in writes go to one writer task that executes
/// whatever has queued up in one transaction, in one call to the writer
/// connection's thread (group commit): under load, one commit carries many
/// sign-ins and events instead of one each. A sign-in's caller is answered
/// only after the transaction that holds its counter and session committed,
/// so durability is that of a direct write. Reading the log first waits for
/// the queue to drain, so a reader sees every event appended before it asked.
#[derive(Debug)]
enum WriteMsg {
    Event(NewAuditEvent, i64),
    SignIn(Box<SignInWrite>),
    Flush(oneshot::Sender<()>),
}

/// One [`Store::record_sign_in_with_session`] waiting for the writer.
#[derive(Debug)]
struct SignInWrite {
    credential_id: Vec<u8>,
    new_sign_count: u32,
    backed_up: bool,
    session_id: Vec<u8>,
    user_handle: Vec<u8>,
    now_ms: i64,
    expires_ms: i64,
    reply: oneshot::Sender<Result<SignCountUpdate, StoreError>>,
}

const AUDIT_BATCH: usize = 256;
const SIGN_IN_BATCH: usize = 64;

fn spawn_writer(pool: SqlitePool) -> mpsc::UnboundedSender<WriteMsg> {
    let (tx, mut rx) = mpsc::unbounded_channel::<WriteMsg>();
    tokio::spawn(async move {
        let mut events: Vec<(NewAuditEvent, i64)> = Vec::new();
        let mut sign_ins: Vec<SignInWrite> = Vec::new();
        let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    WriteMsg::Event(e, at) => events.push((e, at)),
                    WriteMsg::SignIn(w) => sign_ins.push(*w),
                    WriteMsg::Flush(ack) => acks.push(ack),
                }
                if events.len() < AUDIT_BATCH && sign_ins.len() < SIGN_IN_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            write_batch(&pool, &mut events, &mut sign_ins).await;
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
        }
    });
    tx
}

/// Write queued events and sign-ins (emptying both), answering each sign-in.
async fn write_batch(pool: &SqlitePool, events: &mut Vec<(NewAuditEvent, i64)>, sign_ins: &mut Vec<SignInWrite>) {
    if sign_ins.is_empty() {
        if !events.is_empty() {
            if let Err(e) = insert_audit(pool, events).await {
                tracing::error!("audit log write of {} events failed: {e}", events.len());
            }
            events.clear();
        }
        return;
    }
    match batch_transaction(pool, events, sign_ins).await {
        Ok(results) => {
            for (w, r) in sign_ins.drain(..).zip(results) {
                let _ = w.reply.send(Ok(r));
            }
        }
        Err(e) => {
            // Rolled back as a whole: write each part on its own, so one
            // failing sign-in (or event) does not fail the others.
            tracing::debug!("group commit of {} sign-ins failed ({e}); writing one by one", sign_ins.len());
            if !events.is_empty() {
                if let Err(e) = insert_audit(pool, events).await {
                    tracing::error!("audit log write of {} events failed: {e}", events.len());
                }
            }
            for w in sign_ins.drain(..) {
                let r = sign_in_one(pool, &w).await;
                let _ = w.reply.send(r);
            }
        }
    }
    events.clear();
}

/// Per sign-in, three statements (the session, the compare-and-set with a
/// row `advanced` = 1 when it moved the counter, and the time of use with a
/// row holding the counter as stored), each row tagged with the sign-in's
/// index `i`. `$N` numbers the sign-in's binds from `base`.
fn push_sign_in_sql(sql: &mut String, i: usize, base: usize) {
    use std::fmt::Write as _;
    let p = |k: usize| base + k;
    let _ = write!(
        sql,
        "INSERT INTO sessions (id, user_handle, created_ms, expires_ms) VALUES (${s}, ${u}, ${now}, ${exp}); \
         UPDATE credentials SET sign_count = ${n}, backed_up = ${b}, last_used_ms = ${now} \
         WHERE id = ${c} AND sign_count < ${n} AND ${n} > 0 RETURNING {i} AS i, 1 AS advanced, sign_count; \
         UPDATE credentials SET last_used_ms = MAX(COALESCE(last_used_ms, 0), ${now}), \
         backed_up = CASE WHEN sign_count = 0 THEN ${b} ELSE backed_up END \
         WHERE id = ${c} RETURNING {i} AS i, 0 AS advanced, sign_count; ",
        c = p(1),
        n = p(2),
        b = p(3),
        now = p(4),
        s = p(5),
        u = p(6),
        exp = p(7),
    );
}

fn bind_sign_in<'q>(
    q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    w: &'q SignInWrite,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    q.bind(w.credential_id.as_slice())
        .bind(i64::from(w.new_sign_count))
        .bind(w.backed_up)
        .bind(w.now_ms)
        .bind(w.session_id.as_slice())
        .bind(w.user_handle.as_slice())
        .bind(w.expires_ms)
}

/// What the tagged rows of one sign-in's statements say.
fn sign_in_outcome(new_sign_count: u32, advanced: bool, current: Option<i64>) -> Result<SignCountUpdate, StoreError> {
    if advanced {
        return Ok(SignCountUpdate::Advanced);
    }
    let current = match current {
        None => return Ok(SignCountUpdate::NotFound),
        Some(c) => u32::try_from(c).map_err(|_| StoreError::Corrupt(format!("sign_count {c}")))?,
    };
    Ok(if current == 0 && new_sign_count == 0 {
        SignCountUpdate::Advanced
    } else {
        SignCountUpdate::NotAdvanced { current }
    })
}

/// Outcomes from rows `(i, advanced, sign_count)` for `n` sign-ins.
fn outcomes(rows: &[sqlx::sqlite::SqliteRow], sign_ins: &[SignInWrite]) -> Result<Vec<SignCountUpdate>, StoreError> {
    let mut seen: Vec<(bool, Option<i64>)> = vec![(false, None); sign_ins.len()];
    for row in rows {
        let i: i64 = row.try_get(0)?;
        let advanced: i64 = row.try_get(1)?;
        let count: i64 = row.try_get(2)?;
        let slot = usize::try_from(i)
            .ok()
            .and_then(|i| seen.get_mut(i))
            .ok_or_else(|| StoreError::Corrupt(format!("sign-in index {i}")))?;
        if advanced == 1 {
            slot.0 = true;
        } else {
            slot.1 = Some(count);
        }
    }
    sign_ins.iter().zip(seen).map(|(w, (adv, cur))| sign_in_outcome(w.new_sign_count, adv, cur)).collect()
}

/// Everything queued in one transaction, in one call to the writer thread.
async fn batch_transaction(
    pool: &SqlitePool,
    events: &[(NewAuditEvent, i64)],
    sign_ins: &[SignInWrite],
) -> Result<Vec<SignCountUpdate>, StoreError> {
    let mut sql = String::with_capacity(64 + events.len() * 40 + sign_ins.len() * 560);
    sql.push_str("BEGIN IMMEDIATE; ");
    let mut base = 0;
    if !events.is_empty() {
        sql.push_str(
            "INSERT INTO audit_log (at_ms, event, username, user_handle, credential_id, code, detail) VALUES ",
        );
        for k in 0..events.len() {
            use std::fmt::Write as _;
            let b = base + k * 7;
            let sep = if k == 0 { "" } else { ", " };
            let _ = write!(
                sql,
                "{sep}(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            );
        }
        sql.push_str("; ");
        base += events.len() * 7;
    }
    for i in 0..sign_ins.len() {
        push_sign_in_sql(&mut sql, i, base + i * 7);
    }
    sql.push_str("COMMIT;");
    // Batch text varies with its size: not worth a slot in the statement cache.
    let mut q = sqlx::query(&sql).persistent(false);
    for (e, at) in events {
        q = q
            .bind(*at)
            .bind(e.kind.as_str())
            .bind(e.username.as_deref())
            .bind(e.user_handle.as_deref())
            .bind(e.credential_id.as_deref())
            .bind(e.code.as_deref())
            .bind(e.detail.as_str());
    }
    for w in sign_ins {
        q = bind_sign_in(q, w);
    }
    let mut conn = pool.acquire().await?;
    match q.fetch_all(&mut *conn).await {
        Ok(rows) => outcomes(&rows, sign_ins),
        Err(e) => {
            // The transaction may still be open; there may be none (then this fails harmlessly).
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e.into())
        }
    }
}

/// One sign-in on its own (no explicit transaction).
async fn sign_in_one(pool: &SqlitePool, w: &SignInWrite) -> Result<SignCountUpdate, StoreError> {
    let mut sql = String::new();
    push_sign_in_sql(&mut sql, 0, 0);
    let rows = bind_sign_in(sqlx::query(&sql), w).fetch_all(pool).await?;
    outcomes(&rows, std::slice::from_ref(w))?.pop().ok_or_else(|| StoreError::Corrupt("no sign-in outcome".into()))
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
            let writer = spawn_writer(pool.clone());
            SqliteStore { write: pool.clone(), read: pool, writer, ceremonies: Arc::default() }
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
            let writer = spawn_writer(write.clone());
            return Ok(SqliteStore { write, read, writer, ceremonies: Arc::default() });
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
        if self.writer.send(WriteMsg::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }

    fn ceremonies(&self) -> std::sync::MutexGuard<'_, Ceremonies> {
        // The map stays consistent even if a holder panicked (every update is one call).
        self.ceremonies.lock().unwrap_or_else(PoisonError::into_inner)
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
        let (reply, answer) = oneshot::channel();
        let w = Box::new(SignInWrite {
            credential_id: credential_id.to_vec(),
            new_sign_count,
            backed_up,
            session_id: session_id.to_vec(),
            user_handle: user_handle.to_vec(),
            now_ms: ms(now),
            expires_ms: ms(session_expires),
            reply,
        });
        match self.writer.send(WriteMsg::SignIn(w)) {
            Ok(()) => answer.await.map_err(|_| StoreError::Database("the writer task stopped".into()))?,
            // The writer task is gone (its runtime shut down): write directly.
            Err(mpsc::error::SendError(WriteMsg::SignIn(w))) => sign_in_one(&self.write, &w).await,
            Err(_) => Err(StoreError::Database("the writer task stopped".into())),
        }
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
        let mut map = self.ceremonies();
        if map.by_id.len() >= MAX_PENDING_CEREMONIES && !map.by_id.contains_key(id) {
            // Full: drop what expired long ago, then anything expired.
            let now = ms(SystemTime::now());
            if map.purge(now.saturating_sub(CEREMONY_GRACE_MS)) == 0 {
                map.purge(now);
            }
            if map.by_id.len() >= MAX_PENDING_CEREMONIES {
                return Err(StoreError::Database(format!(
                    "too many pending ceremonies ({MAX_PENDING_CEREMONIES}); try again later"
                )));
            }
        }
        match map.by_id.entry(id.into()) {
            // Same contract as the primary key in the database.
            std::collections::hash_map::Entry::Occupied(_) => {
                Err(StoreError::Database("a ceremony with this id is already pending".into()))
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((state.to_owned(), ms(expires)));
                Ok(())
            }
        }
    }

    async fn take_ceremony(&self, id: &[u8]) -> Result<Option<PendingCeremony>, StoreError> {
        Ok(self
            .ceremonies()
            .by_id
            .remove(id)
            .map(|(state, expires_unix_ms)| PendingCeremony { state, expires_unix_ms }))
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
        match self.writer.send(WriteMsg::Event(e, ms(now))) {
            Ok(()) => Ok(()),
            // The writer task is gone (its runtime shut down): write directly.
            Err(mpsc::error::SendError(WriteMsg::Event(e, at))) => Ok(insert_audit(&self.write, &[(e, at)]).await?),
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
        let a = self.ceremonies().purge(now.saturating_sub(CEREMONY_GRACE_MS));
        let b = sqlx::query("DELETE FROM sessions WHERE expires_ms < $1").bind(now).execute(&self.write).await?;
        Ok(a + b.rows_affected())
    }
}
