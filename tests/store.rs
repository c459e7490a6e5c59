//! The storage contract, checked on each backend: SQLite in a file and in
//! memory always, PostgreSQL when `HWKEY_TEST_POSTGRES_URL` is set (.ci/run
//! sets it; without it those cases say they were skipped).
//!
//! What it pins down: counters only move forward, also under 200
//! concurrent sign-ins; what the store says about a user after a sign-in,
//! rename or removal is what was committed (the SQLite store answers from
//! a cache, which must not go stale); the session secret is one per
//! database and survives reconnecting; a revoked session stays revoked; a
//! sign-in recorded with its audit event has exactly that event, and one
//! that is not recorded has none; each security change (TOTP on and off,
//! new recovery codes, removing a key, ending a session) commits with its
//! audit event or neither is written; purging removes abandoned TOTP
//! enrollments.

mod pgdb;

use hwkey::proto::cose::CoseAlgorithm;
use hwkey::proto::webauthn::Base64Url;
use hwkey::server::CredentialRecord;
use hwkey::server::attestation::AttestationType;
use hwkey::store::account::{AccountStore, SessionRow};
use hwkey::store::otp::{OtpStore, PENDING_TOTP_MAX_AGE, TotpSecretRecord};
use hwkey::store::{AuditKind, AuditQuery, DbStore, DeleteOutcome, NewAuditEvent, SignCountUpdate, Store, UserRecord};
use pgdb::{TestDb, admin_url};
use std::time::{Duration, SystemTime};

fn credential(user: &UserRecord, id: u8) -> CredentialRecord {
    CredentialRecord {
        credential_id: Base64Url(vec![id; 16]),
        user_id: user.handle.clone(),
        public_key: Base64Url(vec![0xa5, 1, 2]),
        algorithm: CoseAlgorithm::ES256,
        sign_count: 0,
        uv_initialized: true,
        transports: vec!["usb".into()],
        backup_eligible: false,
        backed_up: false,
        aaguid: String::new(),
        attestation_format: "none".into(),
        attestation_type: AttestationType::None,
        attestation_trusted: false,
        discoverable: Some(false),
    }
}

fn unique(name: &str) -> String {
    let n = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{name}-{n}")
}

async fn count_of(store: &DbStore, username: &str, id: u8) -> u32 {
    let (_, creds) = store.user_with_credentials(username).await.expect("read").expect("user");
    creds.iter().find(|c| c.record.credential_id.0 == vec![id; 16]).expect("credential").record.sign_count
}

/// A recorded sign-in has its audit event, written with it; a sign-in that
/// is not recorded (stale counter, unknown credential) writes none.
async fn sign_in_event_contract(store: &DbStore) {
    let now = SystemTime::now();
    let name = unique("erin");
    let user = UserRecord::new(&name, "Erin", now).expect("user");
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
    let counted = (nanos ^ 0x5a5a).to_le_bytes().to_vec();
    let counterless = (nanos ^ 0xa5a5_0000).to_le_bytes().to_vec();
    let mut missing = counted.clone();
    missing[15] ^= 0xff;
    for (i, id) in [&counted, &counterless].into_iter().enumerate() {
        let mut c = credential(&user, 0);
        c.credential_id = Base64Url(id.clone());
        store.add_credential((i == 0).then_some(&user), &c, "Key", now).await.expect("add");
    }
    let event = |id: &[u8], detail: &str| {
        NewAuditEvent::new(AuditKind::SignIn).user(&name, &user.handle.0).credential(id).detail(detail)
    };
    let record = |id: Vec<u8>, count: u32, detail: &'static str| {
        let e = event(&id, detail);
        async move { store.record_sign_in_with_event(&id, count, false, now, e).await.expect("sign-in") }
    };
    assert_eq!(record(counted.clone(), 7, "7").await, SignCountUpdate::Advanced);
    assert_eq!(record(counted.clone(), 7, "7 again").await, SignCountUpdate::NotAdvanced { current: 7 });
    assert_eq!(record(counted.clone(), 6, "6").await, SignCountUpdate::NotAdvanced { current: 7 });
    assert_eq!(record(counted.clone(), 0, "0 on a counter").await, SignCountUpdate::NotAdvanced { current: 7 });
    assert_eq!(record(missing, 9, "unknown").await, SignCountUpdate::NotFound);
    assert_eq!(record(counterless.clone(), 0, "counterless").await, SignCountUpdate::Advanced);
    assert_eq!(record(counted.clone(), 8, "8").await, SignCountUpdate::Advanced);
    let events = store.audit_events(&AuditQuery { username: Some(name.clone()), ..Default::default() }).await.unwrap();
    let mut logged: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
    logged.reverse();
    assert_eq!(logged, ["7", "counterless", "8"]);
    assert!(events.iter().all(|e| e.kind == "sign_in" && e.username.as_deref() == Some(name.as_str())));
    assert_eq!(events[0].credential_id.as_ref().map(|c| c.0.clone()), Some(counted.clone()));
    assert_eq!(count_of_id(store, &name, &counted).await, 8);
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// How many events of `kind` the log holds for `username`.
async fn events_of(store: &DbStore, username: &str, kind: AuditKind) -> usize {
    let q = AuditQuery { username: Some(username.to_owned()), kind: Some(kind), ..Default::default() };
    store.audit_events(&q).await.expect("events").len()
}

