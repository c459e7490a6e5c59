//! Who may do what: the one place that decides it (CONTRACTS §2.1).
//!
//! A session is made by a [`SignInMethod`], and the method decides its
//! [`Strength`]:
//!
//! - **full**: a security key was used (alone, or after the password), or the
//!   password and a second factor (TOTP code, recovery code);
//! - **fallback only**: a TOTP code or a recovery code alone, on an account
//!   without a password.
//!
//! What needs a *recent* sign-in (within
//! [`AccountConfig::recent_sign_in`](super::AccountConfig::recent_sign_in))
//! needs proof of it, and the proofs are types that only this module makes:
//!
//! - [`StepUp`]: a **full** session that began recently. Removing a key,
//!   turning TOTP on or off, new recovery codes, setting, changing or
//!   removing the password take a `StepUp`.
//! - [`KeyEnrollment`]: a recent session of either strength. Adding a
//!   security key takes only this: someone who lost their key and came in
//!   with a recovery code must be able to register a new one, and nothing
//!   else (a guessed TOTP code then cannot remove the owner's keys, turn
//!   their factors off or mint recovery codes).
//!
//! The user-verification floor lives here too: a request may ask for more
//! user verification than the relying party's configuration, never less.

use super::AccountError;
use super::sessions::Session;
use crate::server::UserVerification;
use crate::store::UserRecord;
use std::time::Duration;

/// How a session was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignInMethod {
    /// A security key (WebAuthn assertion or a new registration).
    Key,
    /// The password, then a security key.
    PasswordKey,
    /// The password, then a TOTP code.
    PasswordTotp,
    /// The password, then a recovery code.
    PasswordRecovery,
    /// A TOTP code alone (account without a password).
    Totp,
    /// A recovery code alone (account without a password).
    Recovery,
}

/// What a session may do, decided by the method it was made by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strength {
    /// A key, or the password and a second factor.
    Full,
    /// A TOTP or recovery code alone.
    FallbackOnly,
}

impl SignInMethod {
    /// Every method.
    pub const ALL: [SignInMethod; 6] = [
        SignInMethod::Key,
        SignInMethod::PasswordKey,
        SignInMethod::PasswordTotp,
        SignInMethod::PasswordRecovery,
        SignInMethod::Totp,
        SignInMethod::Recovery,
    ];

    /// The stable name (stored, and shown in `GET /api/sessions`).
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Key => "security_key",
            SignInMethod::PasswordKey => "password+security_key",
            SignInMethod::PasswordTotp => "password+totp",
            SignInMethod::PasswordRecovery => "password+recovery_code",
            SignInMethod::Totp => "totp",
            SignInMethod::Recovery => "recovery_code",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The strength of a session made this way.
    pub fn strength(self) -> Strength {
        match self {
            SignInMethod::Key
            | SignInMethod::PasswordKey
            | SignInMethod::PasswordTotp
            | SignInMethod::PasswordRecovery => Strength::Full,
            SignInMethod::Totp | SignInMethod::Recovery => Strength::FallbackOnly,
        }
    }

    /// Whether a security key was part of it (what lifts the lockout).
    pub fn used_key(self) -> bool {
        matches!(self, SignInMethod::Key | SignInMethod::PasswordKey)
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            SignInMethod::Key => 1,
            SignInMethod::PasswordKey => 2,
            SignInMethod::PasswordTotp => 3,
            SignInMethod::PasswordRecovery => 4,
            SignInMethod::Totp => 5,
            SignInMethod::Recovery => 6,
        }
    }

    pub(crate) fn from_tag(t: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.tag() == t)
    }
}

/// A signed-in caller: a valid session and its user.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The session (token contents).
    pub session: Session,
    /// The signed-in user.
    pub user: UserRecord,
}

impl Authenticated {
    /// The session's strength.
    pub fn strength(&self) -> Strength {
        self.session.method.strength()
    }
}

/// Proof that the caller has a **full** session that began recently: what
/// removing a key, changing TOTP, recovery codes or the password takes.
/// Only [`step_up`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct StepUp<'a> {
    auth: &'a Authenticated,
}

impl<'a> StepUp<'a> {
    /// The session it was made from.
    pub fn auth(&self) -> &'a Authenticated {
        self.auth
    }
}

