//! The SQLite store's index of session rows by user, held in memory.
//!
//! Listing a user's sessions and ending "every other session" need the
//! session rows of one user. An on-disk index on `account_sessions
//! (user_handle)` answers that, but every sign-in then writes a page of it
//! at a place of its own (the user's), so each group commit of the writer
//! thread writes (and later checkpoints) one more 4 KiB page per sign-in:
//! measured, that index alone cost about a tenth of the sign-in rate and
//! doubled the bytes written per sign-in. The SQLite store is the only
//! writer of its file (it holds a lock on it), so it keeps that index in
//! memory instead and rebuilds it from the table at start (one scan of the
//! unexpired rows). PostgreSQL keeps its on-disk index (several instances
//! share one database there).
//!
//! **The invariant** that makes ending sessions safe: every committed
//! session row's id is in the index. The index may hold more (an id whose
//! insert was rolled back, a row since deleted by a cascade), which costs
//! nothing but a lookup that finds no row.
//!
//! - An id is [added](SessionIndex::add) before the statement that inserts
//!   its row runs (the writer thread does it inside its transaction).
//! - An id is [forgotten](SessionIndex::forget) only after the transaction
//!   that deleted its row committed, or once it
//!   [expired](SessionIndex::forget_expired): a row past its expiry is no
//!   session, whatever the table still holds.
//! - Whoever ends sessions reads the ids once it holds SQLite's write lock
//!   (after the first write of its transaction, or `BEGIN IMMEDIATE`), so
//!   every transaction that inserted a row before it has added its id.
//!
//! Memory: 40 bytes per session plus a key per user; the map is split in
//! [`SHARDS`] parts, each with its own lock, so sign-ins of different
//! users rarely wait for each other and a sweep of expired ids holds one
//! part at a time.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The length of every session id (a version-2 or version-3 token's id).
pub(crate) const ID_LEN: usize = 32;

/// A session id.
pub(crate) type SessionId = [u8; ID_LEN];

/// How many independently locked parts the map has.
pub(crate) const SHARDS: usize = 16;

type Shard = HashMap<Box<[u8]>, Vec<(SessionId, i64)>>;

/// Session ids by user handle, with their expiry (Unix ms). See the module
/// documentation.
#[derive(Debug)]
pub(crate) struct SessionIndex {
    hasher: RandomState,
    shards: Vec<Mutex<Shard>>,
}

impl Default for SessionIndex {
    fn default() -> Self {
        SessionIndex { hasher: RandomState::new(), shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl SessionIndex {
    fn shard(&self, user: &[u8]) -> MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(user) as usize) % SHARDS;
        // Every update is one call on a consistent map: a panic elsewhere
        // while it was held leaves nothing half done.
        self.shards[i].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id as the index keeps it; `None` when it is not [`ID_LEN`] bytes
    /// (no token has such an id).
    pub(crate) fn id(id: &[u8]) -> Option<SessionId> {
        SessionId::try_from(id).ok()
    }

    /// Note the session `id` of `user`, expiring at `expires_ms`: call it
    /// before its row is inserted. False (nothing noted) when the id is not
    /// [`ID_LEN`] bytes: such a row must not be written.
    pub(crate) fn add(&self, user: &[u8], id: &[u8], expires_ms: i64) -> bool {
        let Some(id) = Self::id(id) else { return false };
        let mut shard = self.shard(user);
        match shard.get_mut(user) {
            // Ids are unique (issue time and MAC); a second copy would be
            // harmless anyway (forgetting removes every copy).
            Some(ids) => ids.push((id, expires_ms)),
            None => {
                shard.insert(user.into(), vec![(id, expires_ms)]);
            }
        }
        true
    }

    /// Every id noted for `user`, expired or not (ending sessions ends them all).
    pub(crate) fn ids_of(&self, user: &[u8]) -> Vec<SessionId> {
        self.shard(user).get(user).map(|ids| ids.iter().map(|(i, _)| *i).collect()).unwrap_or_default()
    }

    /// The ids of `user` that expire after `now_ms` (listing sessions).
    pub(crate) fn live_ids_of(&self, user: &[u8], now_ms: i64) -> Vec<SessionId> {
        self.shard(user)
            .get(user)
            .map(|ids| ids.iter().filter(|(_, e)| *e > now_ms).map(|(i, _)| *i).collect())
            .unwrap_or_default()
    }

    /// Forget `ids` of `user`: call it after the transaction that deleted
    /// their rows committed.
    pub(crate) fn forget(&self, user: &[u8], ids: &[SessionId]) {
        if ids.is_empty() {
            return;
        }
        let mut shard = self.shard(user);
        if let Some(list) = shard.get_mut(user) {
            if ids.len() == 1 {
                list.retain(|(i, _)| *i != ids[0]);
            } else {
                let gone: std::collections::HashSet<&SessionId> = ids.iter().collect();
                list.retain(|(i, _)| !gone.contains(i));
            }
            if list.is_empty() {
                shard.remove(user);
            }
        }
    }

    /// Forget every id that expired before `now_ms` (the maintenance purge
    /// deletes their rows); how many went. One part of the map is locked at
    /// a time.
    pub(crate) fn forget_expired(&self, now_ms: i64) -> usize {
        let mut gone = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.retain(|_, ids| {
                let before = ids.len();
                ids.retain(|(_, e)| *e >= now_ms);
                gone += before - ids.len();
                if ids.capacity() > 2 * ids.len() + 4 {
                    ids.shrink_to_fit();
                }
                !ids.is_empty()
            });
        }
        gone
    }

    /// How many ids are noted in all.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).values().map(Vec::len).sum::<usize>())
            .sum()
    }
}

