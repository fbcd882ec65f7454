//! The validator's count of its untimed cache hits of the active keyset, told to the
//! observers that [count hits](crate::observe::Observer::counts_hits) in batches: a hit
//! is one compare-and-swap on one word, no observer called.
//!
//! The word holds a tag (the low bits of the keyset version and of the clock's second
//! the count belongs to, and a bit that says a tag is set) and the count. The tag
//! changes only under the lock, which also holds the full version and second the tag
//! stands for; a hit whose version or second differs from the tag takes the lock, tells
//! the count so far and starts a new one (it is the first of it). Every hit is counted
//! exactly once and under its own version and second: the count moves only by a
//! compare-and-swap against a word that carries the hit's own tag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::observe::{Hits, Observer};

/// Bits of the count.
const COUNT_BITS: u32 = 24;
/// The count's bits of the word; a count at this value is full (the next hit starts a
/// new count under the same tag).
const COUNT: u64 = (1 << COUNT_BITS) - 1;
/// Bits of the second in the tag.
const SECOND_BITS: u32 = 20;
/// A tag is set (the word starts without one, so the first hit takes the lock).
const SET: u64 = 1 << 63;

/// The tag of `version` at `now`: set, 19 bits of the version, 20 of the second.
#[inline]
fn tag(version: u64, now: u64) -> u64 {
    let version_bits = 63 - COUNT_BITS - SECOND_BITS;
    SET | (version & ((1 << version_bits) - 1)) << (COUNT_BITS + SECOND_BITS)
        | (now & ((1 << SECOND_BITS) - 1)) << COUNT_BITS
}

/// What the word's tag stands for.
#[derive(Debug, Clone, Copy, Default)]
struct Open {
    version: u64,
    now: u64,
}

/// One validator's count of hits not yet told.
#[derive(Debug)]
pub(super) struct HitCount {
    word: AtomicU64,
    open: Mutex<Open>,
    /// The validator's issuer, which the counts are told with.
    issuer: Box<str>,
}

impl HitCount {
    /// A count told with `issuer`.
    pub(super) fn new(issuer: &str) -> Self {
        Self {
            word: AtomicU64::new(0),
            open: Mutex::new(Open::default()),
            issuer: issuer.into(),
        }
    }

