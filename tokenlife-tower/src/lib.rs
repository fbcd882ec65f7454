//! tokenlife for tower and axum: a [`TokenLifeLayer`] that validates bearer tokens on the
//! way in, axum extractors ([`Claims<T>`], [`Token`]) and an [admin router](admin).
//!
//! # Wrap your router
//!
//! ```
//! use axum::{Router, routing::get};
//! use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
//! use tokenlife_tower::{Claims, TokenLifeLayer};
//!
//! #[derive(serde::Deserialize)]
//! struct MyClaims { sub: String }
//!
//! async fn orders(Claims(c): Claims<MyClaims>) -> String { format!("hello {}", c.sub) }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)])?);
//! let validator = Validator::builder(store).issuer("https://auth.example.com").audience("api://orders").build()?;
//! let app: Router = Router::new()
//!     .route("/orders", get(orders))
//!     .layer(TokenLifeLayer::new(validator).skip_path("/healthz")); // 401/403 with WWW-Authenticate
//! # let _ = app; Ok(()) }
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

mod future;
mod headers;
mod layer;
mod mode;
mod rejection;
mod service;

#[cfg(feature = "axum")]
pub mod admin;
#[cfg(feature = "axum")]
mod extract;
#[cfg(feature = "axum")]
mod metadata;

pub use future::ResponseFuture;
pub use headers::{ExtractFn, HttpHeaders, TokenSource};
pub use layer::TokenLifeLayer;
pub use mode::{Grpc, Http, Respond};
pub use rejection::{Rejection, Renderer};
pub use service::TokenLifeService;

#[cfg(feature = "axum")]
pub use extract::{AuthRejection, Claims, Token};
#[cfg(feature = "axum")]
pub use metadata::protected_resource;

pub use tokenlife_core as core;
