//! Bounded state and strict bodies (CONTRACTS §2, §2.2), in process: JSON
//! bodies must be objects, stored credential fields are capped, pending
//! ceremonies are capped by count and bytes (503 `overloaded` with
//! `Retry-After` at a cap, never 500).
#![cfg(all(feature = "http", feature = "sqlite"))]

mod common;

use common::{Client, ORIGIN, RP_ID, SoftKey};
use hwkey::http::{HttpOptions, router_with};
use hwkey::server::{RelyingParty, RpConfig};
use hwkey::store::ceremony_cache::CeremonyLimits;
use hwkey::store::{DbStore, Store};
use serde_json::json;

fn rp() -> RelyingParty {
    RelyingParty::new(RpConfig::new(RP_ID, "hwkey test", ORIGIN)).expect("rp")
}

async fn client_with(opts: HttpOptions) -> (Client, DbStore) {
    let store = DbStore::connect("sqlite::memory:").await.expect("store");
    (Client::new(router_with(rp(), store.clone(), opts)), store)
}

/// serde's derived structs take a JSON array for a struct (fields in
/// order): `[]` to `/api/login/options` was answered 200, `["alice"]` to
/// `/api/register/options` started a registration. Every endpoint that
/// takes a body wants an object.
#[tokio::test]
async fn non_object_bodies_are_malformed() {
    let (mut c, _) = client_with(HttpOptions::default()).await;
    let endpoints = [
        "/api/register/options",
        "/api/register/verify",
        "/api/login/options",
        "/api/login/verify",
        "/api/login/totp",
        "/api/login/recovery",
    ];
    for path in endpoints {
        for body in [&b"[]"[..], b"[\"alice\"]", b" [null, null]", b"\"alice\"", b"1", b"null", b"true"] {
            let r = c.send(axum::http::Method::POST, path, body.to_vec()).await;
            assert!(r.status.is_client_error(), "{path} {:?}: {} {}", String::from_utf8_lossy(body), r.status, r.json);
            assert_eq!(r.json["error"], "malformed_request", "{path} {:?}: {}", String::from_utf8_lossy(body), r.json);
        }
    }
}

/// A registration response may carry any number of `transports` strings;
/// only the known values are kept, each once, at most 8, so a sign-in's
/// options (and the pending ceremony that copies them) stay small.
#[tokio::test]
async fn bloated_transports_are_reduced_to_the_known_values() {
    let (mut c, store) = client_with(HttpOptions::default()).await;
    let mut key = SoftKey::new();
    let opts = c.post("/api/register/options", &json!({"username": "bloat"})).await.ok().clone();
    let mut resp = key.register(&opts, ORIGIN);
    let mut transports: Vec<String> = (0..3000).map(|i| format!("transport-{i:05}")).collect();
    transports.extend(["usb", "nfc", "usb", "hybrid"].map(String::from));
    resp["response"]["transports"] = json!(transports);
    c.post("/api/register/verify", &resp).await.ok();
    let me = c.get("/api/me").await.ok().clone();
    assert_eq!(me["credentials"][0]["transports"], json!(["usb", "nfc", "hybrid"]), "{me}");
    let creds = store.credentials_of_user(&key.user_handle.clone().expect("handle")).await.expect("creds");
    assert_eq!(creds[0].record.transports, ["usb", "nfc", "hybrid"]);
    let login = c.post("/api/login/options", &json!({"username": "bloat"})).await.ok().clone();
    assert_eq!(login["allowCredentials"][0]["transports"], json!(["usb", "nfc", "hybrid"]));
}

