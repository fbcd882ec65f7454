//! The admin and OAuth routers (feature `axum`).
//!
//! | method & path | what | who may call |
//! | --- | --- | --- |
//! | `GET /.well-known/jwks.json` | current public keys | anyone |
//! | `POST /token` | RFC 6749: `client_credentials`, `refresh_token` grants | a client (Basic or form); a public client for its own refresh tokens |
//! | `POST /revoke` | RFC 7009 revocation (form `token`, `token_type_hint`) | a client (its own tokens) or the admin |
//! | `POST /introspect` | RFC 7662 introspection (form `token`) | a resource server or the admin |
//! | `POST /revocations/jti` | JSON `{"jti", "until"?}` | admin |
//! | `POST /revocations/subject` | JSON `{"subject", "issued_before"?, "until"?}` | admin |
//! | `POST /revocations/family` | JSON `{"family", "until"?}` | admin |
//! | `GET /keysets` | history, current marked | admin |
//! | `POST /keysets` | publish a public JWKS (`?label=…&keep_signing=true\|false`) | admin |
//! | `POST /keysets/stage` | stage a public JWKS as canary | admin |
//! | `POST /keysets/promote` | promote the staged keyset | admin |
//! | `POST /keysets/rollback` | roll back one step | admin |
//! | `POST /keysets/rollback/{version}` | roll back to a version | admin |
//! | `POST /tokens` | JSON `{"subject", "scope"?, "refresh"?, "client"?}`: mint a pair | admin |
//!
//! [`oauth_router`] holds the client-facing routes (`/token`, JWKS, `/revoke`,
//! `/introspect`), [`admin_router`] the privileged ones; [`router`] merges both. Mount them
//! on separate listeners to keep the keyset and revocation routes off the public network.
//!
//! The admin credential is its own static key (`Authorization: Bearer <admin key>`),
//! never one of the tokens it manages; clients and resource servers authenticate with
//! HTTP Basic. Authentication is a `route_layer`: it runs before any body is read and no
//! handler can skip it. Failed attempts are audited, counted
//! (`tokenlife_admin_auth_failures_total`) and throttled per client address (429 with
//! `Retry-After`). Errors are JSON `{"error", "error_description"}` with RFC 6749 / 7009 /
//! 7662 codes; a refused request changes no state. Every action is an audit event when
//! the validator has a monitor.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use tokenlife_core::observe::Event;
use tokenlife_core::observe::audit::AuditAction;
use tokenlife_core::{
    ConfigError, IssueError, Issuer, KeyErrorKind, Keyset, KeysetError, KeysetSnapshot,
    RenewErrorKind, Revocation, RevocationTarget, TokenRequest, ValidationErrorKind, Validator,
};

/// Default largest admin request body (64 KiB).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// Name of the counter of failed admin, client and resource-server authentications.
pub const AUTH_FAILURES: &str = "tokenlife_admin_auth_failures_total";

/// A credential held as its BLAKE3 hash only; compared in constant time.
struct Secret(blake3::Hash);

impl Secret {
    fn new(raw: &str) -> Self {
        Self(blake3::hash(raw.as_bytes()))
    }

    fn matches(&self, presented: &str) -> bool {
        // blake3::Hash's == is constant-time.
        blake3::hash(presented.as_bytes()) == self.0
    }
}

struct Client {
    id: String,
    secret: Secret,
    scope: Option<String>,
}

/// Who made an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    Admin,
    Client(Arc<str>),
    ResourceServer(Arc<str>),
}

impl Caller {
    fn client(&self) -> Option<&str> {
        match self {
            Caller::Client(id) => Some(id),
            _ => None,
        }
    }
}