    /// Counts one hit of `version` at `now`; the count before it goes to `observer`
    /// when the version or the second changed.
    #[inline(always)]
    pub(super) fn add(&self, version: u64, now: u64, observer: &dyn Observer) {
        let tag = tag(version, now);
        let mut word = self.word.load(Ordering::Relaxed);
        while word & !COUNT == tag && word & COUNT < COUNT {
            match self.word.compare_exchange_weak(
                word,
                word + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now_word) => word = now_word,
            }
        }
        self.start(version, now, observer);
    }

    /// Starts the count of `version` at `now` with this hit, telling the one before.
    #[cold]
    #[inline(never)]
    fn start(&self, version: u64, now: u64, observer: &dyn Observer) {
        let tag = tag(version, now);
        let mut open = self.lock();
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            // Another thread started this very count while this one waited.
            let next = if word & !COUNT == tag && word & COUNT < COUNT {
                word + 1
            } else {
                tag | 1
            };
            match self
                .word
                .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if next != tag | 1 => return,
                Ok(_) => break,
                Err(now_word) => word = now_word,
            }
        }
        let told = std::mem::replace(&mut *open, Open { version, now });
        let count = if word & SET == 0 { 0 } else { word & COUNT };
        if count > 0 {
            observer.on_hits(&Hits::new(count, told.version, &self.issuer, told.now));
        }
    }

    /// Tells the count so far (if any), keeping its tag.
    pub(super) fn flush(&self, observer: &dyn Observer) {
        if self.word.load(Ordering::Relaxed) & COUNT == 0 {
            return;
        }
        let open = self.lock();
        let word = self.word.fetch_and(!COUNT, Ordering::AcqRel);
        let count = word & COUNT;
        if count > 0 {
            observer.on_hits(&Hits::new(count, open.version, &self.issuer, open.now));
        }
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::observe::Event;

    /// Every count told, by (version, second).
    #[derive(Default)]
    struct Told(Mutex<HashMap<(u64, u64), u64>>);

    impl Observer for Told {
        fn on_event(&self, _: &Event<'_>) {}

        fn counts_hits(&self) -> bool {
            true
        }

        fn on_hits(&self, hits: &Hits<'_>) {
            assert_eq!(hits.issuer, "iss");
            assert!(hits.count > 0, "an empty count is never told");
            *self
                .0
                .lock()
                .unwrap()
                .entry((hits.keyset_version, hits.now))
                .or_default() += hits.count;
        }
    }

    /// The version and second of the `i`th hit of thread `t`: the clock moves every 700
    /// hits, a new version every 9,000 (one in four of them a flip back to the one
    /// before, as a rollback is), differently on each thread so they cross.
    fn schedule(t: u64, i: u64) -> (u64, u64) {
        let step = i / (9_000 + 1_000 * t);
        let version = if step % 4 == 3 { step } else { step + 1 };
        (version, 1_700_000_000 + i / (700 + 300 * t))
    }

    /// Two threads count 120,000 hits each across versions, flips back and seconds:
    /// the counts told (each at a change, the rest at the flush) are exactly the hits of
    /// each version and second.
    #[test]
    fn every_hit_is_told_once_under_its_own_version_and_second() {
        const N: u64 = 120_000;
        let hits = Arc::new(HitCount::new("iss"));
        let told = Arc::new(Told::default());
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let (hits, told) = (hits.clone(), told.clone());
                std::thread::spawn(move || {
                    for i in 0..N {
                        let (version, now) = schedule(t, i);
                        hits.add(version, now, &*told);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        hits.flush(&*told);
        let mut expected: HashMap<(u64, u64), u64> = HashMap::new();
        for t in 0..2 {
            for i in 0..N {
                *expected.entry(schedule(t, i)).or_default() += 1;
            }
        }
        let got = told.0.lock().unwrap().clone();
        assert_eq!(got.values().sum::<u64>(), 2 * N);
        assert_eq!(got, expected);
        // Nothing is left to tell.
        hits.flush(&*told);
        assert_eq!(*told.0.lock().unwrap(), expected);
    }

    /// A count that fills its bits is told whole and the next hit starts a new one
    /// under the same version and second: nothing wraps into the tag.
    #[test]
    fn a_full_count_is_told_and_counting_goes_on() {
        let hits = HitCount::new("iss");
        let told = Told::default();
        hits.add(7, 100, &told);
        // As if 2^24 - 2 more hits had come.
        hits.word.fetch_add(COUNT - 2, Ordering::Relaxed);
        hits.add(7, 100, &told); // the count's last place
        assert!(told.0.lock().unwrap().is_empty());
        hits.add(7, 100, &told); // full: told, and a new count of one
        assert_eq!(told.0.lock().unwrap()[&(7, 100)], COUNT);
        hits.flush(&told);
        assert_eq!(told.0.lock().unwrap()[&(7, 100)], COUNT + 1);
    }

    /// A flush with nothing counted tells nothing; one after a change tells only what
    /// came after it.
    #[test]
    fn a_flush_tells_only_what_was_not_told() {
        let hits = HitCount::new("iss");
        let told = Told::default();
        hits.flush(&told);
        assert!(told.0.lock().unwrap().is_empty());
        for _ in 0..3 {
            hits.add(1, 10, &told);
        }
        hits.add(1, 11, &told);
        hits.add(2, 11, &told);
        hits.flush(&told);
        let got = told.0.lock().unwrap().clone();
        assert_eq!(
            got,
            HashMap::from([((1, 10), 3), ((1, 11), 1), ((2, 11), 1)])
        );
    }
}