/// The most ids bound into one statement (SQLite allows 32,766 parameters;
/// this keeps each statement small).
pub(crate) const IDS_PER_STATEMENT: usize = 256;

/// `DELETE` of the rows among `n` ids (`$3..`) of user `$1`, except `$2`.
pub(crate) fn end_ids_sql(n: usize) -> String {
    let mut s = String::from("DELETE FROM account_sessions WHERE user_handle = $1 AND id <> $2 AND id IN (");
    push_placeholders(&mut s, 3, n);
    s.push(')');
    s
}

/// `SELECT` of the unexpired rows (after `$2`) among `n` ids (`$3..`) of user `$1`.
pub(crate) fn rows_of_ids_sql(n: usize) -> String {
    let mut s = String::from(
        "SELECT id, user_handle, method, created_ms, last_seen_ms, expires_ms FROM account_sessions \
         WHERE user_handle = $1 AND expires_ms > $2 AND id IN (",
    );
    push_placeholders(&mut s, 3, n);
    s.push(')');
    s
}

fn push_placeholders(s: &mut String, first: usize, n: usize) {
    use std::fmt::Write;
    for k in 0..n {
        if k > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "${}", first + k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> [u8; 32] {
        [b; 32]
    }

    #[test]
    fn adds_lists_forgets_and_expires() {
        let ix = SessionIndex::default();
        assert!(ix.add(b"alice", &id(1), 100));
        assert!(ix.add(b"alice", &id(2), 300));
        assert!(ix.add(b"bob", &id(3), 300));
        assert!(!ix.add(b"bob", &[7; 16], 300), "an id of another length is refused");
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.ids_of(b"alice"), vec![id(1), id(2)]);
        assert_eq!(ix.live_ids_of(b"alice", 200), vec![id(2)]);
        assert!(ix.ids_of(b"carol").is_empty());
        ix.forget(b"alice", &[id(2)]);
        assert_eq!(ix.ids_of(b"alice"), vec![id(1)]);
        assert_eq!(ix.forget_expired(200), 1);
        assert!(ix.ids_of(b"alice").is_empty());
        assert_eq!(ix.ids_of(b"bob"), vec![id(3)]);
        ix.forget(b"bob", &[id(3), id(9)]);
        assert_eq!(ix.len(), 0);
    }

    #[test]
    fn statements_bind_every_id() {
        assert_eq!(
            end_ids_sql(2),
            "DELETE FROM account_sessions WHERE user_handle = $1 AND id <> $2 AND id IN ($3, $4)"
        );
        assert!(rows_of_ids_sql(3).ends_with("id IN ($3, $4, $5)"));
    }
}