/// Failed authentications per client address in a fixed window on the validator's clock.
/// Bounded: past `MAX_TRACKED` addresses, new ones share one bucket.
struct Throttle {
    max_failures: u32,
    window: u64,
    by_addr: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

const MAX_TRACKED: usize = 10_000;
const SHARED_BUCKET: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl Throttle {
    /// The address table; a panic elsewhere cannot leave it half-changed (each change is
    /// one entry), so a poisoned lock is still usable.
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u64, u32)>> {
        self.by_addr.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bucket(map: &mut HashMap<IpAddr, (u64, u32)>, ip: IpAddr, now: u64, window: u64) -> IpAddr {
        if map.contains_key(&ip) || map.len() < MAX_TRACKED {
            return ip;
        }
        map.retain(|_, (start, _)| start.saturating_add(window) > now);
        if map.len() < MAX_TRACKED {
            ip
        } else {
            SHARED_BUCKET
        }
    }

    /// Seconds to wait, if `ip` has used up its failures in this window.
    fn blocked(&self, ip: IpAddr, now: u64) -> Option<u64> {
        let map = self.table();
        let key = if map.contains_key(&ip) {
            ip
        } else {
            SHARED_BUCKET
        };
        let (start, count) = *map.get(&key)?;
        let end = start.saturating_add(self.window);
        (count >= self.max_failures && now < end).then(|| end - now)
    }

    fn failed(&self, ip: IpAddr, now: u64) {
        let mut map = self.table();
        let key = Self::bucket(&mut map, ip, now, self.window);
        let entry = map.entry(key).or_insert((now, 0));
        if entry.0.saturating_add(self.window) <= now {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    fn tracked(&self) -> usize {
        self.table().len()
    }
}

struct Inner {
    validator: Validator,
    issuer: Option<Issuer>,
    admin_key: Option<Secret>,
    clients: Vec<Client>,
    resource_servers: Vec<(String, Secret)>,
    max_body: usize,
    default_until: Duration,
    throttle: Throttle,
    auth_failures: metrics::Counter,
}

/// What the admin and OAuth routers work on. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("issuer", &self.inner.issuer.is_some())
            .field(
                "admin_key",
                &self.inner.admin_key.as_ref().map(|_| "[redacted]"),
            )
            .field("clients", &self.inner.clients.len())
            .field("resource_servers", &self.inner.resource_servers.len())
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// Starts an admin state around `validator` (its keyset store and revocation list).
    pub fn builder(validator: Validator) -> AdminStateBuilder {
        AdminStateBuilder {
            validator,
            issuer: None,
            admin_key: None,
            clients: Vec::new(),
            resource_servers: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
            default_until: Duration::from_secs(86_400),
            max_failures: 10,
            failure_window: Duration::from_secs(60),
            empty: None,
        }
    }

    /// Client addresses whose failed authentications are being tracked (bounded).
    pub fn throttled_addresses(&self) -> usize {
        self.inner.throttle.tracked()
    }
}

/// Builds an [`AdminState`].
#[must_use]
pub struct AdminStateBuilder {
    validator: Validator,
    issuer: Option<Issuer>,
    admin_key: Option<Secret>,
    clients: Vec<Client>,
    resource_servers: Vec<(String, Secret)>,
    max_body: usize,
    default_until: Duration,
    max_failures: u32,
    failure_window: Duration,
    /// The first credential given empty, refused at build.
    empty: Option<&'static str>,
}

impl std::fmt::Debug for AdminStateBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminStateBuilder").finish_non_exhaustive()
    }
}

impl AdminStateBuilder {
    /// The issuer behind `/token` and `/tokens`, and the one family- and
    /// subject-revocation path (refresh tokens included).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// The admin credential (sent as `Authorization: Bearer <key>`); only its hash is
    /// kept. Without one every admin endpoint answers 401; an empty one is refused at
    /// [`build`](Self::build).
    pub fn admin_key(mut self, key: &str) -> Self {
        if key.is_empty() {
            self.empty.get_or_insert("admin_key");
        }
        self.admin_key = Some(Secret::new(key));
        self
    }

    /// A client allowed the `client_credentials` grant, with the scope it gets. It may
    /// also renew and revoke (RFC 7009) the tokens issued to it.
    pub fn client(mut self, id: &str, secret: &str, scope: Option<&str>) -> Self {
        if id.is_empty() || secret.is_empty() {
            self.empty.get_or_insert("client");
        }
        self.clients.push(Client {
            id: id.to_owned(),
            secret: Secret::new(secret),
            scope: scope.map(str::to_owned),
        });
        self
    }

    /// A resource server allowed to introspect tokens (RFC 7662), with HTTP Basic.
    pub fn resource_server(mut self, id: &str, secret: &str) -> Self {
        if id.is_empty() || secret.is_empty() {
            self.empty.get_or_insert("resource_server");
        }
        self.resource_servers
            .push((id.to_owned(), Secret::new(secret)));
        self
    }

    /// Largest request body (default 64 KiB); larger ones get 413.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// How long a revocation without `until` is kept (default one day). With an issuer,
    /// subject and family revocations are kept at least until every token they cover
    /// has expired, whatever is asked.
    pub fn default_until(mut self, d: Duration) -> Self {
        self.default_until = d;
        self
    }

    /// Failed authentications allowed per client address within `window` before it is
    /// answered 429 until the window ends (default 10 per minute).
    pub fn auth_throttle(mut self, max_failures: u32, window: Duration) -> Self {
        self.max_failures = max_failures;
        self.failure_window = window;
        self
    }