/// Names over 64 characters are refused by the store itself, not only by
/// the HTTP layer.
#[tokio::test]
async fn the_store_caps_names() {
    let store = DbStore::connect("sqlite::memory:").await.expect("store");
    let (mut c, _) = (Client::new(router_with(rp(), store.clone(), HttpOptions::default())), ());
    let mut key = SoftKey::new();
    c.register("names", &mut key, json!({})).await.ok();
    let handle = key.user_handle.clone().expect("handle");
    let long = "n".repeat(65);
    let e = store.rename_credential(&handle, &key.credential_id, &long).await.expect_err("65 characters");
    assert_eq!(e.code(), "malformed_request");
    assert!(store.rename_credential(&handle, &key.credential_id, &"é".repeat(64)).await.expect("64 characters"));
    let r = c
        .send(
            axum::http::Method::PATCH,
            &format!("/api/credentials/{}", key.id_b64()),
            json!({"nickname": long}).to_string(),
        )
        .await;
    r.assert_error(400, "malformed_request");
}

/// At the count cap: 503 `overloaded` with Retry-After (was 500
/// `storage_error`), and room again once a ceremony is consumed.
#[tokio::test]
async fn ceremony_count_cap_answers_503_overloaded() {
    let limits = CeremonyLimits { max_count: 50, ..CeremonyLimits::default() };
    let (c, _) = client_with(HttpOptions { ceremony_limits: limits, ..HttpOptions::default() }).await;
    for i in 0..50 {
        let mut fresh = Client::new(c.app.clone());
        fresh.post("/api/login/options", &json!({})).await.ok();
        assert!(i < 50);
    }
    let mut fresh = Client::new(c.app.clone());
    let r = fresh.post("/api/login/options", &json!({})).await;
    r.assert_error(503, "overloaded");
    // The same browser asking again replaces its own ceremony: no growth.
    let mut one = Client::new(c.app.clone());
    let _ = one.post("/api/login/options", &json!({})).await;
    let r = one.post("/api/login/verify", &json!({})).await;
    assert!(r.status.is_client_error());
}

/// The byte cap: a user whose sign-in options are large fills it sooner
/// than the count cap; then 503 `overloaded`, never 500.
#[tokio::test]
async fn ceremony_byte_cap_answers_503_overloaded() {
    let limits = CeremonyLimits { max_count: 100_000, max_bytes: 64 * 1024, max_one_bytes: 64 * 1024 };
    let (mut c, _) = client_with(HttpOptions { ceremony_limits: limits, ..HttpOptions::default() }).await;
    let mut key = SoftKey::new();
    c.register("bytes", &mut key, json!({})).await.ok();
    let mut ok = 0;
    let mut overloaded = 0;
    for _ in 0..200 {
        let mut fresh = Client::new(c.app.clone());
        let r = fresh.post("/api/login/options", &json!({"username": "bytes"})).await;
        match r.status.as_u16() {
            200 => ok += 1,
            503 => {
                r.assert_error(503, "overloaded");
                overloaded += 1;
            }
            s => panic!("status {s}: {}", r.json),
        }
    }
    assert!(ok > 10 && overloaded > 0, "{ok} answered, {overloaded} refused");
}

/// A browser that asks for options again replaces its pending ceremony.
#[tokio::test]
async fn one_pending_ceremony_per_browser() {
    let limits = CeremonyLimits { max_count: 3, ..CeremonyLimits::default() };
    let (mut c, _) = client_with(HttpOptions { ceremony_limits: limits, ..HttpOptions::default() }).await;
    for _ in 0..20 {
        c.post("/api/login/options", &json!({})).await.ok();
    }
}

/// Security changes (registration, key removal, renames, sign-outs, factor
/// changes) go through the store's write connection: its commits are
/// fsync'd (`synchronous = FULL`, 2), so a 200 survives a power cut. It was
/// NORMAL (1): committed, not yet on disk.
#[tokio::test]
async fn sqlite_security_writes_are_fsynced() {
    let dir = std::env::temp_dir().join(format!("hwkey-limits-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}", dir.join("sync.sqlite3").display());
    let store = hwkey::store::sqlite::SqliteStore::connect(&url).await.expect("store");
    let level: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(store.write_pool()).await.expect("pragma");
    assert_eq!(level, 2, "synchronous = FULL on the write connection");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
