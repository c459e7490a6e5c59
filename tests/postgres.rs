//! Two relying-party instances on one PostgreSQL database, as separate
//! routers on separate connection pools and as two `rp_server` processes
//! over HTTP: single-use challenges across instances, compare-and-set sign
//! counters under 200 concurrent sign-ins, and persistence across a restart.
//!
//! Runs only when `HWKEY_TEST_POSTGRES_URL` names a server where the user may
//! create databases (e.g. `postgres://postgres@127.0.0.1:5432/test`); each
//! test creates and drops a database of its own.
#![cfg(all(feature = "http", feature = "postgres"))]

mod common;
mod pgdb;

use common::{Client, ORIGIN, RP_ID, SoftKey};
use hwkey::http::{HttpOptions, router_with};
use hwkey::server::{RelyingParty, RpConfig};
use hwkey::store::postgres::PgStore;
use hwkey::store::{AuditKind, AuditQuery, Store};
use pgdb::{TestDb, admin_url};
use serde_json::json;

fn rp() -> RelyingParty {
    RelyingParty::new(RpConfig::new(RP_ID, "hwkey test", ORIGIN)).expect("rp")
}

/// One key-encryption key for every instance (as `--secret-key-file` gives
/// every server process on one database the same file).
fn secret_key() -> std::sync::Arc<hwkey::account::SecretKeyring> {
    static KEY: std::sync::OnceLock<std::sync::Arc<hwkey::account::SecretKeyring>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| std::sync::Arc::new(hwkey::account::SecretKeyring::ephemeral().expect("keyring"))).clone()
}

fn router(rp: RelyingParty, store: PgStore) -> axum::Router {
    router_with(rp, store, HttpOptions { secret_key: Some(secret_key()), ..HttpOptions::default() })
}

/// Two instances: their own pool each.
async fn two_instances(url: &str) -> (PgStore, Client, PgStore, Client) {
    let a = PgStore::connect_with_pool_size(url, 8).await.expect("instance A");
    let b = PgStore::connect_with_pool_size(url, 8).await.expect("instance B");
    let ca = Client::new(router(rp(), a.clone()));
    let cb = Client::new(router(rp(), b.clone()));
    (a, ca, b, cb)
}

/// Passwords and sessions across two instances: a password set through A
/// ends the session made through B; the password step through B is
/// completed through A; wrong passwords count on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_sessions_across_two_instances() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "passwords").await;
    let (a, mut ca, b, cb) = two_instances(&db.url).await;
    let mut key = SoftKey::new();
    ca.register("pam", &mut key, json!({})).await.ok();
    let mut on_b = Client { app: cb.app.clone(), ..Client::new(cb.app.clone()) };
    on_b.login(Some("pam"), &mut key).await.ok();
    assert_eq!(ca.get("/api/sessions").await.ok()["sessions"].as_array().map(Vec::len), Some(2));
    ca.post("/api/account/password", &json!({"password": "correct horse battery staple"})).await.ok();
    on_b.get("/api/me").await.assert_error(401, "not_signed_in");
    for _ in 0..2 {
        on_b.post("/api/login/password", &json!({"username": "pam", "password": "wrong one here"}))
            .await
            .assert_error(401, "invalid_credentials");
    }
    let failures = hwkey::store::account::AccountStore::failures(&a, &key.user_handle.clone().expect("handle"))
        .await
        .expect("failures");
    assert_eq!(failures, 2);
    on_b.post("/api/login/password", &json!({"username": "pam", "password": "correct horse battery staple"}))
        .await
        .ok();
    let mut on_a = Client { app: ca.app.clone(), ..on_b.clone() };
    let r = on_a.login(Some("pam"), &mut key).await;
    r.ok();
    let me = on_a.get("/api/sessions").await.ok().clone();
    let current =
        me["sessions"].as_array().expect("list").iter().find(|s| s["current"] == true).cloned().expect("current");
    assert_eq!(current["method"], "password+security_key");
    a.close().await;
    b.close().await;
    db.drop_db().await;
}