/// A session id of the length every token's id has (32 bytes), unique.
fn session_id(name: &str) -> Vec<u8> {
    let mut id = unique(name).into_bytes();
    id.resize(32, b'.');
    id
}

fn session_row(user: &UserRecord, id: &[u8], now: SystemTime) -> SessionRow {
    let now = unix_ms(now);
    SessionRow {
        id: id.to_vec(),
        user_handle: user.handle.0.clone(),
        method: "key".into(),
        created_unix_ms: now,
        last_seen_unix_ms: now,
        expires_unix_ms: now + 3_600_000,
    }
}

/// Each security change (TOTP on and off, new recovery codes, removing a
/// key, ending a session) commits with its audit event and the ending of
/// the other sessions, or not at all: a refused change writes no event and
/// ends no session.
async fn audited_changes_contract(store: &DbStore) {
    let now = SystemTime::now();
    let name = unique("gina");
    let user = UserRecord::new(&name, "Gina", now).expect("user");
    let h = user.handle.0.clone();
    let nanos = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
    let key_a = (nanos ^ 0x1111).to_le_bytes().to_vec();
    let key_b = (nanos ^ 0x2222_0000).to_le_bytes().to_vec();
    for (i, id) in [&key_a, &key_b].into_iter().enumerate() {
        let mut c = credential(&user, 0);
        c.credential_id = Base64Url(id.clone());
        store.add_credential((i == 0).then_some(&user), &c, "Key", now).await.expect("add");
    }
    // Read once, so that the SQLite store has the user cached from here on.
    assert_eq!(store.user_with_credentials(&name).await.unwrap().unwrap().1.len(), 2);
    let mine = session_id("mine");
    store.insert_session(&session_row(&user, &mine, now)).await.expect("session");
    let other = session_id;
    let ev = |kind: AuditKind, detail: &str| NewAuditEvent::new(kind).user(&name, &h).detail(detail);
    let alive = |id: Vec<u8>| async move { store.session_row(&id).await.expect("row").is_some() };

    // TOTP on: a stale confirm (another secret pending) writes nothing.
    let pending = TotpSecretRecord {
        secret: vec![7; 20].into(),
        algorithm: "SHA1".into(),
        digits: 6,
        period: 30,
        created_unix_ms: unix_ms(now),
        last_step: None,
        last_used_unix_ms: None,
    };
    store.put_pending_totp(&h, &pending).await.expect("pending");
    let o1 = other("o1");
    store.insert_session(&session_row(&user, &o1, now)).await.expect("session");
    let on = [ev(AuditKind::TotpEnabled, "on"), ev(AuditKind::RecoveryCodesGenerated, "codes")];
    let codes = vec!["$argon2id$a".to_owned(), "$argon2id$b".to_owned()];
    let stale = store.confirm_totp_with_events(&h, &[8; 20], 5, &codes, &mine, &on, now).await.expect("confirm");
    assert_eq!(stale, None);
    assert_eq!(events_of(store, &name, AuditKind::TotpEnabled).await, 0);
    assert_eq!(events_of(store, &name, AuditKind::RecoveryCodesGenerated).await, 0);
    assert!(store.totp(&h).await.unwrap().is_none());
    assert!(alive(o1.clone()).await, "a refused change ends no session");
    let done = store.confirm_totp_with_events(&h, &[7; 20], 5, &codes, &mine, &on, now).await.expect("confirm");
    assert_eq!(done, Some(1));
    assert_eq!(events_of(store, &name, AuditKind::TotpEnabled).await, 1);
    assert_eq!(events_of(store, &name, AuditKind::RecoveryCodesGenerated).await, 1);
    assert_eq!(store.totp(&h).await.unwrap().and_then(|t| t.last_step), Some(5));
    assert_eq!(store.recovery_code_hashes(&h).await.unwrap().len(), 2);
    assert!(!alive(o1).await && alive(mine.clone()).await);
    // Confirming again: the enrollment is gone, nothing written.
    assert_eq!(store.confirm_totp_with_events(&h, &[7; 20], 6, &codes, &mine, &on, now).await.unwrap(), None);
    assert_eq!(events_of(store, &name, AuditKind::TotpEnabled).await, 1);

    // New recovery codes.
    let o2 = other("o2");
    store.insert_session(&session_row(&user, &o2, now)).await.expect("session");
    let new_codes = vec!["$argon2id$c".to_owned()];
    let regen = ev(AuditKind::RecoveryCodesGenerated, "new codes");
    assert_eq!(store.replace_recovery_codes_with_event(&h, &new_codes, &mine, &regen, now).await.unwrap(), 1);
    assert_eq!(events_of(store, &name, AuditKind::RecoveryCodesGenerated).await, 2);
    let stored = store.recovery_code_hashes(&h).await.unwrap();
    assert_eq!(stored.iter().map(|c| c.hash.as_str()).collect::<Vec<_>>(), ["$argon2id$c"]);
    assert!(!alive(o2).await && alive(mine.clone()).await);

    // TOTP off, then off again (refused: nothing written).
    let o3 = other("o3");
    store.insert_session(&session_row(&user, &o3, now)).await.expect("session");
    let off = ev(AuditKind::TotpDisabled, "off");
    assert_eq!(store.delete_totp_with_event(&h, &mine, &off, now).await.unwrap(), Some(1));
    assert_eq!(events_of(store, &name, AuditKind::TotpDisabled).await, 1);
    assert!(store.totp(&h).await.unwrap().is_none());
    assert!(!alive(o3).await);
    let o4 = other("o4");
    store.insert_session(&session_row(&user, &o4, now)).await.expect("session");
    assert_eq!(store.delete_totp_with_event(&h, &mine, &off, now).await.unwrap(), None);
    assert_eq!(events_of(store, &name, AuditKind::TotpDisabled).await, 1);
    assert!(alive(o4.clone()).await);

    // Removing a key: unknown and last refused without an event.
    let removed = ev(AuditKind::CredentialRemoved, "removed");
    let mut unknown = key_a.clone();
    unknown[15] ^= 0xff;
    let r = store.delete_credential_with_event(&h, &unknown, &mine, &removed, now).await.unwrap();
    assert_eq!(r, (DeleteOutcome::NotFound, 0));
    assert_eq!(events_of(store, &name, AuditKind::CredentialRemoved).await, 0);
    assert!(alive(o4.clone()).await);
    let r = store.delete_credential_with_event(&h, &key_b, &mine, &removed, now).await.unwrap();
    assert_eq!(r, (DeleteOutcome::Deleted, 1));
    assert_eq!(events_of(store, &name, AuditKind::CredentialRemoved).await, 1);
    assert!(!alive(o4).await && alive(mine.clone()).await);
    let (_, creds) = store.user_with_credentials(&name).await.unwrap().unwrap();
    assert_eq!(creds.len(), 1, "the cache saw the removal");
    assert!(store.credential(&key_b).await.unwrap().is_none());
    let o5 = other("o5");
    store.insert_session(&session_row(&user, &o5, now)).await.expect("session");
    let r = store.delete_credential_with_event(&h, &key_a, &mine, &removed, now).await.unwrap();
    assert_eq!(r, (DeleteOutcome::LastCredential, 0));
    assert_eq!(events_of(store, &name, AuditKind::CredentialRemoved).await, 1);
    assert!(alive(o5.clone()).await);

    // Ending a session: an unknown one is refused without an event.
    let out = ev(AuditKind::SignOut, "out");
    assert!(!store.end_session_with_event(&h, b"no such session", &out, now).await.unwrap());
    assert_eq!(events_of(store, &name, AuditKind::SignOut).await, 0);
    assert!(store.end_session_with_event(&h, &o5, &out, now).await.unwrap());
    assert!(!alive(o5.clone()).await && alive(mine.clone()).await);
    assert!(store.end_session_with_event(&h, &mine, &out, now).await.unwrap());
    assert!(!alive(mine).await);
    assert_eq!(events_of(store, &name, AuditKind::SignOut).await, 2);
    assert!(!store.end_session_with_event(&h, &o5, &out, now).await.unwrap(), "ended once");
    assert_eq!(events_of(store, &name, AuditKind::SignOut).await, 2);
}

