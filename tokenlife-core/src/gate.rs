//! What every adapter does with a request, written once: find the token, let skip paths
//! through, validate, check scopes, and say why a request is refused.
//!
//! The main types are [`Gate`] (the policy an adapter is configured with), [`Found`]
//! (what a token source found) and [`Rejection`] (status, RFC 6750 code, challenge).
//! The adapters (`tokenlife-tower`, `tokenlife-actix`) only read their framework's
//! headers into [`bearer`], [`single_header`] or [`cookie`], call [`Gate::decide`], and
//! render the [`Rejection`]; so both answer a request with the same status, challenge
//! and body.
//!
//! # Examples
//!
//! ```
//! use tokenlife_core::gate::{self, Found, Gate};
//! use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
//!
//! let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
//! let validator = Validator::builder(store).issuer("https://auth.example.com").audience("api://orders").build().unwrap();
//! let gate = Gate::new().skip_path("/healthz");
//!
//! // No token: 401 with a bare challenge.
//! let refused = gate.decide(Found::None, |t| validator.validate(t)).unwrap_err();
//! assert_eq!(refused.status, 401);
//! assert_eq!(refused.challenge(gate.realm()), r#"Bearer realm="api""#);
//!
//! // Two Authorization headers are a malformed request, not a guess.
//! let found = gate::bearer([&b"Bearer a"[..], &b"Bearer b"[..]]);
//! let refused = gate.decide(found, |t| validator.validate(t)).unwrap_err();
//! assert_eq!(refused.status, 400);
//! assert!(gate.skips("/healthz"));
//! ```

use std::fmt;
use std::sync::Arc;

use crate::error::{BearerError, Challenge};
use crate::error::{ValidationError, ValidationErrorKind};
use crate::validate::{Probe, Validator, Verified};

/// What a token source found in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'a> {
    /// A token.
    Token(&'a str),
    /// Nothing for this source: try the next one.
    None,
    /// Something that is not a usable credential (400 `invalid_request`), with why.
    Bad(&'static str),
}

/// `Authorization: Bearer <token>` (RFC 6750 §2.1), from every `Authorization` value of
/// the request. Two values are refused (which one counts would be a guess, and a way to
/// smuggle a second credential past a proxy that checks the first); another scheme
/// (`Basic …`) is [`Found::None`].
pub fn bearer<'a>(authorization: impl IntoIterator<Item = &'a [u8]>) -> Found<'a> {
    let mut all = authorization.into_iter();
    let Some(v) = all.next() else {
        return Found::None;
    };
    if all.next().is_some() {
        return Found::Bad("more than one Authorization header");
    }
    // The scheme ends at the first space (a few bytes in); the token is what follows,
    // without the spaces around it.
    let Some(sp) = v.iter().position(|&b| b == b' ') else {
        return match visible_ascii(v) {
            None => Found::Bad("malformed Authorization header"),
            Some(s) if s.eq_ignore_ascii_case("bearer") => Found::Bad("malformed bearer token"),
            Some(_) => Found::None,
        };
    };
    if !v[..sp].eq_ignore_ascii_case(b"bearer") {
        // Another scheme (Basic, …): not ours, if the header is well-formed at all.
        return match visible_ascii(v) {
            Some(_) => Found::None,
            None => Found::Bad("malformed Authorization header"),
        };
    }
    let token = trim_spaces(&v[sp + 1..]);
    // One pass over the token, no early exit: its smallest and largest byte (a min/max
    // reduction the compiler vectorizes). Every byte visible ASCII, no space or tab. A
    // token is hundreds of bytes, and this runs on every request.
    let (lo, hi) = token
        .iter()
        .fold((u8::MAX, 0u8), |(lo, hi), &b| (lo.min(b), hi.max(b)));
    if !token.is_empty() && lo > b' ' && hi < 127 {
        // Visible ASCII is UTF-8; simdutf8 confirms it a vector at a time (std's check
        // is a word at a time: the largest cost of the header on a cache hit).
        return simdutf8::basic::from_utf8(token).map_or(Found::None, Found::Token);
    }
    match visible_ascii(v) {
        None => Found::Bad("malformed Authorization header"),
        Some(_) => Found::Bad("malformed bearer token"),
    }
}

/// The token of the one `Authorization: Bearer <token>` value, as bytes, not checked
/// (what [`bearer`] finds before its byte checks); `None` for anything else.
fn bearer_bytes<'a>(authorization: impl IntoIterator<Item = &'a [u8]>) -> Option<&'a [u8]> {
    let mut all = authorization.into_iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let sp = v.iter().position(|&b| b == b' ')?;
    v[..sp]
        .eq_ignore_ascii_case(b"bearer")
        .then(|| trim_spaces(&v[sp + 1..]))
}

fn trim_spaces(mut b: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' '] = b {
        b = rest;
    }
    b
}

/// The whole value of a token header (`X-Api-Token: <token>`), from every value of it.
pub fn single_header<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Found<'a> {
    let mut all = values.into_iter();
    let Some(v) = all.next() else {
        return Found::None;
    };
    if all.next().is_some() {
        return Found::Bad("more than one token header");
    }
    match visible_ascii(v) {
        Some(t) if !t.is_empty() => Found::Token(t),
        _ => Found::Bad("malformed token header"),
    }
}

/// The value of cookie `name`, from every `Cookie` header of the request (the first
/// non-empty one wins; a header that is not visible ASCII is passed over).
pub fn cookie<'a>(values: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Found<'a> {
    for v in values {
        let Some(v) = visible_ascii(v) else { continue };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=')
                && k == name
                && !val.is_empty()
            {
                return Found::Token(val);
            }
        }
    }
    Found::None
}

