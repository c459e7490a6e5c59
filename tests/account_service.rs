//! The account service used directly, without HTTP (CONTRACTS §2.1 rules,
//! issue #10), over SQLite in memory; and the property test of the policy.
#![cfg(all(feature = "http", feature = "sqlite"))]

use hwkey::account::secrets::{self, Purpose};
use hwkey::account::{AccountConfig, AccountError, AccountService, Authenticated, SecretKeyring, SignInMethod};
use hwkey::otp::{Algorithm, Digits, OtpSecret, Totp};
use hwkey::proto::cose::CoseAlgorithm;
use hwkey::proto::webauthn::Base64Url;
use hwkey::server::CredentialRecord;
use hwkey::server::attestation::AttestationType;
use hwkey::store::account::{AccountStore, SecretTable};
use hwkey::store::otp::{OtpStore, TotpSecretRecord};
use hwkey::store::{DbStore, Store, UserRecord};
use proptest::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

const PASSWORD: &str = "correct horse battery staple";

struct Env {
    svc: AccountService<DbStore>,
    store: DbStore,
    base: SystemTime,
    offset: Arc<AtomicU64>,
}

fn base_time() -> SystemTime {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    UNIX_EPOCH + Duration::from_secs(now - now % 30 + 1)
}

async fn env_with(keys: Arc<SecretKeyring>, store: DbStore) -> Env {
    let base = base_time();
    let offset = Arc::new(AtomicU64::new(0));
    let o = offset.clone();
    let cfg = AccountConfig {
        clock: Arc::new(move || base + Duration::from_secs(o.load(Ordering::SeqCst))),
        password_concurrency: 4,
        ..AccountConfig::default()
    };
    Env { svc: AccountService::new(store.clone(), keys, cfg), store, base, offset }
}

async fn env() -> Env {
    let store = DbStore::connect("sqlite::memory:").await.expect("store");
    env_with(Arc::new(SecretKeyring::ephemeral().expect("keys")), store).await
}

fn cred(id: u8, owner: &UserRecord) -> CredentialRecord {
    CredentialRecord {
        credential_id: Base64Url(vec![id; 16]),
        user_id: owner.handle.clone(),
        public_key: Base64Url(vec![1, 2, 3]),
        algorithm: CoseAlgorithm::ES256,
        sign_count: 0,
        uv_initialized: false,
        transports: vec![],
        backup_eligible: false,
        backed_up: false,
        aaguid: String::new(),
        attestation_format: "none".into(),
        attestation_type: AttestationType::None,
        attestation_trusted: false,
        discoverable: None,
    }
}

impl Env {
    fn now(&self) -> SystemTime {
        self.base + Duration::from_secs(self.offset.load(Ordering::SeqCst))
    }
    fn advance(&self, secs: u64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }
    /// A user with two keys (ids `[k;16]`, `[k+1;16]`).
    async fn user(&self, name: &str, k: u8) -> UserRecord {
        let u = UserRecord::new(name, name, self.now()).expect("user");
        self.store.add_credential(Some(&u), &cred(k, &u), "a", self.now()).await.expect("add");
        self.store.add_credential(None, &cred(k + 1, &u), "b", self.now()).await.expect("add");
        u
    }
    async fn session(&self, u: &UserRecord, m: SignInMethod) -> Authenticated {
        let s = self.svc.start_session(u, m).await.expect("session");
        self.svc.authenticate(&s.token).await.expect("auth").expect("a session")
    }
    async fn alive(&self, a: &Authenticated, token: &[u8]) -> bool {
        let _ = a;
        self.svc.authenticate(token).await.expect("auth").is_some()
    }
    fn code(&self, secret: &str) -> String {
        let t = Totp::new(OtpSecret::from_base32(secret).expect("b32"), Algorithm::Sha1, Digits::SIX, 30).expect("t");
        t.code_at(self.now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64).expect("code")
    }
    async fn totp(&self, a: &Authenticated) -> String {
        let e = self.svc.totp_enroll(self.svc.step_up(a).expect("step-up")).await.expect("enroll");
        let secret = e.secret_base32.to_string();
        self.svc.totp_confirm(self.svc.step_up(a).expect("step-up"), &self.code(&secret), None).await.expect("confirm");
        secret
    }
}

