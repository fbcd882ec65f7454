//! tokenlife in front of a service in any language.
//!
//! [`app`] is the proxy's public listener: each request goes to the route its host and
//! path pick ([`ProxyConfig`]), through that route's `TokenLifeLayer` (the same guard
//! as every tokenlife adapter: 401/403 with an RFC 6750 challenge, a key refresh
//! awaited for an unknown kid), then to the upstream over hyper's pooled client:
//!
//! - the request's hop-by-hop headers (and any its `Connection` names) are removed, and
//!   so is every incoming copy of a configured claim header — only the proxy writes
//!   those, from the verified token;
//! - `Authorization` is passed on only where the route says `forward_token`;
//! - `X-Forwarded-For` gets the client's address appended, `X-Forwarded-Proto` and
//!   `X-Forwarded-Host` are set, and `Forwarded` gets this hop appended (RFC 7239);
//! - bodies stream both ways; a request body over `max_body_bytes` is 413 (declared
//!   length at once, a chunked one when it passes the bound);
//! - an upstream that does not answer is 502, one that answers too slowly 504, neither
//!   with anything about the upstream in the body.
//!
//! The forward-auth endpoint ([`ProxyConfig::forward_auth_path`], `/auth`) answers for
//! proxies that stay in place: 200 with the claim headers, or the guard's 401/403 with
//! its challenge. The original request is read from `X-Forwarded-Method`/`-Uri`/`-Host`
//! (Traefik's `ForwardAuth`), `X-Original-URI` (nginx `auth_request`) or the path under
//! the endpoint (Envoy's `ext_authz` with `path_prefix`), and picks the route whose
//! requirements apply.

mod config;
mod run;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokenlife_core::Validator;
use tokenlife_core::gate::Guard;
use tokenlife_core::validate::Verified;
use tokenlife_tower::{HttpHeaders, TokenLifeLayer, TokenLifeService};
use tower_layer::Layer;
use tower_service::Service;

pub use config::{ConfigError, ProxyConfig, RouteConfig};
pub use run::{ConfigFile, Running, start};

#[cfg(test)]
use config::HOP_BY_HOP;

/// The upstream client: pooled, keep-alive, HTTP/1.1.
type Upstream = Client<HttpConnector, Body>;

struct Shared {
    config: ProxyConfig,
    client: Upstream,
    /// The same for h2c upstreams (HTTP/2 with prior knowledge).
    client_h2c: Upstream,
    /// One guard per route, for forward-auth (the proxied path uses the route's layer).
    guards: Vec<Guard<HttpHeaders>>,
    /// A guard for forward-auth requests no route covers.
    default_guard: Guard<HttpHeaders>,
    claim_headers: Vec<(String, HeaderName)>,
    /// Each route's upstream, parsed once.
    targets: Vec<Target>,
}

/// Where a route's requests go: the upstream's scheme and authority, its base path
/// (no trailing `/`), and the prefix taken off the request's path (when asked).
struct Target {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    base: String,
    strip: Option<String>,
}

impl Target {
    fn of(r: &RouteConfig) -> Result<Self, ConfigError> {
        let uri: Uri = r
            .upstream
            .parse()
            .map_err(|_| ConfigError::new("upstream", "not a URL"))?;
        let parts = uri.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            return Err(ConfigError::new("upstream", "not a URL"));
        };
        let base = parts
            .path_and_query
            .map(|p| p.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let strip = r
            .strip_prefix
            .then(|| r.prefix.trim_end_matches('/').to_owned())
            .filter(|p| !p.is_empty());
        Ok(Self {
            scheme,
            authority,
            base,
            strip,
        })
    }

    /// The upstream URI for a request to `uri`: the base, then the path (less the
    /// prefix if asked), then the query. The request's own path and query are reused
    /// as they are when nothing changes them.
    fn uri(&self, uri: &Uri) -> Option<Uri> {
        let path = uri.path();
        let rest = match &self.strip {
            Some(p) => path.strip_prefix(p.as_str()).unwrap_or(path),
            None => path,
        };
        let path_and_query = if self.base.is_empty() && self.strip.is_none() {
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"))
        } else {
            let mut target = String::with_capacity(self.base.len() + uri.path().len() + 32);
            target.push_str(&self.base);
            if !rest.starts_with('/') {
                target.push('/');
            }
            target.push_str(rest);
            if let Some(q) = uri.query() {
                target.push('?');
                target.push_str(q);
            }
            http::uri::PathAndQuery::try_from(target).ok()?
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).ok()
    }
}

