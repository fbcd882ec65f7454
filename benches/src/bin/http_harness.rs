//! HTTP comparison harness: the same axum app bare, behind `TokenLifeLayer`, and behind
//! `tower-oauth2-resource-server`, under the same bounded load on 127.0.0.1.
//!
//! `cargo run --release -p benches --bin http_harness [-- SECONDS CONNECTIONS]`
//!
//! The server runs on its own one-thread tokio runtime and the load generator on another,
//! so each gets one of the two cores. The generator keeps `CONNECTIONS` keep-alive HTTP/1.1
//! connections busy for `SECONDS` (after one second of warm-up) and stops by itself.

#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use benches::{AUD, ISS, key, token};
use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator};
use tokenlife_tower::TokenLifeLayer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tower_oauth2_resource_server::server::OAuth2ResourceServer;
use tower_oauth2_resource_server::tenant::TenantConfiguration;

#[derive(Clone, Copy, Debug)]
enum Guard {
    None,
    TokenLife { cache: bool },
    Peer,
}

fn app(
    guard: Guard,
    keys_jwks: &str,
    validator_store: &KeysetStore,
    rt: &tokio::runtime::Runtime,
) -> Router {
    let base = Router::new().route("/orders", get(|| async { "ok" }));
    match guard {
        Guard::None => base,
        Guard::TokenLife { cache } => {
            let v = Validator::builder(validator_store.clone())
                .issuer(ISS)
                .audience(AUD)
                .cache_capacity(if cache { 100_000 } else { 0 })
                .build()
                .expect("validator");
            base.layer(TokenLifeLayer::new(v))
        }
        Guard::Peer => {
            let server = rt.block_on(async {
                let tenant = TenantConfiguration::static_builder(keys_jwks)
                    .identifier(ISS)
                    .audiences(&[AUD])
                    .build()
                    .expect("tenant");
                OAuth2ResourceServer::<serde_json::Value>::builder()
                    .add_tenant(tenant)
                    .build()
                    .await
                    .expect("peer")
            });
            base.layer(server.into_layer())
        }
    }
}

struct Row {
    name: &'static str,
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

/// One connection: send requests back to back, record each latency.
async fn connection(
    addr: SocketAddr,
    tokens: Arc<Vec<String>>,
    start: usize,
    warm: Instant,
    end: Instant,
) -> (Vec<u32>, u64) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut lat = Vec::with_capacity(100_000);
    let mut errors = 0u64;
    let mut i = start;
    let mut line = String::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let t = &tokens[i % tokens.len()];
        i += 1;
        let req =
            format!("GET /orders HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {t}\r\n\r\n");
        w.write_all(req.as_bytes()).await.expect("write");
        let mut len = 0usize;
        let mut status_ok = false;
        let mut first = true;
        loop {
            line.clear();
            if r.read_line(&mut line).await.expect("read") == 0 {
                panic!("server closed the connection");
            }
            if first {
                status_ok = line.starts_with("HTTP/1.1 200");
                first = false;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.strip_prefix("content-length: ") {
                len = v.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await.expect("body");
        if !status_ok {
            errors += 1;
        }
        if now >= warm {
            lat.push(u32::try_from(now.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
    }
    (lat, errors)
}

fn run(
    name: &'static str,
    router: Router,
    tokens: Arc<Vec<String>>,
    secs: u64,
    conns: usize,
) -> Row {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    server_rt.spawn(async move { axum::serve(listener, router).await.expect("serve") });

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let (lat, errors) = client_rt.block_on(async {
        let warm = Instant::now() + Duration::from_secs(1);
        let end = warm + Duration::from_secs(secs);
        let tasks: Vec<_> = (0..conns)
            .map(|c| tokio::spawn(connection(addr, tokens.clone(), c * 997, warm, end)))
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("task");
            all.extend(l);
            errors += e;
        }
        (all, errors)
    });
    server_rt.shutdown_timeout(Duration::from_secs(1));
    let mut lat = lat;
    lat.sort_unstable();
    let pct = |p: f64| {
        Duration::from_micros(u64::from(
            lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)],
        ))
    };
    Row {
        name,
        rps: lat.len() as f64 / secs as f64,
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let conns: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);

    let k = key(Algorithm::RS256);
    let store = KeysetStore::new(Keyset::new([k.clone()]).expect("keyset"));
    let jwks = store.current().to_public_jwks();
    eprintln!("signing 10,000 RS256 tokens for the cold rows…");
    let hot: Arc<Vec<String>> = Arc::new((0..64).map(|n| token(&k, n)).collect());
    let cold: Arc<Vec<String>> = Arc::new((0..10_000).map(|n| token(&k, 1_000 + n)).collect());
    let setup_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");

    let mut rows = Vec::new();
    for (name, guard, tokens) in [
        ("axum, no auth", Guard::None, hot.clone()),
        (
            "axum + TokenLifeLayer (cache hit)",
            Guard::TokenLife { cache: true },
            hot.clone(),
        ),
        (
            "axum + tower-oauth2-resource-server",
            Guard::Peer,
            hot.clone(),
        ),
        (
            "cold: axum + TokenLifeLayer (cache off, 10k tokens)",
            Guard::TokenLife { cache: false },
            cold.clone(),
        ),
        (
            "cold: axum + tower-oauth2-resource-server (10k tokens)",
            Guard::Peer,
            cold.clone(),
        ),
    ] {
        eprintln!("running {name} ({secs} s, {conns} connections)…");
        let router = app(guard, &jwks, &store, &setup_rt);
        rows.push(run(name, router, tokens, secs, conns));
    }

    println!("| row | requests/s | p50 | p99 | non-200 |");
    println!("| --- | --- | --- | --- | --- |");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:?} | {:?} | {} |",
            r.name, r.rps, r.p50, r.p99, r.errors
        );
    }
    let rps = |i: usize| rows[i].rps;
    println!();
    println!("TokenLifeLayer (hit) / bare axum: {:.2}×", rps(1) / rps(0));
    println!("TokenLifeLayer (hit) / peer:      {:.2}×", rps(1) / rps(2));
    println!(
        "TokenLifeLayer (cold) / peer (cold): {:.2}×",
        rps(3) / rps(4)
    );
}
