//! Equal timing for unknown users (issue #10, CONTRACTS §2.1): every
//! endpoint that takes a username, timed for a known and an unknown one,
//! in process (the router through `tower::ServiceExt::oneshot`, SQLite).
//!
//! - `/api/login/options`: a known username (one key) and an unknown one
//!   (made-up credentials); both 200.
//! - `/api/register/options`: a free name (200) and a taken one (409
//!   `username_taken`: the answer itself differs, by contract).
//! - `/api/login/password`: the known account with a wrong password and an
//!   unknown name; both 401 `invalid_credentials`.
//! - `/api/login/totp`, `/api/login/recovery` with a username and no
//!   password step: the known account (it has a password, TOTP and
//!   recovery codes) and an unknown name; both 401 `password_required`.
//!
//! Before each endpoint's two benchmarks, a paired run sends the known and
//! the unknown request in turns and prints both medians (fairer on a busy
//! machine than two benchmarks one after the other).
//!
//! Each request is timed on its own (`iter_custom`); between two, untimed,
//! the clock moves past the throttling window and the known account's
//! failures in a row are cleared, so that every timed request takes the
//! same path (never `too_many_attempts` or `locked`).
//!
//! `cargo bench --bench unknown_user -- --measurement-time 3 --warm-up-time 1`

#[path = "../tests/common/mod.rs"]
mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Client, ORIGIN, RP_ID, SoftKey};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use hwkey::account::{AccountConfig, AccountService, SecretKeyring};
use hwkey::http::{HttpOptions, router_with};
use hwkey::otp::{OtpSecret, Totp};
use hwkey::server::{RelyingParty, RpConfig};
use hwkey::store::DbStore;
use hwkey::store::account::AccountStore;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::runtime::Runtime;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";
const KNOWN: &str = "alice";
const UNKNOWN: &str = "nobody";

struct Bench {
    rt: Runtime,
    app: Router,
    /// An account service on the same store and keys as the router's.
    accounts: AccountService<DbStore>,
    store: DbStore,
    offset: Arc<AtomicU64>,
    known_handle: Vec<u8>,
}

impl Bench {
    fn new() -> Bench {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let offset = Arc::new(AtomicU64::new(0));
        let o = offset.clone();
        let base = SystemTime::now();
        let keys = Arc::new(SecretKeyring::ephemeral().expect("keys"));
        let (app, store, known_handle) = rt.block_on(async {
            let store = DbStore::connect("sqlite::memory:").await.expect("store");
            let rp = RelyingParty::new(RpConfig::new(RP_ID, "bench", ORIGIN)).expect("rp");
            let opts = HttpOptions {
                serve_demo: false,
                secret_key: Some(keys.clone()),
                clock: Arc::new(move || base + Duration::from_secs(o.load(Ordering::SeqCst))),
                ..HttpOptions::default()
            };
            let app = router_with(rp, store.clone(), opts);
            // The known account: a key, TOTP with recovery codes, a password.
            let mut c = Client::new(app.clone());
            let mut key = SoftKey::new();
            c.register(KNOWN, &mut key, json!({})).await.ok();
            let e = c.post("/api/otp/totp/enroll", &json!({})).await.ok().clone();
            let secret = OtpSecret::from_base32(e["secret"].as_str().expect("secret")).expect("base32");
            let t = Totp::new(secret, hwkey::otp::Algorithm::Sha1, hwkey::otp::Digits::SIX, 30).expect("totp");
            let now = base.duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
            let codes = c.post("/api/otp/totp/confirm", &json!({"code": t.code_at(now).expect("code")})).await;
            assert_eq!(codes.ok()["recoveryCodes"].as_array().map(Vec::len), Some(10));
            c.post("/api/account/password", &json!({"password": PASSWORD})).await.ok();
            let handle = key.user_handle.clone().expect("user handle");
            (app, store, handle)
        });
        let accounts = AccountService::new(store.clone(), keys, AccountConfig::default());
        Bench { rt, app, accounts, store, offset, known_handle }
    }