#[tokio::test]
async fn a_fallback_session_may_add_a_key_and_nothing_else_sensitive() {
    let e = env().await;
    let u = e.user("ann", 1).await;
    let key = e.session(&u, SignInMethod::Key).await;
    e.totp(&key).await;
    let fb = e.session(&u, SignInMethod::Totp).await;
    assert!(matches!(e.svc.step_up(&fb), Err(AccountError::ReauthenticationRequired { minutes: 0 })));
    assert!(e.svc.may_add_key(&fb).is_ok());
    assert!(matches!(
        e.svc.key_registration("ANN", Some(&fb)).await,
        Ok(hwkey::account::KeyRegistration::OwnAccount { .. })
    ));
    // Old full sessions lose the step-up too.
    e.advance(11 * 60);
    assert!(matches!(e.svc.step_up(&key), Err(AccountError::ReauthenticationRequired { minutes: 10 })));
}

#[tokio::test]
async fn a_password_alone_is_no_session_and_codes_alone_need_the_password_step() {
    let e = env().await;
    let u = e.user("bea", 1).await;
    let key = e.session(&u, SignInMethod::Key).await;
    let secret = e.totp(&key).await;
    e.svc.set_password(e.svc.step_up(&key).expect("step-up"), PASSWORD).await.expect("set");
    let step = e.svc.login_password("Bea", PASSWORD, None).await.expect("password");
    assert!(e.svc.authenticate(step.token()).await.expect("auth").is_none(), "a password step is no session");
    e.advance(31);
    let alone = e.svc.login_totp(None, Some("bea"), &e.code(&secret), None).await;
    assert!(matches!(alone, Err(AccountError::PasswordRequired)));
    let s = e.svc.login_totp(Some(step), None, &e.code(&secret), None).await.expect("password + totp");
    assert_eq!(s.session.method, SignInMethod::PasswordTotp);
    assert!(matches!(
        e.svc.login_password("bea", "wrong password here", None).await,
        Err(AccountError::InvalidCredentials)
    ));
    assert!(matches!(e.svc.login_password("nobody", PASSWORD, None).await, Err(AccountError::InvalidCredentials)));
}

/// Finding 8, counted: unknown usernames on the code endpoints do no Argon2 work.
#[tokio::test]
async fn unknown_usernames_cost_no_argon2_work() {
    let e = env().await;
    for i in 0..20 {
        let name = format!("ghost{i}");
        let r = e.svc.login_recovery(None, Some(&name), "AAAA-BBBB-CCCC-DDDD", None).await;
        assert!(matches!(r, Err(AccountError::PasswordRequired)), "{r:?}");
        let r = e.svc.login_totp(None, Some(&name), "123456", None).await;
        assert!(matches!(r, Err(AccountError::PasswordRequired)), "{r:?}");
    }
    assert_eq!(e.svc.hasher().jobs_done(), 0);
    // A password attempt for an unknown name costs exactly one (like a wrong password).
    let _ = e.svc.login_password("ghost", PASSWORD, None).await;
    assert_eq!(e.svc.hasher().jobs_done(), 1);
}

#[tokio::test]
async fn throttled_per_account_and_per_address_and_locked_after_100() {
    let e = env().await;
    let u = e.user("cat", 1).await;
    let key = e.session(&u, SignInMethod::Key).await;
    let secret = e.totp(&key).await;
    for _ in 0..5 {
        assert!(matches!(e.svc.login_totp(None, Some("cat"), "000000", None).await, Err(AccountError::InvalidCode)));
    }
    let r = e.svc.login_totp(None, Some("cat"), &e.code(&secret), None).await;
    assert!(matches!(r, Err(AccountError::TooManyAttempts { retry_after_s }) if retry_after_s > 0), "{r:?}");
    // Per address.
    let addr = Some("203.0.113.9".parse().expect("ip"));
    for i in 0..50 {
        let _ = e.svc.login_totp(None, Some(&format!("n{i}")), "1", addr).await;
    }
    let r = e.svc.login_totp(None, Some("n77"), "1", addr).await;
    assert!(matches!(r, Err(AccountError::TooManyAttempts { .. })), "{r:?}");
    // 100 in a row.
    for _ in 0..100 {
        e.store.add_failure(&u.handle, e.now()).await.expect("fail");
    }
    e.advance(15 * 60 + 1);
    let r = e.svc.login_totp(None, Some("cat"), &e.code(&secret), None).await;
    assert!(matches!(r, Err(AccountError::Locked)), "{r:?}");
    assert_eq!(AccountError::Locked.code(), "too_many_attempts");
    assert!(AccountError::Locked.retry_after().is_some());
}

