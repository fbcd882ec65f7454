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

/// The verified token of the request.
#[derive(Debug, Clone)]
pub struct Token(pub Verified);

/// The token's claims, deserialized into `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Claims<T>(pub T);

/// Why an extractor failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// The request carries no verified token (no token under an optional layer, or no
    /// layer at all).
    Missing,
    /// The token's claims do not fit the requested type.
    InvalidClaims,
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "no verified bearer token",
            Self::InvalidClaims => "token claims do not fit",
        })
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let challenge = match self {
            Self::Missing => r#"Bearer realm="api""#,
            Self::InvalidClaims => {
                r#"Bearer realm="api", error="invalid_token", error_description="token claims do not fit""#
            }
        };
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
            .ok_or(AuthRejection::Missing)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Token {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Verified>().cloned().map(Token))
    }
}

fn claims<T: DeserializeOwned>(v: &Verified) -> Result<Claims<T>, AuthRejection> {
    v.deserialize_claims()
        .map(Claims)
        .map_err(|_| AuthRejection::InvalidClaims)
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        claims(
            parts
                .extensions
                .get::<Verified>()
                .ok_or(AuthRejection::Missing)?,
        )
    }
}

impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequestParts<S> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        parts.extensions.get::<Verified>().map(claims).transpose()
    }
}