    /// The state.
    ///
    /// # Errors
    /// [`ConfigError::InvalidValue`] for an empty admin key, client or resource-server
    /// credential, a zero body limit, throttle or default `until`, or durations over ten
    /// years.
    pub fn build(self) -> Result<AdminState, ConfigError> {
        if let Some(what) = self.empty {
            return Err(ConfigError::InvalidValue(what));
        }
        let ten_years = Duration::from_secs(10 * 366 * 86_400);
        if self.max_body == 0 {
            return Err(ConfigError::InvalidValue("max_body"));
        }
        if self.default_until.is_zero() || self.default_until > ten_years {
            return Err(ConfigError::InvalidValue("default_until"));
        }
        if self.max_failures == 0
            || self.failure_window.is_zero()
            || self.failure_window > ten_years
        {
            return Err(ConfigError::InvalidValue("auth_throttle"));
        }
        Ok(AdminState {
            inner: Arc::new(Inner {
                validator: self.validator,
                issuer: self.issuer,
                admin_key: self.admin_key,
                clients: self.clients,
                resource_servers: self.resource_servers,
                max_body: self.max_body,
                default_until: self.default_until,
                throttle: Throttle {
                    max_failures: self.max_failures,
                    window: self.failure_window.as_secs().max(1),
                    by_addr: Mutex::new(HashMap::new()),
                },
                auth_failures: metrics::counter!(AUTH_FAILURES),
            }),
        })
    }
}

/// Both routers in one: the client-facing OAuth routes and the privileged admin routes.
pub fn router(state: AdminState) -> Router {
    oauth_router(state.clone()).merge(admin_router(state))
}

/// The client-facing routes: `/token`, `/.well-known/jwks.json`, `/revoke` (clients and
/// the admin), `/introspect` (resource servers and the admin).
pub fn oauth_router(state: AdminState) -> Router {
    let max = state.inner.max_body;
    let revoke_route =
        Router::new()
            .route("/revoke", post(revoke))
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                |s: State<AdminState>, r: Request, n: Next| authenticate(s, r, n, Roles::REVOKE),
            ));
    let introspect_route = Router::new()
        .route("/introspect", post(introspect))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            |s: State<AdminState>, r: Request, n: Next| authenticate(s, r, n, Roles::INTROSPECT),
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
    let max = state.inner.max_body;
    Router::new()
        .route("/revocations/jti", post(revoke_jti))
        .route("/revocations/subject", post(revoke_subject))
        .route("/revocations/family", post(revoke_family))
        .route("/keysets", get(keysets).post(publish))
        .route("/keysets/stage", post(stage))
        .route("/keysets/promote", post(promote))
        .route("/keysets/rollback", post(rollback))
        .route("/keysets/rollback/{version}", post(rollback_to))
        .route("/tokens", post(mint))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            |s: State<AdminState>, r: Request, n: Next| authenticate(s, r, n, Roles::ADMIN),
        ))
        .layer(DefaultBodyLimit::max(max))
        .with_state(state)
}

/// Which kinds of caller a route accepts.
#[derive(Clone, Copy)]
struct Roles {
    admin: bool,
    client: bool,
    resource_server: bool,
    realm: &'static str,
}

impl Roles {
    const ADMIN: Self = Self {
        admin: true,
        client: false,
        resource_server: false,
        realm: r#"Bearer realm="admin""#,
    };
    const REVOKE: Self = Self {
        admin: true,
        client: true,
        resource_server: false,
        realm: r#"Bearer realm="admin""#,
    };
    const INTROSPECT: Self = Self {
        admin: true,
        client: false,
        resource_server: true,
        realm: r#"Bearer realm="admin""#,
    };
}

/// The client address axum's `ConnectInfo` recorded, or the shared bucket without one.
fn peer(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SHARED_BUCKET, |c| c.0.ip())
}

/// The authentication `route_layer`: finds the caller, or refuses (401, or 429 when
/// the address is throttled), before any body is read.
async fn authenticate(
    State(s): State<AdminState>,
    mut req: Request,
    next: Next,
    roles: Roles,
) -> Response {
    let ip = peer(req.extensions());
    let now = s.now();
    if let Some(wait) = s.inner.throttle.blocked(ip, now) {
        return throttled(wait);
    }
    match s.caller(req.headers(), roles) {
        Some(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => {
            s.auth_failed(ip, "admin_auth");
            ApiError {
                challenge: Some(roles.realm),
                ..ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "valid credentials required",
                )
            }
            .into_response()
        }
    }
}

fn throttled(wait: u64) -> Response {
    let mut res = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "slow_down",
        "too many failed authentications; retry later",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// An RFC-style JSON error.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    error: &'static str,
    description: String,
    challenge: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }

    fn bad(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn status(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error,
            description,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.error, "error_description": self.description}));
        let mut res = (self.status, [(header::CACHE_CONTROL, "no-store")], body).into_response();
        if let Some(c) = self.challenge {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        res
    }
}

type ApiResult = Result<Response, ApiError>;

fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|r| {
        let status = r.status();
        let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "invalid_request"
        };
        ApiError::new(status, error, r.body_text())
    })
}

fn json_body<T: for<'de> Deserialize<'de>>(
    b: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let b = body(b)?;
    serde_json::from_slice(&b).map_err(|e| ApiError::bad(format!("bad JSON body: {e}")))
}