/// After enrollment, no row of any table holds the TOTP secret (base32 or
/// raw) or the session-signing key (searched as every 32-byte window that
/// would sign the session token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_row_holds_a_totp_secret_or_the_session_key() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "atrest").await;
    let (a, mut ca, b, _) = two_instances(&db.url).await;
    ca.register("tess", &mut SoftKey::new(), json!({})).await.ok();
    let en = ca.post("/api/otp/totp/enroll", &json!({})).await.ok().clone();
    let secret = en["secret"].as_str().expect("secret").to_owned();
    let token = hwkey::proto::webauthn::b64url_decode(ca.jar.get("hwkey_session").expect("cookie")).expect("token");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(a.pool())
    .await
    .expect("tables");
    assert!(tables.iter().any(|t| t == "otp_totp_pending") && tables.iter().any(|t| t == "server_secrets"));
    let mut text = String::new();
    for t in &tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT row_to_json(x)::text FROM \"{t}\" x"))
            .fetch_all(a.pool())
            .await
            .expect("rows");
        for r in rows {
            text.push_str(&r);
            text.push('\n');
        }
    }
    // bytea columns render as \\x<hex>: decode every hex run to bytes too.
    let mut bytes = text.clone().into_bytes();
    for run in text.split("\\\\x").skip(1) {
        let hex: String = run.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        bytes.extend(hex::decode(&hex[..hex.len() - hex.len() % 2]).unwrap_or_default());
    }
    let raw = hwkey::otp::OtpSecret::from_base32(&secret).expect("b32").as_bytes().to_vec();
    let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(find(b"hwkS"), "the sealed values were read (the search sees stored bytes)");
    assert!(!find(secret.as_bytes()), "the base32 secret is in a row");
    assert!(!find(&raw), "the raw TOTP secret is in a row");
    let (body, mac) = token.split_at(token.len() - 32);
    let p = hwkey::crypto::default_provider();
    let signs = |k: &[u8]| p.hmac(hwkey::crypto::HashAlg::Sha256, k, &[b"hwkey-session-v2", body]) == mac;
    assert!(!bytes.windows(32).any(signs), "the session key is in a row");
    a.close().await;
    b.close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_challenge_verified_through_both_instances_is_accepted_once() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "once").await;
    let (a, mut ca, b, cb) = two_instances(&db.url).await;
    let mut key = SoftKey::new();
    ca.register("olga", &mut key, json!({})).await.ok();

    for round in 0..25 {
        let mut c = Client::new(ca.app.clone());
        let o = c.post("/api/login/options", &json!({"username": "olga"})).await.json;
        let resp = key.assert(&o, ORIGIN);
        let mut via_a = c.clone();
        let mut via_b = Client { app: cb.app.clone(), ..c.clone() };
        let (r1, r2) = tokio::join!(
            tokio::spawn({
                let resp = resp.clone();
                async move { via_a.post("/api/login/verify", &resp).await }
            }),
            tokio::spawn(async move { via_b.post("/api/login/verify", &resp).await }),
        );
        let (r1, r2) = (r1.expect("task"), r2.expect("task"));
        let oks = [&r1, &r2].iter().filter(|r| r.status == 200).count();
        assert_eq!(oks, 1, "round {round}: {} / {}", r1.json, r2.json);
        let loser = if r1.status == 200 { &r2 } else { &r1 };
        loser.assert_error(400, "no_pending_ceremony");
    }
    // A registration ceremony, likewise.
    let mut c = Client::new(cb.app.clone());
    let o = c.post("/api/register/options", &json!({"username": "pete"})).await.json;
    let resp = SoftKey::new().register(&o, ORIGIN);
    let mut via_a = Client { app: ca.app.clone(), ..c.clone() };
    let mut via_b = c.clone();
    let (r1, r2) = tokio::join!(via_a.post("/api/register/verify", &resp), via_b.post("/api/register/verify", &resp));
    assert_eq!([&r1, &r2].iter().filter(|r| r.status == 200).count(), 1, "{} / {}", r1.json, r2.json);

    a.close().await;
    b.close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sign_ins_through_both_instances_keep_the_highest_counter() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "cas").await;
    let (a, mut ca, b, cb) = two_instances(&db.url).await;
    let mut key = SoftKey::new();
    ca.register("quinn", &mut key, json!({})).await.ok();
    let cred_id = key.credential_id.clone();

    // 200 pending ceremonies, alternating instances; the authenticator signs
    // them in order (counters 1..=200), then all verifications race.
    const N: u32 = 200;
    let mut prepared = Vec::new();
    for i in 0..N {
        let mut c = Client::new(if i % 2 == 0 { ca.app.clone() } else { cb.app.clone() });
        let o = c.post("/api/login/options", &json!({"username": "quinn"})).await.json;
        let resp = key.assert(&o, ORIGIN);
        // Verify through the other instance than the one that issued the options.
        c.app = if i % 2 == 0 { cb.app.clone() } else { ca.app.clone() };
        prepared.push((c, resp));
    }
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|(mut c, resp)| tokio::spawn(async move { c.post("/api/login/verify", &resp).await }))
        .collect();
    let mut ok = 0;
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200, "{}", r.json);
        ok += 1;
    }
    assert_eq!(ok, N);
    let (stored, _) = a.credential(&cred_id).await.expect("db").expect("credential");
    assert_eq!(stored.record.sign_count, N, "the counter holds the highest value seen");
    let regressions =
        a.audit_events(&AuditQuery { kind: Some(AuditKind::CounterRegression), ..Default::default() }).await.unwrap();
    assert!(regressions.is_empty(), "false regressions: {regressions:?}");
    let sign_ins =
        b.audit_events(&AuditQuery { kind: Some(AuditKind::SignIn), limit: 1000, ..Default::default() }).await.unwrap();
    assert_eq!(sign_ins.len(), N as usize);
    // A genuinely old counter is still refused afterwards.
    let mut c = Client::new(cb.app.clone());
    let o = c.post("/api/login/options", &json!({"username": "quinn"})).await.json;
    let r = c.post("/api/login/verify", &key.assert_with(o["challenge"].as_str().unwrap(), ORIGIN, RP_ID, 150)).await;
    r.assert_error(400, "counter_regression");

    a.close().await;
    b.close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_credentials_survive_a_restart() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "restart").await;
    let mut key = SoftKey::new();
    let mut passkey = SoftKey::new();
    {
        let (a, mut ca, b, _) = two_instances(&db.url).await;
        ca.register("rosa", &mut key, json!({})).await.ok();
        ca.register("rosa", &mut passkey, json!({"residentKey": "required"})).await.ok();
        a.close().await;
        b.close().await;
    }
    {
        let (a, ca, b, cb) = two_instances(&db.url).await;
        let mut c = Client::new(cb.app.clone());
        assert_eq!(c.login(Some("rosa"), &mut key).await.ok()["signCount"], 1);
        let mut c = Client::new(ca.app.clone());
        assert_eq!(c.login(None, &mut passkey).await.ok()["username"], "rosa");
        assert_eq!(c.get("/api/me").await.ok()["credentials"].as_array().unwrap().len(), 2);
        a.close().await;
        b.close().await;
    }
    db.drop_db().await;
}