/// A header value as text, if it is visible ASCII, space or tab (what `http`'s
/// `HeaderValue::to_str` accepts), so every adapter reads the same bytes the same way.
///
/// One pass with no early exit, so the compiler vectorizes it: a bearer token is
/// hundreds of bytes and this runs on every request (a byte-at-a-time `all` was a fifth
/// of an axum request's CPU in the `adapters` bench).
fn visible_ascii(v: &[u8]) -> Option<&str> {
    let bad = v
        .iter()
        .fold(false, |bad, &b| bad | (b < 32 && b != b'\t') | (b >= 127));
    if bad {
        None
    } else {
        // Pure ASCII: valid UTF-8 (checked again, cheaply, rather than assumed).
        std::str::from_utf8(v).ok()
    }
}

/// Whether `path` is `prefix` or below it, by whole segments: `/public` covers
/// `/public` and `/public/x`, never `/publicity`. A prefix given with a trailing `/`
/// covers what lies below it.
fn under_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Why a request is refused, with what the client should see.
///
/// The fields hold no token and no internal detail: `description` is the fixed text of
/// the error kind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejection {
    /// 400, 401, 403 (or 503 while fail-closed revocations are stale).
    pub status: u16,
    /// The RFC 6750 `error` code, or `None` when no credentials were sent.
    pub error: Option<BearerError>,
    /// A short, client-safe description.
    pub description: &'static str,
    /// The validation error kind, when a token was validated.
    pub kind: Option<ValidationErrorKind>,
    /// For `insufficient_scope`: the scopes the route needs, space-separated.
    pub scope: Option<Arc<str>>,
}

impl Rejection {
    /// No token at all: 401 with a bare challenge (RFC 6750 §3.1).
    pub fn missing() -> Self {
        Self {
            status: 401,
            error: None,
            description: "no bearer token",
            kind: Some(ValidationErrorKind::MissingToken),
            scope: None,
        }
    }

    /// A malformed request: 400 `invalid_request`.
    pub fn invalid_request(description: &'static str) -> Self {
        Self {
            status: 400,
            error: Some(BearerError::InvalidRequest),
            description,
            kind: None,
            scope: None,
        }
    }

    /// 403 `insufficient_scope` for a claim predicate that does not hold (no `scope`
    /// attribute: the requirement is not a scope the client could ask for).
    pub fn insufficient_claims() -> Self {
        Self {
            status: 403,
            error: Some(BearerError::InsufficientScope),
            description: "insufficient claims",
            kind: Some(ValidationErrorKind::InsufficientScope),
            scope: None,
        }
    }

    /// A valid token without the scopes `scope` (space-separated): 403
    /// `insufficient_scope`.
    pub fn insufficient_scope(scope: Arc<str>) -> Self {
        Self {
            status: 403,
            error: Some(BearerError::InsufficientScope),
            description: "insufficient scope",
            kind: Some(ValidationErrorKind::InsufficientScope),
            scope: Some(scope),
        }
    }

    /// The answer to a failed validation: its status, code and fixed description.
    pub fn from_error(err: &ValidationError) -> Self {
        let kind = err.kind();
        if kind == ValidationErrorKind::MissingToken {
            return Self::missing();
        }
        Self {
            status: err.status(),
            error: kind.bearer_error(),
            description: kind.description(),
            kind: Some(kind),
            scope: None,
        }
    }

    /// The gRPC status code of this rejection: 7 `PERMISSION_DENIED` for a 403, 14
    /// `UNAVAILABLE` for a 503 (fail-closed state stale, keys not yet fetched), else 16
    /// `UNAUTHENTICATED` (a missing, malformed or invalid token).
    ///
    /// ```
    /// use tokenlife_core::gate::Rejection;
    /// assert_eq!(Rejection::missing().grpc_status(), 16);
    /// assert_eq!(Rejection::insufficient_claims().grpc_status(), 7);
    /// ```
    pub fn grpc_status(&self) -> u8 {
        match self.status {
            403 => 7,
            503 => 14,
            _ => 16,
        }
    }

    /// The `grpc-message` value: the description, percent-encoded as the gRPC HTTP/2
    /// protocol asks (every byte outside printable ASCII, and `%`).
    ///
    /// ```
    /// use tokenlife_core::gate::Rejection;
    /// assert_eq!(Rejection::missing().grpc_message(), "no bearer token");
    /// assert_eq!(Rejection::invalid_request("50% ü").grpc_message(), "50%25 %C3%BC");
    /// ```
    pub fn grpc_message(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(self.description.len());
        for b in self.description.bytes() {
            if (0x20..0x7f).contains(&b) && b != b'%' {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
        out
    }

    /// The `WWW-Authenticate` value: `Bearer realm="…", error="…", error_description="…"`.
    pub fn challenge(&self, realm: &str) -> String {
        self.challenge_with(realm, None)
    }

    /// The challenge, with the URL of the resource's RFC 9728 metadata when given.
    pub fn challenge_with(&self, realm: &str, resource_metadata: Option<&str>) -> String {
        let mut c = Challenge::new(realm);
        if let Some(e) = self.error {
            c = c.error(e, self.description);
        }
        if let Some(scope) = &self.scope {
            c = c.scope(scope);
        }
        if let Some(url) = resource_metadata {
            c = c.resource_metadata(url);
        }
        c.to_string()
    }
}

/// RFC 9728 protected-resource metadata: what a client (an MCP client, say) needs to
/// find the authorization server of this API. Serve it at [`ProtectedResource::PATH`]
/// (both adapters have a route for it) and name its URL in the challenge with
/// [`Guard::resource_metadata`].
///
/// ```
/// use tokenlife_core::gate::ProtectedResource;
/// let meta = ProtectedResource::new("https://api.example")
///     .authorization_server("https://auth.example")
///     .scope("orders:read");
/// assert_eq!(
///     meta.to_json(),
///     r#"{"resource":"https://api.example","authorization_servers":["https://auth.example"],"scopes_supported":["orders:read"],"bearer_methods_supported":["header"]}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProtectedResource {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    bearer_methods_supported: Vec<&'static str>,
}

impl ProtectedResource {
    /// Where the metadata is served (RFC 9728 §3).
    pub const PATH: &'static str = "/.well-known/oauth-protected-resource";