fn form_body<T: for<'de> Deserialize<'de>>(
    b: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let b = body(b)?;
    serde_urlencoded::from_bytes(&b).map_err(|e| ApiError::bad(format!("bad form body: {e}")))
}

fn unavailable(e: &dyn std::error::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        e.to_string(),
    )
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest)
}

impl AdminState {
    fn now(&self) -> u64 {
        self.inner.validator.clock().unix_now()
    }

    /// The caller these headers authenticate, among the roles allowed.
    fn caller(&self, headers: &HeaderMap, roles: Roles) -> Option<Caller> {
        if roles.admin
            && let (Some(key), Some(p)) = (&self.inner.admin_key, bearer(headers))
            && key.matches(p)
        {
            return Some(Caller::Admin);
        }
        let (id, secret) = basic_credentials(headers)?;
        if roles.client
            && let Some(c) = self.client(&id, &secret)
        {
            return Some(Caller::Client(c.id.as_str().into()));
        }
        if roles.resource_server
            && let Some((rid, _)) = self
                .inner
                .resource_servers
                .iter()
                .find(|(rid, s)| *rid == id && s.matches(&secret))
        {
            return Some(Caller::ResourceServer(rid.as_str().into()));
        }
        None
    }

    fn client(&self, id: &str, secret: &str) -> Option<&Client> {
        self.inner
            .clients
            .iter()
            .find(|c| c.id == id && c.secret.matches(secret))
    }

    /// A failed authentication: counted, audited, throttled.
    fn auth_failed(&self, ip: IpAddr, what: &'static str) {
        let now = self.now();
        self.inner.throttle.failed(ip, now);
        self.inner.auth_failures.increment(1);
        if let Some(o) = self.inner.validator.observer() {
            o.on_event(&Event::Admin {
                action: AuditAction::Admin,
                detail: None,
                failure: Some(what),
                client: Some(&ip.to_string()),
                keyset_version: None,
            });
        }
    }

    fn audit(&self, action: AuditAction, detail: String) {
        if let Some(o) = self.inner.validator.observer() {
            o.on_event(&Event::Admin {
                action,
                detail: Some(&detail),
                failure: None,
                client: None,
                keyset_version: Some(self.inner.validator.keyset_store().current().version()),
            });
        }
    }

    /// A revocation's `until` (Unix seconds): given and in the future, or the default.
    fn until(&self, until: Option<u64>) -> Result<u64, ApiError> {
        let now = self.now();
        let until = until.unwrap_or(now.saturating_add(self.inner.default_until.as_secs()));
        if until <= now {
            return Err(ApiError::bad("`until` must be in the future"));
        }
        Ok(until)
    }
}

async fn jwks(State(s): State<AdminState>) -> Response {
    let body = s.inner.validator.keyset_store().current().to_public_jwks();
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

fn issue_error(e: &IssueError) -> ApiError {
    ApiError::status(e.status(), e.oauth_error(), e.to_string())
}

fn token_response(pair: &tokenlife_core::TokenPair) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(pair),
    )
        .into_response()
}

fn invalid_client(why: &str) -> ApiError {
    ApiError {
        challenge: Some(r#"Basic realm="token""#),
        ..ApiError::new(StatusCode::UNAUTHORIZED, "invalid_client", why)
    }
}

/// The client a token request authenticates as (Basic, or `client_id` and
/// `client_secret` in the form): `Ok(None)` when it names no client at all.
fn token_client<'a>(
    s: &'a AdminState,
    headers: &HeaderMap,
    form: &TokenForm,
    ip: IpAddr,
) -> Result<Option<&'a Client>, ApiError> {
    let presented = basic_credentials(headers).or_else(|| {
        form.client_id
            .as_ref()
            .map(|id| (id.clone(), form.client_secret.clone().unwrap_or_default()))
    });
    let Some((id, secret)) = presented else {
        return Ok(None);
    };
    match s.client(&id, &secret) {
        Some(c) => Ok(Some(c)),
        None => {
            s.auth_failed(ip, "client_auth");
            Err(invalid_client("unknown client or bad secret"))
        }
    }
}

