//! The relying party over HTTP (feature `http`): an axum [`Router`] that
//! implements the project's HTTP contract (CONTRACTS §2, §2.1) over any
//! [`Store`]: a thin adapter that parses requests, runs the WebAuthn
//! ceremonies ([`RelyingParty`]), calls the account service
//! ([`crate::account`], which owns users, factors, sessions and policy) and
//! maps its typed errors to the contract's codes.
//!
//! | method, path | what it does |
//! |---|---|
//! | `GET /` (and `/demo.js`, `/demo.css`) | the demo page (no external resources) |
//! | `POST /api/register/options` | creation options; sets the ceremony cookie |
//! | `POST /api/register/verify` | verifies a RegistrationResponseJSON; signs the user in |
//! | `POST /api/login/options` | request options (with a username, or discoverable); sets the ceremony cookie |
//! | `POST /api/login/verify` | verifies an AuthenticationResponseJSON; sets the session cookie |
//! | `GET /api/me` | the signed-in user and their credentials |
//! | `PATCH /api/credentials/{id}` | rename a credential (`{"nickname": s}`) |
//! | `DELETE /api/credentials/{id}` | remove a credential (not the last one; needs a recent sign-in) |
//! | `GET /api/me/activity` | the signed-in user's recent security events |
//! | `POST /api/logout` | end the session |
//! | `GET /.well-known/webauthn` | related origins (WebAuthn L3 §5.11) |
//! | `GET /api/otp`, `POST /api/otp/totp/enroll`, `POST /api/otp/totp/confirm`, `DELETE /api/otp/totp`, `POST /api/otp/recovery/regenerate` | the signed-in user's authenticator app and recovery codes |
//! | `POST /api/login/totp`, `POST /api/login/recovery` | a TOTP or recovery code: completes a password sign-in, or alone (account without a password) a fallback-only session |
//! | `POST /api/account/password`, `DELETE /api/account/password` | set, change or remove the password (see `account.rs`) |
//! | `POST /api/login/password` | step one of a password sign-in; a second factor completes it |
//! | `GET /api/sessions`, `DELETE /api/sessions/{id}` | the signed-in user's sessions |
//!
//! The pending ceremony is bound to the browser by an HttpOnly,
//! SameSite=Strict cookie ([`CeremonyStorage`]). With one server process
//! (SQLite) the cookie holds 32 random bytes and the process keeps the state
//! under their SHA-256. With several (PostgreSQL) the cookie holds the state
//! itself, sealed (AES-256-GCM under a key derived from the session secret):
//! no write when a ceremony starts, and verify records the ceremony's id as
//! used in the sign-in's own statement, so each is accepted once on every
//! instance. The first verify consumes it, pass or fail, and it expires
//! with the relying party's timeout. The session cookie (HttpOnly,
//! SameSite=Strict) holds a token the server signed (`account/sessions.rs`:
//! user handle, sign-in method, expiry, nonce, HMAC-SHA256 under a secret
//! stored encrypted), backed by a session row written in the same statement
//! as the sign-in; signing out deletes the row. An accepted password is
//! carried to its second factor by another signed HttpOnly cookie
//! ([`PASSWORD_STEP_COOKIE`], 5 minutes). Cookies are `Secure` when the
//! page's origin is https. Who may do what (adding a key, removing one,
//! the factor changes) is the account service's policy
//! (`account/policy.rs`): 403 `reauthentication_required` otherwise.
//! State-changing requests whose `Origin` is not an allowed origin get 403
//! `cross_site_request`.
//!
//! Every failure is a 4xx with `{"verified": false, "error": CODE, "message":
//! text}`; bodies over 64 KiB get 413; only a storage failure and 503 `overloaded` (every password worker busy, with `Retry-After`) are 5xx.
//! No input reaches a panic: bodies are read and parsed by hand, never by
//! extractors with their own error formats.

use crate::account::{AccountError, AccountService, Authenticated, KeyRegistration, KeySignIn, SecretKeyring};
use crate::proto::webauthn::{
    AuthenticationResponseJson, Base64Url, CredentialDescriptor, RegistrationResponseJson, b64url_decode, b64url_encode,
};
use crate::server::{
    AttestationConveyance, AuthenticationError, AuthenticationRequest, AuthenticationState, RegistrationError,
    RegistrationRequest, RegistrationState, RelyingParty, ResidentKeyRequirement, UserVerification,
};
use crate::store::account::UsedCeremony;
use crate::store::ceremony_cache::{CeremonyCache, CeremonyLimits};
use crate::store::json_estimate::json_estimate;
use crate::store::{AuditKind, AuditQuery, NewAuditEvent, Store, StoreError, StoredCredential, UserRecord};
use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::extract::{Path, State, rejection::PathRejection};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, ORIGIN, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod account;
mod otp;
mod sealed_ceremony;
pub mod serve;

/// Largest request body accepted; larger ones get 413.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Name of the cookie that binds a pending ceremony to the browser.
pub const CEREMONY_COOKIE: &str = "hwkey_ceremony";
/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hwkey_session";
/// Name of the cookie that carries an accepted password to the second factor.
pub const PASSWORD_STEP_COOKIE: &str = "hwkey_password_step";
/// Longest username, display name or nickname, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The clock the router reads (tests move it).
pub type Clock = crate::account::Clock;

/// Router options beyond the relying-party configuration.
#[derive(Clone)]
pub struct HttpOptions {
    /// How long a session lasts after sign-in.
    pub session_ttl: Duration,
    /// Force the cookies' `Secure` attribute on or off; `None`: on when the
    /// request's `Origin` (or, without one, the first configured origin) is https.
    pub secure_cookies: Option<bool>,
    /// Serve the demo page at `/`.
    pub serve_demo: bool,
    /// How recent a sign-in must be for what would let whoever holds the
    /// session in again later (adding a security key, setting up an
    /// authenticator app, new recovery codes) or take a factor away
    /// (removing a key, turning the authenticator app off); older sessions get 403
    /// `reauthentication_required`. A stolen session cookie then cannot be
    /// turned into a lasting way in.
    pub recent_sign_in: Duration,
    /// The time source.
    pub clock: Clock,
    /// Caps on pending ceremonies held in this process (SQLite; PostgreSQL
    /// applies its own, [`crate::store::postgres`]): at a cap, 503
    /// `overloaded` with `Retry-After`.
    pub ceremony_limits: CeremonyLimits,
    /// The key-encryption keys for TOTP secrets and the session secret
    /// (`--secret-key-file`). `None`: a fresh key held in memory only, with
    /// a warning: fine for tests and in-memory databases, but a restart then
    /// cannot read the secrets stored before it.
    pub secret_key: Option<Arc<SecretKeyring>>,
    /// How many Argon2 jobs may run at once (passwords, recovery codes);
    /// beyond it requests get 503 `overloaded`. `None`: one per CPU.
    pub password_concurrency: Option<usize>,
    /// How long audit events are kept (the maintenance task purges older ones).
    pub audit_retention: Duration,
    /// Where pending ceremonies are kept between `/options` and `/verify`.
    pub ceremony_storage: CeremonyStorage,
}

