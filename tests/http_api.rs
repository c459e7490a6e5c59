//! The HTTP contract (CONTRACTS §2), in process: the router over SQLite,
//! driven with real WebAuthn responses from a software signer.
#![cfg(all(feature = "http", feature = "sqlite"))]

mod common;

use axum::body::Body;
use axum::http::Method;
use common::{Client, ORIGIN, RP_ID, SoftKey};
use hwkey::http::{HttpOptions, router_with};
use hwkey::server::{RelyingParty, RpConfig};
use hwkey::store::{AuditKind, AuditQuery, DbStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

struct Env {
    client: Client,
    store: DbStore,
    clock_offset: Arc<AtomicU64>,
}

impl Env {
    fn advance(&self, secs: u64) {
        self.clock_offset.fetch_add(secs, Ordering::SeqCst);
    }
    fn fresh_client(&self) -> Client {
        Client::new(self.client.app.clone())
    }
}

fn rp() -> RelyingParty {
    RelyingParty::new(RpConfig::new(RP_ID, "hwkey test", ORIGIN)).expect("rp")
}

async fn env_with(url: &str) -> Env {
    let store = DbStore::connect(url).await.expect("store");
    let clock_offset = Arc::new(AtomicU64::new(0));
    let o = clock_offset.clone();
    let opts = HttpOptions {
        clock: Arc::new(move || SystemTime::now() + Duration::from_secs(o.load(Ordering::SeqCst))),
        ..Default::default()
    };
    let app = router_with(rp(), store.clone(), opts);
    Env { client: Client::new(app), store, clock_offset }
}

async fn env() -> Env {
    env_with("sqlite::memory:").await
}

async fn events(store: &DbStore, kind: AuditKind) -> Vec<hwkey::store::AuditEvent> {
    store.audit_events(&AuditQuery { kind: Some(kind), limit: 1000, ..Default::default() }).await.expect("audit")
}

#[tokio::test]
async fn register_sign_in_manage_sign_out() {
    let mut e = env().await;
    let c = &mut e.client;
    let mut key = SoftKey::new();

    // Registration options: the contract's JSON forms.
    let opts = c.post("/api/register/options", &json!({"username": "alice", "displayName": "Alice A."})).await;
    assert!(opts.set_cookies.iter().any(|s| s.starts_with("hwkey_ceremony=")
        && s.contains("HttpOnly")
        && s.contains("SameSite=Strict")
        && !s.contains("Secure")));
    let o = opts.ok().clone();
    assert_eq!(o["rp"]["id"], "localhost");
    assert_eq!(o["user"]["name"], "alice");
    assert_eq!(o["user"]["displayName"], "Alice A.");
    assert_eq!(hwkey::proto::webauthn::b64url_decode(o["user"]["id"].as_str().unwrap()).unwrap().len(), 32);
    assert!(o["challenge"].as_str().unwrap().len() >= 22);
    assert_eq!(o["pubKeyCredParams"][0]["alg"], -7);

    let reg = c.post("/api/register/verify", &key.register(&o, ORIGIN)).await;
    let r = reg.ok();
    assert_eq!(r["verified"], true);
    assert_eq!(r["username"], "alice");
    assert_eq!(r["credentialId"], key.id_b64());
    assert_eq!(r["attestationFormat"], "none");
    assert_eq!(r["aaguid"], "11111111-1111-1111-1111-111111111111");
    assert_eq!(r["userVerified"], true);
    assert_eq!(r["backupEligible"], false);
    assert_eq!(r["backedUp"], false);
    // Registration signs the new user in.
    assert!(c.jar.contains_key("hwkey_session"));
    let me = c.get("/api/me").await;
    assert_eq!(me.ok()["username"], "alice");
    assert_eq!(me.json["credentials"].as_array().unwrap().len(), 1);
    assert_eq!(me.json["credentials"][0]["nickname"], "Security key");

    // Sign out, then sign in by username.
    c.post("/api/logout", &json!({})).await.ok();
    c.get("/api/me").await.assert_error(401, "not_signed_in");
    let lo = c.post("/api/login/options", &json!({"username": "alice"})).await;
    let lo = lo.ok().clone();
    assert_eq!(lo["allowCredentials"][0]["id"], key.id_b64());
    assert_eq!(lo["rpId"], "localhost");
    let v = c.post("/api/login/verify", &key.assert(&lo, ORIGIN)).await;
    let v = v.ok();
    assert_eq!(v["verified"], true);
    assert_eq!(v["username"], "alice");
    assert_eq!(v["credentialId"], key.id_b64());
    assert_eq!(v["signCount"], 1);
    assert_eq!(v["userVerified"], true);
    let me = c.get("/api/me").await;
    assert_eq!(me.ok()["credentials"][0]["signCount"], 1);
    assert!(me.json["credentials"][0]["lastUsedAt"].is_i64());

    // Add a discoverable key while signed in, then sign in without a username.
    let mut passkey = SoftKey::new();
    let reg2 = c.register("alice", &mut passkey, json!({"residentKey": "required"})).await;
    reg2.ok();
    let me = c.get("/api/me").await;
    let creds = me.ok()["credentials"].as_array().unwrap().clone();
    assert_eq!(creds.len(), 2);
    assert_eq!(creds[1]["nickname"], "Passkey 2");
    assert_eq!(creds[1]["discoverable"], true);
    c.post("/api/logout", &json!({})).await.ok();
    let lo = c.post("/api/login/options", &json!({})).await;
    assert_eq!(lo.ok()["allowCredentials"], json!([]));
    let v = c.post("/api/login/verify", &passkey.assert(&lo.json, ORIGIN)).await;
    assert_eq!(v.ok()["username"], "alice");

    // Rename and remove.
    let path = format!("/api/credentials/{}", key.id_b64());
    let rn = c.send(Method::PATCH, &path, r#"{"nickname":"  Blue key  "}"#).await;
    assert_eq!(rn.ok()["nickname"], "Blue key");
    assert_eq!(c.get("/api/me").await.json["credentials"][0]["nickname"], "Blue key");
    c.send(Method::DELETE, &path, Body::empty()).await.ok();
    c.send(Method::DELETE, &path, Body::empty()).await.assert_error(404, "unknown_credential");
    let last = format!("/api/credentials/{}", passkey.id_b64());
    c.send(Method::DELETE, &last, Body::empty()).await.assert_error(409, "last_credential");
    assert_eq!(c.get("/api/me").await.json["credentials"].as_array().unwrap().len(), 1);
    // The removed key no longer signs in.
    c.post("/api/logout", &json!({})).await.ok();
    let lo = c.post("/api/login/options", &json!({})).await;
    c.post("/api/login/verify", &key.assert(&lo.json, ORIGIN)).await.assert_error(400, "unknown_credential");

    // Another user cannot touch alice's keys.
    let mut bob = e.fresh_client();
    bob.register("bob", &mut SoftKey::new(), json!({})).await.ok();
    bob.send(Method::PATCH, &last, r#"{"nickname":"mine"}"#).await.assert_error(404, "unknown_credential");
    bob.send(Method::DELETE, &last, Body::empty()).await.assert_error(404, "unknown_credential");

    // The audit log saw it all.
    assert_eq!(events(&e.store, AuditKind::Registration).await.len(), 3);
    assert_eq!(events(&e.store, AuditKind::SignIn).await.len(), 2);
    assert_eq!(events(&e.store, AuditKind::CredentialRenamed).await.len(), 1);
    assert_eq!(events(&e.store, AuditKind::CredentialRemoved).await.len(), 1);
    let failed = events(&e.store, AuditKind::SignInFailed).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].code.as_deref(), Some("unknown_credential"));
}

#[tokio::test]
async fn demo_page_and_well_known() {
    let mut e = env().await;
    let page = e.client.get("/").await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains("<html"));
    assert!(!html.contains("http://") && !html.contains("https://"), "no external resources");
    for asset in ["/demo.js", "/demo.css"] {
        let r = e.client.get(asset).await;
        assert_eq!(r.status, 200, "{asset}");
        let text = String::from_utf8(r.body).unwrap();
        assert!(!text.contains("https://") && !text.contains("http://"), "{asset}: no external resources");
    }
    let wk = e.client.get("/.well-known/webauthn").await;
    assert_eq!(wk.ok()["origins"], json!([ORIGIN]));
    e.client.get("/nope").await.assert_error(404, "not_found");
    e.client.get("/api/register/options").await.assert_error(405, "method_not_allowed");
}

