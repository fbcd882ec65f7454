//! A server for external load generators (wrk): the bench app bare or behind
//! `TokenLifeLayer`, on a one-thread tokio runtime, for a bounded time.
//!
//! `wrk_server bare|layer PORT SECONDS` prints one line, `token <jwt>`, once listening,
//! serves `GET /orders` on 127.0.0.1:PORT and exits after SECONDS. `benches/wrk.sh`
//! pins it to one core and wrk to the other.

#![allow(missing_docs)]

use std::io::Write;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use benches::{AUD, ISS, key, token};
use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator};
use tokenlife_tower::TokenLifeLayer;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "layer".into());
    let port: u16 = args.next().and_then(|s| s.parse().ok()).unwrap_or(18080);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let k = key(Algorithm::RS256);
    let store = KeysetStore::new(Keyset::new([k.clone()]).expect("keyset"));
    let base = Router::new().route("/orders", get(|| async { "ok" }));
    let app = match mode.as_str() {
        "bare" => base,
        _ => {
            let v = Validator::builder(store)
                .issuer(ISS)
                .audience(AUD)
                .build()
                .expect("validator");
            base.layer(TokenLifeLayer::new(v))
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        println!("token {}", token(&k, 1));
        std::io::stdout().flush().expect("stdout");
        let server = axum::serve(listener, app);
        let _ = tokio::time::timeout(Duration::from_secs(secs), server).await;
    });
}
