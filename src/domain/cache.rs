//! A small read-through cache for hot, rarely written rows (users, settings).
//!
//! Every read of settings needs the caller, the target user and up to three settings rows.
//! Entries live a short time (`cache_ttl_ms`, default 1 s) and every write made by this
//! process invalidates what it changed, so a process always reads its own writes; a write made
//! by another process sharing the database is seen at most one TTL later.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Entries kept before the cache is cleared wholesale (a cheap bound on memory).
const MAX_ENTRIES: usize = 100_000;

/// A map whose entries expire after a fixed time.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: RwLock<HashMap<K, (Instant, V)>>,
    /// Bumped by every invalidation: a value read from the database before an invalidation
    /// may predate the write, so it is not stored.
    epoch: AtomicU64,
}

/// Taken before reading the database; required to store what was read.
#[derive(Clone, Copy, Debug)]
pub struct ReadTicket(u64);

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// A cache whose entries live `ttl`; a zero TTL disables caching.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    /// The fresh entry for `key`, if any.
    pub fn get(&self, key: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Call before reading the database for values to [`insert`](Self::insert).
    pub fn ticket(&self) -> ReadTicket {
        ReadTicket(self.epoch.load(Ordering::Acquire))
    }

    /// Stores values read under `ticket`, unless something was invalidated since.
    pub fn insert(&self, ticket: ReadTicket, values: impl IntoIterator<Item = (K, V)>) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if self.epoch.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        let now = Instant::now();
        for (key, value) in values {
            entries.insert(key, (now, value));
        }
    }

    /// Forgets `key` (after this process changed it).
    pub fn invalidate(&self, key: &K) {
        if let Ok(mut entries) = self.entries.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_invalidation_wins_over_a_racing_read() {
        let cache = TtlCache::new(Duration::from_millis(50));
        let ticket = cache.ticket();
        cache.insert(ticket, [(1, "a")]);
        assert_eq!(cache.get(&1), Some("a"));

        let stale_read = cache.ticket();
        cache.invalidate(&1);
        cache.insert(stale_read, [(1, "stale")]);
        assert_eq!(
            cache.get(&1),
            None,
            "a read that began before the write is not stored"
        );

        cache.insert(cache.ticket(), [(2, "b")]);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&2), None, "entries expire");
    }

    #[test]
    fn zero_ttl_disables_the_cache() {
        let cache = TtlCache::new(Duration::ZERO);
        cache.insert(cache.ticket(), [(1, 1)]);
        assert_eq!(cache.get(&1), None);
    }
}