fn bad_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", vec![]),
        ("whitespace", b"  \n".to_vec()),
        ("truncated", br#"{"username": "al"#.to_vec()),
        ("not json", b"username=alice".to_vec()),
        ("array", b"[1,2,3]".to_vec()),
        ("null", b"null".to_vec()),
        ("number", b"42".to_vec()),
        ("mistyped", br#"{"username": 5, "id": 7, "rawId": [], "response": "x", "type": false}"#.to_vec()),
        ("nested wrong", br#"{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":1}}"#.to_vec()),
        ("invalid utf-8", b"{\"username\": \"\xff\xfe\"}".to_vec()),
        ("bad base64", br#"{"id":"!!","rawId":"!!","type":"public-key","response":{"clientDataJSON":"!!","attestationObject":"!!","authenticatorData":"!!","signature":"!!"}}"#.to_vec()),
        ("nul", b"\0\0\0".to_vec()),
    ]
}

#[tokio::test]
async fn bad_input_to_every_endpoint_gets_4xx_in_contract_shape() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    // A signed-in client (for the session endpoints) with a pending ceremony.
    e.client.register("carol", &mut key, json!({})).await.ok();
    let cred_path = format!("/api/credentials/{}", key.id_b64());
    let endpoints: Vec<(Method, String)> = vec![
        (Method::POST, "/api/register/options".into()),
        (Method::POST, "/api/register/verify".into()),
        (Method::POST, "/api/login/options".into()),
        (Method::POST, "/api/login/verify".into()),
        (Method::PATCH, cred_path.clone()),
    ];
    for (method, path) in &endpoints {
        for (what, body) in bad_bodies() {
            // Sign-in options take an object whose fields are all optional: unknown fields are ignored.
            if path == "/api/login/options" && (what == "nested wrong" || what == "bad base64") {
                continue;
            }
            // With a pending ceremony, and without one.
            for pending in [true, false] {
                let mut c = e.client.clone();
                if pending {
                    let opts = if path.contains("register") { "/api/register/options" } else { "/api/login/options" };
                    let b = if path.contains("register") { json!({"username": "dave"}) } else { json!({}) };
                    c.post(opts, &b).await.ok();
                } else {
                    c.jar.remove("hwkey_ceremony");
                }
                let r = c.send(method.clone(), path, body.clone()).await;
                r.assert_client_error();
                assert_eq!(r.status, 400, "{method} {path} {what}: {}", r.json);
                assert_eq!(r.json["error"], "malformed_request", "{method} {path} {what}: {}", r.json);
            }
        }
        // Oversized: 413 in the contract shape, with and without Content-Length.
        let big = vec![b' '; 64 * 1024 + 1];
        let r = e.client.clone().send(method.clone(), path, big.clone()).await;
        r.assert_error(413, "payload_too_large");
        let stream = Body::from_stream(futures_stream(big));
        let r = e.client.clone().send(method.clone(), path, stream).await;
        r.assert_error(413, "payload_too_large");
        // Exactly the limit is not refused for its size.
        let mut fits = b"{\"username\":\"x\"}".to_vec();
        fits.resize(64 * 1024, b' ');
        let r = e.client.clone().send(method.clone(), path, fits).await;
        assert_ne!(r.status, 413, "{method} {path}");
    }
    // Bodies to the GET endpoints are ignored; bad credential IDs in paths are malformed.
    for bad in ["/api/credentials/!!!", "/api/credentials/%FF%FE"] {
        e.client.send(Method::DELETE, bad, Body::empty()).await.assert_error(400, "malformed_request");
        e.client.send(Method::PATCH, bad, r#"{"nickname":"x"}"#).await.assert_error(400, "malformed_request");
    }
    // Session endpoints without a session.
    let mut anon = e.fresh_client();
    anon.get("/api/me").await.assert_error(401, "not_signed_in");
    anon.send(Method::DELETE, &cred_path, Body::empty()).await.assert_error(401, "not_signed_in");
    // Garbage cookies are no session and no ceremony.
    anon.jar.insert("hwkey_session".into(), "garbage".into());
    anon.jar.insert("hwkey_ceremony".into(), "%%%".into());
    anon.get("/api/me").await.assert_error(401, "not_signed_in");
    anon.post("/api/login/verify", &key.assert_with("AAAA", ORIGIN, RP_ID, 99))
        .await
        .assert_error(400, "no_pending_ceremony");
    // Still serving, and carol still signs in.
    let mut c = e.fresh_client();
    c.login(Some("carol"), &mut key).await.ok();
}

fn futures_stream(data: Vec<u8>) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> =
        data.chunks(8192).map(|c| Ok(axum::body::Bytes::copy_from_slice(c))).collect();
    futures_util::stream::iter(chunks)
}

#[tokio::test]
async fn usernames_are_validated() {
    let mut e = env().await;
    let c = &mut e.client;
    for bad in [json!(""), json!("   "), json!("a".repeat(65)), json!("tab\there"), json!(null), json!(["x"])] {
        c.post("/api/register/options", &json!({"username": bad})).await.assert_error(400, "malformed_request");
    }
    c.post("/api/register/options", &json!({})).await.assert_error(400, "malformed_request");
    c.post("/api/login/options", &json!({"username": ""})).await.assert_error(400, "malformed_request");
    c.post("/api/login/options", &json!({"username": "é".repeat(65)})).await.assert_error(400, "malformed_request");
    c.post("/api/register/options", &json!({"username": "é".repeat(64)})).await.ok();
    for (field, value) in [("residentKey", "sometimes"), ("userVerification", "maybe"), ("attestation", "all")] {
        c.post("/api/register/options", &json!({"username": "x", field: value}))
            .await
            .assert_error(400, "malformed_request");
    }
    c.post("/api/register/options", &json!({"username": "x", "displayName": "d".repeat(65)}))
        .await
        .assert_error(400, "malformed_request");
    c.post("/api/login/options", &json!({"username": "nobody"})).await.assert_error(404, "unknown_user");
}

#[tokio::test]
async fn challenges_are_single_use_and_expire() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("erin", &mut key, json!({})).await.ok();
    let c = &mut e.fresh_client();

    // No cookie at all.
    c.post("/api/login/verify", &key.assert_with("AAAA", ORIGIN, RP_ID, 1))
        .await
        .assert_error(400, "no_pending_ceremony");
    // Replay: the same response twice.
    let o = c.post("/api/login/options", &json!({"username": "erin"})).await.json;
    let resp = key.assert(&o, ORIGIN);
    let cookie = c.jar.clone();
    c.post("/api/login/verify", &resp).await.ok();
    c.jar = cookie.clone();
    c.post("/api/login/verify", &resp).await.assert_error(400, "no_pending_ceremony");
    // Replay against a fresh challenge.
    c.post("/api/login/options", &json!({"username": "erin"})).await.ok();
    c.post("/api/login/verify", &resp).await.assert_error(400, "challenge_mismatch");
    // A failed verify consumes the challenge too.
    let o = c.post("/api/login/options", &json!({"username": "erin"})).await.json;
    let cookie = c.jar.clone();
    let mut bad = key.assert(&o, ORIGIN);
    bad["response"]["signature"] = json!("AAAA");
    c.post("/api/login/verify", &bad).await.assert_client_error();
    c.jar = cookie;
    c.post("/api/login/verify", &key.assert(&o, ORIGIN)).await.assert_error(400, "no_pending_ceremony");
    // Expiry: 300 s by default.
    let o = c.post("/api/login/options", &json!({"username": "erin"})).await.json;
    assert_eq!(o["timeout"], 300_000);
    e.advance(301);
    c.post("/api/login/verify", &key.assert(&o, ORIGIN)).await.assert_error(400, "challenge_expired");
    let o = c.post("/api/register/options", &json!({"username": "frank"})).await.json;
    e.advance(301);
    c.post("/api/register/verify", &SoftKey::new().register(&o, ORIGIN)).await.assert_error(400, "challenge_expired");
    // A registration ceremony does not serve a sign-in, and vice versa.
    c.post("/api/register/options", &json!({"username": "gina"})).await.ok();
    c.post("/api/login/verify", &key.assert_with("AAAA", ORIGIN, RP_ID, 50))
        .await
        .assert_error(400, "no_pending_ceremony");
    let o = c.post("/api/login/options", &json!({})).await.json;
    c.post("/api/register/verify", &SoftKey::new().register(&o, ORIGIN)).await.assert_error(400, "no_pending_ceremony");
}

