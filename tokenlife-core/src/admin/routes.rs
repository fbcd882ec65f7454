//! The admin API as data: [`ROUTES`] is the one route table. Each adapter mounts it by
//! iterating it (authenticate as [`Route::access`] says, read the body if
//! [`Route::body`], run [`AdminState::call`] — on a blocking pool if
//! [`Route::blocking`]); the CLI takes its paths from it; the module docs' table is checked
//! against it.

use std::net::IpAddr;

use http::{HeaderMap, Method};

use super::{Access, AdminResponse, AdminState, Body, Caller};
use crate::observe::span;

/// Which operation a route runs ([`AdminState::call`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `GET /.well-known/jwks.json`.
    Jwks,
    /// `POST /token` (RFC 6749).
    Token,
    /// `POST /revoke` (RFC 7009).
    Revoke,
    /// `POST /introspect` (RFC 7662).
    Introspect,
    /// `POST /revocations/jti`.
    RevokeJti,
    /// `POST /revocations/subject`.
    RevokeSubject,
    /// `POST /revocations/family`.
    RevokeFamily,
    /// `GET /keysets`.
    Keysets,
    /// `POST /keysets`.
    Publish,
    /// `POST /keysets/stage`.
    Stage,
    /// `GET /keysets/rollout`.
    Rollout,
    /// `GET /keysets/remote`.
    Remote,
    /// `POST /keysets/share`.
    Share,
    /// `POST /keysets/promote`.
    Promote,
    /// `POST /keysets/abort`.
    Abort,
    /// `POST /keysets/release/{version}`.
    Release,
    /// `POST /keysets/keys/{kid}/revoke`.
    RevokeKey,
    /// `POST /keysets/rollback`.
    Rollback,
    /// `POST /keysets/rollback/{version}`.
    RollbackTo,
    /// `POST /tokens`.
    Mint,
    /// `GET /audit`.
    Audit,
    /// `GET /fleet`.
    Fleet,
    /// `GET /console`.
    ConsolePage,
    /// `GET /console/assets/{file}`.
    ConsoleAsset,
    /// `GET /console/events`: a stream (adapters answer it with
    /// [`AdminState::console_stream`]; [`AdminState::call`] with its first frame).
    ConsoleEvents,
}

/// Which router a route belongs to: the OAuth endpoints clients call, or the admin ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// JWKS, `/token`, `/revoke`, `/introspect`.
    OAuth,
    /// Revocations, keysets, `/tokens`: the admin key only.
    Admin,
    /// The operator console: its page and files (anyone) and its event stream (the
    /// admin key). Mounted with the admin routes.
    Console,
}

/// One route of the admin API.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Route {
    /// `GET` or `POST`.
    pub method: Method,
    /// The path, with at most one `{parameter}` (the syntax of axum and actix-web).
    pub path: &'static str,
    /// The path parameter's name, if the path has one.
    pub param: Option<&'static str>,
    /// Who may call it: authenticate with this before reading the body. `None`: anyone
    /// (`/token` authenticates its client itself).
    pub access: Option<Access>,
    /// Whether it reads a request body.
    pub body: bool,
    /// Whether the operation may wait on a store (the refresh store behind `/token`,
    /// `/revoke`, subject and family revocations, mint): run it where no async worker
    /// waits with it.
    pub blocking: bool,
    /// Its router.
    pub group: Group,
    /// What it runs.
    pub operation: Operation,
}

const fn route(
    method: Method,
    path: &'static str,
    access: Option<Access>,
    body: bool,
    blocking: bool,
    group: Group,
    operation: Operation,
) -> Route {
    Route {
        method,
        path,
        param: param_of(path),
        access,
        body,
        blocking,
        group,
        operation,
    }
}

/// The name between `{` and `}` in `path`, if any (a `const fn`: the table is a constant).
const fn param_of(path: &'static str) -> Option<&'static str> {
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'}' {
                j += 1;
            }
            let (_, rest) = b.split_at(i + 1);
            let (name, _) = rest.split_at(j - i - 1);
            return match std::str::from_utf8(name) {
                Ok(n) => Some(n),
                Err(_) => None,
            };
        }
        i += 1;
    }
    None
}

