//! What a rejected request gets: the core's [`Rejection`] (status, RFC 6750 code,
//! challenge), rendered by the layer or by your [`Renderer`].

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
pub use tokenlife_core::gate::Rejection;

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
