//! Accounts over HTTP (CONTRACTS §2.1, issue #10): one test per review
//! finding, then the password and session endpoints. In process, SQLite.
#![cfg(all(feature = "http", feature = "sqlite"))]

mod common;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Method, Request, header};
use common::{Client, ORIGIN, RP_ID, Reply, SoftKey};
use hwkey::http::{HttpOptions, router_with};
use hwkey::otp::{Algorithm, Digits, OtpSecret, Totp};
use hwkey::proto::webauthn::b64url_decode;
use hwkey::server::{RelyingParty, RpConfig, UserVerification};
use hwkey::store::DbStore;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";

struct Env {
    client: Client,
    store: DbStore,
    base: SystemTime,
    offset: Arc<AtomicU64>,
}

fn base_time() -> SystemTime {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    UNIX_EPOCH + Duration::from_secs(now - now % 30 + 1)
}

async fn env_with(config: RpConfig, url: &str, tweak: impl FnOnce(&mut HttpOptions)) -> Env {
    let store = DbStore::connect(url).await.expect("store");
    let base = base_time();
    let offset = Arc::new(AtomicU64::new(0));
    let o = offset.clone();
    let mut opts = HttpOptions {
        clock: Arc::new(move || base + Duration::from_secs(o.load(Ordering::SeqCst))),
        ..Default::default()
    };
    tweak(&mut opts);
    let app = router_with(RelyingParty::new(config).expect("rp"), store.clone(), opts);
    Env { client: Client::new(app), store, base, offset }
}

async fn env() -> Env {
    env_with(RpConfig::new(RP_ID, "hwkey test", ORIGIN), "sqlite::memory:", |_| {}).await
}

impl Env {
    fn now(&self) -> SystemTime {
        self.base + Duration::from_secs(self.offset.load(Ordering::SeqCst))
    }
    fn advance(&self, secs: u64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }
    fn fresh(&self) -> Client {
        Client::new(self.client.app.clone())
    }
    fn code(&self, secret: &str) -> String {
        let totp =
            Totp::new(OtpSecret::from_base32(secret).expect("b32"), Algorithm::Sha1, Digits::SIX, 30).expect("t");
        totp.code_at(self.now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64).expect("code")
    }
    fn wrong_code(&self, secret: &str) -> String {
        let near: Vec<String> = (0..3)
            .map(|i| {
                let t = self.now() + Duration::from_secs(i * 30) - Duration::from_secs(30);
                let totp = Totp::new(OtpSecret::from_base32(secret).expect("b32"), Algorithm::Sha1, Digits::SIX, 30)
                    .expect("t");
                totp.code_at(t.duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64).expect("code")
            })
            .collect();
        (0..1_000_000).map(|n| format!("{n:06}")).find(|c| !near.contains(c)).expect("a wrong code")
    }
}

/// Register `username` with a fresh key on `c` (signed in afterwards).
async fn register(c: &mut Client, username: &str) -> SoftKey {
    let mut key = SoftKey::new();
    c.register(username, &mut key, json!({})).await.ok();
    key
}

/// Set up TOTP on the signed-in client: the base32 secret and the recovery codes.
async fn enroll_totp(e: &Env, c: &mut Client) -> (String, Vec<String>) {
    let en = c.post("/api/otp/totp/enroll", &json!({})).await;
    let secret = en.ok()["secret"].as_str().expect("secret").to_owned();
    let conf = c.post("/api/otp/totp/confirm", &json!({ "code": e.code(&secret) })).await;
    let codes = conf.ok()["recoveryCodes"].as_array().expect("codes").iter().map(|c| c.as_str().expect("c").to_owned());
    (secret, codes.collect())
}

async fn delete(c: &mut Client, path: &str) -> Reply {
    c.send(Method::DELETE, path, Body::empty()).await
}

/// One request with a client address (as a server with connection info gives it).
async fn post_from(e: &Env, addr: &str, path: &str, body: &Value) -> (u16, Value, Option<String>) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("request");
    let peer: SocketAddr = addr.parse().expect("addr");
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = e.client.app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status().as_u16();
    let retry = resp.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), retry)
}

// ------------------------------------------------------------ findings

