//! SQLite storage (feature `sqlite`): the embedded default.
//!
//! A database file runs in WAL mode (readers never block the writer) with
//! `synchronous = FULL` on every connection that writes (the WAL is
//! fsync'd at each commit: whatever was answered 200, a registration, a
//! removed key, a factor change, a session revocation, a recorded sign-in,
//! survives a power cut as well as a process crash; CONTRACTS §2.2) and a
//! busy timeout. The writer thread's group commit (`sqlite_writer.rs`)
//! shares one fsync among all the sign-ins of a batch. `sqlite::memory:` is a private temporary file, removed
//! when the last clone of the store is dropped.
//!
//! The store is built for one server process per database file, and uses
//! that to keep the sign-in path off the database where it can:
//!
//! - Sign-ins (counter compare-and-set, time of use) and audit
//!   events go to the store's writer thread (`sqlite_writer.rs`), which
//!   commits whatever has queued up in one transaction (group commit). A
//!   sign-in is answered only after its transaction committed. (Sessions
//!   are signed tokens: a sign-in writes no session row.)
//! - Users and their credentials, once read, are kept in a write-through
//!   cache: registration, rename, delete and every recorded sign-in update or
//!   drop the cached entry, so a username-first sign-in reads nothing from
//!   the database. The counter in the cache is the one committed last; the
//!   authority is still the compare-and-set in the database, which catches a
//!   counter that went backwards whatever the cache said.
//! - Pending ceremonies (the state between `…/options` and `…/verify`) live
//!   in an in-process map. Taking a ceremony removes it under a lock, so of
//!   concurrent verifications of one challenge exactly one gets the state,
//!   as with the database. A ceremony does not survive a restart (the
//!   browser starts again, as after an expired challenge). The map is a
//!   [`CeremonyCache`], capped by
//!   count and bytes; at a cap, expired ones are dropped first, then new
//!   ones are refused with [`StoreError::Overloaded`].
//!
//! Two server processes on one SQLite file would not see each other's
//! ceremonies nor invalidate each other's caches, so the store refuses to
//! open a file that another store holds ([`StoreError::InUse`]): it keeps an
//! exclusive advisory lock on `FILE-hwkey.lock` while it lives (the system
//! drops it when the process ends, however it ends). Run several instances
//! on PostgreSQL, which keeps everything in the database. Operators' tools
//! that only read (the audit log, backups) are fine at any time.

use super::ceremony_cache::{CeremonyCache, CeremonyLimits};
use super::clear_hints::ClearHints;
use super::session_index::SessionIndex;
use super::sqlite_writer::{self, SignInWrite, WriteMsg};
use super::{
    AuditEvent, AuditQuery, AuditRow, CEREMONY_GRACE_MS, CREDENTIAL_COLUMNS, CREDENTIAL_USER_SELECT, CredentialRow,
    CredentialUserRow, DeleteOutcome, NewAuditEvent, PendingCeremony, SESSION_SECRET_NAME, SignCountUpdate, Store,
    StoreError, StoredCredential, UserRecord, UserRow, group_user_credentials, ms, transports_json,
};
use crate::server::CredentialRecord;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

/// Embedded schema migrations.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/sqlite");

/// The SQLite store. Cloning shares the pools, the writer thread and the caches.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    writer: mpsc::UnboundedSender<WriteMsg>,
    ceremonies: Arc<Mutex<CeremonyCache<String>>>,
    users: Arc<Mutex<UserCache>>,
    /// Session ids by user (see `session_index`: no on-disk index).
    sessions: Arc<SessionIndex>,
    /// Who may have failures or attempts for a key sign-in to lift.
    hints: Arc<ClearHints>,
    _temp: Option<Arc<TempDatabase>>,
    /// Held while any clone of the store lives: one store per database file.
    _lock: Arc<std::fs::File>,
}

