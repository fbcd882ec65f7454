//! A server for external load generators (wrk): the bench app bare or behind tokenlife,
//! on axum or actix-web, each on one thread, for a bounded time.
//!
//! `wrk_server MODE PORT SECONDS` prints one line, `token <jwt>`, once listening, serves
//! `GET /orders` on 127.0.0.1:PORT and exits after SECONDS. MODE is one of `bare`,
//! `layer`, `layer-cold` (axum; cold: the verified-token cache off, so every request
//! verifies the RS256 signature), `actix-bare`, `actix`, `actix-cold` (actix-web, one
//! worker), and `layer-observed`, `actix-observed`: the layer with the gateway's observers
//! (`benches::observed_validator`: the Monitor with a Prometheus recorder and an audit
//! sink, and the rollout guard); `layer-usage`, `actix-usage`: those and the usage rollup
//! (what the gateway adds with `--audit-db`). axum serves with `ConnectInfo` (the client address
//! reaches the observers, as in the gateway). `benches/wrk.sh` and `benches/wrk_cpu.sh`
//! pin it to one core and wrk to the other.

#![allow(missing_docs)]

use std::io::Write;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use benches::{AUD, ISS, key, observed_validator_with, token};
use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator};
use tokenlife_tower::TokenLifeLayer;

fn validator(k: &std::sync::Arc<tokenlife_core::Key>, cold: bool) -> Validator {
    let store = KeysetStore::new(Keyset::new([k.clone()]).expect("keyset"));
    let mut b = Validator::builder(store).issuer(ISS).audience(AUD);
    if cold {
        b = b.cache_capacity(0);
    }
    b.build().expect("validator")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "layer".into());
    let port: u16 = args.next().and_then(|s| s.parse().ok()).unwrap_or(18080);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let k = key(Algorithm::RS256);
    let announce = || {
        println!("token {}", token(&k, 1));
        std::io::stdout().flush().expect("stdout");
    };
    match mode.as_str() {
        "actix-bare" | "actix" | "actix-cold" | "actix-observed" | "actix-usage" => {
            let v = match mode.as_str() {
                "actix-bare" => None,
                "actix-observed" | "actix-usage" => Some(
                    observed_validator_with(
                        std::slice::from_ref(&k),
                        10_000,
                        mode == "actix-usage",
                    )
                    .1,
                ),
                _ => Some(validator(&k, mode == "actix-cold")),
            };
            actix(v, port, secs, announce);
        }
        _ => {
            let base = Router::new().route("/orders", get(|| async { "ok" }));
            let app = match mode.as_str() {
                "bare" => base,
                "layer-observed" | "layer-usage" => base.layer(TokenLifeLayer::new(
                    observed_validator_with(
                        std::slice::from_ref(&k),
                        10_000,
                        mode == "layer-usage",
                    )
                    .1,
                )),
                _ => base.layer(TokenLifeLayer::new(validator(&k, mode == "layer-cold"))),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("bind");
                announce();
                let server = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                );
                let _ = tokio::time::timeout(Duration::from_secs(secs), server).await;
            });
        }
    }
}

/// The same app on actix-web, one worker: bare, or wrapped in `TokenLife`.
fn actix(v: Option<Validator>, port: u16, secs: u64, announce: impl FnOnce()) {
    use actix_web::{App, HttpResponse, HttpServer, web};
    use tokenlife_actix::TokenLife;

    async fn orders() -> HttpResponse {
        HttpResponse::Ok().body("ok")
    }
    macro_rules! run {
        ($factory:expr) => {
            HttpServer::new($factory)
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", port))
                .expect("bind")
                .run()
        };
    }
    actix_web::rt::System::new().block_on(async move {
        let server = match v {
            None => run!(|| App::new().route("/orders", web::get().to(orders))),
            Some(v) => run!(move || {
                App::new()
                    .wrap(TokenLife::new(v.clone()))
                    .route("/orders", web::get().to(orders))
            }),
        };
        announce();
        let _ = actix_web::rt::time::timeout(Duration::from_secs(secs), server).await;
    });
}
