//! Fleet propagation on loopback: a `redis-server` started here on a free port, three
//! nodes (each its own `RedisFleet`, revocation list and connections) in this process.
//! Node A revokes 10,000 jtis one after another; for each, the time from the revoke call
//! until both B and C hold it. Prints p50, p90, p99 and max, and the validation cost on a
//! fleet node beside an in-memory one (the hot path is the same local list).
//!
//! With `--load`, node B also serves HTTP the whole time (axum behind `TokenLifeLayer`,
//! its validator on B's revocation list) to 4 keep-alive clients of this process, on the
//! same two-worker runtime as the fleet tasks: propagation measured while the node is
//! busy. The heartbeat is on (the default, 1 s) in both modes.
//!
//! `cargo run --release -p benches --bin fleet_propagation [-- COUNT] [--load]`; needs
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

/// The measuring thread's pause between two looks: a short sleep, not a spin, so it
/// does not take a core from the nodes it measures (a spinning thread on this 2-core box
/// made the tail a matter of CPU time slices). Adds up to ~60 µs (timer slack) to a
/// figure.
fn poll_pause() {
    std::thread::sleep(Duration::from_micros(10));
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let load = args.iter().any(|a| a == "--load");
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
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if load {
        let (v, token) = validator(b.clone());
        http_load(v, token, served.clone(), stop.clone()).await;
    }
    let started = Instant::now();
    // Measured from a thread of its own (polling the lists, which are synchronous), so
    // the time is the fleet's, not the measuring task's wait for a busy runtime.
    let mut lat = {
        let (a, b, c) = (a.clone(), b.clone(), c.clone());
        tokio::task::spawn_blocking(move || {
            let mut lat = Vec::with_capacity(count);
            let deadline = Instant::now() + Duration::from_secs(120);
            for i in 0..count {
                let jti = format!("jti-{i}");
                let t = Instant::now();
                a.revoke_jti(&jti, until).expect("revoke");
                while !(b.is_jti_revoked(&jti) && c.is_jti_revoked(&jti)) {
                    assert!(Instant::now() < deadline, "propagation stalled at {i}");
                    poll_pause();
                }
                lat.push(t.elapsed());
            }
            lat
        })
        .await
        .expect("measured")
    };
    let deadline = Instant::now() + Duration::from_secs(120);
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
    let mut rb = {
        let stores = stores.clone();
        tokio::task::spawn_blocking(move || {
            let mut rb = Vec::with_capacity(rounds);
            for i in 0..rounds {
                let v = stores[0].publish(
                    Keyset::new([testing::key(&format!("k{}", i + 2), Algorithm::ES256)])
                        .expect("keyset"),
                );
                while stores[1..].iter().any(|s| s.current().version() != v) {
                    assert!(
                        Instant::now() < deadline + Duration::from_secs(60),
                        "publish stalled"
                    );
                    poll_pause();
                }
                let t = Instant::now();
                let back = stores[0].rollback().expect("rollback");
                while stores[1..].iter().any(|s| s.current().version() != back) {
                    assert!(
                        Instant::now() < deadline + Duration::from_secs(60),
                        "rollback stalled"
                    );
                    poll_pause();
                }
                rb.push(t.elapsed());
            }
            rb
        })
        .await
        .expect("measured")
    };
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
    if load {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)]
        let rate = served.load(std::sync::atomic::Ordering::Relaxed) as f64
            / started.elapsed().as_secs_f64();
        println!(
            "HTTP load on node B meanwhile: {rate:.0} requests/s served (4 keep-alive clients)"
        );
    }
    drop(tasks);
    let _ = redis.kill();
    let _ = redis.wait();
}

/// Serves `GET /orders` behind `TokenLifeLayer(v)` on loopback and keeps 4 keep-alive
/// clients sending it (each waits for its answer), until `stop`.
async fn http_load(
    v: Validator,
    token: String,
    served: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = axum::Router::new()
        .route("/orders", axum::routing::get(|| async { "orders" }))
        .layer(tokenlife_tower::TokenLifeLayer::new(v));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let request =
        format!("GET /orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
            .into_bytes();
    for _ in 0..4 {
        let (request, served, stop) = (request.clone(), served.clone(), stop.clone());
        tokio::spawn(async move {
            let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let mut buf = vec![0u8; 4096];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if conn.write_all(&request).await.is_err() {
                    return;
                }
                // The answer ends with the 6-byte body "orders".
                let mut seen = Vec::new();
                while !seen.ends_with(b"orders") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
}
