//! The fallback factors over HTTP: an authenticator app (TOTP) and recovery
//! codes, for when the security key is not at hand.
//!
//! | method, path | body | what it does |
//! |---|---|---|
//! | `GET /api/otp` | | the signed-in user's factors: `{"totp": {"enabled", "pending", "enabledAt", "lastUsedAt"}, "recoveryCodesRemaining"}` |
//! | `POST /api/otp/totp/enroll` | none or `{}` | a new pending secret: `{"secret", "otpauthUri", "qrSvg", "algorithm", "digits", "period", "issuer", "account", "expiresAt"}` |
//! | `POST /api/otp/totp/confirm` | `{"code"}` | enables TOTP; returns `{"recoveryCodes": [10 codes], "recoveryCodesRemaining"}`, shown once |
//! | `DELETE /api/otp/totp` | | disables TOTP (recovery codes stay) |
//! | `POST /api/otp/recovery/regenerate` | none or `{}` | replaces the recovery codes with 10 new ones, shown once |
//! | `POST /api/login/totp` | `{"username", "code"}` | signs in with an authenticator-app code; sets the session cookie |
//! | `POST /api/login/recovery` | `{"username", "code"}` | signs in with a recovery code (used up); sets the session cookie |
//!
//! The demo has no passwords, so the two sign-ins are single-factor and
//! guarded accordingly:
//!
//! - At most `MAX_FAILED_ATTEMPTS` failed attempts per username (TOTP and
//!   recovery codes together) within `ATTEMPT_WINDOW`; then 429
//!   `too_many_attempts` with `Retry-After` until the oldest attempt leaves
//!   the window. Attempts are counted before they are checked, so concurrent
//!   guesses cannot slip past the limit, and a successful sign-in clears the
//!   count. Unknown usernames are counted the same way.
//! - An unknown username, a user without an authenticator app or without
//!   recovery codes, a wrong code and a *replayed* code all get the same 400
//!   `invalid_code` with the same message, so the answer tells nothing about
//!   which usernames exist or whether a captured code was right. (The audit
//!   log records `code_replayed` for the replay, for the operator.) For the
//!   same reason the work done is the same: the same store lookups, a TOTP
//!   check against a dummy secret, and exactly as many Argon2id checks
//!   (against dummy hashes) as a user with a full set of recovery codes
//!   costs. (Key sign-in's `POST /api/login/options` does answer
//!   `unknown_user`, by the contract; these endpoints add no second oracle,
//!   and in particular none for who has which fallback factor.)
//! - Every comparison is constant time (those of `crate::otp`).
//! - A time step is accepted at most once per user by the store's
//!   compare-and-set, and a recovery code is consumed by one atomic delete,
//!   so replays fail also when they race.
//!
//! Enrollment stays pending until confirmed with a code, and expires after
//! `ENROLLMENT_TTL`. Confirming replaces the user's recovery codes.
//!
//! Starting an enrollment, new recovery codes and turning the app off need
//! a recent sign-in ([`HttpOptions::recent_sign_in`](super::HttpOptions::recent_sign_in);
//! older sessions get 403 `reauthentication_required`): each of them would
//! let whoever stole a session cookie in again later, or lock the owner out
//! of a factor.

use super::{ApiError, ApiResult, App, finish, ok, parse_json, read_body, validate_name};
use crate::otp::qr::Qr;
use crate::otp::recovery::RecoveryCodes;
use crate::otp::totp::Window;
use crate::otp::{Algorithm, Digits, KeyUri, OtpError, OtpSecret, Totp};
use crate::store::otp::TotpSecretRecord;
use crate::store::{AuditKind, NewAuditEvent, Store, UserRecord, ms};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// Recovery codes issued at a time.
const RECOVERY_CODE_COUNT: usize = 10;
/// Failed fallback sign-ins allowed per username within `ATTEMPT_WINDOW`.
const MAX_FAILED_ATTEMPTS: u32 = 5;
/// The throttling window.
const ATTEMPT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long an unconfirmed enrollment stays valid.
const ENROLLMENT_TTL: Duration = Duration::from_secs(10 * 60);
// The store purges unconfirmed enrollments only after they expired here.
const _: () = assert!(ENROLLMENT_TTL.as_secs() < crate::store::otp::PENDING_TOTP_MAX_AGE.as_secs());
/// Pixels per QR module in the SVG.
const QR_MODULE_PX: usize = 4;
/// Longest code input looked at (anything longer is simply wrong).
const MAX_CODE_CHARS: usize = 64;