/// Where the HTTP layer keeps a pending ceremony (its challenge, and for a
/// username-first sign-in the user's credentials) between `/options` and
/// `/verify`. Every mode hands a ceremony to one verify only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CeremonyStorage {
    /// In this process when the store keeps its data in this process anyway
    /// (SQLite: one server process per database), sealed in the cookie
    /// otherwise (PostgreSQL: any instance may get the verify).
    #[default]
    Auto,
    /// In this process's memory, capped by [`HttpOptions::ceremony_limits`]
    /// (one server process; gone after a restart).
    InProcess,
    /// Sealed in the ceremony cookie (AES-256-GCM under a key derived from
    /// the session secret, see `src/http/sealed_ceremony.rs`): nothing is
    /// stored when a ceremony starts, and verifying one records its id as
    /// used in the same write as the sign-in. Ceremonies too large for a
    /// cookie go to the store's table.
    Sealed,
    /// In the store's ceremonies table (capped by the store's limits).
    Store,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: None,
            serve_demo: true,
            recent_sign_in: Duration::from_secs(10 * 60),
            clock: Arc::new(SystemTime::now),
            ceremony_limits: CeremonyLimits::default(),
            secret_key: None,
            password_concurrency: None,
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            ceremony_storage: CeremonyStorage::Auto,
        }
    }
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("session_ttl", &self.session_ttl)
            .field("secure_cookies", &self.secure_cookies)
            .field("serve_demo", &self.serve_demo)
            .field("recent_sign_in", &self.recent_sign_in)
            .field("ceremony_limits", &self.ceremony_limits)
            .field("secret_key", &self.secret_key)
            .field("password_concurrency", &self.password_concurrency)
            .field("audit_retention", &self.audit_retention)
            .field("ceremony_storage", &self.ceremony_storage)
            .finish_non_exhaustive()
    }
}

struct App<S> {
    rp: RelyingParty,
    /// Users, factors, sessions, policy: everything but the key ceremonies.
    accounts: AccountService<S>,
    opts: HttpOptions,
    /// Where pending ceremonies are.
    ceremonies: Ceremonies,
}

/// [`CeremonyStorage`], resolved.
enum Ceremonies {
    /// Typed, in this process: the same guarantees as the store's table
    /// (taken once, under a lock) without a JSON round trip.
    Local(std::sync::Mutex<CeremonyCache<Pending>>),
    /// Sealed in the cookie, under a key derived from the session secret
    /// (read from the store on first use).
    Sealed(tokio::sync::OnceCell<sealed_ceremony::CeremonySeal>),
    /// In the store's table.
    Store,
}

/// The router for `rp` over `store`, with default options.
pub fn router<S: Store>(rp: RelyingParty, store: S) -> Router {
    router_with(rp, store, HttpOptions::default())
}

/// The router for `rp` over `store`.
pub fn router_with<S: Store>(rp: RelyingParty, store: S, opts: HttpOptions) -> Router {
    let serve_demo = opts.serve_demo;
    let ceremonies = match opts.ceremony_storage {
        CeremonyStorage::Auto if store.ceremonies_in_process() => CeremonyStorage::InProcess,
        CeremonyStorage::Auto => CeremonyStorage::Sealed,
        other => other,
    };
    let ceremonies = match ceremonies {
        CeremonyStorage::Sealed => Ceremonies::Sealed(tokio::sync::OnceCell::new()),
        CeremonyStorage::Store => Ceremonies::Store,
        _ => Ceremonies::Local(std::sync::Mutex::new(CeremonyCache::new(opts.ceremony_limits))),
    };
    let accounts = AccountService::new(store, account::secret_key(&opts), account::config(&rp, &opts));
    let app = Arc::new(App { rp, accounts, opts, ceremonies });
    let mut r = Router::new()
        .route("/api/register/options", post(register_options::<S>))
        .route("/api/register/verify", post(register_verify::<S>))
        .route("/api/login/options", post(login_options::<S>))
        .route("/api/login/verify", post(login_verify::<S>))
        .route("/api/me", get(me::<S>))
        .route("/api/me/activity", get(activity::<S>))
        .route("/api/credentials/{id}", patch(rename_credential::<S>).delete(delete_credential::<S>))
        .route("/api/logout", post(logout::<S>))
        .merge(otp::routes::<S>())
        .merge(account::routes::<S>())
        .route("/.well-known/webauthn", get(well_known::<S>));
    if serve_demo {
        r = r
            .route("/", get(|| async { asset("text/html; charset=utf-8", DEMO_HTML) }))
            .route("/demo.js", get(|| async { asset("text/javascript; charset=utf-8", DEMO_JS) }))
            .route("/demo.css", get(|| async { asset("text/css; charset=utf-8", DEMO_CSS) }));
    }
    r.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
        })
        .with_state(app)
}

/// Spawn a task that deletes expired ceremonies and sessions every
/// `every`, and audit events older than the default retention (90 days).
pub fn spawn_maintenance<S: Store + Clone>(store: S, every: Duration) -> tokio::task::JoinHandle<()> {
    spawn_maintenance_with(store, every, HttpOptions::default().audit_retention)
}

/// [`spawn_maintenance`] with an audit retention period.
pub fn spawn_maintenance_with<S: Store + Clone>(
    store: S,
    every: Duration,
    audit_retention: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let now = SystemTime::now();
            if let Err(e) = store.purge_expired(now).await {
                tracing::warn!("purging expired ceremonies and sessions failed: {e}");
            }
            let before = now.checked_sub(audit_retention).unwrap_or(SystemTime::UNIX_EPOCH);
            if let Err(e) = store.purge_account_data(before, now).await {
                tracing::warn!("purging old audit events and expired sessions failed: {e}");
            }
        }
    })
}