/// The cache key of ceremony `id`: the id itself when it is a 32-byte
/// digest (what the HTTP layer passes), else its SHA-256.
fn ceremony_key(id: &[u8]) -> [u8; 32] {
    <[u8; 32]>::try_from(id).unwrap_or_else(|_| crate::crypto::default_provider().sha256(&[id]))
}

/// How many users (with their credentials) the SQLite store caches at most;
/// beyond that the cache starts over.
pub const MAX_CACHED_USERS: usize = 100_000;

/// How many usernames the SQLite store indexes at most (the index answers a
/// username-first lookup of a name without an account with no database
/// read); with more users, a lookup of an unknown name reads the database.
pub const MAX_INDEXED_NAMES: usize = 1_000_000;

/// Users and their credentials as last committed, by username, with indexes
/// by credential ID and user handle.
///
/// A lookup that misses reads the database and then fills the entry, unless
/// something was invalidated meanwhile (`generation` moved): then the read
/// may predate that change, and the entry is left for the next lookup.
///
/// Beside it, every username the database holds (`names`: loaded at
/// connect, kept by registrations and renames): a username-first sign-in
/// for a name that is not there is answered without reading the database,
/// as fast as a cached hit, so that the time `/api/login/options` takes
/// does not tell which names have an account (`benches/unknown_user.rs`).
#[derive(Debug, Default)]
pub(super) struct UserCache {
    by_name: HashMap<String, (UserRecord, Vec<StoredCredential>)>,
    name_of_credential: HashMap<Vec<u8>, String>,
    name_of_handle: HashMap<Vec<u8>, String>,
    generation: u64,
    /// Every stored username; `None`: not known (more than
    /// [`MAX_INDEXED_NAMES`]), every miss reads the database.
    names: Option<HashSet<String>>,
}

impl UserCache {
    /// Whether no user is named `username` (false when not known).
    fn surely_absent(&self, username: &str) -> bool {
        self.names.as_ref().is_some_and(|n| !n.contains(username))
    }

    /// A user named `username` was committed.
    fn name_added(&mut self, username: &str) {
        if let Some(n) = self.names.as_mut() {
            if n.len() >= MAX_INDEXED_NAMES {
                self.names = None;
            } else {
                n.insert(username.to_owned());
            }
        }
    }

    /// A user was renamed from `old` to `new` (committed).
    fn name_changed(&mut self, old: &str, new: &str) {
        if let Some(n) = self.names.as_mut() {
            n.remove(old);
        }
        self.name_added(new);
    }

    fn get(&self, username: &str) -> Option<(UserRecord, Vec<StoredCredential>)> {
        self.by_name.get(username).cloned()
    }

    fn credential(&self, credential_id: &[u8]) -> Option<(StoredCredential, UserRecord)> {
        let (user, creds) = self.by_name.get(self.name_of_credential.get(credential_id)?)?;
        let c = creds.iter().find(|c| c.record.credential_id.0 == credential_id)?;
        Some((c.clone(), user.clone()))
    }

    fn fill(&mut self, read_at: u64, user: &UserRecord, creds: &[StoredCredential]) {
        if read_at != self.generation {
            return;
        }
        if self.by_name.len() >= MAX_CACHED_USERS {
            self.by_name.clear();
            self.name_of_credential.clear();
            self.name_of_handle.clear();
        }
        self.remove(&user.username);
        for c in creds {
            self.name_of_credential.insert(c.record.credential_id.0.clone(), user.username.clone());
        }
        self.name_of_handle.insert(user.handle.0.clone(), user.username.clone());
        self.by_name.insert(user.username.clone(), (user.clone(), creds.to_vec()));
    }

    fn remove(&mut self, username: &str) {
        if let Some((user, creds)) = self.by_name.remove(username) {
            for c in &creds {
                self.name_of_credential.remove(&c.record.credential_id.0);
            }
            self.name_of_handle.remove(&user.handle.0);
        }
    }