async fn count_of_id(store: &DbStore, username: &str, id: &[u8]) -> u32 {
    let (_, creds) = store.user_with_credentials(username).await.expect("read").expect("user");
    creds.iter().find(|c| c.record.credential_id.0 == id).expect("credential").record.sign_count
}

/// Purging deletes TOTP enrollments abandoned for longer than
/// `PENDING_TOTP_MAX_AGE`, and keeps younger ones.
async fn purge_contract(store: &DbStore) {
    let now = SystemTime::now();
    let pending = |created: SystemTime| TotpSecretRecord {
        secret: vec![7; 20].into(),
        algorithm: "SHA1".into(),
        digits: 6,
        period: 30,
        created_unix_ms: created.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64,
        last_step: None,
        last_used_unix_ms: None,
    };
    let mut handles = Vec::new();
    for (name, age) in
        [("abandoned", PENDING_TOTP_MAX_AGE + Duration::from_secs(60)), ("fresh", Duration::from_secs(60))]
    {
        let user = UserRecord::new(unique(name), name, now).expect("user");
        let mut c = credential(&user, 0);
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
        c.credential_id = Base64Url((nanos ^ 0x77).to_le_bytes().to_vec());
        store.add_credential(Some(&user), &c, "Key", now).await.expect("add");
        store.put_pending_totp(&user.handle.0, &pending(now - age)).await.expect("pending");
        handles.push(user.handle.0);
    }
    assert!(store.purge_expired(now).await.expect("purge") >= 1);
    assert_eq!(store.pending_totp(&handles[0]).await.unwrap(), None, "an abandoned enrollment is purged");
    assert!(store.pending_totp(&handles[1]).await.unwrap().is_some(), "a young enrollment is kept");
}