const DEMO_HTML: &str = include_str!("demo/index.html");
const DEMO_JS: &str = include_str!("demo/demo.js");
const DEMO_CSS: &str = include_str!("demo/demo.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

// ---------------------------------------------------------------- errors

/// A failure as the contract shapes it: a 4xx (or, for storage failures, a
/// 5xx) with `{"verified": false, "error": code, "message": text}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Seconds for the `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
    /// More members of the error body (`credentialId` and `rpId` of an
    /// `unknown_credential`, for the Signal API).
    pub extra: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None, extra: Vec::new() }
    }

    /// The error with one more member in its body.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((key, value.into()));
        self
    }

    /// A 400 `malformed_request`.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    /// An error from a code, with the status the code implies.
    pub fn from_code(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status_for(code), code, message)
    }
}

/// The HTTP status for an error code.
pub fn status_for(code: &str) -> StatusCode {
    match code {
        "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "not_signed_in" => StatusCode::UNAUTHORIZED,
        "too_many_attempts" => StatusCode::TOO_MANY_REQUESTS,
        "overloaded" => StatusCode::SERVICE_UNAVAILABLE,
        "invalid_credentials" | "password_required" => StatusCode::UNAUTHORIZED,
        "cross_site_request" => StatusCode::FORBIDDEN,
        "unknown_user" | "no_credentials" | "not_found" | "totp_not_enabled" | "no_password" => StatusCode::NOT_FOUND,
        "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "reauthentication_required" => StatusCode::FORBIDDEN,
        "credential_excluded" | "username_taken" | "last_credential" | "totp_already_enabled" => StatusCode::CONFLICT,
        "storage_error" | "storage_corrupt" | "internal_error" | "unsupported_database" | "database_in_use" => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UsernameTaken => ApiError::from_code("username_taken", "that username is already taken"),
            StoreError::DuplicateCredential => {
                ApiError::from_code("credential_excluded", "this authenticator is already registered")
            }
            StoreError::Overloaded(m) => {
                tracing::warn!("overloaded: {m}");
                ApiError::from_code("overloaded", "the server is at a limit; try again shortly")
            }
            StoreError::Invalid(m) => ApiError::malformed(m),
            other => {
                tracing::error!("storage failure: {other}");
                ApiError::from_code(other.code(), "the server's storage failed; try again later")
            }
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match &e {
            AccountError::Storage(s) => tracing::error!("storage failure: {s}"),
            AccountError::Secret(s) => tracing::error!("secrets at rest: {s}"),
            AccountError::Internal(s) => tracing::error!("internal error: {s}"),
            _ => {}
        }
        let mut a = ApiError::from_code(e.code(), e.to_string());
        if matches!(e, AccountError::UnknownCredential) {
            a.status = StatusCode::NOT_FOUND;
        }
        a.retry_after = e.retry_after();
        a
    }
}

impl From<RegistrationError> for ApiError {
    fn from(e: RegistrationError) -> Self {
        ApiError::from_code(e.code(), e.to_string())
    }
}

impl From<AuthenticationError> for ApiError {
    fn from(e: AuthenticationError) -> Self {
        ApiError::from_code(e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "verified": false, "error": self.code, "message": self.message });
        if let Value::Object(m) = &mut body {
            for (k, v) in self.extra {
                m.insert(k.to_owned(), Value::String(v));
            }
        }
        let mut r = json_response(self.status, &body);
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(RETRY_AFTER, v);
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            r.headers_mut().insert("connection", HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn ok<T: Serialize + ?Sized>(value: &T) -> Response {
    json_response(StatusCode::OK, value)
}

type ApiResult = Result<Response, ApiError>;

fn finish(r: ApiResult) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

// ---------------------------------------------------------------- request plumbing

/// Read the body, refusing more than [`BODY_LIMIT`] bytes with 413.
async fn read_body(headers: &HeaderMap, mut body: Body) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::from_code("payload_too_large", format!("the request body is larger than {} KiB", BODY_LIMIT / 1024))
    };
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) if n > BODY_LIMIT as u64 => return Err(too_large()),
            Some(_) => {}
            None => return Err(ApiError::malformed("invalid Content-Length")),
        }
    }
    let mut buf = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(buf),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > BODY_LIMIT {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(ApiError::malformed(format!("the request body could not be read: {e}"))),
        }
    }
}

/// Parse a request body that must be a JSON object. serde's derived
/// structs also accept a JSON array (fields in order), so anything but an
/// object at the top is refused here, before serde sees it.
fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ApiError::malformed("the request body is empty; a JSON object is expected")),
        Some(b'{') => {}
        Some(_) => return Err(ApiError::malformed("the request body must be a JSON object")),
    }
    serde_json::from_slice(body).map_err(|e| ApiError::malformed(format!("the request body is not valid: {e}")))
}

/// Unix ms as a time (the epoch for negative values).
fn unix_ms_time(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The first cookie `name` that decodes (base64url) to `min..=max` bytes.
fn cookie_token(headers: &HeaderMap, name: &str, min: usize, max: usize) -> Option<Vec<u8>> {
    for value in headers.get_all(COOKIE) {
        let Ok(s) = value.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                let v = v.trim().trim_matches('"');
                // Length first: never decode more than a token's worth.
                if k.trim() == name
                    && v.len() <= max.div_ceil(3) * 4
                    && let Ok(t) = b64url_decode(v)
                    && (min..=max).contains(&t.len())
                {
                    return Some(t);
                }
            }
        }
    }
    None
}

