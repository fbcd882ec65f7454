//! [`TokenLifeLayer`]: configuration, `Clone + Debug`, builds [`TokenLifeService`]s.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
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

/// What a source found.
enum Found<'a> {
    Token(&'a str),
    None,
    Bad(&'static str),
}

impl TokenSource {
    fn find<'a>(&self, headers: &'a HeaderMap) -> Found<'a> {
        match self {
            Self::Bearer => {
                let mut all = headers.get_all(header::AUTHORIZATION).iter();
                let Some(v) = all.next() else {
                    return Found::None;
                };
                // Two Authorization headers: which one counts would be a guess (and a
                // way to smuggle a second credential past a proxy that checks the first).
                if all.next().is_some() {
                    return Found::Bad("more than one Authorization header");
                }
                let Ok(v) = v.to_str() else {
                    return Found::Bad("malformed Authorization header");
                };
                match v.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                        let token = rest.trim_matches(' ');
                        if token.is_empty() || token.contains(' ') {
                            Found::Bad("malformed bearer token")
                        } else {
                            Found::Token(token)
                        }
                    }
                    None if v.eq_ignore_ascii_case("bearer") => {
                        Found::Bad("malformed bearer token")
                    }
                    // Another scheme (Basic, …): not ours.
                    _ => Found::None,
                }
            }
            Self::Header(name) if headers.get_all(name).iter().nth(1).is_some() => {
                Found::Bad("more than one token header")
            }
            Self::Header(name) => match headers.get(name).map(|v| v.to_str()) {
                None => Found::None,
                Some(Ok(t)) if !t.is_empty() => Found::Token(t),
                Some(_) => Found::Bad("malformed token header"),
            },
            Self::Cookie(name) => {
                for v in headers.get_all(header::COOKIE) {
                    let Ok(v) = v.to_str() else { continue };
                    for pair in v.split(';') {
                        if let Some((k, val)) = pair.trim().split_once('=')
                            && k == &**name
                            && !val.is_empty()
                        {
                            return Found::Token(val);
                        }
                    }
                }
                Found::None
            }
            Self::Custom(f) => f(headers).map_or(Found::None, Found::Token),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) validator: Validator,
    sources: Vec<TokenSource>,
    optional: bool,
    scopes: Vec<Box<str>>,
    scope_text: Option<Arc<str>>,
    skip_exact: Vec<Box<str>>,
    skip_prefix: Vec<Box<str>>,
    pub(crate) realm: Box<str>,
    pub(crate) renderer: Option<Renderer>,
}

/// Whether `path` is `prefix` or below it, by whole segments: `/public` covers
/// `/public` and `/public/x`, never `/publicity`. A prefix given with a trailing `/`
/// covers what lies below it.
fn under_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl Config {
    /// Decides a request: `Ok` (with `Verified` in its extensions where a token was valid)
    /// or the rejection.
    pub(crate) fn check<B>(&self, req: &mut Request<B>) -> Result<(), Rejection> {
        let path = req.uri().path();
        if self.skip_exact.iter().any(|p| **p == *path)
            || self.skip_prefix.iter().any(|p| under_prefix(path, p))
        {
            return Ok(());
        }
        let mut found = Found::None;
        for source in &self.sources {
            found = source.find(req.headers());
            if !matches!(found, Found::None) {
                break;
            }
        }
        let token = match found {
            Found::Token(t) => t,
            Found::Bad(why) => return Err(Rejection::invalid_request(why)),
            Found::None if self.optional => return Ok(()),
            Found::None => return Err(Rejection::missing()),
        };
        let verified = self
            .validate(token, req)
            .map_err(|e| Rejection::from_error(&e))?;
        if !self.scopes.iter().all(|s| verified.has_scope(s)) {
            return Err(Rejection::insufficient_scope(
                self.scope_text.clone().unwrap_or_else(|| "".into()),
            ));
        }
        req.extensions_mut().insert(verified);
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
        let challenge = rejection.www_authenticate(&self.realm);
        let mut res = match &self.renderer {
            Some(r) => r(&rejection),
            None => rejection.into_response(&self.realm),
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
            .field("optional", &c.optional)
            .field("scopes", &c.scopes)
            .field("skip_exact", &c.skip_exact)
            .field("skip_prefix", &c.skip_prefix)
            .field("realm", &c.realm)
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
                optional: false,
                scopes: Vec::new(),
                scope_text: None,
                skip_exact: Vec::new(),
                skip_prefix: Vec::new(),
                realm: "api".into(),
                renderer: None,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
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
        self.edit(|c| c.optional = true)
    }

    /// Requires this scope (in the token's `scope` claim); missing → 403
    /// `insufficient_scope`. Apply per route with axum's `route_layer`.
    pub fn require_scope(self, scope: &str) -> Self {
        self.edit(|c| {
            c.scopes.push(scope.into());
            let text: Vec<&str> = c.scopes.iter().map(|s| &**s).collect();
            c.scope_text = Some(text.join(" ").into());
        })
    }

    /// Lets this exact path through without a token (health checks).
    pub fn skip_path(self, path: &str) -> Self {
        self.edit(|c| c.skip_exact.push(path.into()))
    }

    /// Lets `prefix` and every path below it through without a token, matching whole
    /// segments (`/public` covers `/public/docs`, not `/publicity`).
    pub fn skip_prefix(self, prefix: &str) -> Self {
        self.edit(|c| c.skip_prefix.push(prefix.into()))
    }

    /// The `realm` of the challenge (default `api`).
    pub fn realm(self, realm: &str) -> Self {
        self.edit(|c| c.realm = realm.into())
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

#[cfg(test)]
mod tests {
    use super::under_prefix;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under_prefix("/public", "/public"));
        assert!(under_prefix("/public/x", "/public"));
        assert!(under_prefix("/public/x", "/public/"));
        assert!(!under_prefix("/publicity", "/public"));
        assert!(!under_prefix("/public", "/public/"));
        assert!(!under_prefix("/other", "/public"));
    }
}