#[tokio::test]
async fn factor_changes_end_the_other_sessions() {
    let e = env().await;
    let u = e.user("dan", 1).await;
    let me = e.svc.start_session(&u, SignInMethod::Key).await.expect("s");
    let me_auth = e.svc.authenticate(&me.token).await.expect("a").expect("s");
    let other = e.svc.start_session(&u, SignInMethod::Key).await.expect("s");
    e.svc.remove_key(e.svc.step_up(&me_auth).expect("step-up"), &[2; 16]).await.expect("remove");
    assert!(!e.alive(&me_auth, &other.token).await);
    assert!(e.alive(&me_auth, &me.token).await);
    let other = e.svc.start_session(&u, SignInMethod::Key).await.expect("s");
    e.svc.set_password(e.svc.step_up(&me_auth).expect("step-up"), PASSWORD).await.expect("set");
    assert!(!e.alive(&me_auth, &other.token).await);
    let other = e.svc.start_session(&u, SignInMethod::Key).await.expect("s");
    e.svc.remove_password(e.svc.step_up(&me_auth).expect("step-up")).await.expect("remove");
    assert!(!e.alive(&me_auth, &other.token).await);
    // The last key stays.
    let r = e.svc.remove_key(e.svc.step_up(&me_auth).expect("step-up"), &[1; 16]).await;
    assert!(matches!(r, Err(AccountError::LastCredential)));
    // Sessions list and end.
    let list = e.svc.sessions(&me_auth).await.expect("list");
    assert_eq!(list.len(), 1);
    assert!(list[0].1);
}

#[tokio::test]
async fn usernames_and_made_up_credentials() {
    let e = env().await;
    assert_eq!(e.svc.normalize_username("ÀLICE").expect("ok"), "àlice");
    assert!(matches!(e.svc.normalize_username("a\u{200B}b"), Err(AccountError::Malformed(_))));
    let a = e.svc.made_up_credentials("nobody").await.expect("ids");
    let b = e.svc.made_up_credentials("nobody").await.expect("ids");
    assert_eq!(a, b);
    assert!(!a.is_empty() && a.iter().all(|id| (32..=64).contains(&id.len())));
    assert_ne!(a, e.svc.made_up_credentials("somebody").await.expect("ids"));
    let u = e.user("eve", 1).await;
    assert!(matches!(e.svc.key_registration("EVE", None).await, Err(AccountError::UsernameTaken)));
    let _ = u;
}

/// Secrets at rest: clear-text rows from before are sealed on start; a
/// rotated key re-seals; the database holds no secret in the clear.
#[tokio::test]
async fn clear_rows_are_sealed_on_start_and_a_new_key_re_seals() {
    let store = DbStore::connect("sqlite::memory:").await.expect("store");
    let u = UserRecord::new("fay", "fay", SystemTime::now()).expect("user");
    store.add_credential(Some(&u), &cred(1, &u), "a", SystemTime::now()).await.expect("add");
    // As an older version stored them: in the clear.
    let raw = OtpSecret::generate().expect("secret");
    let record = TotpSecretRecord {
        secret: Zeroizing::new(raw.as_bytes().to_vec()),
        algorithm: "SHA1".into(),
        digits: 6,
        period: 30,
        created_unix_ms: hwkey::server::unix_ms(SystemTime::now()) as i64,
        last_step: None,
        last_used_unix_ms: None,
    };
    store.put_pending_totp(&u.handle, &record).await.expect("pending");
    store.confirm_totp(&u.handle, raw.as_bytes(), 1, &[], SystemTime::now()).await.expect("confirm");
    let clear_session_key = [9u8; 32];
    store.server_secret("session-mac-v1", &clear_session_key).await.expect("secret");

    let old = "1111111111111111111111111111111111111111111111111111111111111111";
    let k1 = SecretKeyring::parse(old).expect("k1");
    let report = secrets::migrate(&store, &k1).await.expect("migrate");
    assert_eq!(report.sealed_clear, 2);
    for table in [SecretTable::Totp, SecretTable::ServerSecret] {
        for (row, stored) in store.secret_rows(table).await.expect("rows") {
            assert!(k1.is_current(&stored), "{table:?}");
            assert!(!stored.windows(raw.as_bytes().len()).any(|w| w == raw.as_bytes()));
            let purpose = if table == SecretTable::Totp { Purpose::Totp } else { Purpose::ServerSecret };
            assert!(k1.open(purpose, &row, &stored).is_ok());
        }
    }
    // The service opens the migrated session key and TOTP secret.
    let e = env_with(Arc::new(SecretKeyring::parse(old).expect("k")), store.clone()).await;
    let auth = e.session(&u, SignInMethod::Key).await;
    let code = Totp::new(raw.clone(), Algorithm::Sha1, Digits::SIX, 30)
        .expect("t")
        .code_at(e.now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64)
        .expect("code");
    e.svc.login_totp(None, Some("fay"), &code, None).await.expect("the migrated secret works");
    let _ = auth;
    // Rotation: a new first key re-seals everything; the old one can then go.
    let new = "2222222222222222222222222222222222222222222222222222222222222222";
    let both = SecretKeyring::parse(&format!("{new}\n{old}\n")).expect("both");
    let report = secrets::migrate(&store, &both).await.expect("rotate");
    assert_eq!(report.rotated, 2);
    let k2 = SecretKeyring::parse(new).expect("k2");
    for (_, stored) in store.secret_rows(SecretTable::ServerSecret).await.expect("rows") {
        assert!(k2.is_current(&stored));
    }
    // A key file without the sealing key is refused, saying which key is missing.
    let other = SecretKeyring::parse(&"3".repeat(64)).expect("k3");
    assert!(matches!(secrets::migrate(&store, &other).await, Err(secrets::SecretError::UnknownKey(_))));
}