const ADMIN: Option<Access> = Some(Access::ADMIN);

/// Every route of the admin API, once. See the [module docs](super) for what each does.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    // method, path, access, body, blocking, group, operation
    route(Method::GET, "/.well-known/jwks.json", None, false, false, Group::OAuth, Operation::Jwks),
    route(Method::POST, "/token", None, true, true, Group::OAuth, Operation::Token),
    route(Method::POST, "/revoke", Some(Access::REVOKE), true, true, Group::OAuth, Operation::Revoke),
    route(Method::POST, "/introspect", Some(Access::INTROSPECT), true, false, Group::OAuth, Operation::Introspect),
    route(Method::POST, "/revocations/jti", ADMIN, true, false, Group::Admin, Operation::RevokeJti),
    route(Method::POST, "/revocations/subject", ADMIN, true, true, Group::Admin, Operation::RevokeSubject),
    route(Method::POST, "/revocations/family", ADMIN, true, true, Group::Admin, Operation::RevokeFamily),
    route(Method::GET, "/keysets", ADMIN, false, false, Group::Admin, Operation::Keysets),
    route(Method::POST, "/keysets", ADMIN, true, false, Group::Admin, Operation::Publish),
    route(Method::GET, "/keysets/rollout", ADMIN, false, false, Group::Admin, Operation::Rollout),
    route(Method::POST, "/keysets/stage", ADMIN, true, false, Group::Admin, Operation::Stage),
    route(Method::GET, "/keysets/remote", ADMIN, false, false, Group::Admin, Operation::Remote),
    route(Method::POST, "/keysets/share", ADMIN, false, false, Group::Admin, Operation::Share),
    route(Method::POST, "/keysets/promote", ADMIN, false, false, Group::Admin, Operation::Promote),
    route(Method::POST, "/keysets/abort", ADMIN, false, false, Group::Admin, Operation::Abort),
    route(Method::POST, "/keysets/release/{version}", ADMIN, false, false, Group::Admin, Operation::Release),
    route(Method::POST, "/keysets/keys/{kid}/revoke", ADMIN, false, false, Group::Admin, Operation::RevokeKey),
    route(Method::POST, "/keysets/rollback", ADMIN, false, false, Group::Admin, Operation::Rollback),
    route(Method::POST, "/keysets/rollback/{version}", ADMIN, false, false, Group::Admin, Operation::RollbackTo),
    route(Method::POST, "/tokens", ADMIN, true, true, Group::Admin, Operation::Mint),
    route(Method::GET, "/audit", ADMIN, false, true, Group::Admin, Operation::Audit),
    route(Method::GET, "/fleet", ADMIN, false, false, Group::Admin, Operation::Fleet),
    route(Method::GET, "/console", None, false, false, Group::Console, Operation::ConsolePage),
    route(Method::GET, "/console/assets/{file}", None, false, false, Group::Console, Operation::ConsoleAsset),
    route(Method::GET, "/console/events", ADMIN, false, false, Group::Console, Operation::ConsoleEvents),
];

/// The route that runs `operation`.
///
/// ```
/// use tokenlife_core::admin::routes::{Operation, route_of};
/// let r = route_of(Operation::RollbackTo);
/// assert_eq!((r.method.as_str(), r.path, r.param), ("POST", "/keysets/rollback/{version}", Some("version")));
/// assert_eq!(r.path_with("7"), "/keysets/rollback/7");
/// ```
///
/// # Panics
/// Never: every operation has its route (a test holds the table to it).
pub fn route_of(operation: Operation) -> &'static Route {
    ROUTES
        .iter()
        .find(|r| r.operation == operation)
        .unwrap_or_else(|| unreachable!("every operation has a route"))
}

impl Route {
    /// The path with its parameter filled in (the value as given: percent-encode it
    /// first if it may hold `/`, `?` or `#`).
    pub fn path_with(&self, value: &str) -> String {
        match self.param {
            Some(name) => self.path.replace(&format!("{{{name}}}"), value),
            None => self.path.to_owned(),
        }
    }
}