/// The demo server binary (`cargo test` builds the examples next to the
/// tests), or `None` with a message when it was not built.
fn rp_server_bin() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("examples").join(format!("rp_server{}", std::env::consts::EXE_SUFFIX));
    if bin.exists() {
        Some(bin)
    } else {
        println!("skipped: {} is missing (plain `cargo test` builds it)", bin.display());
        None
    }
}

/// An `rp_server` process, killed when dropped.
struct ServerProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl ServerProcess {
    fn start(bin: &std::path::Path, database: &str) -> ServerProcess {
        use std::io::BufRead;
        // Every process on one database shares one key file.
        let key_file = std::env::temp_dir().join(format!("hwkey-pg-test-{}.secret-key", std::process::id()));
        hwkey::account::SecretKeyring::load_or_create(&key_file).expect("key file");
        let mut child = std::process::Command::new(bin)
            .args(["--bind", "127.0.0.1:0", "--rp-id", RP_ID, "--origin", ORIGIN, "--database", database])
            .arg("--secret-key-file")
            .arg(&key_file)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start rp_server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout).read_line(&mut line).expect("read its first line");
        let addr = line.trim().strip_prefix("listening on http://").expect("listening on http://ADDR").parse();
        ServerProcess { child, addr: addr.expect("an address") }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same checks as above, through two `rp_server` processes over HTTP:
/// a challenge verified through both at once is accepted exactly once; 200
/// concurrent sign-ins with one credential, each verified by the other
/// process than the one that issued its challenge, all pass and leave the
/// highest counter with no false regression; after both stop, a third
/// process signs the user in with the counter where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_server_processes_on_one_database() {
    let Some(admin) = admin_url() else { return };
    let Some(bin) = rp_server_bin() else { return };
    let db = TestDb::create(&admin, "procs").await;
    let (a, b) = (ServerProcess::start(&bin, &db.url), ServerProcess::start(&bin, &db.url));
    let mut key = SoftKey::new();
    Client::remote(a.addr).register("rita", &mut key, json!({})).await.ok();