fn validate_name(what: &str, s: &str) -> Result<(), ApiError> {
    if s.trim().is_empty() {
        return Err(ApiError::malformed(format!("{what} must not be empty")));
    }
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::malformed(format!("{what} must be at most {MAX_NAME_CHARS} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(ApiError::malformed(format!("{what} must not contain control characters")));
    }
    Ok(())
}

fn parse_enum<T>(what: &str, v: Option<&str>, parse: fn(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
    match v {
        None => Ok(None),
        Some(s) => parse(s).map(Some).ok_or_else(|| ApiError::malformed(format!("{what} {s:?} is not recognized"))),
    }
}

impl<S: Store> App<S> {
    fn now(&self) -> SystemTime {
        (self.opts.clock)()
    }

    fn digest(&self, token: &[u8]) -> [u8; 32] {
        self.rp.provider().sha256(&[b"hwkey-cookie-v1", token])
    }

    fn new_token(&self) -> Result<Vec<u8>, ApiError> {
        self.rp
            .provider()
            .random_bytes(32)
            .map_err(|_| ApiError::from_code("internal_error", "the random source failed"))
    }

    fn secure(&self, headers: &HeaderMap) -> bool {
        if let Some(s) = self.opts.secure_cookies {
            return s;
        }
        match headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
            Some(o) => o.starts_with("https://"),
            None => self.rp.config().origins.first().is_some_and(|o| o.starts_with("https://")),
        }
    }

    fn cookie(&self, headers: &HeaderMap, name: &str, token: Option<&[u8]>, max_age: Duration) -> HeaderValue {
        let secure = if self.secure(headers) { "; Secure" } else { "" };
        let s = match token {
            Some(t) => format!(
                "{name}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
                b64url_encode(t),
                max_age.as_secs().max(1)
            ),
            None => format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"),
        };
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("hwkey_invalid=; Max-Age=0"))
    }

    /// State-changing requests from a browser must come from an allowed origin.
    fn check_origin(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        if method == Method::GET || method == Method::HEAD {
            return Ok(());
        }
        match headers.get(ORIGIN).map(|v| v.to_str()) {
            None => Ok(()),
            Some(Ok(o)) if crate::server::origin::origin_allowed(o, self.rp.config()) => Ok(()),
            Some(_) => Err(ApiError::from_code(
                "cross_site_request",
                "the request comes from an origin this relying party does not serve",
            )),
        }
    }

    fn store(&self) -> &S {
        self.accounts.store()
    }

    /// The caller's session: a valid, unexpired token with its session row,
    /// of an existing user.
    async fn session(&self, headers: &HeaderMap) -> Result<Option<Authenticated>, ApiError> {
        let Some(token) = cookie_token(headers, SESSION_COOKIE, 1, crate::account::sessions::MAX_TOKEN_LEN) else {
            return Ok(None);
        };
        Ok(self.accounts.authenticate(&token).await?)
    }

    async fn require_session(&self, headers: &HeaderMap) -> Result<Authenticated, ApiError> {
        self.session(headers).await?.ok_or_else(|| ApiError::from_code("not_signed_in", "sign in first"))
    }

    /// The Set-Cookie value of a new session.
    fn session_cookie(&self, headers: &HeaderMap, s: &crate::account::NewSession) -> HeaderValue {
        self.cookie(headers, SESSION_COOKIE, Some(&s.token), self.opts.session_ttl)
    }

    /// The caller's password step (password accepted, second factor pending).
    async fn password_step(&self, headers: &HeaderMap) -> Result<Option<crate::account::PasswordAccepted>, ApiError> {
        let Some(token) = cookie_token(headers, PASSWORD_STEP_COOKIE, 1, crate::account::sessions::MAX_TOKEN_LEN)
        else {
            return Ok(None);
        };
        Ok(self.accounts.password_step(&token).await?)
    }

    /// The key that seals ceremony cookies (derived once from the session secret).
    async fn seal<'a>(
        &self,
        cell: &'a tokio::sync::OnceCell<sealed_ceremony::CeremonySeal>,
    ) -> Result<&'a sealed_ceremony::CeremonySeal, ApiError> {
        cell.get_or_try_init(|| async {
            let secret = self.accounts.session_secret().await?;
            sealed_ceremony::CeremonySeal::derive(self.rp.provider(), secret)
                .ok_or_else(|| ApiError::from_code("internal_error", "cannot derive the ceremony key"))
        })
        .await
    }

    async fn put_pending(
        &self,
        headers: &HeaderMap,
        pending: Pending,
        expires_ms: u64,
    ) -> Result<HeaderValue, ApiError> {
        let expires = i64::try_from(expires_ms).unwrap_or(i64::MAX);
        let cell = match &self.ceremonies {
            Ceremonies::Local(local) => {
                let token = self.new_token()?;
                let now = crate::store::ms(self.now());
                // Measured before the lock is taken (an estimate of its
                // JSON size: exact counting formatted every byte).
                let bytes = json_estimate(&pending);
                let mut cache = local.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                // One pending ceremony per browser: a new one replaces the last.
                if let Some(old) = cookie_token(headers, CEREMONY_COOKIE, 32, 32) {
                    cache.take(&self.digest(&old));
                }
                cache
                    .put(self.digest(&token), pending, bytes, expires, now)
                    .map_err(|e| ApiError::from(StoreError::Overloaded(e.to_string())))?;
                drop(cache);
                return Ok(self.cookie(headers, CEREMONY_COOKIE, Some(&token), self.rp.config().timeout));
            }
            Ceremonies::Sealed(cell) => cell,
            Ceremonies::Store => return self.put_stored(headers, &pending, expires).await,
        };
        let seal = self.seal(cell).await?;
        // One pending ceremony per browser: a new one uses up the last.
        if let Some(old) = cookie_token(headers, CEREMONY_COOKIE, 32, sealed_ceremony::MAX_TOKEN_LEN) {
            if old.len() == 32 {
                self.store().take_ceremony(&self.digest(&old)).await?;
            } else if let Some(o) = seal.open(&old).filter(|o| o.expires_ms >= crate::store::ms(self.now())) {
                self.store().consume_ceremony(&o.id, unix_ms_time(o.expires_ms)).await?;
            }
        }
        let json = |p: &Pending| {
            serde_json::to_vec(p).map_err(|e| ApiError::from_code("internal_error", format!("ceremony state: {e}")))
        };
        let fits = |plain: &[u8]| plain.len() + sealed_ceremony::MIN_TOKEN_LEN <= sealed_ceremony::MAX_TOKEN_LEN;
        let mut plain = json(&pending)?;
        let mut pending = pending;
        if !fits(&plain) {
            // Too large for a cookie with the credential snapshot (large
            // post-quantum keys, many of them): without it, verify reads
            // the credential instead.
            if let Pending::Authentication { user, allowed, .. } = &mut pending {
                *user = None;
                allowed.clear();
                plain = json(&pending)?;
            }
        }
        if !fits(&plain) {
            return self.put_stored(headers, &pending, expires).await;
        }
        let (_, token) = seal
            .seal(expires, &plain)
            .ok_or_else(|| ApiError::from_code("internal_error", "cannot seal the ceremony state"))?;
        Ok(self.cookie(headers, CEREMONY_COOKIE, Some(&token), self.rp.config().timeout))
    }

    /// A pending ceremony in the store's table.
    async fn put_stored(&self, headers: &HeaderMap, pending: &Pending, expires: i64) -> Result<HeaderValue, ApiError> {
        let token = self.new_token()?;
        let state = serde_json::to_string(pending)
            .map_err(|e| ApiError::from_code("internal_error", format!("ceremony state: {e}")))?;
        // One pending ceremony per browser: a new one replaces the last.
        if let Some(old) = cookie_token(headers, CEREMONY_COOKIE, 32, 32) {
            self.store().take_ceremony(&self.digest(&old)).await?;
        }
        self.store().put_ceremony(&self.digest(&token), &state, unix_ms_time(expires)).await?;
        Ok(self.cookie(headers, CEREMONY_COOKIE, Some(&token), self.rp.config().timeout))
    }

    /// Take the caller's pending ceremony (whatever comes next). One held
    /// in the process or the store's table is gone from there; a sealed one
    /// comes with its id, which the caller must use up
    /// ([`Store::consume_ceremony`], or the key sign-in's own write).
    async fn take_pending(&self, headers: &HeaderMap) -> Result<Taken, ApiError> {
        let max = if matches!(self.ceremonies, Ceremonies::Sealed(_)) { sealed_ceremony::MAX_TOKEN_LEN } else { 32 };
        let Some(token) = cookie_token(headers, CEREMONY_COOKIE, 32, max) else { return Ok(Taken::Nothing) };
        let now = crate::store::ms(self.now());
        match &self.ceremonies {
            Ceremonies::Local(local) => {
                let taken = local.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take(&self.digest(&token));
                return Ok(match taken {
                    None => Taken::Nothing,
                    Some((_, expires)) if expires < now => Taken::Expired,
                    Some((pending, _)) => Taken::Pending(Box::new(pending), None),
                });
            }
            Ceremonies::Sealed(cell) if token.len() != 32 => {
                let Some(opened) = self.seal(cell).await?.open(&token) else { return Ok(Taken::Nothing) };
                if opened.expires_ms < now {
                    return Ok(Taken::Expired);
                }
                return match serde_json::from_slice::<Pending>(&opened.plain) {
                    Ok(pending) => Ok(Taken::Pending(
                        Box::new(pending),
                        Some(UsedCeremony { id: opened.id.to_vec(), expires_unix_ms: opened.expires_ms }),
                    )),
                    // Authentic but unreadable: written by another version.
                    Err(_) => Ok(Taken::Nothing),
                };
            }
            _ => {}
        }
        let Some(p) = self.store().take_ceremony(&self.digest(&token)).await? else { return Ok(Taken::Nothing) };
        if p.expires_unix_ms < now {
            return Ok(Taken::Expired);
        }
        match serde_json::from_str::<Pending>(&p.state) {
            Ok(pending) => Ok(Taken::Pending(Box::new(pending), None)),
            Err(e) => Err(ApiError::from_code("storage_corrupt", format!("stored ceremony state: {e}"))),
        }
    }

    /// Use up a sealed ceremony; false when it was used already.
    async fn consume(&self, used: &UsedCeremony) -> Result<bool, ApiError> {
        Ok(self.store().consume_ceremony(&used.id, unix_ms_time(used.expires_unix_ms)).await?)
    }

    /// An audit event for a request without a session (fields bounded small).
    async fn audit(&self, event: NewAuditEvent) {
        self.accounts.audit(event, false).await;
    }
}

