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
use tokenlife_core::Validator;
use tokenlife_core::gate::{self, Guard, Rejection};

/// actix-web's headers, as the core's [`Guard`] reads them.
#[derive(Debug, Clone, Copy)]
pub struct ActixHeaders;

impl gate::Headers for ActixHeaders {
    type Map = HeaderMap;
    type Name = HeaderName;

    fn authorization(map: &HeaderMap) -> impl Iterator<Item = &[u8]> {
        map.get_all(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
    }

    fn cookies(map: &HeaderMap) -> impl Iterator<Item = &[u8]> {
        map.get_all(header::COOKIE).map(HeaderValue::as_bytes)
    }

    fn values<'a>(map: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
        map.get_all(name).map(HeaderValue::as_bytes)
    }

    fn contains(map: &HeaderMap, name: &'static str) -> bool {
        map.contains_key(name)
    }
}

/// A function that finds the token in the request headers.
pub type ExtractFn = gate::CustomSource<ActixHeaders>;

/// Renders a [`Rejection`] into a response of your own (JSON problem details, say). The
/// middleware adds the `WWW-Authenticate` challenge if the renderer did not.
pub type Renderer = Arc<dyn Fn(&Rejection) -> HttpResponse + Send + Sync>;

/// Where the middleware looks for the token. The first source that yields one wins.
pub type TokenSource = gate::TokenSource<ActixHeaders>;

#[derive(Clone)]
struct Config {
    guard: Guard<ActixHeaders>,
    renderer: Option<Renderer>,
}

impl Config {
    fn render(&self, rejection: &Rejection) -> HttpResponse {
        let mut res = match &self.renderer {
            Some(r) => r(rejection),
            None => HttpResponse::new(
                StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED),
            ),
        };
        if !res.headers().contains_key(header::WWW_AUTHENTICATE) {
            // The core's challenge keeps quoted values free of quotes and control
            // characters; a realm outside visible ASCII is the one way this falls back.
            let challenge = HeaderValue::from_str(&self.guard.challenge(rejection))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        res
    }
}

/// Middleware that validates bearer tokens with a [`Validator`]: the actix-web twin of
/// `tokenlife_tower::TokenLifeLayer`, with the same options and the same answers.
///
/// A valid token puts its [`Verified`](tokenlife_core::Verified) into the request extensions (read it with the
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
            .field("guard", &c.guard)
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
        Self::from_guard(Guard::new(validator))
    }

    /// A middleware for a guard configured in the core (the same [`Guard`] an axum app
    /// would use).
    pub fn from_guard(guard: Guard<ActixHeaders>) -> Self {
        Self {
            config: Arc::new(Config {
                guard,
                renderer: None,
            }),
        }
    }

    fn guard(mut self, f: impl FnOnce(Guard<ActixHeaders>) -> Guard<ActixHeaders>) -> Self {
        let c = Arc::make_mut(&mut self.config);
        c.guard = f(c.guard.clone());
        self
    }

    tokenlife_core::guard_options!(TokenSource);

    /// Renders rejections yourself (the challenge header is added if you leave it out).
    pub fn render_with(
        mut self,
        f: impl Fn(&Rejection) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        let f: Renderer = Arc::new(f);
        Arc::make_mut(&mut self.config).renderer = Some(f);
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for TokenLife
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
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

/// Puts what a passed check found into the request: the verified token, and the guard's
/// realm for the extractors' rejections (also for a request let through without a token).
fn admit(config: &Config, req: &ServiceRequest, verified: Option<tokenlife_core::Verified>) {
    if let Some(v) = verified {
        req.extensions_mut().insert(v);
    }
    if let Some(realm) = config.guard.custom_realm() {
        req.extensions_mut().insert(realm.clone());
    }
}

impl<S, B> Service<ServiceRequest> for TokenLifeMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // Validation is synchronous: the inner service is called (or not) right here.
        let config = &self.config;
        let client = req.peer_addr().map(|a| a.ip());
        match config
            .guard
            .check(req.method().as_str(), req.path(), req.headers(), client)
        {
            Ok(verified) => {
                admit(config, &req, verified);
                ResponseFuture {
                    kind: Kind::Inner {
                        fut: self.service.call(req),
                    },
                }
            }
            Err(rejection)
                if let Some(wait) = config.guard.wait_for_keys(&rejection, req.headers()) =>
            {
                // A kid the keys lack while a refresh is in flight: wait for it (bounded),
                // then check once more.
                let (service, config) = (self.service.clone(), self.config.clone());
                ResponseFuture {
                    kind: Kind::Waiting {
                        fut: Box::pin(async move {
                            wait.await;
                            let client = req.peer_addr().map(|a| a.ip());
                            let path = req.path().to_owned();
                            match config.guard.check(
                                req.method().as_str(),
                                &path,
                                req.headers(),
                                client,
                            ) {
                                Ok(verified) => {
                                    admit(&config, &req, verified);
                                    service
                                        .call(req)
                                        .await
                                        .map(ServiceResponse::map_into_left_body)
                                }
                                Err(rejection) => {
                                    let res = config.render(&rejection);
                                    Ok(req.into_response(res).map_into_right_body())
                                }
                            }
                        }),
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
        Waiting { fut: Pin<Box<dyn std::future::Future<Output = Result<ServiceResponse<EitherBody<B>>, Error>>>> },
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
            KindProj::Waiting { fut } => fut.as_mut().poll(cx),
        }
    }
}
