//! Sign-in flows as typed states (the model: rustls's handshake states).
//!
//! ```text
//!            login_password ──► PasswordAccepted ──┬─ login_totp(Some(step))      ─► NewSession (password+totp)
//!                               (second factor     ├─ login_recovery(Some(step))  ─► NewSession (password+recovery_code)
//!                                pending, 5 min)   └─ finish_key_sign_in(Some(step)) ─► NewSession (password+security_key)
//!  key assertion ───────────────────────────────────── finish_key_sign_in(None)   ─► NewSession (security_key)
//!  code alone, account without a password ────────── login_totp(None) / login_recovery(None) ─► NewSession (fallback only)
//! ```
//!
//! A [`PasswordAccepted`] is not a session: it is consumed by the call that
//! completes it and can do nothing else. What a [`NewSession`] may do is
//! decided by its method (see `policy.rs`).
//!
//! Every sign-in is written with its audit events in one transaction: a
//! key's (counter, event, session), a TOTP code's (time step, session,
//! event) and a recovery code's (code used up, session, both events). A
//! code whose sign-in cannot be recorded stays unused.
//!
//! Unknown usernames: the password step verifies against a dummy hash (the
//! work of a wrong password), with the same reads and the same failure
//! write as a known account (on a handle no account has), and answers
//! `invalid_credentials`; a code
//! without the password step answers `password_required`, as for every
//! account with a password, before any code or Argon2 work, so neither
//! endpoint tells who has an account nor turns unknown names into Argon2
//! work.

use super::password::Password;
use super::policy::{Authenticated, KeyEnrollment, SignInMethod};
use super::sessions::{self, Session};
use super::{AccountError, AccountService, secrets, throttle};
use crate::otp::totp::Window;
use crate::otp::{Algorithm, Digits, OtpError, OtpSecret, Totp};
use crate::store::account::{CodeSignInWrites, SessionRow, SignInClears, UsedCeremony};
use crate::store::otp::TotpSecretRecord;
use crate::store::{AuditKind, NewAuditEvent, SignCountUpdate, Store, StoredCredential, UserRecord, ms};
use std::net::IpAddr;
use zeroize::Zeroizing;

/// Longest code input looked at (anything longer is simply wrong).
const MAX_CODE_CHARS: usize = 64;
/// The handle the lookups and writes of an unknown username go to: no
/// account has it (handles are 1 to 64 bytes).
const NO_ACCOUNT: &[u8] = &[];
/// Recovery codes issued at a time.
pub(crate) const RECOVERY_CODE_COUNT: usize = 10;

/// A password was accepted; a second factor is pending. Not a session.
#[derive(Debug, Clone)]
pub struct PasswordAccepted {
    user: UserRecord,
    token: Vec<u8>,
    expires_ms: i64,
}

impl PasswordAccepted {
    /// The account.
    pub fn user(&self) -> &UserRecord {
        &self.user
    }
    /// The signed token that carries this state to the next request (the
    /// HTTP adapter puts it in an HttpOnly cookie).
    pub fn token(&self) -> &[u8] {
        &self.token
    }
    /// When the second factor must have come, Unix ms.
    pub fn expires_ms(&self) -> i64 {
        self.expires_ms
    }
}

/// The second factors an account offers after its password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// A security key.
    SecurityKey,
    /// An authenticator app code.
    Totp,
    /// A recovery code.
    RecoveryCode,
}

impl SecondFactor {
    /// The stable name (`methods` of `POST /api/login/password`).
    pub fn as_str(self) -> &'static str {
        match self {
            SecondFactor::SecurityKey => "security_key",
            SecondFactor::Totp => "totp",
            SecondFactor::RecoveryCode => "recovery_code",
        }
    }
}

/// A completed sign-in: a session, its token, its user.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The token for the session cookie.
    pub token: Vec<u8>,
    /// What the token says.
    pub session: Session,
    /// The user.
    pub user: UserRecord,
}

/// A verified key assertion, as the ceremony left it, to record.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedAssertion<'a> {
    /// The credential.
    pub credential_id: &'a [u8],
    /// The counter to store (compare-and-set).
    pub new_sign_count: u32,
    /// The counter the authenticator reported.
    pub reported_sign_count: u32,
    /// The backup state it reported.
    pub backed_up: bool,
    /// The sealed ceremony the assertion answered, when its state came from
    /// the client (the ceremony cookie): used up in the sign-in's own write.
    pub ceremony: Option<&'a UsedCeremony>,
}