#[tokio::test]
async fn verification_failures_have_distinct_codes() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("hank", &mut key, json!({})).await.ok();
    let c = &mut e.fresh_client();

    let fail = async |c: &mut Client, username: Option<&str>, make: &dyn Fn(&Value) -> Value| -> Value {
        let body = match username {
            Some(u) => json!({"username": u}),
            None => json!({}),
        };
        let o = c.post("/api/login/options", &body).await.json;
        let r = c.post("/api/login/verify", &make(&o)).await;
        r.assert_client_error();
        r.json
    };
    let ch = |o: &Value| o["challenge"].as_str().unwrap().to_owned();

    // Unknown credential (discoverable flow and username flow).
    let stranger = SoftKey::new();
    let j = fail(c, None, &|o| stranger.assert_with(&ch(o), ORIGIN, RP_ID, 1)).await;
    assert_eq!(j["error"], "unknown_credential");
    let j = fail(c, Some("hank"), &|o| stranger.assert_with(&ch(o), ORIGIN, RP_ID, 1)).await;
    assert_eq!(j["error"], "unknown_credential");
    // Bad signature.
    let k = key.clone();
    let j = fail(c, Some("hank"), &|o| {
        let mut r = k.assert_with(&ch(o), ORIGIN, RP_ID, 10);
        let other = k.assert_with(&ch(o), ORIGIN, RP_ID, 11);
        r["response"]["signature"] = other["response"]["signature"].clone();
        r
    })
    .await;
    assert_eq!(j["error"], "bad_signature");
    // Origin and RP ID.
    let j = fail(c, Some("hank"), &|o| k.assert_with(&ch(o), "https://evil.example", RP_ID, 12)).await;
    assert_eq!(j["error"], "origin_mismatch");
    let j = fail(c, Some("hank"), &|o| k.assert_with(&ch(o), ORIGIN, "evil.example", 13)).await;
    assert_eq!(j["error"], "rp_id_mismatch");
    // Challenge mismatch.
    let j = fail(c, Some("hank"), &|_| k.assert_with("c29tZXRoaW5nIGVsc2UgZW50aXJlbHk", ORIGIN, RP_ID, 14)).await;
    assert_eq!(j["error"], "challenge_mismatch");
    // Counter regression: sign in at 20, then present 15.
    let o = c.post("/api/login/options", &json!({"username": "hank"})).await.json;
    c.post("/api/login/verify", &k.assert_with(&ch(&o), ORIGIN, RP_ID, 20)).await.ok();
    let j = fail(c, Some("hank"), &|o| k.assert_with(&ch(o), ORIGIN, RP_ID, 15)).await;
    assert_eq!(j["error"], "counter_regression");
    let j = fail(c, Some("hank"), &|o| k.assert_with(&ch(o), ORIGIN, RP_ID, 20)).await;
    assert_eq!(j["error"], "counter_regression");
    let regress = events(&e.store, AuditKind::CounterRegression).await;
    assert_eq!(regress.len(), 2);
    assert!(regress[0].detail.contains("stored 20"), "{}", regress[0].detail);
    // User verification required.
    let mut no_uv = key.clone();
    no_uv.uv = false;
    let o = c.post("/api/login/options", &json!({"username": "hank", "userVerification": "required"})).await.json;
    assert_eq!(o["userVerification"], "required");
    let r = c.post("/api/login/verify", &no_uv.assert_with(&ch(&o), ORIGIN, RP_ID, 30)).await;
    r.assert_error(400, "user_verification_required");
    // Every failure is in the audit log with its code.
    let failed = events(&e.store, AuditKind::SignInFailed).await;
    let mut codes: Vec<&str> = failed.iter().filter_map(|f| f.code.as_deref()).collect();
    codes.sort();
    codes.dedup();
    for code in [
        "bad_signature",
        "challenge_mismatch",
        "counter_regression",
        "origin_mismatch",
        "rp_id_mismatch",
        "unknown_credential",
        "user_verification_required",
    ] {
        assert!(codes.contains(&code), "{code} not in {codes:?}");
    }
}

