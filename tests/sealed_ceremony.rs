//! Ceremonies sealed in the ceremony cookie (`HttpOptions::ceremony_storage`
//! = `Sealed`, the default on PostgreSQL), in process over SQLite: nothing is
//! kept on the server when a ceremony starts, and still each ceremony is
//! accepted once, pass or fail; a changed, foreign or expired cookie is
//! refused with the contract's codes.
#![cfg(all(feature = "http", feature = "sqlite"))]

mod common;

use common::{Client, ORIGIN, RP_ID, SoftKey};
use hwkey::http::{CeremonyStorage, HttpOptions, router_with};
use hwkey::server::{RelyingParty, RpConfig};
use hwkey::store::DbStore;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

fn rp() -> RelyingParty {
    RelyingParty::new(RpConfig::new(RP_ID, "hwkey test", ORIGIN)).expect("rp")
}

struct Env {
    client: Client,
    store: DbStore,
    offset: Arc<AtomicU64>,
}

async fn env() -> Env {
    let store = DbStore::connect("sqlite::memory:").await.expect("store");
    let offset = Arc::new(AtomicU64::new(0));
    let o = offset.clone();
    let opts = HttpOptions {
        ceremony_storage: CeremonyStorage::Sealed,
        clock: Arc::new(move || SystemTime::now() + Duration::from_secs(o.load(Ordering::SeqCst))),
        secret_key: Some(Arc::new(hwkey::account::SecretKeyring::ephemeral().expect("keyring"))),
        ..Default::default()
    };
    Env { client: Client::new(router_with(rp(), store.clone(), opts)), store, offset }
}

async fn used_ceremonies(store: &DbStore) -> i64 {
    let DbStore::Sqlite(s) = store else { panic!("sqlite") };
    sqlx::query_scalar("SELECT COUNT(*) FROM used_ceremonies").fetch_one(s.write_pool()).await.expect("count")
}

/// The cookie holds the sealed state (longer than a 32-byte token); a
/// sign-in through it works, and the same cookie and response again is
/// `no_pending_ceremony` (the ceremony's id was recorded in the sign-in's
/// own write).
#[tokio::test]
async fn a_sealed_sign_in_is_accepted_once() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("alice", &mut key, json!({})).await.ok();
    assert_eq!(used_ceremonies(&e.store).await, 1, "the registration's ceremony is recorded");

    let o = e.client.post("/api/login/options", &json!({"username": "alice"})).await.ok().clone();
    let cookie = e.client.jar.get("hwkey_ceremony").cloned().expect("ceremony cookie");
    assert!(cookie.len() > 100, "the state is in the cookie: {} characters", cookie.len());
    assert!(cookie.len() < 4000, "and fits a browser's cookie limit");
    let resp = key.assert(&o, ORIGIN);
    let r = e.client.post("/api/login/verify", &resp).await;
    r.ok();
    assert_eq!(used_ceremonies(&e.store).await, 2);

    // The attacker's replay: the same cookie and the same response.
    let mut replay = Client::new(e.client.app.clone());
    replay.jar.insert("hwkey_ceremony".into(), cookie);
    replay.post("/api/login/verify", &resp).await.assert_error(400, "no_pending_ceremony");
}

/// Concurrent verifies of one sealed ceremony: exactly one signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifies_of_one_sealed_ceremony_sign_in_once() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("bob", &mut key, json!({})).await.ok();
    for round in 0..10 {
        let mut c = Client::new(e.client.app.clone());
        let o = c.post("/api/login/options", &json!({"username": "bob"})).await.ok().clone();
        let resp = key.assert(&o, ORIGIN);
        let (mut a, mut b) = (c.clone(), c.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let resp = resp.clone();
                async move { a.post("/api/login/verify", &resp).await }
            }),
            tokio::spawn(async move { b.post("/api/login/verify", &resp).await })
        );
        let (ra, rb) = (ra.expect("task"), rb.expect("task"));
        let oks = [&ra, &rb].iter().filter(|r| r.status == 200).count();
        assert_eq!(oks, 1, "round {round}: {} / {}", ra.json, rb.json);
        let loser = if ra.status == 200 { &rb } else { &ra };
        loser.assert_error(400, "no_pending_ceremony");
    }
}