async fn token(
    State(s): State<AdminState>,
    parts: axum::http::request::Parts,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let headers = &parts.headers;
    let ip = peer(&parts.extensions);
    if let Some(wait) = s.inner.throttle.blocked(ip, s.now()) {
        return Ok(throttled(wait));
    }
    let form: TokenForm = form_body(b)?;
    let issuer = s.inner.issuer.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unsupported_grant_type",
            "no issuer configured",
        )
    })?;
    match form.grant_type.as_deref() {
        Some("client_credentials") => {
            let client = token_client(&s, headers, &form, ip)?
                .ok_or_else(|| invalid_client("client authentication required"))?;
            // The requested scope must be within the client's.
            let scope = match (&form.scope, &client.scope) {
                (None, s) => s.clone(),
                (Some(req), Some(allowed)) => {
                    let allowed: Vec<&str> = allowed.split(' ').collect();
                    if req.split(' ').any(|r| !allowed.contains(&r)) {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            "scope exceeds the client's",
                        ));
                    }
                    Some(req.clone())
                }
                (Some(_), None) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        "client has no scope",
                    ));
                }
            };
            let mut req = TokenRequest::subject(&client.id).client(&client.id);
            if let Some(scope) = scope {
                req = req.scope(scope);
            }
            let pair = issuer.issue_access(req).map_err(|e| issue_error(&e))?;
            Ok(token_response(&pair))
        }
        Some("refresh_token") => {
            // RFC 6749 §6: a client that has credentials authenticates, and the token
            // must have been issued to it; a token issued to no client renews without.
            let client = token_client(&s, headers, &form, ip)?;
            let rt = form
                .refresh_token
                .as_deref()
                .ok_or_else(|| ApiError::bad("missing refresh_token"))?;
            match issuer.renew_as(rt, client.map(|c| c.id.as_str())) {
                Ok(pair) => Ok(token_response(&pair)),
                Err(e) => Err(ApiError::status(e.status(), e.oauth_error(), e.to_string())),
            }
        }
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "unsupported grant_type",
        )),
        None => Err(ApiError::bad("missing grant_type")),
    }
}

#[derive(Deserialize)]
struct TokenOnly {
    token: Option<String>,
    // RFC 7009 §2.1: a hint only; the token's own shape decides its type.
    #[serde(rename = "token_type_hint")]
    _hint: Option<String>,
}

impl TokenOnly {
    /// The `token` field, which RFC 7009 and RFC 7662 both require.
    fn token(&self) -> Result<&str, ApiError> {
        self.token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::bad("missing token"))
    }
}

fn is_refresh_token(token: &str) -> bool {
    token.starts_with(tokenlife_core::Issuer::REFRESH_PREFIX)
}

fn unauthorized_client(why: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "unauthorized_client", why)
}

/// RFC 7009. The token's own shape decides its type (a wrong hint is ignored, §2.1); an
/// invalid, expired or already revoked token needs nothing and gets 200 (§2.2); a client
/// may revoke only its own tokens; a valid access token that names neither `jti` nor a
/// family cannot be revoked alone (`unsupported_token_type`). The audit says what was
/// done. Reads go through `Validator::inspect`: no alert, no API counters.
async fn revoke(
    State(s): State<AdminState>,
    Extension(caller): Extension<Caller>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let form: TokenOnly = form_body(b)?;
    let token = form.token()?;
    let fp = s.inner.validator.fingerprint(token);
    let done = if is_refresh_token(token) {
        match &s.inner.issuer {
            Some(issuer) => match issuer.revoke_refresh(token, caller.client()) {
                Ok(true) => "refresh token family revoked",
                Ok(false) => "unknown refresh token, nothing to revoke",
                Err(e) if e.kind() == RenewErrorKind::WrongClient => {
                    return Err(unauthorized_client("token was not issued to this client"));
                }
                Err(e) => return Err(unavailable(&e)),
            },
            None => "no issuer, nothing to revoke",
        }
    } else {
        match s.inner.validator.inspect(token) {
            Ok(v) => revoke_access(&s, &v, &caller)?,
            Err(e) if e.kind() == ValidationErrorKind::Revoked => "already revoked",
            Err(e) if e.kind() == ValidationErrorKind::Expired => "expired, nothing to revoke",
            Err(_) => "invalid token, nothing to revoke",
        }
    };
    s.audit(AuditAction::Admin, format!("revoke token {fp}: {done}"));
    Ok(StatusCode::OK.into_response())
}

fn revoke_access(
    s: &AdminState,
    v: &tokenlife_core::Verified,
    caller: &Caller,
) -> Result<&'static str, ApiError> {
    if let Some(client) = caller.client() {
        let owner = v
            .all_claims()
            .get("client_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if owner.as_deref() != Some(client) {
            return Err(unauthorized_client("token was not issued to this client"));
        }
    }
    let c = v.claims();
    let leeway = s.inner.validator.leeway().as_secs();
    let until = c.exp.unwrap_or(0).saturating_add(leeway).saturating_add(60);
    let list = s.inner.validator.revocations();
    if let Some(jti) = &c.jti {
        list.revoke(Revocation {
            target: RevocationTarget::Jti(jti.clone()),
            until,
        })
        .map_err(|e| revocation_error(&e))?;
        return Ok("access token revoked by jti");
    }
    if let Some(fam) = &c.family {
        match &s.inner.issuer {
            Some(issuer) => {
                issuer.revoke_family(fam).map_err(|e| unavailable(&e))?;
            }
            None => list
                .revoke(Revocation {
                    target: RevocationTarget::Family(fam.clone()),
                    until,
                })
                .map_err(|e| revocation_error(&e))?,
        }
        return Ok("access token revoked by family");
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "unsupported_token_type",
        "the token has no jti nor family and cannot be revoked alone: revoke its subject",
    ))
}

