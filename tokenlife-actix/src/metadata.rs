//! RFC 9728 protected-resource metadata on actix-web.

use actix_web::{HttpResponse, Resource, web};
use tokenlife_core::gate::ProtectedResource;

/// A resource answering `GET /.well-known/oauth-protected-resource` with `meta` (JSON),
/// for clients that find the authorization server from the resource (MCP clients do).
/// Name its URL in the challenges with
/// [`TokenLife::resource_metadata`](crate::TokenLife::resource_metadata); register it
/// outside the middleware (the metadata is public).
pub fn protected_resource(meta: &ProtectedResource) -> Resource {
    let body = meta.to_json();
    web::resource(ProtectedResource::PATH).route(web::get().to(move || {
        let body = body.clone();
        async move {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(body)
        }
    }))
}
