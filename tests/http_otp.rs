//! The fallback factors over HTTP, in process: TOTP enrollment with a QR
//! code, recovery codes, and sign-in with either when the key is not at hand.
//! SQLite always; PostgreSQL (two instances on one database) when
//! `HWKEY_TEST_POSTGRES_URL` is set.
#![cfg(all(feature = "http", feature = "sqlite"))]

mod common;
#[cfg(feature = "postgres")]
mod pgdb;

use axum::http::Method;
use common::{Client, ORIGIN, RP_ID, SoftKey};
use hwkey::http::{HttpOptions, router_with};
use hwkey::otp::{Algorithm, Digits, OtpSecret, Totp};
use hwkey::server::{RelyingParty, RpConfig};
use hwkey::store::{AuditKind, AuditQuery, DbStore, Store};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A router over a store with a clock the test moves: it starts one second
/// into a 30-second TOTP step and only moves when told.
struct Env {
    client: Client,
    store: DbStore,
    base: SystemTime,
    offset: Arc<AtomicU64>,
}

fn rp() -> RelyingParty {
    RelyingParty::new(RpConfig::new(RP_ID, "hwkey test", ORIGIN)).expect("rp")
}

fn base_time() -> SystemTime {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    UNIX_EPOCH + Duration::from_secs(now - now % 30 + 1)
}

fn env_on(store: DbStore, base: SystemTime, offset: Arc<AtomicU64>) -> Env {
    let o = offset.clone();
    let opts = HttpOptions {
        clock: Arc::new(move || base + Duration::from_secs(o.load(Ordering::SeqCst))),
        ..Default::default()
    };
    let app = router_with(rp(), store.clone(), opts);
    Env { client: Client::new(app), store, base, offset }
}

async fn env() -> Env {
    let store = DbStore::connect("sqlite::memory:").await.expect("store");
    env_on(store, base_time(), Arc::new(AtomicU64::new(0)))
}

impl Env {
    fn now(&self) -> SystemTime {
        self.base + Duration::from_secs(self.offset.load(Ordering::SeqCst))
    }
    fn advance(&self, secs: u64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }
    fn fresh_client(&self) -> Client {
        Client::new(self.client.app.clone())
    }
    /// The code an authenticator app with `secret` shows now.
    fn code(&self, secret: &str) -> String {
        code_at(secret, self.now())
    }
}

fn code_at(secret: &str, t: SystemTime) -> String {
    let secret = OtpSecret::from_base32(secret).expect("base32 secret");
    let totp = Totp::new(secret, Algorithm::Sha1, Digits::SIX, 30).expect("totp");
    totp.code_at(t.duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64).expect("code")
}

/// A code that is none of the window's codes.
fn wrong_code(secret: &str, t: SystemTime) -> String {
    let near: Vec<String> =
        (0..3).map(|i| code_at(secret, t + Duration::from_secs(i * 30) - Duration::from_secs(30))).collect();
    (0..1_000_000u32).map(|n| format!("{n:06}")).find(|c| !near.contains(c)).expect("some other code")
}

async fn events(store: &DbStore, kind: AuditKind) -> Vec<hwkey::store::AuditEvent> {
    store.audit_events(&AuditQuery { kind: Some(kind), limit: 1000, ..Default::default() }).await.expect("audit")
}