/// Finding 1: a 6-digit TOTP code alone signed in to an account with a
/// security key, and the session it gave could remove the owner's keys,
/// turn TOTP off and mint new recovery codes.
#[tokio::test]
async fn a_totp_code_alone_gives_a_session_that_can_only_add_a_key() {
    let mut e = env().await;
    let mut owner = e.client.clone();
    let mut key = register(&mut owner, "olga").await;
    let second = {
        let mut k = SoftKey::new();
        let opts = owner.post("/api/register/options", &json!({"username": "olga"})).await.ok().clone();
        owner.post("/api/register/verify", &k.register(&opts, ORIGIN)).await.ok();
        k
    };
    let (secret, _) = enroll_totp(&e, &mut owner).await;
    e.client = owner.clone();

    e.advance(31);
    let mut thief = e.fresh();
    let r = thief.post("/api/login/totp", &json!({"username": "olga", "code": e.code(&secret)})).await;
    assert_eq!(r.ok()["method"], "totp");
    assert_eq!(thief.get("/api/me").await.ok()["sessionStrength"], "fallback_only");
    let path = format!("/api/credentials/{}", second.id_b64());
    delete(&mut thief, &path).await.assert_error(403, "reauthentication_required");
    delete(&mut thief, "/api/otp/totp").await.assert_error(403, "reauthentication_required");
    thief.post("/api/otp/recovery/regenerate", &json!({})).await.assert_error(403, "reauthentication_required");
    thief.post("/api/otp/totp/enroll", &json!({})).await.assert_error(403, "reauthentication_required");
    thief
        .post("/api/account/password", &json!({"password": PASSWORD}))
        .await
        .assert_error(403, "reauthentication_required");
    // It may add a key (someone who lost theirs must be able to).
    let opts = thief.post("/api/register/options", &json!({"username": "olga"})).await;
    opts.ok();
    // Nothing of the owner's changed.
    let me = owner.get("/api/me").await.ok().clone();
    assert_eq!(me["credentials"].as_array().map(Vec::len), Some(2));
    assert_eq!(owner.get("/api/otp").await.ok()["totp"]["enabled"], true);
    // The owner's key session may do all of it.
    owner.login(Some("olga"), &mut key).await.ok();
    delete(&mut owner, &path).await.ok();
}

/// Finding 1, continued: no cumulative lockout let an attacker guess
/// forever; after 100 failures in a row the fallback factors lock until a
/// key sign-in.
#[tokio::test]
async fn a_hundred_failures_in_a_row_lock_the_codes_until_a_key_sign_in() {
    let e = env().await;
    let mut owner = e.client.clone();
    let mut key = register(&mut owner, "lena").await;
    let (secret, codes) = enroll_totp(&e, &mut owner).await;
    let mut thief = e.fresh();
    for i in 0..100 {
        if i > 0 && i % 5 == 0 {
            e.advance(15 * 60 + 1);
        }
        let r = thief.post("/api/login/totp", &json!({"username": "lena", "code": e.wrong_code(&secret)})).await;
        r.assert_error(400, "invalid_code");
    }
    e.advance(15 * 60 + 1);
    // Locked: even the right code and a right recovery code are refused.
    let r = thief.post("/api/login/totp", &json!({"username": "lena", "code": e.code(&secret)})).await;
    r.assert_error(429, "too_many_attempts");
    let r = thief.post("/api/login/recovery", &json!({"username": "lena", "code": codes[0]})).await;
    r.assert_error(429, "too_many_attempts");
    // A key sign-in lifts it.
    e.advance(31);
    owner.login(Some("lena"), &mut key).await.ok();
    let r = thief.post("/api/login/totp", &json!({"username": "lena", "code": e.code(&secret)})).await;
    r.ok();
}

/// Finding 2: `/api/otp/totp/confirm` was not throttled (and returns
/// recovery codes), and did not need a recent sign-in.
#[tokio::test]
async fn totp_confirm_is_throttled_and_needs_a_recent_sign_in() {
    let e = env().await;
    let mut c = e.client.clone();
    register(&mut c, "cora").await;
    let en = c.post("/api/otp/totp/enroll", &json!({})).await;
    let secret = en.ok()["secret"].as_str().expect("secret").to_owned();
    for _ in 0..5 {
        c.post("/api/otp/totp/confirm", &json!({"code": e.wrong_code(&secret)}))
            .await
            .assert_error(400, "invalid_code");
    }
    let r = c.post("/api/otp/totp/confirm", &json!({"code": e.code(&secret)})).await;
    r.assert_error(429, "too_many_attempts");
    // An old session may not confirm at all.
    e.advance(9 * 60);
    let mut d = e.fresh();
    let mut key = register(&mut d, "dora").await;
    let en = d.post("/api/otp/totp/enroll", &json!({})).await;
    let secret = en.ok()["secret"].as_str().expect("secret").to_owned();
    e.advance(11 * 60);
    d.post("/api/otp/totp/confirm", &json!({"code": e.code(&secret)}))
        .await
        .assert_error(403, "reauthentication_required");
    d.login(Some("dora"), &mut key).await.ok();
    d.post("/api/otp/totp/enroll", &json!({})).await.ok();
}