async fn introspect(State(s): State<AdminState>, b: Result<Bytes, BytesRejection>) -> ApiResult {
    let form: TokenOnly = form_body(b)?;
    let token = form.token()?;
    let body = if is_refresh_token(token) {
        let info = match &s.inner.issuer {
            Some(issuer) => issuer.inspect_refresh(token).map_err(|e| unavailable(&e))?,
            None => None,
        };
        match info {
            Some(r) => {
                let mut out = json!({"active": true, "token_type": "refresh_token",
                    "sub": r.subject, "exp": r.expires_at, "iat": r.issued_at});
                let o = out.as_object_mut().expect("object");
                if let Some(scope) = r.scope {
                    o.insert("scope".into(), scope.into());
                }
                if let Some(cid) = r.client {
                    o.insert("client_id".into(), cid.into());
                }
                out
            }
            None => json!({"active": false}),
        }
    } else {
        match s.inner.validator.inspect(token) {
            Ok(v) => access_introspection(&v),
            Err(_) => json!({"active": false}),
        }
    };
    s.audit(
        AuditAction::Admin,
        format!("introspect token {}", s.inner.validator.fingerprint(token)),
    );
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

fn access_introspection(v: &tokenlife_core::Verified) -> Value {
    let c = v.claims();
    let mut out = json!({"active": true, "token_type": "access_token"});
    let o = out.as_object_mut().expect("object");
    for (k, val) in [
        ("sub", c.sub.clone().map(Value::from)),
        ("scope", c.scope.clone().map(Value::from)),
        ("iss", c.iss.clone().map(Value::from)),
        ("jti", c.jti.clone().map(Value::from)),
        ("exp", c.exp.map(Value::from)),
        ("iat", c.iat.map(Value::from)),
        ("nbf", c.nbf.map(Value::from)),
        (
            "aud",
            (!c.aud.is_empty()).then(|| Value::from(c.aud.clone())),
        ),
    ] {
        if let Some(val) = val {
            o.insert(k.into(), val);
        }
    }
    if let Some(cid) = v.all_claims().get("client_id") {
        o.insert("client_id".into(), cid.clone());
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JtiBody {
    jti: String,
    until: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectBody {
    subject: String,
    issued_before: Option<u64>,
    until: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilyBody {
    family: String,
    until: Option<u64>,
}

fn revocation_error(e: &tokenlife_core::RevocationError) -> ApiError {
    match e {
        tokenlife_core::RevocationError::InvalidId => {
            ApiError::bad("empty or over-long identifier")
        }
        tokenlife_core::RevocationError::Full => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "revocation_list_full",
            e.to_string(),
        ),
        _ => unavailable(e),
    }
}

/// Records an admin revocation: checked id and `until`, one audit event, one answer
/// (with the `until` in force).
fn apply_revocation(
    s: &AdminState,
    target: RevocationTarget,
    until: u64,
    what: &'static str,
) -> ApiResult {
    s.inner
        .validator
        .revocations()
        .revoke(Revocation { target, until })
        .map_err(|e| revocation_error(&e))?;
    s.audit(AuditAction::Admin, format!("revoke {what}"));
    Ok((
        StatusCode::OK,
        Json(json!({"revoked": what, "until": until})),
    )
        .into_response())
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > tokenlife_core::RevocationList::MAX_ID_LEN {
        return Err(ApiError::bad("empty or over-long identifier"));
    }
    Ok(())
}

async fn revoke_jti(State(s): State<AdminState>, b: Result<Bytes, BytesRejection>) -> ApiResult {
    let body: JtiBody = json_body(b)?;
    let until = s.until(body.until)?;
    apply_revocation(&s, RevocationTarget::Jti(body.jti), until, "jti")
}

/// Every token of a subject issued at or before `issued_before` (default: now). With an
/// issuer, through it: refresh tokens are covered too, and the revocation is kept until
/// every token it covers has expired, whatever `until` asked.
async fn revoke_subject(
    State(s): State<AdminState>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body: SubjectBody = json_body(b)?;
    check_id(&body.subject)?;
    let issued_before = body.issued_before.unwrap_or(s.now());
    let asked = s.until(body.until)?;
    let covered = match &s.inner.issuer {
        Some(issuer) => Some(
            issuer
                .revoke_subject(&body.subject, unix_time(issued_before))
                .map_err(|e| revocation_error(&e))?,
        ),
        None => None,
    };
    let target = RevocationTarget::Subject {
        subject: body.subject,
        issued_before,
    };
    keep_until(&s, target, asked, covered, "subject")
}

/// A whole family. With an issuer, the one family-revocation path: refresh store and
/// revocation list, for the family's whole life.
async fn revoke_family(State(s): State<AdminState>, b: Result<Bytes, BytesRejection>) -> ApiResult {
    let body: FamilyBody = json_body(b)?;
    check_id(&body.family)?;
    let asked = s.until(body.until)?;
    let covered = match &s.inner.issuer {
        Some(issuer) => Some(
            issuer
                .revoke_family(&body.family)
                .map_err(|e| unavailable(&e))?,
        ),
        None => None,
    };
    keep_until(
        &s,
        RevocationTarget::Family(body.family),
        asked,
        covered,
        "family",
    )
}

fn unix_time(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}

/// After the issuer revoked what it covers (until `covered`), records the revocation in
/// the list itself when no issuer did, or when `until` asked for longer.
fn keep_until(
    s: &AdminState,
    target: RevocationTarget,
    asked: u64,
    covered: Option<std::time::SystemTime>,
    what: &'static str,
) -> ApiResult {
    let covered = covered.map(|t| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    match covered {
        Some(c) if c >= asked => {
            s.audit(AuditAction::Admin, format!("revoke {what}"));
            Ok((StatusCode::OK, Json(json!({"revoked": what, "until": c}))).into_response())
        }
        _ => apply_revocation(s, target, asked, what),
    }
}

fn snapshot_json(snap: &KeysetSnapshot, current: u64) -> Value {
    let kids = |ks: &Keyset| ks.keys().map(|k| k.kid().to_owned()).collect::<Vec<_>>();
    json!({
        "version": snap.version(),
        "current": snap.version() == current,
        "label": snap.label(),
        "created_at": snap.created_at().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "kids": kids(snap.active()),
        "signing_kid": snap.signing_kid(),
        "staged_kids": snap.staged().map(kids),
    })
}

async fn keysets(State(s): State<AdminState>) -> ApiResult {
    let store = s.inner.validator.keyset_store();
    let current = store.current().version();
    let list: Vec<Value> = store
        .history()
        .iter()
        .map(|snap| snapshot_json(snap, current))
        .collect();
    Ok(
        Json(json!({"current": current, "generation": store.generation(), "keysets": list}))
            .into_response(),
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PublishQuery {
    label: Option<String>,
    keep_signing: Option<bool>,
}

/// A public JWKS from an admin request: every entry must load, and none may carry
/// private or symmetric key material.
fn public_keyset(b: Result<Bytes, BytesRejection>) -> Result<Keyset, ApiError> {
    let b = body(b)?;
    let text = std::str::from_utf8(&b).map_err(|_| ApiError::bad("body is not UTF-8"))?;
    let ks = Keyset::from_jwks_json(text).map_err(|e| {
        let why = std::error::Error::source(&e)
            .map_or_else(|| e.to_string(), |cause| format!("{e}: {cause}"));
        if e.entry_error()
            .is_some_and(|k| k.kind() == KeyErrorKind::PrivateMaterial)
        {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "private_key_material",
                format!("bad JWKS: {why}"),
            )
        } else {
            ApiError::bad(format!("bad JWKS: {why}"))
        }
    })?;
    if let Some(w) = ks.warnings().first() {
        let error = if w.kind() == KeyErrorKind::PrivateMaterial {
            "private_key_material"
        } else {
            "invalid_request"
        };
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            error,
            format!("JWKS entry refused: {w}"),
        ));
    }
    if ks.keys().any(|k| k.is_symmetric()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "private_key_material",
            "symmetric keys are not accepted over HTTP",
        ));
    }
    Ok(ks)
}

fn with_label(ks: Keyset, label: Option<String>) -> Keyset {
    match label {
        Some(l) => ks.with_label(l),
        None => ks,
    }
}

fn query(uri: &Uri) -> Result<PublishQuery, ApiError> {
    serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad(format!("bad query: {e}")))
}

/// Publishes the public JWKS of the request. Keys from HTTP cannot sign, so the current
/// signing key is kept (`keep_signing=true`), or explicitly dropped (`keep_signing=false`:
/// a verify-only deploy, the issuer cannot sign until a rollback); with an issuer and
/// neither, the publish is refused (409 `no_signing_key`) rather than leaving `/token`
/// broken.
async fn publish(
    State(s): State<AdminState>,
    uri: Uri,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let q = query(&uri)?;
    let ks = public_keyset(b)?;
    let store = s.inner.validator.keyset_store();
    let current = store.current();
    let ks = match (q.keep_signing, current.signing_key()) {
        (Some(true), Some(sk)) => {
            if ks.keys().any(|k| k.kid() == sk.kid()) {
                return Err(ApiError::bad("kid of the signing key is taken in the JWKS"));
            }
            let keys = ks.keys().cloned().chain([sk.clone()]);
            Keyset::new(keys)
                .and_then(|k| k.with_signing_kid(sk.kid()))
                .map_err(|e| ApiError::bad(e.to_string()))?
        }
        (None, Some(_)) if s.inner.issuer.is_some() => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_signing_key",
                "this keyset would leave the issuer without a signing key: add \
                 ?keep_signing=true to keep the current one, or ?keep_signing=false to \
                 publish a verify-only keyset",
            ));
        }
        _ => ks,
    };
    let v = store.publish(with_label(ks, q.label));
    s.audit(AuditAction::KeysetPublished, format!("publish v{v}"));
    Ok((StatusCode::CREATED, Json(json!({"version": v}))).into_response())
}