    /// Metadata of the resource identified by `resource` (its URL), bearer tokens in the
    /// `Authorization` header.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header"],
        }
    }

    /// An authorization server (issuer URL) whose tokens the resource accepts.
    #[must_use]
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// A scope the resource uses.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes_supported.push(scope.into());
        self
    }

    /// The JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// The request policy an adapter is configured with: optional authentication, required
/// scopes, skip paths, the challenge's realm. Token sources stay in the adapter (they
/// read its framework's headers).
#[derive(Clone)]
#[must_use]
pub struct Gate {
    optional: bool,
    scopes: Vec<Box<str>>,
    scope_text: Option<Arc<str>>,
    predicates: Vec<Predicate>,
    skip_preflight: bool,
    resource_metadata: Option<Box<str>>,
    skip_exact: Vec<Box<str>>,
    skip_prefix: Vec<Box<str>>,
    realm: Box<str>,
}

/// A claim predicate a route requires ([`Gate::require`]): any function of the
/// verified token.
pub type Predicate = Arc<dyn Fn(&Verified) -> bool + Send + Sync>;

/// A predicate that holds when any of `predicates` holds (none: never).
///
/// ```
/// use tokenlife_core::gate::{self, Predicate};
/// let admin: Predicate = std::sync::Arc::new(|v| v.has_scope("admin"));
/// let owner: Predicate = std::sync::Arc::new(|v| v.claims().sub.as_deref() == Some("owner"));
/// let either = gate::any_of([admin, owner]);
/// # let _ = either;
/// ```
pub fn any_of(predicates: impl IntoIterator<Item = Predicate>) -> Predicate {
    let all: Vec<Predicate> = predicates.into_iter().collect();
    Arc::new(move |v| all.iter().any(|p| p(v)))
}

/// A predicate that holds when every one of `predicates` holds (none: always).
pub fn all_of(predicates: impl IntoIterator<Item = Predicate>) -> Predicate {
    let all: Vec<Predicate> = predicates.into_iter().collect();
    Arc::new(move |v| all.iter().all(|p| p(v)))
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("optional", &self.optional)
            .field("scopes", &self.scopes)
            .field("predicates", &self.predicates.len())
            .field("skip_preflight", &self.skip_preflight)
            .field("resource_metadata", &self.resource_metadata)
            .field("skip_exact", &self.skip_exact)
            .field("skip_prefix", &self.skip_prefix)
            .field("realm", &self.realm)
            .finish()
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// Every request needs a valid token; realm `api`.
    pub fn new() -> Self {
        Self {
            optional: false,
            scopes: Vec::new(),
            scope_text: None,
            predicates: Vec::new(),
            skip_preflight: false,
            resource_metadata: None,
            skip_exact: Vec::new(),
            skip_prefix: Vec::new(),
            realm: "api".into(),
        }
    }

    /// Optional authentication: a request without a token passes (with no `Verified`);
    /// a request with a bad token is still refused.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Requires this scope (in the token's `scope` claim); missing: 403
    /// `insufficient_scope`.
    pub fn require_scope(mut self, scope: &str) -> Self {
        self.scopes.push(scope.into());
        let text: Vec<&str> = self.scopes.iter().map(|s| &**s).collect();
        self.scope_text = Some(text.join(" ").into());
        self
    }

    /// Requires `predicate` of the verified token (beside any scopes): when it does not
    /// hold, 403 `insufficient_scope`. Combine several with [`any_of`] / [`all_of`], or
    /// call this more than once (all must hold).
    pub fn require(
        mut self,
        predicate: impl Fn(&Verified) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicates.push(Arc::new(predicate));
        self
    }

    /// Names the URL of the resource's RFC 9728 metadata in every challenge
    /// (`resource_metadata="…"`).
    pub fn resource_metadata(mut self, url: &str) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// Lets CORS preflights through without a token: an `OPTIONS` request with `Origin`
    /// and `Access-Control-Request-Method` (browsers send no credentials on it). Put the
    /// CORS layer (tower-http's `CorsLayer`, actix-cors) *behind* this guard so it answers
    /// them, or in front of it, where it answers them before the guard sees them.
    pub fn skip_preflight(mut self) -> Self {
        self.skip_preflight = true;
        self
    }

    /// Lets this exact path through without a token.
    pub fn skip_path(mut self, path: &str) -> Self {
        self.skip_exact.push(path.into());
        self
    }

    /// Lets `prefix` and every path below it through, by whole segments (`/public`
    /// covers `/public/docs`, not `/publicity`).
    pub fn skip_prefix(mut self, prefix: &str) -> Self {
        self.skip_prefix.push(prefix.into());
        self
    }

    /// The `realm` of the challenge (default `api`).
    pub fn with_realm(mut self, realm: &str) -> Self {
        self.realm = realm.into();
        self
    }

    /// The realm of the challenge.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Whether `path` needs no token at all.
    #[inline]
    pub fn skips(&self, path: &str) -> bool {
        self.skip_exact.iter().any(|p| **p == *path)
            || self.skip_prefix.iter().any(|p| under_prefix(path, p))
    }

    /// Decides a request (not a skipped one) from what its token sources found:
    /// `Ok(Some(verified))`, `Ok(None)` for an optional request without a token, or the
    /// rejection. `validate` is the validator call (with the client address if the
    /// adapter has one).
    ///
    /// # Errors
    /// The [`Rejection`] to render.
    pub fn decide(
        &self,
        found: Found<'_>,
        validate: impl FnOnce(&str) -> Result<Verified, ValidationError>,
    ) -> Result<Option<Verified>, Rejection> {
        let token = match found {
            Found::Token(t) => t,
            Found::Bad(why) => return Err(Rejection::invalid_request(why)),
            Found::None if self.optional => return Ok(None),
            Found::None => return Err(Rejection::missing()),
        };
        let verified = validate(token).map_err(|e| Rejection::from_error(&e))?;
        self.admit(verified)
    }

    /// A valid token's scopes and claims against the policy: the scopes required, then
    /// the predicates.
    #[inline]
    fn admit(&self, verified: Verified) -> Result<Option<Verified>, Rejection> {
        if !self.scopes.iter().all(|s| verified.has_scope(s)) {
            return Err(Rejection::insufficient_scope(
                self.scope_text.clone().unwrap_or_else(|| "".into()),
            ));
        }
        if !self.predicates.iter().all(|p| p(&verified)) {
            return Err(Rejection::insufficient_claims());
        }
        Ok(Some(verified))
    }
}