/// Finding 3: TOTP secrets and the session-signing key were stored in the
/// clear. The SQLite file (and its WAL) are searched byte for byte.
#[tokio::test]
async fn the_database_file_holds_no_totp_secret_nor_session_key() {
    let dir = std::env::temp_dir().join(format!("hwkey-acct-{}-{}", std::process::id(), line!()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("db.sqlite3");
    let url = format!("sqlite://{}", file.display());
    let mut e = env_with(RpConfig::new(RP_ID, "hwkey test", ORIGIN), &url, |_| {}).await;
    let mut c = e.client.clone();
    register(&mut c, "sam").await;
    let (secret, _) = enroll_totp(&e, &mut c).await;
    let token = b64url_decode(c.jar.get("hwkey_session").expect("session cookie")).expect("token");
    e.client = c;
    e.store.close().await;
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("dir") {
        bytes.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    assert!(bytes.len() > 4096);
    let raw = OtpSecret::from_base32(&secret).expect("b32").as_bytes().to_vec();
    let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(find(b"hwkS"), "the sealed values were read (the search sees stored bytes)");
    assert!(!find(secret.as_bytes()), "the base32 secret is in the database file");
    assert!(!find(secret.to_lowercase().as_bytes()), "the base32 secret is in the database file");
    assert!(!find(&raw), "the raw TOTP secret is in the database file");
    // The session key: no 32 bytes of the file sign the session token.
    let (body, mac) = token.split_at(token.len() - 32);
    let p = hwkey::crypto::default_provider();
    let signs = |k: &[u8]| p.hmac(hwkey::crypto::HashAlg::Sha256, k, &[b"hwkey-session-v2", body]) == mac;
    assert!(!bytes.windows(32).any(signs), "the session key is in the database file");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding 4: removing a key or changing a factor did not end the other sessions.
#[tokio::test]
async fn factor_changes_end_every_other_session() {
    let mut e = env().await;
    let mut a = e.client.clone();
    let mut key = register(&mut a, "fred").await;
    let mut k2 = SoftKey::new();
    let opts = a.post("/api/register/options", &json!({"username": "fred"})).await.ok().clone();
    a.post("/api/register/verify", &k2.register(&opts, ORIGIN)).await.ok();
    e.client = a.clone();
    let sign_in_b = async |e: &Env, key: &mut SoftKey| {
        let mut b = e.fresh();
        b.login(Some("fred"), key).await.ok();
        b.get("/api/me").await.ok();
        b
    };
    // Removing a key.
    let mut b = sign_in_b(&e, &mut key).await;
    delete(&mut a, &format!("/api/credentials/{}", k2.id_b64())).await.ok();
    b.get("/api/me").await.assert_error(401, "not_signed_in");
    a.get("/api/me").await.ok();
    // Setting the password.
    let mut b = sign_in_b(&e, &mut key).await;
    a.post("/api/account/password", &json!({"password": PASSWORD})).await.ok();
    b.get("/api/me").await.assert_error(401, "not_signed_in");
    // TOTP on, and off.
    let mut b = sign_in_b(&e, &mut key).await;
    let (_, _) = enroll_totp(&e, &mut a).await;
    b.get("/api/me").await.assert_error(401, "not_signed_in");
    let mut b = sign_in_b(&e, &mut key).await;
    delete(&mut a, "/api/otp/totp").await.ok();
    b.get("/api/me").await.assert_error(401, "not_signed_in");
    // Removing the password.
    let mut b = sign_in_b(&e, &mut key).await;
    delete(&mut a, "/api/account/password").await.ok();
    b.get("/api/me").await.assert_error(401, "not_signed_in");
    a.get("/api/me").await.ok();
}

/// Finding 5a: `/api/login/options` answered `unknown_user`.
#[tokio::test]
async fn login_options_for_an_unknown_username_look_like_a_known_one() {
    let mut e = env().await;
    let mut c = e.client.clone();
    register(&mut c, "kim").await;
    let mut x = e.fresh();
    let known = x.post("/api/login/options", &json!({"username": "kim"})).await.ok().clone();
    let unknown = x.post("/api/login/options", &json!({"username": "nobody"})).await.ok().clone();
    let again = x.post("/api/login/options", &json!({"username": "nobody"})).await.ok().clone();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&known), keys(&unknown));
    let ids = |v: &Value| -> Vec<String> {
        v["allowCredentials"].as_array().expect("allow").iter().map(|c| c["id"].as_str().expect("id").into()).collect()
    };
    assert!(!ids(&unknown).is_empty());
    assert_eq!(ids(&unknown), ids(&again), "made-up credentials are stable");
    let other = x.post("/api/login/options", &json!({"username": "somebody else"})).await.ok().clone();
    assert_ne!(ids(&unknown), ids(&other));
    e.client = c;
}

/// Finding 5b: `/api/register/options` for a taken username returned that
/// account's user handle and credential ids.
#[tokio::test]
async fn register_options_for_a_taken_username_hold_nothing_of_the_account() {
    let mut e = env().await;
    let mut c = e.client.clone();
    let key = register(&mut c, "tom").await;
    let handle = c.get("/api/me").await.ok()["userHandle"].as_str().expect("handle").to_owned();
    let mut x = e.fresh();
    let r = x.post("/api/register/options", &json!({"username": "tom"})).await;
    r.assert_error(409, "username_taken");
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(!text.contains(&handle), "{text}");
    assert!(!text.contains(&key.id_b64()), "{text}");
    assert!(!r.json.as_object().expect("obj").contains_key("user"));
    e.client = c;
}

/// Finding 6: `Alice` and `alice`, or a name with a zero-width space, were
/// different accounts.
#[tokio::test]
async fn usernames_are_compared_after_rfc_8265() {
    let mut e = env().await;
    let mut c = e.client.clone();
    let mut key = register(&mut c, "Alice").await;
    assert_eq!(c.get("/api/me").await.ok()["username"], "alice");
    let mut x = e.fresh();
    for name in ["alice", "ALICE", "Ａｌｉｃｅ"] {
        x.post("/api/register/options", &json!({"username": name})).await.assert_error(409, "username_taken");
    }
    for name in ["al\u{200B}ice", "alice\u{0}", "\u{202E}alice"] {
        x.post("/api/register/options", &json!({"username": name})).await.assert_error(400, "malformed_request");
        x.post("/api/login/options", &json!({"username": name})).await.assert_error(400, "malformed_request");
    }
    x.login(Some("ALICE"), &mut key).await.ok();
    e.client = c;
}

/// Finding 7: the request body could lower user verification below the
/// configured minimum.
#[tokio::test]
async fn a_request_cannot_lower_user_verification() {
    let mut config = RpConfig::new(RP_ID, "hwkey test", ORIGIN);
    config.user_verification = UserVerification::Required;
    let mut e = env_with(config, "sqlite::memory:", |_| {}).await;
    let mut c = e.client.clone();
    let mut key = register(&mut c, "uma").await;
    let opts = c.post("/api/register/options", &json!({"username": "new", "userVerification": "discouraged"})).await;
    assert_eq!(opts.ok()["authenticatorSelection"]["userVerification"], "required");
    let mut x = e.fresh();
    let opts = x.post("/api/login/options", &json!({"username": "uma", "userVerification": "discouraged"})).await;
    let opts = opts.ok().clone();
    assert_eq!(opts["userVerification"], "required");
    key.uv = false;
    let resp = key.assert(&opts, ORIGIN);
    x.post("/api/login/verify", &resp).await.assert_error(400, "user_verification_required");
    e.client = c;
}

/// Finding 8: unknown usernames on the recovery endpoint cost Argon2 work
/// each. Now a code alone for an unknown name gets `password_required`, as
/// for an account with a password, before any Argon2 work (see
/// tests/account_service.rs for the count); the per-address throttle bounds
/// what one client can ask for.
#[tokio::test]
async fn unknown_usernames_on_the_recovery_endpoint_are_cheap_and_throttled_per_address() {
    let mut e = env().await;
    let mut c = e.client.clone();
    register(&mut c, "pia").await;
    c.post("/api/account/password", &json!({"password": PASSWORD})).await.ok();
    let mut x = e.fresh();
    let with_password = x.post("/api/login/recovery", &json!({"username": "pia", "code": "AAAA-BBBB-CCCC-DDDD"})).await;
    with_password.assert_error(401, "password_required");
    let unknown = x.post("/api/login/recovery", &json!({"username": "zed", "code": "AAAA-BBBB-CCCC-DDDD"})).await;
    unknown.assert_error(401, "password_required");
    assert_eq!(with_password.json["message"], unknown.json["message"]);
    // One address, many names: the 51st attempt within 15 minutes is refused.
    for i in 0..50 {
        let (s, body, _) =
            post_from(&e, "192.0.2.7:5000", "/api/login/recovery", &json!({"username": format!("u{i}"), "code": "x"}))
                .await;
        assert_eq!(s, 401, "{body}");
    }
    let (s, body, retry) =
        post_from(&e, "192.0.2.7:5001", "/api/login/recovery", &json!({"username": "u99", "code": "x"})).await;
    assert_eq!((s, body["error"].as_str()), (429, Some("too_many_attempts")), "{body}");
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|r| r > 0)));
    // Another address is not affected.
    let (s, _, _) =
        post_from(&e, "198.51.100.1:5000", "/api/login/recovery", &json!({"username": "u1", "code": "x"})).await;
    assert_eq!(s, 401);
    e.client = c;
}