#[tokio::test]
async fn audit_events_are_bounded_and_purged_after_the_retention() {
    let e = env().await;
    let u = e.user("gil", 1).await;
    let ev = hwkey::store::NewAuditEvent::new(hwkey::store::AuditKind::SignInFailed)
        .user(&u.username, &u.handle)
        .detail("x".repeat(50_000));
    e.svc.audit(ev, false).await;
    let q = hwkey::store::AuditQuery { username: Some("gil".into()), ..Default::default() };
    let got = e.store.audit_events(&q).await.expect("events");
    assert!(
        got.iter().all(|ev| ev.detail.chars().count() <= 129),
        "{:?}",
        got.iter().map(|e| e.detail.len()).collect::<Vec<_>>()
    );
    assert!(!got.is_empty());
    e.advance(91 * 24 * 3600);
    e.svc.purge().await.expect("purge");
    assert!(e.store.audit_events(&q).await.expect("events").is_empty());
}

// ------------------------------------------------------------ property test

#[derive(Debug, Clone, Copy)]
enum Op {
    SignIn(usize),
    RemoveKey(usize),
    TotpOff(usize),
    TotpOn(usize),
    SetPassword(usize),
    RemovePassword(usize),
    Regenerate(usize),
    Wait,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6usize).prop_map(Op::SignIn),
        (0..8usize).prop_map(Op::RemoveKey),
        (0..8usize).prop_map(Op::TotpOff),
        (0..8usize).prop_map(Op::TotpOn),
        (0..8usize).prop_map(Op::SetPassword),
        (0..8usize).prop_map(Op::RemovePassword),
        (0..8usize).prop_map(Op::Regenerate),
        Just(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For random sequences of sign-ins and factor changes, no session made
    /// without a key or the password and a second factor ever removes a
    /// key, turns a factor off or changes the password.
    #[test]
    fn only_full_sessions_change_factors(ops in proptest::collection::vec(op(), 1..24)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(async {
            let e = env().await;
            let u = e.user("prop", 1).await;
            let mut keys = 4u8; // add keys [1..=4]
            for k in 3..=keys {
                e.store.add_credential(None, &cred(k, &u), "k", e.now()).await.expect("add");
            }
            let mut sessions: Vec<(SignInMethod, Vec<u8>)> = Vec::new();
            for op in ops {
                let pick = |i: usize| if sessions.is_empty() { None } else { Some(sessions[i % sessions.len()].clone()) };
                let (method, token, result) = match op {
                    Op::Wait => { e.advance(4 * 60); continue; }
                    Op::SignIn(m) => {
                        let m = SignInMethod::ALL[m];
                        let s = e.svc.start_session(&u, m).await.expect("session");
                        sessions.push((m, s.token));
                        continue;
                    }
                    Op::RemoveKey(i) | Op::TotpOff(i) | Op::TotpOn(i) | Op::SetPassword(i) | Op::RemovePassword(i)
                    | Op::Regenerate(i) => {
                        let Some((m, token)) = pick(i) else { continue };
                        let Some(auth) = e.svc.authenticate(&token).await.expect("auth") else { continue };
                        let r: Result<(), AccountError> = match e.svc.step_up(&auth) {
                            Err(err) => Err(err),
                            Ok(proof) => match op {
                                Op::RemoveKey(_) => {
                                    let r = e.svc.remove_key(proof, &[keys; 16]).await;
                                    if r.is_ok() { keys -= 1; }
                                    r
                                }
                                Op::TotpOff(_) => e.svc.totp_disable(proof).await,
                                Op::TotpOn(_) => e.svc.totp_enroll(proof).await.map(|_| ()),
                                Op::SetPassword(_) => e.svc.set_password(proof, PASSWORD).await,
                                Op::RemovePassword(_) => e.svc.remove_password(proof).await,
                                _ => e.svc.regenerate_recovery_codes(proof).await.map(|_| ()),
                            },
                        };
                        (m, token, r)
                    }
                };
                let _ = token;
                let changed = !matches!(result, Err(AccountError::ReauthenticationRequired { .. }));
                if method.strength() == hwkey::account::Strength::FallbackOnly {
                    prop_assert!(!changed, "a {:?} session got past step-up: {:?}", method, result);
                }
            }
            Ok(())
        })?;
    }
}