/// How a key sign-in's recording went.
#[derive(Debug)]
pub enum KeySignIn {
    /// Recorded; the session is made.
    SignedIn(NewSession),
    /// The stored counter was at or above the one reported: a clone is likely.
    CounterRegression {
        /// The counter as stored.
        current: u32,
    },
    /// The credential was removed meanwhile.
    Removed,
    /// The sealed ceremony was used already (a replayed ceremony cookie, or
    /// a concurrent verify of the same one won): nothing was recorded.
    CeremonyUsed,
}

/// Whom a new key is for.
#[derive(Debug)]
pub enum KeyRegistration {
    /// A new account with this (normalized) username.
    NewAccount {
        /// The username.
        username: String,
    },
    /// The caller's own account (signed in, recently).
    OwnAccount {
        /// The user.
        user: UserRecord,
        /// Its keys (to exclude).
        credentials: Vec<StoredCredential>,
    },
}

/// What an accepted code changes.
#[derive(Debug, Clone, Copy)]
enum CodeUse {
    /// The TOTP time step spent (compare-and-set).
    TotpStep(u64),
    /// The recovery code (row id) used up.
    RecoveryCode(i64),
}

fn clean_code(code: &str) -> Zeroizing<String> {
    Zeroizing::new(code.chars().filter(|c| !c.is_whitespace() && *c != '-').take(MAX_CODE_CHARS + 1).collect())
}

pub(crate) fn unix_secs(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
}

fn user_event(kind: AuditKind, user: &UserRecord) -> NewAuditEvent {
    NewAuditEvent::new(kind).user(&user.username, &user.handle)
}

impl<S: Store> AccountService<S> {
    // ------------------------------------------------------------ sessions

    /// Sign a token and make the row of a new session (not stored yet).
    pub(crate) async fn prepare_session(
        &self,
        user: &UserRecord,
        method: SignInMethod,
    ) -> Result<(NewSession, SessionRow), AccountError> {
        let secret = self.session_secret().await?;
        let mut nonce = [0u8; 16];
        self.provider()
            .fill_random(&mut nonce)
            .map_err(|_| AccountError::Internal("the random source failed".into()))?;
        let now = self.now();
        let expires = now.checked_add(self.config().session_ttl).unwrap_or(now);
        let (now_ms, expires_ms) = (ms(now), ms(expires));
        let (token, id) = sessions::issue(self.provider(), secret, &user.handle, method, &nonce, now_ms, expires_ms)
            .ok_or_else(|| AccountError::Internal("the user handle is not 1 to 64 bytes".into()))?;
        let row = SessionRow {
            id: id.to_vec(),
            user_handle: user.handle.0.clone(),
            method: method.as_str().to_owned(),
            created_unix_ms: now_ms,
            last_seen_unix_ms: now_ms,
            expires_unix_ms: expires_ms,
        };
        let session = Session { id, user_handle: user.handle.0.clone(), issued_ms: now_ms, expires_ms, method };
        Ok((NewSession { token, session, user: user.clone() }, row))
    }

    /// Start a session for `user` made by `method` (its row stored).
    pub async fn start_session(&self, user: &UserRecord, method: SignInMethod) -> Result<NewSession, AccountError> {
        let (s, row) = self.prepare_session(user, method).await?;
        self.store().insert_session(&row).await?;
        Ok(s)
    }

    /// The caller of `token`: a valid, unexpired token whose session row
    /// still exists, of an existing user.
    pub async fn authenticate(&self, token: &[u8]) -> Result<Option<Authenticated>, AccountError> {
        let secret = self.session_secret().await?;
        let now = self.now();
        let Some(session) = sessions::open(self.provider(), secret, token, ms(now)) else { return Ok(None) };
        let Some(row) = self.store().session_row(&session.id).await? else { return Ok(None) };
        if row.user_handle != session.user_handle {
            return Ok(None);
        }
        let Some(user) = self.store().user_by_handle(&session.user_handle).await? else { return Ok(None) };
        if row.last_seen_unix_ms < ms(now).saturating_sub(60_000) {
            self.store().touch_session(&session.id, now).await?;
        }
        Ok(Some(Authenticated { session, user }))
    }

