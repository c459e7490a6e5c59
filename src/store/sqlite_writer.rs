//! The SQLite store's writer thread: group commit of sign-ins and audit events.
//!
//! Every sign-in writes its counter (compare-and-set) and its time of use;
//! every request appends audit events. These go to one OS
//! thread that owns a SQLite connection of its own (rusqlite, with cached
//! prepared statements) and commits whatever has queued up in one
//! transaction. A sign-in's caller is answered only after the transaction
//! that holds its counter committed (`synchronous = FULL`: fsync'd), so
//! durability is that of a direct write, at one fsync per batch; audit events are not waited for (a reader of the log first
//! waits for the queue to drain, see [`WriteMsg::Flush`]). If a batch fails
//! as a whole, its parts are written one by one, so one bad sign-in does not
//! fail the others.
//!
//! The WAL is copied back into the database file (checkpointed) mostly by
//! a second thread, off the sign-in path, and finished by the writer itself
//! once it passes 16 MiB, so that it starts again from the beginning: its
//! size stays bounded however steady the load (see [`spawn`]).
//!
//! Why a thread of its own rather than sqlx: profiling the demo server under
//! load showed the sqlx SQLite driver spending more CPU than the signature
//! check, in its worker-thread hand-offs (a futex wake per statement) and in
//! re-preparing the multi-statement batch text each time. Here a batch costs
//! one wake-up, and each statement is prepared once per connection.