/// Databases from before usernames were normalized: names are renamed to
/// their canonical form at start, unless that form is taken.
#[tokio::test]
async fn stored_usernames_are_normalized_on_start() {
    let store = DbStore::connect("sqlite::memory:").await.expect("store");
    let now = SystemTime::now();
    let old = UserRecord::new("OldName", "Old", now).expect("user");
    store.add_credential(Some(&old), &cred(1, &old), "a", now).await.expect("add");
    let taken = UserRecord::new("bob", "bob", now).expect("user");
    store.add_credential(Some(&taken), &cred(3, &taken), "a", now).await.expect("add");
    let clash = UserRecord::new("BOB", "BOB", now).expect("user");
    store.add_credential(Some(&clash), &cred(5, &clash), "a", now).await.expect("add");
    // Cached under the old name before the migration.
    assert!(store.user_by_username("OldName").await.expect("lookup").is_some());
    let report = hwkey::account::username::migrate(&store).await.expect("migrate");
    assert_eq!((report.renamed, report.conflicts.clone()), (1, vec!["BOB".to_owned()]), "{report:?}");
    let e = env_with(Arc::new(SecretKeyring::ephemeral().expect("keys")), store.clone()).await;
    e.svc.prepare().await.expect("prepare");
    let renamed = store.user_by_username("oldname").await.expect("lookup").expect("renamed");
    assert_eq!(renamed.handle, old.handle);
    assert!(store.user_by_username("OldName").await.expect("lookup").is_none());
    assert_eq!(store.user_by_username("bob").await.expect("lookup").expect("bob").handle, taken.handle);
    assert_eq!(store.user_by_username("BOB").await.expect("lookup").expect("BOB").handle, clash.handle);
}

/// A password change, the end of the other sessions and its audit event are
/// one transaction: all there after it, none after a refused one.
#[tokio::test]
async fn a_password_change_and_its_event_are_written_together() {
    let e = env().await;
    let u = e.user("hal", 1).await;
    let me = e.session(&u, SignInMethod::Key).await;
    let other = e.svc.start_session(&u, SignInMethod::Key).await.expect("s");
    let q = hwkey::store::AuditQuery {
        username: Some("hal".into()),
        kind: Some(hwkey::store::AuditKind::PasswordChanged),
        ..Default::default()
    };
    assert!(matches!(e.svc.remove_password(e.svc.step_up(&me).expect("step-up")).await, Err(AccountError::NoPassword)));
    assert!(e.store.audit_events(&q).await.expect("events").is_empty());
    e.svc.set_password(e.svc.step_up(&me).expect("step-up"), PASSWORD).await.expect("set");
    let events = e.store.audit_events(&q).await.expect("events");
    assert_eq!(events.len(), 1);
    assert!(events[0].detail.contains("password set"));
    assert!(e.svc.authenticate(&other.token).await.expect("auth").is_none());
    assert!(e.store.password_hash(&u.handle).await.expect("hash").is_some());
}