/// The one answer to every refused fallback code.
const INVALID_CODE_MESSAGE: &str = "that username and code do not match (a code works only once; \
                                    for an authenticator app, wait for the next code)";

/// The fallback factors' routes, merged into the main router.
pub(super) fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/api/otp", get(status::<S>))
        .route("/api/otp/totp/enroll", post(enroll::<S>))
        .route("/api/otp/totp/confirm", post(confirm::<S>))
        .route("/api/otp/totp", delete(disable::<S>))
        .route("/api/otp/recovery/regenerate", post(regenerate::<S>))
        .route("/api/login/totp", post(login_totp::<S>))
        .route("/api/login/recovery", post(login_recovery::<S>))
}

// ---------------------------------------------------------------- helpers

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!("{what}: {e}");
    ApiError::from_code("internal_error", format!("{what} failed"))
}

fn invalid_code() -> ApiError {
    ApiError::from_code("invalid_code", INVALID_CODE_MESSAGE)
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Bodies of the calls that need none: empty, or a JSON object.
fn optional_object(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let _: serde_json::Map<String, serde_json::Value> = parse_json(body)?;
    Ok(())
}

/// A submitted code without the spaces and hyphens people type.
fn clean_code(code: &str) -> Zeroizing<String> {
    Zeroizing::new(code.chars().filter(|c| !c.is_whitespace() && *c != '-').take(MAX_CODE_CHARS + 1).collect())
}

/// The generator of a stored secret.
fn totp_of(r: &TotpSecretRecord) -> Result<Totp, ApiError> {
    let corrupt = |e: String| ApiError::from_code("storage_corrupt", format!("stored TOTP parameters: {e}"));
    let secret = OtpSecret::from_bytes(&r.secret).map_err(|e| corrupt(e.to_string()))?;
    let alg: Algorithm = r.algorithm.parse().map_err(|e: OtpError| corrupt(e.to_string()))?;
    let digits = Digits::new(i64::from(r.digits)).map_err(|e| corrupt(e.to_string()))?;
    let period = i64::try_from(r.period).map_err(|e| corrupt(e.to_string()))?;
    Totp::new(secret, alg, digits, period).map_err(|e| corrupt(e.to_string()))
}

fn pending_expired(r: &TotpSecretRecord, now: SystemTime) -> bool {
    let ttl = i64::try_from(ENROLLMENT_TTL.as_millis()).unwrap_or(i64::MAX);
    r.created_unix_ms.saturating_add(ttl) < ms(now)
}

/// The issuer shown in the authenticator app: the relying party's name
/// (`:` is not allowed in an otpauth issuer).
fn issuer<S: Store>(app: &App<S>) -> String {
    let name = app.rp.config().rp_name.replace(':', " ");
    if name.trim().is_empty() { app.rp.config().rp_id.clone() } else { name.trim().to_owned() }
}

/// Generate a fresh set of recovery codes (slow hashes: off the async threads).
async fn new_recovery_codes() -> Result<(Vec<Zeroizing<String>>, RecoveryCodes), ApiError> {
    tokio::task::spawn_blocking(|| RecoveryCodes::generate(RECOVERY_CODE_COUNT))
        .await
        .map_err(|e| internal("recovery code generation", e))?
        .map_err(|e| internal("recovery code generation", e))
}

/// A hash of a random code nobody knows, checked in place of missing ones so
/// every recovery sign-in costs the same.
fn dummy_hash() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY.get_or_init(|| RecoveryCodes::generate(1).ok().and_then(|(_, set)| set.hashes.into_iter().next())).as_deref()
}

/// The id of the stored code `code` matches, checking every stored hash and
/// dummies up to `RECOVERY_CODE_COUNT` (constant work per attempt).
fn match_recovery_code(code: &str, stored: &[(i64, String)]) -> Option<i64> {
    let mut found = None;
    for (id, hash) in stored {
        let mut one = RecoveryCodes { hashes: vec![hash.clone()] };
        if one.redeem(code).is_ok() && found.is_none() {
            found = Some(*id);
        }
    }
    if let Some(dummy) = dummy_hash() {
        for _ in stored.len()..RECOVERY_CODE_COUNT {
            let _ = RecoveryCodes { hashes: vec![dummy.to_owned()] }.redeem(code);
        }
    }
    found
}

fn user_event(kind: AuditKind, user: &UserRecord) -> NewAuditEvent {
    NewAuditEvent::new(kind).user(&user.username, &user.handle)
}

// ---------------------------------------------------------------- account: status and enrollment

