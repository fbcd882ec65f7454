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
//! Every handler authenticates the caller from the headers ([`AdminState::authenticate`])
//! before it reads a byte of the body, and reads at most [`AdminState::max_body`] bytes
//! (413 past it).
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
use tokenlife_core::admin::{Access, AdminResponse, Body, BodyRejection, Caller};

pub use tokenlife_core::admin::{AdminState, AdminStateBuilder};

/// Both sets of routes under `path`: the client-facing OAuth routes and the privileged
/// admin routes.
pub fn scope(path: &str, state: AdminState) -> Scope {
    admin_routes(oauth_routes(web::scope(path), &state), &state)
}

/// The client-facing routes under `path`: `/token`, `/.well-known/jwks.json`,
/// `/revoke` (clients and the admin), `/introspect` (resource servers and the admin).
pub fn oauth_scope(path: &str, state: AdminState) -> Scope {
    oauth_routes(web::scope(path), &state)
}

/// The privileged routes under `path`: revocations by jti, subject and family; keysets;
/// `/tokens`. Every one needs the admin key, checked before the body is read.
pub fn admin_scope(path: &str, state: AdminState) -> Scope {
    admin_routes(web::scope(path), &state)
}

fn oauth_routes(scope: Scope, s: &AdminState) -> Scope {
    scope
        .route(
            "/.well-known/jwks.json",
            web::get().to(handler(s, None, false, |s, _| s.jwks())),
        )
        .route(
            "/token",
            web::post().to(handler(s, None, true, |s, c| {
                s.token(&c.headers, c.peer, c.body.clone())
            })),
        )
        .route(
            "/revoke",
            web::post().to(handler(s, Some(Access::REVOKE), true, |s, c| {
                match &c.caller {
                    Some(caller) => s.revoke(caller, c.body.clone()),
                    None => unreachable_caller(),
                }
            })),
        )
        .route(
            "/introspect",
            web::post().to(handler(
                s,
                Some(Access::INTROSPECT),
                true,
                |s, c| match &c.caller {
                    Some(caller) => s.introspect(caller, c.body.clone()),
                    None => unreachable_caller(),
                },
            )),
        )
}

fn admin_routes(scope: Scope, s: &AdminState) -> Scope {
    let admin = |body: bool, op: Op| handler(s, Some(Access::ADMIN), body, op);
    let post = |body: bool, op: Op| web::post().to(admin(body, op));
    scope
        .route(
            "/revocations/jti",
            post(true, |s, c| s.revoke_jti(c.body.clone())),
        )
        .route(
            "/revocations/subject",
            post(true, |s, c| s.revoke_subject(c.body.clone())),
        )
        .route(
            "/revocations/family",
            post(true, |s, c| s.revoke_family(c.body.clone())),
        )
        .service(
            web::resource("/keysets")
                .route(web::get().to(admin(false, |s, _| s.keysets())))
                .route(web::post().to(admin(true, |s, c| {
                    s.publish(c.query.as_deref(), c.body.clone())
                }))),
        )
        .route(
            "/keysets/stage",
            post(true, |s, c| s.stage(c.query.as_deref(), c.body.clone())),
        )
        .route(
            "/keysets/rollout",
            web::get().to(admin(false, |s, _| s.rollout())),
        )
        .route(
            "/keysets/remote",
            web::get().to(admin(false, |s, _| s.remote())),
        )
        .route(
            "/keysets/share",
            post(false, |s, c| s.share(c.query.as_deref())),
        )
        .route(
            "/keysets/promote",
            post(false, |s, c| s.promote(c.query.as_deref())),
        )
        .route("/keysets/abort", post(false, |s, _| s.abort()))
        .route(
            "/keysets/release/{version}",
            post(false, |s, c| s.release(c.param.as_deref().unwrap_or(""))),
        )
        .route(
            "/keysets/keys/{kid}/revoke",
            post(false, |s, c| s.revoke_key(c.param.as_deref().unwrap_or(""))),
        )
        .route("/keysets/rollback", post(false, |s, _| s.rollback()))
        .route(
            "/keysets/rollback/{version}",
            post(false, |s, c| {
                s.rollback_to(c.param.as_deref().unwrap_or(""))
            }),
        )
        .route("/tokens", post(true, |s, c| s.mint(c.body.clone())))
}

/// What a handler hands an operation.
struct Call<'a> {
    headers: http::HeaderMap,
    peer: Option<IpAddr>,
    query: Option<String>,
    param: Option<String>,
    caller: Option<Caller>,
    body: Body<'a>,
}

type Op = fn(&AdminState, &Call<'_>) -> AdminResponse;

/// A caller-less call to an operation that authenticated one: cannot happen (the
/// handler answers 401 first); answered as a 500 rather than a panic.
fn unreachable_caller() -> AdminResponse {
    let mut res = AdminResponse::new(Vec::new());
    *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    res
}

/// The handler of one route: authenticate (if `access`), read the body (if `body`, up
/// to the limit), run `op`, answer in actix's types.
#[allow(clippy::type_complexity)]
fn handler(
    state: &AdminState,
    access: Option<Access>,
    read_body: bool,
    op: Op,
) -> impl Fn(HttpRequest, web::Payload) -> std::pin::Pin<Box<dyn Future<Output = HttpResponse>>>
+ Clone
+ 'static {
    let state = state.clone();
    move |req: HttpRequest, payload: web::Payload| {
        let state = state.clone();
        Box::pin(async move {
            let headers = http_headers(&req);
            let peer = req.peer_addr().map(|a| a.ip());
            let caller = match access {
                Some(access) => match state.authenticate(&headers, peer, access) {
                    Ok(caller) => Some(caller),
                    Err(refused) => return respond(*refused),
                },
                None => None,
            };
            let body: Result<actix_web::web::Bytes, BodyRejection> = if read_body {
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
            let query = req.uri().query().map(str::to_owned);
            let param = req
                .match_info()
                .get("version")
                .or_else(|| req.match_info().get("kid"))
                .map(str::to_owned);
            // On the blocking pool: an operation may wait on a store (a refresh grant on
            // Redis), and no async worker — the API's included — may wait with it.
            let answer = web::block(move || {
                let call = Call {
                    headers,
                    peer,
                    query,
                    param,
                    caller,
                    body: body.as_deref().map_err(Clone::clone),
                };
                op(&state, &call)
            })
            .await;
            match answer {
                Ok(res) => respond(res),
                Err(_) => respond(unreachable_caller()),
            }
        })
    }
}

/// The request headers in the `http` crate's types, which the core's operations read.
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