/// TOTP on and off, new recovery codes, removing a key and ending a
/// session each have their audit event exactly when they happened: a
/// refused one (a wrong or stale confirmation code, TOTP already off, the
/// last key, an unknown session) writes none.
#[tokio::test]
async fn factor_changes_and_session_endings_have_their_events_exactly_when_committed() {
    use hwkey::store::{AuditKind, AuditQuery};
    let e = env().await;
    let u = e.user("ivy", 1).await;
    let mine = e.svc.start_session(&u, SignInMethod::Key).await.expect("s");
    let me = e.svc.authenticate(&mine.token).await.expect("auth").expect("session");
    let count = |kind: AuditKind| {
        let q = AuditQuery { username: Some("ivy".into()), kind: Some(kind), ..Default::default() };
        let store = e.store.clone();
        async move { store.audit_events(&q).await.expect("events").len() }
    };
    let step_up = || e.svc.step_up(&me).expect("step-up");

    // TOTP on: a wrong code first.
    let first = e.svc.totp_enroll(step_up()).await.expect("enroll");
    let r = e.svc.totp_confirm(step_up(), "000000", None).await;
    let wrong = if e.code(&first.secret_base32) == "000000" { "111111" } else { "000000" };
    let r = if r.is_ok() { e.svc.totp_confirm(step_up(), wrong, None).await } else { r };
    assert!(matches!(r, Err(AccountError::WrongEnrollmentCode)), "{r:?}");
    let other = e.svc.start_session(&u, SignInMethod::Key).await.expect("s");
    let secret = e.svc.totp_enroll(step_up()).await.expect("enroll").secret_base32.to_string();
    assert_eq!((count(AuditKind::TotpEnabled).await, count(AuditKind::RecoveryCodesGenerated).await), (0, 0));
    assert!(e.alive(&me, &other.token).await);
    let codes = e.svc.totp_confirm(step_up(), &e.code(&secret), None).await.expect("confirm");
    assert_eq!((count(AuditKind::TotpEnabled).await, count(AuditKind::RecoveryCodesGenerated).await), (1, 1));
    assert!(!e.alive(&me, &other.token).await);
    assert!(matches!(
        e.svc.totp_confirm(step_up(), &e.code(&secret), None).await,
        Err(AccountError::NoPendingEnrollment)
    ));
    assert_eq!(count(AuditKind::TotpEnabled).await, 1);

    // New recovery codes.
    let other = e.svc.start_session(&u, SignInMethod::Key).await.expect("s");
    let fresh = e.svc.regenerate_recovery_codes(step_up()).await.expect("regenerate");
    assert_ne!(*fresh[0], *codes[0]);
    assert_eq!(count(AuditKind::RecoveryCodesGenerated).await, 2);
    assert!(!e.alive(&me, &other.token).await);

    // TOTP off, then refused.
    let other = e.svc.start_session(&u, SignInMethod::Key).await.expect("s");
    e.svc.totp_disable(step_up()).await.expect("disable");
    assert_eq!(count(AuditKind::TotpDisabled).await, 1);
    assert!(!e.alive(&me, &other.token).await);
    assert!(matches!(e.svc.totp_disable(step_up()).await, Err(AccountError::TotpNotEnabled)));
    assert_eq!(count(AuditKind::TotpDisabled).await, 1);

    // Removing a key, then the last one (refused).
    let other = e.svc.start_session(&u, SignInMethod::Key).await.expect("s");
    e.svc.remove_key(step_up(), &[2; 16]).await.expect("remove");
    assert_eq!(count(AuditKind::CredentialRemoved).await, 1);
    assert!(!e.alive(&me, &other.token).await);
    let other = e.svc.start_session(&u, SignInMethod::Key).await.expect("s");
    assert!(matches!(e.svc.remove_key(step_up(), &[1; 16]).await, Err(AccountError::LastCredential)));
    assert!(matches!(e.svc.remove_key(step_up(), &[9; 16]).await, Err(AccountError::UnknownCredential)));
    assert_eq!(count(AuditKind::CredentialRemoved).await, 1);
    assert!(e.alive(&me, &other.token).await, "a refused change ends no session");

    // Ending a session from another one, an unknown one, and signing out.
    let other_auth = e.svc.authenticate(&other.token).await.expect("auth").expect("session");
    e.svc.end_session(&me, &other_auth.session.id).await.expect("end");
    assert_eq!(count(AuditKind::SignOut).await, 1);
    assert!(matches!(e.svc.end_session(&me, &other_auth.session.id).await, Err(AccountError::UnknownSession)));
    assert_eq!(count(AuditKind::SignOut).await, 1);
    e.svc.sign_out(&me).await.expect("sign out");
    assert_eq!(count(AuditKind::SignOut).await, 2);
    assert!(e.svc.authenticate(&mine.token).await.expect("auth").is_none());
}

