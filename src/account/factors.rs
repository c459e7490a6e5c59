//! Managing the factors of an account: the password, the authenticator app
//! (TOTP), recovery codes and security keys. Every change that could lock
//! the owner out or let a thief back in takes a [`StepUp`] (see
//! `policy.rs`), and every change ends the account's other sessions. Each
//! change, that ending and its audit event are one transaction (the
//! store's `*_with_event` methods).

use super::flows::{RECOVERY_CODE_COUNT, unix_secs};
use super::password::Password;
use super::policy::{Authenticated, StepUp};
use super::{AccountError, AccountService, secrets, throttle};
use crate::otp::qr::Qr;
use crate::otp::recovery::RecoveryCodes;
use crate::otp::totp::Window;
use crate::otp::{Algorithm, Digits, KeyUri, OtpSecret, Totp};
use crate::store::otp::TotpSecretRecord;
use crate::store::{AuditKind, DeleteOutcome, NewAuditEvent, Store, UserRecord, ms};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;
use zeroize::Zeroizing;

/// How long an unconfirmed enrollment stays valid.
pub const ENROLLMENT_TTL: Duration = Duration::from_secs(10 * 60);
// The store purges unconfirmed enrollments only after they expired here.
const _: () = assert!(ENROLLMENT_TTL.as_secs() < crate::store::otp::PENDING_TOTP_MAX_AGE.as_secs());
/// Pixels per QR module in the SVG.
const QR_MODULE_PX: usize = 4;

/// A started authenticator-app enrollment, shown once.
#[derive(Debug)]
pub struct TotpEnrollment {
    /// The secret in base32 (zeroized on drop).
    pub secret_base32: Zeroizing<String>,
    /// The otpauth URI.
    pub otpauth_uri: Zeroizing<String>,
    /// The QR code of the URI.
    pub qr_svg: String,
    /// `SHA1`.
    pub algorithm: String,
    /// 6.
    pub digits: u32,
    /// 30.
    pub period: u64,
    /// The issuer shown.
    pub issuer: String,
    /// The account name shown.
    pub account: String,
    /// When it expires unconfirmed, Unix ms.
    pub expires_ms: i64,
}

/// The account's fallback factors, for `GET /api/otp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpStatus {
    /// TOTP is on.
    pub totp_enabled: bool,
    /// An enrollment waits for its code.
    pub totp_pending: bool,
    /// When TOTP was turned on.
    pub totp_enabled_ms: Option<i64>,
    /// When a TOTP code last signed in.
    pub totp_last_used_ms: Option<i64>,
    /// Unused recovery codes.
    pub recovery_codes_remaining: usize,
    /// A password is set.
    pub password_set: bool,
}

/// A hash of a random code nobody knows, checked in place of missing ones so
/// every recovery sign-in costs the same.
fn dummy_hash() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY.get_or_init(|| RecoveryCodes::generate(1).ok().and_then(|(_, set)| set.hashes.into_iter().next())).as_deref()
}