/// A failed verify uses the ceremony up too: a good response after a bad
/// one, with the same cookie, is refused.
#[tokio::test]
async fn a_failed_verify_uses_the_sealed_ceremony_up() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("carol", &mut key, json!({})).await.ok();
    let o = e.client.post("/api/login/options", &json!({"username": "carol"})).await.ok().clone();
    let cookie = e.client.jar.get("hwkey_ceremony").cloned().expect("cookie");
    let good = key.assert(&o, ORIGIN);
    let mut bad = good.clone();
    bad["response"]["signature"] = json!("AAAA");
    let r = e.client.post("/api/login/verify", &bad).await;
    assert_eq!(r.status, 400, "{}", r.json);
    let mut again = Client::new(e.client.app.clone());
    again.jar.insert("hwkey_ceremony".into(), cookie);
    again.post("/api/login/verify", &good).await.assert_error(400, "no_pending_ceremony");
}

/// A changed cookie, one sealed by another server, and an expired one.
#[tokio::test]
async fn changed_foreign_and_expired_sealed_cookies_are_refused() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("dave", &mut key, json!({})).await.ok();

    // Changed: one character of the sealed state.
    let o = e.client.post("/api/login/options", &json!({"username": "dave"})).await.ok().clone();
    let resp = key.assert(&o, ORIGIN);
    let cookie = e.client.jar.get("hwkey_ceremony").cloned().expect("cookie");
    let mut chars: Vec<char> = cookie.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let mut c = Client::new(e.client.app.clone());
    c.jar.insert("hwkey_ceremony".into(), chars.into_iter().collect());
    c.post("/api/login/verify", &resp).await.assert_error(400, "no_pending_ceremony");

    // Foreign: sealed by another server (another session secret).
    let other = env().await;
    let mut oc = other.client;
    let mut other_key = SoftKey::new();
    oc.register("dave", &mut other_key, json!({})).await.ok();
    oc.post("/api/login/options", &json!({"username": "dave"})).await.ok();
    let mut c = Client::new(e.client.app.clone());
    c.jar.insert("hwkey_ceremony".into(), oc.jar.get("hwkey_ceremony").cloned().expect("cookie"));
    c.post("/api/login/verify", &resp).await.assert_error(400, "no_pending_ceremony");

    // The genuine one still works.
    e.client.post("/api/login/verify", &resp).await.ok();

    // Expired: past the relying party's timeout.
    let o = e.client.post("/api/login/options", &json!({"username": "dave"})).await.ok().clone();
    let resp = key.assert(&o, ORIGIN);
    e.offset.fetch_add(3600, Ordering::SeqCst);
    e.client.post("/api/login/verify", &resp).await.assert_error(400, "challenge_expired");
}

/// A registration's sealed ceremony is used once as well, and a new
/// ceremony from the same browser uses up the one before it.
#[tokio::test]
async fn registrations_are_once_and_a_new_ceremony_ends_the_last() {
    let mut e = env().await;
    let o = e.client.post("/api/register/options", &json!({"username": "erin"})).await.ok().clone();
    let cookie = e.client.jar.get("hwkey_ceremony").cloned().expect("cookie");
    let mut key = SoftKey::new();
    let resp = key.register(&o, ORIGIN);
    e.client.post("/api/register/verify", &resp).await.ok();
    let mut replay = Client::new(e.client.app.clone());
    replay.jar.insert("hwkey_ceremony".into(), cookie);
    let mut key2 = SoftKey::new();
    let resp2 = key2.register(&o, ORIGIN);
    replay.post("/api/register/verify", &resp2).await.assert_error(400, "no_pending_ceremony");

    // Options twice: the first cookie (kept by someone) is used up by the second.
    let mut c = Client::new(e.client.app.clone());
    let first = c.post("/api/login/options", &json!({"username": "erin"})).await.ok().clone();
    let first_cookie = c.jar.get("hwkey_ceremony").cloned().expect("cookie");
    c.post("/api/login/options", &json!({"username": "erin"})).await.ok();
    let mut old = Client::new(e.client.app.clone());
    old.jar.insert("hwkey_ceremony".into(), first_cookie);
    let r = old.post("/api/login/verify", &key.assert(&first, ORIGIN)).await;
    r.assert_error(400, "no_pending_ceremony");
}

/// Unknown usernames: the same sealed answer shape (no oracle), and
/// discoverable sign-in reads the credential at verify.
#[tokio::test]
async fn discoverable_sign_in_through_a_sealed_ceremony() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("frank", &mut key, json!({"residentKey": "required"})).await.ok();
    let r = e.client.login(None, &mut key).await;
    r.ok();
    assert_eq!(r.json["username"], "frank");
}