/// Register `username` with a software key (signed in afterwards), enroll
/// and confirm TOTP. Returns the base32 secret and the recovery codes.
async fn enrolled(e: &mut Env, username: &str) -> (String, Vec<String>) {
    let mut key = SoftKey::new();
    e.client.register(username, &mut key, json!({})).await.ok();
    let en = e.client.post("/api/otp/totp/enroll", &json!({})).await;
    let secret = en.ok()["secret"].as_str().expect("secret").to_owned();
    let code = e.code(&secret);
    let conf = e.client.post("/api/otp/totp/confirm", &json!({ "code": code })).await;
    let codes: Vec<String> = conf.ok()["recoveryCodes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    (secret, codes)
}

#[tokio::test]
async fn enroll_confirm_and_sign_in_with_totp_each_code_once() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("alice", &mut key, json!({})).await.ok();

    let st = e.client.get("/api/otp").await;
    assert_eq!(st.ok()["totp"]["enabled"], false);
    assert_eq!(st.json["totp"]["pending"], false);
    assert_eq!(st.json["recoveryCodesRemaining"], 0);

    // Enrollment: secret, otpauth URI, QR code as SVG; pending until confirmed.
    let en = e.client.post("/api/otp/totp/enroll", &json!({})).await;
    let en = en.ok().clone();
    let secret = en["secret"].as_str().unwrap().to_owned();
    assert!(OtpSecret::from_base32(&secret).unwrap().bits() >= 160);
    let uri = en["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/hwkey%20test:alice?secret="), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")) && uri.contains("issuer=hwkey%20test"), "{uri}");
    let parsed = hwkey::otp::KeyUri::parse(uri).unwrap();
    assert_eq!(parsed.secret, OtpSecret::from_base32(&secret).unwrap());
    assert!(en["qrSvg"].as_str().unwrap().contains("<svg"));
    assert_eq!(
        (en["algorithm"].as_str(), en["digits"].as_u64(), en["period"].as_u64()),
        (Some("SHA1"), Some(6), Some(30))
    );
    let st = e.client.get("/api/otp").await;
    assert_eq!((st.ok()["totp"]["enabled"].as_bool(), st.json["totp"]["pending"].as_bool()), (Some(false), Some(true)));
    // Not enabled yet: sign-in with a code does not work.
    let mut other = e.fresh_client();
    other
        .post("/api/login/totp", &json!({"username": "alice", "code": e.code(&secret)}))
        .await
        .assert_error(400, "invalid_code");

    // A wrong code does not confirm; the right one does and returns 10 recovery codes.
    let bad = wrong_code(&secret, e.now());
    e.client.post("/api/otp/totp/confirm", &json!({ "code": bad })).await.assert_error(400, "invalid_code");
    let confirm_code = e.code(&secret);
    let conf = e.client.post("/api/otp/totp/confirm", &json!({ "code": confirm_code })).await;
    let codes = conf.ok()["recoveryCodes"].as_array().unwrap().clone();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.as_str().unwrap().len() == 19), "{codes:?}");
    let st = e.client.get("/api/otp").await;
    assert_eq!(st.ok()["totp"]["enabled"], true);
    assert_eq!(st.json["totp"]["pending"], false);
    assert_eq!(st.json["recoveryCodesRemaining"], 10);
    // Confirming again: nothing pending.
    e.client
        .post("/api/otp/totp/confirm", &json!({ "code": confirm_code }))
        .await
        .assert_error(400, "no_pending_enrollment");
    // Enrolling again while enabled is refused.
    e.client.post("/api/otp/totp/enroll", &json!({})).await.assert_error(409, "totp_already_enabled");

    // Sign out; the confirmation code's step is used up already.
    e.client.post("/api/logout", &json!({})).await.ok();
    e.client.get("/api/me").await.assert_error(401, "not_signed_in");
    e.client
        .post("/api/login/totp", &json!({"username": "alice", "code": confirm_code}))
        .await
        .assert_error(400, "invalid_code");

    // The next step's code signs in, with the same session cookie as a key.
    e.advance(30);
    let code = e.code(&secret);
    let r = e.client.post("/api/login/totp", &json!({"username": "alice", "code": code})).await;
    assert_eq!(r.ok()["verified"], true);
    assert_eq!(r.json["username"], "alice");
    assert_eq!(r.json["method"], "totp");
    assert!(r.set_cookies.iter().any(|c| c.starts_with("hwkey_session=") && c.contains("HttpOnly")));
    assert_eq!(e.client.get("/api/me").await.ok()["username"], "alice");

    // The same code a second time is refused, from any browser.
    e.client.post("/api/logout", &json!({})).await.ok();
    let again = e.client.post("/api/login/totp", &json!({"username": "alice", "code": code})).await;
    again.assert_error(400, "invalid_code");
    assert!(!e.client.jar.contains_key("hwkey_session"));
    let mut other = e.fresh_client();
    other.post("/api/login/totp", &json!({"username": "alice", "code": code})).await.assert_error(400, "invalid_code");
    // ... and spaces in the code do not matter, the refusal stays.
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    other
        .post("/api/login/totp", &json!({"username": "alice", "code": spaced}))
        .await
        .assert_error(400, "invalid_code");
    let failed = events(&e.store, AuditKind::SignInFailed).await;
    assert!(failed.iter().any(|ev| ev.code.as_deref() == Some("code_replayed")), "{failed:?}");

    // Still within the window 30 s later, but an earlier step than the last
    // one used: refused. The new step's code works (spaces allowed).
    e.advance(30);
    other.post("/api/login/totp", &json!({"username": "alice", "code": code})).await.assert_error(400, "invalid_code");
    let next = e.code(&secret);
    let spaced = format!("{} {}", &next[..3], &next[3..]);
    other.post("/api/login/totp", &json!({"username": "alice", "code": spaced})).await.ok();

    let kinds: Vec<String> = e
        .store
        .audit_events(&AuditQuery { username: Some("alice".into()), limit: 1000, ..Default::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|ev| ev.kind)
        .collect();
    for k in ["totp_enrollment_started", "totp_enabled", "recovery_codes_generated", "sign_in", "sign_in_failed"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let mut e = env().await;
    let (_, codes) = enrolled(&mut e, "bob").await;
    e.client.post("/api/logout", &json!({})).await.ok();

    let r = e.client.post("/api/login/recovery", &json!({"username": "bob", "code": codes[0]})).await;
    assert_eq!(r.ok()["verified"], true);
    assert_eq!(r.json["method"], "recovery_code");
    assert_eq!(r.json["recoveryCodesRemaining"], 9);
    assert_eq!(e.client.get("/api/me").await.ok()["username"], "bob");
    assert_eq!(e.client.get("/api/otp").await.ok()["recoveryCodesRemaining"], 9);
    e.client.post("/api/logout", &json!({})).await.ok();

    // Not twice.
    e.client
        .post("/api/login/recovery", &json!({"username": "bob", "code": codes[0]}))
        .await
        .assert_error(400, "invalid_code");
    e.client.get("/api/me").await.assert_error(401, "not_signed_in");
    // Another one, typed sloppily (lower case, spaces instead of hyphens).
    let sloppy = codes[1].to_lowercase().replace('-', " ");
    e.client.post("/api/login/recovery", &json!({"username": "bob", "code": sloppy})).await.ok();
    assert_eq!(events(&e.store, AuditKind::RecoveryCodeUsed).await.len(), 2);

    // Regenerating replaces the whole set: old codes stop working.
    let re = e.client.send(Method::POST, "/api/otp/recovery/regenerate", "").await.ok().clone();
    let fresh = re["recoveryCodes"].as_array().unwrap().clone();
    assert_eq!(fresh.len(), 10);
    assert_eq!(e.client.get("/api/otp").await.ok()["recoveryCodesRemaining"], 10);
    e.client.post("/api/logout", &json!({})).await.ok();
    e.client
        .post("/api/login/recovery", &json!({"username": "bob", "code": codes[2]}))
        .await
        .assert_error(400, "invalid_code");
    e.client.post("/api/login/recovery", &json!({"username": "bob", "code": fresh[0]})).await.ok();
}

#[tokio::test]
async fn wrong_codes_are_throttled_per_username() {
    let mut e = env().await;
    let (secret, codes) = enrolled(&mut e, "carol").await;
    e.client.post("/api/logout", &json!({})).await.ok();
    e.advance(30);
    let bad = wrong_code(&secret, e.now());
    // Five failures, TOTP and recovery codes together.
    for i in 0..5 {
        let (path, code) = if i % 2 == 0 {
            ("/api/login/totp", bad.clone())
        } else {
            ("/api/login/recovery", "AAAA-BBBB-CCCC-DDDD".to_owned())
        };
        e.client.post(path, &json!({"username": "carol", "code": code})).await.assert_error(400, "invalid_code");
    }
    // Then even the right code is refused, with a Retry-After.
    let r = e.client.post("/api/login/totp", &json!({"username": "carol", "code": e.code(&secret)})).await;
    r.assert_error(429, "too_many_attempts");
    let r = e.client.post("/api/login/recovery", &json!({"username": "carol", "code": codes[0]})).await;
    r.assert_error(429, "too_many_attempts");
    // Another user is not affected.
    let (_, dave_codes) = enrolled(&mut e, "dave").await;
    e.client.post("/api/logout", &json!({})).await.ok();
    e.client.post("/api/login/recovery", &json!({"username": "dave", "code": dave_codes[0]})).await.ok();
    e.client.post("/api/logout", &json!({})).await.ok();
    // After the window the right code works again, and success clears the count.
    e.advance(15 * 60 + 30);
    e.client.post("/api/login/totp", &json!({"username": "carol", "code": e.code(&secret)})).await.ok();
    e.client.post("/api/logout", &json!({})).await.ok();
    for _ in 0..5 {
        e.client
            .post("/api/login/recovery", &json!({"username": "carol", "code": "AAAA-BBBB-CCCC-DDDD"}))
            .await
            .assert_error(400, "invalid_code");
    }
    e.client
        .post("/api/login/recovery", &json!({"username": "carol", "code": codes[0]}))
        .await
        .assert_error(429, "too_many_attempts");
    let throttled = events(&e.store, AuditKind::SignInFailed).await;
    assert!(throttled.iter().any(|ev| ev.code.as_deref() == Some("too_many_attempts")));
}

#[tokio::test]
async fn retry_after_is_sent_with_429() {
    let mut e = env().await;
    let (secret, _) = enrolled(&mut e, "erin").await;
    let bad = wrong_code(&secret, e.now());
    let mut c = e.fresh_client();
    for _ in 0..5 {
        c.post("/api/login/totp", &json!({"username": "erin", "code": bad})).await.assert_error(400, "invalid_code");
    }
    // Raw request to see the header.
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/login/totp")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(json!({"username": "erin", "code": bad}).to_string()))
        .unwrap();
    let resp = e.client.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 429);
    let secs: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&secs), "{secs}");
}