/// Finding 9: there was no knowledge factor. A password alone never signs
/// in; with a password set the codes alone are refused; the password and a
/// second factor sign in fully.
#[tokio::test]
async fn password_then_second_factor() {
    let e = env().await;
    let mut c = e.client.clone();
    let mut key = register(&mut c, "paula").await;
    let (secret, codes) = enroll_totp(&e, &mut c).await;
    c.post("/api/account/password", &json!({"password": "short"})).await.assert_error(400, "password_too_short");
    c.post("/api/account/password", &json!({"password": "password1"})).await.assert_error(400, "password_too_common");
    c.post("/api/account/password", &json!({"password": PASSWORD})).await.ok();
    assert_eq!(c.get("/api/otp").await.ok()["passwordSet"], true);
    c.post("/api/logout", &json!({})).await.ok();
    c.get("/api/me").await.assert_error(401, "not_signed_in");

    // Wrong password and unknown user: the same answer.
    let wrong = c.post("/api/login/password", &json!({"username": "paula", "password": "not the password"})).await;
    wrong.assert_error(401, "invalid_credentials");
    let unknown = c.post("/api/login/password", &json!({"username": "nobody", "password": PASSWORD})).await;
    unknown.assert_error(401, "invalid_credentials");
    assert_eq!(wrong.json["message"], unknown.json["message"]);

    // A code alone: refused for an account with a password.
    e.advance(31);
    c.post("/api/login/totp", &json!({"username": "paula", "code": e.code(&secret)}))
        .await
        .assert_error(401, "password_required");

    // Password: no session yet.
    let r = c.post("/api/login/password", &json!({"username": "PAULA", "password": PASSWORD})).await;
    let body = r.ok().clone();
    assert_eq!(body["secondFactor"], "required");
    assert_eq!(body["methods"], json!(["security_key", "totp", "recovery_code"]));
    c.get("/api/me").await.assert_error(401, "not_signed_in");
    // + TOTP.
    let r = c.post("/api/login/totp", &json!({"code": e.code(&secret)})).await;
    assert_eq!(r.ok()["method"], "password+totp");
    assert_eq!(c.get("/api/me").await.ok()["sessionStrength"], "full");
    c.post("/api/otp/recovery/regenerate", &json!({})).await.ok();
    c.post("/api/logout", &json!({})).await.ok();

    // + key.
    c.post("/api/login/password", &json!({"username": "paula", "password": PASSWORD})).await.ok();
    let r = c.login(Some("paula"), &mut key).await;
    r.ok();
    let sessions = c.get("/api/sessions").await.ok().clone();
    let current: Vec<&Value> =
        sessions["sessions"].as_array().expect("list").iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["method"], "password+security_key");
    c.post("/api/logout", &json!({})).await.ok();

    // + recovery code (the old ones were replaced, so a new password step and an old code fail).
    c.post("/api/login/password", &json!({"username": "paula", "password": PASSWORD})).await.ok();
    c.post("/api/login/recovery", &json!({"code": codes[0]})).await.assert_error(400, "invalid_code");
    // The password step expires after 5 minutes.
    e.advance(5 * 60 + 1);
    c.post("/api/login/totp", &json!({"code": e.code(&secret)})).await.assert_error(401, "password_required");
}