/// The id of the stored code `code` matches, checking every stored hash and
/// dummies up to `RECOVERY_CODE_COUNT` (constant work per attempt).
pub(crate) fn match_recovery_code(code: &str, stored: &[(i64, String)]) -> Option<i64> {
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

/// The detail of an event whose change ended the account's other sessions.
const OTHERS_ENDED: &str = "other sessions ended";

fn user_event(kind: AuditKind, user: &UserRecord) -> NewAuditEvent {
    NewAuditEvent::new(kind).user(&user.username, &user.handle)
}

fn pending_expired(r: &TotpSecretRecord, now_ms: i64) -> bool {
    let ttl = i64::try_from(ENROLLMENT_TTL.as_millis()).unwrap_or(i64::MAX);
    r.created_unix_ms.saturating_add(ttl) < now_ms
}

impl<S: Store> AccountService<S> {
    async fn new_recovery_codes(&self) -> Result<(Vec<Zeroizing<String>>, RecoveryCodes), AccountError> {
        self.hasher()
            .run(|| RecoveryCodes::generate(RECOVERY_CODE_COUNT))
            .await?
            .map_err(|e| AccountError::Internal(format!("recovery code generation: {e}")))
    }

    /// The account's fallback factors and password.
    pub async fn otp_status(&self, auth: &Authenticated) -> Result<OtpStatus, AccountError> {
        let h = &auth.user.handle;
        let totp = self.store().totp(h).await?;
        let now = self.now_ms();
        let pending = self.store().pending_totp(h).await?.filter(|p| !pending_expired(p, now));
        Ok(OtpStatus {
            totp_enabled: totp.is_some(),
            totp_pending: pending.is_some(),
            totp_enabled_ms: totp.as_ref().map(|t| t.created_unix_ms),
            totp_last_used_ms: totp.as_ref().and_then(|t| t.last_used_unix_ms),
            recovery_codes_remaining: self.store().recovery_code_hashes(h).await?.len(),
            password_set: self.store().password_hash(h).await?.is_some(),
        })
    }

    /// Set or change the password; ends the account's other sessions. The
    /// change, the ending and the audit event are one transaction.
    pub async fn set_password(&self, proof: StepUp<'_>, password: &str) -> Result<(), AccountError> {
        let auth = proof.auth();
        let password = Password::new(password);
        password.check_new()?;
        let hash = self.hasher().hash(password).await?;
        let had = self.store().password_hash(&auth.user.handle).await?.is_some();
        let what = if had { "password changed; other sessions ended" } else { "password set; other sessions ended" };
        let event = super::audit::bounded(user_event(AuditKind::PasswordChanged, &auth.user).detail(what), true);
        self.store().change_password(&auth.user.handle, Some(&hash), &auth.session.id, &event, self.now()).await?;
        Ok(())
    }

    /// Remove the password; ends the account's other sessions (one
    /// transaction with the audit event).
    pub async fn remove_password(&self, proof: StepUp<'_>) -> Result<(), AccountError> {
        let auth = proof.auth();
        let event = super::audit::bounded(
            user_event(AuditKind::PasswordChanged, &auth.user).detail("password removed; other sessions ended"),
            true,
        );
        let (changed, _) =
            self.store().change_password(&auth.user.handle, None, &auth.session.id, &event, self.now()).await?;
        if !changed {
            return Err(AccountError::NoPassword);
        }
        Ok(())
    }

    /// Remove one of the account's keys (never the last); ends the other sessions.
    pub async fn remove_key(&self, proof: StepUp<'_>, credential_id: &[u8]) -> Result<(), AccountError> {
        let auth = proof.auth();
        let event = super::audit::bounded(
            user_event(AuditKind::CredentialRemoved, &auth.user).credential(credential_id).detail(OTHERS_ENDED),
            true,
        );
        let h = &auth.user.handle;
        match self.store().delete_credential_with_event(h, credential_id, &auth.session.id, &event, self.now()).await? {
            (DeleteOutcome::Deleted, _) => Ok(()),
            (DeleteOutcome::NotFound, _) => Err(AccountError::UnknownCredential),
            (DeleteOutcome::LastCredential, _) => Err(AccountError::LastCredential),
        }
    }

    /// Start setting up an authenticator app: a new secret, pending until
    /// confirmed with a code (sealed at rest).
    pub async fn totp_enroll(&self, proof: StepUp<'_>) -> Result<TotpEnrollment, AccountError> {
        let user = &proof.auth().user;
        if self.store().totp(&user.handle).await?.is_some() {
            return Err(AccountError::TotpAlreadyEnabled);
        }
        let internal = |what: &str, e: &dyn std::fmt::Display| AccountError::Internal(format!("{what}: {e}"));
        let secret = OtpSecret::generate().map_err(|e| internal("secret generation", &e))?;
        let issuer = {
            let name = self.config().issuer.replace(':', " ");
            if name.trim().is_empty() { "hwkey".to_owned() } else { name.trim().to_owned() }
        };
        let account = user.username.trim().to_owned();
        let uri = Zeroizing::new(
            KeyUri::new_totp(Some(issuer.as_str()), &account, secret.clone())
                .to_uri()
                .map_err(|e| internal("otpauth URI", &e))?,
        );
        let svg = Qr::new(&uri).map_err(|e| internal("QR code", &e))?.to_svg(QR_MODULE_PX);
        let now = self.now_ms();
        let record = TotpSecretRecord {
            secret: Zeroizing::new(self.keys().seal(secrets::Purpose::Totp, &user.handle, secret.as_bytes())?),
            algorithm: Algorithm::Sha1.as_str().to_owned(),
            digits: u32::from(Digits::SIX.get()),
            period: Totp::DEFAULT_PERIOD,
            created_unix_ms: now,
            last_step: None,
            last_used_unix_ms: None,
        };
        self.store().put_pending_totp(&user.handle, &record).await?;
        self.audit(user_event(AuditKind::TotpEnrollmentStarted, user), true).await;
        Ok(TotpEnrollment {
            secret_base32: Zeroizing::new(secret.to_base32()),
            otpauth_uri: uri,
            qr_svg: svg,
            algorithm: record.algorithm.clone(),
            digits: record.digits,
            period: record.period,
            issuer,
            account,
            expires_ms: now.saturating_add(i64::try_from(ENROLLMENT_TTL.as_millis()).unwrap_or(0)),
        })
    }

    /// Confirm the pending enrollment with a code: TOTP on, new recovery
    /// codes (returned, shown once), the other sessions ended. Throttled
    /// like a sign-in.
    pub async fn totp_confirm(
        &self,
        proof: StepUp<'_>,
        code: &str,
        addr: Option<IpAddr>,
    ) -> Result<Vec<Zeroizing<String>>, AccountError> {
        let auth = proof.auth();
        let user = &auth.user;
        let code: Zeroizing<String> =
            Zeroizing::new(code.chars().filter(|c| !c.is_whitespace() && *c != '-').take(65).collect());
        let now = self.now();
        let subject = format!("confirm:{}", crate::proto::webauthn::b64url_encode(&user.handle));
        throttle::attempt(self.store(), &subject, addr, now).await?;
        let pending = self
            .store()
            .pending_totp(&user.handle)
            .await?
            .filter(|p| !pending_expired(p, ms(now)))
            .ok_or(AccountError::NoPendingEnrollment)?;
        let totp = self.totp_of(&user.handle, &pending)?;
        let Ok(step) = totp.verify(&code, unix_secs(now), Window::default(), None) else {
            throttle::address_failed(self.store(), addr, now).await?;
            return Err(AccountError::WrongEnrollmentCode);
        };
        let (codes, set) = self.new_recovery_codes().await?;
        let events = [
            super::audit::bounded(user_event(AuditKind::TotpEnabled, user).detail(OTHERS_ENDED), true),
            super::audit::bounded(
                user_event(AuditKind::RecoveryCodesGenerated, user).detail(format!("{} codes", codes.len())),
                true,
            ),
        ];
        let confirmed = self
            .store()
            .confirm_totp_with_events(&user.handle, &pending.secret, step, &set.hashes, &auth.session.id, &events, now)
            .await?;
        if confirmed.is_none() {
            return Err(AccountError::NoPendingEnrollment);
        }
        throttle::succeeded(self.store(), &subject).await?;
        Ok(codes)
    }

    /// Turn the authenticator app off (recovery codes stay); ends the other sessions.
    pub async fn totp_disable(&self, proof: StepUp<'_>) -> Result<(), AccountError> {
        let auth = proof.auth();
        let event = super::audit::bounded(user_event(AuditKind::TotpDisabled, &auth.user).detail(OTHERS_ENDED), true);
        let h = &auth.user.handle;
        if self.store().delete_totp_with_event(h, &auth.session.id, &event, self.now()).await?.is_none() {
            return Err(AccountError::TotpNotEnabled);
        }
        Ok(())
    }

    /// Replace the recovery codes with new ones (returned, shown once); ends
    /// the other sessions.
    pub async fn regenerate_recovery_codes(&self, proof: StepUp<'_>) -> Result<Vec<Zeroizing<String>>, AccountError> {
        let auth = proof.auth();
        let (codes, set) = self.new_recovery_codes().await?;
        let event = super::audit::bounded(
            user_event(AuditKind::RecoveryCodesGenerated, &auth.user)
                .detail(format!("{} codes; other sessions ended", codes.len())),
            true,
        );
        let h = &auth.user.handle;
        self.store().replace_recovery_codes_with_event(h, &set.hashes, &auth.session.id, &event, self.now()).await?;
        Ok(codes)
    }
}