#[tokio::test]
async fn unknown_users_look_like_wrong_codes() {
    let mut e = env().await;
    let (secret, _) = enrolled(&mut e, "frank").await;
    // A user with a key but no authenticator app and no recovery codes.
    let mut key = SoftKey::new();
    e.fresh_client().register("grace", &mut key, json!({})).await.ok();
    let bad = wrong_code(&secret, e.now());
    let mut c = e.fresh_client();
    for path in ["/api/login/totp", "/api/login/recovery"] {
        let code = if path.ends_with("totp") { bad.clone() } else { "AAAA-BBBB-CCCC-DDDD".into() };
        let wrong = c.post(path, &json!({"username": "frank", "code": code})).await;
        let unknown = c.post(path, &json!({"username": "nobody", "code": code})).await;
        let no_factor = c.post(path, &json!({"username": "grace", "code": code})).await;
        wrong.assert_error(400, "invalid_code");
        assert_eq!((unknown.status, &unknown.json), (wrong.status, &wrong.json), "{path}");
        assert_eq!((no_factor.status, &no_factor.json), (wrong.status, &wrong.json), "{path}");
        // A malformed code is the same answer too.
        let junk = c.post(path, &json!({"username": "frank", "code": "12"})).await;
        assert_eq!((junk.status, &junk.json), (wrong.status, &wrong.json), "{path}");
    }
    // Unknown usernames are throttled the same way (no oracle there either).
    for _ in 0..3 {
        c.post("/api/login/totp", &json!({"username": "nobody", "code": bad})).await.assert_error(400, "invalid_code");
    }
    c.post("/api/login/totp", &json!({"username": "nobody", "code": bad})).await.assert_error(429, "too_many_attempts");
    // Failures for unknown names are not filed under the name.
    let filed = e
        .store
        .audit_events(&AuditQuery { username: Some("nobody".into()), limit: 100, ..Default::default() })
        .await
        .unwrap();
    assert!(filed.is_empty(), "{filed:?}");
}