// ------------------------------------------------------------ sessions, limits

#[tokio::test]
async fn sessions_are_listed_and_ended() {
    let mut e = env().await;
    let mut a = e.client.clone();
    let mut key = register(&mut a, "sue").await;
    let mut b = e.fresh();
    b.login(Some("sue"), &mut key).await.ok();
    let list = a.get("/api/sessions").await.ok().clone();
    let list = list["sessions"].as_array().expect("sessions").clone();
    assert_eq!(list.len(), 2);
    for s in &list {
        for field in ["id", "createdAt", "lastSeenAt", "current", "method"] {
            assert!(s.get(field).is_some(), "{field} in {s}");
        }
        assert_eq!(s["method"], "security_key");
    }
    let other = list.iter().find(|s| s["current"] == false).expect("the other session");
    let id = other["id"].as_str().expect("id");
    delete(&mut a, &format!("/api/sessions/{id}")).await.ok();
    b.get("/api/me").await.assert_error(401, "not_signed_in");
    delete(&mut a, &format!("/api/sessions/{id}")).await.assert_error(404, "not_found");
    // Someone else's session id is no session of mine.
    let mut c = e.fresh();
    register(&mut c, "carl").await;
    let mine = a.get("/api/sessions").await.ok()["sessions"][0]["id"].as_str().expect("id").to_owned();
    delete(&mut c, &format!("/api/sessions/{mine}")).await.assert_error(404, "not_found");
    a.get("/api/me").await.ok();
    delete(&mut a, "/api/sessions/not-base64!").await.assert_error(400, "malformed_request");
    e.client = a;
}

