//! The servers `benches/proxy.sh` measures beside nginx and HAProxy, all on one RS256 key
//! (the test key, `tokenlife_core::testing::RSA_PEM`) and one token:
//!
//! - `tokenlife PORT UPSTREAM on|off SECS`: tokenlife-proxy in front of `UPSTREAM` (the
//!   verified-token cache on or off), forward-auth at `/auth`, served by the listener
//!   the `tokenlife-proxy` binary uses (`examples::serve`, default limits);
//! - `jwt-auth PORT SECS`: a hand-written forward-auth service — axum and
//!   `jsonwebtoken::decode` with `iss`, `aud`, `exp` checked — the usual alternative;
//! - `bare PORT UPSTREAM SECS`: what the stack under tokenlife-proxy costs by itself — a
//!   hyper HTTP/1.1 server handing each request, untouched, to hyper-util's pooled
//!   client (no routing, no header rewriting, no token): the floor of the proxy's CPU
//!   per request;
//! - `token DIR`: writes the private key to `DIR/rsa.pem` and prints a token.
//!
//! Each server stops by itself after `SECS`.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};

const ISS: &str = "https://bench.example.com";
const AUD: &str = "api://bench";

fn token() -> String {
    testing::sign(
        &testing::key("rsa-1", Algorithm::RS256),
        &serde_json::json!({"iss": ISS, "aud": AUD, "sub": "bench", "scope": "orders:read",
            "exp": 4_000_000_000u64}),
    )
}

async fn serve(port: u16, app: Router, secs: u64) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    );
    let _ = tokio::time::timeout(Duration::from_secs(secs), server).await;
}

/// hyper's server and hyper-util's pooled client, and nothing else.
async fn bare(port: u16, upstream: axum::http::Uri) -> std::io::Result<()> {
    use hyper::body::Incoming;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let mut parts = upstream.clone().into_parts();
                parts.path_and_query = req.uri().path_and_query().cloned();
                if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
                client.request(req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["token", dir] => {
            std::fs::write(format!("{dir}/rsa.pem"), testing::RSA_PEM)?;
            println!("{}", token());
        }
        ["tokenlife", port, upstream, cache, secs] => {
            let store = KeysetStore::new(Keyset::new([testing::key("rsa-1", Algorithm::RS256)])?);
            let validator = Validator::builder(store)
                .issuer(ISS)
                .audience(AUD)
                .cache_capacity(if *cache == "on" { 100_000 } else { 0 })
                .build()?;
            let proxy = tokenlife_proxy::Proxy::new(validator, tokenlife_proxy::ProxyConfig::single(upstream)?)?;
            // Served as the `tokenlife-proxy` binary serves it: the gateway's listener
            // with its default limits (request timeout, connection caps).
            let (port, secs): (u16, u64) = (port.parse()?, secs.parse()?);
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("bind");
                let server =
                    examples::serve(listener, proxy.service(), examples::ServeLimits::default());
                let _ = tokio::time::timeout(Duration::from_secs(secs), server).await;
            });
        }
        ["jwt-auth", port, secs] => {
            // The key's public half, from the keyset's JWKS.
            let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(
                &Keyset::new([testing::key("rsa-1", Algorithm::RS256)])?.to_public_jwks(),
            )?;
            let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0])?;
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_issuer(&[ISS]);
            validation.set_audience(&[AUD]);
            let app = Router::new().route(
                "/auth",
                get(move |headers: HeaderMap| {
                    let (key, validation) = (key.clone(), validation.clone());
                    async move {
                        let token = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "));
                        match token.map(|t| {
                            jsonwebtoken::decode::<serde_json::Value>(t, &key, &validation)
                        }) {
                            Some(Ok(_)) => StatusCode::OK,
                            _ => StatusCode::UNAUTHORIZED,
                        }
                    }
                }),
            );
            rt.block_on(serve(port.parse()?, app, secs.parse()?));
        }
        ["bare", port, upstream, secs] => {
            let (port, upstream, secs) = (port.parse()?, upstream.parse()?, secs.parse()?);
            let _ = rt.block_on(async move {
                tokio::time::timeout(Duration::from_secs(secs), bare(port, upstream)).await
            });
        }
        _ => return Err("usage: proxy_bench token DIR | tokenlife PORT UPSTREAM on|off SECS | jwt-auth PORT SECS | bare PORT UPSTREAM SECS".into()),
    }
    Ok(())
}