/// How an adapter's framework reads request headers: all a [`Guard`] needs from it.
/// Each adapter implements it on a marker type of its own (`tokenlife-tower` for the
/// `http` crate's `HeaderMap`, `tokenlife-actix` for actix-web's).
pub trait Headers: 'static {
    /// The framework's header map.
    type Map;
    /// The framework's header name (what [`TokenSource::Header`] names).
    type Name: fmt::Debug + Clone + Send + Sync + 'static;
    /// Every value of `Authorization`.
    fn authorization(map: &Self::Map) -> impl Iterator<Item = &[u8]>;
    /// Every value of `Cookie`.
    fn cookies(map: &Self::Map) -> impl Iterator<Item = &[u8]>;
    /// Every value of `name`.
    fn values<'a>(map: &'a Self::Map, name: &Self::Name) -> impl Iterator<Item = &'a [u8]>;
    /// Whether the request has a header of this (lower-case) name.
    fn contains(map: &Self::Map, name: &'static str) -> bool;
}

/// A function that finds the token in the request headers ([`TokenSource::Custom`]).
pub type CustomSource<H> =
    Arc<dyn for<'a> Fn(&'a <H as Headers>::Map) -> Option<&'a str> + Send + Sync>;

/// Where a [`Guard`] looks for the token. The first source that finds one wins.
#[non_exhaustive]
pub enum TokenSource<H: Headers> {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1). The default.
    Bearer,
    /// The whole value of this header is the token (`X-Api-Token: <token>`).
    Header(H::Name),
    /// This cookie's value is the token.
    Cookie(Arc<str>),
    /// Your own function.
    Custom(CustomSource<H>),
}

impl<H: Headers> Clone for TokenSource<H> {
    fn clone(&self) -> Self {
        match self {
            Self::Bearer => Self::Bearer,
            Self::Header(h) => Self::Header(h.clone()),
            Self::Cookie(c) => Self::Cookie(c.clone()),
            Self::Custom(f) => Self::Custom(f.clone()),
        }
    }
}

impl<H: Headers> fmt::Debug for TokenSource<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer => f.write_str("Bearer"),
            Self::Header(h) => f.debug_tuple("Header").field(h).finish(),
            Self::Cookie(c) => f.debug_tuple("Cookie").field(c).finish(),
            Self::Custom(_) => f.write_str("Custom(<fn>)"),
        }
    }
}

impl<H: Headers> TokenSource<H> {
    fn find<'a>(&self, map: &'a H::Map) -> Found<'a> {
        match self {
            Self::Bearer => bearer(H::authorization(map)),
            Self::Header(name) => single_header(H::values(map, name)),
            Self::Cookie(name) => cookie(H::cookies(map), name),
            Self::Custom(f) => f(map).map_or(Found::None, Found::Token),
        }
    }
}