/// A request as an operation sees it: what the adapter read from its framework's request.
#[derive(Debug)]
pub struct Call<'a> {
    /// The request headers (the `http` crate's; `/token` authenticates from them).
    pub headers: &'a HeaderMap,
    /// The client address, for the throttle.
    pub peer: Option<IpAddr>,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The path parameter's value ([`Route::param`]).
    pub param: Option<&'a str>,
    /// Who [`AdminState::authenticate`] said the caller is (routes with an
    /// [`Route::access`]).
    pub caller: Option<&'a Caller>,
    /// The body, or why it could not be read (empty for routes without one).
    pub body: Body<'a>,
}

impl AdminState {
    /// Runs `operation` on `call`: the one dispatch every adapter uses.
    pub fn call(&self, operation: Operation, call: &Call<'_>) -> AdminResponse {
        let traced = span::enter(span::admin(&format!("{operation:?}")));
        let res = self.dispatch(operation, call);
        let status = res.status().as_u16();
        traced.record_u64("http.response.status_code", u64::from(status));
        if status >= 500 {
            traced.fail(&status.to_string());
        }
        res
    }

    fn dispatch(&self, operation: Operation, call: &Call<'_>) -> AdminResponse {
        let param = call.param.unwrap_or("");
        let body = call.body.clone();
        match operation {
            Operation::Jwks => self.jwks(),
            Operation::Token => self.token(call.headers, call.peer, body),
            Operation::Revoke => match call.caller {
                Some(caller) => self.revoke(caller, body),
                None => super::no_caller(),
            },
            Operation::Introspect => match call.caller {
                Some(caller) => self.introspect(caller, body),
                None => super::no_caller(),
            },
            Operation::RevokeJti => self.revoke_jti(body),
            Operation::RevokeSubject => self.revoke_subject(body),
            Operation::RevokeFamily => self.revoke_family(body),
            Operation::Keysets => self.keysets(),
            Operation::Publish => self.publish(call.query, body),
            Operation::Stage => self.stage(call.query, body),
            Operation::Rollout => self.rollout(),
            Operation::Remote => self.remote(),
            Operation::Share => self.share(call.query),
            Operation::Promote => self.promote(call.query),
            Operation::Abort => self.abort(),
            Operation::Release => self.release(param),
            Operation::RevokeKey => self.revoke_key(param),
            Operation::Rollback => self.rollback(),
            Operation::RollbackTo => self.rollback_to(param),
            Operation::Mint => self.mint(body),
            Operation::Audit => self.audit_records(call.query),
            Operation::Fleet => self.fleet(),
            Operation::ConsolePage => self.console_page(),
            Operation::ConsoleAsset => self.console_asset(param),
            Operation::ConsoleEvents => self.console_events(),
        }
    }
}