/// The answer of the proxy's two services (never an error: failures are responses).
pub type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// What a route's guard lets through: the request, forwarded to the route's upstream.
#[derive(Clone)]
struct Forward {
    shared: Arc<Shared>,
    route: usize,
}

impl Service<Request> for Forward {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let (shared, route) = (self.shared.clone(), self.route);
        Box::pin(async move { Ok(forward(&shared, route, req).await) })
    }
}

/// One configuration made ready to serve: each route's guard in front of its forwarder.
struct Compiled {
    shared: Arc<Shared>,
    routes: Vec<TokenLifeService<Forward>>,
    version: u64,
}

fn compile(
    validator: &Validator,
    config: ProxyConfig,
    version: u64,
) -> Result<Compiled, ConfigError> {
    config.check()?;
    let guard_of = |r: &RouteConfig| {
        let mut g = Guard::<HttpHeaders>::new(validator.clone());
        for s in &r.require_scopes {
            g = g.require_scope(s);
        }
        if r.optional {
            g = g.optional();
        }
        for p in &r.skip_paths {
            g = g.skip_path(p);
        }
        g
    };
    let claim_headers = config
        .claims
        .iter()
        .filter_map(|(c, h)| Some((c.clone(), HeaderName::from_bytes(h.as_bytes()).ok()?)))
        .collect();
    let targets = config
        .routes
        .iter()
        .map(Target::of)
        .collect::<Result<_, _>>()?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.upstream_timeout()));
    let shared = Arc::new(Shared {
        guards: config.routes.iter().map(guard_of).collect(),
        default_guard: Guard::new(validator.clone()),
        client: Client::builder(TokioExecutor::new()).build(connector.clone()),
        client_h2c: Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector),
        claim_headers,
        targets,
        config,
    });
    // The proxied path and forward-auth use the same guard of each route.
    let routes = shared
        .guards
        .iter()
        .enumerate()
        .map(|(route, guard)| {
            TokenLifeLayer::from_guard(guard.clone()).layer(Forward {
                shared: shared.clone(),
                route,
            })
        })
        .collect();
    Ok(Compiled {
        shared,
        routes,
        version,
    })
}

/// The proxy: its configuration in force — swapped whole by [`Proxy::apply`] (checked
/// first: a bad configuration changes nothing), with the one before kept for
/// [`Proxy::rollback`] — and the router of its public listener ([`Proxy::router`]).
/// Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    validator: Validator,
    current: Arc<arc_swap::ArcSwap<Compiled>>,
    previous: Arc<std::sync::Mutex<Option<Arc<Compiled>>>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy for `config` (checked first), guarded by `validator`: version 1.
    ///
    /// # Errors
    /// The configuration does not pass [`ProxyConfig::check`].
    pub fn new(validator: Validator, config: ProxyConfig) -> Result<Self, ConfigError> {
        let compiled = compile(&validator, config, 1)?;
        Ok(Self {
            validator,
            current: Arc::new(arc_swap::ArcSwap::from_pointee(compiled)),
            previous: Arc::new(std::sync::Mutex::new(None)),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> ProxyConfig {
        self.current.load().shared.config.clone()
    }

    /// Its version: 1 at start, one more for each apply or rollback.
    pub fn version(&self) -> u64 {
        self.current.load().version
    }

    /// Makes `config` the one in force (requests in flight finish on the old one) and
    /// keeps the one it replaces for [`rollback`](Self::rollback). Returns the new
    /// version.
    ///
    /// # Errors
    /// The configuration does not pass [`ProxyConfig::check`]: nothing changes.
    pub fn apply(&self, config: ProxyConfig) -> Result<u64, ConfigError> {
        let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        let version = self.version() + 1;
        let compiled = Arc::new(compile(&self.validator, config, version)?);
        *previous = Some(self.current.swap(compiled));
        Ok(version)
    }

    /// Puts the configuration before the last apply back in force (the one it replaces
    /// becomes the one to roll back to). `None` when there is none.
    pub fn rollback(&self) -> Option<u64> {
        let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        let back = previous.take()?;
        let version = self.version() + 1;
        let compiled = Arc::new(Compiled {
            shared: back.shared.clone(),
            routes: back.routes.clone(),
            version,
        });
        *previous = Some(self.current.swap(compiled));
        Some(version)
    }

    /// The router of the public listener. Serve it with `ConnectInfo<SocketAddr>`
    /// (`into_make_service_with_connect_info`): the client's address goes to
    /// `X-Forwarded-For` and to the validator's observer.
    pub fn router(&self) -> Router {
        Router::new().fallback_service(self.service())
    }

    /// The public listener as a service, for a server that takes one (`examples::serve`
    /// does): what [`router`](Self::router) routes every request to, without the router.
    /// The same `ConnectInfo<SocketAddr>` is expected in each request's extensions.
    pub fn service(&self) -> ProxyService {
        ProxyService(self.current.clone())
    }
}

/// The proxy's public listener for `config` (checked first), guarded by `validator`:
/// [`Proxy::new`] then [`Proxy::router`], for a proxy that never reloads.
///
/// # Errors
/// The configuration does not pass [`ProxyConfig::check`].
pub fn app(validator: Validator, config: ProxyConfig) -> Result<Router, ConfigError> {
    Ok(Proxy::new(validator, config)?.router())
}

/// The public listener's service ([`Proxy::service`]): each request on the configuration
/// in force, loaded per request. Always ready; never fails (failures are responses).
#[derive(Clone)]
pub struct ProxyService(Arc<arc_swap::ArcSwap<Compiled>>);

impl std::fmt::Debug for ProxyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyService").finish_non_exhaustive()
    }
}

