//! Pending ceremonies held in process memory, bounded (CONTRACTS §2.2):
//! at most [`CeremonyLimits::max_count`] of them and
//! [`CeremonyLimits::max_bytes`] in all, each at most
//! [`CeremonyLimits::max_one_bytes`].
//!
//! Entries sit in a map by id (the digest of the ceremony cookie) and on a
//! list in insertion order, which is expiry order since every ceremony of
//! one relying party lives equally long. Taking one unlinks it in O(1);
//! expired ones are dropped from the old end, each once, so every operation
//! is O(1) amortized and nothing scans the table under the lock. Ceremonies
//! that expired less than an hour ago are kept while there is
//! room, so that a late verify hears "expired" rather than "nothing
//! pending"; at a cap they are the first to go. When a cap is reached with
//! only live ceremonies in the cache, [`CeremonyCache::put`] fails with
//! [`CacheFull`] (the HTTP layer answers 503 `overloaded`).

use super::CEREMONY_GRACE_MS;
use std::collections::HashMap;

/// Caps of the pending-ceremony store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CeremonyLimits {
    /// Pending ceremonies at most. Default 100,000.
    pub max_count: usize,
    /// Bytes of pending ceremony state at most (as the JSON encoding
    /// measures it). Default 256 MiB.
    pub max_bytes: usize,
    /// Bytes of one ceremony at most; larger ones are refused. Default 64 KiB.
    pub max_one_bytes: usize,
}

impl Default for CeremonyLimits {
    fn default() -> Self {
        CeremonyLimits { max_count: 100_000, max_bytes: 256 << 20, max_one_bytes: 64 << 10 }
    }
}

/// A cap of [`CeremonyLimits`] is reached (or the one ceremony is too large).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many pending ceremonies ({count}, {bytes} bytes); try again later")]
pub struct CacheFull {
    /// Ceremonies held when it was refused.
    pub count: usize,
    /// Their bytes.
    pub bytes: usize,
}

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Node<V> {
    id: [u8; 32],
    value: V,
    bytes: usize,
    expires_ms: i64,
    prev: usize,
    next: usize,
}

/// Pending ceremonies of type `V`, bounded by count and bytes.
#[derive(Debug)]
pub struct CeremonyCache<V> {
    limits: CeremonyLimits,
    by_id: HashMap<[u8; 32], usize>,
    slots: Vec<Option<Node<V>>>,
    free: Vec<usize>,
    /// Oldest entry.
    head: usize,
    /// Newest entry.
    tail: usize,
    bytes: usize,
}

impl<V> CeremonyCache<V> {
    /// An empty cache with `limits`.
    pub fn new(limits: CeremonyLimits) -> Self {
        CeremonyCache {
            limits,
            by_id: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            bytes: 0,
        }
    }

    /// The caps.
    pub fn limits(&self) -> CeremonyLimits {
        self.limits
    }

    /// How many ceremonies are held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Whether a ceremony is held under `id`.
    pub fn contains(&self, id: &[u8; 32]) -> bool {
        self.by_id.contains_key(id)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn node(&self, i: usize) -> Option<&Node<V>> {
        self.slots.get(i).and_then(Option::as_ref)
    }

    fn unlink(&mut self, i: usize) -> Option<Node<V>> {
        let node = self.slots.get_mut(i)?.take()?;
        match self.slots.get_mut(node.prev).and_then(Option::as_mut) {
            Some(p) => p.next = node.next,
            None => self.head = node.next,
        }
        match self.slots.get_mut(node.next).and_then(Option::as_mut) {
            Some(n) => n.prev = node.prev,
            None => self.tail = node.prev,
        }
        self.free.push(i);
        self.by_id.remove(&node.id);
        self.bytes = self.bytes.saturating_sub(node.bytes);
        Some(node)
    }

    /// Drop the oldest entry if it expired before `before_ms`; whether one went.
    fn pop_expired(&mut self, before_ms: i64) -> bool {
        match self.node(self.head) {
            Some(n) if n.expires_ms < before_ms => self.unlink(self.head).is_some(),
            _ => false,
        }
    }

    fn over(&self, extra_bytes: usize) -> bool {
        self.by_id.len() >= self.limits.max_count || self.bytes.saturating_add(extra_bytes) > self.limits.max_bytes
    }

    /// Hold `value` (`bytes` long) under `id` until `expires_ms`. A
    /// ceremony already under `id` is replaced.
    pub fn put(&mut self, id: [u8; 32], value: V, bytes: usize, expires_ms: i64, now_ms: i64) -> Result<(), CacheFull> {
        let full = |c: &Self| CacheFull { count: c.by_id.len(), bytes: c.bytes };
        if bytes > self.limits.max_one_bytes {
            return Err(full(self));
        }
        if let Some(&i) = self.by_id.get(&id) {
            self.unlink(i);
        }
        // Long expired: always dropped (amortized: each entry goes once).
        // A few per call at most, so no call does much more than its share.
        let long_ago = now_ms.saturating_sub(CEREMONY_GRACE_MS);
        for _ in 0..4 {
            if !self.pop_expired(long_ago) {
                break;
            }
        }
        // At a cap: the recently expired go first.
        while self.over(bytes) && self.pop_expired(now_ms) {}
        if self.over(bytes) {
            return Err(full(self));
        }
        let node = Node { id, value, bytes, expires_ms, prev: self.tail, next: NIL };
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.slots.get_mut(i) {
                    *slot = Some(node);
                }
                i
            }
            None => {
                self.slots.push(Some(node));
                self.slots.len() - 1
            }
        };
        match self.slots.get_mut(self.tail).and_then(Option::as_mut) {
            Some(t) => t.next = i,
            None => self.head = i,
        }
        self.tail = i;
        self.by_id.insert(id, i);
        self.bytes = self.bytes.saturating_add(bytes);
        Ok(())
    }

    /// Remove and return the ceremony `id` with its expiry (Unix ms),
    /// expired or not.
    pub fn take(&mut self, id: &[u8; 32]) -> Option<(V, i64)> {
        let i = *self.by_id.get(id)?;
        self.unlink(i).map(|n| (n.value, n.expires_ms))
    }

    /// Drop ceremonies that expired before `before_ms` (from the old end,
    /// stopping at the first that has not); how many went.
    pub fn purge(&mut self, before_ms: i64) -> u64 {
        let mut n = 0;
        while self.pop_expired(before_ms) {
            n += 1;
        }
        n
    }
}

