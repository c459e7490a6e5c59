//! The security audit log as the account service writes it.
//!
//! - Fields that come from a request (a username as typed, an error
//!   message quoting input) are truncated: to [`ANONYMOUS_FIELD_CHARS`] for
//!   requests without a session, so whoever is not signed in cannot write
//!   large rows, and to [`AUTHENTICATED_FIELD_CHARS`] otherwise.
//! - Events older than the retention period
//!   ([`AccountConfig::audit_retention`](super::AccountConfig::audit_retention),
//!   90 days by default) are deleted by the maintenance task
//!   ([`AccountService::purge`](super::AccountService::purge)).
//! - A key sign-in writes its event in the same statement or transaction
//!   as the sign-in itself ([`AccountStore::record_key_sign_in`](crate::store::account::AccountStore::record_key_sign_in)),
//!   and so do the sign-ins with a TOTP code or a recovery code, with the
//!   time step spent or the code used up
//!   ([`AccountStore::record_totp_sign_in`](crate::store::account::AccountStore::record_totp_sign_in),
//!   [`AccountStore::record_recovery_sign_in`](crate::store::account::AccountStore::record_recovery_sign_in)):
//!   when the event cannot be written, the sign-in fails and the code stays unused.
//! - So does every security change: a password set or removed, TOTP turned
//!   on or off, new recovery codes, a key removed, a session ended. The
//!   change, the ending of the other sessions it brings and its event are
//!   one transaction (`AccountStore::change_password` and the
//!   `AccountStore::*_with_event` methods); a refused change writes none.

use crate::store::NewAuditEvent;

/// Longest request-supplied field of an event written for a caller without a session.
pub const ANONYMOUS_FIELD_CHARS: usize = 128;
/// Longest request-supplied field of an event written for a signed-in caller.
pub const AUTHENTICATED_FIELD_CHARS: usize = 1024;

fn truncate(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
}

/// `event` with its free-text fields cut to the limit for the caller.
pub fn bounded(mut event: NewAuditEvent, authenticated: bool) -> NewAuditEvent {
    let max = if authenticated { AUTHENTICATED_FIELD_CHARS } else { ANONYMOUS_FIELD_CHARS };
    truncate(&mut event.detail, max);
    if let Some(u) = event.username.as_mut() {
        truncate(u, 64);
    }
    if let Some(c) = event.code.as_mut() {
        truncate(c, 64);
    }
    if let Some(id) = event.credential_id.as_mut() {
        id.truncate(if authenticated { 1023 } else { 255 });
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditKind;

    #[test]
    fn anonymous_events_are_small() {
        let e = NewAuditEvent::new(AuditKind::SignInFailed).username(&"u".repeat(500)).detail("d".repeat(100_000));
        let a = bounded(e.clone(), false);
        assert_eq!(a.detail.chars().count(), ANONYMOUS_FIELD_CHARS + 1);
        assert_eq!(a.username.as_deref().map(|u| u.chars().count()), Some(65));
        let b = bounded(e, true);
        assert_eq!(b.detail.chars().count(), AUTHENTICATED_FIELD_CHARS + 1);
        let short = bounded(NewAuditEvent::new(AuditKind::SignIn).detail("ok"), false);
        assert_eq!(short.detail, "ok");
    }
}