enum Taken {
    Nothing,
    Expired,
    /// The ceremony, and its id when it was sealed in the cookie (to use up).
    Pending(Box<Pending>, Option<UsedCeremony>),
}

impl Taken {
    fn into_pending(self) -> Result<(Pending, Option<UsedCeremony>), ApiError> {
        match self {
            Taken::Nothing => Err(ApiError::from_code(
                "no_pending_ceremony",
                "no ceremony is pending for this browser (it was used already, or never started)",
            )),
            Taken::Expired => Err(ApiError::from_code("challenge_expired", "the challenge expired; start again")),
            Taken::Pending(p, used) => Ok((*p, used)),
        }
    }
}

/// A pending ceremony as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Pending {
    Registration {
        state: RegistrationState,
        display_name: String,
        /// The user does not exist yet and is created on success.
        new_user: bool,
        /// The caller was signed in as the (existing) user when the ceremony started.
        authorized: bool,
        /// How many credentials the user had then (for the default nickname).
        existing: usize,
    },
    Authentication {
        state: AuthenticationState,
        /// Username-first sign-in: the user and their credentials as they
        /// were when the challenge was issued. Verification uses this snapshot
        /// instead of reading the credential again, and checks the counter
        /// against its value at issue: the authenticator signs this challenge
        /// after that moment, so its counter must exceed it, while a higher
        /// counter recorded meanwhile by a concurrent sign-in does not make
        /// this one a regression. (A credential deleted meanwhile is caught
        /// when the new counter is stored.)
        #[serde(default)]
        user: Option<UserRecord>,
        #[serde(default)]
        allowed: Vec<StoredCredential>,
    },
}

fn descriptors(creds: &[StoredCredential]) -> Vec<CredentialDescriptor> {
    creds
        .iter()
        .map(|c| {
            let t = &c.record.transports;
            CredentialDescriptor::public_key(c.record.credential_id.0.clone(), (!t.is_empty()).then(|| t.clone()))
        })
        .collect()
}

