//! The verified-token cache: a papaya map from the token's seeded 128-bit hash to its
//! verified entry, bounded, with every expiry on the injected clock.
//!
//! Chosen by measurement against moka and quick_cache (BENCHMARKS.md, "verified-token
//! cache"): papaya's reads take no lock and write nothing shared, so a hit costs a hash
//! probe on one thread or two; moka's read path records the access in its channel and
//! deques, quick_cache takes a shard read lock. What papaya lacks, this module adds:
//!
//! - expiry: each entry holds its `expires_at` (Unix seconds: the token's `exp` plus
//!   leeway, or the cache TTL, whichever is sooner); a lookup past it is a miss;
//! - a bound: an insert into a full cache first sweeps (at most once a second) the
//!   lapsed entries, then, if still over the bound, drops entries in table order (the
//!   order of the seeded hashes: no caller can pick which) down to 15/16 of it. A cache
//!   that cannot make room skips the insert: the token is verified again next time,
//!   never wrongly accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hash::Prehashed;

/// A bounded map of verified entries with expiry on the caller's clock.
pub(super) struct VerifiedCache<V> {
    map: papaya::HashMap<u128, (u64, Arc<V>), Prehashed>,
    capacity: usize,
    last_sweep: AtomicU64,
}

impl<V: Send + Sync + 'static> VerifiedCache<V> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            map: papaya::HashMap::builder()
                .capacity(capacity.min(1024))
                .hasher(Prehashed)
                // The inserting request finishes a resize (at most until the bound is
                // reached); hits never help copy nor search two tables.
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
            capacity,
            last_sweep: AtomicU64::new(0),
        }
    }

    /// The live entry under `hash` at `now`.
    #[inline]
    pub(super) fn get(&self, hash: u128, now: u64) -> Option<Arc<V>> {
        let guard = self.map.guard();
        match self.map.get(&hash, &guard) {
            Some((expires_at, v)) if now < *expires_at => Some(v.clone()),
            _ => None,
        }
    }

    /// Caches `value` under `hash` until `expires_at`, making room if the cache is full.
    pub(super) fn insert(&self, hash: u128, value: Arc<V>, expires_at: u64, now: u64) {
        if expires_at <= now {
            return;
        }
        if self.map.len() >= self.capacity && !self.make_room(now) {
            return;
        }
        self.map.pin().insert(hash, (expires_at, value));
    }

    /// Removes the entry under `hash` if `stale` says it is the one to go.
    pub(super) fn remove_if(&self, hash: u128, stale: impl Fn(&V) -> bool) {
        let map = self.map.pin();
        if map.get(&hash).is_some_and(|(_, v)| stale(v)) {
            map.remove(&hash);
        }
    }

    pub(super) fn clear(&self) {
        self.map.pin().clear();
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Sweeps lapsed entries, then trims to 15/16 of the bound. At most once a second;
    /// returns whether there is room now.
    fn make_room(&self, now: u64) -> bool {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now <= last
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return self.map.len() < self.capacity;
        }
        let map = self.map.pin();
        map.retain(|_, (expires_at, _)| now < *expires_at);
        let target = self.capacity - self.capacity / 16;
        let excess = map.len().saturating_sub(target.min(self.capacity - 1));
        if excess > 0 {
            let victims: Vec<u128> = map.keys().take(excess).copied().collect();
            for k in victims {
                map.remove(&k);
            }
        }
        map.len() < self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_lapse_on_the_callers_clock() {
        let c = VerifiedCache::new(10);
        c.insert(1, Arc::new("a"), 100, 50);
        assert!(c.get(1, 99).is_some());
        assert!(c.get(1, 100).is_none());
        // Already lapsed: not inserted.
        c.insert(2, Arc::new("b"), 100, 100);
        assert!(c.get(2, 0).is_none());
    }

    #[test]
    fn a_full_cache_stays_bounded_and_keeps_caching() {
        let c = VerifiedCache::new(64);
        for i in 0..64u128 {
            c.insert(i, Arc::new(i), 1_000, 10);
        }
        assert_eq!(c.len(), 64);
        // Full, nothing lapsed: the sweep trims to 15/16 and the new entry goes in.
        c.insert(1_000, Arc::new(1_000), 1_000, 11);
        assert!(c.len() <= 64, "{}", c.len());
        assert!(c.get(1_000, 11).is_some());
        // Within the same second no second sweep runs: a full cache skips the insert.
        for i in 2_000..2_100u128 {
            c.insert(i, Arc::new(i), 1_000, 11);
        }
        assert!(c.len() <= 64, "{}", c.len());
        // Later, lapsed entries make room first.
        for i in 3_000..3_010u128 {
            c.insert(i, Arc::new(i), 20, 12);
        }
        assert!(c.len() <= 64);
        c.insert(4_000, Arc::new(4_000), 1_000, 30);
        assert!(c.get(4_000, 30).is_some());
        assert!(c.len() <= 64);
    }
}