async fn status<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    finish(
        async {
            let (_, user) = app.require_session(&headers).await?;
            let totp = app.store.totp(&user.handle).await?;
            let now = app.now();
            let pending = app.store.pending_totp(&user.handle).await?.filter(|p| !pending_expired(p, now));
            let remaining = app.store.recovery_code_hashes(&user.handle).await?.len();
            Ok(ok(&json!({
                "totp": {
                    "enabled": totp.is_some(),
                    "pending": pending.is_some(),
                    "enabledAt": totp.as_ref().map(|t| t.created_unix_ms),
                    "lastUsedAt": totp.as_ref().and_then(|t| t.last_used_unix_ms),
                },
                "recoveryCodesRemaining": remaining,
            })))
        }
        .await,
    )
}

async fn enroll<S: Store>(State(app): State<Arc<App<S>>>, method: Method, headers: HeaderMap, body: Body) -> Response {
    finish(
        async {
            app.check_origin(&method, &headers)?;
            let (_, user) = app.require_recent_session(&headers).await?;
            let body = read_body(&headers, body).await?;
            optional_object(&body)?;
            if app.store.totp(&user.handle).await?.is_some() {
                return Err(ApiError::from_code(
                    "totp_already_enabled",
                    "an authenticator app is already set up; turn it off first to set up another",
                ));
            }
            let secret = OtpSecret::generate().map_err(|e| internal("secret generation", e))?;
            let issuer = issuer(&app);
            let account = user.username.trim().to_owned();
            let uri = Zeroizing::new(
                KeyUri::new_totp(Some(issuer.as_str()), &account, secret.clone())
                    .to_uri()
                    .map_err(|e| internal("otpauth URI", e))?,
            );
            let svg = Qr::new(&uri).map_err(|e| internal("QR code", e))?.to_svg(QR_MODULE_PX);
            let now = app.now();
            let record = TotpSecretRecord {
                secret: Zeroizing::new(secret.as_bytes().to_vec()),
                algorithm: Algorithm::Sha1.as_str().to_owned(),
                digits: u32::from(Digits::SIX.get()),
                period: Totp::DEFAULT_PERIOD,
                created_unix_ms: ms(now),
                last_step: None,
                last_used_unix_ms: None,
            };
            app.store.put_pending_totp(&user.handle, &record).await?;
            app.audit(user_event(AuditKind::TotpEnrollmentStarted, &user)).await;
            let expires = record.created_unix_ms.saturating_add(i64::try_from(ENROLLMENT_TTL.as_millis()).unwrap_or(0));
            let base32 = Zeroizing::new(secret.to_base32());
            Ok(ok(&json!({
                "secret": base32.as_str(),
                "otpauthUri": uri.as_str(),
                "qrSvg": svg,
                "algorithm": record.algorithm,
                "digits": record.digits,
                "period": record.period,
                "issuer": issuer,
                "account": account,
                "expiresAt": expires,
            })))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

async fn confirm<S: Store>(State(app): State<Arc<App<S>>>, method: Method, headers: HeaderMap, body: Body) -> Response {
    finish(
        async {
            app.check_origin(&method, &headers)?;
            let (_, user) = app.require_session(&headers).await?;
            let body = read_body(&headers, body).await?;
            let req: CodeBody = parse_json(&body)?;
            let code = clean_code(&req.code);
            drop(Zeroizing::new(req.code));
            let now = app.now();
            let no_pending = || {
                ApiError::from_code(
                    "no_pending_enrollment",
                    "no authenticator app set-up is waiting for a code (it expired or was finished); start again",
                )
            };
            let pending = app
                .store
                .pending_totp(&user.handle)
                .await?
                .filter(|p| !pending_expired(p, now))
                .ok_or_else(no_pending)?;
            let totp = totp_of(&pending)?;
            let Ok(step) = totp.verify(&code, unix_secs(now), Window::default(), None) else {
                return Err(ApiError::from_code(
                    "invalid_code",
                    "that code is not the one your authenticator app shows now; check the app's clock and try again",
                ));
            };
            let (codes, set) = new_recovery_codes().await?;
            if !app.store.confirm_totp(&user.handle, &pending.secret, step, &set.hashes, now).await? {
                return Err(no_pending());
            }
            app.audit(user_event(AuditKind::TotpEnabled, &user)).await;
            app.audit(user_event(AuditKind::RecoveryCodesGenerated, &user).detail(format!("{} codes", codes.len())))
                .await;
            let shown: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
            Ok(ok(&json!({ "ok": true, "recoveryCodes": shown, "recoveryCodesRemaining": codes.len() })))
        }
        .await,
    )
}

async fn disable<S: Store>(State(app): State<Arc<App<S>>>, method: Method, headers: HeaderMap) -> Response {
    finish(
        async {
            app.check_origin(&method, &headers)?;
            let (_, user) = app.require_recent_session(&headers).await?;
            if !app.store.delete_totp(&user.handle).await? {
                return Err(ApiError::from_code("totp_not_enabled", "no authenticator app is set up"));
            }
            app.audit(user_event(AuditKind::TotpDisabled, &user)).await;
            Ok(ok(&json!({ "ok": true })))
        }
        .await,
    )
}

async fn regenerate<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(
        async {
            app.check_origin(&method, &headers)?;
            let (_, user) = app.require_recent_session(&headers).await?;
            let body = read_body(&headers, body).await?;
            optional_object(&body)?;
            let (codes, set) = new_recovery_codes().await?;
            app.store.replace_recovery_codes(&user.handle, &set.hashes, app.now()).await?;
            app.audit(user_event(AuditKind::RecoveryCodesGenerated, &user).detail(format!("{} codes", codes.len())))
                .await;
            let shown: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
            Ok(ok(&json!({ "ok": true, "recoveryCodes": shown, "recoveryCodesRemaining": codes.len() })))
        }
        .await,
    )
}

// ---------------------------------------------------------------- fallback sign-in

#[derive(Deserialize)]
struct FallbackLoginBody {
    username: String,
    code: String,
}

/// Which fallback factor a sign-in uses.
#[derive(Clone, Copy)]
enum Factor {
    Totp,
    Recovery,
}

impl Factor {
    fn describe(self) -> &'static str {
        match self {
            Factor::Totp => "authenticator app code",
            Factor::Recovery => "recovery code",
        }
    }
}

/// A parsed fallback sign-in request, the throttle passed and the user looked up.
struct Attempt {
    username: String,
    code: Zeroizing<String>,
    subject: String,
    user: Option<UserRecord>,
}

/// Everything both fallback sign-ins do before checking the code: origin,
/// body, throttle, user. `Err(Ok(response))` is a finished refusal (429).
async fn begin_attempt<S: Store>(
    app: &App<S>,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    factor: Factor,
) -> Result<Attempt, ApiResult> {
    app.check_origin(method, headers).map_err(Err)?;
    let body = read_body(headers, body).await.map_err(Err)?;
    let req: FallbackLoginBody = parse_json(&body).map_err(Err)?;
    let code = match factor {
        Factor::Totp => clean_code(&req.code),
        Factor::Recovery => Zeroizing::new(req.code.chars().take(MAX_CODE_CHARS + 1).collect()),
    };
    drop(Zeroizing::new(req.code));
    validate_name("username", &req.username).map_err(Err)?;
    let username = req.username;
    let subject = format!("login:{username}");
    let now = app.now();
    let attempts = app.store.count_otp_attempt(&subject, now, ATTEMPT_WINDOW).await.map_err(|e| Err(e.into()))?;
    let user = app.store.user_by_username(&username).await.map_err(|e| Err(e.into()))?;
    if attempts.count > MAX_FAILED_ATTEMPTS {
        let ends = attempts.oldest_unix_ms.saturating_add(i64::try_from(ATTEMPT_WINDOW.as_millis()).unwrap_or(0));
        let wait_s = (ends.saturating_sub(ms(now)) / 1000).max(1);
        let e = ApiError::from_code(
            "too_many_attempts",
            format!("too many wrong codes for this username; try again in {} minutes", (wait_s + 59) / 60),
        );
        app.audit(failed_event(user.as_ref(), &username, factor, e.code)).await;
        let mut r = e.into_response();
        if let Ok(v) = HeaderValue::from_str(&wait_s.to_string()) {
            r.headers_mut().insert(RETRY_AFTER, v);
        }
        return Err(Ok(r));
    }
    Ok(Attempt { username, code, subject, user })
}

fn failed_event(user: Option<&UserRecord>, username: &str, factor: Factor, code: &str) -> NewAuditEvent {
    let e = NewAuditEvent::new(AuditKind::SignInFailed).code(code);
    match user {
        Some(u) => e.user(&u.username, &u.handle).detail(factor.describe()),
        // Not filed under the name: whoever registers it later should not see these.
        None => e.detail(format!("{} for unknown username {username:?}", factor.describe())),
    }
}

/// Refuse a fallback sign-in (the attempt stays counted).
async fn refuse<S: Store>(app: &App<S>, a: &Attempt, factor: Factor, logged_code: &str) -> ApiResult {
    app.audit(failed_event(a.user.as_ref(), &a.username, factor, logged_code)).await;
    Err(invalid_code())
}

/// Accept a fallback sign-in: forget the attempts, start the session.
async fn accept<S: Store>(
    app: &App<S>,
    headers: &HeaderMap,
    a: &Attempt,
    user: &UserRecord,
    factor: Factor,
    extra: serde_json::Value,
) -> ApiResult {
    app.store.clear_otp_attempts(&a.subject).await?;
    let cookie = app.start_session(headers, &user.handle).await?;
    app.audit(user_event(AuditKind::SignIn, user).detail(factor.describe())).await;
    let method = match factor {
        Factor::Totp => "totp",
        Factor::Recovery => "recovery_code",
    };
    let mut body = json!({ "verified": true, "username": user.username, "method": method });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let mut r = ok(&body);
    r.headers_mut().append(SET_COOKIE, cookie);
    Ok(r)
}

async fn login_totp<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let a = match begin_attempt(&app, &method, &headers, body, Factor::Totp).await {
        Ok(a) => a,
        Err(r) => return finish(r),
    };
    finish(login_totp_inner(&app, &headers, &a).await)
}

