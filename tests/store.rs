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
//! that is not recorded has none; purging removes abandoned TOTP enrollments.

mod pgdb;

use hwkey::proto::cose::CoseAlgorithm;
use hwkey::proto::webauthn::Base64Url;
use hwkey::server::CredentialRecord;
use hwkey::server::attestation::AttestationType;
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