    /// One request, as a browser without cookies sends it: status, JSON body.
    async fn send(app: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        let req = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, bytes.len())
            .header(header::ORIGIN, ORIGIN)
            .body(Body::from(bytes))
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Untimed, before each request: past the throttling window (and the
    /// ceremonies' grace), and no failures in a row on the known account.
    async fn reset(&self) {
        self.offset.fetch_add(3 * 3600, Ordering::SeqCst);
        self.store.clear_failures(&self.known_handle).await.expect("clear failures");
    }

    /// The answer of `path` for `body`, with what it must be.
    fn check(&self, path: &str, body: &Value, status: u16, code: Option<&str>) {
        let (s, v) = self.rt.block_on(async {
            self.reset().await;
            Self::send(&self.app, path, body).await
        });
        assert_eq!(s.as_u16(), status, "{path} {body}: {v}");
        if let Some(code) = code {
            assert_eq!(v["error"], json!(code), "{path} {body}: {v}");
        }
    }

    fn time(&self, iters: u64, path: &str, body: &Value) -> Duration {
        self.rt.block_on(async {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                self.reset().await;
                let t = Instant::now();
                let r = Self::send(&self.app, path, body).await;
                total += t.elapsed();
                std::hint::black_box(r);
            }
            total
        })
    }
}

/// Known and unknown in turns (which goes first alternates), `pairs`
/// times: the medians, and how often the unknown one took longer. On a
/// busy machine this is fairer than two benchmarks run one after the other.
fn paired(b: &Bench, path: &str, known: &Value, unknown: &Value, pairs: usize) {
    let mut k = Vec::with_capacity(pairs);
    let mut u = Vec::with_capacity(pairs);
    for i in 0..pairs {
        if i % 2 == 0 {
            k.push(b.time(1, path, known));
            u.push(b.time(1, path, unknown));
        } else {
            u.push(b.time(1, path, unknown));
            k.push(b.time(1, path, known));
        }
    }
    let slower = k.iter().zip(&u).filter(|(k, u)| u > k).count();
    k.sort();
    u.sort();
    let (mk, mu) = (k[pairs / 2], u[pairs / 2]);
    let diff = mu.as_secs_f64() / mk.as_secs_f64() * 100.0 - 100.0;
    println!(
        "paired {path}: known median {mk:?}, unknown median {mu:?} ({diff:+.1}%); unknown slower in {slower} of {pairs} pairs"
    );
}

fn bench(c: &mut Criterion) {
    let b = Bench::new();
    // (endpoint, body for the known name, body for the unknown one,
    // expected (status, code) of each).
    type Case = (&'static str, Value, Value, (u16, Option<&'static str>), (u16, Option<&'static str>));
    let cases: Vec<Case> = vec![
        ("/api/login/options", json!({"username": KNOWN}), json!({"username": UNKNOWN}), (200, None), (200, None)),
        (
            "/api/register/options",
            json!({"username": KNOWN}),
            json!({"username": UNKNOWN}),
            (409, Some("username_taken")),
            (200, None),
        ),
        (
            "/api/login/password",
            json!({"username": KNOWN, "password": "not the password at all"}),
            json!({"username": UNKNOWN, "password": "not the password at all"}),
            (401, Some("invalid_credentials")),
            (401, Some("invalid_credentials")),
        ),
        (
            "/api/login/totp",
            json!({"username": KNOWN, "code": "123456"}),
            json!({"username": UNKNOWN, "code": "123456"}),
            (401, Some("password_required")),
            (401, Some("password_required")),
        ),
        (
            "/api/login/recovery",
            json!({"username": KNOWN, "code": "ABCD-EFGH-JKLM-NPQR"}),
            json!({"username": UNKNOWN, "code": "ABCD-EFGH-JKLM-NPQR"}),
            (401, Some("password_required")),
            (401, Some("password_required")),
        ),
    ];
    for (path, known, unknown, known_answer, unknown_answer) in &cases {
        b.check(path, known, known_answer.0, known_answer.1);
        b.check(path, unknown, unknown_answer.0, unknown_answer.1);
        paired(&b, path, known, unknown, if *path == "/api/login/password" { 60 } else { 1000 });
        let mut g = c.benchmark_group(path.trim_start_matches("/api/"));
        if *path == "/api/login/password" {
            // Argon2 (tens of ms): fewer samples, equal iterations each.
            g.sampling_mode(SamplingMode::Flat).sample_size(20);
        }
        g.bench_function("known", |bn| bn.iter_custom(|iters| b.time(iters, path, known)));
        g.bench_function("unknown", |bn| bn.iter_custom(|iters| b.time(iters, path, unknown)));
        g.finish();
    }
    // What an unknown name costs `/api/login/options` beyond a known one.
    let made_up = b.rt.block_on(b.accounts.made_up_credentials(UNKNOWN)).expect("made up");
    c.bench_function(&format!("made_up_credentials ({} ids)", made_up.len()), |bn| {
        bn.iter_custom(|iters| {
            b.rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(b.accounts.made_up_credentials(std::hint::black_box(UNKNOWN)).await.ok());
                }
                t.elapsed()
            })
        })
    });
    b.rt.block_on(b.store.close());
}

criterion_group!(benches, bench);
criterion_main!(benches);