#[tokio::test]
async fn argon2_work_over_the_cap_gets_503_with_retry_after() {
    let mut e =
        env_with(RpConfig::new(RP_ID, "hwkey test", ORIGIN), "sqlite::memory:", |o| o.password_concurrency = Some(1))
            .await;
    let mut c = e.client.clone();
    register(&mut c, "vic").await;
    c.post("/api/account/password", &json!({"password": PASSWORD})).await.ok();
    let mut futs = Vec::new();
    for i in 0..24 {
        let addr = format!("10.0.0.{}:1000", i + 1);
        let e = &e;
        // Unknown names cost the Argon2 work of a wrong password.
        let name = if i == 0 { "vic".to_owned() } else { format!("nobody{i}") };
        futs.push(async move {
            post_from(e, &addr, "/api/login/password", &json!({"username": name, "password": "wrong password!"})).await
        });
    }
    let results = futures_util::future::join_all(futs).await;
    let overloaded: Vec<_> = results.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(!overloaded.is_empty(), "{results:?}");
    for (_, body, retry) in overloaded {
        assert_eq!(body["error"], "overloaded");
        assert!(retry.is_some());
    }
    assert!(results.iter().all(|(s, _, _)| [401, 429, 503].contains(s)), "{results:?}");
    e.client = c;
}

#[tokio::test]
async fn password_endpoints_refuse_other_origins_and_anonymous_callers() {
    let mut e = env().await;
    let mut x = e.fresh();
    x.post("/api/account/password", &json!({"password": PASSWORD})).await.assert_error(401, "not_signed_in");
    delete(&mut x, "/api/account/password").await.assert_error(401, "not_signed_in");
    x.get("/api/sessions").await.assert_error(401, "not_signed_in");
    x.origin_header = Some("https://evil.example".into());
    x.post("/api/login/password", &json!({"username": "a", "password": PASSWORD}))
        .await
        .assert_error(403, "cross_site_request");
    x.post("/api/account/password", &json!({"password": PASSWORD})).await.assert_error(403, "cross_site_request");
    let mut c = e.client.clone();
    register(&mut c, "wes").await;
    delete(&mut c, "/api/account/password").await.assert_error(404, "no_password");
    for bad in [json!({}), json!({"password": 5}), json!([1])] {
        c.post("/api/account/password", &bad).await.assert_error(400, "malformed_request");
        c.post("/api/login/password", &bad).await.assert_error(400, "malformed_request");
    }
    e.client = c;
}
