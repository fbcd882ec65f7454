//! RFC 9728 protected-resource metadata on axum (feature `axum`).

use axum::Router;
use axum::routing::get;
use http::{HeaderValue, header};
use tokenlife_core::gate::ProtectedResource;

/// A router answering `GET /.well-known/oauth-protected-resource` with `meta` (JSON), for
/// clients that find the authorization server from the resource (MCP clients do). Name
/// its URL in the challenges with [`TokenLifeLayer::resource_metadata`](crate::TokenLifeLayer::resource_metadata);
/// merge it outside the layer (the metadata is public).
pub fn protected_resource(meta: &ProtectedResource) -> Router {
    let body = meta.to_json();
    Router::new().route(
        ProtectedResource::PATH,
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body,
                )
            }
        }),
    )
}