impl Service<Request> for ProxyService {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let c = self.0.load_full();
        Box::pin(async move { Ok(dispatch(&c, req).await) })
    }
}

/// One request on the configuration `c`: forward-auth, or the route it picks.
async fn dispatch(c: &Compiled, req: Request) -> Response {
    let s = &c.shared;
    let path = req.uri().path();
    let auth = s.config.forward_auth_path.as_str();
    if !auth.is_empty()
        && (path == auth
            || path
                .strip_prefix(auth)
                .is_some_and(|rest| rest.starts_with('/')))
    {
        return forward_auth(s, req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match route_for(&s.config, host, path) {
        Some(i) => match c.routes[i].clone().call(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        },
        None => plain(StatusCode::NOT_FOUND, "no route"),
    }
}

/// The route for `host` and `path`: the longest prefix among those whose host fits.
fn route_for(config: &ProxyConfig, host: Option<&str>, path: &str) -> Option<usize> {
    config
        .routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.covers(host, path))
        .max_by_key(|(_, r)| (r.host.is_some(), r.prefix.trim_end_matches('/').len()))
        .map(|(i, _)| i)
}

fn host_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
}

fn plain(status: StatusCode, error: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"error\":\"{error}\"}}"),
    )
        .into_response()
}

fn peer_of(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The protocol a request asks to upgrade to (`Connection: upgrade` with `Upgrade`), for
/// a request without a body (RFC 9110 §7.8; a WebSocket handshake is a GET).
fn wants_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let no_body = headers.get(header::TRANSFER_ENCODING).is_none()
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0");
    if asks && no_body {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// [`HOP_BY_HOP`], parsed.
static HOP_BY_HOP_NAMES: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes the hop-by-hop headers and every header the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests carry none: one pass over the names spares nine lookups.
    if !headers.keys().any(|n| HOP_BY_HOP_NAMES.contains(n)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for h in &HOP_BY_HOP_NAMES {
        headers.remove(h);
    }
}

/// An address as `X-Forwarded-For` writes it (dotted quad; IPv6 in its usual text).
fn ip_text(ip: IpAddr, out: &mut String) {
    match ip {
        IpAddr::V4(a) => {
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(a) => out.push_str(&a.to_string()),
    }
}

/// The value a claim is sent as: a string as it is, an array of strings joined with
/// spaces, anything else as JSON; `None` when absent or not a valid header value.
fn claim_value(v: &serde_json::Value) -> Option<HeaderValue> {
    let s = match v {
        serde_json::Value::Null => return None,
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.iter().all(|i| i.is_string()) => items
            .iter()
            .filter_map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    HeaderValue::from_str(&s).ok()
}

/// Writes the configured claim headers from `verified` (after removing any incoming
/// copy of each, which happens whether or not there is a token).
fn set_claims(s: &Shared, headers: &mut HeaderMap, verified: Option<&Verified>) {
    let Some(v) = verified else {
        for (_, h) in &s.claim_headers {
            headers.remove(h);
        }
        return;
    };
    // The registered claims are parsed already; the payload is parsed again only for a
    // claim of another name.
    let registered = v.claims();
    let mut all = None;
    for (claim, h) in &s.claim_headers {
        let value = match claim.as_str() {
            "sub" => registered
                .sub
                .as_deref()
                .and_then(|x| HeaderValue::from_str(x).ok()),
            "scope" => registered
                .scope
                .as_deref()
                .and_then(|x| HeaderValue::from_str(x).ok()),
            "iss" => registered
                .iss
                .as_deref()
                .and_then(|x| HeaderValue::from_str(x).ok()),
            "jti" => registered
                .jti
                .as_deref()
                .and_then(|x| HeaderValue::from_str(x).ok()),
            other => all
                .get_or_insert_with(|| v.all_claims())
                .get(other)
                .and_then(claim_value),
        };
        // Inserting replaces every incoming copy; a claim the token lacks removes them.
        match value {
            Some(value) => {
                headers.insert(h.clone(), value);
            }
            None => {
                headers.remove(h);
            }
        }
    }
}

async fn forward(s: &Shared, route: usize, req: Request) -> Response {
    let r = &s.config.routes[route];
    let peer = peer_of(&req);
    let (mut parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.config.max_body_bytes as u64) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
    let host = parts.headers.get(header::HOST).cloned();
    // A WebSocket (or any protocol) upgrade, after the guard let it through: the
    // `Upgrade` header goes on, and the two connections are joined once both sides agree.
    let upgrade = wants_upgrade(&parts.headers).filter(|_| !r.h2c);
    let client_upgrade = upgrade
        .as_ref()
        .and_then(|_| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
    strip_hop_by_hop(&mut parts.headers);
    if let Some(protocol) = &upgrade {
        parts.headers.insert(header::UPGRADE, protocol.clone());
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    set_claims(s, &mut parts.headers, parts.extensions.get::<Verified>());
    if !r.forward_token {
        parts.headers.remove(header::AUTHORIZATION);
    }
    // X-Forwarded-For: any prior list, then this client.
    let mut xff = String::with_capacity(64);
    if let Some(prior) = parts
        .headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
    {
        xff.push_str(prior);
        xff.push_str(", ");
    }
    match peer {
        Some(ip) => ip_text(ip, &mut xff),
        None => xff.push_str("unknown"),
    }
    if let Ok(v) = HeaderValue::from_str(&xff) {
        parts.headers.insert(X_FORWARDED_FOR, v);
    }
    parts
        .headers
        .insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    // Forwarded (RFC 7239): any prior elements, then this hop.
    let mut forwarded = String::with_capacity(96);
    if let Some(prior) = parts
        .headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
    {
        forwarded.push_str(prior);
        forwarded.push_str(", ");
    }
    forwarded.push_str("for=");
    match peer {
        Some(IpAddr::V6(a)) => {
            forwarded.push_str("\"[");
            forwarded.push_str(&a.to_string());
            forwarded.push_str("]\"");
        }
        Some(ip) => ip_text(ip, &mut forwarded),
        None => forwarded.push_str("unknown"),
    }
    forwarded.push_str(";proto=http");
    if let Some(h) = host.as_ref().and_then(|h| h.to_str().ok())
        && h.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b';')
    {
        forwarded.push_str(";host=");
        forwarded.push_str(h);
    }
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        parts.headers.insert(header::FORWARDED, v);
    }
    if let Some(h) = host {
        parts.headers.insert(X_FORWARDED_HOST, h);
    }
    let Some(uri) = s.targets[route].uri(&parts.uri) else {
        return plain(StatusCode::BAD_REQUEST, "invalid_request");
    };
    parts.uri = uri;
    parts.version = if r.h2c {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    if r.h2c {
        // HTTP/2 carries the authority in the URI; a Host header is not allowed to differ.
        parts.headers.remove(header::HOST);
    }
    let client = if r.h2c { &s.client_h2c } else { &s.client };
    // A declared length is within the limit and hyper's reader holds the body to it; an
    // empty body has nothing to count: only a streamed (chunked) body is counted as it
    // passes.
    let body = if declared.is_some() || body.is_end_stream() {
        body
    } else {
        Body::new(http_body_util::Limited::new(body, s.config.max_body_bytes))
    };
    let upstream_req = http::Request::from_parts(parts, body);
    match tokio::time::timeout(s.config.upstream_timeout(), client.request(upstream_req)).await {
        Err(_) => plain(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
        Ok(Err(e)) => {
            if too_large(&e) {
                plain(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            } else {
                plain(StatusCode::BAD_GATEWAY, "upstream_unavailable")
            }
        }
        Ok(Ok(mut res)) => {
            if res.status() == StatusCode::SWITCHING_PROTOCOLS
                && let (Some(protocol), Some(client)) = (upgrade, client_upgrade)
            {
                let upstream = hyper::upgrade::on(&mut res);
                tokio::spawn(async move {
                    if let (Ok(client), Ok(upstream)) = (client.await, upstream.await) {
                        let mut client = hyper_util::rt::TokioIo::new(client);
                        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
                let (mut parts, _) = res.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                parts.headers.insert(header::UPGRADE, protocol);
                parts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                return Response::from_parts(parts, Body::empty());
            }
            let (mut parts, body) = res.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
    }
}

/// Whether the request failed because its body passed the limit.
fn too_large(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The forward-auth answer: the guard of the route the original request picks.
async fn forward_auth(s: &Shared, req: Request) -> Response {
    let peer = peer_of(&req);
    let headers = req.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let under = req
        .uri()
        .path()
        .strip_prefix(s.config.forward_auth_path.as_str())
        .filter(|rest| rest.starts_with('/'));
    let uri = text("x-forwarded-uri")
        .or_else(|| text("x-original-uri"))
        .or(under)
        .unwrap_or("/");
    let path = uri.split('?').next().unwrap_or("/");
    let method = text("x-forwarded-method").unwrap_or(req.method().as_str());
    let host = text("x-forwarded-host")
        .map(str::to_owned)
        .or_else(|| host_of(headers));
    let guard = match route_for(&s.config, host.as_deref(), path) {
        Some(i) => &s.guards[i],
        None => &s.default_guard,
    };
    let mut verdict = guard.check(method, path, headers, peer);
    if let Err(rejection) = &verdict
        && let Some(wait) = guard.wait_for_keys(rejection, headers)
    {
        wait.await;
        verdict = guard.check(method, path, headers, peer);
    }
    match verdict {
        Ok(verified) => {
            let mut out = HeaderMap::new();
            set_claims(s, &mut out, verified.as_ref());
            let mut res = StatusCode::OK.into_response();
            res.headers_mut().extend(out);
            res
        }
        Err(rejection) => {
            let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED);
            let mut res = (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({
                    "error": rejection.error.map(|e| e.as_str()).unwrap_or("unauthorized"),
                    "error_description": rejection.description,
                })
                .to_string(),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&guard.challenge(&rejection)) {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parsed_hop_by_hop_names_are_the_checked_ones() {
        let parsed: Vec<&str> = HOP_BY_HOP_NAMES.iter().map(HeaderName::as_str).collect();
        assert_eq!(parsed, HOP_BY_HOP);
    }

    #[test]
    fn addresses_are_written_as_their_usual_text() {
        let mut seen = 0;
        for a in [0u8, 1, 9, 10, 42, 99, 100, 101, 199, 200, 255] {
            for b in [0u8, 7, 10, 100, 255] {
                let ip = IpAddr::from([a, b, b.wrapping_mul(3), a ^ b]);
                let mut out = String::new();
                ip_text(ip, &mut out);
                assert_eq!(out, ip.to_string());
                seen += 1;
            }
        }
        assert_eq!(seen, 55);
        let mut out = String::from("6.6.6.6, ");
        ip_text("::1".parse().unwrap(), &mut out);
        assert_eq!(out, "6.6.6.6, ::1");
    }

    #[test]
    fn the_upstream_uri_keeps_the_path_and_query_and_takes_the_prefix_off_when_asked() {
        let target = |prefix: &str, upstream: &str, strip: bool| {
            let mut r = RouteConfig::new(prefix, upstream);
            r.strip_prefix = strip;
            Target::of(&r).unwrap()
        };
        let uri = |t: &Target, u: &str| t.uri(&u.parse().unwrap()).unwrap().to_string();
        let plain = target("/orders", "http://127.0.0.1:3000", false);
        assert_eq!(
            uri(&plain, "/orders/7?x=1&y=%20"),
            "http://127.0.0.1:3000/orders/7?x=1&y=%20"
        );
        let based = target("/orders", "http://up:81/v1/", false);
        assert_eq!(uri(&based, "/orders/7?x=1"), "http://up:81/v1/orders/7?x=1");
        let stripped = target("/orders/", "http://up:81/v1", true);
        assert_eq!(uri(&stripped, "/orders/7?x=1"), "http://up:81/v1/7?x=1");
        assert_eq!(uri(&stripped, "/orders"), "http://up:81/v1/");
        let root = target("/api", "http://up", true);
        assert_eq!(uri(&root, "/api"), "http://up/");
        assert_eq!(uri(&root, "/api/a/b"), "http://up/a/b");
        // The root prefix takes nothing off.
        let all = target("/", "http://up", true);
        assert_eq!(uri(&all, "/a?q"), "http://up/a?q");
    }
}