/// The whole contract on one store.
async fn contract(store: &DbStore) {
    sign_in_event_contract(store).await;
    audited_changes_contract(store).await;
    purge_contract(store).await;
    let now = SystemTime::now();
    let name = unique("carol");
    let user = UserRecord::new(&name, "Carol", now).expect("user");
    let id = (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() % 200) as u8 + 20;
    store.add_credential(Some(&user), &credential(&user, id), "Key", now).await.expect("add");
    // Read once, so that the SQLite store has the user cached from here on.
    assert_eq!(count_of(store, &name, id).await, 0);

    // Counters move forward only, and the next read sees the committed value.
    assert_eq!(store.record_sign_in(&[id; 16], 5, false, now).await.unwrap(), SignCountUpdate::Advanced);
    assert_eq!(count_of(store, &name, id).await, 5);
    assert_eq!(
        store.record_sign_in(&[id; 16], 5, false, now).await.unwrap(),
        SignCountUpdate::NotAdvanced { current: 5 }
    );
    assert_eq!(
        store.record_sign_in(&[id; 16], 3, false, now).await.unwrap(),
        SignCountUpdate::NotAdvanced { current: 5 }
    );
    assert_eq!(count_of(store, &name, id).await, 5);
    assert_eq!(store.record_sign_in(&[0xee; 16], 9, false, now).await.unwrap(), SignCountUpdate::NotFound);

    // 200 concurrent sign-ins with counters 6..=205 in a scrambled order:
    // the highest wins, and each one that did not advance saw a higher value.
    let mut counts: Vec<u32> = (6..=205).collect();
    counts.sort_by_key(|c| (c * 7919) % 211);
    let results = futures_join_all(store, id, &counts).await;
    for (c, r) in counts.iter().zip(&results) {
        match r {
            SignCountUpdate::Advanced => {}
            SignCountUpdate::NotAdvanced { current } => assert!(current > c, "{c} lost to {current}"),
            SignCountUpdate::NotFound => panic!("credential vanished"),
            SignCountUpdate::CeremonyUsed => panic!("no ceremony was given"),
        }
    }
    assert_eq!(count_of(store, &name, id).await, 205);
    let (cred, owner) = store.credential(&[id; 16]).await.unwrap().expect("by id");
    assert_eq!((cred.record.sign_count, owner.username.as_str()), (205, name.as_str()));

    // Rename and removal show at once.
    let second = id.wrapping_add(100);
    store.add_credential(None, &credential(&user, second), "Spare", now).await.expect("add second");
    let (_, creds) = store.user_with_credentials(&name).await.unwrap().unwrap();
    assert_eq!(creds.len(), 2);
    assert!(store.rename_credential(&user.handle.0, &[id; 16], "Blue").await.unwrap());
    let (_, creds) = store.user_with_credentials(&name).await.unwrap().unwrap();
    assert_eq!(creds.iter().find(|c| c.record.credential_id.0 == vec![id; 16]).unwrap().nickname, "Blue");
    assert_eq!(store.delete_credential(&user.handle.0, &[id; 16]).await.unwrap(), DeleteOutcome::Deleted);
    let (_, creds) = store.user_with_credentials(&name).await.unwrap().unwrap();
    assert_eq!(creds.len(), 1);
    assert!(store.credential(&[id; 16]).await.unwrap().is_none());
    assert_eq!(store.record_sign_in(&[id; 16], 300, false, now).await.unwrap(), SignCountUpdate::NotFound);

    // Sessions: one secret per database, and revocations stick.
    let s1 = store.session_secret().await.unwrap();
    let s2 = store.session_secret().await.unwrap();
    assert_eq!(s1.len(), 32);
    assert_eq!(*s1, *s2);
    let sid = unique("session").into_bytes();
    assert!(!store.session_revoked(&sid).await.unwrap());
    store.revoke_session(&sid, now + Duration::from_secs(60)).await.unwrap();
    store.revoke_session(&sid, now + Duration::from_secs(60)).await.unwrap();
    assert!(store.session_revoked(&sid).await.unwrap());
}