async fn login_totp_inner<S: Store>(app: &App<S>, headers: &HeaderMap, a: &Attempt) -> ApiResult {
    let now = app.now();
    let t = unix_secs(now);
    // Unknown users cost the same lookup (of a handle no user has).
    let stored = match &a.user {
        Some(u) => app.store.totp(&u.handle).await?,
        None => app.store.totp(&[]).await?.and(None),
    };
    let (Some(user), Some(stored)) = (&a.user, stored) else {
        // Same work as a real check, then the same answer as a wrong code.
        if let Ok(s) = OtpSecret::from_bytes(&[0x5a; OtpSecret::DEFAULT_LEN])
            && let Ok(dummy) = Totp::new(s, Algorithm::Sha1, Digits::SIX, 30)
        {
            let _ = dummy.verify(&a.code, t, Window::default(), None);
        }
        return refuse(app, a, Factor::Totp, "invalid_code").await;
    };
    let totp = totp_of(&stored)?;
    match totp.verify(&a.code, t, Window::default(), stored.last_step) {
        Ok(step) => {
            // Compare-and-set: of concurrent uses of one code, one wins.
            if app.store.advance_totp_step(&user.handle, step, now).await? {
                accept(app, headers, a, user, Factor::Totp, json!({})).await
            } else {
                refuse(app, a, Factor::Totp, "code_replayed").await
            }
        }
        Err(OtpError::Replayed) => refuse(app, a, Factor::Totp, "code_replayed").await,
        Err(_) => refuse(app, a, Factor::Totp, "invalid_code").await,
    }
}