    /// Forget the user named `username` (whatever changed about them).
    pub(super) fn invalidate_user(&mut self, username: &str) {
        self.generation = self.generation.wrapping_add(1);
        self.remove(username);
    }

    /// Forget the user with this handle.
    pub(super) fn invalidate_handle(&mut self, handle: &[u8]) {
        self.generation = self.generation.wrapping_add(1);
        if let Some(name) = self.name_of_handle.get(handle).cloned() {
            self.remove(&name);
        }
    }

    /// Forget the user who owns this credential.
    pub(super) fn invalidate_credential(&mut self, credential_id: &[u8]) {
        self.generation = self.generation.wrapping_add(1);
        if let Some(name) = self.name_of_credential.get(credential_id).cloned() {
            self.remove(&name);
        }
    }

    /// A sign-in advanced this credential's counter: bring the cached copy
    /// up to what was committed.
    pub(super) fn signed_in(&mut self, credential_id: &[u8], sign_count: u32, backed_up: bool, now_ms: i64) {
        let Some(name) = self.name_of_credential.get(credential_id) else { return };
        let Some((_, creds)) = self.by_name.get_mut(name) else { return };
        if let Some(c) = creds.iter_mut().find(|c| c.record.credential_id.0 == credential_id) {
            c.record.sign_count = sign_count;
            c.record.backed_up = backed_up;
            c.last_used_unix_ms = Some(c.last_used_unix_ms.map_or(now_ms, |t| t.max(now_ms)));
        }
    }
}

/// The file behind `sqlite::memory:`, removed (with its WAL) on drop.
#[derive(Debug)]
struct TempDatabase(PathBuf);

impl Drop for TempDatabase {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal", "-hwkey.lock"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Take the lock that makes this store the only one on the database at
/// `path`: an exclusive advisory lock on `PATH-hwkey.lock`, released by the
/// system when the process ends, however it ends.
fn lock_database(path: &Path) -> Result<std::fs::File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push("-hwkey.lock");
    let lock_path = PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Database(format!("cannot open the lock file {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse(format!(
            "the SQLite database {} is already in use by another hwkey store (another server process?); \
             one SQLite file serves one process: stop the other one, or use PostgreSQL for several instances",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::Database(format!("cannot lock {}: {e}", lock_path.display())))
        }
    }
}

fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// A fresh path for a private temporary database.
fn temp_path() -> Result<PathBuf, StoreError> {
    let r = crate::crypto::default_provider()
        .random_bytes(12)
        .map_err(|_| StoreError::Database("random source failed".into()))?;
    let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
    Ok(std::env::temp_dir().join(format!("hwkey-{}-{name}.sqlite3", std::process::id())))
}