#[tokio::test]
async fn malformed_bodies_get_4xx() {
    let mut e = env().await;
    enrolled(&mut e, "heidi").await;
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"{\"username\": 5, \"code\": \"123456\"}".to_vec(),
        b"{\"username\": \"heidi\"}".to_vec(),
        b"{\"username\": \"heidi\", \"code\": 123456}".to_vec(),
        b"{\"username\": \"\", \"code\": \"123456\"}".to_vec(),
        format!("{{\"username\": \"{}\", \"code\": \"123456\"}}", "x".repeat(65)).into_bytes(),
        b"{\"username\": \"a\\u0000b\", \"code\": \"123456\"}".to_vec(),
        b"\xff\xfe".to_vec(),
    ];
    for path in ["/api/login/totp", "/api/login/recovery", "/api/otp/totp/confirm"] {
        for b in &bodies {
            let r = e.client.send(Method::POST, path, b.clone()).await;
            r.assert_client_error();
        }
        // Over the size limit: 413.
        let big = format!("{{\"username\": \"heidi\", \"code\": \"{}\"}}", "1".repeat(70 * 1024));
        e.client.send(Method::POST, path, big).await.assert_error(413, "payload_too_large");
        // A very long code that fits the limit is just a wrong code (or malformed).
        let long = json!({"username": "heidi", "code": "1".repeat(10_000)});
        e.client.post(path, &long).await.assert_client_error();
    }
    for path in ["/api/otp/totp/enroll", "/api/otp/recovery/regenerate"] {
        for b in [&b"not json"[..], b"[1]", b"\"x\""] {
            e.client.send(Method::POST, path, b.to_vec()).await.assert_error(400, "malformed_request");
        }
    }
    // Wrong methods.
    e.client.get("/api/login/totp").await.assert_error(405, "method_not_allowed");
    e.client.send(Method::PUT, "/api/otp/totp", "").await.assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn account_endpoints_need_a_session_and_the_right_origin() {
    let mut e = env().await;
    let mut c = e.fresh_client();
    c.get("/api/otp").await.assert_error(401, "not_signed_in");
    c.post("/api/otp/totp/enroll", &json!({})).await.assert_error(401, "not_signed_in");
    c.post("/api/otp/totp/confirm", &json!({"code": "123456"})).await.assert_error(401, "not_signed_in");
    c.send(Method::DELETE, "/api/otp/totp", "").await.assert_error(401, "not_signed_in");
    c.post("/api/otp/recovery/regenerate", &json!({})).await.assert_error(401, "not_signed_in");

    let (secret, _) = enrolled(&mut e, "ivan").await;
    // From another site: refused, signed in or not.
    e.client.origin_header = Some("https://evil.example".into());
    e.client.post("/api/otp/totp/enroll", &json!({})).await.assert_error(403, "cross_site_request");
    e.client.send(Method::DELETE, "/api/otp/totp", "").await.assert_error(403, "cross_site_request");
    e.client.post("/api/otp/recovery/regenerate", &json!({})).await.assert_error(403, "cross_site_request");
    e.advance(30);
    let mut evil = e.fresh_client();
    evil.origin_header = Some("https://evil.example".into());
    evil.post("/api/login/totp", &json!({"username": "ivan", "code": e.code(&secret)}))
        .await
        .assert_error(403, "cross_site_request");
    // The page's own origin is fine.
    e.client.origin_header = Some(ORIGIN.into());
    assert_eq!(e.client.get("/api/otp").await.ok()["totp"]["enabled"], true);
}