    for round in 0..10 {
        let mut c = Client::remote(a.addr);
        let o = c.post("/api/login/options", &json!({"username": "rita"})).await.json;
        let resp = key.assert(&o, ORIGIN);
        let mut via_a = c.clone();
        let mut via_b = Client { remote: Some(b.addr), ..c.clone() };
        let (r1, r2) = tokio::join!(via_a.post("/api/login/verify", &resp), via_b.post("/api/login/verify", &resp));
        assert_eq!(
            [&r1, &r2].iter().filter(|r| r.status == 200).count(),
            1,
            "round {round}: {} / {}",
            r1.json,
            r2.json
        );
        let loser = if r1.status == 200 { &r2 } else { &r1 };
        loser.assert_error(400, "no_pending_ceremony");
    }

    const N: u32 = 200;
    let mut prepared = Vec::new();
    for i in 0..N {
        let (issuer, verifier) = if i % 2 == 0 { (a.addr, b.addr) } else { (b.addr, a.addr) };
        let mut c = Client::remote(issuer);
        let o = c.post("/api/login/options", &json!({"username": "rita"})).await.json;
        let resp = key.assert(&o, ORIGIN);
        c.remote = Some(verifier);
        prepared.push((c, resp));
    }
    let tasks: Vec<_> = prepared
        .into_iter()
        .rev()
        .map(|(mut c, resp)| tokio::spawn(async move { c.post("/api/login/verify", &resp).await }))
        .collect();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200, "{}", r.json);
    }
    let store = PgStore::connect(&db.url).await.expect("store");
    let (stored, _) = store.credential(&key.credential_id).await.expect("db").expect("credential");
    assert_eq!(stored.record.sign_count, 10 + N, "the counter holds the highest value seen");
    let regressions = store
        .audit_events(&AuditQuery { kind: Some(AuditKind::CounterRegression), ..Default::default() })
        .await
        .unwrap();
    assert!(regressions.is_empty(), "false regressions: {regressions:?}");
    let sign_ins =
        store.audit_events(&AuditQuery { kind: Some(AuditKind::SignIn), limit: 1000, ..Default::default() }).await;
    assert_eq!(sign_ins.unwrap().len(), 10 + N as usize);

    drop((a, b));
    let c = ServerProcess::start(&bin, &db.url);
    let v = Client::remote(c.addr).login(Some("rita"), &mut key).await;
    assert_eq!(v.ok()["signCount"], 10 + N + 1);
    drop(c);
    store.close().await;
    db.drop_db().await;
}