async fn login_recovery<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let a = match begin_attempt(&app, &method, &headers, body, Factor::Recovery).await {
        Ok(a) => a,
        Err(r) => return finish(r),
    };
    finish(login_recovery_inner(&app, &headers, &a).await)
}

async fn login_recovery_inner<S: Store>(app: &App<S>, headers: &HeaderMap, a: &Attempt) -> ApiResult {
    // Unknown users cost the same lookup (of a handle no user has).
    let stored = match &a.user {
        Some(u) => app.store.recovery_code_hashes(&u.handle).await?,
        None => app.store.recovery_code_hashes(&[]).await?.into_iter().take(0).collect(),
    };
    let remaining = stored.len();
    let pairs: Vec<(i64, String)> = stored.into_iter().map(|h| (h.id, h.hash)).collect();
    let code = a.code.clone();
    let matched = tokio::task::spawn_blocking(move || match_recovery_code(&code, &pairs))
        .await
        .map_err(|e| internal("recovery code check", e))?;
    let (Some(user), Some(id)) = (&a.user, matched) else {
        return refuse(app, a, Factor::Recovery, "invalid_code").await;
    };
    // One atomic delete: of concurrent uses of one code, one wins.
    if !app.store.consume_recovery_code(&user.handle, id, app.now()).await? {
        return refuse(app, a, Factor::Recovery, "code_replayed").await;
    }
    let left = remaining.saturating_sub(1);
    app.audit(user_event(AuditKind::RecoveryCodeUsed, user).detail(format!("{left} left"))).await;
    accept(app, headers, a, user, Factor::Recovery, json!({ "recoveryCodesRemaining": left })).await
}