#[tokio::test]
async fn registration_conflicts() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("ivy", &mut key, json!({})).await.ok();

    // The same authenticator again, signed in: excluded (the core's excludeCredentials check).
    let o = e.client.post("/api/register/options", &json!({"username": "ivy"})).await.json;
    assert_eq!(o["excludeCredentials"][0]["id"], key.id_b64());
    let r = e.client.post("/api/register/verify", &key.register(&o, ORIGIN)).await;
    r.assert_error(409, "credential_excluded");
    // ... and without a session.
    let mut anon = e.fresh_client();
    let r = anon.register("ivy", &mut key.clone(), json!({})).await;
    r.assert_error(409, "credential_excluded");
    // The same credential ID under another user: the storage check catches it.
    let r = anon.register("jack", &mut key.clone(), json!({})).await;
    r.assert_error(409, "credential_excluded");
    // Someone else's new key under ivy's name, without ivy's session.
    let r = anon.register("ivy", &mut SoftKey::new(), json!({})).await;
    r.assert_error(409, "username_taken");
    // Registration checks: origin, UV, challenge.
    let o = anon.post("/api/register/options", &json!({"username": "kim", "userVerification": "required"})).await.json;
    let mut k = SoftKey::new();
    k.uv = false;
    anon.post("/api/register/verify", &k.register(&o, ORIGIN)).await.assert_error(400, "user_verification_required");
    let o = anon.post("/api/register/options", &json!({"username": "kim"})).await.json;
    let ch = o["challenge"].as_str().unwrap().to_owned();
    anon.post("/api/register/verify", &SoftKey::new().register_with(&ch, "http://localhost:9999", RP_ID, &o))
        .await
        .assert_error(400, "origin_mismatch");
    let o = anon.post("/api/register/options", &json!({"username": "kim"})).await.json;
    let ch = o["challenge"].as_str().unwrap().to_owned();
    anon.post("/api/register/verify", &SoftKey::new().register_with(&ch, ORIGIN, "example.org", &o))
        .await
        .assert_error(400, "rp_id_mismatch");
    let failed = events(&e.store, AuditKind::RegistrationFailed).await;
    assert!(failed.len() >= 6);
    // Ivy still has exactly one key and kim does not exist.
    assert_eq!(e.client.get("/api/me").await.json["credentials"].as_array().unwrap().len(), 1);
    anon.post("/api/login/options", &json!({"username": "kim"})).await.assert_error(404, "unknown_user");
}

