//! PostgreSQL under the limits of CONTRACTS §2.2: the session settings of
//! every pooled connection (statement timeout, keepalives), the caps on
//! pending ceremonies in the table (503 `overloaded`, never 500), and the
//! caps on stored credential fields.
//!
//! Runs only when `HWKEY_TEST_POSTGRES_URL` names a server where the user may
//! create databases; each test creates and drops a database of its own.
#![cfg(all(feature = "http", feature = "postgres"))]

mod common;
mod pgdb;

use common::{Client, ORIGIN, RP_ID, SoftKey};
use hwkey::http::{CeremonyStorage, HttpOptions, router, router_with};
use hwkey::server::{RelyingParty, RpConfig};
use hwkey::store::Store;
use hwkey::store::ceremony_cache::CeremonyLimits;
use hwkey::store::postgres::PgStore;
use pgdb::{TestDb, admin_url};
use serde_json::json;

fn rp() -> RelyingParty {
    RelyingParty::new(RpConfig::new(RP_ID, "hwkey test", ORIGIN)).expect("rp")
}

/// Every connection runs with a statement timeout and asks for TCP
/// keepalives (there were none: a stuck statement held its connection for
/// ever).
#[tokio::test]
async fn sessions_have_a_statement_timeout_and_keepalives() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "settings").await;
    let store = PgStore::connect(&db.url).await.expect("store");
    for (name, want) in
        [("statement_timeout", "5s"), ("tcp_keepalives_idle", "30"), ("idle_in_transaction_session_timeout", "10s")]
    {
        let got: String = sqlx::query_scalar(&format!("SHOW {name}")).fetch_one(store.pool()).await.expect("show");
        assert_eq!(got, want, "{name}");
    }
    // A statement over the timeout fails as "overloaded", not as a hang.
    let e = sqlx::query("SELECT pg_sleep(6)").execute(store.pool()).await.expect_err("cancelled");
    assert_eq!(hwkey::store::StoreError::from(e).code(), "overloaded");
    store.close().await;
    db.drop_db().await;
}

/// The ceremonies table is capped by count: at the cap, 503 `overloaded`
/// with Retry-After (there was no cap at all). (PostgreSQL seals ceremonies
/// in the cookie by default, holding none; the table is the mode for
/// ceremonies too large for a cookie, and can be chosen.)
#[tokio::test]
async fn pending_ceremonies_are_capped_in_the_table() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "cap").await;
    let store = PgStore::connect(&db.url)
        .await
        .expect("store")
        .with_ceremony_limits(CeremonyLimits { max_count: 30, ..CeremonyLimits::default() });
    let opts = HttpOptions { ceremony_storage: CeremonyStorage::Store, ..HttpOptions::default() };
    let app = router_with(rp(), store.clone(), opts);
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for _ in 0..60 {
        let mut c = Client::new(app.clone());
        let r = c.post("/api/login/options", &json!({})).await;
        if r.status.as_u16() == 503 {
            r.assert_error(503, "overloaded");
        }
        *statuses.entry(r.status.as_u16()).or_default() += 1;
    }
    assert_eq!(statuses.get(&200), Some(&30), "{statuses:?}");
    assert_eq!(statuses.get(&503), Some(&30), "{statuses:?}");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ceremonies").fetch_one(store.pool()).await.expect("count");
    assert_eq!(rows, 30);
    store.close().await;
    db.drop_db().await;
}

/// By default PostgreSQL keeps no pending ceremony at all: the state is
/// sealed in the cookie, options write nothing, and a sign-in records its
/// ceremony as used in its own statement (one row per verified ceremony,
/// none in the ceremonies table), so a flood of options holds nothing.
#[tokio::test]
async fn sealed_ceremonies_hold_nothing_on_the_server() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "sealed").await;
    let store = PgStore::connect(&db.url).await.expect("store");
    let app = router(rp(), store.clone());
    for _ in 0..200 {
        Client::new(app.clone()).post("/api/login/options", &json!({})).await.ok();
    }
    let count = |table: &'static str| {
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };
    assert_eq!(count("ceremonies").await, 0, "options wrote nothing");
    assert_eq!(count("used_ceremonies").await, 0);
    let mut c = Client::new(app.clone());
    let mut key = SoftKey::new();
    c.register("sealy", &mut key, json!({})).await.ok();
    c.login(Some("sealy"), &mut key).await.ok();
    c.login(None, &mut key).await.ok();
    assert_eq!(count("ceremonies").await, 0);
    assert_eq!(count("used_ceremonies").await, 3, "one registration, two sign-ins");
    store.close().await;
    db.drop_db().await;
}

/// A user with their credentials is one statement (LEFT JOIN), for a known
/// name and an unknown one alike, and gives what the other reads give.
#[tokio::test]
async fn user_with_credentials_is_one_statement_with_the_same_answer() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "uwc").await;
    let store = PgStore::connect(&db.url).await.expect("store");
    let mut c = Client::new(router(rp(), store.clone()));
    let mut key = SoftKey::new();
    c.register("lefty", &mut key, json!({})).await.ok();
    let mut second = SoftKey::new();
    let r = c.post("/api/register/options", &json!({"username": "lefty"})).await;
    let o = r.ok().clone();
    c.post("/api/register/verify", &second.register(&o, common::ORIGIN)).await.ok();
    let (user, creds) = store.user_with_credentials("lefty").await.expect("read").expect("known");
    assert_eq!(user, store.user_by_username("lefty").await.expect("read").expect("user"));
    assert_eq!(creds, store.credentials_of_user(&user.handle).await.expect("read"));
    assert_eq!(creds.len(), 2);
    assert_eq!(store.user_with_credentials("nobody").await.expect("read"), None);
    store.close().await;
    db.drop_db().await;
}

/// Transports and names are capped in the PostgreSQL store too.
#[tokio::test]
async fn credential_fields_are_capped() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin, "fields").await;
    let store = PgStore::connect(&db.url).await.expect("store");
    let mut c = Client::new(router(rp(), store.clone()));
    let mut key = SoftKey::new();
    let opts = c.post("/api/register/options", &json!({"username": "pgbloat"})).await.ok().clone();
    let mut resp = key.register(&opts, ORIGIN);
    let transports: Vec<String> = (0..2000).map(|i| format!("t{i}")).chain(["nfc".into(), "usb".into()]).collect();
    resp["response"]["transports"] = json!(transports);
    c.post("/api/register/verify", &resp).await.ok();
    let handle = key.user_handle.clone().expect("handle");
    let creds = store.credentials_of_user(&handle).await.expect("creds");
    assert_eq!(creds[0].record.transports, ["nfc", "usb"]);
    let stored: String =
        sqlx::query_scalar("SELECT transports FROM credentials").fetch_one(store.pool()).await.expect("row");
    assert_eq!(stored, r#"["nfc","usb"]"#);
    let e = store.rename_credential(&handle, &key.credential_id, &"x".repeat(65)).await.expect_err("65 characters");
    assert_eq!(e.code(), "malformed_request");
    store.close().await;
    db.drop_db().await;
}
