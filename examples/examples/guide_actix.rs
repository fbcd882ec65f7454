//! The guide's actix-web quick start (docs/src/quickstart.md includes it): the
//! middleware on the app, the claims in the handler; answers one request in process.
//!
//! `cargo run -p examples --example guide_actix`

use actix_web::{App, HttpResponse, test, web};
use serde::Deserialize;
use tokenlife_actix::{Claims, TokenLife};
use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};

// ANCHOR: actix
#[derive(Deserialize)]
struct User {
    sub: String,
}

async fn orders(Claims(user): Claims<User>) -> HttpResponse {
    HttpResponse::Ok().body(format!("orders of {}\n", user.sub))
}
// ANCHOR_END: actix

fn main() -> Result<(), Box<dyn std::error::Error>> {
    actix_web::rt::System::new().block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let key = testing::key("k1", Algorithm::ES256);
    let validator = Validator::builder(KeysetStore::new(Keyset::new([testing::key(
        "k1",
        Algorithm::ES256,
    )])?))
    .issuer("https://auth.example.com")
    .audience("api://orders")
    .build()?;
    // ANCHOR: wrap
    let app = test::init_service(
        App::new()
            .wrap(TokenLife::new(validator).require_scope("orders:read"))
            .route("/orders", web::get().to(orders)),
    )
    .await;
    // ANCHOR_END: wrap
    let token = testing::sign(
        &key,
        &serde_json::json!({"iss": "https://auth.example.com", "aud": "api://orders",
            "sub": "alice", "scope": "orders:read", "exp": 4_000_000_000u64}),
    );
    let req = test::TestRequest::get()
        .uri("/orders")
        .insert_header(("authorization", format!("Bearer {token}")))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), 200);
    println!("GET /orders with alice's token: {}", res.status());
    Ok(())
}
