//! [`ResponseFuture`]: the inner service's future, a ready rejection, or — for a token
//! whose kid the keys lack while a key refresh is in flight — the wait for it, a second
//! check, then one of those.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

pin_project! {
    /// Response future of [`TokenLifeService`](crate::TokenLifeService).
    pub struct ResponseFuture<F: Future, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

/// The boxed wait-then-call of a request that waits for keys.
pub(crate) type Waiting<O> = Pin<Box<dyn Future<Output = O> + Send>>;

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future, B> {
        Future { #[pin] future: F },
        Reject { response: Option<Response<B>> },
        Waiting { future: Waiting<F::Output> },
    }
}

impl<F: Future, B> ResponseFuture<F, B> {
    pub(crate) fn waiting(future: Waiting<F::Output>) -> Self {
        Self {
            kind: Kind::Waiting { future },
        }
    }

    pub(crate) fn future(future: F) -> Self {
        Self {
            kind: Kind::Future { future },
        }
    }

    pub(crate) fn reject(response: Response<B>) -> Self {
        Self {
            kind: Kind::Reject {
                response: Some(response),
            },
        }
    }
}

impl<F: Future, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Future { future } => future.poll(cx),
            KindProj::Reject { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}