/// Stages the public JWKS of the request as a canary (the current keys keep signing).
async fn stage(
    State(s): State<AdminState>,
    uri: Uri,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let q = query(&uri)?;
    if q.keep_signing.is_some() {
        return Err(ApiError::bad("keep_signing applies to publish only"));
    }
    let ks = public_keyset(b)?;
    let v = s
        .inner
        .validator
        .keyset_store()
        .stage(with_label(ks, q.label))
        .map_err(|e| keyset_error(&e))?;
    s.audit(AuditAction::KeysetStaged, format!("stage v{v}"));
    Ok((StatusCode::CREATED, Json(json!({"version": v}))).into_response())
}

fn keyset_error(e: &KeysetError) -> ApiError {
    match e {
        KeysetError::UnknownVersion(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_version", e.to_string())
        }
        KeysetError::KidConflict(_) => {
            ApiError::new(StatusCode::CONFLICT, "kid_conflict", e.to_string())
        }
        _ => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
    }
}

/// A keyset change that names the version it leads to: change, audit, answer.
fn keyset_change(
    s: &AdminState,
    action: AuditAction,
    verb: &str,
    change: impl FnOnce(&tokenlife_core::KeysetStore) -> Result<u64, KeysetError>,
) -> ApiResult {
    let v = change(s.inner.validator.keyset_store()).map_err(|e| keyset_error(&e))?;
    s.audit(action, format!("{verb} v{v}"));
    Ok(Json(json!({"version": v})).into_response())
}

