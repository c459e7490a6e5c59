//! Two relying-party instances (separate routers on separate connection
//! pools) on one PostgreSQL database: single-use challenges across instances,
//! compare-and-set sign counters under 200 concurrent sign-ins, and
//! persistence across a restart.
//!
//! Runs only when `HWKEY_TEST_POSTGRES_URL` names a server where the user may
//! create databases (e.g. `postgres://postgres@127.0.0.1:5432/test`); each
//! test creates and drops a database of its own.
#![cfg(all(feature = "http", feature = "postgres"))]

mod common;

use common::{Client, ORIGIN, RP_ID, SoftKey};
use hwkey::server::http::router;
use hwkey::server::store::postgres::PgStore;
use hwkey::server::store::{AuditKind, AuditQuery, Store};
use hwkey::server::{RelyingParty, RpConfig};
use serde_json::json;
use sqlx::Connection;

fn admin_url() -> Option<String> {
    match std::env::var("HWKEY_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            println!("skipped: set HWKEY_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run");
            None
        }
    }
}

/// A database created for one test, dropped at the end.
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    async fn create(admin: &str, tag: &str) -> TestDb {
        let rnd = hwkey::crypto::default_provider().random_bytes(4).expect("rng");
        let name = format!("hwkey_{tag}_{}_{}", std::process::id(), hex::encode(rnd));
        let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect to HWKEY_TEST_POSTGRES_URL");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
        conn.close().await.ok();
        // Replace the database name (the path) in the URL.
        let (base, query) = match admin.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin, String::new()),
        };
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let host_part = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        TestDb { admin: admin.to_owned(), url: format!("{host_part}/{name}{query}"), name }
    }

    async fn drop_db(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let _ =
                sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut conn).await;
            conn.close().await.ok();
        }
    }
}

fn rp() -> RelyingParty {
    RelyingParty::new(RpConfig::new(RP_ID, "hwkey test", ORIGIN)).expect("rp")
}

/// Two instances: their own pool each.
async fn two_instances(url: &str) -> (PgStore, Client, PgStore, Client) {
    let a = PgStore::connect_with_pool_size(url, 8).await.expect("instance A");
    let b = PgStore::connect_with_pool_size(url, 8).await.expect("instance B");
    let ca = Client::new(router(rp(), a.clone()));
    let cb = Client::new(router(rp(), b.clone()));
    (a, ca, b, cb)
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
