//! The admin and OAuth scopes (feature `admin`): [`tokenlife_core::admin`]'s operations
//! mounted on actix-web, with the same endpoints, status codes, headers and bodies as
//! `tokenlife_tower::admin`'s routers.
//!
//! [`oauth_scope`] holds the client-facing routes (`/token`, `/.well-known/jwks.json`,
//! `/revoke`, `/introspect`), [`admin_scope`] the privileged ones (revocations,
//! keysets, `/tokens`); [`scope`] holds both. Mount them on separate listeners to keep the
//! keyset and revocation routes off the public network. The routes, who may call them,
//! their bodies and answers are documented in [`tokenlife_core::admin`].
//!
//! The scopes mount [`tokenlife_core::admin`]'s route table ([`ROUTES`]): every route
//! runs the one handler, which authenticates the caller from the headers as the route
//! says ([`AdminState::authenticate`]) before it reads a byte of the body, reads at most
//! [`AdminState::max_body`] bytes (413 past it) within [`AdminState::body_timeout`] (408
//! past it), and runs the operation ([`AdminState::call`]) on actix's blocking pool.
//!
//! # Examples
//!
//! ```
//! use actix_web::{App, http::StatusCode, test};
//! use tokenlife_actix::admin::{self, AdminState};
//! use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
//!
//! # actix_web::rt::System::new().block_on(async {
//! let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
//! let validator = Validator::builder(store).issuer("https://auth.example.com").audience("api://orders").build().unwrap();
//! let state = AdminState::builder(validator).admin_key("s3cret-admin-key-0123456789").build().unwrap();
//! let app = test::init_service(App::new().service(admin::scope("/admin", state))).await;
//!
//! // Without the admin key: 401 before the body is read.
//! let req = test::TestRequest::post().uri("/admin/keysets/rollback").to_request();
//! assert_eq!(test::call_service(&app, req).await.status(), StatusCode::UNAUTHORIZED);
//! // The public keys are public.
//! let req = test::TestRequest::get().uri("/admin/.well-known/jwks.json").to_request();
//! assert_eq!(test::call_service(&app, req).await.status(), StatusCode::OK);
//! # });
//! ```

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, Scope, web};
use futures_util::TryStreamExt;
use tokenlife_core::admin::routes::{Call, Group, Operation, ROUTES, Route};
use tokenlife_core::admin::{AdminResponse, BodyRejection, Caller};

pub use tokenlife_core::admin::{AdminState, AdminStateBuilder};

/// Both sets of routes under `path`: the client-facing OAuth routes and the privileged
/// admin routes.
pub fn scope(path: &str, state: AdminState) -> Scope {
    let scope = mount(web::scope(path), &state, Group::OAuth);
    mount(mount(scope, &state, Group::Admin), &state, Group::Console)
}

/// The client-facing routes under `path`: `/token`, `/.well-known/jwks.json`,
/// `/revoke` (clients and the admin), `/introspect` (resource servers and the admin).
pub fn oauth_scope(path: &str, state: AdminState) -> Scope {
    mount(web::scope(path), &state, Group::OAuth)
}

/// The privileged routes under `path`: revocations by jti, subject and family; keysets;
/// `/tokens`; `/audit`. Every one needs the admin key, checked before the body is read.
/// And the operator console (`/console`: its page and files, which hold no data, and its
/// event stream, the admin key).
pub fn admin_scope(path: &str, state: AdminState) -> Scope {
    mount(
        mount(web::scope(path), &state, Group::Admin),
        &state,
        Group::Console,
    )
}

/// Every route of `group` in [`ROUTES`], each on the one handler.
fn mount(scope: Scope, state: &AdminState, group: Group) -> Scope {
    ROUTES
        .iter()
        .filter(|r| r.group == group)
        .fold(scope, |scope, route| {
            let method = actix_web::http::Method::from_bytes(route.method.as_str().as_bytes())
                .unwrap_or(actix_web::http::Method::POST);
            scope.route(route.path, web::method(method).to(handler(state, route)))
        })
}

/// What an operation gets, owned (it crosses to the blocking pool).
struct Owned {
    headers: http::HeaderMap,
    peer: Option<IpAddr>,
    query: Option<String>,
    param: Option<String>,
    caller: Option<Caller>,
    body: Result<actix_web::web::Bytes, BodyRejection>,
}

#[allow(clippy::type_complexity)]
fn handler(
    state: &AdminState,
    route: &'static Route,
) -> impl Fn(HttpRequest, web::Payload) -> std::pin::Pin<Box<dyn Future<Output = HttpResponse>>>
+ Clone
+ 'static {
    let state = state.clone();
    move |req: HttpRequest, payload: web::Payload| {
        let state = state.clone();
        Box::pin(async move {
            let headers = http_headers(&req);
            let peer = req.peer_addr().map(|a| a.ip());
            let caller = match route.access {
                Some(access) => match state.authenticate(&headers, peer, access) {
                    Ok(caller) => Some(caller),
                    Err(refused) => return respond(*refused),
                },
                None => None,
            };
            if route.operation == Operation::ConsoleEvents {
                return events(&state);
            }
            let body = if route.body {
                let read = payload.to_bytes_limited(state.max_body());
                match actix_web::rt::time::timeout(state.body_timeout(), read).await {
                    Ok(Ok(Ok(b))) => Ok(b),
                    Ok(Ok(Err(_))) => Err(BodyRejection::unreadable()),
                    Ok(Err(_)) => Err(BodyRejection::too_large()),
                    Err(_) => Err(BodyRejection::timed_out()),
                }
            } else {
                Ok(actix_web::web::Bytes::new())
            };
            let owned = Owned {
                headers,
                peer,
                query: req.uri().query().map(str::to_owned),
                param: route
                    .param
                    .and_then(|name| req.match_info().get(name))
                    .map(str::to_owned),
                caller,
                body,
            };
            let run = move || {
                state.call(
                    route.operation,
                    &Call {
                        headers: &owned.headers,
                        peer: owned.peer,
                        query: owned.query.as_deref(),
                        param: owned.param.as_deref(),
                        caller: owned.caller.as_ref(),
                        body: owned.body.as_deref().map_err(Clone::clone),
                    },
                )
            };
            if !route.blocking {
                return respond(run());
            }
            // On the blocking pool: the operation may wait on a store (a refresh grant on
            // Redis), and no async worker — the API's included — may wait with it.
            match web::block(run).await {
                Ok(res) => respond(res),
                Err(_) => HttpResponse::InternalServerError().finish(),
            }
        })
    }
}

/// The console's event stream (the caller is authenticated): a frame per tick for
/// as long as the client reads (nothing is queued for one that does not).
fn events(state: &AdminState) -> HttpResponse {
    let stream = match state.console_stream() {
        Ok(stream) => stream,
        Err(refused) => return respond(*refused),
    };
    let head = respond(stream.response_head(Vec::new()));
    let frames = stream
        .frames(actix_web::rt::time::sleep)
        .map_ok(web::Bytes::from);
    let mut res = HttpResponse::build(head.status());
    for (name, value) in head.headers() {
        res.append_header((name.clone(), value.clone()));
    }
    res.streaming(frames)
}

fn http_headers(req: &HttpRequest) -> http::HeaderMap {
    let mut out = http::HeaderMap::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(n, v);
        }
    }
    out
}

/// The core's answer as an actix response: the same status, headers and body.
fn respond(res: AdminResponse) -> HttpResponse {
    let (parts, body) = res.into_parts();
    let status =
        StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::with_body(status, body).map_into_boxed_body();
    for (name, value) in &parts.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.headers_mut().append(n, v);
        }
    }
    out
}
