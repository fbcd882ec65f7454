//! How a [`TokenLifeLayer`](crate::TokenLifeLayer) answers a rejected request: an HTTP
//! status with a body ([`Http`], the default), or a gRPC status in a trailers-only
//! response ([`Grpc`], from [`TokenLifeLayer::grpc`](crate::TokenLifeLayer::grpc)).

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use tokenlife_core::gate::Guard;

use crate::headers::HttpHeaders;
use crate::rejection::{Rejection, Renderer};

mod sealed {
    pub trait Sealed {}
}

/// Renders a rejection into a `Response<B>`. Implemented by [`Http`] and [`Grpc`] only.
pub trait Respond<B>: sealed::Sealed + Send + Sync + 'static {
    #[doc(hidden)]
    fn respond(
        guard: &Guard<HttpHeaders>,
        renderer: Option<&Renderer>,
        rejection: Rejection,
    ) -> Response<B>;
}

/// HTTP rejections: 400/401/403/503 with a `WWW-Authenticate` challenge and the body of
/// the configured renderer (empty by default). Needs `ResBody: From<Bytes>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Http;

/// gRPC rejections: HTTP 200, `content-type: application/grpc`, `grpc-status` 16
/// `UNAUTHENTICATED` (no, malformed or invalid token), 7 `PERMISSION_DENIED` (missing
/// scope or claim) or 14 `UNAVAILABLE` (fail-closed state stale), a percent-encoded
/// `grpc-message`, and the `WWW-Authenticate` challenge as metadata — a trailers-only
/// response, as a gRPC client expects. Needs only `ResBody: Default` (tonic's body).
#[derive(Debug, Clone, Copy, Default)]
pub struct Grpc;

impl sealed::Sealed for Http {}
impl sealed::Sealed for Grpc {}

fn challenge(guard: &Guard<HttpHeaders>, rejection: &Rejection) -> HeaderValue {
    HeaderValue::from_str(&guard.challenge(rejection))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

impl<B: From<Bytes>> Respond<B> for Http {
    fn respond(
        guard: &Guard<HttpHeaders>,
        renderer: Option<&Renderer>,
        rejection: Rejection,
    ) -> Response<B> {
        let mut res = match renderer {
            Some(r) => r(&rejection),
            None => {
                let mut res = Response::new(Bytes::new());
                *res.status_mut() = http::StatusCode::from_u16(rejection.status)
                    .unwrap_or(http::StatusCode::UNAUTHORIZED);
                res
            }
        };
        if !res.headers().contains_key(header::WWW_AUTHENTICATE) {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge(guard, &rejection));
        }
        res.map(B::from)
    }
}

impl<B: Default> Respond<B> for Grpc {
    fn respond(
        guard: &Guard<HttpHeaders>,
        _renderer: Option<&Renderer>,
        rejection: Rejection,
    ) -> Response<B> {
        let mut res = Response::new(B::default());
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert(
            "grpc-status",
            HeaderValue::from(u16::from(rejection.grpc_status())),
        );
        if let Ok(message) = HeaderValue::from_str(&rejection.grpc_message()) {
            h.insert("grpc-message", message);
        }
        h.insert(header::WWW_AUTHENTICATE, challenge(guard, &rejection));
        res
    }
}