async fn futures_join_all(store: &DbStore, id: u8, counts: &[u32]) -> Vec<SignCountUpdate> {
    let mut tasks = Vec::new();
    for &c in counts {
        let s = store.clone();
        tasks.push(tokio::spawn(async move { s.record_sign_in(&[id; 16], c, false, SystemTime::now()).await }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task").expect("sign-in"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_memory_keeps_the_contract() {
    let store = DbStore::connect("sqlite::memory:").await.expect("store");
    contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_keeps_the_contract_and_its_secret_across_reopening() {
    let dir = std::env::temp_dir().join(unique("hwkey-store-test"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("db.sqlite3").display());
    let first = DbStore::connect(&url).await.expect("store");
    contract(&first).await;
    // One store per file: a second one is refused while the first lives.
    let second = DbStore::connect(&url).await.map(|_| ()).expect_err("a second store on the same file");
    assert_eq!(second.code(), "database_in_use", "{second}");
    assert!(second.to_string().contains("PostgreSQL"), "the error says what to do: {second}");
    let secret = first.session_secret().await.unwrap();
    first.close().await;
    drop(first);
    let again = DbStore::connect(&url).await.expect("reopen");
    assert_eq!(*again.session_secret().await.unwrap(), *secret);
    again.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A user's sessions are found (listed, and ended by a factor change) also
/// when they were written before the store was reopened, and while key
/// sign-ins commit sessions concurrently: every session whose sign-in was
/// answered before "end the other sessions" began is gone after it. (The
/// SQLite store finds them through an index in memory, rebuilt at start:
/// src/store/session_index.rs.)
async fn sessions_found_contract(store: &DbStore, user: &UserRecord, key: &[u8], keep: &[u8]) {
    use std::sync::{Arc, Mutex};
    let h = user.handle.0.clone();
    let answered: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let (store, answered, user, key) = (store.clone(), answered.clone(), user.clone(), key.to_vec());
        tasks.push(tokio::spawn(async move {
            let now = SystemTime::now();
            let id = session_id(&format!("race{i}"));
            let clears = hwkey::store::account::SignInClears {
                user_handle: user.handle.0.clone(),
                throttle_subject: format!("user:{}", user.username),
            };
            let event = NewAuditEvent::new(AuditKind::SignIn).user(&user.username, &user.handle.0).detail("race");
            let r = store
                .record_key_sign_in(&key, 0, false, now, event, &session_row(&user, &id, now), &clears, None)
                .await
                .expect("sign-in");
            assert_eq!(r, SignCountUpdate::Advanced);
            answered.lock().unwrap().push(id);
        }));
    }
    let mut rounds = 0;
    while tasks.iter().any(|t| !t.is_finished()) || rounds < 3 {
        let before: Vec<Vec<u8>> = answered.lock().unwrap().clone();
        store.end_other_sessions(&h, Some(keep)).await.expect("end others");
        for id in &before {
            assert!(store.session_row(id).await.unwrap().is_none(), "a session answered before the end survived");
        }
        assert!(store.session_row(keep).await.unwrap().is_some(), "the kept session lives");
        rounds += 1;
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.expect("task");
    }
    let listed = store.sessions_of_user(&h, SystemTime::now()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, keep);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_sessions_are_found_after_reopening_and_under_concurrent_sign_ins() {
    let dir = std::env::temp_dir().join(unique("hwkey-sessions-test"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("db.sqlite3").display());
    let now = SystemTime::now();
    let user = UserRecord::new(unique("hana"), "Hana", now).expect("user");
    let h = user.handle.0.clone();
    let (a, b, c) = (session_id("a"), session_id("b"), session_id("c"));
    let key = vec![0x5e; 16];
    {
        let store = DbStore::connect(&url).await.expect("store");
        let mut cred = credential(&user, 0x5e);
        cred.credential_id = Base64Url(key.clone());
        store.add_credential(Some(&user), &cred, "Key", now).await.expect("add");
        for id in [&a, &b, &c] {
            store.insert_session(&session_row(&user, id, now)).await.expect("session");
        }
        // One that expired: neither listed nor kept in the index.
        let mut old = session_row(&user, &session_id("old"), now);
        old.expires_unix_ms = unix_ms(now) - 1;
        store.insert_session(&old).await.expect("session");
        assert_eq!(store.sessions_of_user(&h, now).await.unwrap().len(), 3);
        store.close().await;
    }
    let store = DbStore::connect(&url).await.expect("reopen");
    let mut listed: Vec<Vec<u8>> = store.sessions_of_user(&h, now).await.unwrap().into_iter().map(|r| r.id).collect();
    listed.sort();
    let mut want = vec![a.clone(), b.clone(), c.clone()];
    want.sort();
    assert_eq!(listed, want, "the sessions written before reopening are listed");
    assert_eq!(store.end_other_sessions(&h, Some(&a)).await.unwrap(), 2);
    assert!(store.session_row(&b).await.unwrap().is_none() && store.session_row(&c).await.unwrap().is_none());
    assert!(store.session_row(&a).await.unwrap().is_some());
    assert!(store.end_session(&h, &a).await.unwrap());
    assert!(store.sessions_of_user(&h, now).await.unwrap().is_empty());
    let keep = session_id("keep");
    store.insert_session(&session_row(&user, &keep, now)).await.expect("session");
    sessions_found_contract(&store, &user, &key, &keep).await;
    // Ending all of them (no session kept).
    assert_eq!(store.end_other_sessions(&h, None).await.unwrap(), 1);
    assert!(store.sessions_of_user(&h, SystemTime::now()).await.unwrap().is_empty());
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A key sign-in lifts the failures in a row and the attempt window also
/// when they were written before the store was reopened (the SQLite writer
/// skips the deletes for users and subjects it knows have none:
/// src/store/clear_hints.rs), and when they were written just before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_key_sign_ins_lift_failures_written_before_reopening() {
    let dir = std::env::temp_dir().join(unique("hwkey-clears-test"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("db.sqlite3").display());
    let now = SystemTime::now();
    let user = UserRecord::new(unique("ivo"), "Ivo", now).expect("user");
    let h = user.handle.0.clone();
    let subject = format!("user:{}", user.username);
    let key = vec![0x6f; 16];
    let window = Duration::from_secs(900);
    let sign_in = |store: DbStore, n: &'static str| {
        let (user, key, subject) = (user.clone(), key.clone(), subject.clone());
        async move {
            let now = SystemTime::now();
            let clears =
                hwkey::store::account::SignInClears { user_handle: user.handle.0.clone(), throttle_subject: subject };
            let event = NewAuditEvent::new(AuditKind::SignIn).user(&user.username, &user.handle.0).detail("key");
            let row = session_row(&user, &session_id(n), now);
            store.record_key_sign_in(&key, 0, false, now, event, &row, &clears, None).await.expect("sign-in")
        }
    };
    {
        let store = DbStore::connect(&url).await.expect("store");
        let mut cred = credential(&user, 0x6f);
        cred.credential_id = Base64Url(key.clone());
        store.add_credential(Some(&user), &cred, "Key", now).await.expect("add");
        // Nothing to lift: the sign-in is recorded all the same.
        assert_eq!(sign_in(store.clone(), "s0").await, SignCountUpdate::Advanced);
        for _ in 0..3 {
            store.add_failure(&h, now).await.expect("failure");
        }
        store.count_otp_attempt(&subject, now, window).await.expect("attempt");
        store.close().await;
    }
    let store = DbStore::connect(&url).await.expect("reopen");
    assert_eq!(store.failures(&h).await.unwrap(), 3);
    assert_eq!(store.attempts_since(&subject, now - window).await.unwrap(), 1);
    assert_eq!(sign_in(store.clone(), "s1").await, SignCountUpdate::Advanced);
    assert_eq!(store.failures(&h).await.unwrap(), 0, "lifted after reopening");
    assert_eq!(store.attempts_since(&subject, now - window).await.unwrap(), 0);
    // Written while the store runs, then lifted.
    store.add_failure(&h, now).await.expect("failure");
    store.count_otp_attempt(&subject, now, window).await.expect("attempt");
    assert_eq!(sign_in(store.clone(), "s2").await, SignCountUpdate::Advanced);
    assert_eq!(store.failures(&h).await.unwrap(), 0);
    assert_eq!(store.attempts_since(&subject, now - window).await.unwrap(), 0);
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_sessions_are_found_under_concurrent_sign_ins() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "sessions").await;
    let store = DbStore::connect(&db.url).await.expect("store");
    let now = SystemTime::now();
    let user = UserRecord::new(unique("hana"), "Hana", now).expect("user");
    let key = vec![0x5e; 16];
    let mut cred = credential(&user, 0x5e);
    cred.credential_id = Base64Url(key.clone());
    store.add_credential(Some(&user), &cred, "Key", now).await.expect("add");
    let keep = session_id("keep");
    store.insert_session(&session_row(&user, &keep, now)).await.expect("session");
    sessions_found_contract(&store, &user, &key, &keep).await;
    store.close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_keeps_the_contract() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "store").await;
    let a = DbStore::connect(&db.url).await.expect("store");
    contract(&a).await;
    // A second instance on the same database signs with the same secret.
    let b = DbStore::connect(&db.url).await.expect("second instance");
    assert_eq!(*a.session_secret().await.unwrap(), *b.session_secret().await.unwrap());
    a.close().await;
    b.close().await;
    db.drop_db().await;
}
