//! The password and the sessions over HTTP (CONTRACTS §2.1): a thin
//! adapter over [`crate::account::AccountService`].
//!
//! | method, path | body | what it does |
//! |---|---|---|
//! | `POST /api/account/password` | `{"password"}` | sets or changes the password (needs a recent full sign-in); ends the other sessions: `{"ok": true}` |
//! | `DELETE /api/account/password` | | removes it (the same); `{"ok": true}` |
//! | `POST /api/login/password` | `{"username", "password"}` | step one of a password sign-in: `{"verified": true, "username", "secondFactor": "required", "methods": [...]}` and an HttpOnly cookie that the second factor (`/api/login/verify`, `/api/login/totp`, `/api/login/recovery`) completes within 5 minutes; never a session by itself |
//! | `GET /api/sessions` | | `{"sessions": [{"id", "createdAt", "lastSeenAt", "current", "method"}]}` |
//! | `DELETE /api/sessions/{id}` | | ends that session of the signed-in user |
//!
//! Errors: `invalid_credentials` (401; a wrong password and an unknown
//! username alike), `too_many_attempts` (429, `Retry-After`), `overloaded`
//! (503, `Retry-After`: every password worker is busy),
//! `password_too_short` / `password_too_long` / `password_too_common`
//! (400), `reauthentication_required` (403), `not_found` (404, no such session).

use super::{ApiError, ApiResult, App, HttpOptions, PASSWORD_STEP_COOKIE, finish, ok, parse_json, read_body};
use crate::account::{AccountConfig, SecretKeyring};
use crate::proto::webauthn::{b64url_decode, b64url_encode};
use crate::server::RelyingParty;
use crate::store::Store;
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, State, rejection::PathRejection};
use axum::http::header::SET_COOKIE;
use axum::http::{Extensions, HeaderMap, Method};
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

pub(super) fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/api/account/password", post(set_password::<S>).delete(remove_password::<S>))
        .route("/api/login/password", post(login_password::<S>))
        .route("/api/sessions", get(list_sessions::<S>))
        .route("/api/sessions/{id}", delete(end_session::<S>))
}

/// The keyring of the options, or a fresh one in memory (with a warning).
pub(super) fn secret_key(opts: &HttpOptions) -> Arc<SecretKeyring> {
    if let Some(k) = &opts.secret_key {
        return k.clone();
    }
    match SecretKeyring::ephemeral() {
        Ok(k) => {
            tracing::warn!(
                "no secret key given (HttpOptions::secret_key): TOTP secrets and sessions are sealed under a key \
                 held in memory only, and will not open after a restart"
            );
            Arc::new(k)
        }
        Err(e) => {
            // Only a failing random source gets here, and then sessions
            // cannot be made either; seal under a key from the clock.
            tracing::error!("no secret key could be made: {e}");
            let t =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            let k = crate::crypto::default_provider().sha256(&[&t.to_le_bytes(), &std::process::id().to_le_bytes()]);
            Arc::new(SecretKeyring::from_key(Zeroizing::new(k)))
        }
    }
}

/// The account service's settings from the router's.
pub(super) fn config(rp: &RelyingParty, opts: &HttpOptions) -> AccountConfig {
    let name = rp.config().rp_name.trim();
    AccountConfig {
        session_ttl: opts.session_ttl,
        recent_sign_in: opts.recent_sign_in,
        audit_retention: opts.audit_retention,
        password_concurrency: opts
            .password_concurrency
            .unwrap_or_else(|| AccountConfig::default().password_concurrency),
        issuer: if name.is_empty() { rp.config().rp_id.clone() } else { name.to_owned() },
        clock: opts.clock.clone(),
        ..AccountConfig::default()
    }
}

/// The client's address, when the server was started with connection info
/// (`into_make_service_with_connect_info::<SocketAddr>()`); without it the
/// per-address throttle is off (the per-account one still holds).
pub(super) fn client_addr(ext: &Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}

async fn set_password<S: Store>(
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
            let body = Zeroizing::new(read_body(&headers, body).await?);
            let req: PasswordBody = parse_json(&body)?;
            let password = Zeroizing::new(req.password);
            app.accounts.set_password(proof, &password).await?;
            Ok(ok(&json!({ "ok": true })))
        }
        .await,
    )
}

async fn remove_password<S: Store>(State(app): State<Arc<App<S>>>, method: Method, headers: HeaderMap) -> Response {
    finish(
        async {
            app.check_origin(&method, &headers)?;
            let auth = app.require_session(&headers).await?;
            app.accounts.remove_password(app.accounts.step_up(&auth)?).await?;
            Ok(ok(&json!({ "ok": true })))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct LoginPasswordBody {
    username: String,
    password: String,
}

async fn login_password<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    ext: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(login_password_inner(&app, &method, &ext, &headers, body).await)
}

async fn login_password_inner<S: Store>(
    app: &App<S>,
    method: &Method,
    ext: &Extensions,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    app.check_origin(method, headers)?;
    let body = Zeroizing::new(read_body(headers, body).await?);
    let req: LoginPasswordBody = parse_json(&body)?;
    let password = Zeroizing::new(req.password);
    let step = app.accounts.login_password(&req.username, &password, client_addr(ext)).await?;
    let methods: Vec<&str> = app.accounts.second_factors(step.user()).await?.into_iter().map(|m| m.as_str()).collect();
    let mut r = ok(&json!({
        "verified": true,
        "username": step.user().username,
        "secondFactor": "required",
        "methods": methods,
        "expiresAt": step.expires_ms(),
    }));
    let window = app.accounts.config().second_factor_window;
    r.headers_mut().append(SET_COOKIE, app.cookie(headers, PASSWORD_STEP_COOKIE, Some(step.token()), window));
    Ok(r)
}

async fn list_sessions<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    finish(
        async {
            let auth = app.require_session(&headers).await?;
            let sessions: Vec<serde_json::Value> = app
                .accounts
                .sessions(&auth)
                .await?
                .into_iter()
                .map(|(r, current)| {
                    json!({
                        "id": b64url_encode(&r.id),
                        "createdAt": r.created_unix_ms,
                        "lastSeenAt": r.last_seen_unix_ms,
                        "expiresAt": r.expires_unix_ms,
                        "current": current,
                        "method": r.method,
                    })
                })
                .collect();
            Ok(ok(&json!({ "sessions": sessions })))
        }
        .await,
    )
}

async fn end_session<S: Store>(
    State(app): State<Arc<App<S>>>,
    method: Method,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let mut ended_own = false;
    let mut r = finish(
        async {
            app.check_origin(&method, &headers)?;
            let auth = app.require_session(&headers).await?;
            let Path(id) = id.map_err(|e| ApiError::malformed(format!("session ID in the path: {e}")))?;
            let id = match b64url_decode(&id) {
                Ok(b) if b.len() == 32 => b,
                _ => return Err(ApiError::malformed("the session ID in the path is not a base64url session ID")),
            };
            app.accounts.end_session(&auth, &id).await?;
            ended_own = id == auth.session.id;
            Ok(ok(&json!({ "ok": true })))
        }
        .await,
    );
    if ended_own {
        r.headers_mut().append(SET_COOKIE, app.cookie(&headers, super::SESSION_COOKIE, None, Duration::ZERO));
    }
    r
}
