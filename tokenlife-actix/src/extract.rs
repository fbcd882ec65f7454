//! actix-web extractors: [`Token`] (the whole [`Verified`]) and [`Claims<T>`] (your claims
//! type).
//!
//! Both read what [`TokenLife`](crate::TokenLife) put in the request extensions, so they
//! cost no second validation. On routes under an [`optional`](crate::TokenLife::optional)
//! middleware use `Option<Token>` and [`MaybeClaims<T>`]: actix-web's own `Option<…>`
//! answers `None` whenever the extractor fails, so an `Option<Claims<T>>` whose claims do
//! not fit `T` would treat a verified caller as anonymous; `MaybeClaims<T>` is `None` only
//! without a token and 401 on claims that do not fit, as axum's `Option<Claims<T>>`.
//!
//! Their rejection is [`AuthRejection`] (401 with the middleware's realm in the
//! challenge); an [`ExtractorConfig`] in the app data turns it into your own error, as
//! actix-web's `JsonConfig::error_handler` does for JSON.

use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
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
/// middleware in front — 401 with its challenge, the same answer as the tower adapter's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    kind: gate::AuthRejection,
    realm: Option<Realm>,
}

impl AuthRejection {
    fn new(kind: gate::AuthRejection, req: &HttpRequest) -> Self {
        Self {
            kind,
            realm: req.extensions().get::<Realm>().cloned(),
        }
    }

    /// Why.
    pub fn kind(&self) -> gate::AuthRejection {
        self.kind
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for AuthRejection {}

impl ResponseError for AuthRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    fn error_response(&self) -> HttpResponse {
        let challenge = self.kind.challenge(Realm::of(self.realm.as_ref()));
        HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, challenge))
            .finish()
    }
}

/// The error handler of a [`ExtractorConfig`].
type ErrorHandler = Arc<dyn Fn(AuthRejection, &HttpRequest) -> actix_web::Error + Send + Sync>;

/// How [`Token`], [`Claims`] and [`MaybeClaims`] answer a rejection, put in the app data
/// (`App::app_data`, or a scope's or resource's): your error instead of the default 401.
///
/// ```
/// use actix_web::{App, HttpResponse, error::InternalError};
/// use tokenlife_actix::ExtractorConfig;
/// let app = App::new().app_data(ExtractorConfig::default().error_handler(|rejection, _req| {
///     let body = HttpResponse::Unauthorized().json(serde_json::json!({"error": rejection.to_string()}));
///     InternalError::from_response(rejection, body).into()
/// }));
/// # let _ = app;
/// ```
#[derive(Clone, Default)]
pub struct ExtractorConfig {
    handler: Option<ErrorHandler>,
}

impl fmt::Debug for ExtractorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtractorConfig")
            .field("error_handler", &self.handler.is_some())
            .finish()
    }
}

impl ExtractorConfig {
    /// Turns each rejection into this error (its response is what the client gets).
    #[must_use]
    pub fn error_handler(
        mut self,
        f: impl Fn(AuthRejection, &HttpRequest) -> actix_web::Error + Send + Sync + 'static,
    ) -> Self {
        self.handler = Some(Arc::new(f));
        self
    }
}

/// The rejection of `kind` for `req`, through the app's [`ExtractorConfig`] if it has one.
fn reject(kind: gate::AuthRejection, req: &HttpRequest) -> actix_web::Error {
    let rejection = AuthRejection::new(kind, req);
    match req
        .app_data::<ExtractorConfig>()
        .or_else(|| {
            req.app_data::<actix_web::web::Data<ExtractorConfig>>()
                .map(|d| &***d)
        })
        .and_then(|c| c.handler.as_ref())
    {
        Some(handler) => handler(rejection, req),
        None => rejection.into(),
    }
}

impl FromRequest for Token {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Verified>()
                .cloned()
                .map(Token)
                .ok_or_else(|| reject(gate::AuthRejection::Missing, req)),
        )
    }
}

impl<T: DeserializeOwned> FromRequest for Claims<T> {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ext = req.extensions();
        ready(match ext.get::<Verified>() {
            None => Err(reject(gate::AuthRejection::Missing, req)),
            Some(v) => v
                .deserialize_claims()
                .map(Claims)
                .map_err(|_| reject(gate::AuthRejection::InvalidClaims, req)),
        })
    }
}

/// The claims of the request's token if it has one: `MaybeClaims(None)` without a token
/// (an [`optional`](crate::TokenLife::optional) middleware let it through), 401 when the
/// token's claims do not fit `T` — never "anonymous" for a verified caller whose claims
/// are not what the handler expects (actix-web's `Option<Claims<T>>` would be).
#[derive(Debug, Clone, Copy, Default)]
pub struct MaybeClaims<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest for MaybeClaims<T> {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ext = req.extensions();
        ready(match ext.get::<Verified>() {
            None => Ok(Self(None)),
            Some(v) => v
                .deserialize_claims()
                .map(|c| Self(Some(c)))
                .map_err(|_| reject(gate::AuthRejection::InvalidClaims, req)),
        })
    }
}