/// The whole request guard, written once for every adapter: the validator, where the
/// token comes from ([`TokenSource`]s, in order) and the [`Gate`] policy. An adapter
/// hands it the request's path, headers and client address ([`Guard::check`]) and
/// renders the [`Rejection`] it gets back; that is all an adapter does.
///
/// ```
/// use tokenlife_core::gate::{Guard, Headers};
/// use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
///
/// /// Headers as `(name, value)` pairs, for the example.
/// struct Pairs;
/// impl Headers for Pairs {
///     type Map = Vec<(&'static str, Vec<u8>)>;
///     type Name = &'static str;
///     fn authorization(m: &Self::Map) -> impl Iterator<Item = &[u8]> {
///         Self::values(m, &"authorization")
///     }
///     fn cookies(m: &Self::Map) -> impl Iterator<Item = &[u8]> {
///         Self::values(m, &"cookie")
///     }
///     fn values<'a>(m: &'a Self::Map, name: &&'static str) -> impl Iterator<Item = &'a [u8]> {
///         let name = *name;
///         m.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v.as_slice())
///     }
///     fn contains(m: &Self::Map, name: &'static str) -> bool {
///         m.iter().any(|(n, _)| *n == name)
///     }
/// }
///
/// let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
/// let validator = Validator::builder(store).issuer("i").audience("a").build().unwrap();
/// let guard = Guard::<Pairs>::new(validator).require_scope("orders:read").realm("orders");
///
/// let token = testing::sign(&testing::key("k1", Algorithm::ES256), &serde_json::json!({
///     "iss": "i", "aud": "a", "sub": "u", "exp": 4_000_000_000u64, "scope": "orders:read"}));
/// let headers = vec![("authorization", format!("Bearer {token}").into_bytes())];
/// let verified = guard.check("GET", "/orders", &headers, None).unwrap().unwrap();
/// assert_eq!(verified.claims().sub.as_deref(), Some("u"));
///
/// let refused = guard.check("GET", "/orders", &vec![], None).unwrap_err();
/// assert_eq!((refused.status, guard.challenge(&refused)), (401, r#"Bearer realm="orders""#.to_owned()));
/// ```
#[must_use]
pub struct Guard<H: Headers> {
    validator: Validator,
    sources: Vec<TokenSource<H>>,
    gate: Gate,
    /// The realm, when not the default, for the request's extensions.
    custom_realm: Option<Realm>,
}

impl<H: Headers> Clone for Guard<H> {
    fn clone(&self) -> Self {
        Self {
            validator: self.validator.clone(),
            sources: self.sources.clone(),
            gate: self.gate.clone(),
            custom_realm: self.custom_realm.clone(),
        }
    }
}

impl<H: Headers> fmt::Debug for Guard<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("validator", &self.validator)
            .field("sources", &self.sources)
            .field("gate", &self.gate)
            .finish()
    }
}

impl<H: Headers> Guard<H> {
    /// Validates `Authorization: Bearer` tokens with `validator`; every request needs one.
    pub fn new(validator: Validator) -> Self {
        Self {
            validator,
            sources: vec![TokenSource::Bearer],
            gate: Gate::new(),
            custom_realm: None,
        }
    }

    /// Replaces the token sources (tried in order).
    pub fn sources(mut self, sources: impl IntoIterator<Item = TokenSource<H>>) -> Self {
        self.sources = sources.into_iter().collect();
        self
    }

    /// Also accepts the token from this cookie (after the sources so far).
    pub fn cookie(mut self, name: &str) -> Self {
        self.sources.push(TokenSource::Cookie(name.into()));
        self
    }

    /// Optional authentication: a request without a token passes (with no `Verified`);
    /// a request with a bad token is still refused.
    pub fn optional(mut self) -> Self {
        self.gate = self.gate.optional();
        self
    }

    /// Requires this scope (in the token's `scope` claim); missing → 403
    /// `insufficient_scope`.
    pub fn require_scope(mut self, scope: &str) -> Self {
        self.gate = self.gate.require_scope(scope);
        self
    }

    /// Requires `predicate` of the verified token: 403 `insufficient_scope` when it does
    /// not hold ([`Gate::require`]).
    pub fn require(
        mut self,
        predicate: impl Fn(&Verified) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.gate = self.gate.require(predicate);
        self
    }

    /// Lets CORS preflights through without a token ([`Gate::skip_preflight`]).
    pub fn skip_preflight(mut self) -> Self {
        self.gate = self.gate.skip_preflight();
        self
    }

    /// Lets this exact path through without a token (health checks).
    pub fn skip_path(mut self, path: &str) -> Self {
        self.gate = self.gate.skip_path(path);
        self
    }

    /// Lets `prefix` and every path below it through without a token, matching whole
    /// segments (`/public` covers `/public/docs`, not `/publicity`).
    pub fn skip_prefix(mut self, prefix: &str) -> Self {
        self.gate = self.gate.skip_prefix(prefix);
        self
    }

    /// The `realm` of the challenge (default `api`).
    pub fn realm(mut self, realm: &str) -> Self {
        self.gate = self.gate.with_realm(realm);
        self.custom_realm = (realm != "api").then(|| Realm(realm.into()));
        self
    }

    /// The realm to put in a passed request's extensions for the extractors, when it is
    /// not the default `api` (so the default costs nothing per request).
    pub fn custom_realm(&self) -> Option<&Realm> {
        self.custom_realm.as_ref()
    }

    /// The validator.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// The policy.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The token sources, in order.
    pub fn token_sources(&self) -> &[TokenSource<H>] {
        &self.sources
    }

