//! The verified-token cache under churn (security review 3, HIGH 2): two threads validate
//! distinct live tokens — 1× and then 10× the cache's capacity — on a clock that moves.
//! For each round it prints the entries held, the growth of this process's resident
//! memory, and the p50/p99 of one validation (a miss: every token is new). Tokens are
//! HS256 and signed before the timed part.
//!
//! `cargo run --release -p benches --bin cache_churn [-- CAPACITY]` (default 100,000).

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use benches::percentile;

use serde_json::json;
use tokenlife_core::jsonwebtoken::{EncodingKey, Header, encode};
use tokenlife_core::{Algorithm, Clock, Key, Keyset, KeysetStore, ManualClock, Validator};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "api://orders";

fn main() {
    let capacity: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let secret = [9u8; 32];
    let key = Key::hmac("h", Algorithm::HS256, &secret).expect("key");
    let store = KeysetStore::new(Keyset::new([key]).expect("keyset"));
    let clock = ManualClock::at_unix(1_700_000_000);
    let validator = Validator::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .cache_capacity(capacity)
        .build()
        .expect("validator");
    let enc = EncodingKey::from_secret(&secret);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("h".into());
    let base = benches::rss_bytes();
    println!("capacity {capacity}, two threads, clock +1 s every 1,000 validations");
    println!("| distinct tokens | × capacity | entries held | RSS growth | p50 | p99 |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (round, times) in [1u64, 10].into_iter().enumerate() {
        let per_thread = times * capacity / 2;
        let now = clock.unix_now();
        let tokens: Vec<Vec<String>> = (0..2u64)
            .map(|t| {
                (0..per_thread)
                    .map(|i| {
                        encode(
                            &header,
                            &json!({"iss": ISS, "aud": AUD, "sub": format!("r{round}-{t}-{i}"),
                                    "exp": now + 86_400, "pad": "x".repeat(200)}),
                            &enc,
                        )
                        .expect("sign")
                    })
                    .collect()
            })
            .collect();
        let before = benches::rss_bytes();
        let mut times_all: Vec<Duration> = std::thread::scope(|s| {
            let handles: Vec<_> = tokens
                .iter()
                .map(|mine| {
                    let (validator, clock) = (&validator, &clock);
                    s.spawn(move || {
                        let mut out = Vec::with_capacity(mine.len());
                        for (i, t) in mine.iter().enumerate() {
                            if i % 1_000 == 0 {
                                clock.advance(Duration::from_secs(1));
                            }
                            let start = Instant::now();
                            let ok = validator.validate(t).is_ok();
                            out.push(start.elapsed());
                            assert!(ok, "valid token");
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("thread"))
                .collect()
        });
        times_all.sort_unstable();
        drop(tokens);
        println!(
            "| {} | {times}× | {} | {:.1} MiB (since start {:.1} MiB) | {:.2} µs | {:.2} µs |",
            2 * per_thread,
            validator.cached(),
            benches::rss_bytes().saturating_sub(before) as f64 / 1_048_576.0,
            benches::rss_bytes().saturating_sub(base) as f64 / 1_048_576.0,
            percentile(&times_all, 0.5).as_secs_f64() * 1e6,
            percentile(&times_all, 0.99).as_secs_f64() * 1e6,
        );
    }
}
