//! Security review 3, HIGH 2: memory stays bounded under churn. Ten times the capacity of
//! distinct keys, from two threads, with the (manual) clock moving: the verified-token
//! cache, the revocation list. Its own test binary, so the resident-set reading is this
//! test's alone. (The alert table's test is a unit test in `observe::alert`.)

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use common::{AUD, ISS, T0};
use serde_json::json;
use tokenlife_core::error::RevocationErrorKind;
use tokenlife_core::{
    Algorithm, Clock, Key, Keyset, KeysetStore, ManualClock, RevocationList, Validator,
};

/// Resident memory of this process, in bytes (Linux `/proc`).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn the_verified_token_cache_holds_its_bound_under_ten_times_its_capacity() {
    const CAP: u64 = 10_000;
    const PER_THREAD: u64 = 5 * CAP;
    let secret = [9u8; 32];
    let key = Key::hmac("h", Algorithm::HS256, &secret).unwrap();
    let store = KeysetStore::new(Keyset::new([key]).unwrap());
    let clock = ManualClock::at_unix(T0);
    let validator = Validator::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .cache_capacity(CAP)
        .build()
        .unwrap();
    let enc = tokenlife_core::jsonwebtoken::EncodingKey::from_secret(&secret);
    let mut header = tokenlife_core::jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("h".into());
    let token = |t: u64, i: u64, now: u64| {
        tokenlife_core::jsonwebtoken::encode(
            &header,
            &json!({"iss": ISS, "aud": AUD, "sub": format!("u{t}-{i}"), "exp": now + 3_600,
                    "jti": format!("{t}-{i}"), "pad": "x".repeat(200)}),
            &enc,
        )
        .unwrap()
    };
    // Warm up allocator and tables with one full cache's worth, then measure growth.
    for i in 0..CAP {
        validator.validate(&token(9, i, T0)).unwrap();
    }
    let before = rss();
    let peak = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (validator, clock, peak, token) = (&validator, &clock, &peak, &token);
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    if i % 1_000 == 0 {
                        clock.advance(Duration::from_secs(1));
                    }
                    let now = clock.unix_now();
                    validator.validate(&token(t, i, now)).unwrap();
                    let held = validator.cached() as u64;
                    assert!(held <= CAP, "{held} cached, bound {CAP}");
                    peak.fetch_max(held, Ordering::Relaxed);
                }
            });
        }
    });
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "resident memory grew {} MiB over {} distinct tokens",
        grown >> 20,
        2 * PER_THREAD
    );
    assert!(
        peak.load(Ordering::Relaxed) > CAP / 2,
        "the cache was in use"
    );
    // Still caching: a token validated twice is a hit the second time.
    let again = token(7, 0, clock.unix_now());
    validator.validate(&again).unwrap();
    assert!(validator.validate(&again).unwrap().from_cache());
}

#[test]
fn the_revocation_list_refuses_past_its_bound_and_makes_room_as_time_moves() {
    const CAP: u64 = 1_000;
    let clock = ManualClock::at_unix(T0);
    let list = RevocationList::builder()
        .clock(clock.clone())
        .capacity(CAP)
        .build();
    let refused = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (list, clock, refused) = (&list, &clock, &refused);
            s.spawn(move || {
                for i in 0..5 * CAP {
                    if i % 500 == 0 {
                        clock.advance(Duration::from_secs(1));
                    }
                    let until = UNIX_EPOCH + Duration::from_secs(clock.unix_now() + 3);
                    match list.revoke_jti(&format!("{t}-{i}"), until) {
                        Ok(()) => {}
                        Err(e) => {
                            assert_eq!(e.kind(), RevocationErrorKind::Full);
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // Two threads may each pass the check once at the edge.
                    assert!(list.len() <= CAP + 2, "{} entries", list.len());
                }
            });
        }
    });
    assert!(refused.load(Ordering::Relaxed) > 0, "the bound was reached");
    // Time moves past every entry: room again, nothing live was evicted for it.
    clock.advance(Duration::from_secs(10));
    list.revoke_jti(
        "after",
        UNIX_EPOCH + Duration::from_secs(clock.unix_now() + 60),
    )
    .unwrap();
    assert!(list.is_jti_revoked("after"));
}