/// WebAuthn L3 hints (§5.8.7), the known values only, each once, in the
/// caller's order; anything else is `malformed_request`.
fn parse_hints(hints: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for h in hints.unwrap_or_default() {
        if !matches!(h.as_str(), "security-key" | "client-device" | "hybrid") {
            return Err(ApiError::malformed(format!(
                "hint {:?} is not security-key, client-device or hybrid",
                h.chars().take(32).collect::<String>()
            )));
        }
        if !out.contains(&h) {
            out.push(h);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- registration

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterOptionsBody {
    username: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    resident_key: Option<String>,
    #[serde(default)]
    user_verification: Option<String>,
    #[serde(default)]
    attestation: Option<String>,
    /// `"conditional"`: a passkey created without a dialog (WebAuthn L3
    /// conditional create), offered after a password sign-in.
    #[serde(default)]
    mediation: Option<String>,
    /// WebAuthn L3 hints: `security-key`, `client-device`, `hybrid`.
    #[serde(default)]
    hints: Option<Vec<String>>,
}

async fn register_options<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(register_options_inner(&app, &method, &headers, body).await)
}

async fn register_options_inner<S: Store>(app: &App<S>, method: &Method, headers: &HeaderMap, body: Body) -> ApiResult {
    app.check_origin(method, headers)?;
    let body = read_body(headers, body).await?;
    let req: RegisterOptionsBody = parse_json(&body)?;
    let username = app.accounts.normalize_username(&req.username)?;
    let display_name = match req.display_name.as_deref().map(str::trim) {
        Some(d) if !d.is_empty() => {
            validate_name("displayName", d)?;
            d.to_owned()
        }
        _ => req.username.trim().to_owned(),
    };
    let resident_key = parse_enum("residentKey", req.resident_key.as_deref(), ResidentKeyRequirement::parse)?;
    let requested = parse_enum("userVerification", req.user_verification.as_deref(), UserVerification::parse)?;
    let user_verification =
        Some(crate::account::policy::user_verification(app.rp.config().user_verification, requested));
    let attestation = parse_enum("attestation", req.attestation.as_deref(), AttestationConveyance::parse)?;
    let hints = parse_hints(req.hints)?;
    let conditional = match req.mediation.as_deref() {
        None | Some("optional" | "required" | "silent") => false,
        Some("conditional") => true,
        Some(other) => return Err(ApiError::malformed(format!("mediation {other:?} is not a mediation requirement"))),
    };

    let caller = app.session(headers).await?;
    // A taken name is 409 `username_taken` with nothing of that account,
    // unless the caller is signed in as it (recently enough to add a key).
    let (handle, new_user, authorized, creds) = match app.accounts.key_registration(&username, caller.as_ref()).await? {
        KeyRegistration::OwnAccount { user, credentials } => (user.handle.0, false, true, credentials),
        KeyRegistration::NewAccount { .. } => {
            (UserRecord::new(&username, &display_name, app.now())?.handle.0, true, false, Vec::new())
        }
    };
    // A conditional create adds a passkey to the signed-in account without
    // user presence; it never creates an account.
    if conditional && !authorized {
        return Err(ApiError::from_code(
            "not_signed_in",
            "a conditional create adds a passkey to your own account: sign in first",
        ));
    }
    let (options, state) = app
        .rp
        .start_registration(
            RegistrationRequest {
                user_id: handle,
                user_name: username.clone(),
                display_name: display_name.clone(),
                exclude_credentials: descriptors(&creds),
                resident_key,
                user_verification,
                attestation,
                conditional,
                hints,
                ..Default::default()
            },
            app.now(),
        )
        .map_err(|e| ApiError::from_code("internal_error", e.to_string()))?;
    let expires = state.expires_unix_ms;
    let pending = Pending::Registration { state, display_name, new_user, authorized, existing: creds.len() };
    let cookie = app.put_pending(headers, pending, expires).await?;
    let mut r = ok(&options);
    r.headers_mut().append(SET_COOKIE, cookie);
    Ok(r)
}

async fn register_verify<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut r = finish(register_verify_inner(&app, &method, &headers, body).await);
    r.headers_mut().append(SET_COOKIE, app.cookie(&headers, CEREMONY_COOKIE, None, Duration::ZERO));
    r
}

async fn register_verify_inner<S: Store>(app: &App<S>, method: &Method, headers: &HeaderMap, body: Body) -> ApiResult {
    app.check_origin(method, headers)?;
    let taken = app.take_pending(headers).await?;
    let body = read_body(headers, body).await?;
    let response: RegistrationResponseJson = parse_json(&body)?;
    let (state, display_name, new_user, authorized, existing) = match taken.into_pending() {
        Ok((Pending::Registration { state, display_name, new_user, authorized, existing }, used)) => {
            // A sealed ceremony is used up before anything else, pass or fail.
            if let Some(used) = used
                && !app.consume(&used).await?
            {
                return Err(ApiError::from_code("no_pending_ceremony", "this ceremony was used already"));
            }
            (state, display_name, new_user, authorized, existing)
        }
        Ok((Pending::Authentication { .. }, used)) => {
            if let Some(used) = used {
                app.consume(&used).await?;
            }
            return Err(ApiError::from_code(
                "no_pending_ceremony",
                "the pending ceremony is a sign-in, not a registration",
            ));
        }
        Err(e) => {
            app.audit(NewAuditEvent::new(AuditKind::RegistrationFailed).code(e.code).detail(&e.message)).await;
            return Err(e);
        }
    };
    let username = state.user_name.clone();
    let handle = state.user_id.0.clone();
    let fail = |e: ApiError| {
        let ev = NewAuditEvent::new(AuditKind::RegistrationFailed)
            .user(&username, &handle)
            .credential(&response.raw_id)
            .code(e.code)
            .detail(&e.message);
        (ev, e)
    };
    let result = match app.rp.finish_registration(state, &response, app.now()) {
        Ok(r) => r,
        Err(e) => {
            let (ev, e) = fail(e.into());
            app.audit(ev).await;
            return Err(e);
        }
    };
    let cred = &result.credential;
    if app.store().credential(&cred.credential_id).await?.is_some() {
        let (ev, e) = fail(ApiError::from_code("credential_excluded", "this authenticator is already registered"));
        app.audit(ev).await;
        return Err(e);
    }
    if !new_user && !authorized {
        let (ev, e) = fail(ApiError::from_code(
            "username_taken",
            "that username is taken; sign in as that user to add a security key",
        ));
        app.audit(ev).await;
        return Err(e);
    }
    let kind = if cred.discoverable == Some(true) { "Passkey" } else { "Security key" };
    let nickname = if existing == 0 { kind.to_owned() } else { format!("{kind} {}", existing + 1) };
    let now = app.now();
    let user = if new_user {
        Some(UserRecord {
            handle: Base64Url(handle.clone()),
            username: username.clone(),
            display_name,
            created_unix_ms: crate::store::ms(now),
        })
    } else {
        None
    };
    if let Err(e) = app.store().add_credential(user.as_ref(), cred, &nickname, now).await {
        let (ev, e) = fail(e.into());
        app.audit(ev).await;
        return Err(e);
    }
    app.audit(
        NewAuditEvent::new(AuditKind::Registration)
            .user(&username, &handle)
            .credential(&cred.credential_id)
            .detail(format!("format {}, aaguid {}", cred.attestation_format, cred.aaguid)),
    )
    .await;
    let body = json!({
        "verified": true,
        "username": username,
        "credentialId": cred.credential_id.encode(),
        "attestationFormat": cred.attestation_format,
        "aaguid": cred.aaguid,
        "userVerified": result.user_verified,
        "backupEligible": cred.backup_eligible,
        "backedUp": cred.backed_up,
    });
    let mut body = body;
    if let (Some(info), Value::Object(m)) = (&result.authenticator, &mut body) {
        m.insert("authenticator".into(), json!(info));
    }
    let mut r = ok(&body);
    if !authorized && let Some(u) = &user {
        let s = app.accounts.start_session(u, crate::account::SignInMethod::Key).await?;
        r.headers_mut().append(SET_COOKIE, app.session_cookie(headers, &s));
    }
    Ok(r)
}

// ---------------------------------------------------------------- authentication

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoginOptionsBody {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    user_verification: Option<String>,
    /// WebAuthn L3 hints: `security-key`, `client-device`, `hybrid`.
    #[serde(default)]
    hints: Option<Vec<String>>,
}

async fn login_options<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(login_options_inner(&app, &method, &headers, body).await)
}