#[tokio::test]
async fn disabling_totp_stops_code_sign_in_but_keeps_recovery_codes() {
    let mut e = env().await;
    let (secret, codes) = enrolled(&mut e, "judy").await;
    e.client.send(Method::DELETE, "/api/otp/totp", "").await.ok();
    assert_eq!(events(&e.store, AuditKind::TotpDisabled).await.len(), 1);
    e.client.send(Method::DELETE, "/api/otp/totp", "").await.assert_error(404, "totp_not_enabled");
    let st = e.client.get("/api/otp").await;
    assert_eq!(st.ok()["totp"]["enabled"], false);
    assert_eq!(st.json["recoveryCodesRemaining"], 10);
    e.client.post("/api/logout", &json!({})).await.ok();
    e.advance(30);
    e.client
        .post("/api/login/totp", &json!({"username": "judy", "code": e.code(&secret)}))
        .await
        .assert_error(400, "invalid_code");
    e.client.post("/api/login/recovery", &json!({"username": "judy", "code": codes[3]})).await.ok();
    // Enroll anew: a different secret; the old one's codes do not work.
    let en = e.client.post("/api/otp/totp/enroll", &json!({})).await;
    let secret2 = en.ok()["secret"].as_str().unwrap().to_owned();
    assert_ne!(secret, secret2);
    e.client.post("/api/otp/totp/confirm", &json!({"code": e.code(&secret2)})).await.ok();
}