    /// Sign out: end the caller's session.
    pub async fn sign_out(&self, auth: &Authenticated) -> Result<(), AccountError> {
        let event = super::audit::bounded(user_event(AuditKind::SignOut, &auth.user), true);
        self.store().end_session_with_event(&auth.user.handle, &auth.session.id, &event, self.now()).await?;
        Ok(())
    }

    /// The caller's sessions, newest first: (row, whether it is the caller's).
    pub async fn sessions(&self, auth: &Authenticated) -> Result<Vec<(SessionRow, bool)>, AccountError> {
        let rows = self.store().sessions_of_user(&auth.user.handle, self.now()).await?;
        Ok(rows.into_iter().map(|r| (r.id == auth.session.id, r)).map(|(c, r)| (r, c)).collect())
    }

    /// End one of the caller's sessions (any of them, the caller's own included).
    pub async fn end_session(&self, auth: &Authenticated, id: &[u8]) -> Result<(), AccountError> {
        let event = super::audit::bounded(
            user_event(AuditKind::SignOut, &auth.user).detail("session ended from another session"),
            true,
        );
        if !self.store().end_session_with_event(&auth.user.handle, id, &event, self.now()).await? {
            return Err(AccountError::UnknownSession);
        }
        Ok(())
    }

    // ------------------------------------------------------------ keys

    /// Who a key registration for `username` is for; `caller` is the
    /// signed-in caller, if any. A taken username is `username_taken`
    /// (holding nothing of that account) unless the caller is signed in as
    /// it, recently enough to add a key.
    pub async fn key_registration(
        &self,
        username: &str,
        caller: Option<&Authenticated>,
    ) -> Result<KeyRegistration, AccountError> {
        let username = self.normalize_username(username)?;
        let Some(user) = self.store().user_by_username(&username).await? else {
            return Ok(KeyRegistration::NewAccount { username });
        };
        let Some(auth) = caller.filter(|a| a.user.handle == user.handle) else {
            return Err(AccountError::UsernameTaken);
        };
        let _proof: KeyEnrollment<'_> = self.may_add_key(auth)?;
        let credentials = self.store().credentials_of_user(&user.handle).await?;
        Ok(KeyRegistration::OwnAccount { user, credentials })
    }

