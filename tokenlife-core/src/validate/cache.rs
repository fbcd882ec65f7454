//! The verified-token cache: a quick_cache `sync::Cache` from the token's seeded 128-bit
//! hash to its verified entry, with every expiry on the injected clock.
//!
//! Bounded by construction: quick_cache holds at most `capacity` entries in tables sized
//! once, and makes room with its CLOCK-Pro policy on every insert into a full shard, so
//! no churn of distinct tokens — organic traffic at scale, or one OAuth client minting
//! tokens — can grow it or send it into a resize (security review 3, HIGH 2: the papaya
//! map this replaced grew to gigabytes in a resize loop under ~100 k distinct live
//! tokens per TTL). Eviction is the policy's, over seeded hashes: no caller picks a
//! victim, and an evicted token is verified again, never wrongly accepted. A hit takes a
//! shard's read lock (BENCHMARKS.md, "verified-token cache": the churn rows are why).
//! Each entry holds its `expires_at` (Unix seconds: the token's `exp` plus leeway, or the
//! cache TTL, whichever is sooner); a lookup past it is a miss.

use std::sync::Arc;

use crate::hash::Prehashed;

type Map<V> = quick_cache::sync::Cache<
    u128,
    (u64, Arc<V>),
    quick_cache::UnitWeighter,
    Prehashed,
    quick_cache::sync::DefaultLifecycle<u128, (u64, Arc<V>)>,
>;

/// A bounded map of verified entries with expiry on the caller's clock.
pub(super) struct VerifiedCache<V> {
    map: Map<V>,
}

impl<V: Send + Sync + 'static> VerifiedCache<V> {
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            map: Map::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                Prehashed,
                quick_cache::sync::DefaultLifecycle::default(),
            ),
        }
    }

    /// The live entry under `hash` at `now`.
    #[inline]
    pub(super) fn get(&self, hash: u128, now: u64) -> Option<Arc<V>> {
        match self.map.get(&hash) {
            Some((expires_at, v)) if now < expires_at => Some(v),
            _ => None,
        }
    }

    /// Caches `value` under `hash` until `expires_at` (the policy evicts if full).
    pub(super) fn insert(&self, hash: u128, value: Arc<V>, expires_at: u64, now: u64) {
        if expires_at <= now {
            return;
        }
        self.map.insert(hash, (expires_at, value));
    }

    /// Removes the entry under `hash` if `stale` says it is the one to go.
    pub(super) fn remove_if(&self, hash: u128, stale: impl Fn(&V) -> bool) {
        self.map.remove_if(&hash, |(_, v)| stale(v));
    }

    pub(super) fn clear(&self) {
        self.map.clear();
    }

    /// Entries held now.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn capacity(&self) -> usize {
        usize::try_from(self.map.capacity()).unwrap_or(usize::MAX)
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
        for i in 1_000..10_000u128 {
            c.insert(i, Arc::new(i), 1_000, 11);
            assert!(c.len() <= 64, "{}", c.len());
        }
        // The newest entry is in: a full cache keeps caching.
        c.insert(20_000, Arc::new(20_000), 1_000, 12);
        assert!(c.get(20_000, 12).is_some());
    }
}