async fn promote(State(s): State<AdminState>) -> ApiResult {
    keyset_change(&s, AuditAction::KeysetPromoted, "promote to", |store| {
        store.promote()
    })
}

async fn rollback(State(s): State<AdminState>) -> ApiResult {
    keyset_change(&s, AuditAction::KeysetRollback, "rollback to", |store| {
        store.rollback()
    })
}

async fn rollback_to(
    State(s): State<AdminState>,
    version: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> ApiResult {
    let Path(version) = version.map_err(|_| ApiError::bad("version must be a number"))?;
    keyset_change(&s, AuditAction::KeysetRollback, "rollback to", |store| {
        store.rollback_to(version).map(|()| version)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    subject: String,
    scope: Option<String>,
    refresh: Option<bool>,
    client: Option<String>,
}

async fn mint(State(s): State<AdminState>, b: Result<Bytes, BytesRejection>) -> ApiResult {
    let body: MintBody = json_body(b)?;
    let issuer =
        s.inner.issuer.as_ref().ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no issuer configured")
        })?;
    let mut req = TokenRequest::subject(&body.subject);
    if let Some(scope) = body.scope {
        req = req.scope(scope);
    }
    if let Some(client) = body.client {
        if !s.inner.clients.iter().any(|c| c.id == client) {
            return Err(ApiError::bad("unknown client"));
        }
        req = req.client(client);
    }
    let pair = if body.refresh.unwrap_or(true) {
        issuer.issue(req)
    } else {
        issuer.issue_access(req)
    }
    .map_err(|e| issue_error(&e))?;
    s.audit(AuditAction::Admin, "mint token".into());
    Ok(token_response(&pair))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The throttle's per-address state is bounded: past `MAX_TRACKED` addresses, new
    /// ones share one bucket, and tracking keeps working.
    #[test]
    fn throttle_state_is_bounded() {
        let t = Throttle {
            max_failures: 2,
            window: 60,
            by_addr: Mutex::new(HashMap::new()),
        };
        for i in 0..(MAX_TRACKED as u32 + 5_000) {
            t.failed(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 100);
        }
        assert!(t.tracked() <= MAX_TRACKED + 1, "{}", t.tracked());
        // The first addresses are tracked on their own; an address past the bound shares
        // the bucket (which is now full of failures).
        let first = IpAddr::V4(Ipv4Addr::from(0x0a00_0000));
        assert_eq!(t.blocked(first, 100), None);
        t.failed(first, 100);
        assert_eq!(t.blocked(first, 100), Some(60));
        let late = IpAddr::V4(Ipv4Addr::from(0x0b00_0000));
        assert!(t.blocked(late, 100).is_some());
        // After the window, lapsed entries make room again.
        t.failed(late, 200);
        assert!(t.tracked() <= MAX_TRACKED + 1);
        assert_eq!(t.blocked(late, 200), None);
    }
}
