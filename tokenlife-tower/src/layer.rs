//! [`TokenLifeLayer`]: configuration, `Clone + Debug`, builds [`TokenLifeService`]s.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use tokenlife_core::gate::{self, Found, Gate};
use tokenlife_core::{Validator, Verified};
use tower_layer::Layer;

use crate::rejection::{DebugRenderer, Rejection, Renderer};
use crate::service::TokenLifeService;

/// A function that finds the token in the request headers.
pub type ExtractFn = Arc<dyn for<'a> Fn(&'a HeaderMap) -> Option<&'a str> + Send + Sync>;

/// Where the layer looks for the token. The first source that yields one wins.
#[derive(Clone)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1). The default.
    Bearer,
    /// The whole value of this header is the token (`X-Api-Token: <token>`).
    Header(http::HeaderName),
    /// This cookie's value is the token.
    Cookie(Arc<str>),
    /// Your own function.
    Custom(ExtractFn),
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer => f.write_str("Bearer"),
            Self::Header(h) => f.debug_tuple("Header").field(h).finish(),
            Self::Cookie(c) => f.debug_tuple("Cookie").field(c).finish(),
            Self::Custom(_) => f.write_str("Custom(<fn>)"),
        }
    }
}

impl TokenSource {
    fn find<'a>(&self, headers: &'a HeaderMap) -> Found<'a> {
        let values = |name| headers.get_all(name).into_iter().map(HeaderValue::as_bytes);
        match self {
            Self::Bearer => gate::bearer(values(&header::AUTHORIZATION)),
            Self::Header(name) => gate::single_header(values(name)),
            Self::Cookie(name) => gate::cookie(values(&header::COOKIE), name),
            Self::Custom(f) => f(headers).map_or(Found::None, Found::Token),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) validator: Validator,
    sources: Vec<TokenSource>,
    gate: Gate,
    pub(crate) renderer: Option<Renderer>,
}

impl Config {
    /// Decides a request: `Ok` (with `Verified` in its extensions where a token was valid)
    /// or the rejection.
    pub(crate) fn check<B>(&self, req: &mut Request<B>) -> Result<(), Rejection> {
        if self.gate.skips(req.uri().path()) {
            return Ok(());
        }
        let mut found = Found::None;
        for source in &self.sources {
            found = source.find(req.headers());
            if !matches!(found, Found::None) {
                break;
            }
        }
        let verified = self
            .gate
            .decide(found, |token| self.validate(token, req))
            .map_err(Rejection::from)?;
        if let Some(verified) = verified {
            req.extensions_mut().insert(verified);
        }
        Ok(())
    }

    fn validate<B>(
        &self,
        token: &str,
        _req: &Request<B>,
    ) -> Result<Verified, tokenlife_core::ValidationError> {
        #[cfg(feature = "axum")]
        if self.validator.observer().is_some()
            && let Some(axum::extract::ConnectInfo(addr)) =
                _req.extensions()
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        {
            let mut buf = [0u8; 64];
            let client = crate::service::write_ip(&mut buf, addr.ip());
            return self.validator.validate_from(token, client);
        }
        self.validator.validate(token)
    }

    pub(crate) fn render<ResBody: From<Bytes>>(&self, rejection: Rejection) -> Response<ResBody> {
        let realm = self.gate.realm();
        let challenge = rejection.www_authenticate(realm);
        let mut res = match &self.renderer {
            Some(r) => r(&rejection),
            None => rejection.into_response(realm),
        };
        if !res.headers().contains_key(header::WWW_AUTHENTICATE) {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        res.map(ResBody::from)
    }
}

/// A tower [`Layer`] that validates bearer tokens with a [`Validator`].
///
/// A valid token puts its [`Verified`] into the request extensions and the request goes
/// on; anything else is answered right there with `Ok(response)`: 401 (`invalid_token`,
/// or no code for a missing token), 400 (`invalid_request` for a malformed header) or 403
/// (`insufficient_scope`), always with a `WWW-Authenticate: Bearer …` challenge and no
/// internal detail. The service's error type stays the inner one, so axum users need no
/// `HandleErrorLayer`.
///
/// # Examples
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use http::{Request, StatusCode, header};
/// use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
/// use tokenlife_tower::TokenLifeLayer;
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)])?);
/// let validator = Validator::builder(store).issuer("https://auth.example.com").audience("api://orders").build()?;
///
/// let app = Router::new()
///     .route("/orders", get(|| async { "orders" }))
///     .layer(TokenLifeLayer::new(validator));
///
/// let res = app.oneshot(Request::get("/orders").body(Body::empty())?).await?;
/// assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(res.headers()[header::WWW_AUTHENTICATE], r#"Bearer realm="api""#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
#[must_use]
pub struct TokenLifeLayer {
    config: Arc<Config>,
}

impl fmt::Debug for TokenLifeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("TokenLifeLayer")
            .field("validator", &c.validator)
            .field("sources", &c.sources)
            .field("gate", &c.gate)
            .field("renderer", &DebugRenderer(&c.renderer))
            .finish()
    }
}

impl TokenLifeLayer {
    /// Validates `Authorization: Bearer` tokens with `validator`; every request needs one.
    pub fn new(validator: Validator) -> Self {
        Self {
            config: Arc::new(Config {
                validator,
                sources: vec![TokenSource::Bearer],
                gate: Gate::new(),
                renderer: None,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    fn gate(self, f: impl FnOnce(Gate) -> Gate) -> Self {
        self.edit(|c| c.gate = f(std::mem::take(&mut c.gate)))
    }

    /// Replaces the token sources (tried in order).
    pub fn sources(self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        let sources: Vec<_> = sources.into_iter().collect();
        self.edit(|c| c.sources = sources)
    }

    /// Also accepts the token from this cookie (after the `Authorization` header).
    pub fn cookie(self, name: &str) -> Self {
        self.edit(|c| c.sources.push(TokenSource::Cookie(name.into())))
    }

    /// Optional authentication: a request without a token passes through (with no
    /// `Verified`); a request with a bad token is still rejected.
    pub fn optional(self) -> Self {
        self.gate(Gate::optional)
    }

    /// Requires this scope (in the token's `scope` claim); missing → 403
    /// `insufficient_scope`. Apply per route with axum's `route_layer`.
    pub fn require_scope(self, scope: &str) -> Self {
        self.gate(|g| g.require_scope(scope))
    }

    /// Lets this exact path through without a token (health checks).
    pub fn skip_path(self, path: &str) -> Self {
        self.gate(|g| g.skip_path(path))
    }

    /// Lets `prefix` and every path below it through without a token, matching whole
    /// segments (`/public` covers `/public/docs`, not `/publicity`).
    pub fn skip_prefix(self, prefix: &str) -> Self {
        self.gate(|g| g.skip_prefix(prefix))
    }

    /// The `realm` of the challenge (default `api`).
    pub fn realm(self, realm: &str) -> Self {
        self.gate(|g| g.with_realm(realm))
    }

    /// Renders rejections yourself (the challenge header is added if you leave it out).
    pub fn render_with(
        self,
        f: impl Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        let f: Renderer = Arc::new(f);
        self.edit(|c| c.renderer = Some(f))
    }
}

impl<S> Layer<S> for TokenLifeLayer {
    type Service = TokenLifeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenLifeService::new(inner, self.config.clone())
    }
}