use super::clear_hints::ClearHints;
use super::session_index::SessionIndex;
use super::sqlite::UserCache;
use super::{NewAuditEvent, SignCountUpdate, StoreError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A message for the writer thread.
#[derive(Debug)]
pub(super) enum WriteMsg {
    /// Append an audit event (at Unix ms); nobody waits for it.
    Event(NewAuditEvent, i64),
    /// Record a sign-in and answer through its `reply`.
    SignIn(Box<SignInWrite>),
    /// Answer once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// One sign-in waiting for the writer: the counter compare-and-set, the
/// time of use, and the audit event to append in the same transaction when
/// the sign-in is recorded.
#[derive(Debug)]
pub(super) struct SignInWrite {
    pub credential_id: Vec<u8>,
    pub new_sign_count: u32,
    pub backed_up: bool,
    pub now_ms: i64,
    pub event: Option<NewAuditEvent>,
    /// The session row of a key sign-in, inserted when the sign-in is recorded.
    pub session: Option<super::account::SessionRow>,
    /// What a key sign-in lifts, when it is recorded.
    pub clears: Option<super::account::SignInClears>,
    /// The sealed ceremony the sign-in uses up first (nothing else is
    /// written when it was used already).
    pub ceremony: Option<super::account::UsedCeremony>,
    pub reply: oneshot::Sender<Result<SignCountUpdate, StoreError>>,
}

/// What the store keeps in memory for the writer: the session index (ids
/// added before their rows) and who may have failures or attempts to lift.
#[derive(Debug, Default)]
struct Memory {
    sessions: Arc<SessionIndex>,
    hints: Arc<ClearHints>,
}

/// The shortest time between two commits when requests keep coming
/// (`HWKEY_SQLITE_COMMIT_INTERVAL_US` overrides it, for tuning).
const MIN_COMMIT_INTERVAL: Duration = Duration::from_micros(2_000);

/// A duration from the environment variable `name` (in `unit`s), else `default`.
fn tuned(name: &str, unit: Duration, default: Duration) -> Duration {
    std::env::var(name).ok().and_then(|v| v.trim().parse::<u32>().ok()).map_or(default, |n| unit * n)
}

/// Most audit events per transaction.
const AUDIT_BATCH: usize = 512;
/// Most sign-ins per transaction.
const SIGN_IN_BATCH: usize = 128;

const INSERT_AUDIT: &str = "INSERT INTO audit_log (at_ms, event, username, user_handle, credential_id, code, detail) \
                            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const INSERT_SESSION: &str = "INSERT INTO account_sessions (id, user_handle, method, created_ms, last_seen_ms, expires_ms) \
                              VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// A key sign-in lifts the lockout of the fallback factors and the account's
/// attempt window (index lookups; nothing to delete in the usual case).
const CLEAR_FAILURES: &str = "DELETE FROM account_failures WHERE user_handle = ?1";
const CLEAR_ATTEMPTS: &str = "DELETE FROM otp_attempts WHERE subject = ?1";
/// A sealed ceremony used: one row when it was new.
const CONSUME_CEREMONY: &str =
    "INSERT INTO used_ceremonies (id, expires_ms) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING";
/// Moves the counter forward, and only forward.
const ADVANCE: &str = "UPDATE credentials SET sign_count = ?2, backed_up = ?3, last_used_ms = ?4 \
                       WHERE id = ?1 AND sign_count < ?2 RETURNING sign_count";
/// When the counter did not move: the time of use (never backwards), and the
/// backup state of a credential without a counter.
const TOUCH: &str = "UPDATE credentials SET last_used_ms = MAX(COALESCE(last_used_ms, 0), ?2), \
                     backed_up = CASE WHEN sign_count = 0 THEN ?3 ELSE backed_up END \
                     WHERE id = ?1 RETURNING sign_count";

/// Open the writer's connection to the database file at `path` (already
/// created and migrated) and start the thread. It runs until every sender is
/// dropped.
pub(super) fn spawn(
    path: &Path,
    cache: Arc<Mutex<UserCache>>,
    sessions: Arc<SessionIndex>,
    hints: Arc<ClearHints>,
) -> Result<mpsc::UnboundedSender<WriteMsg>, StoreError> {
    spawn_with(path, cache, Memory { sessions, hints }, WAL_CHECKPOINT_PAGES)
}

/// [`spawn`], checkpointing on the writer's connection past `wal_pages`.
fn spawn_with(
    path: &Path,
    cache: Arc<Mutex<UserCache>>,
    memory: Memory,
    wal_pages: i64,
) -> Result<mpsc::UnboundedSender<WriteMsg>, StoreError> {
    let conn = open(path).map_err(db_err)?;
    // Checkpoints copy the WAL back into the database file, in two parts:
    //
    // - A thread of its own copies, every `BACKGROUND_CHECKPOINT_EVERY`,
    //   whatever was committed (PASSIVE: it never blocks the writer). This
    //   does nearly all the copying and syncing, off the sign-in path. It
    //   cannot finish the WAL, though: the writer keeps appending.
    // - So this connection checkpoints too, right after the commit that
    //   filled the WAL past `WAL_CHECKPOINT_PAGES`. It is the only writer,
    //   so it finishes the WAL (copying only the little the other thread
    //   had not), and the next transaction starts the WAL from the
    //   beginning: the WAL stays about that size under any load. (With the
    //   other thread alone, it grew by every commit, without end.)
    conn.pragma_update(None, "wal_autocheckpoint", wal_pages).map_err(db_err)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT).map_err(db_err)?;
    let checkpoint_conn = open(path).map_err(db_err)?;
    let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("hwkey-sqlite-checkpoint".into())
        .spawn(move || checkpointer(&checkpoint_conn, &nudged))
        .map_err(|e| StoreError::Database(format!("cannot start the SQLite checkpoint thread: {e}")))?;
    let (tx, rx) = mpsc::unbounded_channel::<WriteMsg>();
    std::thread::Builder::new()
        .name("hwkey-sqlite-writer".into())
        .spawn(move || run(conn, rx, &cache, &memory, &nudge))
        .map_err(|e| StoreError::Database(format!("cannot start the SQLite writer thread: {e}")))?;
    Ok(tx)
}

/// How often the checkpoint thread copies the WAL back, at most
/// (`HWKEY_SQLITE_CHECKPOINT_MS` overrides it, for tuning).
const BACKGROUND_CHECKPOINT_EVERY: Duration = Duration::from_millis(25);

/// Checkpoint (PASSIVE: never blocks the writer or readers) when the writer
/// committed something and `BACKGROUND_CHECKPOINT_EVERY` passed; ends with
/// the writer.
fn checkpointer(conn: &Connection, nudged: &std::sync::mpsc::Receiver<()>) {
    let every = tuned("HWKEY_SQLITE_CHECKPOINT_MS", Duration::from_millis(1), BACKGROUND_CHECKPOINT_EVERY);
    let mut dirty = false;
    let mut last = std::time::Instant::now();
    loop {
        match nudged.recv_timeout(every) {
            Ok(()) => dirty = true,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if dirty && last.elapsed() >= every {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!("SQLite checkpoint failed: {e}");
            }
            dirty = false;
            last = std::time::Instant::now();
        }
    }
    // Leave a short WAL behind for the next start.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// WAL pages (4 KiB each) after which a commit checkpoints: 16 MiB.
const WAL_CHECKPOINT_PAGES: i64 = 4096;
/// What a WAL file is truncated to when it starts again, in bytes (after a
/// burst of large transactions made it longer).
const WAL_SIZE_LIMIT: i64 = 64 << 20;

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // The journal mode is a property of the file (set to WAL when the store
    // opened it); these two are per connection.
    // Durable commits (fsync of the WAL per transaction, one per batch).
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(8);
    Ok(conn)
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn run(
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<WriteMsg>,
    cache: &Mutex<UserCache>,
    memory: &Memory,
    nudge: &std::sync::mpsc::SyncSender<()>,
) {
    let mut events: Vec<(NewAuditEvent, i64)> = Vec::new();
    let mut sign_ins: Vec<SignInWrite> = Vec::new();
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    let mut last_commit: Option<std::time::Instant> = None;
    let interval = tuned("HWKEY_SQLITE_COMMIT_INTERVAL_US", Duration::from_micros(1), MIN_COMMIT_INTERVAL);
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        let mut paced = false;
        loop {
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
            // Under load, commit at most every MIN_COMMIT_INTERVAL: a commit
            // costs the same for one sign-in as for a hundred (it writes the
            // same few pages to the WAL), so waiting up to a couple of
            // milliseconds for more makes each one cheaper. When idle, the
            // last commit is long past and nothing waits.
            let wait = last_commit.map_or(Duration::ZERO, |t| interval.saturating_sub(t.elapsed()));
            if paced || wait.is_zero() || events.len() >= AUDIT_BATCH || sign_ins.len() >= SIGN_IN_BATCH {
                break;
            }
            std::thread::sleep(wait);
            paced = true;
            next = rx.try_recv().ok();
        }
        last_commit = Some(std::time::Instant::now());
        let outcomes = write_batch(&mut conn, memory, &events, &sign_ins);
        let _ = nudge.try_send(());
        {
            let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
            for (w, r) in sign_ins.iter().zip(&outcomes) {
                match r {
                    Ok(SignCountUpdate::Advanced) => {
                        cache.signed_in(&w.credential_id, w.new_sign_count, w.backed_up, w.now_ms)
                    }
                    _ => cache.invalidate_credential(&w.credential_id),
                }
            }
        }
        for (w, r) in sign_ins.drain(..).zip(outcomes) {
            let _ = w.reply.send(r);
        }
        events.clear();
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

/// Write `events` and `sign_ins` in one transaction; if that fails, each on
/// its own. One outcome per sign-in.
fn write_batch(
    conn: &mut Connection,
    memory: &Memory,
    events: &[(NewAuditEvent, i64)],
    sign_ins: &[SignInWrite],
) -> Vec<Result<SignCountUpdate, StoreError>> {
    if events.is_empty() && sign_ins.is_empty() {
        return Vec::new();
    }
    let together = (|| -> rusqlite::Result<Vec<Result<SignCountUpdate, StoreError>>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (e, at) in events {
            insert_audit(&tx, e, *at)?;
        }
        let mut out = Vec::with_capacity(sign_ins.len());
        for w in sign_ins {
            out.push(sign_in(&tx, memory, w)?);
        }
        tx.commit()?;
        Ok(out)
    })();
    match together {
        Ok(out) => out,
        Err(e) => {
            // Rolled back as a whole (the transaction was dropped).
            tracing::debug!("group commit of {} sign-ins failed ({e}); writing one by one", sign_ins.len());
            for (e, at) in events {
                if let Err(err) = insert_audit(conn, e, *at) {
                    tracing::error!("audit log write failed: {err}");
                }
            }
            sign_ins
                .iter()
                .map(|w| {
                    (|| {
                        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                        let r = sign_in(&tx, memory, w)?;
                        tx.commit()?;
                        Ok(r)
                    })()
                    .unwrap_or_else(|e| Err(db_err(e)))
                })
                .collect()
        }
    }
}

fn insert_audit(conn: &Connection, e: &NewAuditEvent, at: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(INSERT_AUDIT)?.execute(params![
        at,
        e.kind.as_str(),
        e.username.as_deref(),
        e.user_handle.as_deref(),
        e.credential_id.as_deref(),
        e.code.as_deref(),
        e.detail.as_str(),
    ])?;
    Ok(())
}

/// One sign-in's statements, with its audit event when it is recorded. The
/// outer error is the database's (it fails the batch); the inner one is this
/// sign-in's own.
fn sign_in(
    conn: &Connection,
    memory: &Memory,
    w: &SignInWrite,
) -> rusqlite::Result<Result<SignCountUpdate, StoreError>> {
    if let Some(s) = &w.session
        && SessionIndex::id(&s.id).is_none()
    {
        return Ok(Err(StoreError::Database(format!("a session id of {} bytes", s.id.len()))));
    }
    if let Some(c) = &w.ceremony
        && conn.prepare_cached(CONSUME_CEREMONY)?.execute(params![c.id, c.expires_unix_ms])? == 0
    {
        return Ok(Ok(SignCountUpdate::CeremonyUsed));
    }
    let outcome = counter(conn, w)?;
    if let (Ok(SignCountUpdate::Advanced), Some(e)) = (&outcome, &w.event) {
        insert_audit(conn, e, w.now_ms)?;
    }
    if let (Ok(SignCountUpdate::Advanced), Some(s)) = (&outcome, &w.session) {
        // Noted before the row exists (see session_index: the index holds
        // every committed row's id; it may hold more if this rolls back).
        memory.sessions.add(&s.user_handle, &s.id, s.expires_unix_ms);
        conn.prepare_cached(INSERT_SESSION)?.execute(params![
            s.id,
            s.user_handle,
            s.method,
            s.created_unix_ms,
            s.last_seen_unix_ms,
            s.expires_unix_ms
        ])?;
    }
    if let (Ok(SignCountUpdate::Advanced), Some(c)) = (&outcome, &w.clears) {
        // Only where there may be something to lift (see clear_hints).
        if memory.hints.may_have_user(&c.user_handle) {
            conn.prepare_cached(CLEAR_FAILURES)?.execute(params![c.user_handle])?;
        }
        if memory.hints.may_have_subject(&c.throttle_subject) {
            conn.prepare_cached(CLEAR_ATTEMPTS)?.execute(params![c.throttle_subject])?;
        }
    }
    Ok(outcome)
}

/// The counter compare-and-set and the time of use.
fn counter(conn: &Connection, w: &SignInWrite) -> rusqlite::Result<Result<SignCountUpdate, StoreError>> {
    if w.new_sign_count > 0 {
        let advanced: Option<i64> = conn
            .prepare_cached(ADVANCE)?
            .query_row(params![w.credential_id, i64::from(w.new_sign_count), w.backed_up, w.now_ms], |r| r.get(0))
            .optional()?;
        if advanced.is_some() {
            return Ok(Ok(SignCountUpdate::Advanced));
        }
    }
    let current: Option<i64> = conn
        .prepare_cached(TOUCH)?
        .query_row(params![w.credential_id, w.now_ms, w.backed_up], |r| r.get(0))
        .optional()?;
    Ok(outcome(w.new_sign_count, current))
}

/// What a sign-in's counter did, given the counter as stored when it did not
/// advance (`None`: no such credential).
fn outcome(new_sign_count: u32, current: Option<i64>) -> Result<SignCountUpdate, StoreError> {
    let Some(c) = current else { return Ok(SignCountUpdate::NotFound) };
    let current = u32::try_from(c).map_err(|_| StoreError::Corrupt(format!("sign_count {c}")))?;
    Ok(if current == 0 && new_sign_count == 0 {
        SignCountUpdate::Advanced
    } else {
        SignCountUpdate::NotAdvanced { current }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_distinguishes_missing_stale_and_counterless() {
        assert_eq!(outcome(5, None).ok(), Some(SignCountUpdate::NotFound));
        assert_eq!(outcome(5, Some(7)).ok(), Some(SignCountUpdate::NotAdvanced { current: 7 }));
        assert_eq!(outcome(0, Some(0)).ok(), Some(SignCountUpdate::Advanced));
        assert_eq!(outcome(0, Some(3)).ok(), Some(SignCountUpdate::NotAdvanced { current: 3 }));
        assert!(matches!(outcome(1, Some(-1)), Err(StoreError::Corrupt(_))));
    }

    /// The writer's commits are fsync'd (`synchronous = FULL` is 2): a
    /// sign-in answered 200 survives a power cut. It was NORMAL (1).
    #[test]
    fn writer_commits_are_durable() {
        let path = std::env::temp_dir().join(format!("hwkey-sync-test-{}.sqlite3", std::process::id()));
        let conn = open(&path).expect("open");
        let level: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).expect("pragma");
        assert_eq!(level, 2, "synchronous = FULL");
        drop(conn);
        let _ = std::fs::remove_file(&path);
    }

    /// Under a steady stream of commits the WAL starts again from the
    /// beginning once it passes the checkpoint size, instead of growing by
    /// every commit while the background checkpoint chases the writer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_steady_writes() {
        let dir = std::env::temp_dir().join(format!("hwkey-wal-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("wal.sqlite3");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        {
            let setup = open(&path).expect("open");
            setup.pragma_update(None, "journal_mode", "WAL").expect("wal");
            setup
                .execute_batch(
                    "CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, \
                     event TEXT NOT NULL, username TEXT, user_handle BLOB, credential_id BLOB, code TEXT, \
                     detail TEXT NOT NULL); CREATE INDEX audit_by_username ON audit_log(username, at_ms);",
                )
                .expect("schema");
        }
        const PAGES: i64 = 64;
        let tx = spawn_with(&path, Arc::default(), Memory::default(), PAGES).expect("writer");
        // About 24 MiB of audit rows, in many transactions.
        let detail = "x".repeat(1000);
        for round in 0..50 {
            for i in 0..500 {
                let e = NewAuditEvent::new(super::super::AuditKind::SignIn)
                    .username(&format!("user-{}", (round * 500 + i) % 97))
                    .detail(&detail);
                tx.send(WriteMsg::Event(e, i64::from(round * 500 + i))).expect("send");
            }
            let (ack, done) = oneshot::channel();
            tx.send(WriteMsg::Flush(ack)).expect("flush");
            done.await.expect("flushed");
        }
        let wal = std::fs::metadata(format!("{}-wal", path.display())).map(|m| m.len()).unwrap_or(0);
        drop(tx);
        let _ = std::fs::remove_dir_all(&dir);
        // Unbounded, the WAL ends near 50 MB here. Bounded, it ends near the
        // checkpoint size plus a batch (about 1 MB), and somewhat past that
        // when the writer's checkpoint met the background one's (it then
        // tries again after the next commit): 10 MB tells the two apart
        // also on a busy machine.
        let bound = 10 << 20;
        assert!(wal < bound, "the WAL is {wal} bytes, more than {bound}");
    }
}
