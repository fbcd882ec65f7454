//! The guide's migration from a hand-written `jsonwebtoken` middleware
//! (docs/src/migrating.md includes both halves): the same route, before and after, both
//! compiled and both answering the same token.
//!
//! `cargo run -p examples --example guide_migrate`

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
use tower_service::Service;

// ANCHOR: before
/// Before: a middleware written by hand around `jsonwebtoken::decode`. No cache, no
/// revocation, one key fixed at start, every failure a bare 401 without a challenge.
#[derive(Clone)]
struct Keys(std::sync::Arc<jsonwebtoken::DecodingKey>);

async fn hand_written(keys: Keys, mut req: Request, next: Next) -> Result<Response, StatusCode> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&["https://auth.example.com"]);
    validation.set_audience(&["api://orders"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &keys.0, &validation)
        .map_err(|_| StatusCode::UNAUTHORIZED)?;
    req.extensions_mut().insert(data.claims);
    Ok(next.run(req).await)
}

fn before(keys: Keys) -> Router {
    Router::new()
        .route("/orders", get(|| async { "orders\n" }))
        .layer(middleware::from_fn(move |req, next| {
            hand_written(keys.clone(), req, next)
        }))
}
// ANCHOR_END: before

// ANCHOR: after
/// After: the layer. Keysets swapped atomically (rollback, canary, remote JWKS), a
/// verified-token cache, revocation, RFC 6750 challenges, metrics and an audit trail.
fn after(validator: Validator) -> Router {
    Router::new()
        .route("/orders", get(|| async { "orders\n" }))
        .layer(tokenlife_tower::TokenLifeLayer::new(validator))
}
// ANCHOR_END: after

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = testing::key("k1", Algorithm::ES256);
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(
        &Keyset::new([testing::key("k1", Algorithm::ES256)])?.to_public_jwks(),
    )?;
    let keys = Keys(std::sync::Arc::new(jsonwebtoken::DecodingKey::from_jwk(
        &jwks.keys[0],
    )?));
    let validator = Validator::builder(KeysetStore::new(Keyset::new([testing::key(
        "k1",
        Algorithm::ES256,
    )])?))
    .issuer("https://auth.example.com")
    .audience("api://orders")
    .build()?;
    let token = testing::sign(
        &key,
        &serde_json::json!({"iss": "https://auth.example.com", "aud": "api://orders",
            "sub": "alice", "exp": 4_000_000_000u64}),
    );
    for (name, mut app) in [("before", before(keys)), ("after", after(validator))] {
        for (auth, want) in [
            (format!("Bearer {token}"), 200),
            ("Bearer nope".into(), 401),
        ] {
            let req = axum::http::Request::get("/orders")
                .header("authorization", auth)
                .body(axum::body::Body::empty())?;
            let res = app.call(req).await?;
            assert_eq!(res.status(), want, "{name}");
        }
        println!("{name}: the same answers");
    }
    Ok(())
}
