//! [`TokenLifeService`]: validates, then calls the inner service or answers the rejection.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tokenlife_core::gate::Guard;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::headers::HttpHeaders;
use crate::mode::{Http, Respond};
use crate::rejection::{Rejection, Renderer};

/// What the layer built and every service shares: the guard and the renderer.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) guard: Guard<HttpHeaders>,
    pub(crate) renderer: Option<Renderer>,
}

impl Config {
    /// Decides a request: `Ok` (with `Verified` in its extensions where a token was valid)
    /// or the rejection.
    pub(crate) fn check<B>(&self, req: &mut Request<B>) -> Result<(), Rejection> {
        let client = client_ip(req);
        let verified = self.guard.check(
            req.method().as_str(),
            req.uri().path(),
            req.headers(),
            client,
        )?;
        if let Some(verified) = verified {
            req.extensions_mut().insert(verified);
        }
        // Also for a request let through without a token (optional, skipped): the
        // extractors' rejections name this guard's realm.
        if let Some(realm) = self.guard.custom_realm() {
            req.extensions_mut().insert(realm.clone());
        }
        Ok(())
    }

    pub(crate) fn render<M: Respond<B>, B>(&self, rejection: Rejection) -> Response<B> {
        M::respond(&self.guard, self.renderer.as_ref(), rejection)
    }
}

/// The peer's address, where axum's `ConnectInfo` recorded it.
fn client_ip<B>(_req: &Request<B>) -> Option<std::net::IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = _req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        return Some(addr.ip());
    }
    None
}

/// The service made by [`TokenLifeLayer`](crate::TokenLifeLayer); `M` says how it
/// answers a rejection ([`Http`] or [`Grpc`](crate::Grpc)).
pub struct TokenLifeService<S, M = Http> {
    inner: S,
    config: Arc<Config>,
    mode: PhantomData<fn() -> M>,
}

impl<S: Clone, M> Clone for TokenLifeService<S, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, M> fmt::Debug for TokenLifeService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLifeService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, M> TokenLifeService<S, M> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        Self {
            inner,
            config,
            mode: PhantomData,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for TokenLifeService<S, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    M: Respond<ResBody>,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Validation is synchronous: the inner service is called (or not) right here, so
        // it is never cloned across an await.
        match self.config.check(&mut req) {
            Ok(()) => ResponseFuture::future(self.inner.call(req)),
            Err(rejection) => match self.config.guard.wait_for_keys(&rejection, req.headers()) {
                // A kid the keys lack while a refresh is in flight: wait for it (bounded),
                // then check once more. The ready inner service goes with the request
                // (tower's contract), a clone stays.
                Some(wait) => {
                    let config = self.config.clone();
                    let clone = self.inner.clone();
                    let mut inner = std::mem::replace(&mut self.inner, clone);
                    ResponseFuture::waiting(Box::pin(async move {
                        wait.await;
                        match config.check(&mut req) {
                            Ok(()) => inner.call(req).await,
                            Err(rejection) => Ok(config.render::<M, _>(rejection)),
                        }
                    }))
                }
                None => ResponseFuture::reject(self.config.render::<M, _>(rejection)),
            },
        }
    }
}
