//! The validator counts its cache hits for the observers that count them
//! (`Observer::counts_hits`) and tells the count later: every success reaches them exactly
//! once, under the keyset version that judged it, whatever the threads, the clock and
//! the deploys do; and every success before a failure has reached them when the failure
//! is told.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{AUD, ISS, T0};
use serde_json::json;
use tokenlife_core::observe::{Event, Hits, Observer};
use tokenlife_core::{Algorithm, Clock, Key, Keyset, KeysetStore, ManualClock, Validator};

/// Successes by keyset version, as an observer that counts hits is told them; and the
/// successes it had been told when each failure came.
#[derive(Default)]
struct Successes {
    by_version: Mutex<HashMap<u64, u64>>,
    at_failures: Mutex<Vec<u64>>,
}

impl Successes {
    fn add(&self, version: u64, n: u64) {
        *self.by_version.lock().unwrap().entry(version).or_default() += n;
    }

    fn total(&self) -> u64 {
        self.by_version.lock().unwrap().values().sum()
    }
}

impl Observer for Successes {
    fn on_event(&self, event: &Event<'_>) {
        if let Event::Validated {
            outcome,
            keyset_version,
            ..
        } = event
        {
            match outcome {
                Ok(_) => self.add(*keyset_version, 1),
                Err(_) => {
                    let told = self.total();
                    self.at_failures.lock().unwrap().push(told);
                }
            }
        }
    }

    fn counts_hits(&self) -> bool {
        true
    }

    fn on_hits(&self, hits: &Hits<'_>) {
        assert_eq!(hits.issuer, ISS);
        self.add(hits.keyset_version, hits.count);
    }
}

fn hmac_world(
    cache: u64,
) -> (
    KeysetStore,
    ManualClock,
    Validator,
    Arc<Successes>,
    impl Fn(u64) -> String,
) {
    let secret = [7u8; 32];
    let key = Key::hmac("h", Algorithm::HS256, &secret).unwrap();
    let store = KeysetStore::new(Keyset::new([key]).unwrap());
    let clock = ManualClock::at_unix(T0);
    let seen = Arc::new(Successes::default());
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .cache_capacity(cache)
        .observer(seen.clone())
        .build()
        .unwrap();
    let enc = tokenlife_core::jsonwebtoken::EncodingKey::from_secret(&secret);
    let mut header = tokenlife_core::jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("h".into());
    let token = move |i: u64| {
        tokenlife_core::jsonwebtoken::encode(
            &header,
            &json!({"iss": ISS, "aud": AUD, "sub": format!("u{i}"), "exp": T0 + 86_400}),
            &enc,
        )
        .unwrap()
    };
    (store, clock, validator, seen, token)
}

/// Two threads validate 64 tokens over and over (the cache holds them all: nearly every
/// validation is a hit) while the main thread moves the clock and deploys new versions of
/// the same keys: after a flush, the successes told per version are exactly the
/// successes the threads saw per version.
#[test]
fn every_success_is_told_once_under_its_version_from_two_threads_with_deploys() {
    const PER_THREAD: u64 = 40_000;
    let (store, clock, validator, seen, token) = hmac_world(1_000);
    let tokens: Vec<String> = (0..64).map(&token).collect();
    let done = AtomicU64::new(0);
    let saw: Vec<HashMap<u64, u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2u64)
            .map(|t| {
                let (validator, tokens, done) = (&validator, &tokens, &done);
                s.spawn(move || {
                    let mut saw: HashMap<u64, u64> = HashMap::new();
                    for i in 0..PER_THREAD {
                        let v = validator
                            .validate(&tokens[((i * 7 + t) % 64) as usize])
                            .unwrap();
                        *saw.entry(v.keyset_version()).or_default() += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    saw
                })
            })
            .collect();
        // A second and a deploy after every 2,000 validations while they run, whatever
        // the threads' pace.
        let keys = store.current().active().clone();
        let mut last = 0;
        while !workers.iter().all(|w| w.is_finished()) {
            let now = done.load(Ordering::Relaxed);
            if now >= last + 2_000 && now < 2 * PER_THREAD - 2_000 {
                clock.advance(Duration::from_secs(1));
                store.publish(keys.clone());
                last = now;
            }
            std::thread::yield_now();
        }
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    validator.flush_hits();
    let mut expected: HashMap<u64, u64> = HashMap::new();
    for m in saw {
        for (v, n) in m {
            *expected.entry(v).or_default() += n;
        }
    }
    assert_eq!(expected.values().sum::<u64>(), 2 * PER_THREAD);
    assert!(expected.len() > 1, "the deploys came while they ran");
    assert_eq!(*seen.by_version.lock().unwrap(), expected);
}

/// Ten times the cache's capacity of distinct tokens (hits, misses and evictions mixed),
/// from two threads, the clock moving: still every success told once; and a failure
/// finds every success before it already told (the count is flushed first).
#[test]
fn successes_are_told_before_each_failure_and_none_twice_under_churn() {
    const CAP: u64 = 100;
    const PER_THREAD: u64 = 10 * CAP * 3;
    let (_store, clock, validator, seen, token) = hmac_world(CAP);
    let tokens: Vec<String> = (0..10 * CAP).map(&token).collect();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (validator, tokens, clock) = (&validator, &tokens, &clock);
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    if i % 500 == 0 {
                        clock.advance(Duration::from_secs(1));
                    }
                    // Mostly the same few tokens (hits), now and then one of the many.
                    let n = if i % 5 == 0 {
                        (i * 13 + t) % (10 * CAP)
                    } else {
                        i % 8
                    };
                    validator.validate(&tokens[n as usize]).unwrap();
                }
            });
        }
    });
    assert!(validator.cached() as u64 <= CAP);
    validator.flush_hits();
    assert_eq!(seen.total(), 2 * PER_THREAD);

    // One thread now: 50 hits in one second (counted, not told), then a failure.
    validator.validate(&tokens[3]).unwrap();
    validator.flush_hits();
    let before = seen.total();
    let now = clock.unix_now();
    for _ in 0..50 {
        assert!(validator.validate(&tokens[3]).unwrap().from_cache());
    }
    assert_eq!(clock.unix_now(), now);
    validator.validate("not-a-token").unwrap_err();
    assert_eq!(
        seen.at_failures.lock().unwrap().last().copied(),
        Some(before + 50),
        "the failure is told after the 50 successes before it"
    );
}