async fn login_options_inner<S: Store>(app: &App<S>, method: &Method, headers: &HeaderMap, body: Body) -> ApiResult {
    app.check_origin(method, headers)?;
    let body = read_body(headers, body).await?;
    let req: LoginOptionsBody = parse_json(&body)?;
    let login_hints = parse_hints(req.hints.clone())?;
    let requested = parse_enum("userVerification", req.user_verification.as_deref(), UserVerification::parse)?;
    // A request may ask for more user verification than configured, never less.
    let user_verification =
        Some(crate::account::policy::user_verification(app.rp.config().user_verification, requested));
    let mut snapshot = (None, Vec::new());
    let request = match req.username {
        Some(name) => {
            let name = app.accounts.normalize_username(&name)?;
            match app.store().user_with_credentials(&name).await? {
                Some((user, creds)) if !creds.is_empty() => {
                    let request = AuthenticationRequest {
                        user_id: Some(user.handle.0.clone()),
                        allow_credentials: descriptors(&creds),
                        user_verification,
                        ..Default::default()
                    };
                    snapshot = (Some(user), creds);
                    request
                }
                // No such account: the same answer, with made-up credential
                // ids that stay the same for this name (WebAuthn L3 §14.6.2).
                _ => {
                    let ids = app.accounts.made_up_credentials(&name).await?;
                    AuthenticationRequest {
                        allow_credentials: ids
                            .into_iter()
                            .map(|id| CredentialDescriptor::public_key(id, Some(vec!["usb".to_owned()])))
                            .collect(),
                        user_verification,
                        ..Default::default()
                    }
                }
            }
        }
        None => AuthenticationRequest { user_verification, ..Default::default() },
    };
    let request = AuthenticationRequest { hints: login_hints, ..request };
    let (options, state) = app
        .rp
        .start_authentication(request, app.now())
        .map_err(|e| ApiError::from_code("internal_error", e.to_string()))?;
    let expires = state.expires_unix_ms;
    let (user, allowed) = snapshot;
    let cookie = app.put_pending(headers, Pending::Authentication { state, user, allowed }, expires).await?;
    let mut r = ok(&options);
    r.headers_mut().append(SET_COOKIE, cookie);
    Ok(r)
}

async fn login_verify<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut r = finish(login_verify_inner(&app, &method, &headers, body).await);
    r.headers_mut().append(SET_COOKIE, app.cookie(&headers, CEREMONY_COOKIE, None, Duration::ZERO));
    r
}

async fn login_verify_inner<S: Store>(app: &App<S>, method: &Method, headers: &HeaderMap, body: Body) -> ApiResult {
    app.check_origin(method, headers)?;
    let mut taken = app.take_pending(headers).await?;
    // A sealed ceremony is used up by the sign-in's own write; when the
    // verify fails before it, here (pass or fail, it is used once).
    let used = match &mut taken {
        Taken::Pending(_, used) => used.take(),
        _ => None,
    };
    let result = login_verify_taken(app, headers, body, taken, used.as_ref()).await;
    if result.is_err()
        && let Some(used) = &used
    {
        app.consume(used).await?;
    }
    result
}

async fn login_verify_taken<S: Store>(
    app: &App<S>,
    headers: &HeaderMap,
    body: Body,
    taken: Taken,
    used: Option<&UsedCeremony>,
) -> ApiResult {
    let body = read_body(headers, body).await?;
    let response: AuthenticationResponseJson = parse_json(&body)?;
    let cred_id: &[u8] = &response.raw_id;
    let failed = |code: &'static str, message: &str| {
        NewAuditEvent::new(AuditKind::SignInFailed).credential(cred_id).code(code).detail(message)
    };
    let (state, snapshot_user, allowed) = match taken.into_pending() {
        Ok((Pending::Authentication { state, user, allowed }, _)) => (state, user, allowed),
        Ok((Pending::Registration { .. }, _)) => {
            return Err(ApiError::from_code(
                "no_pending_ceremony",
                "the pending ceremony is a registration, not a sign-in",
            ));
        }
        Err(e) => {
            app.audit(failed(e.code, &e.message)).await;
            return Err(e);
        }
    };
    let snapshot = match (snapshot_user, allowed.into_iter().find(|c| c.record.credential_id.0 == cred_id)) {
        (Some(u), Some(c)) => Some((c, u)),
        _ => None,
    };
    let found = match snapshot {
        Some(found) => Some(found),
        None => app.store().credential(cred_id).await?,
    };
    let Some((stored, user)) = found else {
        // credentialId and rpId let the page tell the browser's passkey
        // manager to forget it (PublicKeyCredential.signalUnknownCredential).
        let e = ApiError::from_code("unknown_credential", "this security key is not registered here")
            .with("credentialId", b64url_encode(cred_id))
            .with("rpId", app.rp.config().rp_id.clone());
        app.audit(failed(e.code, &e.message)).await;
        return Err(e);
    };
    let now = app.now();
    let result = match app.rp.finish_authentication(state, &response, &stored.record, now) {
        Ok(r) => r,
        Err(e) => {
            if let AuthenticationError::CounterRegression { stored: s, received } = e {
                app.audit(
                    NewAuditEvent::new(AuditKind::CounterRegression)
                        .user(&user.username, &user.handle)
                        .credential(cred_id)
                        .code("counter_regression")
                        .detail(format!("stored {s}, received {received}")),
                )
                .await;
            }
            let e = ApiError::from(e);
            app.audit(failed(e.code, &e.message).user(&user.username, &user.handle)).await;
            return Err(e);
        }
    };
    let step = app.password_step(headers).await?;
    let had_step = step.is_some();
    let signed_in = NewAuditEvent::new(AuditKind::SignIn)
        .user(&user.username, &user.handle)
        .credential(cred_id)
        .detail(format!("signCount {}", result.reported_sign_count));
    // Counter, audit event and session row in one statement or transaction.
    let outcome = app
        .accounts
        .finish_key_sign_in(
            &user,
            step,
            crate::account::VerifiedAssertion {
                credential_id: cred_id,
                new_sign_count: result.new_sign_count,
                reported_sign_count: result.reported_sign_count,
                backed_up: result.backed_up,
                ceremony: used,
            },
            signed_in,
        )
        .await?;
    let new_session = match outcome {
        KeySignIn::SignedIn(s) => s,
        KeySignIn::CounterRegression { current } => {
            let detail = format!("stored {current}, received {}", result.reported_sign_count);
            app.audit(
                NewAuditEvent::new(AuditKind::CounterRegression)
                    .user(&user.username, &user.handle)
                    .credential(cred_id)
                    .code("counter_regression")
                    .detail(&detail),
            )
            .await;
            let e = ApiError::from_code(
                "counter_regression",
                format!("signature counter did not increase ({detail}); the authenticator may be cloned"),
            );
            app.audit(failed(e.code, &e.message).user(&user.username, &user.handle)).await;
            return Err(e);
        }
        KeySignIn::CeremonyUsed => {
            return Err(ApiError::from_code("no_pending_ceremony", "this ceremony was used already"));
        }
        KeySignIn::Removed => {
            let e = ApiError::from_code("unknown_credential", "this security key was removed")
                .with("credentialId", b64url_encode(cred_id))
                .with("rpId", app.rp.config().rp_id.clone());
            app.audit(failed(e.code, &e.message).user(&user.username, &user.handle)).await;
            return Err(e);
        }
    };
    let cookie = app.session_cookie(headers, &new_session);
    if result.counter_regressed {
        app.audit(
            NewAuditEvent::new(AuditKind::CounterRegression)
                .user(&user.username, &user.handle)
                .credential(cred_id)
                .code("counter_regression")
                .detail(format!(
                    "stored {}, received {} (accepted by policy)",
                    stored.record.sign_count, result.reported_sign_count
                )),
        )
        .await;
    }
    let body = json!({
        "verified": true,
        "username": user.username,
        "credentialId": b64url_encode(cred_id),
        "signCount": result.reported_sign_count,
        "userVerified": result.user_verified,
    });
    let mut r = ok(&body);
    r.headers_mut().append(SET_COOKIE, cookie);
    if had_step {
        r.headers_mut().append(SET_COOKIE, app.cookie(headers, PASSWORD_STEP_COOKIE, None, Duration::ZERO));
    }
    Ok(r)
}

