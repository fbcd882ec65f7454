//! The guide's axum quick start (docs/src/quickstart.md includes it): a validator on a
//! keyset, the layer on the router, the claims in the handler. Builds the router and
//! answers one request in process.
//!
//! `cargo run -p examples --example guide_axum`

use axum::Router;
use axum::routing::get;
use serde::Deserialize;
use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
use tokenlife_tower::{Claims, TokenLifeLayer};
use tower_service::Service;

// ANCHOR: handler
#[derive(Deserialize)]
struct User {
    sub: String,
}

async fn orders(Claims(user): Claims<User>) -> String {
    format!("orders of {}\n", user.sub)
}
// ANCHOR_END: handler

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In production the keyset comes from your JWKS (`Keyset::from_jwks_json`) or an
    // identity provider (`keys::remote::RemoteKeys`); here, a public test key.
    let key = testing::key("k1", Algorithm::ES256);
    // ANCHOR: layer
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)])?);
    let validator = Validator::builder(store)
        .issuer("https://auth.example.com")
        .audience("api://orders")
        .build()?;
    let mut app = Router::new()
        .route("/orders", get(orders))
        .layer(TokenLifeLayer::new(validator).require_scope("orders:read"));
    // ANCHOR_END: layer
    let token = testing::sign(
        &key,
        &serde_json::json!({"iss": "https://auth.example.com", "aud": "api://orders",
            "sub": "alice", "scope": "orders:read", "exp": 4_000_000_000u64}),
    );
    let req = axum::http::Request::get("/orders")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())?;
    let res = app.call(req).await?;
    assert_eq!(res.status(), 200);
    println!("GET /orders with alice's token: {}", res.status());
    Ok(())
}
