//! The relying party's HTTP request bodies through the axum router
//! (src/http/), in process: tower `oneshot`, no sockets, SQLite in memory.
//! At start one user registers a key through the API, so the fuzzer has a
//! signed-in session cookie to use. Input: byte 0 picks the endpoint and
//! method, byte 1 its flags (bit 0: send the session cookie, bit 1: JSON
//! content type, bit 2: an Origin header), then a one-byte-length-prefixed
//! path segment (for `/api/credentials/{id}`), then the body.
//! Checked: no panic, no slow request, never a 5xx, and every error answer
//! is the contract's JSON `{"error": code, "message"}`.
#![no_main]
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use hwkey::http::{HttpOptions, router_with};
use hwkey::proto::webauthn::CreationOptionsJson;
use hwkey::server::testing::{ResponseParams, SoftCredential};
use hwkey::server::{RelyingParty, RpConfig};
use hwkey::store::DbStore;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const ORIGIN: &str = "http://localhost:8080";

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/register/options"),
    ("POST", "/api/register/verify"),
    ("POST", "/api/login/options"),
    ("POST", "/api/login/verify"),
    ("GET", "/api/me"),
    ("GET", "/api/me/activity"),
    ("PATCH", "/api/credentials/"),
    ("DELETE", "/api/credentials/"),
    ("POST", "/api/logout"),
    ("GET", "/api/otp"),
    ("POST", "/api/otp/totp/enroll"),
    ("POST", "/api/otp/totp/confirm"),
    ("DELETE", "/api/otp/totp"),
    ("POST", "/api/otp/recovery/regenerate"),
    ("POST", "/api/login/totp"),
    ("POST", "/api/login/recovery"),
    ("GET", "/.well-known/webauthn"),
    ("PUT", "/api/register/options"),
];

struct Env {
    rt: tokio::runtime::Runtime,
    app: Router,
    cookie: String,
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Vec<String>, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.expect("router is infallible");
    let status = resp.status();
    let cookies = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(str::to_owned))
        .collect();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body").to_vec();
    (status, cookies, body)
}

fn json_post(path: &str, cookie: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut b = Request::builder().method(Method::POST).uri(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body)).expect("request")
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (app, cookie) = rt.block_on(async {
            let store = DbStore::connect("sqlite::memory:").await.expect("sqlite in memory");
            let rp = RelyingParty::new(RpConfig::new("localhost", "fuzz", ORIGIN)).expect("rp");
            let opts = HttpOptions { clock: Arc::new(hwkey_fuzz::now), serve_demo: false, ..Default::default() };
            let app = router_with(rp, store, opts);
            // Register one key through the API: its session is the fuzzer's.
            let (st, cookies, body) =
                call(&app, json_post("/api/register/options", None, br#"{"username":"fuzz"}"#.to_vec())).await;
            assert_eq!(st, StatusCode::OK, "register/options: {}", String::from_utf8_lossy(&body));
            let cookie = cookies.join("; ");
            let options: CreationOptionsJson = serde_json::from_slice(&body).expect("options");
            let cred = SoftCredential::new(hwkey::crypto::default_provider(), hwkey::proto::cose::CoseAlgorithm::ES256)
                .expect("key");
            let resp = cred.register(&options.challenge, &ResponseParams::new("localhost", ORIGIN)).expect("register");
            let (st, cookies, body) = call(
                &app,
                json_post("/api/register/verify", Some(&cookie), serde_json::to_vec(&resp).expect("json")),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "register/verify: {}", String::from_utf8_lossy(&body));
            let cookie = if cookies.is_empty() { cookie } else { cookies.join("; ") };
            (app, cookie)
        });
        Env { rt, app, cookie }
    })
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let Some((&route, rest)) = data.split_first() else { return };
    let Some((&flags, mut rest)) = rest.split_first() else { return };
    let segment = hwkey_fuzz::take_u8_chunk(&mut rest).unwrap_or_default();
    let body = rest.to_vec();
    let (method, path) = ROUTES[route as usize % ROUTES.len()];
    let mut uri = path.to_owned();
    if path.ends_with('/') {
        // Percent-encode the segment so every byte string is a valid URI.
        for b in segment {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    hwkey_fuzz::timed(|| {
        let mut b = Request::builder().method(method).uri(uri.as_str());
        // Never sign the fuzzer's own session out: it would be gone for good.
        // Regenerating recovery codes hashes ten codes with Argon2id (OWASP
        // parameters, on the bounded blocking pool, behind a recent sign-in):
        // deliberately slow, over 1 s under ASan, so it is sent signed out
        // (fuzz/STATUS.md, observations).
        if flags & 1 != 0 && path != "/api/logout" && path != "/api/otp/recovery/regenerate" {
            b = b.header(header::COOKIE, env.cookie.as_str());
        }
        if flags & 2 != 0 {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        if flags & 4 != 0 {
            b = b.header(header::ORIGIN, ORIGIN);
        }
        let req = b.body(Body::from(body.clone())).expect("request");
        let (status, _, resp) = env.rt.block_on(call(&env.app, req));
        assert!(!status.is_server_error(), "{method} {uri}: {status}: {}", String::from_utf8_lossy(&resp));
        if status.is_client_error() {
            let v: serde_json::Value = serde_json::from_slice(&resp)
                .unwrap_or_else(|_| panic!("{method} {uri}: {status} without a JSON body: {resp:?}"));
            assert!(v["error"].is_string(), "{method} {uri}: {status} without an error code: {v}");
        }
    });
});
