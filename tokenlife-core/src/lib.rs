//! tokenlife-core: validate, revoke and roll back tokens inside your own service.
//!
//! Load the identity provider's JWKS into a [`KeysetStore`], build a [`Validator`] with
//! the issuer and audience you accept, and validate bearer tokens on the hot path: no
//! lock, a verified-token cache, revocation by `jti`, subject or family, and keyset
//! changes (publish, stage, promote, rollback) that are each one atomic swap.
//!
//! This crate knows no HTTP framework; `tokenlife-tower` and `tokenlife-actix` adapt it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tokenlife_core::{Keyset, KeysetStore, ManualClock, ValidationErrorKind, Validator};
//! # use tokenlife_core::testing;
//! # use jsonwebtoken::Algorithm;
//! # let idp_key = testing::key("deploy-41-rsa", Algorithm::RS256);
//! # let jwks_json = tokenlife_core::Keyset::new([testing::key("deploy-41-rsa", Algorithm::RS256)])?.to_public_jwks();
//! # let clock = ManualClock::at_unix(1_700_000_000);
//! # let claims = serde_json::json!({"iss": "https://auth.example.com", "aud": "api://orders",
//! #     "sub": "user-42", "jti": "b9a1c2d3", "iat": 1_700_000_000, "exp": 1_700_000_900});
//! # let token = testing::sign(&idp_key, &claims);
//!
//! // The identity provider's public keys, as served at its jwks_uri.
//! let keyset = Keyset::from_jwks_json(&jwks_json)?;
//! let store = KeysetStore::new(keyset.with_label("deploy-41"));
//! let validator = Validator::builder(store.clone())
//!     .issuer("https://auth.example.com")
//!     .audience("api://orders")
//!     .leeway(Duration::from_secs(30))
//!     .clock(clock.clone())
//!     .build()?;
//!
//! // Validate.
//! let verified = validator.validate(&token)?;
//! assert_eq!(verified.claims().sub.as_deref(), Some("user-42"));
//! assert_eq!(verified.keyset_version(), store.current().version());
//!
//! // Revoke it by jti: the very next call fails, cached or not.
//! let until = clock.now() + Duration::from_secs(900);
//! validator.revocations().revoke_jti("b9a1c2d3", until)?;
//! assert_eq!(validator.validate(&token).unwrap_err().kind(), ValidationErrorKind::Revoked);
//!
//! // Publish a keyset that lacks the key, then roll back: one atomic swap each.
//! let v2 = store.publish(Keyset::from_jwks_json(r#"{"keys":[{"kty":"oct","kid":"other",
//!     "k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#)?);
//! assert_eq!(store.current().version(), v2);
//! assert_eq!(store.rollback()?, 1);
//! assert_eq!(store.current().label(), Some("deploy-41"));
//! # use tokenlife_core::Clock;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! - `aws-lc-rs` (default) / `rust-crypto`: jsonwebtoken's crypto backend; one is needed.
//! - `test-util`: [`ManualClock`] and the [`testing`] keys.
//! - `admin`: the framework-neutral admin and OAuth operations (`admin`), which the
//!   adapters mount.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
pub mod apikey;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod audit_store;
mod clock;
mod crypto;
mod ecdsa;
pub mod error;
mod fingerprint;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod fleet;
mod form;
pub mod gate;
mod hash;
pub mod issue;
pub mod keys;
pub mod observe;
pub mod revoke;
pub mod rollout;
pub mod validate;

#[cfg(feature = "test-util")]
pub mod testing;

// The headline types; everything else lives in its module.
#[cfg(feature = "test-util")]
pub use clock::ManualClock;
pub use clock::{Clock, SystemClock};
pub use error::{ValidationError, ValidationErrorKind};
pub use fingerprint::Fingerprint;
pub use issue::{Issuer, TokenPair, TokenRequest};
pub use keys::{Key, Keyset, KeysetStore};
pub use observe::{Monitor, Observer};
pub use revoke::RevocationList;
pub use validate::{Validator, Verified};

/// jsonwebtoken, whose types (`Jwk`, `Header`, `EncodingKey`, …) appear in tokenlife's
/// signatures: use this one rather than pinning a matching version yourself.
pub use jsonwebtoken;
/// The JWT algorithms (re-exported from jsonwebtoken).
pub use jsonwebtoken::Algorithm;
