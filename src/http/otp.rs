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
//! | `POST /api/login/totp` | `{"username"?, "code"}` | completes a password sign-in (the password-step cookie), or signs in with the code alone on an account without a password; sets the session cookie |
//! | `POST /api/login/recovery` | `{"username"?, "code"}` | the same with a recovery code (used up) |
//!
//! The policy is the account service's (`crate::account`: `policy.rs`,
//! `flows.rs`, `throttle.rs`); this file parses, calls it and maps its
//! errors:
//!
//! - A code alone, for an account with a password, and for an unknown
//!   username, is 401 `password_required` (no code or Argon2 work is spent
//!   on it). A wrong or replayed code is 400 `invalid_code`, one message for
//!   both.
//! - A session made by a code alone may add a key, nothing else that needs
//!   a recent sign-in (403 `reauthentication_required`).
//! - Throttled per account and per client address: 429 `too_many_attempts`
//!   with `Retry-After`; 100 failures in a row lock the codes and the
//!   password until a key sign-in.
//! - Starting and confirming an enrollment, new recovery codes and turning
//!   the app off need a recent full sign-in ([`StepUp`](crate::account::StepUp));
//!   confirming is throttled like a sign-in. Each ends the account's other
//!   sessions (turning the app on or off, new codes).
//! - TOTP secrets are stored sealed (AES-256-GCM, `account::secrets`).

use super::account::client_addr;
use super::{ApiError, ApiResult, App, PASSWORD_STEP_COOKIE, finish, ok, parse_json, read_body};
use crate::store::Store;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{Extensions, HeaderMap, Method};
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

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

/// Bodies of the calls that need none: empty, or a JSON object.
fn optional_object(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let _: serde_json::Map<String, serde_json::Value> = parse_json(body)?;
    Ok(())
}

async fn status<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    finish(
        async {
            let auth = app.require_session(&headers).await?;
            let s = app.accounts.otp_status(&auth).await?;
            Ok(ok(&json!({
                "totp": {
                    "enabled": s.totp_enabled,
                    "pending": s.totp_pending,
                    "enabledAt": s.totp_enabled_ms,
                    "lastUsedAt": s.totp_last_used_ms,
                },
                "recoveryCodesRemaining": s.recovery_codes_remaining,
                "passwordSet": s.password_set,
            })))
        }
        .await,
    )
}

async fn enroll<S: Store>(State(app): State<Arc<App<S>>>, method: Method, headers: HeaderMap, body: Body) -> Response {
    finish(
        async {
            app.check_origin(&method, &headers)?;
            let auth = app.require_session(&headers).await?;
            let proof = app.accounts.step_up(&auth)?;
            let body = read_body(&headers, body).await?;
            optional_object(&body)?;
            let e = app.accounts.totp_enroll(proof).await?;
            Ok(ok(&json!({
                "secret": e.secret_base32.as_str(),
                "otpauthUri": e.otpauth_uri.as_str(),
                "qrSvg": e.qr_svg,
                "algorithm": e.algorithm,
                "digits": e.digits,
                "period": e.period,
                "issuer": e.issuer,
                "account": e.account,
                "expiresAt": e.expires_ms,
            })))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

fn codes_reply(codes: &[Zeroizing<String>]) -> Response {
    let shown: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    ok(&json!({ "ok": true, "recoveryCodes": shown, "recoveryCodesRemaining": codes.len() }))
}

async fn confirm<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    ext: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(
        async {
            app.check_origin(&method, &headers)?;
            let auth = app.require_session(&headers).await?;
            let proof = app.accounts.step_up(&auth)?;
            let body = read_body(&headers, body).await?;
            let req: CodeBody = parse_json(&body)?;
            let code = Zeroizing::new(req.code);
            let codes = app.accounts.totp_confirm(proof, &code, client_addr(&ext)).await?;
            Ok(codes_reply(&codes))
        }
        .await,
    )
}

async fn disable<S: Store>(State(app): State<Arc<App<S>>>, method: Method, headers: HeaderMap) -> Response {
    finish(
        async {
            app.check_origin(&method, &headers)?;
            let auth = app.require_session(&headers).await?;
            app.accounts.totp_disable(app.accounts.step_up(&auth)?).await?;
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
            let auth = app.require_session(&headers).await?;
            let proof = app.accounts.step_up(&auth)?;
            let body = read_body(&headers, body).await?;
            optional_object(&body)?;
            let codes = app.accounts.regenerate_recovery_codes(proof).await?;
            Ok(codes_reply(&codes))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct FallbackLoginBody {
    #[serde(default)]
    username: Option<String>,
    code: String,
}

#[derive(Clone, Copy)]
enum Factor {
    Totp,
    Recovery,
}

async fn login_code<S: Store>(
    app: &App<S>,
    method: &Method,
    ext: &Extensions,
    headers: &HeaderMap,
    body: Body,
    factor: Factor,
) -> ApiResult {
    app.check_origin(method, headers)?;
    let body = read_body(headers, body).await?;
    let req: FallbackLoginBody = parse_json(&body)?;
    let code = Zeroizing::new(req.code);
    let step = app.password_step(headers).await?;
    let had_step = step.is_some();
    let addr = client_addr(ext);
    let username = req.username.as_deref();
    let (s, extra) = match factor {
        Factor::Totp => (app.accounts.login_totp(step, username, &code, addr).await?, json!({})),
        Factor::Recovery => {
            let (s, left) = app.accounts.login_recovery(step, username, &code, addr).await?;
            (s, json!({ "recoveryCodesRemaining": left }))
        }
    };
    let method_name = s.session.method.as_str();
    let mut body = json!({ "verified": true, "username": s.user.username, "method": method_name });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let mut r = ok(&body);
    r.headers_mut().append(SET_COOKIE, app.session_cookie(headers, &s));
    if had_step {
        r.headers_mut().append(SET_COOKIE, app.cookie(headers, PASSWORD_STEP_COOKIE, None, Duration::ZERO));
    }
    Ok(r)
}

async fn login_totp<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    ext: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(login_code(&app, &method, &ext, &headers, body, Factor::Totp).await)
}

async fn login_recovery<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    ext: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(login_code(&app, &method, &ext, &headers, body, Factor::Recovery).await)
}
