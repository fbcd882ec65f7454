//! axum extractors: [`Token`] (the whole [`Verified`]) and [`Claims<T>`] (your claims type).
//!
//! Both read what [`TokenLifeLayer`](crate::TokenLifeLayer) put in the request
//! extensions, so they cost no second validation. Use `Option<Token>` /
//! `Option<Claims<T>>` on routes under an [`optional`](crate::TokenLifeLayer::optional) layer.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{StatusCode, header};
use serde::de::DeserializeOwned;
use tokenlife_core::Verified;
use tokenlife_core::gate::{self, Realm};

/// The verified token of the request.
#[derive(Debug, Clone)]
pub struct Token(pub Verified);

/// The token's claims, deserialized into `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Claims<T>(pub T);

/// Why an extractor failed: the core's [`gate::AuthRejection`] with the realm of the
/// layer in front (401 with its challenge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    kind: gate::AuthRejection,
    realm: Option<Realm>,
}

impl AuthRejection {
    fn new(kind: gate::AuthRejection, parts: &Parts) -> Self {
        Self {
            kind,
            realm: parts.extensions.get::<Realm>().cloned(),
        }
    }

    /// Why.
    pub fn kind(&self) -> gate::AuthRejection {
        self.kind
    }
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let challenge = self.kind.challenge(Realm::of(self.realm.as_ref()));
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Token {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Verified>()
            .cloned()
            .map(Token)
            .ok_or_else(|| AuthRejection::new(gate::AuthRejection::Missing, parts))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Token {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Verified>().cloned().map(Token))
    }
}

fn claims<T: DeserializeOwned>(v: &Verified, parts: &Parts) -> Result<Claims<T>, AuthRejection> {
    v.deserialize_claims()
        .map(Claims)
        .map_err(|_| AuthRejection::new(gate::AuthRejection::InvalidClaims, parts))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(v) = parts.extensions.get::<Verified>() else {
            return Err(AuthRejection::new(gate::AuthRejection::Missing, parts));
        };
        claims(v, parts)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequestParts<S> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        parts
            .extensions
            .get::<Verified>()
            .map(|v| claims(v, parts))
            .transpose()
    }
}
