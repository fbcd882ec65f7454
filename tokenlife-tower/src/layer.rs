//! [`TokenLifeLayer`]: configuration, `Clone + Debug`, builds [`TokenLifeService`]s.
//! What happens to a request is the core's [`Guard`]; this file is the tower glue.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use tokenlife_core::Validator;
use tokenlife_core::gate::Guard;
use tower_layer::Layer;

use crate::headers::{HttpHeaders, TokenSource};
use crate::mode::{Grpc, Http};
use crate::rejection::{DebugRenderer, Rejection, Renderer};
use crate::service::{Config, TokenLifeService};

/// A tower [`Layer`] that validates bearer tokens with a [`Validator`].
///
/// A valid token puts its [`Verified`](tokenlife_core::Verified) into the request
/// extensions and the request goes on; anything else is answered right there with
/// `Ok(response)`: 401 (`invalid_token`, or no code for a missing token), 400
/// (`invalid_request` for a malformed header) or 403 (`insufficient_scope`), always with a
/// `WWW-Authenticate: Bearer …` challenge and no internal detail. The service's error type
/// stays the inner one, so axum users need no `HandleErrorLayer`.
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
///
/// [`grpc`](Self::grpc) turns it into a layer for a tonic server: rejections become gRPC
/// statuses (see [`Grpc`]).
#[must_use]
pub struct TokenLifeLayer<M = Http> {
    config: Arc<Config>,
    mode: PhantomData<fn() -> M>,
}

impl<M> Clone for TokenLifeLayer<M> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            mode: PhantomData,
        }
    }
}

impl<M> fmt::Debug for TokenLifeLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLifeLayer")
            .field("guard", &self.config.guard)
            .field("renderer", &DebugRenderer(&self.config.renderer))
            .field("mode", &std::any::type_name::<M>())
            .finish()
    }
}

impl TokenLifeLayer {
    /// Validates `Authorization: Bearer` tokens with `validator`; every request needs one.
    pub fn new(validator: Validator) -> Self {
        Self::from_guard(Guard::new(validator))
    }

    /// A layer for a guard configured in the core (the same [`Guard`] an actix-web app
    /// would use).
    pub fn from_guard(guard: Guard<HttpHeaders>) -> Self {
        Self {
            config: Arc::new(Config {
                guard,
                renderer: None,
            }),
            mode: PhantomData,
        }
    }

    /// Answers rejections as gRPC statuses, for a tonic server:
    /// `Server::builder().layer(TokenLifeLayer::new(validator).grpc())`. The response is
    /// trailers-only (HTTP 200, `grpc-status` 16 `UNAUTHENTICATED` or 7
    /// `PERMISSION_DENIED`, `grpc-message`), and the inner service's body needs only
    /// `Default` (tonic's `Body` has it). A renderer set with
    /// [`render_with`](Self::render_with) is not used.
    ///
    /// ```
    /// use http::Request;
    /// use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
    /// use tokenlife_tower::TokenLifeLayer;
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)])?);
    /// let validator = Validator::builder(store).issuer("https://auth.example.com").audience("api://orders").build()?;
    /// let svc = ServiceBuilder::new()
    ///     .layer(TokenLifeLayer::new(validator).grpc())
    ///     .service(service_fn(|_req: Request<()>| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    ///     }));
    /// let res = svc.oneshot(Request::post("/pkg.Orders/List").body(())?).await?;
    /// assert_eq!(res.status(), 200);
    /// assert_eq!(res.headers()["grpc-status"], "16");
    /// assert_eq!(res.headers()["grpc-message"], "no bearer token");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn grpc(self) -> TokenLifeLayer<Grpc> {
        TokenLifeLayer {
            config: self.config,
            mode: PhantomData,
        }
    }

    /// Renders rejections yourself (the challenge header is added if you leave it out).
    pub fn render_with(
        mut self,
        f: impl Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        let f: Renderer = Arc::new(f);
        Arc::make_mut(&mut self.config).renderer = Some(f);
        self
    }
}

impl<M> TokenLifeLayer<M> {
    fn guard(mut self, f: impl FnOnce(Guard<HttpHeaders>) -> Guard<HttpHeaders>) -> Self {
        let c = Arc::make_mut(&mut self.config);
        c.guard = f(c.guard.clone());
        self
    }

    tokenlife_core::guard_options!(TokenSource);
}

impl<S, M> Layer<S> for TokenLifeLayer<M> {
    type Service = TokenLifeService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenLifeService::new(inner, self.config.clone())
    }
}
