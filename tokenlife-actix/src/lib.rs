//! tokenlife for actix-web: a [`TokenLife`] middleware that validates bearer tokens on the
//! way in, extractors ([`Claims<T>`], [`Token`]) and the [admin and OAuth scopes](admin).
//!
//! It is the twin of `tokenlife-tower`: the same options, and — because both render
//! through `tokenlife_core::gate` and `tokenlife_core::admin` — the same status codes,
//! headers and bodies (the workspace's conformance suite runs every case against both).
//!
//! # Wrap your app
//!
//! ```
//! use actix_web::{App, HttpResponse, web};
//! use tokenlife_actix::{Claims, TokenLife};
//! use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
//!
//! #[derive(serde::Deserialize)]
//! struct MyClaims { sub: String }
//!
//! async fn orders(Claims(c): Claims<MyClaims>) -> HttpResponse {
//!     HttpResponse::Ok().body(format!("hello {}", c.sub))
//! }
//!
//! let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
//! let validator = Validator::builder(store).issuer("https://auth.example.com").audience("api://orders").build().unwrap();
//! let app = App::new()
//!     .wrap(TokenLife::new(validator).skip_path("/healthz")) // 401/403 with WWW-Authenticate
//!     .route("/orders", web::get().to(orders));
//! # let _ = app;
//! ```
//!
//! # Responses
//!
//! | request | status | `WWW-Authenticate` |
//! | --- | --- | --- |
//! | no token | 401 | `Bearer realm="api"` |
//! | malformed `Authorization` header | 400 | `… error="invalid_request"` |
//! | bad, expired, revoked token | 401 | `… error="invalid_token"` |
//! | missing scope | 403 | `… error="insufficient_scope", scope="…"` |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
mod extract;
mod metadata;
mod middleware;

pub use extract::{AuthRejection, Claims, ExtractorConfig, MaybeClaims, Token};
pub use metadata::protected_resource;
pub use middleware::{
    ActixHeaders, ExtractFn, Renderer, ResponseFuture, TokenLife, TokenLifeMiddleware, TokenSource,
};
pub use tokenlife_core::gate::Rejection;

pub use tokenlife_core as core;

// The README's snippets (axum and actix-web) compile and run as doctests of this crate,
// whose dev-dependencies hold both frameworks.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