    /// The verdict on a request: `Ok(Some)` for a valid token, `Ok(None)` for a skipped
    /// path, a CORS preflight under [`Gate::skip_preflight`], or an optional request
    /// without one, else the [`Rejection`]. `client` (the peer's address, when the
    /// adapter knows it) goes to the validator's observer.
    ///
    /// # Errors
    /// The [`Rejection`] to answer with.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        headers: &H::Map,
        client: Option<std::net::IpAddr>,
    ) -> Result<Option<Verified>, Rejection> {
        if self.gate.skips(path) {
            return Ok(None);
        }
        // A CORS preflight carries no credentials by design (Fetch §3.2.2): let it reach
        // the CORS layer behind, when asked to.
        if self.gate.skip_preflight
            && method == "OPTIONS"
            && H::contains(headers, "origin")
            && H::contains(headers, "access-control-request-method")
        {
            return Ok(None);
        }
        // The common case first: a bearer token byte for byte one the cache holds (it
        // passed every check of its bytes when it was verified) is answered without the
        // byte checks; anything else goes the full way, below.
        let mut timed = None;
        if let Some(TokenSource::Bearer) = self.sources.first()
            && let Some(raw) = bearer_bytes(H::authorization(headers))
        {
            match self.validator.probe(raw) {
                Probe::Hit(verified) => return self.gate.admit(verified),
                Probe::Miss(asked) => timed = asked,
            }
        }
        self.gate.decide(self.find(headers), |token| match client {
            Some(ip) if self.validator.observer().is_some() => {
                let mut buf = [0u8; 64];
                self.validator
                    .validate_timed(token, write_ip(&mut buf, ip), timed)
            }
            _ => self.validator.validate_timed(token, None, timed),
        })
    }

    /// For a request [`check`](Self::check) refused because its token names a `kid` the
    /// keys lack: a future to await before checking it once more — the key refresh in
    /// flight ([`ValidatorBuilder::key_wait`](crate::validate::ValidatorBuilder::key_wait)),
    /// bounded. `None` for every other rejection, or with nothing to wait for: answer the
    /// rejection. The async adapters call it; a sync caller never waits.
    pub fn wait_for_keys(
        &self,
        rejection: &Rejection,
        headers: &H::Map,
    ) -> Option<crate::validate::KeyWaitFuture> {
        if rejection.kind != Some(ValidationErrorKind::UnknownKid)
            || !self.validator.waits_for_keys()
        {
            return None;
        }
        let Found::Token(token) = self.find(headers) else {
            return None;
        };
        self.validator.wait_for_keys(token)
    }

    /// What the first source that finds anything in `headers` found (the token sources
    /// in order): what [`check`](Self::check) decides on.
    fn find<'a>(&self, headers: &'a H::Map) -> Found<'a> {
        for source in &self.sources {
            let found = source.find(headers);
            if !matches!(found, Found::None) {
                return found;
            }
        }
        Found::None
    }

    /// The `WWW-Authenticate` value for `rejection`, with this guard's realm (and its
    /// RFC 9728 metadata URL, when set).
    pub fn challenge(&self, rejection: &Rejection) -> String {
        rejection.challenge_with(self.gate.realm(), self.gate.resource_metadata.as_deref())
    }

    /// Names the URL of the resource's RFC 9728 metadata in every challenge
    /// ([`Gate::resource_metadata`]).
    pub fn resource_metadata(mut self, url: &str) -> Self {
        self.gate = self.gate.resource_metadata(url);
        self
    }
}

/// The [`Guard`]'s options as builder methods of an adapter's middleware type, written
/// once for every adapter. The type must have
/// `fn guard(self, f: impl FnOnce(Guard<H>) -> Guard<H>) -> Self`; `$source` is its
/// token source type.
#[doc(hidden)]
#[macro_export]
macro_rules! guard_options {
    ($source:ty) => {
        /// Replaces the token sources (tried in order).
        pub fn sources(self, sources: impl IntoIterator<Item = $source>) -> Self {
            self.guard(|g| g.sources(sources))
        }

        /// Also accepts the token from this cookie (after the `Authorization` header).
        pub fn cookie(self, name: &str) -> Self {
            self.guard(|g| g.cookie(name))
        }

        /// Optional authentication: a request without a token passes through (with no
        /// `Verified`); a request with a bad token is still rejected.
        pub fn optional(self) -> Self {
            self.guard(|g| g.optional())
        }

        /// Requires this scope (in the token's `scope` claim); missing → 403
        /// `insufficient_scope`. Apply it per route (axum's `route_layer`, actix-web's
        /// `wrap` on a resource).
        pub fn require_scope(self, scope: &str) -> Self {
            self.guard(|g| g.require_scope(scope))
        }

        /// Requires `predicate` of the verified token (any function of it; combine with
        /// `tokenlife_core::gate::{any_of, all_of}`): 403 `insufficient_scope` when it
        /// does not hold. Apply it per route, as `require_scope`.
        pub fn require(
            self,
            predicate: impl Fn(&$crate::validate::Verified) -> bool + Send + Sync + 'static,
        ) -> Self {
            self.guard(|g| g.require(predicate))
        }

        /// Names the URL of the resource's RFC 9728 protected-resource metadata in every
        /// challenge (`resource_metadata="…"`); serve the metadata with this crate's
        /// `protected_resource` route.
        pub fn resource_metadata(self, url: &str) -> Self {
            self.guard(|g| g.resource_metadata(url))
        }

        /// Lets CORS preflights through without a token: an `OPTIONS` with `Origin` and
        /// `Access-Control-Request-Method` (browsers send no credentials on it).
        pub fn skip_preflight(self) -> Self {
            self.guard(|g| g.skip_preflight())
        }

        /// Lets this exact path through without a token (health checks).
        pub fn skip_path(self, path: &str) -> Self {
            self.guard(|g| g.skip_path(path))
        }

        /// Lets `prefix` and every path below it through without a token, matching whole
        /// segments (`/public` covers `/public/docs`, not `/publicity`).
        pub fn skip_prefix(self, prefix: &str) -> Self {
            self.guard(|g| g.skip_prefix(prefix))
        }

        /// The `realm` of the challenge (default `api`); the extractors' rejections name
        /// it too.
        pub fn realm(self, realm: &str) -> Self {
            self.guard(|g| g.realm(realm))
        }
    };
}