// ---------------------------------------------------------------- account

fn credential_json(c: &StoredCredential) -> Value {
    let r = &c.record;
    json!({
        "id": r.credential_id.encode(),
        "nickname": c.nickname,
        "createdAt": c.created_unix_ms,
        "lastUsedAt": c.last_used_unix_ms,
        "signCount": r.sign_count,
        "transports": r.transports,
        "aaguid": r.aaguid,
        "attestationFormat": r.attestation_format,
        "algorithm": r.algorithm.0,
        "userVerified": r.uv_initialized,
        "backupEligible": r.backup_eligible,
        "backedUp": r.backed_up,
        "discoverable": r.discoverable,
    })
}

async fn me<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    finish(
        async {
            let Authenticated { user, session } = app.require_session(&headers).await?;
            let creds = app.store().credentials_of_user(&user.handle).await?;
            Ok(ok(&json!({
                "username": user.username,
                "displayName": user.display_name,
                "userHandle": user.handle.encode(),
                "rpId": app.rp.config().rp_id,
                "createdAt": user.created_unix_ms,
                "signedInWith": session.method.as_str(),
                "sessionStrength": match session.method.strength() {
                    crate::account::Strength::Full => "full",
                    crate::account::Strength::FallbackOnly => "fallback_only",
                },
                "credentials": creds.iter().map(credential_json).collect::<Vec<_>>(),
            })))
        }
        .await,
    )
}

async fn activity<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    finish(
        async {
            let Authenticated { user, .. } = app.require_session(&headers).await?;
            let events = app
                .store()
                .audit_events(&AuditQuery { username: Some(user.username.clone()), limit: 20, ..Default::default() })
                .await?;
            let events: Vec<Value> = events
                .iter()
                .map(|e| {
                    json!({
                        "at": e.at_unix_ms,
                        "event": e.kind,
                        "credentialId": e.credential_id.as_ref().map(Base64Url::encode),
                        "code": e.code,
                        "detail": e.detail,
                    })
                })
                .collect();
            Ok(ok(&json!({ "events": events })))
        }
        .await,
    )
}

fn credential_path(p: Result<Path<String>, PathRejection>) -> Result<Vec<u8>, ApiError> {
    let Path(id) = p.map_err(|e| ApiError::malformed(format!("credential ID in the path: {e}")))?;
    match b64url_decode(&id) {
        Ok(b) if !b.is_empty() && b.len() <= crate::server::registration::MAX_CREDENTIAL_ID_LEN => Ok(b),
        _ => Err(ApiError::malformed("the credential ID in the path is not base64url")),
    }
}

#[derive(Deserialize)]
struct RenameBody {
    nickname: String,
}

async fn rename_credential<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(
        async {
            app.check_origin(&method, &headers)?;
            let Authenticated { user, .. } = app.require_session(&headers).await?;
            let id = credential_path(id)?;
            let body = read_body(&headers, body).await?;
            let req: RenameBody = parse_json(&body)?;
            let nickname = req.nickname.trim();
            validate_name("nickname", nickname)?;
            if !app.store().rename_credential(&user.handle, &id, nickname).await? {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_credential",
                    "you have no security key with that ID",
                ));
            }
            app.accounts
                .audit(
                    NewAuditEvent::new(AuditKind::CredentialRenamed)
                        .user(&user.username, &user.handle)
                        .credential(&id)
                        .detail(nickname),
                    true,
                )
                .await;
            Ok(ok(&json!({ "ok": true, "credentialId": b64url_encode(&id), "nickname": nickname })))
        }
        .await,
    )
}

async fn delete_credential<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            app.check_origin(&method, &headers)?;
            let auth = app.require_session(&headers).await?;
            let id = credential_path(id)?;
            app.accounts.remove_key(app.accounts.step_up(&auth)?, &id).await?;
            Ok(ok(&json!({ "ok": true, "credentialId": b64url_encode(&id) })))
        }
        .await,
    )
}

async fn logout<S: Store>(State(app): State<Arc<App<S>>>, method: Method, headers: HeaderMap) -> Response {
    let mut r = finish(
        async {
            app.check_origin(&method, &headers)?;
            if let Some(auth) = app.session(&headers).await? {
                app.accounts.sign_out(&auth).await?;
            }
            Ok(ok(&json!({ "ok": true })))
        }
        .await,
    );
    r.headers_mut().append(SET_COOKIE, app.cookie(&headers, SESSION_COOKIE, None, Duration::ZERO));
    r
}

async fn well_known<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    ok(&app.rp.well_known_webauthn())
}