impl SqliteStore {
    /// Open (creating if missing) `sqlite://FILE` or `sqlite::memory:`, and migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (base, temp) = if is_memory(url) {
            let path = temp_path()?;
            let temp = Arc::new(TempDatabase(path.clone()));
            (SqliteConnectOptions::new().filename(&path), Some(temp))
        } else {
            let opts =
                SqliteConnectOptions::from_str(url).map_err(|e| StoreError::UnsupportedUrl(format!("{url}: {e}")))?;
            (opts, None)
        };
        let opts = base
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let path = opts.get_filename().to_path_buf();
        // Before anything touches the file: a second store on it would serve
        // from caches that the first one's writes do not reach.
        let lock = Arc::new(lock_database(&path)?);
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
        let names: Vec<String> = sqlx::query_scalar("SELECT username FROM users LIMIT $1")
            .bind(i64::try_from(MAX_INDEXED_NAMES).unwrap_or(i64::MAX).saturating_add(1))
            .fetch_all(&write)
            .await?;
        let names = (names.len() <= MAX_INDEXED_NAMES).then(|| names.into_iter().collect());
        let users = Arc::new(Mutex::new(UserCache { names, ..UserCache::default() }));
        let sessions = Arc::new(load_session_index(&write).await?);
        let hints = Arc::new(load_clear_hints(&write).await?);
        let writer = sqlite_writer::spawn(&path, users.clone(), sessions.clone(), hints.clone())?;
        Ok(SqliteStore {
            write,
            read,
            writer,
            ceremonies: Arc::new(Mutex::new(CeremonyCache::new(CeremonyLimits::default()))),
            users,
            sessions,
            hints,
            _temp: temp,
            _lock: lock,
        })
    }

    /// Write queued audit events, then close both pools. The writer thread
    /// ends when the last clone of the store is dropped.
    pub async fn close(&self) {
        self.flush_audit().await;
        self.read.close().await;
        self.write.close().await;
    }

    /// Wait until every audit event (and sign-in) queued so far is written.
    pub async fn flush_audit(&self) {
        let (ack, done) = oneshot::channel();
        if self.writer.send(WriteMsg::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }

    /// A sign-in through the writer thread; answered once it committed.
    async fn sign_in(
        &self,
        credential_id: &[u8],
        new_sign_count: u32,
        backed_up: bool,
        now: SystemTime,
        event: Option<NewAuditEvent>,
    ) -> Result<SignCountUpdate, StoreError> {
        let (reply, answer) = oneshot::channel();
        let w = Box::new(SignInWrite {
            credential_id: credential_id.to_vec(),
            new_sign_count,
            backed_up,
            now_ms: ms(now),
            event,
            session: None,
            clears: None,
            ceremony: None,
            reply,
        });
        self.writer.send(WriteMsg::SignIn(w)).map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    fn ceremonies(&self) -> std::sync::MutexGuard<'_, CeremonyCache<String>> {
        // The map stays consistent even if a holder panicked (every update is one call).
        self.ceremonies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn users(&self) -> std::sync::MutexGuard<'_, UserCache> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer pool (one connection), for operators' own queries. Writing
    /// through it bypasses the store's cache: change users and credentials
    /// through the [`Store`] methods instead.
    /// Forget the cached user `username` / `handle` after a rename to `new`.
    pub(crate) fn invalidate_cached_user(&self, handle: &[u8], username: &str, new: &str) {
        let mut c = self.users();
        c.invalidate_user(username);
        c.invalidate_handle(handle);
        c.name_changed(username, new);
    }

    /// Forget the cached user with `handle` (after a change to their credentials).
    pub(crate) fn invalidate_cached_handle(&self, handle: &[u8]) {
        self.users().invalidate_handle(handle);
    }

    pub(crate) fn read_pool(&self) -> &SqlitePool {
        &self.read
    }

    /// A write transaction that holds SQLite's write lock from its start
    /// (`BEGIN IMMEDIATE`): what it reads cannot be overtaken by another
    /// writer before it writes.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, StoreError> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// `user` may have a row in `account_failures` from now on (before it is written).
    pub(crate) fn note_failure_row(&self, user: &[u8]) {
        self.hints.note_user(user);
    }

    /// `subject` may have rows in `otp_attempts` from now on (before one is written).
    pub(crate) fn note_attempt_row(&self, subject: &str) {
        self.hints.note_subject(subject);
    }

    /// The in-memory index of session rows by user (there is no on-disk one).
    pub(crate) fn session_index(&self) -> Option<&SessionIndex> {
        Some(&self.sessions)
    }

    /// A key sign-in through the writer thread, with its session row in the
    /// same transaction as the counter and the audit event.
    /// The writer lifts a key sign-in's failures and attempt window in the
    /// sign-in's own transaction.
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
        let (reply, answer) = oneshot::channel();
        let w = Box::new(SignInWrite {
            credential_id: credential_id.to_vec(),
            new_sign_count,
            backed_up,
            now_ms: ms(now),
            event: Some(event),
            session: Some(session.clone()),
            clears: Some(clears.clone()),
            ceremony: ceremony.cloned(),
            reply,
        });
        self.writer.send(WriteMsg::SignIn(w)).map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// The pool for writes (one connection).
    pub fn write_pool(&self) -> &SqlitePool {
        &self.write
    }
}

/// The index of the unexpired session rows by user, read from the table;
/// rows whose id no token can have (not 32 bytes) are deleted first.
async fn load_session_index(pool: &SqlitePool) -> Result<SessionIndex, StoreError> {
    sqlx::query("DELETE FROM account_sessions WHERE length(id) <> $1")
        .bind(super::session_index::ID_LEN as i64)
        .execute(pool)
        .await?;
    let index = SessionIndex::default();
    let now = ms(SystemTime::now());
    // In pages of ids, so that a large table is never held in memory twice.
    let mut after: Vec<u8> = Vec::new();
    loop {
        let page: Vec<(Vec<u8>, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT id, user_handle, expires_ms FROM account_sessions \
             WHERE id > $1 ORDER BY id LIMIT 10000",
        )
        .bind(&after)
        .fetch_all(pool)
        .await?;
        let Some(last) = page.last().map(|r| r.0.clone()) else { break };
        for (id, user, expires) in &page {
            if *expires > now {
                index.add(user, id, *expires);
            }
        }
        after = last;
    }
    Ok(index)
}

/// Who has failures in a row or attempts, read from the tables.
async fn load_clear_hints(pool: &SqlitePool) -> Result<ClearHints, StoreError> {
    let hints = ClearHints::default();
    let users: Vec<Vec<u8>> = sqlx::query_scalar("SELECT user_handle FROM account_failures").fetch_all(pool).await?;
    for u in &users {
        hints.note_user(u);
    }
    let subjects: Vec<String> = sqlx::query_scalar("SELECT DISTINCT subject FROM otp_attempts").fetch_all(pool).await?;
    for s in &subjects {
        hints.note_subject(s);
    }
    Ok(hints)
}

fn writer_gone() -> StoreError {
    StoreError::Database("the SQLite writer thread stopped".into())
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
        super::check_new_credential(new_user, nickname)?;
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
        let mut users = self.users();
        if let Some(u) = new_user {
            users.invalidate_user(&u.username);
            users.name_added(&u.username);
        }
        users.invalidate_handle(&c.user_id.0);
        Ok(())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        // From the cache, or the index says there is none: no read, for a
        // known name as for an unknown one.
        {
            let users = self.users();
            if let Some((user, _)) = users.by_name.get(username) {
                return Ok(Some(user.clone()));
            }
            if users.surely_absent(username) {
                return Ok(None);
            }
        }
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
        if let Some(hit) = self.users().credential(credential_id) {
            return Ok(Some(hit));
        }
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
        let read_at = {
            let users = self.users();
            if let Some(hit) = users.get(username) {
                return Ok(Some(hit));
            }
            if users.surely_absent(username) {
                return Ok(None);
            }
            users.generation
        };
        let rows: Vec<CredentialUserRow> = sqlx::query_as(&format!(
            "SELECT {CREDENTIAL_COLUMNS}, {CREDENTIAL_USER_SELECT} WHERE u.username = $1 ORDER BY c.created_ms, c.id"
        ))
        .bind(username)
        .fetch_all(&self.read)
        .await?;
        let found = match group_user_credentials(rows)? {
            Some(found) => Some(found),
            // No credentials (or no user): one more look to tell which.
            None => self.user_by_username(username).await?.map(|u| (u, Vec::new())),
        };
        if let Some((u, creds)) = &found {
            self.users().fill(read_at, u, creds);
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
        self.sign_in(credential_id, new_sign_count, backed_up, now, Some(event)).await
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
            .execute(&self.write)
            .await?;
        self.users().invalidate_handle(user_handle);
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
        self.users().invalidate_handle(user_handle);
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
        let key = ceremony_key(id);
        let now = ms(SystemTime::now());
        let mut map = self.ceremonies();
        if map.contains(&key) {
            // Same contract as the primary key in the database.
            return Err(StoreError::Database("a ceremony with this id is already pending".into()));
        }
        map.put(key, state.to_owned(), state.len(), ms(expires), now).map_err(|e| StoreError::Overloaded(e.to_string()))
    }

    async fn take_ceremony(&self, id: &[u8]) -> Result<Option<PendingCeremony>, StoreError> {
        Ok(self
            .ceremonies()
            .take(&ceremony_key(id))
            .map(|(state, expires_unix_ms)| PendingCeremony { state, expires_unix_ms }))
    }

    async fn consume_ceremony(&self, id: &[u8], expires: SystemTime) -> Result<bool, StoreError> {
        let r =
            sqlx::query(super::session_sql::CONSUME_CEREMONY).bind(id).bind(ms(expires)).execute(&self.write).await?;
        Ok(r.rows_affected() == 1)
    }

    async fn session_secret(&self) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let fresh = Zeroizing::new(
            crate::crypto::default_provider()
                .random_bytes(32)
                .map_err(|_| StoreError::Database("random source failed".into()))?,
        );
        sqlx::query(super::session_sql::INSERT_SECRET)
            .bind(SESSION_SECRET_NAME)
            .bind(fresh.as_slice())
            .bind(ms(SystemTime::now()))
            .execute(&self.write)
            .await?;
        let row =
            sqlx::query(super::session_sql::SELECT_SECRET).bind(SESSION_SECRET_NAME).fetch_one(&self.write).await?;
        let secret: Vec<u8> = row.try_get(0)?;
        Ok(Zeroizing::new(secret))
    }

    async fn revoke_session(&self, id: &[u8], expires: SystemTime) -> Result<(), StoreError> {
        sqlx::query(super::session_sql::REVOKE).bind(id).bind(ms(expires)).execute(&self.write).await?;
        Ok(())
    }

    async fn session_revoked(&self, id: &[u8]) -> Result<bool, StoreError> {
        let row = sqlx::query(super::session_sql::IS_REVOKED).bind(id).fetch_optional(&self.read).await?;
        Ok(row.is_some())
    }

    async fn audit(&self, e: NewAuditEvent, now: SystemTime) -> Result<(), StoreError> {
        self.writer.send(WriteMsg::Event(e, ms(now))).map_err(|_| writer_gone())
    }

    async fn audit_events(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        self.flush_audit().await;
        let sql = q.select_sql();
        let rows: Vec<AuditRow> = q.bind(&sql).fetch_all(&self.read).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    fn ceremonies_in_process(&self) -> bool {
        true
    }

    async fn purge_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        let now = ms(now);
        let a = self.ceremonies().purge(now.saturating_sub(CEREMONY_GRACE_MS));
        let b = sqlx::query(super::session_sql::PURGE).bind(now).execute(&self.write).await?;
        let c = sqlx::query(super::otp::PURGE_PENDING_TOTP)
            .bind(super::otp::pending_totp_cutoff(now))
            .execute(&self.write)
            .await?;
        // Kept an hour past expiry, so that an instance whose clock is
        // behind never takes an expired id for an unused one.
        let used = sqlx::query(super::session_sql::PURGE_USED_CEREMONIES)
            .bind(now.saturating_sub(CEREMONY_GRACE_MS))
            .execute(&self.write)
            .await?;
        Ok(used.rows_affected() + a + b.rows_affected() + c.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::cose::CoseAlgorithm;
    use crate::proto::webauthn::Base64Url;
    use crate::server::attestation::AttestationType;

    fn user(name: &str, handle: u8) -> UserRecord {
        UserRecord {
            handle: Base64Url(vec![handle; 32]),
            username: name.into(),
            display_name: name.into(),
            created_unix_ms: 1,
        }
    }

    fn cred(id: u8, owner: &UserRecord, sign_count: u32) -> StoredCredential {
        StoredCredential {
            record: CredentialRecord {
                credential_id: Base64Url(vec![id; 16]),
                user_id: owner.handle.clone(),
                public_key: Base64Url(vec![1, 2, 3]),
                algorithm: CoseAlgorithm::ES256,
                sign_count,
                uv_initialized: false,
                transports: vec![],
                backup_eligible: false,
                backed_up: false,
                aaguid: String::new(),
                attestation_format: "none".into(),
                attestation_type: AttestationType::None,
                attestation_trusted: false,
                discoverable: None,
            },
            nickname: "k".into(),
            created_unix_ms: 1,
            last_used_unix_ms: None,
        }
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let mut c = UserCache::default();
        let u = user("ann", 1);
        let read_at = c.generation;
        c.invalidate_handle(&u.handle.0); // a write landed while the read was in flight
        c.fill(read_at, &u, &[cred(9, &u, 4)]);
        assert!(c.get("ann").is_none(), "possibly stale, so not cached");
        let read_at = c.generation;
        c.fill(read_at, &u, &[cred(9, &u, 4)]);
        assert_eq!(c.get("ann").map(|(_, cs)| cs[0].record.sign_count), Some(4));
    }

    #[test]
    fn sign_ins_update_and_changes_drop_the_cached_user() {
        let mut c = UserCache::default();
        let (ann, bob) = (user("ann", 1), user("bob", 2));
        c.fill(c.generation, &ann, &[cred(9, &ann, 4), cred(8, &ann, 0)]);
        c.fill(c.generation, &bob, &[cred(7, &bob, 1)]);

        c.signed_in(&[9; 16], 5, true, 1_000);
        c.signed_in(&[9; 16], 6, true, 900); // time of use never goes back
        let (_, creds) = c.get("ann").expect("cached");
        assert_eq!((creds[0].record.sign_count, creds[0].record.backed_up), (6, true));
        assert_eq!(creds[0].last_used_unix_ms, Some(1_000));
        let (found, owner) = c.credential(&[8; 16]).expect("by credential");
        assert_eq!((found.record.sign_count, owner.username.as_str()), (0, "ann"));

        c.invalidate_credential(&[9; 16]);
        assert!(c.get("ann").is_none());
        assert!(c.credential(&[8; 16]).is_none(), "the indexes go with the user");
        assert!(c.get("bob").is_some(), "other users stay");
        c.invalidate_user("bob");
        assert!(c.get("bob").is_none() && c.credential(&[7; 16]).is_none());
        c.signed_in(&[7; 16], 9, false, 1); // not cached: nothing to update, nothing breaks
    }

    /// Every form of the audit query reads through an index in the order it
    /// returns rows (no full scan, no sort), so an account's activity costs
    /// the same with a billion events in the log as with ten.
    #[tokio::test]
    async fn audit_queries_use_an_index_and_need_no_sort() {
        let store = SqliteStore::connect("sqlite::memory:").await.expect("store");
        for (username, kind, since) in [
            (None, None, None),
            (Some("ann"), None, None),
            (Some("ann"), Some(crate::store::AuditKind::SignIn), None),
            (Some("ann"), None, Some(5)),
            (None, None, Some(5)),
            (None, Some(crate::store::AuditKind::SignIn), Some(5)),
        ] {
            let q = AuditQuery { username: username.map(Into::into), kind, since_unix_ms: since, limit: 10 };
            let sql = format!("EXPLAIN QUERY PLAN {}", q.select_sql());
            // The plan's rows: id, parent, (unused), detail.
            let rows: Vec<(i64, i64, i64, String)> = q.bind(&sql).fetch_all(&store.read).await.expect("plan");
            let plan: Vec<String> = rows.into_iter().map(|r| r.3).collect();
            let plan = plan.join("; ");
            let index = if username.is_some() { "audit_by_username" } else { "audit_by_time" };
            assert!(plan.contains(index), "{q:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{q:?} sorts: {plan}");
        }
    }
}