#[tokio::test]
async fn cross_site_requests_are_refused() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("lena", &mut key, json!({})).await.ok();
    let mut c = e.client.clone();
    c.origin_header = Some("https://evil.example".into());
    c.post("/api/login/options", &json!({})).await.assert_error(403, "cross_site_request");
    let path = format!("/api/credentials/{}", key.id_b64());
    c.send(Method::DELETE, &path, Body::empty()).await.assert_error(403, "cross_site_request");
    c.origin_header = Some(ORIGIN.into());
    c.post("/api/login/options", &json!({})).await.ok();
}

#[tokio::test]
async fn https_origins_get_secure_cookies() {
    let store = DbStore::connect("sqlite::memory:").await.unwrap();
    let rp = RelyingParty::new(RpConfig::new("example.com", "x", "https://example.com")).unwrap();
    let mut c = Client::new(router_with(rp, store, HttpOptions::default()));
    let r = c.post("/api/register/options", &json!({"username": "x"})).await;
    r.ok();
    assert!(r.set_cookies.iter().all(|s| s.contains("; Secure")), "{:?}", r.set_cookies);
}

#[tokio::test]
async fn data_survives_a_restart_with_a_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("hwkey-http-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("restart.sqlite3");
    let _ = std::fs::remove_file(&file);
    let url = format!("sqlite://{}", file.display());
    let mut key = SoftKey::new();
    let mut passkey = SoftKey::new();
    {
        let mut e = env_with(&url).await;
        e.client.register("mona", &mut key, json!({})).await.ok();
        e.client.register("mona", &mut passkey, json!({"residentKey": "required"})).await.ok();
        e.client.login(Some("mona"), &mut key).await.ok();
        e.store.close().await;
    }
    {
        let e = env_with(&url).await;
        let mut c = e.fresh_client();
        let v = c.login(Some("mona"), &mut key).await;
        assert_eq!(v.ok()["signCount"], 2);
        let mut c = e.fresh_client();
        assert_eq!(c.login(None, &mut passkey).await.ok()["username"], "mona");
        // The counter persisted: an old counter value is refused.
        let o = c.post("/api/login/options", &json!({"username": "mona"})).await.json;
        let r = c.post("/api/login/verify", &key.assert_with(o["challenge"].as_str().unwrap(), ORIGIN, RP_ID, 1)).await;
        r.assert_error(400, "counter_regression");
        assert_eq!(c.get("/api/me").await.ok()["credentials"].as_array().unwrap().len(), 2);
        e.store.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ins_keep_the_highest_counter() {
    let dir = std::env::temp_dir().join(format!("hwkey-http-cas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cas.sqlite3");
    let _ = std::fs::remove_file(&file);
    let mut e = env_with(&format!("sqlite://{}", file.display())).await;
    let mut key = SoftKey::new();
    e.client.register("nina", &mut key, json!({})).await.ok();
    // The authenticator signs 60 challenges in order; the verifications race.
    let mut prepared = Vec::new();
    for _ in 0..60 {
        let mut c = e.fresh_client();
        let o = c.post("/api/login/options", &json!({"username": "nina"})).await.json;
        let resp = key.assert(&o, ORIGIN);
        prepared.push((c, resp));
    }
    prepared.reverse();
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|(mut c, resp)| tokio::spawn(async move { c.post("/api/login/verify", &resp).await }))
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.json);
    }
    let (stored, _) = e.store.credential(&key.credential_id).await.unwrap().unwrap();
    assert_eq!(stored.record.sign_count, 60);
    assert!(events(&e.store, AuditKind::CounterRegression).await.is_empty());
    assert_eq!(events(&e.store, AuditKind::SignIn).await.len(), 60);
    e.store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sessions_are_signed_revocable_and_expire() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("sam", &mut key, json!({})).await.ok();
    let token = e.client.jar.get("hwkey_session").cloned().expect("session cookie");

    // Another browser holding a copy of the cookie is signed in too ...
    let mut copy = e.fresh_client();
    copy.jar.insert("hwkey_session".into(), token.clone());
    assert_eq!(copy.get("/api/me").await.ok()["username"], "sam");
    // ... but not with any other value: one changed character, a cut, an extension.
    let mut forged = e.fresh_client();
    for bad in [
        {
            let mut t = token.clone().into_bytes();
            t[12] = if t[12] == b'A' { b'B' } else { b'A' };
            String::from_utf8(t).unwrap()
        },
        token[..token.len() - 2].to_owned(),
        format!("{token}AA"),
        "A".repeat(4000),
    ] {
        forged.jar.insert("hwkey_session".into(), bad);
        forged.get("/api/me").await.assert_error(401, "not_signed_in");
    }

    // Signing out revokes the token itself, not only the cookie in this browser.
    e.client.post("/api/logout", &json!({})).await.ok();
    copy.get("/api/me").await.assert_error(401, "not_signed_in");

    // A new sign-in gets a new token, which expires after the session lifetime.
    let lo = e.client.post("/api/login/options", &json!({"username": "sam"})).await.ok().clone();
    e.client.post("/api/login/verify", &key.assert(&lo, ORIGIN)).await.ok();
    let second = e.client.jar.get("hwkey_session").cloned().expect("new session cookie");
    assert_ne!(second, token);
    assert_eq!(e.client.get("/api/me").await.ok()["username"], "sam");
    e.advance(12 * 3600 + 1);
    e.client.get("/api/me").await.assert_error(401, "not_signed_in");
}

