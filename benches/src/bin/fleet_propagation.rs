//! Fleet propagation on loopback: a `redis-server` started here on a free port, three
//! nodes (each its own `RedisFleet`, revocation list and connections) in this process.
//! Node A revokes 10,000 jtis one after another; for each, the time from the revoke call
//! until both B and C hold it. Prints p50, p90, p99 and max, and the validation cost on a
//! fleet node beside an in-memory one (the hot path is the same local list).
//!
//! `cargo run --release -p benches --bin fleet_propagation [-- COUNT]`; needs
//! `redis-server` on the PATH.

#![allow(missing_docs)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use benches::percentile;
use tokenlife_core::fleet::{FleetConfig, RedisFleet};
use tokenlife_core::{Algorithm, Keyset, KeysetStore, RevocationList, Validator, testing};

fn validator(list: RevocationList) -> (Validator, String) {
    let key = testing::key("k1", Algorithm::ES256);
    let now = tokenlife_core::Clock::unix_now(&tokenlife_core::SystemClock);
    let token = testing::sign(
        &key,
        &serde_json::json!({"iss": "i", "aud": "a", "sub": "u", "jti": "live", "exp": now + 3600}),
    );
    let v = Validator::builder(KeysetStore::new(Keyset::new([key]).expect("keyset")))
        .issuer("i")
        .audience("a")
        .revocations(list)
        .build()
        .expect("validator");
    (v, token)
}

/// Median ns per validation (cache hit) over 5 rounds of 200,000.
fn validation_ns(v: &Validator, token: &str) -> f64 {
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..200_000 {
            std::hint::black_box(v.validate(std::hint::black_box(token)).is_ok());
        }
        rounds.push(t.elapsed().as_secs_f64() * 1e9 / 200_000.0);
    }
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on the PATH");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let url = format!("redis://127.0.0.1:{port}/");
    let mut nodes = Vec::new();
    let mut stores = Vec::new();
    let mut tasks = Vec::new();
    for name in ["a", "b", "c"] {
        let fleet = RedisFleet::new(FleetConfig::new(&url).node_id(name)).expect("fleet");
        let store =
            KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).expect("keyset"));
        fleet.share_keysets(&store);
        let list = RevocationList::builder().backend(fleet.backend()).build();
        tasks.push(fleet.start(list.clone()).expect("started"));
        nodes.push((fleet, list));
        stores.push(store);
    }
    for (fleet, _) in &nodes {
        while !fleet.status().connected {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let until = SystemTime::now() + Duration::from_secs(3600);
    let (a, b, c) = (&nodes[0].1, &nodes[1].1, &nodes[2].1);
    let mut lat = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..count {
        let jti = format!("jti-{i}");
        let t = Instant::now();
        a.revoke_jti(&jti, until).expect("revoke");
        while !(b.is_jti_revoked(&jti) && c.is_jti_revoked(&jti)) {
            assert!(Instant::now() < deadline, "propagation stalled at {i}");
            tokio::task::yield_now().await;
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "revocation propagation, A -> B and C, {count} revocations: p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        us(percentile(&lat, 0.5)),
        us(percentile(&lat, 0.9)),
        us(percentile(&lat, 0.99)),
        us(lat[lat.len() - 1])
    );
    // Fleet-wide rollback: A publishes (every node follows, not timed), then A rolls
    // back; timed until B and C are on A's version again.
    let rounds = (count / 50).max(20);
    let mut rb = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let v = stores[0].publish(
            Keyset::new([testing::key(&format!("k{}", i + 2), Algorithm::ES256)]).expect("keyset"),
        );
        while stores[1..].iter().any(|s| s.current().version() != v) {
            assert!(
                Instant::now() < deadline + Duration::from_secs(60),
                "publish stalled"
            );
            tokio::task::yield_now().await;
        }
        let t = Instant::now();
        let back = stores[0].rollback().expect("rollback");
        while stores[1..].iter().any(|s| s.current().version() != back) {
            assert!(
                Instant::now() < deadline + Duration::from_secs(60),
                "rollback stalled"
            );
            tokio::task::yield_now().await;
        }
        rb.push(t.elapsed());
    }
    rb.sort();
    println!(
        "fleet-wide rollback, A -> B and C on the old version, {rounds} rollbacks: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        us(percentile(&rb, 0.5)),
        us(percentile(&rb, 0.99)),
        us(rb[rb.len() - 1])
    );
    // Validation on a fleet node (its list holds the revocations above) beside an
    // in-memory list with the same number of entries.
    let (fleet_v, token) = validator(b.clone());
    let mem = RevocationList::new();
    for i in 0..count {
        mem.revoke_jti(&format!("jti-{i}"), until).expect("revoke");
    }
    let (mem_v, mem_token) = validator(mem);
    let (f, m) = (
        validation_ns(&fleet_v, &token),
        validation_ns(&mem_v, &mem_token),
    );
    println!(
        "validation (cache hit, {count} revocations held): in-memory {m:.0} ns, Redis-backed fleet node {f:.0} ns, ratio {:.2}",
        f / m
    );
    drop(tasks);
    let _ = redis.kill();
    let _ = redis.wait();
}