impl AdminState {
    /// Handles one whole request in process: finds its route in [`ROUTES`] (404 when no
    /// path matches, 405 with `Allow` when the path does but the method does not),
    /// authenticates as the route says before looking at the body, refuses a body over
    /// [`AdminState::max_body`] (413), and runs the operation. For frameworks without an
    /// adapter (hyper, tonic's HTTP side, a proxy) and for tests: the adapters mount the
    /// same table route by route, so this answers what they answer. It does not bound the
    /// time a body takes to arrive (the body is already here) and runs store-bound
    /// operations on the calling thread: call it where blocking is allowed.
    ///
    /// ```
    /// use http::{Request, StatusCode};
    /// # use tokenlife_core::{Keyset, KeysetStore, Validator, testing, Algorithm};
    /// # use tokenlife_core::admin::AdminState;
    /// # let store = KeysetStore::new(Keyset::new([testing::key("k", Algorithm::ES256)])?);
    /// # let validator = Validator::builder(store).issuer("i").audience("a").build()?;
    /// let admin = AdminState::builder(validator).admin_key("s3cret-admin-key").build()?;
    /// let get = |path: &str, auth: &str| {
    ///     let req = Request::get(path).header("authorization", auth).body(Vec::new()).unwrap();
    ///     admin.respond(&req, None).status()
    /// };
    /// assert_eq!(get("/keysets", "Bearer s3cret-admin-key"), StatusCode::OK);
    /// assert_eq!(get("/keysets", "Bearer guess"), StatusCode::UNAUTHORIZED);
    /// assert_eq!(get("/keysets/rollback", "Bearer s3cret-admin-key"), StatusCode::METHOD_NOT_ALLOWED);
    /// assert_eq!(get("/nowhere", "Bearer s3cret-admin-key"), StatusCode::NOT_FOUND);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn respond<B: AsRef<[u8]>>(
        &self,
        request: &http::Request<B>,
        peer: Option<IpAddr>,
    ) -> AdminResponse {
        let path = request.uri().path();
        let mut allowed: Vec<&Method> = Vec::new();
        let mut found = None;
        for route in ROUTES {
            if let Some(param) = route.matches(path) {
                if route.method == request.method() {
                    found = Some((route, param));
                    break;
                }
                allowed.push(&route.method);
            }
        }
        let Some((route, param)) = found else {
            return bare(allowed);
        };
        let caller = match route.access {
            Some(access) => match self.authenticate(request.headers(), peer, access) {
                Ok(caller) => Some(caller),
                Err(refused) => return *refused,
            },
            None => None,
        };
        let bytes = request.body().as_ref();
        let body = if !route.body {
            Ok(&[][..])
        } else if bytes.len() > self.max_body() {
            Err(super::BodyRejection::too_large())
        } else {
            Ok(bytes)
        };
        self.call(
            route.operation,
            &Call {
                headers: request.headers(),
                peer,
                query: request.uri().query(),
                param,
                caller: caller.as_ref(),
                body,
            },
        )
    }
}

/// 404, or 405 naming the methods the path takes.
fn bare(allowed: Vec<&Method>) -> AdminResponse {
    let mut res = AdminResponse::new(Vec::new());
    if allowed.is_empty() {
        *res.status_mut() = http::StatusCode::NOT_FOUND;
    } else {
        *res.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
        let allow = allowed
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(",");
        if let Ok(v) = http::HeaderValue::from_str(&allow) {
            res.headers_mut().insert(http::header::ALLOW, v);
        }
    }
    res
}

impl Route {
    /// Whether `path` is this route's: `Some(param)` with the parameter's value (one
    /// non-empty segment), `None` when it is not.
    ///
    /// ```
    /// use tokenlife_core::admin::routes::{Operation, route_of};
    /// let r = route_of(Operation::Release);
    /// assert_eq!(r.matches("/keysets/release/7"), Some(Some("7")));
    /// assert_eq!(r.matches("/keysets/release/"), None);
    /// assert_eq!(r.matches("/keysets/release/7/x"), None);
    /// assert_eq!(route_of(Operation::Keysets).matches("/keysets"), Some(None));
    /// ```
    pub fn matches<'p>(&self, path: &'p str) -> Option<Option<&'p str>> {
        let Some(name) = self.param else {
            return (path == self.path).then_some(None);
        };
        let hole = format!("{{{name}}}");
        let (head, tail) = self.path.split_once(&hole)?;
        let value = path.strip_prefix(head)?.strip_suffix(tail)?;
        (!value.is_empty() && !value.contains('/')).then_some(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation has exactly one route, every path parameter is named, and the
    /// module docs' table lists exactly the table's routes.
    #[test]
    fn the_table_is_whole_and_the_docs_say_the_same() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(seen.insert(r.operation), "{:?} twice", r.operation);
            assert_eq!(r.param.is_some(), r.path.contains('{'), "{}", r.path);
            assert!(
                r.access.is_some()
                    || matches!(
                        r.operation,
                        Operation::Jwks
                            | Operation::Token
                            | Operation::ConsolePage
                            | Operation::ConsoleAsset
                    )
            );
            if r.group != Group::Console {
                assert_eq!(
                    r.group == Group::Admin,
                    r.access == Some(Access::ADMIN),
                    "{}",
                    r.path
                );
            }
        }
        assert_eq!(seen.len(), 25);
        let docs = include_str!("mod.rs");
        let documented: Vec<String> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| l.split('`').next())
            .filter(|l| l.starts_with("GET ") || l.starts_with("POST "))
            .map(str::to_owned)
            .collect();
        let table: Vec<String> = ROUTES
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(documented, table);
    }
}