/// Run `sql` on the store's (writer) connection pool.
async fn exec(store: &DbStore, sql: &str) {
    match store {
        DbStore::Sqlite(s) => sqlx::raw_sql(sql).execute(s.write_pool()).await.map(|_| ()),
        #[cfg(feature = "postgres")]
        DbStore::Postgres(p) => sqlx::raw_sql(sql).execute(p.pool()).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Make every write of an audit event of kind `event` fail (a trigger), or
/// (`None`) let them all through again.
async fn fail_audit_of(store: &DbStore, event: Option<&str>) {
    let pg = !matches!(store, DbStore::Sqlite(_));
    let drop = if pg { "DROP TRIGGER IF EXISTS fail_audit ON audit_log" } else { "DROP TRIGGER IF EXISTS fail_audit" };
    exec(store, drop).await;
    let Some(event) = event else { return };
    if pg {
        exec(
            store,
            "CREATE OR REPLACE FUNCTION hwkey_test_fail_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'the audit log is unavailable'; END $$",
        )
        .await;
        exec(
            store,
            &format!(
                "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log FOR EACH ROW WHEN (NEW.event = '{event}') \
                 EXECUTE FUNCTION hwkey_test_fail_audit()"
            ),
        )
        .await;
    } else {
        exec(
            store,
            &format!(
                "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log WHEN NEW.event = '{event}' \
                 BEGIN SELECT RAISE(ABORT, 'the audit log is unavailable'); END"
            ),
        )
        .await;
    }
}

/// Issue #10 item 7, #11 item 4: a TOTP or recovery-code sign-in and its
/// audit events are one transaction. While the audit write fails, the
/// sign-in fails and leaves nothing behind: the recovery code is not used
/// up, the time step not spent, no session made. Once the log works again
/// the same code signs in, and its events are there.
async fn code_sign_ins_and_their_events_are_one_transaction(e: Env) {
    use hwkey::store::{AuditKind, AuditQuery};
    let count = |name: &'static str, kind: AuditKind| {
        let q = AuditQuery { username: Some(name.into()), kind: Some(kind), ..Default::default() };
        let store = e.store.clone();
        async move { store.audit_events(&q).await.expect("events").len() }
    };
    let sessions = |u: &UserRecord| {
        let (store, h, now) = (e.store.clone(), u.handle.0.clone(), e.now());
        async move { store.sessions_of_user(&h, now).await.expect("sessions").len() }
    };

    // A recovery code (an account without a password: the code alone).
    let u = e.user("kim", 1).await;
    let key = e.session(&u, SignInMethod::Key).await;
    let enrollment = e.svc.totp_enroll(e.svc.step_up(&key).expect("step-up")).await.expect("enroll");
    let code = e.code(&enrollment.secret_base32);
    let codes = e.svc.totp_confirm(e.svc.step_up(&key).expect("step-up"), &code, None).await.expect("confirm");
    fail_audit_of(&e.store, Some("recovery_code_used")).await;
    let r = e.svc.login_recovery(None, Some("kim"), &codes[0], None).await;
    assert!(matches!(r, Err(AccountError::Storage(_))), "{r:?}");
    assert_eq!(e.store.recovery_code_hashes(&u.handle).await.expect("codes").len(), codes.len(), "not used up");
    assert_eq!(sessions(&u).await, 1, "no session");
    assert_eq!((count("kim", AuditKind::RecoveryCodeUsed).await, count("kim", AuditKind::SignIn).await), (0, 0));
    fail_audit_of(&e.store, None).await;
    let (s, left) = e.svc.login_recovery(None, Some("kim"), &codes[0], None).await.expect("the same code");
    assert_eq!((s.session.method, left), (SignInMethod::Recovery, codes.len() - 1));
    assert_eq!(sessions(&u).await, 2);
    assert_eq!((count("kim", AuditKind::RecoveryCodeUsed).await, count("kim", AuditKind::SignIn).await), (1, 1));

    // A TOTP code.
    let u = e.user("lee", 3).await;
    let key = e.session(&u, SignInMethod::Key).await;
    let secret = e.totp(&key).await;
    e.advance(30);
    let before = e.store.totp(&u.handle).await.expect("totp").expect("on").last_step;
    fail_audit_of(&e.store, Some("sign_in")).await;
    let code = e.code(&secret);
    let r = e.svc.login_totp(None, Some("lee"), &code, None).await;
    assert!(matches!(r, Err(AccountError::Storage(_))), "{r:?}");
    assert_eq!(e.store.totp(&u.handle).await.expect("totp").expect("on").last_step, before, "the step is not spent");
    assert_eq!(sessions(&u).await, 1, "no session");
    assert_eq!(count("lee", AuditKind::SignIn).await, 0);
    fail_audit_of(&e.store, None).await;
    let s = e.svc.login_totp(None, Some("lee"), &code, None).await.expect("the same code");
    assert_eq!(s.session.method, SignInMethod::Totp);
    assert_ne!(e.store.totp(&u.handle).await.expect("totp").expect("on").last_step, before);
    assert_eq!(sessions(&u).await, 2);
    assert_eq!(count("lee", AuditKind::SignIn).await, 1);
    // And the code is spent now.
    assert!(matches!(e.svc.login_totp(None, Some("lee"), &code, None).await, Err(AccountError::InvalidCode)));
}

#[tokio::test]
async fn code_sign_ins_and_their_events_are_one_transaction_sqlite() {
    code_sign_ins_and_their_events_are_one_transaction(env().await).await;
}

#[cfg(feature = "postgres")]
mod pgdb;

/// The same on PostgreSQL (`HWKEY_TEST_POSTGRES_URL`, see tests/pgdb).
#[cfg(feature = "postgres")]
#[tokio::test]
async fn code_sign_ins_and_their_events_are_one_transaction_postgres() {
    let Some(admin) = pgdb::admin_url() else { return };
    let db = pgdb::TestDb::create(&admin, "code_audit").await;
    let store = DbStore::connect(&db.url).await.expect("store");
    code_sign_ins_and_their_events_are_one_transaction(
        env_with(Arc::new(SecretKeyring::ephemeral().expect("keys")), store.clone()).await,
    )
    .await;
    store.close().await;
    db.drop_db().await;
}

/// The SQLite store answers a username-first lookup of a name without an
/// account from its index of every stored name (no database read, as fast
/// as a cached hit): the index holds the names stored before it was opened,
/// new registrations and renames.
#[tokio::test]
async fn the_sqlite_username_index_follows_registrations_and_renames() {
    let dir = std::env::temp_dir().join(format!("hwkey-names-{}-{}", std::process::id(), line!()));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}", dir.join("db.sqlite3").display());
    let store = DbStore::connect(&url).await.expect("store");
    let now = SystemTime::now();
    let ann = UserRecord::new("ann", "ann", now).expect("user");
    store.add_credential(Some(&ann), &cred(1, &ann), "a", now).await.expect("add");
    assert!(store.user_with_credentials("ann").await.expect("lookup").is_some());
    assert!(store.user_with_credentials("bob").await.expect("lookup").is_none());
    store.close().await;
    drop(store);

    let store = DbStore::connect(&url).await.expect("reopen");
    assert!(store.user_with_credentials("ann").await.expect("lookup").is_some(), "stored before the open");
    assert!(store.rename_user(&ann.handle, "ann", "anna").await.expect("rename"));
    assert!(store.user_with_credentials("ann").await.expect("lookup").is_none());
    assert_eq!(
        store.user_with_credentials("anna").await.expect("lookup").map(|(u, c)| (u.handle, c.len())),
        Some((ann.handle.clone(), 1))
    );
    let bob = UserRecord::new("bob", "bob", now).expect("user");
    store.add_credential(Some(&bob), &cred(3, &bob), "b", now).await.expect("add");
    assert!(store.user_with_credentials("bob").await.expect("lookup").is_some(), "registered after the open");
    store.close().await;
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}
