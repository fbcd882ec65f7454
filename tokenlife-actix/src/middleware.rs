//! [`TokenLife`]: the middleware factory (actix-web `Transform`), and the
//! [`TokenLifeMiddleware`] service it builds.

use std::fmt;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage, HttpResponse};
use pin_project_lite::pin_project;
use tokenlife_core::gate::{self, Found, Gate, Rejection};
use tokenlife_core::{ValidationError, Validator, Verified};

/// A function that finds the token in the request headers.
pub type ExtractFn = Arc<dyn for<'a> Fn(&'a HeaderMap) -> Option<&'a str> + Send + Sync>;

/// Renders a [`Rejection`] into a response of your own (JSON problem details, say). The
/// middleware adds the `WWW-Authenticate` challenge if the renderer did not.
pub type Renderer = Arc<dyn Fn(&Rejection) -> HttpResponse + Send + Sync>;

/// Where the middleware looks for the token. The first source that yields one wins.
#[derive(Clone)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1). The default.
    Bearer,
    /// The whole value of this header is the token (`X-Api-Token: <token>`).
    Header(HeaderName),
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
        let values = |name| headers.get_all(name).map(HeaderValue::as_bytes);
        match self {
            Self::Bearer => gate::bearer(values(&header::AUTHORIZATION)),
            Self::Header(name) => gate::single_header(values(name)),
            Self::Cookie(name) => gate::cookie(values(&header::COOKIE), name),
            Self::Custom(f) => f(headers).map_or(Found::None, Found::Token),
        }
    }
}

#[derive(Clone)]
struct Config {
    validator: Validator,
    sources: Vec<TokenSource>,
    gate: Gate,
    renderer: Option<Renderer>,
}

impl Config {
    /// The verdict on a request: `Ok(Some)` for a valid token, `Ok(None)` for a skipped
    /// path or an optional request without one.
    fn check(&self, req: &ServiceRequest) -> Result<Option<Verified>, Rejection> {
        if self.gate.skips(req.path()) {
            return Ok(None);
        }
        let mut found = Found::None;
        for source in &self.sources {
            found = source.find(req.headers());
            if !matches!(found, Found::None) {
                break;
            }
        }
        self.gate.decide(found, |token| self.validate(token, req))
    }

    fn validate(&self, token: &str, req: &ServiceRequest) -> Result<Verified, ValidationError> {
        if self.validator.observer().is_some()
            && let Some(addr) = req.peer_addr()
        {
            let mut buf = [0u8; 64];
            let client = write_ip(&mut buf, addr.ip());
            return self.validator.validate_from(token, client);
        }
        self.validator.validate(token)
    }

    fn render(&self, rejection: &Rejection) -> HttpResponse {
        let realm = self.gate.realm();
        let mut res = match &self.renderer {
            Some(r) => r(rejection),
            None => HttpResponse::new(
                StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED),
            ),
        };
        if !res.headers().contains_key(header::WWW_AUTHENTICATE) {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge(rejection, realm));
        }
        res
    }
}

/// The `WWW-Authenticate` value of a rejection.
pub(crate) fn challenge(rejection: &Rejection, realm: &str) -> HeaderValue {
    // The core's challenge keeps quoted values free of quotes and control characters; a
    // realm outside visible ASCII is the one way this falls back.
    HeaderValue::from_str(&rejection.challenge(realm))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// Formats an IP address into `buf` without allocating.
fn write_ip(buf: &mut [u8; 64], ip: std::net::IpAddr) -> Option<&str> {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{ip}").ok()?;
    let len = usize::try_from(cursor.position()).ok()?;
    std::str::from_utf8(&buf[..len]).ok()
}

/// Middleware that validates bearer tokens with a [`Validator`]: the actix-web twin of
/// `tokenlife_tower::TokenLifeLayer`, with the same options and the same answers.
///
/// A valid token puts its [`Verified`] into the request extensions (read it with the
/// [`Token`](crate::Token) or [`Claims<T>`](crate::Claims) extractors) and the request
/// goes on; anything else is answered right there: 401 (`invalid_token`, or no code for
/// a missing token), 400 (`invalid_request` for a malformed header) or 403
/// (`insufficient_scope`), always with a `WWW-Authenticate: Bearer …` challenge rendered
/// by `tokenlife_core::gate`, and no internal detail. The client address (the peer
/// address) goes to the observer for per-client alerts.
///
/// # Examples
///
/// ```
/// use actix_web::{App, HttpResponse, http::{StatusCode, header}, test, web};
/// use tokenlife_actix::TokenLife;
/// use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
///
/// # actix_web::rt::System::new().block_on(async {
/// let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
/// let validator = Validator::builder(store).issuer("https://auth.example.com").audience("api://orders").build().unwrap();
///
/// let app = test::init_service(
///     App::new()
///         .wrap(TokenLife::new(validator))
///         .route("/orders", web::get().to(|| async { HttpResponse::Ok().body("orders") })),
/// )
/// .await;
/// let res = test::call_service(&app, test::TestRequest::get().uri("/orders").to_request()).await;
/// assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(res.headers().get(header::WWW_AUTHENTICATE).unwrap(), r#"Bearer realm="api""#);
/// # });
/// ```
#[derive(Clone)]
#[must_use]
pub struct TokenLife {
    config: Arc<Config>,
}

impl fmt::Debug for TokenLife {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("TokenLife")
            .field("validator", &c.validator)
            .field("sources", &c.sources)
            .field("gate", &c.gate)
            .field(
                "renderer",
                &if c.renderer.is_some() {
                    "Some(<renderer>)"
                } else {
                    "None"
                },
            )
            .finish()
    }
}

impl TokenLife {
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
    /// `insufficient_scope`. Wrap a `web::scope` or a `web::resource` for per-route scopes.
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
        f: impl Fn(&Rejection) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        let f: Renderer = Arc::new(f);
        self.edit(|c| c.renderer = Some(f))
    }
}

impl<S, B> Transform<S, ServiceRequest> for TokenLife
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = TokenLifeMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(TokenLifeMiddleware {
            service: Rc::new(service),
            config: self.config.clone(),
        }))
    }
}

/// The service made by [`TokenLife`].
pub struct TokenLifeMiddleware<S> {
    service: Rc<S>,
    config: Arc<Config>,
}

impl<S> fmt::Debug for TokenLifeMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLifeMiddleware")
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for TokenLifeMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // Validation is synchronous: the inner service is called (or not) right here.
        match self.config.check(&req) {
            Ok(verified) => {
                if let Some(v) = verified {
                    req.extensions_mut().insert(v);
                }
                ResponseFuture {
                    kind: Kind::Inner {
                        fut: self.service.call(req),
                    },
                }
            }
            Err(rejection) => {
                let res = self.config.render(&rejection);
                ResponseFuture {
                    kind: Kind::Rejected {
                        res: Some(req.into_response(res).map_into_right_body()),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`TokenLifeMiddleware`]: the inner service's, or the
    /// rejection, ready at once.
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner { #[pin] fut: F },
        Rejected { res: Option<ServiceResponse<EitherBody<B>>> },
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { fut } => fut.poll(cx).map_ok(ServiceResponse::map_into_left_body),
            KindProj::Rejected { res } => Poll::Ready(Ok(res
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}