    /// Stable made-up credential ids for a username without an account
    /// (WebAuthn L3 §14.6.2): one or two ids of 32 to 64 bytes, derived by
    /// HMAC under the server secret, so that asking twice gives the same
    /// answer and no answer tells whether the account exists.
    pub async fn made_up_credentials(&self, normalized_username: &str) -> Result<Vec<Vec<u8>>, AccountError> {
        let key = self.made_up_key().await?;
        let p = self.provider();
        let seed = p.hmac(crate::crypto::HashAlg::Sha256, key, &[normalized_username.as_bytes()]);
        let n = 1 + usize::from(seed.first().copied().unwrap_or(0) & 1);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let a = p.hmac(crate::crypto::HashAlg::Sha256, key, &[normalized_username.as_bytes(), &[i as u8, 0]]);
            let b = p.hmac(crate::crypto::HashAlg::Sha256, key, &[normalized_username.as_bytes(), &[i as u8, 1]]);
            let len = 32 + usize::from(a.first().copied().unwrap_or(0) % 33);
            let mut id = a;
            id.extend_from_slice(&b);
            id.truncate(len);
            out.push(id);
        }
        Ok(out)
    }

    /// Record a verified key sign-in (counter, audit event and session in
    /// one statement or transaction) and make its session. `step`: the
    /// password step of the same browser, if any and of the same user.
    pub async fn finish_key_sign_in(
        &self,
        user: &UserRecord,
        step: Option<PasswordAccepted>,
        assertion: VerifiedAssertion<'_>,
        event: NewAuditEvent,
    ) -> Result<KeySignIn, AccountError> {
        let VerifiedAssertion { credential_id, new_sign_count, reported_sign_count, backed_up, ceremony } = assertion;
        let method = match step {
            Some(s) if s.user.handle == user.handle => SignInMethod::PasswordKey,
            _ => SignInMethod::Key,
        };
        let (new, row) = self.prepare_session(user, method).await?;
        let now = self.now();
        let detail = format!("{}; {}", method.as_str(), event.detail);
        let event = event.detail(detail);
        let clears = SignInClears {
            user_handle: user.handle.0.clone(),
            throttle_subject: throttle::account_subject(&user.username),
        };
        let update = self
            .store()
            .record_key_sign_in(credential_id, new_sign_count, backed_up, now, event.clone(), &row, &clears, ceremony)
            .await?;
        let cleared = matches!(update, SignCountUpdate::Advanced) && self.store().key_sign_in_clears();
        match update {
            SignCountUpdate::Advanced => {}
            // A concurrent sign-in with a higher counter was recorded
            // first: this assertion was valid against the counter it was
            // checked with.
            SignCountUpdate::NotAdvanced { current } if current > reported_sign_count => {
                self.store().insert_session(&row).await?;
                self.audit(event, true).await;
            }
            SignCountUpdate::NotAdvanced { current } => return Ok(KeySignIn::CounterRegression { current }),
            SignCountUpdate::NotFound => return Ok(KeySignIn::Removed),
            SignCountUpdate::CeremonyUsed => return Ok(KeySignIn::CeremonyUsed),
        }
        // A key sign-in lifts the lockout of the fallback factors and starts
        // the account's attempt window over: in the sign-in's own write where
        // the store can (SQLite), else here (each read first: nothing more is
        // written when there is nothing to clear).
        if !cleared {
            if self.store().failures(&user.handle).await? > 0 {
                self.store().clear_failures(&user.handle).await?;
            }
            throttle::succeeded_if_any(self.store(), &clears.throttle_subject, now).await?;
        }
        Ok(KeySignIn::SignedIn(new))
    }

    // ------------------------------------------------------------ password step

    /// Open a password-step token (from the same browser's cookie).
    pub async fn password_step(&self, token: &[u8]) -> Result<Option<PasswordAccepted>, AccountError> {
        let secret = self.session_secret().await?;
        let Some((handle, _, expires_ms)) = sessions::open_password_step(self.provider(), secret, token, self.now_ms())
        else {
            return Ok(None);
        };
        let Some(user) = self.store().user_by_handle(&handle).await? else { return Ok(None) };
        Ok(Some(PasswordAccepted { user, token: token.to_vec(), expires_ms }))
    }

    /// The second factors the account offers.
    pub async fn second_factors(&self, user: &UserRecord) -> Result<Vec<SecondFactor>, AccountError> {
        let mut out = vec![SecondFactor::SecurityKey];
        if self.store().totp(&user.handle).await?.is_some() {
            out.push(SecondFactor::Totp);
        }
        if !self.store().recovery_code_hashes(&user.handle).await?.is_empty() {
            out.push(SecondFactor::RecoveryCode);
        }
        Ok(out)
    }

    /// Step one of a password sign-in. Never a session: a second factor
    /// completes it. A wrong password and an unknown username get the same
    /// `invalid_credentials` after the same Argon2 work.
    pub async fn login_password(
        &self,
        username: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<PasswordAccepted, AccountError> {
        let password = Password::new(password);
        let username = self.normalize_username(username)?;
        // A busy pool refuses before the attempt is counted.
        let slot = self.hasher().reserve()?;
        let now = self.now();
        if let Err(e) = throttle::attempt(self.store(), &throttle::account_subject(&username), addr, now).await {
            self.throttled(&username, &e).await;
            return Err(e);
        }
        let user = self.store().user_by_username(&username).await?;
        // An unknown name takes the reads and writes of a known one, on a
        // handle no account has (handles are 1 to 64 bytes), so that the
        // time the answer takes does not tell whether the account exists
        // (`benches/unknown_user.rs` measures it).
        let handle: &[u8] = user.as_ref().map_or(NO_ACCOUNT, |u| &u.handle.0);
        match throttle::check_lockout(self.store(), handle).await {
            Err(AccountError::Locked) if user.is_none() => {}
            r => r?,
        }
        let stored = self.store().password_hash(handle).await?;
        let has_hash = stored.is_some();
        let ok = self.hasher().verify_in(slot, stored, password).await?;
        let (Some(user), true, true) = (user, has_hash, ok) else {
            throttle::address_failed(self.store(), addr, now).await?;
            match self.store().user_by_username(&username).await? {
                Some(u) => {
                    throttle::failed(self.store(), &u.handle, now).await?;
                    self.audit(
                        user_event(AuditKind::SignInFailed, &u).code("invalid_credentials").detail("password"),
                        false,
                    )
                    .await;
                }
                None => throttle::failed(self.store(), NO_ACCOUNT, now).await?,
            }
            return Err(AccountError::InvalidCredentials);
        };
        let secret = self.session_secret().await?;
        let mut nonce = [0u8; 16];
        self.provider()
            .fill_random(&mut nonce)
            .map_err(|_| AccountError::Internal("the random source failed".into()))?;
        let window = self.config().second_factor_window;
        let expires_ms = ms(now.checked_add(window).unwrap_or(now));
        let token = sessions::issue_password_step(self.provider(), secret, &user.handle, &nonce, ms(now), expires_ms)
            .ok_or_else(|| AccountError::Internal("the user handle is not 1 to 64 bytes".into()))?;
        Ok(PasswordAccepted { user, token, expires_ms })
    }

    /// The account a code sign-in is for, the throttle passed: from the
    /// password step, or (no step) by username for an account without a
    /// password. Unknown usernames, like accounts with a password, get
    /// `password_required`.
    async fn code_subject(
        &self,
        step: &Option<PasswordAccepted>,
        username: Option<&str>,
        addr: Option<IpAddr>,
    ) -> Result<UserRecord, AccountError> {
        let now = self.now();
        if let Some(step) = step {
            if let Err(e) =
                throttle::attempt(self.store(), &throttle::account_subject(&step.user.username), addr, now).await
            {
                self.throttled(&step.user.username, &e).await;
                return Err(e);
            }
            throttle::check_lockout(self.store(), &step.user.handle).await?;
            return Ok(step.user.clone());
        }
        // No password step and no username: the step is missing (or expired).
        let username = username.ok_or(AccountError::PasswordRequired)?;
        let username = self.normalize_username(username)?;
        if let Err(e) = throttle::attempt(self.store(), &throttle::account_subject(&username), addr, now).await {
            self.throttled(&username, &e).await;
            return Err(e);
        }
        let Some(user) = self.store().user_by_username(&username).await? else {
            // Same lookups as for an account with a password.
            let _ = self.store().password_hash(NO_ACCOUNT).await?;
            throttle::address_failed(self.store(), addr, now).await?;
            return Err(AccountError::PasswordRequired);
        };
        if self.store().password_hash(&user.handle).await?.is_some() {
            throttle::address_failed(self.store(), addr, now).await?;
            return Err(AccountError::PasswordRequired);
        }
        throttle::check_lockout(self.store(), &user.handle).await?;
        Ok(user)
    }

    /// Audit a throttled attempt (filed under the account only when it exists).
    async fn throttled(&self, username: &str, e: &AccountError) {
        if let Ok(Some(u)) = self.store().user_by_username(username).await {
            self.audit(user_event(AuditKind::SignInFailed, &u).code(e.code()).detail("throttled"), false).await;
        }
    }

    async fn code_failed(&self, user: &UserRecord, addr: Option<IpAddr>, what: &str, logged: &str) -> AccountError {
        if let Err(e) = throttle::failed(self.store(), &user.handle, self.now()).await {
            return e;
        }
        if let Err(e) = throttle::address_failed(self.store(), addr, self.now()).await {
            return e;
        }
        self.audit(user_event(AuditKind::SignInFailed, user).code(logged).detail(what), false).await;
        AccountError::InvalidCode
    }

    /// Record an accepted code with its sign-in and make the session: the
    /// change (`used`: the time step spent, or the recovery code used up),
    /// the session row, `events` and the sign-in's own event, the
    /// account's attempt window and failures in a row cleared (never a
    /// lockout), in one transaction. `None` when the change did not happen
    /// (the code was used meanwhile): nothing written.
    async fn code_accepted(
        &self,
        user: &UserRecord,
        method: SignInMethod,
        used: CodeUse,
        mut events: Vec<NewAuditEvent>,
        what: &str,
    ) -> Result<Option<NewSession>, AccountError> {
        let (new, row) = self.prepare_session(user, method).await?;
        events.push(user_event(AuditKind::SignIn, user).detail(format!("{}: {what}", method.as_str())));
        let events: Vec<NewAuditEvent> = events.into_iter().map(|e| super::audit::bounded(e, true)).collect();
        let clears = SignInClears {
            user_handle: user.handle.0.clone(),
            throttle_subject: throttle::account_subject(&user.username),
        };
        let writes =
            CodeSignInWrites { session: &row, events: &events, clears: &clears, lockout_at: throttle::LOCKOUT_AFTER };
        let now = self.now();
        let recorded = match used {
            CodeUse::TotpStep(step) => self.store().record_totp_sign_in(&user.handle, step, writes, now).await?,
            CodeUse::RecoveryCode(id) => self.store().record_recovery_sign_in(&user.handle, id, writes, now).await?,
        };
        Ok(recorded.then_some(new))
    }

    /// The TOTP generator of a stored (sealed) secret of `user`.
    pub(crate) fn totp_of(&self, user_handle: &[u8], r: &TotpSecretRecord) -> Result<Totp, AccountError> {
        let corrupt = |e: String| AccountError::Storage(crate::store::StoreError::Corrupt(format!("TOTP: {e}")));
        let plain = self.keys().open(secrets::Purpose::Totp, user_handle, &r.secret)?;
        let secret = OtpSecret::from_bytes(&plain).map_err(|e| corrupt(e.to_string()))?;
        let alg: Algorithm = r.algorithm.parse().map_err(|e: OtpError| corrupt(e.to_string()))?;
        let digits = Digits::new(i64::from(r.digits)).map_err(|e| corrupt(e.to_string()))?;
        let period = i64::try_from(r.period).map_err(|e| corrupt(e.to_string()))?;
        Totp::new(secret, alg, digits, period).map_err(|e| corrupt(e.to_string()))
    }

    /// Sign in with a TOTP code: completing a password step, or alone for
    /// an account without a password (a fallback-only session).
    pub async fn login_totp(
        &self,
        step: Option<PasswordAccepted>,
        username: Option<&str>,
        code: &str,
        addr: Option<IpAddr>,
    ) -> Result<NewSession, AccountError> {
        let code = clean_code(code);
        let user = self.code_subject(&step, username, addr).await?;
        let method = if step.is_some() { SignInMethod::PasswordTotp } else { SignInMethod::Totp };
        let now = self.now();
        let Some(stored) = self.store().totp(&user.handle).await? else {
            return Err(self.code_failed(&user, addr, "authenticator app code (none set up)", "invalid_code").await);
        };
        let totp = self.totp_of(&user.handle, &stored)?;
        const WHAT: &str = "authenticator app code";
        match totp.verify(&code, unix_secs(now), Window::default(), stored.last_step) {
            // Compare-and-set: of concurrent uses of one code, one wins.
            Ok(step) => match self.code_accepted(&user, method, CodeUse::TotpStep(step), Vec::new(), WHAT).await? {
                Some(s) => Ok(s),
                None => Err(self.code_failed(&user, addr, WHAT, "code_replayed").await),
            },
            Err(OtpError::Replayed) => Err(self.code_failed(&user, addr, WHAT, "code_replayed").await),
            Err(_) => Err(self.code_failed(&user, addr, WHAT, "invalid_code").await),
        }
    }

    /// Sign in with a recovery code (used up): completing a password step,
    /// or alone for an account without a password. With the session, how
    /// many codes are left.
    pub async fn login_recovery(
        &self,
        step: Option<PasswordAccepted>,
        username: Option<&str>,
        code: &str,
        addr: Option<IpAddr>,
    ) -> Result<(NewSession, usize), AccountError> {
        let code: Zeroizing<String> = Zeroizing::new(code.chars().take(MAX_CODE_CHARS + 1).collect());
        // A busy pool refuses before the attempt is counted.
        let slot = self.hasher().reserve()?;
        let user = self.code_subject(&step, username, addr).await?;
        let method = if step.is_some() { SignInMethod::PasswordRecovery } else { SignInMethod::Recovery };
        let stored = self.store().recovery_code_hashes(&user.handle).await?;
        let remaining = stored.len();
        let pairs: Vec<(i64, String)> = stored.into_iter().map(|h| (h.id, h.hash)).collect();
        let matched = self.hasher().run_in(slot, move || super::factors::match_recovery_code(&code, &pairs)).await?;
        let Some(id) = matched else {
            return Err(self.code_failed(&user, addr, "recovery code", "invalid_code").await);
        };
        let left = remaining.saturating_sub(1);
        let used = vec![user_event(AuditKind::RecoveryCodeUsed, &user).detail(format!("{left} left"))];
        // One atomic delete: of concurrent uses of one code, one wins.
        match self.code_accepted(&user, method, CodeUse::RecoveryCode(id), used, "recovery code").await? {
            Some(s) => Ok((s, left)),
            None => Err(self.code_failed(&user, addr, "recovery code", "code_replayed").await),
        }
    }
}