#[tokio::test]
async fn an_enrollment_expires_and_a_new_one_replaces_the_old() {
    let mut e = env().await;
    let mut key = SoftKey::new();
    e.client.register("kim", &mut key, json!({})).await.ok();
    let first = e.client.post("/api/otp/totp/enroll", &json!({})).await.ok()["secret"].as_str().unwrap().to_owned();
    let second = e.client.post("/api/otp/totp/enroll", &json!({})).await;
    let second = second.ok()["secret"].as_str().unwrap().to_owned();
    // Only the latest secret confirms.
    if e.code(&first) != e.code(&second) {
        e.client
            .post("/api/otp/totp/confirm", &json!({"code": e.code(&first)}))
            .await
            .assert_error(400, "invalid_code");
    }
    e.advance(11 * 60);
    e.client
        .post("/api/otp/totp/confirm", &json!({"code": e.code(&second)}))
        .await
        .assert_error(400, "no_pending_enrollment");
    assert_eq!(e.client.get("/api/otp").await.ok()["totp"]["pending"], false);
}

/// Concurrent uses of one TOTP code and one recovery code: exactly one wins.
/// Moves the clock past the throttling window first (and between the two),
/// so earlier failures do not turn the race into 429s.
async fn concurrent_uses_win_once(e: &Env, a: Client, b: Client, secret: &str, recovery: &str) {
    e.advance(16 * 60);
    let code = e.code(secret);
    let mut tasks = Vec::new();
    for i in 0..5 {
        let mut c = if i % 2 == 0 { Client::new(a.app.clone()) } else { Client::new(b.app.clone()) };
        let code = code.clone();
        tasks.push(tokio::spawn(
            async move { c.post("/api/login/totp", &json!({"username": "lena", "code": code})).await },
        ));
    }
    let mut wins = 0;
    for t in tasks {
        let r = t.await.expect("task");
        if r.status == 200 {
            wins += 1;
        } else {
            r.assert_error(400, "invalid_code");
        }
    }
    assert_eq!(wins, 1, "one TOTP code, one sign-in");
    e.advance(16 * 60);

    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut c = if i % 2 == 0 { Client::new(a.app.clone()) } else { Client::new(b.app.clone()) };
        let code = recovery.to_owned();
        tasks.push(tokio::spawn(async move {
            c.post("/api/login/recovery", &json!({"username": "lena", "code": code})).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        let r = t.await.expect("task");
        if r.status == 200 {
            wins += 1;
        } else {
            r.assert_error(400, "invalid_code");
        }
    }
    assert_eq!(wins, 1, "one recovery code, one sign-in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replays_are_accepted_once_sqlite() {
    let mut e = env().await;
    let (secret, codes) = enrolled(&mut e, "lena").await;
    concurrent_uses_win_once(&e, e.fresh_client(), e.fresh_client(), &secret, &codes[0]).await;
}

#[cfg(feature = "postgres")]
mod postgres {
    //! The replay and single-use guarantees with two server instances on one
    //! PostgreSQL database (skipped unless `HWKEY_TEST_POSTGRES_URL` is set).

    use super::*;
    use crate::pgdb::{TestDb, admin_url};
    use hwkey::store::postgres::PgStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replays_are_refused_across_two_instances() {
        let Some(admin) = admin_url() else { return };
        let db = TestDb::create(&admin, "otp").await;
        let url = db.url.clone();
        let a = PgStore::connect_with_pool_size(&url, 8).await.expect("instance A");
        let b = PgStore::connect_with_pool_size(&url, 8).await.expect("instance B");
        let base = base_time();
        let offset = Arc::new(AtomicU64::new(0));
        let mut ea = env_on(DbStore::Postgres(a.clone()), base, offset.clone());
        let eb = env_on(DbStore::Postgres(b.clone()), base, offset.clone());

        let (secret, codes) = enrolled(&mut ea, "lena").await;
        ea.client.post("/api/logout", &json!({})).await.ok();
        // Sequential: a code accepted through A is refused through B; a
        // recovery code used through B is refused through A.
        ea.advance(30);
        let code = ea.code(&secret);
        ea.fresh_client().post("/api/login/totp", &json!({"username": "lena", "code": code})).await.ok();
        eb.fresh_client()
            .post("/api/login/totp", &json!({"username": "lena", "code": code}))
            .await
            .assert_error(400, "invalid_code");
        eb.fresh_client().post("/api/login/recovery", &json!({"username": "lena", "code": codes[1]})).await.ok();
        ea.fresh_client()
            .post("/api/login/recovery", &json!({"username": "lena", "code": codes[1]}))
            .await
            .assert_error(400, "invalid_code");
        // Concurrent, alternating instances.
        concurrent_uses_win_once(&ea, ea.fresh_client(), eb.fresh_client(), &secret, &codes[0]).await;

        a.close().await;
        b.close().await;
        db.drop_db().await;
    }
}

/// What would turn a stolen session into a lasting way in (a new
/// authenticator app, new recovery codes), or lock the owner out of a
/// factor, needs a sign-in within the last 10 minutes; reading does not.
#[tokio::test]
async fn sensitive_changes_need_a_recent_sign_in() {
    let mut e = env().await;
    let (secret, _) = enrolled(&mut e, "pat").await;
    e.advance(10 * 60 + 30);
    e.client.get("/api/otp").await.ok();
    let r = e.client.post("/api/otp/recovery/regenerate", &json!({})).await;
    r.assert_error(403, "reauthentication_required");
    assert!(r.json["message"].as_str().unwrap().contains("10 minutes"), "{}", r.json);
    e.client.send(Method::DELETE, "/api/otp/totp", "").await.assert_error(403, "reauthentication_required");
    e.client.post("/api/otp/totp/enroll", &json!({})).await.assert_error(403, "reauthentication_required");
    // Nothing changed.
    let st = e.client.get("/api/otp").await.ok().clone();
    assert_eq!(st["totp"]["enabled"], true);
    assert_eq!(st["recoveryCodesRemaining"], 10);
    // Signing in again (here with the app) makes the session recent.
    e.client.post("/api/login/totp", &json!({"username": "pat", "code": e.code(&secret)})).await.ok();
    e.client.post("/api/otp/recovery/regenerate", &json!({})).await.ok();
    e.client.send(Method::DELETE, "/api/otp/totp", "").await.ok();
    e.client.post("/api/otp/totp/enroll", &json!({})).await.ok();
}
