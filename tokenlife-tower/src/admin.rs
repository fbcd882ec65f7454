//! The admin and OAuth routers (feature `axum`): [`tokenlife_core::admin`]'s operations
//! mounted on axum.
//!
//! [`oauth_router`] holds the client-facing routes (`/token`, `/.well-known/jwks.json`,
//! `/revoke`, `/introspect`), [`admin_router`] the privileged ones (revocations,
//! keysets, `/tokens`); [`router`] merges both. Mount them on separate listeners to keep
//! the keyset and revocation routes off the public network. The routes, who may call
//! them, their bodies and answers are documented in [`tokenlife_core::admin`].
//!
//! Authentication is a `route_layer` ([`AdminState::authenticate`]): it runs before any
//! body is read and no handler can skip it. Bodies are read up to
//! [`AdminState::max_body`] (413 past it).

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::Uri;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tokenlife_core::admin::{Access, AdminResponse, BodyRejection, Caller};

pub use tokenlife_core::admin::{AdminState, AdminStateBuilder};

/// Both routers in one: the client-facing OAuth routes and the privileged admin routes.
///
/// The routes bound every body read with tokio's timer
/// ([`AdminStateBuilder::body_timeout`]) and run store-bound operations on tokio's
/// blocking pool: serve them on a runtime with the time driver (what `#[tokio::main]`
/// and `axum::serve` set up).
pub fn router(state: AdminState) -> Router {
    oauth_router(state.clone()).merge(admin_router(state))
}

/// The client-facing routes: `/token`, `/.well-known/jwks.json`, `/revoke` (clients and
/// the admin), `/introspect` (resource servers and the admin).
pub fn oauth_router(state: AdminState) -> Router {
    let max = state.max_body();
    let revoke_route = Router::new()
        .route("/revoke", post(revoke))
        .route_layer(middleware::from_fn_with_state(state.clone(), may_revoke));
    let introspect_route = Router::new()
        .route("/introspect", post(introspect))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            may_introspect,
        ));
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/token", post(token))
        .merge(revoke_route)
        .merge(introspect_route)
        .layer(DefaultBodyLimit::max(max))
        .with_state(state)
}

/// The privileged routes: revocations by jti, subject and family; keysets; `/tokens`.
/// Every one needs the admin key, checked before the body is read.
pub fn admin_router(state: AdminState) -> Router {
    let max = state.max_body();
    Router::new()
        .route("/revocations/jti", post(revoke_jti))
        .route("/revocations/subject", post(revoke_subject))
        .route("/revocations/family", post(revoke_family))
        .route("/keysets", get(keysets).post(publish))
        .route("/keysets/stage", post(stage))
        .route("/keysets/rollout", get(rollout))
        .route("/keysets/remote", get(remote))
        .route("/keysets/share", post(share))
        .route("/keysets/promote", post(promote))
        .route("/keysets/abort", post(abort))
        .route("/keysets/release/{version}", post(release))
        .route("/keysets/keys/{kid}/revoke", post(revoke_key))
        .route("/keysets/rollback", post(rollback))
        .route("/keysets/rollback/{version}", post(rollback_to))
        .route("/tokens", post(mint))
        .route_layer(middleware::from_fn_with_state(state.clone(), admin_only))
        .layer(DefaultBodyLimit::max(max))
        .with_state(state)
}

/// The authentication `route_layer`: finds the caller from the headers alone, or
/// answers 401/429, before any body is read.
async fn authenticate(s: AdminState, mut req: Request, next: Next, access: Access) -> Response {
    match s.authenticate(req.headers(), peer(req.extensions()), access) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(refused) => respond(*refused),
    }
}

async fn admin_only(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    authenticate(s, req, next, Access::ADMIN).await
}

async fn may_revoke(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    authenticate(s, req, next, Access::REVOKE).await
}

async fn may_introspect(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    authenticate(s, req, next, Access::INTROSPECT).await
}

/// The client address axum's `ConnectInfo` recorded, if the server records it.
fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn respond(res: AdminResponse) -> Response {
    res.map(axum::body::Body::from).into_response()
}

