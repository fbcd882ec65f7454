//! Peer gaps, item 7, tower half: browsers send a CORS preflight (`OPTIONS` with `Origin`
//! and `Access-Control-Request-Method`) without credentials. With tower-http's
//! `CorsLayer` outside `TokenLifeLayer` (the order to use: in axum the layer added last
//! is the outermost) the preflight is answered by CORS and never reaches the guard, and
//! a 401 carries the CORS headers so the page can read it. With the guard outside,
//! `skip_preflight()` lets the preflight through to the CORS layer inside. Real server,
//! real client.
#![cfg(feature = "axum")]

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use http::{HeaderValue, Method};
use tokenlife_tower::TokenLifeLayer;
use tower_http::cors::CorsLayer;

const ORIGIN: &str = "https://app.example";

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(HeaderValue::from_static(ORIGIN))
        .allow_methods([Method::GET])
        .allow_headers([http::header::AUTHORIZATION])
}

async fn preflight(http: &reqwest::Client, url: &str) -> reqwest::Response {
    http.request(reqwest::Method::OPTIONS, url)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_outside_the_guard_answers_preflights_and_labels_the_401() {
    let f = Fixture::new();
    let app = Router::new()
        .route("/orders", get(|| async { "orders" }))
        .layer(TokenLifeLayer::new(f.validator.clone()))
        .layer(cors());
    let base = serve(app).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/orders");
    let res = preflight(&http, &url).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    // The real request without a token: 401, readable by the page.
    let res = http
        .get(&url)
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    assert!(res.headers().contains_key("www-authenticate"));
    // With a token: 200, with the CORS header.
    let res = http
        .get(&url)
        .header("origin", ORIGIN)
        .bearer_auth(f.token("orders:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
}

#[tokio::test]
async fn a_guard_outside_cors_needs_skip_preflight() {
    let f = Fixture::new();
    let app = |skip: bool| {
        let layer = TokenLifeLayer::new(f.validator.clone());
        Router::new()
            .route("/orders", get(|| async { "orders" }))
            .layer(cors())
            .layer(if skip { layer.skip_preflight() } else { layer })
    };
    let http = reqwest::Client::new();
    let strict = serve(app(false)).await;
    let res = preflight(&http, &format!("{strict}/orders")).await;
    assert_eq!(res.status(), 401, "the preflight carries no token");
    let skipping = serve(app(true)).await;
    let res = preflight(&http, &format!("{skipping}/orders")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    // Only a real preflight is let through: an OPTIONS without the CORS headers is not.
    let res = http
        .request(reqwest::Method::OPTIONS, format!("{skipping}/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