/// `ip` written into `buf`, without allocating (validation's hot path).
fn write_ip(buf: &mut [u8; 64], ip: std::net::IpAddr) -> Option<&str> {
    use std::io::Write;
    // IPv4, the common case, by hand: `core::fmt` costs hundreds of instructions on
    // every request.
    if let std::net::IpAddr::V4(v4) = ip {
        let mut len = 0;
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                buf[len] = b'.';
                len += 1;
            }
            if octet >= 100 {
                buf[len] = b'0' + octet / 100;
                len += 1;
            }
            if octet >= 10 {
                buf[len] = b'0' + octet / 10 % 10;
                len += 1;
            }
            buf[len] = b'0' + octet % 10;
            len += 1;
        }
        return std::str::from_utf8(&buf[..len]).ok();
    }
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{ip}").ok()?;
    let len = usize::try_from(cursor.position()).ok()?;
    std::str::from_utf8(&buf[..len]).ok()
}

/// Why an extractor found no usable verified token: the same answer on every adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No `Verified` in the request: the guard is not in front of this route, or it let
    /// an optional request through without a token.
    Missing,
    /// The token's claims do not deserialize into the handler's type.
    InvalidClaims,
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "no verified bearer token",
            Self::InvalidClaims => "token claims do not fit",
        })
    }
}

impl std::error::Error for AuthRejection {}

impl AuthRejection {
    /// Always 401.
    pub fn status(self) -> u16 {
        401
    }

    /// The `WWW-Authenticate` value, with `realm` (the guard's, which the adapter puts in
    /// the request beside the `Verified`; `api` by default).
    ///
    /// ```
    /// use tokenlife_core::gate::AuthRejection;
    /// assert_eq!(AuthRejection::Missing.challenge("api"), r#"Bearer realm="api""#);
    /// assert_eq!(
    ///     AuthRejection::InvalidClaims.challenge("orders"),
    ///     r#"Bearer realm="orders", error="invalid_token", error_description="token claims do not fit""#
    /// );
    /// ```
    pub fn challenge(self, realm: &str) -> String {
        let c = Challenge::new(realm);
        match self {
            Self::Missing => c.to_string(),
            Self::InvalidClaims => c
                .error(BearerError::InvalidToken, "token claims do not fit")
                .to_string(),
        }
    }
}

/// The realm a guard answered with, put in the request beside the `Verified` when it is
/// not the default, so the extractors' rejections name the same realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realm(pub Arc<str>);

impl Realm {
    /// The realm of a request's extension, or the default `api`.
    pub fn of(realm: Option<&Realm>) -> &str {
        realm.map_or("api", |r| &r.0)
    }
}

#[cfg(test)]
mod write_ip_tests {
    use super::write_ip;

