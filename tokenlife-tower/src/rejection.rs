//! What a rejected request gets: an RFC 6750 challenge.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use tokenlife_core::ValidationErrorKind;
use tokenlife_core::error::{BearerError, Challenge};
use tokenlife_core::gate;

/// Why the layer refused a request, with what the client should see.
///
/// The fields hold no token and no internal detail: `description` is the fixed text of
/// the error kind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejection {
    /// 400, 401 or 403.
    pub status: StatusCode,
    /// The RFC 6750 `error` code, or `None` when no credentials were sent.
    pub error: Option<BearerError>,
    /// A short, client-safe description.
    pub description: &'static str,
    /// The validation error kind, when a token was validated.
    pub kind: Option<ValidationErrorKind>,
    /// For `insufficient_scope`: the scopes the route needs, space-separated.
    pub scope: Option<Arc<str>>,
}

impl From<gate::Rejection> for Rejection {
    fn from(r: gate::Rejection) -> Self {
        Self {
            status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNAUTHORIZED),
            error: r.error,
            description: r.description,
            kind: r.kind,
            scope: r.scope,
        }
    }
}

impl Rejection {
    /// The `WWW-Authenticate` value: `Bearer realm="…", error="…", error_description="…"`.
    pub fn www_authenticate(&self, realm: &str) -> HeaderValue {
        let mut c = Challenge::new(realm);
        if let Some(e) = self.error {
            c = c.error(e, self.description);
        }
        if let Some(scope) = &self.scope {
            c = c.scope(scope);
        }
        // Challenge keeps every quoted value visible ASCII, so this never falls back.
        HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    /// The default response: the status, the challenge, and an empty body.
    pub fn into_response(self, realm: &str) -> Response<Bytes> {
        let mut res = Response::new(Bytes::new());
        *res.status_mut() = self.status;
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.www_authenticate(realm));
        res
    }
}

/// Renders a [`Rejection`] into a response of your own (JSON problem details, say). The
/// layer adds the `WWW-Authenticate` challenge if the renderer did not.
pub type Renderer = Arc<dyn Fn(&Rejection) -> Response<Bytes> + Send + Sync>;

pub(crate) struct DebugRenderer<'a>(pub(crate) &'a Option<Renderer>);

impl fmt::Debug for DebugRenderer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(<renderer>)"
        } else {
            "None"
        })
    }
}