/// Adding a key to an account and removing one need a sign-in within the
/// last 10 minutes: an older (possibly stolen) session can still read and
/// rename, but cannot plant its own key or take the owner's away.
#[tokio::test]
async fn adding_or_removing_a_key_needs_a_recent_sign_in() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    let mut spare = SoftKey::new();
    e.client.register("quinn", &mut key, json!({})).await.ok();
    e.client.register("quinn", &mut spare, json!({})).await.ok();
    e.advance(10 * 60 + 30);
    e.client.get("/api/me").await.ok();
    let path = format!("/api/credentials/{}", spare.id_b64());
    e.client.send(Method::PATCH, &path, json!({"nickname": "Spare"}).to_string()).await.ok();
    e.client.send(Method::DELETE, &path, "").await.assert_error(403, "reauthentication_required");
    let r = e.client.post("/api/register/options", &json!({"username": "quinn"})).await;
    r.assert_error(403, "reauthentication_required");
    assert_eq!(e.client.get("/api/me").await.ok()["credentials"].as_array().unwrap().len(), 2);
    // After signing in again, both work.
    e.client.login(Some("quinn"), &mut key).await.ok();
    e.client.register("quinn", &mut SoftKey::new(), json!({})).await.ok();
    e.client.send(Method::DELETE, &path, "").await.ok();
    assert_eq!(e.client.get("/api/me").await.ok()["credentials"].as_array().unwrap().len(), 2);
    let failed = events(&e.store, AuditKind::RegistrationFailed).await;
    assert!(failed.is_empty(), "refusing at the options step starts no ceremony: {failed:?}");
}
