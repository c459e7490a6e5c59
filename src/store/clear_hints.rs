//! What a key sign-in may have to lift, known in memory (SQLite).
//!
//! A key sign-in lifts the account's failures in a row (`account_failures`)
//! and its attempt window (`otp_attempts`). Almost always there is nothing
//! to lift, and the SQLite writer thread would still run two `DELETE`s per
//! sign-in in its group commit. The SQLite store is the only writer of its
//! file, so it notes which users and subjects may have such rows and the
//! writer skips the `DELETE` for the others.
//!
//! **The invariant**: every committed row's user (or subject) is noted. A
//! name is noted before the statement that writes its row runs, and never
//! forgotten while the store lives: forgetting it after a `DELETE` could
//! race with a row being written at that moment, which would then stay
//! (a lockout a later key sign-in does not lift). The sets are rebuilt from
//! the tables at start. Past [`MAX_NOTED`] names in all (failures from many
//! addresses) the sets are dropped and every sign-in runs both `DELETE`s
//! again, as before, until the next start.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The most names noted before the hints give up (and every sign-in deletes).
pub(crate) const MAX_NOTED: usize = 100_000;

#[derive(Debug, Default)]
struct Sets {
    users: HashSet<Vec<u8>>,
    subjects: HashSet<String>,
    /// Too many names: everyone may have rows.
    saturated: bool,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct ClearHints {
    sets: Mutex<Sets>,
}

impl ClearHints {
    fn sets(&self) -> MutexGuard<'_, Sets> {
        // Each update is one call on consistent sets.
        self.sets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_size(s: &mut Sets) {
        if s.users.len() + s.subjects.len() > MAX_NOTED {
            *s = Sets { saturated: true, ..Sets::default() };
        }
    }

    /// `user` may have a row in `account_failures` from now on.
    pub(crate) fn note_user(&self, user: &[u8]) {
        let mut s = self.sets();
        if !s.saturated && !s.users.contains(user) {
            s.users.insert(user.to_vec());
            Self::check_size(&mut s);
        }
    }

    /// `subject` may have rows in `otp_attempts` from now on.
    pub(crate) fn note_subject(&self, subject: &str) {
        let mut s = self.sets();
        if !s.saturated && !s.subjects.contains(subject) {
            s.subjects.insert(subject.to_owned());
            Self::check_size(&mut s);
        }
    }

    /// May `user` have a row in `account_failures`?
    pub(crate) fn may_have_user(&self, user: &[u8]) -> bool {
        let s = self.sets();
        s.saturated || s.users.contains(user)
    }

    /// May `subject` have rows in `otp_attempts`?
    pub(crate) fn may_have_subject(&self, subject: &str) -> bool {
        let s = self.sets();
        s.saturated || s.subjects.contains(subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noted_names_stay_noted_and_too_many_mean_everyone() {
        let h = ClearHints::default();
        assert!(!h.may_have_user(b"alice") && !h.may_have_subject("user:alice"));
        h.note_user(b"alice");
        h.note_subject("user:alice");
        assert!(h.may_have_user(b"alice") && h.may_have_subject("user:alice"));
        assert!(!h.may_have_user(b"bob") && !h.may_have_subject("user:bob"));
        for i in 0..=MAX_NOTED {
            h.note_subject(&format!("ip:{i}"));
        }
        assert!(h.may_have_user(b"bob") && h.may_have_subject("anything"), "saturated: every sign-in deletes");
    }
}