/// The request body, read up to the state's size limit within its deadline
/// ([`AdminState::body_timeout`]: a dripped body is a 408, not a held connection), or
/// why not, in the core's words so every adapter answers alike.
struct Body(Result<Bytes, BodyRejection>);

impl axum::extract::FromRequest<AdminState> for Body {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, s: &AdminState) -> Result<Self, Self::Rejection> {
        let limited = http_body_util::Limited::new(req.into_body(), s.max_body());
        let read = http_body_util::BodyExt::collect(limited);
        Ok(Self(
            match tokio::time::timeout(s.body_timeout(), read).await {
                Ok(Ok(collected)) => Ok(collected.to_bytes()),
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                    Err(BodyRejection::too_large())
                }
                Ok(Err(_)) => Err(BodyRejection::unreadable()),
                Err(_) => Err(BodyRejection::timed_out()),
            },
        ))
    }
}

/// The body as read, or why not.
fn body(b: &Body) -> Result<&[u8], BodyRejection> {
    b.0.as_deref().map_err(Clone::clone)
}

async fn jwks(State(s): State<AdminState>) -> Response {
    respond(s.jwks())
}

/// Runs an operation that may wait on a store (the refresh store on Redis) on tokio's
/// blocking pool: no async worker — the API listener's included — waits with it.
async fn blocking(op: impl FnOnce() -> AdminResponse + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(op).await {
        Ok(res) => respond(res),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn token(
    State(s): State<AdminState>,
    parts: axum::http::request::Parts,
    b: Body,
) -> Response {
    blocking(move || s.token(&parts.headers, peer(&parts.extensions), body(&b))).await
}

async fn revoke(
    State(s): State<AdminState>,
    Extension(caller): Extension<Caller>,
    b: Body,
) -> Response {
    blocking(move || s.revoke(&caller, body(&b))).await
}

async fn introspect(
    State(s): State<AdminState>,
    Extension(caller): Extension<Caller>,
    b: Body,
) -> Response {
    respond(s.introspect(&caller, body(&b)))
}

async fn revoke_jti(State(s): State<AdminState>, b: Body) -> Response {
    respond(s.revoke_jti(body(&b)))
}

async fn revoke_subject(State(s): State<AdminState>, b: Body) -> Response {
    blocking(move || s.revoke_subject(body(&b))).await
}

async fn revoke_family(State(s): State<AdminState>, b: Body) -> Response {
    blocking(move || s.revoke_family(body(&b))).await
}

async fn keysets(State(s): State<AdminState>) -> Response {
    respond(s.keysets())
}

async fn publish(State(s): State<AdminState>, uri: Uri, b: Body) -> Response {
    respond(s.publish(uri.query(), body(&b)))
}

async fn stage(State(s): State<AdminState>, uri: Uri, b: Body) -> Response {
    respond(s.stage(uri.query(), body(&b)))
}

async fn promote(State(s): State<AdminState>, uri: Uri) -> Response {
    respond(s.promote(uri.query()))
}

async fn rollout(State(s): State<AdminState>) -> Response {
    respond(s.rollout())
}

async fn remote(State(s): State<AdminState>) -> Response {
    respond(s.remote())
}

async fn share(State(s): State<AdminState>, uri: Uri) -> Response {
    respond(s.share(uri.query()))
}

async fn abort(State(s): State<AdminState>) -> Response {
    respond(s.abort())
}

async fn release(State(s): State<AdminState>, Path(version): Path<String>) -> Response {
    respond(s.release(&version))
}

async fn revoke_key(State(s): State<AdminState>, Path(kid): Path<String>) -> Response {
    respond(s.revoke_key(&kid))
}

async fn rollback(State(s): State<AdminState>) -> Response {
    respond(s.rollback())
}

async fn rollback_to(State(s): State<AdminState>, Path(version): Path<String>) -> Response {
    respond(s.rollback_to(&version))
}

async fn mint(State(s): State<AdminState>, b: Body) -> Response {
    blocking(move || s.mint(body(&b))).await
}