    /// The hand-written IPv4 form is `Display`'s, for every octet width; IPv6 too.
    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut buf = [0u8; 64];
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "192.168.1.20",
            "10.0.0.7",
            "::1",
            "2001:db8::ff00:42:8329",
        ] {
            let addr: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(write_ip(&mut buf, addr), Some(addr.to_string().as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bad byte anywhere in a token of any length (the vectorized min/max pass works in
    /// blocks: the first, last and every place between) refuses the token.
    #[test]
    fn a_bad_byte_anywhere_in_the_token_is_refused() {
        for len in 1..=100 {
            let token = vec![b'a'; len];
            let header = |t: &[u8]| [b"Bearer ".as_slice(), t].concat();
            let ok = header(&token);
            assert_eq!(
                bearer([ok.as_slice()]),
                Found::Token(std::str::from_utf8(&token).unwrap())
            );
            for at in 0..len {
                for bad in [0u8, b'\t', b' ' - 1, 127, 200] {
                    let mut t = token.clone();
                    t[at] = bad;
                    let h = header(&t);
                    assert!(
                        matches!(bearer([h.as_slice()]), Found::Bad(_)),
                        "byte {bad} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under_prefix("/public", "/public"));
        assert!(under_prefix("/public/x", "/public"));
        assert!(under_prefix("/public/x", "/public/"));
        assert!(!under_prefix("/publicity", "/public"));
        assert!(!under_prefix("/public", "/public/"));
        assert!(!under_prefix("/other", "/public"));
    }

    #[test]
    fn sources_read_bytes_the_way_http_reads_them() {
        assert_eq!(bearer([&b"Bearer abc"[..]]), Found::Token("abc"));
        assert_eq!(bearer([&b"bearer  abc "[..]]), Found::Token("abc"));
        assert_eq!(bearer([&b"Basic abc"[..]]), Found::None);
        assert_eq!(
            bearer([&b"Bearer"[..]]),
            Found::Bad("malformed bearer token")
        );
        assert_eq!(
            bearer([&b"Bearer a b"[..]]),
            Found::Bad("malformed bearer token")
        );
        assert_eq!(
            bearer([&b"Bearer \xff"[..]]),
            Found::Bad("malformed Authorization header")
        );
        assert_eq!(
            single_header([&b"t"[..], &b"u"[..]]),
            Found::Bad("more than one token header")
        );
        assert_eq!(
            single_header([&b""[..]]),
            Found::Bad("malformed token header")
        );
        assert_eq!(
            cookie([&b"a=1; session=tok"[..]], "session"),
            Found::Token("tok")
        );
        assert_eq!(
            cookie([&b"\xff"[..], &b"session="[..]], "session"),
            Found::None
        );
    }
}

/// The guard's first try on a bearer token's bytes ([`Validator::probe`]): what it
/// answers is what the full way answers, each success is counted once, and each request
/// asks the observer's sampler once.
#[cfg(all(test, feature = "test-util"))]
mod probe_tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::observe::{Event, Hits, Observer};
    use crate::testing::{AUD, Fixture, ISS};

    /// Headers as `(name, value)` pairs.
    struct Pairs;
    impl Headers for Pairs {
        type Map = Vec<(&'static str, Vec<u8>)>;
        type Name = &'static str;
        fn authorization(m: &Self::Map) -> impl Iterator<Item = &[u8]> {
            Self::values(m, &"authorization")
        }
        fn cookies(m: &Self::Map) -> impl Iterator<Item = &[u8]> {
            Self::values(m, &"cookie")
        }
        fn values<'a>(m: &'a Self::Map, name: &&'static str) -> impl Iterator<Item = &'a [u8]> {
            let name = *name;
            m.iter()
                .filter(move |(n, _)| *n == name)
                .map(|(_, v)| v.as_slice())
        }
        fn contains(m: &Self::Map, name: &'static str) -> bool {
            m.iter().any(|(n, _)| *n == name)
        }
    }

    /// Counts the sampler's asks (timing one in `every`, none for 0), the successes told
    /// (events and counts), the timed validations and the failures by kind.
    #[derive(Default)]
    struct Counts {
        every: u64,
        asks: AtomicU64,
        successes: AtomicU64,
        timed: AtomicU64,
        failures: Mutex<Vec<ValidationErrorKind>>,
    }

    impl Observer for Counts {
        fn on_event(&self, event: &Event<'_>) {
            if let Event::Validated {
                outcome, elapsed, ..
            } = event
            {
                if elapsed.is_some() {
                    self.timed.fetch_add(1, Ordering::Relaxed);
                }
                match outcome {
                    Ok(_) => {
                        self.successes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(kind) => self.failures.lock().unwrap().push(*kind),
                }
            }
        }
        fn counts_hits(&self) -> bool {
            true
        }
        fn on_hits(&self, hits: &Hits<'_>) {
            self.successes.fetch_add(hits.count, Ordering::Relaxed);
        }
        fn time_validation(&self) -> bool {
            let n = self.asks.fetch_add(1, Ordering::Relaxed);
            self.every > 0 && n % self.every == self.every - 1
        }
    }

    fn world(every: u64) -> (Fixture, Arc<Counts>, Guard<Pairs>) {
        let fx = Fixture::new();
        let counts = Arc::new(Counts {
            every,
            ..Counts::default()
        });
        let validator = Validator::builder(fx.store.clone())
            .issuer(ISS)
            .audience(AUD)
            .clock(fx.clock.clone())
            .observer(counts.clone())
            .build()
            .unwrap();
        let guard = Guard::<Pairs>::new(validator).require_scope("orders:read");
        (fx, counts, guard)
    }

    fn bearer_of(token: &str) -> Vec<(&'static str, Vec<u8>)> {
        vec![("authorization", format!("Bearer {token}").into_bytes())]
    }

    #[test]
    fn each_request_is_counted_once_and_asks_the_sampler_once() {
        let (fx, counts, guard) = world(4);
        let token = fx.token("orders:read");
        for _ in 0..20 {
            let v = guard.check("GET", "/", &bearer_of(&token), None).unwrap();
            assert!(v.is_some());
        }
        guard.validator.flush_hits();
        assert_eq!(counts.asks.load(Ordering::Relaxed), 20);
        assert_eq!(counts.successes.load(Ordering::Relaxed), 20);
        assert_eq!(counts.timed.load(Ordering::Relaxed), 5);
        assert!(counts.failures.lock().unwrap().is_empty());
    }

    #[test]
    fn a_cached_token_gets_the_answer_the_full_way_gives() {
        // Never timed: every cached token below takes the first try.
        let (fx, counts, guard) = world(0);
        let token = fx.token("orders:read");
        guard.check("GET", "/", &bearer_of(&token), None).unwrap();
        // Spaces around it and the scheme in any case: the same token, a hit.
        let spaced = vec![("authorization", format!("bEaReR  {token} ").into_bytes())];
        let v = guard.check("GET", "/", &spaced, None).unwrap().unwrap();
        assert!(v.from_cache());
        // The scope policy applies to a hit too.
        let narrow = fx.token("orders:write");
        assert!(!guard.validator.validate(&narrow).unwrap().from_cache());
        let refused = guard
            .check("GET", "/", &bearer_of(&narrow), None)
            .unwrap_err();
        assert_eq!(refused.status, 403);
        // Two Authorization headers, both the cached token: refused as before.
        let mut twice = bearer_of(&token);
        twice.extend(bearer_of(&token));
        let refused = guard.check("GET", "/", &twice, None).unwrap_err();
        assert_eq!(
            (refused.status, refused.description),
            (400, "more than one Authorization header")
        );
        // The cached token with a tab and a letter after it: not the cached bytes,
        // refused by the byte check, never validated.
        let told = counts.failures.lock().unwrap().len();
        let mut bad = bearer_of(&token);
        bad[0].1.extend(b"\tx");
        let refused = guard.check("GET", "/", &bad, None).unwrap_err();
        assert_eq!(
            (refused.status, refused.description),
            (400, "malformed bearer token")
        );
        assert_eq!(counts.failures.lock().unwrap().len(), told);
        // Revoked while cached: the full way refuses it and tells the failure.
        let jti = v.claims().jti.clone().unwrap();
        let until = SystemTime::now() + Duration::from_secs(3_600);
        guard
            .validator
            .revocations()
            .revoke_jti(&jti, until)
            .unwrap();
        let refused = guard
            .check("GET", "/", &bearer_of(&token), None)
            .unwrap_err();
        assert_eq!(refused.status, 401);
        assert_eq!(
            counts.failures.lock().unwrap().last(),
            Some(&ValidationErrorKind::Revoked)
        );
    }
}
