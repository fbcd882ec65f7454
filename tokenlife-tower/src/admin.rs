//! The admin and OAuth routers (feature `axum`): [`tokenlife_core::admin`]'s route table
//! ([`ROUTES`]) mounted on axum.
//!
//! [`oauth_router`] holds the client-facing routes (`/token`, `/.well-known/jwks.json`,
//! `/revoke`, `/introspect`), [`admin_router`] the privileged ones (revocations,
//! keysets, `/tokens`); [`router`] merges both. Mount them on separate listeners to keep
//! the keyset and revocation routes off the public network. The routes, who may call
//! them, their bodies and answers are documented in [`tokenlife_core::admin`].
//!
//! Every route runs one handler: authenticate as the route says
//! ([`AdminState::authenticate`]) before any body is read — no route can skip it — then
//! read the body up to [`AdminState::max_body`] (413 past it) within
//! [`AdminState::body_timeout`] (408 past it), then run the operation
//! ([`AdminState::call`]), on tokio's blocking pool when it may wait on a store.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawPathParams, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use axum::{Router, extract::FromRequestParts};
use tokenlife_core::admin::routes::{Call, Group, Operation, ROUTES, Route};
use tokenlife_core::admin::{AdminResponse, BodyRejection};

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
    mount(state, Group::OAuth)
}

/// The privileged routes (the admin key only): revocations, keysets, `/tokens`,
/// `/audit`; and the operator console (`/console`: its page and files, which hold no
/// data, and its event stream, the admin key).
pub fn admin_router(state: AdminState) -> Router {
    mount(state.clone(), Group::Admin).merge(mount(state, Group::Console))
}

/// Every route of `group` in [`ROUTES`], each on the one handler.
fn mount(state: AdminState, group: Group) -> Router {
    let mut router = Router::new();
    for route in ROUTES.iter().filter(|r| r.group == group) {
        let filter = if route.method == http::Method::GET {
            MethodFilter::GET
        } else {
            MethodFilter::POST
        };
        router = router.route(
            route.path,
            on(filter, move |State(s): State<AdminState>, req: Request| {
                handle(route, s, req)
            }),
        );
    }
    router.with_state(state)
}

/// One admin request: authenticate, read the body, run the operation.
async fn handle(route: &'static Route, s: AdminState, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let caller = match route.access {
        Some(access) => match s.authenticate(&parts.headers, peer, access) {
            Ok(caller) => Some(caller),
            Err(refused) => return respond(*refused),
        },
        None => None,
    };
    if route.operation == Operation::ConsoleEvents {
        return events(&s);
    }
    let body = if route.body {
        read_body(&s, body).await
    } else {
        Ok(Bytes::new())
    };
    let param = match route.param {
        Some(name) => RawPathParams::from_request_parts(&mut parts, &s)
            .await
            .ok()
            .and_then(|p| {
                p.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_owned())
            }),
        None => None,
    };
    let query = parts.uri.query().map(str::to_owned);
    let run = move || {
        s.call(
            route.operation,
            &Call {
                headers: &parts.headers,
                peer,
                query: query.as_deref(),
                param: param.as_deref(),
                caller: caller.as_ref(),
                body: body.as_deref().map_err(Clone::clone),
            },
        )
    };
    if route.blocking {
        match tokio::task::spawn_blocking(run).await {
            Ok(res) => respond(res),
            Err(_) => http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    } else {
        respond(run())
    }
}

/// The body, up to [`AdminState::max_body`], within [`AdminState::body_timeout`].
async fn read_body(s: &AdminState, body: axum::body::Body) -> Result<Bytes, BodyRejection> {
    let limited = http_body_util::Limited::new(body, s.max_body());
    let read = http_body_util::BodyExt::collect(limited);
    match tokio::time::timeout(s.body_timeout(), read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyRejection::too_large()),
        Ok(Err(_)) => Err(BodyRejection::unreadable()),
        Err(_) => Err(BodyRejection::timed_out()),
    }
}

/// The console's event stream (the caller is authenticated): a frame per tick for as
/// long as the client reads (nothing is queued for one that does not).
fn events(s: &AdminState) -> Response {
    let stream = match s.console_stream() {
        Ok(stream) => stream,
        Err(refused) => return respond(*refused),
    };
    let (head, _) = stream.response_head(Vec::new()).into_parts();
    let frames = stream.frames(tokio::time::sleep);
    Response::from_parts(head, axum::body::Body::from_stream(frames))
}

fn respond(res: AdminResponse) -> Response {
    res.map(axum::body::Body::from).into_response()
}