/// How many bytes `value` takes in JSON, counted without building the text.
pub fn json_size<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    match serde_json::to_writer(&mut c, value) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> [u8; 32] {
        let mut a = [0u8; 32];
        a[..4].copy_from_slice(&n.to_be_bytes());
        a
    }

    fn limits(count: usize, bytes: usize) -> CeremonyLimits {
        CeremonyLimits { max_count: count, max_bytes: bytes, max_one_bytes: 1000 }
    }

    #[test]
    fn count_cap_refuses_live_and_evicts_expired() {
        let mut c = CeremonyCache::new(limits(3, 1 << 20));
        for n in 0..3 {
            c.put(id(n), n, 10, 1_000, 0).expect("room");
        }
        assert_eq!(c.put(id(9), 9, 10, 1_000, 0), Err(CacheFull { count: 3, bytes: 30 }));
        // Later, the first ones expired: they make room, oldest first, as
        // many as needed (the others stay, to be reported as expired).
        c.put(id(10), 10, 10, 5_000, 2_000).expect("an expired one evicted");
        assert_eq!(c.len(), 3);
        assert_eq!(c.take(&id(0)), None);
        assert_eq!(c.take(&id(1)), Some((1, 1_000)));
        assert_eq!(c.take(&id(10)), Some((10, 5_000)));
        assert_eq!(c.bytes(), 10);
    }

    #[test]
    fn byte_cap_and_single_ceremony_cap() {
        let mut c = CeremonyCache::new(limits(100, 100));
        c.put(id(1), (), 60, 1_000, 0).expect("room");
        assert!(c.put(id(2), (), 60, 1_000, 0).is_err(), "over the byte cap");
        c.put(id(3), (), 40, 1_000, 0).expect("exactly at the cap");
        assert!(c.put(id(4), (), 1001, 1_000, 0).is_err(), "one ceremony over max_one_bytes");
        assert_eq!(c.take(&id(1)), Some(((), 1_000)));
        c.put(id(2), (), 60, 1_000, 0).expect("room again after a take");
    }

    #[test]
    fn take_from_the_middle_keeps_the_list_consistent() {
        let mut c = CeremonyCache::new(limits(100, 1 << 20));
        for n in 0..10 {
            c.put(id(n), n, 1, i64::from(n) * 10, 0).expect("room");
        }
        assert_eq!(c.take(&id(5)).map(|v| v.0), Some(5));
        assert_eq!(c.take(&id(0)).map(|v| v.0), Some(0));
        assert_eq!(c.take(&id(9)).map(|v| v.0), Some(9));
        assert_eq!(c.take(&id(5)), None);
        // 1,2,3,4 expired before 45; 6,7,8 not.
        assert_eq!(c.purge(45), 4);
        assert_eq!(c.len(), 3);
        c.put(id(20), 20, 1, 1_000, 0).expect("slot reuse");
        assert_eq!(c.purge(i64::MAX), 4);
        assert!(c.is_empty());
    }

    #[test]
    fn replacing_an_id_keeps_one_entry() {
        let mut c = CeremonyCache::new(limits(100, 1 << 20));
        c.put(id(1), "a", 5, 1_000, 0).expect("room");
        c.put(id(1), "b", 7, 2_000, 0).expect("room");
        assert_eq!((c.len(), c.bytes()), (1, 7));
        assert_eq!(c.take(&id(1)), Some(("b", 2_000)));
    }

    #[test]
    fn long_expired_go_while_putting() {
        let mut c = CeremonyCache::new(limits(1_000_000, usize::MAX));
        for n in 0..1000 {
            c.put(id(n), (), 1, 0, 0).expect("room");
        }
        // Much later: each put drops a few long-expired entries.
        let later = CEREMONY_GRACE_MS + 10;
        for n in 1000..1300 {
            c.put(id(n), (), 1, later + 1000, later).expect("room");
        }
        assert_eq!(c.len(), 300, "the 1,000 long-expired went within 250 puts");
    }

    #[test]
    fn json_size_counts_the_encoding() {
        let v = serde_json::json!({"a": [1, 2, 3], "b": "xyz"});
        assert_eq!(json_size(&v), serde_json::to_vec(&v).expect("json").len());
    }
}