/// Proof that the caller may add a security key to the account: a recent
/// session of either strength. Only [`may_add_key`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct KeyEnrollment<'a> {
    auth: &'a Authenticated,
}

impl<'a> KeyEnrollment<'a> {
    /// The session it was made from.
    pub fn auth(&self) -> &'a Authenticated {
        self.auth
    }
}

fn is_recent(s: &Session, now_ms: i64, recent: Duration) -> bool {
    let age = now_ms.saturating_sub(s.issued_ms);
    u128::try_from(age).is_ok_and(|age| age <= recent.as_millis())
}

/// The proof for sensitive changes, or `reauthentication_required`.
pub fn step_up(auth: &Authenticated, now_ms: i64, recent: Duration) -> Result<StepUp<'_>, AccountError> {
    match auth.strength() {
        Strength::FallbackOnly => Err(AccountError::ReauthenticationRequired { minutes: 0 }),
        Strength::Full if is_recent(&auth.session, now_ms, recent) => Ok(StepUp { auth }),
        Strength::Full => Err(AccountError::ReauthenticationRequired { minutes: minutes(recent) }),
    }
}

/// The proof for adding a key, or `reauthentication_required`.
pub fn may_add_key(auth: &Authenticated, now_ms: i64, recent: Duration) -> Result<KeyEnrollment<'_>, AccountError> {
    if is_recent(&auth.session, now_ms, recent) {
        Ok(KeyEnrollment { auth })
    } else {
        Err(AccountError::ReauthenticationRequired { minutes: minutes(recent) })
    }
}

fn minutes(d: Duration) -> u64 {
    d.as_secs().div_ceil(60)
}

/// The user verification to ask for: the request's, but never less than
/// the configured `floor` (what the relying party core applies too:
/// [`RelyingParty::user_verification_for`](crate::server::RelyingParty::user_verification_for)).
pub fn user_verification(floor: UserVerification, requested: Option<UserVerification>) -> UserVerification {
    requested.map_or(floor, |r| r.at_least(floor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::webauthn::Base64Url;

    fn auth(method: SignInMethod, issued_ms: i64) -> Authenticated {
        Authenticated {
            session: Session { id: [0; 32], user_handle: vec![1], issued_ms, expires_ms: i64::MAX, method },
            user: UserRecord {
                handle: Base64Url(vec![1]),
                username: "u".into(),
                display_name: "u".into(),
                created_unix_ms: 0,
            },
        }
    }

    const TEN_MIN: Duration = Duration::from_secs(600);

    #[test]
    fn fallback_sessions_may_add_a_key_and_nothing_sensitive() {
        for m in [SignInMethod::Totp, SignInMethod::Recovery] {
            let a = auth(m, 0);
            assert!(step_up(&a, 1, TEN_MIN).is_err(), "{m:?}");
            assert!(may_add_key(&a, 1, TEN_MIN).is_ok(), "{m:?}");
        }
        for m in
            [SignInMethod::Key, SignInMethod::PasswordKey, SignInMethod::PasswordTotp, SignInMethod::PasswordRecovery]
        {
            let a = auth(m, 0);
            assert!(step_up(&a, 1, TEN_MIN).is_ok(), "{m:?}");
            assert!(step_up(&a, 600_001, TEN_MIN).is_err(), "{m:?} old");
        }
    }

    #[test]
    fn methods_round_trip() {
        for m in SignInMethod::ALL {
            assert_eq!(SignInMethod::parse(m.as_str()), Some(m));
            assert_eq!(SignInMethod::from_tag(m.tag()), Some(m));
        }
        assert_eq!(SignInMethod::from_tag(0), None);
    }

    #[test]
    fn a_request_cannot_lower_user_verification() {
        use UserVerification::*;
        assert_eq!(user_verification(Required, Some(Discouraged)), Required);
        assert_eq!(user_verification(Required, Some(Preferred)), Required);
        assert_eq!(user_verification(Preferred, Some(Discouraged)), Preferred);
        assert_eq!(user_verification(Preferred, Some(Required)), Required);
        assert_eq!(user_verification(Discouraged, None), Discouraged);
    }
}
