//! The admin and OAuth operations, framework-neutral (feature `admin`): authorization,
//! RFC 6749 / 7009 / 7662 semantics, keyset operations, request parsing and response
//! bodies, on the `http` crate's types. The route table is data, [`routes::ROUTES`]; an
//! adapter mounts it by iterating it (`tokenlife-tower` as axum routers,
//! `tokenlife-actix` as a scope): each route authenticates with
//! [`AdminState::authenticate`] before the body is read, then runs its one operation
//! through [`AdminState::call`].
//!
//! | method & path | operation | [`Access`] |
//! | --- | --- | --- |
//! | `GET /.well-known/jwks.json` | [`AdminState::jwks`]: current public keys | anyone |
//! | `POST /token` | [`AdminState::token`]: RFC 6749 `client_credentials`, `refresh_token` grants | a client (Basic or form); a public client for its own refresh tokens |
//! | `POST /revoke` | [`AdminState::revoke`]: RFC 7009 (form `token`, `token_type_hint`) | [`Access::REVOKE`] |
//! | `POST /introspect` | [`AdminState::introspect`]: RFC 7662 (form `token`) | [`Access::INTROSPECT`] |
//! | `POST /revocations/jti` | [`AdminState::revoke_jti`]: JSON `{"jti", "until"?}` | [`Access::ADMIN`] |
//! | `POST /revocations/subject` | [`AdminState::revoke_subject`]: JSON `{"subject", "issued_before"?, "until"?}` | [`Access::ADMIN`] |
//! | `POST /revocations/family` | [`AdminState::revoke_family`]: JSON `{"family", "until"?}` | [`Access::ADMIN`] |
//! | `GET /keysets` | [`AdminState::keysets`]: history, current marked | [`Access::ADMIN`] |
//! | `POST /keysets` | [`AdminState::publish`]: a public JWKS (`?label=…&keep_signing=true\|false`) | [`Access::ADMIN`] |
//! | `GET /keysets/rollout` | [`AdminState::rollout`]: the rollout in progress, quarantines, retirement, guard | [`Access::ADMIN`] |
//! | `POST /keysets/stage` | [`AdminState::stage`]: a public JWKS as candidate (`?label=…&share=0–100&mode=canary\|shadow`) | [`Access::ADMIN`] |
//! | `GET /keysets/remote` | [`AdminState::remote`]: remote key sources: last fetch, source, skipped keys, failures | [`Access::ADMIN`] |
//! | `POST /keysets/share` | [`AdminState::share`]: widen or narrow the canary (`?share=0–100`) | [`Access::ADMIN`] |
//! | `POST /keysets/promote` | [`AdminState::promote`] (`?version=N&min_shadow_sample=M`) | [`Access::ADMIN`] |
//! | `POST /keysets/abort` | [`AdminState::abort`]: drop the candidate | [`Access::ADMIN`] |
//! | `POST /keysets/release/{version}` | [`AdminState::release`]: lift a quarantine | [`Access::ADMIN`] |
//! | `POST /keysets/keys/{kid}/revoke` | [`AdminState::revoke_key`]: revoke a key as compromised, for good | [`Access::ADMIN`] |
//! | `POST /keysets/rollback` | [`AdminState::rollback`]: one step | [`Access::ADMIN`] |
//! | `POST /keysets/rollback/{version}` | [`AdminState::rollback_to`] | [`Access::ADMIN`] |
//! | `POST /tokens` | [`AdminState::mint`]: JSON `{"subject", "scope"?, "refresh"?, "client"?}` | [`Access::ADMIN`] |
//!
//! The admin credential is its own static key (`Authorization: Bearer <admin key>`),
//! never one of the tokens it manages; clients and resource servers authenticate with
//! HTTP Basic. Failed attempts are reported as events (the Monitor audits and counts them, `tokenlife_admin_auth_failures_total`)
//! and throttled per client address and presented identity (429 with `Retry-After`). Errors are JSON
//! `{"error", "error_description"}` with an [`ErrorCode`]; a refused request changes no
//! state. Every action is an [`Event::Admin`] for the validator's observer. Reads
//! (introspection, RFC 7009's look at the token) go through
//! [`Validator::inspect`]: no alert, no API validation counted.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use http::{HeaderMap, HeaderValue, StatusCode, header};
//! use tokenlife_core::admin::{Access, AdminState};
//! # use tokenlife_core::{Keyset, KeysetStore, Validator, testing, Algorithm};
//! # let store = KeysetStore::new(Keyset::new([testing::key("k", Algorithm::ES256)])?);
//! # let validator = Validator::builder(store).issuer("i").audience("a").build()?;
//!
//! let admin = AdminState::builder(validator).admin_key("s3cret-admin-key").build()?;
//! let peer = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
//!
//! // No credentials: 401 with a challenge, before any body is looked at.
//! let refused = admin.authenticate(&HeaderMap::new(), peer, Access::ADMIN).unwrap_err();
//! assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
//! assert!(refused.headers().contains_key(header::WWW_AUTHENTICATE));
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret-admin-key"));
//! admin.authenticate(&headers, peer, Access::ADMIN).expect("the admin");
//! let res = admin.keysets();
//! assert_eq!(res.status(), StatusCode::OK);
//! let body: serde_json::Value = serde_json::from_slice(res.body())?;
//! assert_eq!(body["current"], 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ValidationErrorKind;
use crate::error::{
    ConfigError, ErrorCode, KeyErrorKind, KeysetError, KeysetErrorKind, RevocationError,
    RevocationErrorKind,
};
use crate::issue::{IssueError, RenewErrorKind};
use crate::issue::{Issuer, TokenPair, TokenRequest};
use crate::keys::{Keyset, KeysetSnapshot, KeysetStore, RolloutMode};
use crate::observe::audit::AuditAction;
use crate::observe::{AdminFailure, Event};
use crate::revoke::{Revocation, RevocationTarget};
use crate::rollout::RolloutGuard;
use crate::validate::Validator;

pub mod routes;

/// What every operation answers: status, headers, body bytes. Adapters turn it into
/// their own response type.
pub type AdminResponse = http::Response<Vec<u8>>;

/// A request body as the adapter read it, or why it could not (its status and message:
/// 413 when over [`AdminState::max_body`]).
pub type Body<'a> = Result<&'a [u8], BodyRejection>;

/// Why the adapter could not read a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRejection {
    /// The status to answer (413 for a body over the limit, 400 otherwise).
    pub status: StatusCode,
    /// The adapter's own words, sent as `error_description`.
    pub message: String,
}

impl BodyRejection {
    /// A body over [`AdminState::max_body`]: 413, in the same words whichever adapter
    /// read it.
    pub fn too_large() -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "request body over the size limit".into(),
        }
    }

    /// A body not delivered within [`AdminState::body_timeout`] (a slow drip holding a
    /// connection): 408, in the same words whichever adapter read it.
    pub fn timed_out() -> Self {
        Self {
            status: StatusCode::REQUEST_TIMEOUT,
            message: "request body not received in time".into(),
        }
    }

    /// A body the connection failed to deliver: 400.
    pub fn unreadable() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: "could not read the request body".into(),
        }
    }
}

/// Who made an authenticated request: what [`AdminState::authenticate`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(CallerKind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum CallerKind {
    Admin,
    Client(Arc<str>),
    ResourceServer(Arc<str>),
}

impl Caller {
    /// The admin.
    pub fn is_admin(&self) -> bool {
        self.0 == CallerKind::Admin
    }

    /// The OAuth client's id, for a client.
    pub fn client(&self) -> Option<&str> {
        match &self.0 {
            CallerKind::Client(id) => Some(id),
            _ => None,
        }
    }

    /// The resource server's id, for a resource server.
    pub fn resource_server(&self) -> Option<&str> {
        match &self.0 {
            CallerKind::ResourceServer(id) => Some(id),
            _ => None,
        }
    }

    /// Who, for the audit trail: `admin`, or the client's or resource server's id.
    pub fn actor(&self) -> &str {
        match &self.0 {
            CallerKind::Admin => "admin",
            CallerKind::Client(id) | CallerKind::ResourceServer(id) => id,
        }
    }
}

/// Default largest admin request body (64 KiB).
const DEFAULT_MAX_BODY: usize = 64 * 1024;

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

/// Failed authentications per (client address, presented identity) in a fixed window on
/// the validator's clock: one party guessing a secret — behind a proxy, everyone shares
/// an address — locks out that identity from that address only, never another client's
/// or the admin's valid credential (security review 3, MEDIUM 6). The identity is the
/// Basic client id, or "the admin key" for a bearer; it is hashed with a seed of this
/// process, so no client id can be chosen to collide with another's. Bounded: past
/// `MAX_TRACKED` buckets, new ones share one.
struct Throttle {
    max_failures: u32,
    window: u64,
    seed: u64,
    by_addr: Mutex<HashMap<Bucket, (u64, u32)>>,
}

/// A throttle bucket: the client address and the presented identity's seeded hash.
type Bucket = (IpAddr, u64);

const MAX_TRACKED: usize = 10_000;
const SHARED_BUCKET: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Who a request claims to be, before anything is checked.
enum Identity<'a> {
    /// A bearer (the admin key).
    Bearer,
    /// A client or resource-server id (Basic, or the token form's `client_id`).
    Id(&'a str),
    /// No credentials.
    None,
}

impl Throttle {
    /// The bucket of `ip` presenting `identity`.
    fn bucket(&self, ip: IpAddr, identity: &Identity<'_>) -> Bucket {
        let h = match identity {
            Identity::Bearer => xxhash_rust::xxh3::xxh3_64_with_seed(b"\0bearer", self.seed),
            Identity::Id(id) => xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), self.seed),
            Identity::None => 0,
        };
        (ip, h)
    }

    /// The table; a panic elsewhere cannot leave it half-changed (each change is one
    /// entry), so a poisoned lock is still usable.
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Bucket, (u64, u32)>> {
        self.by_addr.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(map: &mut HashMap<Bucket, (u64, u32)>, key: Bucket, now: u64, window: u64) -> Bucket {
        if map.contains_key(&key) || map.len() < MAX_TRACKED {
            return key;
        }
        map.retain(|_, (start, _)| start.saturating_add(window) > now);
        if map.len() < MAX_TRACKED {
            key
        } else {
            (SHARED_BUCKET, 0)
        }
    }

    /// Seconds to wait, if this bucket has used up its failures in this window.
    fn blocked(&self, key: Bucket, now: u64) -> Option<u64> {
        let map = self.table();
        let key = if map.contains_key(&key) {
            key
        } else {
            (SHARED_BUCKET, 0)
        };
        let (start, count) = *map.get(&key)?;
        let end = start.saturating_add(self.window);
        (count >= self.max_failures && now < end).then(|| end - now)
    }

    fn failed(&self, key: Bucket, now: u64) {
        let mut map = self.table();
        let key = Self::slot(&mut map, key, now, self.window);
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

/// The identity the headers claim (Bearer, or a Basic id), unchecked.
fn claimed_identity(headers: &HeaderMap) -> (Identity<'static>, Option<String>) {
    if bearer(headers).is_some() {
        return (Identity::Bearer, None);
    }
    match basic_credentials(headers) {
        Some((id, _)) => (Identity::None, Some(id)),
        None => (Identity::None, None),
    }
}

struct Inner {
    validator: Validator,
    issuer: Option<Issuer>,
    admin_key: Option<Secret>,
    clients: Vec<Client>,
    resource_servers: Vec<(String, Secret)>,
    max_body: usize,
    body_timeout: Duration,
    default_until: Duration,
    guard: Option<RolloutGuard>,
    key_sources: Vec<KeySource>,
    throttle: Throttle,
    /// RFC 7009 revocations per client in the current window: (window start, count).
    client_revocations: Mutex<HashMap<String, (u64, u32)>>,
    client_quota: (u32, u64),
    /// Token requests in progress, and the most allowed.
    grants: std::sync::atomic::AtomicUsize,
    max_grants: usize,
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
            body_timeout: Duration::from_secs(3),
            default_until: Duration::from_secs(86_400),
            max_failures: 10,
            failure_window: Duration::from_secs(60),
            client_quota: (1_000, Duration::from_secs(3600)),
            max_grants: 64,
            empty: None,
            guard: None,
            key_sources: Vec::new(),
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
    body_timeout: Duration,
    default_until: Duration,
    max_failures: u32,
    failure_window: Duration,
    client_quota: (u32, Duration),
    max_grants: usize,
    /// The first credential given empty, refused at build.
    empty: Option<&'static str>,
    guard: Option<RolloutGuard>,
    key_sources: Vec<KeySource>,
}

/// A status report of where keys come from (`GET /keysets/remote`).
type KeySource = Arc<dyn Fn() -> Value + Send + Sync>;

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

    /// Where keys come from, for `GET /keysets/remote`: a function that reports a key
    /// source's status as JSON (called on each request). See
    /// [`remote_keys`](Self::remote_keys) for [`RemoteKeys`](crate::keys::remote::RemoteKeys).
    pub fn key_source(mut self, status: impl Fn() -> Value + Send + Sync + 'static) -> Self {
        self.key_sources.push(Arc::new(status));
        self
    }

    /// Reports these remote keys' status at `GET /keysets/remote`: when they were last
    /// fetched, from where, what was skipped, what failed.
    #[cfg(feature = "remote")]
    pub fn remote_keys(self, keys: crate::keys::remote::RemoteKeys) -> Self {
        self.key_source(move || serde_json::to_value(keys.status()).unwrap_or(Value::Null))
    }

    /// The rollout guard watching the store, so `GET /keysets/rollout` shows what it
    /// watches and how often it rolled back.
    pub fn rollout_guard(mut self, guard: RolloutGuard) -> Self {
        self.guard = Some(guard);
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

    /// Longest time the adapters wait for a request body once the headers are in
    /// (default 3 s; bodies here are at most [`max_body`](Self::max_body), 64 KiB by
    /// default): a client dripping a body — to `/token`, which anyone may call — is
    /// answered 408 instead of holding its connection.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout.max(Duration::from_millis(10));
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

    /// Token requests (`POST /token`) served at once (default 64): they may wait on the
    /// refresh store (Redis), so past this bound they are answered 503 with
    /// `Retry-After: 1` at once rather than queued behind a slow store.
    pub fn max_concurrent_grants(mut self, n: usize) -> Self {
        self.max_grants = n.max(1);
        self
    }

    /// Revocation-list entries each OAuth client may add through RFC 7009 `/revoke`
    /// within `window` (default 1,000 per hour); past it, 429 `slow_down`. Whatever the
    /// quotas, clients never take the last tenth of the list's capacity: that headroom is
    /// kept for admin revocations, refresh-token reuse and the fleet.
    pub fn client_revocation_quota(mut self, max: u32, window: Duration) -> Self {
        self.client_quota = (max, window);
        self
    }

    /// The state.
    ///
    /// # Errors
    /// [`ConfigErrorKind::InvalidValue`](crate::error::ConfigErrorKind::InvalidValue) for an empty admin key, client or resource-server
    /// credential, a zero body limit, throttle or default `until`, or durations over ten
    /// years.
    pub fn build(self) -> Result<AdminState, ConfigError> {
        if let Some(what) = self.empty {
            return Err(ConfigError::invalid(what));
        }
        let ten_years = Duration::from_secs(10 * 366 * 86_400);
        if self.max_body == 0 {
            return Err(ConfigError::invalid("max_body"));
        }
        if self.default_until.is_zero() || self.default_until > ten_years {
            return Err(ConfigError::invalid("default_until"));
        }
        if self.max_failures == 0
            || self.failure_window.is_zero()
            || self.failure_window > ten_years
        {
            return Err(ConfigError::invalid("auth_throttle"));
        }
        Ok(AdminState {
            inner: Arc::new(Inner {
                validator: self.validator,
                issuer: self.issuer,
                guard: self.guard,
                key_sources: self.key_sources,
                admin_key: self.admin_key,
                clients: self.clients,
                resource_servers: self.resource_servers,
                max_body: self.max_body,
                body_timeout: self.body_timeout,
                default_until: self.default_until,
                throttle: Throttle {
                    seed: crate::hash::random_u64(),
                    max_failures: self.max_failures,
                    window: self.failure_window.as_secs().max(1),
                    by_addr: Mutex::new(HashMap::new()),
                },
                client_revocations: Mutex::new(HashMap::new()),
                client_quota: (self.client_quota.0, self.client_quota.1.as_secs().max(1)),
                grants: std::sync::atomic::AtomicUsize::new(0),
                max_grants: self.max_grants,
            }),
        })
    }
}

/// Which kinds of caller an operation accepts: pass it to
/// [`AdminState::authenticate`] in the adapter's route layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    admin: bool,
    client: bool,
    resource_server: bool,
    realm: &'static str,
}

impl Access {
    /// The admin key only: revocations, keysets, `/tokens`.
    pub const ADMIN: Self = Self {
        admin: true,
        client: false,
        resource_server: false,
        realm: r#"Bearer realm="admin""#,
    };
    /// RFC 7009 `/revoke`: a client (its own tokens) or the admin.
    pub const REVOKE: Self = Self {
        admin: true,
        client: true,
        resource_server: false,
        realm: r#"Bearer realm="admin""#,
    };
    /// RFC 7662 `/introspect`: a resource server or the admin.
    pub const INTROSPECT: Self = Self {
        admin: true,
        client: false,
        resource_server: true,
        realm: r#"Bearer realm="admin""#,
    };
}

impl AdminState {
    /// Default largest request body (64 KiB).
    pub const DEFAULT_MAX_BODY: usize = DEFAULT_MAX_BODY;

    /// Largest request body the adapter should read; over it, answer 413 through a
    /// [`BodyRejection`].
    pub fn max_body(&self) -> usize {
        self.inner.max_body
    }

    /// Longest wait for a request body; past it, answer 408 through
    /// [`BodyRejection::timed_out`].
    pub fn body_timeout(&self) -> Duration {
        self.inner.body_timeout
    }

    /// Authenticates a request for an operation that needs `access`, from its headers
    /// alone (run it before reading the body). `peer` is the client address, for the
    /// failed-authentication throttle (`None`: one shared bucket).
    ///
    /// # Errors
    /// The answer to send: 401 with a `WWW-Authenticate` challenge, or 429 with
    /// `Retry-After` while the address is throttled.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        access: Access,
    ) -> Result<Caller, Box<AdminResponse>> {
        let ip = peer.unwrap_or(SHARED_BUCKET);
        let (identity, id) = claimed_identity(headers);
        let identity = id.as_deref().map_or(identity, Identity::Id);
        let bucket = self.inner.throttle.bucket(ip, &identity);
        if let Some(wait) = self.inner.throttle.blocked(bucket, self.now()) {
            return Err(Box::new(throttled(wait)));
        }
        match self.caller(headers, access) {
            Some(caller) => Ok(caller),
            None => {
                self.auth_failed(bucket, AdminFailure::AdminAuth);
                Err(Box::new(
                    ApiError {
                        challenge: Some(access.realm),
                        ..ApiError::new(
                            StatusCode::UNAUTHORIZED,
                            ErrorCode::Unauthorized,
                            "valid credentials required",
                        )
                    }
                    .into_response(),
                ))
            }
        }
    }

    /// `GET /.well-known/jwks.json`: the current public keys (anyone).
    pub fn jwks(&self) -> AdminResponse {
        jwks(self)
    }

    /// `POST /token` (RFC 6749): `client_credentials` and `refresh_token` grants. Does
    /// its own client authentication (Basic or form), throttled like the rest.
    pub fn token(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        body: Body<'_>,
    ) -> AdminResponse {
        done(token(self, headers, peer, body))
    }

    /// `POST /revoke` (RFC 7009), for a caller [`Access::REVOKE`] let in.
    pub fn revoke(&self, caller: &Caller, body: Body<'_>) -> AdminResponse {
        done(revoke(self, caller, body))
    }

    /// `POST /introspect` (RFC 7662), for a caller [`Access::INTROSPECT`] let in.
    /// Refresh tokens are the issuer's business: only the admin learns about them; a
    /// resource server is told `{"active": false}` (it never receives refresh tokens,
    /// and must not learn whose they are). Access tokens are introspected for the
    /// validator's own audience only (what [`Validator::inspect`] accepts).
    pub fn introspect(&self, caller: &Caller, body: Body<'_>) -> AdminResponse {
        done(introspect(self, caller, body))
    }

    /// `POST /revocations/jti` (admin).
    pub fn revoke_jti(&self, body: Body<'_>) -> AdminResponse {
        done(revoke_jti(self, body))
    }

    /// `POST /revocations/subject` (admin): every token of a subject issued at or before
    /// `issued_before` (default: now), refresh tokens included when there is an issuer.
    pub fn revoke_subject(&self, body: Body<'_>) -> AdminResponse {
        done(revoke_subject(self, body))
    }

    /// `POST /revocations/family` (admin).
    pub fn revoke_family(&self, body: Body<'_>) -> AdminResponse {
        done(revoke_family(self, body))
    }

    /// `GET /keysets` (admin): the history, current marked.
    pub fn keysets(&self) -> AdminResponse {
        keysets(self)
    }

    /// `POST /keysets` (admin): publishes the public JWKS of the body; `query` is the
    /// request's query string (`label`, `keep_signing`).
    pub fn publish(&self, query: Option<&str>, body: Body<'_>) -> AdminResponse {
        done(publish(self, query, body))
    }

    /// `POST /keysets/stage` (admin): stages the public JWKS of the body as a canary.
    pub fn stage(&self, query: Option<&str>, body: Body<'_>) -> AdminResponse {
        done(stage(self, query, body))
    }

    /// `POST /keysets/promote` (admin): `query` is the query string (`version=N` to
    /// promote the candidate of version N, `min_shadow_sample=M` to require a clean shadow
    /// run over at least M validations).
    pub fn promote(&self, query: Option<&str>) -> AdminResponse {
        done(promote(self, query))
    }

    /// `GET /keysets/rollout` (admin): the rollout in progress, the quarantined versions,
    /// the retirement policy and its retired kids, and the guard's state.
    pub fn rollout(&self) -> AdminResponse {
        rollout(self)
    }

    /// `GET /keysets/remote` (admin): each key source's status
    /// ([`AdminStateBuilder::remote_keys`]); 404 `not_found` when none is configured.
    pub fn remote(&self) -> AdminResponse {
        if self.inner.key_sources.is_empty() {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no remote key source is configured",
            )
            .into_response();
        }
        let sources: Vec<Value> = self.inner.key_sources.iter().map(|f| f()).collect();
        json_response(
            StatusCode::OK,
            &json!({ "sources": sources }),
            &[(header::CACHE_CONTROL, "no-store")],
        )
    }

    /// `POST /keysets/share` (admin): `query` is `share=0–100`.
    pub fn share(&self, query: Option<&str>) -> AdminResponse {
        done(share(self, query))
    }

    /// `POST /keysets/abort` (admin): drops the staged candidate.
    pub fn abort(&self) -> AdminResponse {
        done(keyset_change(
            self,
            AuditAction::KeysetAborted,
            "abort to",
            KeysetStore::abort,
        ))
    }

    /// `POST /keysets/release/{version}` (admin): lifts the rollout guard's quarantine.
    pub fn release(&self, version: &str) -> AdminResponse {
        done(release(self, version))
    }

    /// `POST /keysets/keys/{kid}/revoke` (admin): revokes the key `kid` as compromised
    /// ([`KeysetStore::revoke_key`]): it leaves the current keyset, and no rollback,
    /// automatic or manual, and no fleet message trusts it again. Answers the version
    /// current afterwards; 409 `kid_conflict` if it is the last key left.
    pub fn revoke_key(&self, kid: &str) -> AdminResponse {
        done(revoke_key(self, kid))
    }

    /// `POST /keysets/rollback` (admin): one step back.
    pub fn rollback(&self) -> AdminResponse {
        done(rollback(self))
    }

    /// `POST /keysets/rollback/{version}` (admin): `version` is the path segment as sent.
    pub fn rollback_to(&self, version: &str) -> AdminResponse {
        done(rollback_to(self, version))
    }

    /// `POST /tokens` (admin): mints a pair (or an access token alone).
    pub fn mint(&self, body: Body<'_>) -> AdminResponse {
        done(mint(self, body))
    }
}

/// The answer when a route that needs a caller reaches its operation without one: an
/// adapter that did not authenticate (a 500: a bug, never a pass).
fn no_caller() -> AdminResponse {
    let mut res = AdminResponse::new(Vec::new());
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res
}

fn throttled(wait: u64) -> AdminResponse {
    ApiError::throttled(wait).into_response()
}

/// An RFC-style JSON error.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    error: ErrorCode,
    description: String,
    challenge: Option<&'static str>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, error: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// 429 with `Retry-After`: too many failed authentications.
    fn throttled(wait: u64) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::SlowDown,
                "too many failed authentications; retry later",
            )
        }
    }

    fn bad(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            description,
        )
    }

    fn status(status: u16, error: ErrorCode, description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error,
            description,
        )
    }

    fn into_response(self) -> AdminResponse {
        let body = json!({"error": self.error.as_str(), "error_description": self.description});
        let mut res = json_response(self.status, &body, &[(header::CACHE_CONTROL, "no-store")]);
        if let Some(c) = self.challenge {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        if let Some(wait) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        res
    }
}

type ApiResult = Result<AdminResponse, ApiError>;

fn done(r: ApiResult) -> AdminResponse {
    r.unwrap_or_else(ApiError::into_response)
}

/// A JSON response with extra headers; `Content-Type: application/json` first.
fn json_response(
    status: StatusCode,
    body: &impl serde::Serialize,
    headers: &[(HeaderName, &'static str)],
) -> AdminResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut res = http::Response::new(bytes);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        h.insert(name.clone(), HeaderValue::from_static(value));
    }
    res
}

fn body(b: Body<'_>) -> Result<&[u8], ApiError> {
    b.map_err(|r| {
        let error = if r.status == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::PayloadTooLarge
        } else {
            ErrorCode::InvalidRequest
        };
        ApiError::new(r.status, error, r.message.clone())
    })
}

fn json_body<T: for<'de> Deserialize<'de>>(b: Body<'_>) -> Result<T, ApiError> {
    let b = body(b)?;
    serde_json::from_slice(b).map_err(|e| ApiError::bad(format!("bad JSON body: {e}")))
}

fn form_body<T: for<'de> Deserialize<'de>>(b: Body<'_>) -> Result<T, ApiError> {
    let b = body(b)?;
    serde_urlencoded::from_bytes(b).map_err(|e| ApiError::bad(format!("bad form body: {e}")))
}

fn unavailable(e: &dyn std::error::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::TemporarilyUnavailable,
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
    fn caller(&self, headers: &HeaderMap, roles: Access) -> Option<Caller> {
        if roles.admin
            && let (Some(key), Some(p)) = (&self.inner.admin_key, bearer(headers))
            && key.matches(p)
        {
            return Some(Caller(CallerKind::Admin));
        }
        let (id, secret) = basic_credentials(headers)?;
        if roles.client
            && let Some(c) = self.client(&id, &secret)
        {
            return Some(Caller(CallerKind::Client(c.id.as_str().into())));
        }
        if roles.resource_server
            && let Some((rid, _)) = self
                .inner
                .resource_servers
                .iter()
                .find(|(rid, s)| *rid == id && s.matches(&secret))
        {
            return Some(Caller(CallerKind::ResourceServer(rid.as_str().into())));
        }
        None
    }

    /// The client with this id and secret. Every client's id and secret are compared
    /// (ids in constant time), so the answer's timing does not say which ids exist.
    fn client(&self, id: &str, secret: &str) -> Option<&Client> {
        let presented = blake3::hash(id.as_bytes());
        let mut found = None;
        for c in &self.inner.clients {
            // blake3::Hash's == is constant-time; both checks run for every client.
            let id_ok = blake3::hash(c.id.as_bytes()) == presented;
            let secret_ok = c.secret.matches(secret);
            if id_ok && secret_ok {
                found = Some(c);
            }
        }
        found
    }

    /// A failed authentication: counted, audited, throttled.
    fn auth_failed(&self, bucket: Bucket, what: AdminFailure) {
        let now = self.now();
        let ip = bucket.0;
        self.inner.throttle.failed(bucket, now);
        if let Some(o) = self.inner.validator.observer() {
            o.on_event(&Event::Admin {
                action: AuditAction::Admin,
                detail: None,
                failure: Some(what),
                client: Some(&ip.to_string()),
                subject: None,
                keyset_version: None,
            });
        }
    }

    /// An admin action, by the admin (the admin routes admit no one else).
    fn audit(&self, action: AuditAction, detail: String) {
        self.audit_by(action, detail, "admin", None);
    }

    /// An action with its actor (`admin`, a client or resource-server id) and the subject
    /// it concerned, if any.
    fn audit_by(&self, action: AuditAction, detail: String, actor: &str, subject: Option<&str>) {
        if let Some(o) = self.inner.validator.observer() {
            o.on_event(&Event::Admin {
                action,
                detail: Some(&detail),
                failure: None,
                client: Some(actor),
                subject,
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

fn jwks(s: &AdminState) -> AdminResponse {
    let body = s.inner.validator.keyset_store().current().to_public_jwks();
    let mut res = http::Response::new(body.into_bytes());
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    res
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

fn token_response(pair: &TokenPair) -> AdminResponse {
    json_response(
        StatusCode::OK,
        pair,
        &[
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
    )
}

fn invalid_client(why: &str) -> ApiError {
    ApiError {
        challenge: Some(r#"Basic realm="token""#),
        ..ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::InvalidClient, why)
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
    let bucket = s.inner.throttle.bucket(ip, &Identity::Id(&id));
    if let Some(wait) = s.inner.throttle.blocked(bucket, s.now()) {
        return Err(ApiError::throttled(wait));
    }
    match s.client(&id, &secret) {
        Some(c) => Ok(Some(c)),
        None => {
            s.auth_failed(bucket, AdminFailure::ClientAuth);
            Err(invalid_client("unknown client or bad secret"))
        }
    }
}

/// One of the bounded token-request slots; freed on drop.
struct GrantSlot<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for GrantSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

fn grant_slot(s: &AdminState) -> Result<GrantSlot<'_>, ApiError> {
    let grants = &s.inner.grants;
    if grants.fetch_add(1, std::sync::atomic::Ordering::AcqRel) >= s.inner.max_grants {
        grants.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        return Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TemporarilyUnavailable,
                "too many token requests in progress; retry shortly",
            )
        });
    }
    Ok(GrantSlot(grants))
}

fn token(s: &AdminState, headers: &HeaderMap, peer: Option<IpAddr>, b: Body<'_>) -> ApiResult {
    let _slot = grant_slot(s)?;
    let ip = peer.unwrap_or(SHARED_BUCKET);
    // The Basic identity, before the body is read (a form's client_id is checked after).
    if let (_, Some(id)) = claimed_identity(headers)
        && let Some(wait) = s
            .inner
            .throttle
            .blocked(s.inner.throttle.bucket(ip, &Identity::Id(&id)), s.now())
    {
        return Ok(throttled(wait));
    }
    let form: TokenForm = form_body(b)?;
    let issuer = s.inner.issuer.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnsupportedGrantType,
            "no issuer configured",
        )
    })?;
    match form.grant_type.as_deref() {
        Some("client_credentials") => {
            let client = token_client(s, headers, &form, ip)?
                .ok_or_else(|| invalid_client("client authentication required"))?;
            // The requested scope must be within the client's.
            let scope = match (&form.scope, &client.scope) {
                (None, s) => s.clone(),
                (Some(req), Some(allowed)) => {
                    let allowed: Vec<&str> = allowed.split(' ').collect();
                    if req.split(' ').any(|r| !allowed.contains(&r)) {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            ErrorCode::InvalidScope,
                            "scope exceeds the client's",
                        ));
                    }
                    Some(req.clone())
                }
                (Some(_), None) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidScope,
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
            let client = token_client(s, headers, &form, ip)?;
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
            ErrorCode::UnsupportedGrantType,
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
    token.starts_with(Issuer::REFRESH_PREFIX)
}

fn unauthorized_client(why: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::UnauthorizedClient, why)
}

/// RFC 7009. The token's own shape decides its type (a wrong hint is ignored, §2.1); an
/// invalid, expired or already revoked token needs nothing and gets 200 (§2.2); a client
/// may revoke only its own tokens; a valid access token that names neither `jti` nor a
/// family cannot be revoked alone (`unsupported_token_type`). The audit says what was
/// done. Reads go through `Validator::inspect`: no alert, no API counters.
fn revoke(s: &AdminState, caller: &Caller, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
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
            Ok(v) => revoke_access(s, &v, caller)?,
            Err(e) if e.kind() == ValidationErrorKind::Revoked => "already revoked",
            Err(e) if e.kind() == ValidationErrorKind::Expired => "expired, nothing to revoke",
            Err(_) => "invalid token, nothing to revoke",
        }
    };
    s.audit(
        AuditAction::ClientRequest,
        format!("revoke token {fp}: {done}"),
    );
    Ok(http::Response::new(Vec::new()))
}

/// Whether `client` may add one more revocation-list entry through RFC 7009: within its
/// quota for the window, and never into the tenth of the list kept for admin
/// revocations, refresh-token reuse and the fleet (security review 3, MEDIUM 9).
fn client_revocation_allowed(s: &AdminState, client: &str) -> Result<(), ApiError> {
    let list = s.inner.validator.revocations();
    let reserve = list.capacity() / 10;
    if list.len().saturating_add(reserve) >= list.capacity() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TemporarilyUnavailable,
            "the revocation list's room for client revocations is used up",
        ));
    }
    let (max, window) = s.inner.client_quota;
    let now = s.now();
    let mut map = s
        .inner
        .client_revocations
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Keyed by authenticated client ids only: as many entries as configured clients.
    let entry = map.entry(client.to_owned()).or_insert((now, 0));
    if entry.0.saturating_add(window) <= now {
        *entry = (now, 0);
    }
    if entry.1 >= max {
        let mut e = ApiError::throttled(entry.0.saturating_add(window) - now);
        e.description = "this client's revocation quota is used up; retry later".into();
        return Err(e);
    }
    entry.1 += 1;
    Ok(())
}

fn revoke_access(
    s: &AdminState,
    v: &crate::validate::Verified,
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
    if let Some(client) = caller.client()
        && (c.jti.is_some() || c.family.is_some())
    {
        client_revocation_allowed(s, client)?;
    }
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
        ErrorCode::UnsupportedTokenType,
        "the token has no jti nor family and cannot be revoked alone: revoke its subject",
    ))
}

fn introspect(s: &AdminState, caller: &Caller, b: Body<'_>) -> ApiResult {
    let form: TokenOnly = form_body(b)?;
    let token = form.token()?;
    let body = if is_refresh_token(token) {
        let info = match &s.inner.issuer {
            Some(issuer) if caller.is_admin() => {
                issuer.inspect_refresh(token).map_err(|e| unavailable(&e))?
            }
            _ => None,
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
    s.audit_by(
        AuditAction::ClientRequest,
        format!("introspect token {}", s.inner.validator.fingerprint(token)),
        caller.actor(),
        None,
    );
    Ok(json_response(
        StatusCode::OK,
        &body,
        &[(header::CACHE_CONTROL, "no-store")],
    ))
}

fn access_introspection(v: &crate::validate::Verified) -> Value {
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

fn revocation_error(e: &RevocationError) -> ApiError {
    match e.kind() {
        RevocationErrorKind::InvalidId => ApiError::bad("empty or over-long identifier"),
        RevocationErrorKind::Full => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::RevocationListFull,
            e.to_string(),
        ),
        _ => unavailable(e),
    }
}

/// Records an admin revocation: checked id and `until`, one audit event, one answer
/// (with the `until` in force).
/// The audit record of an admin revocation: what was revoked (the jti or family id; a
/// subject goes in the event's subject field, which the auditor's subject policy governs).
fn audit_revocation(s: &AdminState, target: &RevocationTarget, until: u64) {
    match target {
        RevocationTarget::Jti(id) => s.audit(
            AuditAction::Admin,
            format!("revoke jti {id:?} until {until}"),
        ),
        RevocationTarget::Family(id) => s.audit(
            AuditAction::Admin,
            format!("revoke family {id:?} until {until}"),
        ),
        RevocationTarget::Subject {
            subject,
            issued_before,
        } => s.audit_by(
            AuditAction::Admin,
            format!("revoke subject, tokens issued up to {issued_before}, until {until}"),
            "admin",
            Some(subject),
        ),
    }
}

fn apply_revocation(
    s: &AdminState,
    target: RevocationTarget,
    until: u64,
    what: &'static str,
) -> ApiResult {
    s.inner
        .validator
        .revocations()
        .revoke(Revocation {
            target: target.clone(),
            until,
        })
        .map_err(|e| revocation_error(&e))?;
    audit_revocation(s, &target, until);
    Ok(json_response(
        StatusCode::OK,
        &json!({"revoked": what, "until": until}),
        &[],
    ))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > crate::revoke::RevocationList::MAX_ID_LEN {
        return Err(ApiError::bad("empty or over-long identifier"));
    }
    Ok(())
}

fn revoke_jti(s: &AdminState, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    let body: JtiBody = json_body(b)?;
    // Without an `until`, at least as long as any access token of the issuer can live
    // (plus leeway): a default shorter than the token's life would let it come back.
    let until = match (body.until, &s.inner.issuer) {
        (None, Some(issuer)) => {
            let life =
                issuer.access_lifetime() + s.inner.validator.leeway() + Duration::from_secs(60);
            s.until(None)?.max(s.now().saturating_add(life.as_secs()))
        }
        (asked, _) => s.until(asked)?,
    };
    apply_revocation(s, RevocationTarget::Jti(body.jti), until, "jti")
}

/// Every token of a subject issued at or before `issued_before` (default: now). With an
/// issuer, through it: refresh tokens are covered too, and the revocation is kept until
/// every token it covers has expired, whatever `until` asked.
fn revoke_subject(s: &AdminState, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    let body: SubjectBody = json_body(b)?;
    check_id(&body.subject)?;
    let now = s.now();
    let issued_before = body.issued_before.unwrap_or(now);
    // A cut-off beyond any token's life is a typo, and past SystemTime's range a panic.
    if issued_before > now.saturating_add(MAX_CUT_OFF_AHEAD_SECS) {
        return Err(ApiError::bad(
            "`issued_before` is more than ten years ahead",
        ));
    }
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
    keep_until(s, target, asked, covered, "subject")
}

/// A whole family. With an issuer, the one family-revocation path: refresh store and
/// revocation list, for the family's whole life.
fn revoke_family(s: &AdminState, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
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
        s,
        RevocationTarget::Family(body.family),
        asked,
        covered,
        "family",
    )
}

/// How far ahead a subject revocation's cut-off may lie (ten years).
const MAX_CUT_OFF_AHEAD_SECS: u64 = 10 * 365 * 86_400;

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
            audit_revocation(s, &target, c);
            Ok(json_response(
                StatusCode::OK,
                &json!({"revoked": what, "until": c}),
                &[],
            ))
        }
        _ => apply_revocation(s, target, asked, what),
    }
}

fn kids(ks: &Keyset) -> Vec<String> {
    ks.keys().map(|k| k.kid().to_owned()).collect()
}

/// The candidate of a snapshot, as the admin API shows it.
fn candidate_json(snap: &KeysetSnapshot) -> Value {
    match snap.candidate() {
        None => Value::Null,
        Some((ks, mode)) => {
            let mut v = json!({
                "mode": mode.as_str(),
                "label": ks.label(),
                "kids": kids(ks),
                "signing_kid": ks.signing_key().map(|k| k.kid()),
            });
            match mode {
                RolloutMode::Canary => v["share"] = json!(snap.canary_share()),
                _ => {
                    if let Some(st) = snap.shadow_stats() {
                        v["shadow"] =
                            json!({"sample": st.sample(), "regressions": st.regressions()});
                    }
                }
            }
            v
        }
    }
}

fn snapshot_json(snap: &KeysetSnapshot, current: u64) -> Value {
    json!({
        "version": snap.version(),
        "current": snap.version() == current,
        "label": snap.label(),
        "created_at": snap.created_at().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "kids": kids(snap.active()),
        "signing_kid": snap.signing_kid(),
        "staged_kids": snap.staged().map(kids),
        "rollout": candidate_json(snap),
    })
}

fn keysets(s: &AdminState) -> AdminResponse {
    let store = s.inner.validator.keyset_store();
    let current = store.current().version();
    let list: Vec<Value> = store
        .history()
        .iter()
        .map(|snap| snapshot_json(snap, current))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "current": current,
            "generation": store.generation(),
            "quarantined": store.quarantined(),
            "keysets": list,
        }),
        &[],
    )
}

fn rollout(s: &AdminState) -> AdminResponse {
    let store = s.inner.validator.keyset_store();
    let snap = store.current();
    let policy = store.retirement();
    let grace = match policy {
        crate::keys::Retirement::Grace(d) | crate::keys::Retirement::RenewRequired(d) => {
            Some(d.as_secs())
        }
        _ => None,
    };
    let guard = s.inner.guard.as_ref().map(|g| {
        let (watching, last_good) = g.watching();
        json!({"watching": watching, "last_good": last_good, "rollbacks": g.rollbacks()})
    });
    let mut body = json!({
        "current": snap.version(),
        "generation": store.generation(),
        "label": snap.label(),
        "signing_kid": snap.signing_kid(),
        "rollout": candidate_json(&snap),
        "quarantined": store.quarantined(),
        "retirement": {"policy": policy.as_str(), "seconds": grace, "retired_kids": store.retired_kids()},
        "guard": guard,
    });
    let revoked = store.revoked_keys();
    if !revoked.is_empty() {
        body["revoked_keys"] = json!(revoked);
    }
    json_response(StatusCode::OK, &body, &[])
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PublishQuery {
    label: Option<String>,
    keep_signing: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StageQuery {
    label: Option<String>,
    share: Option<f64>,
    mode: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ShareQuery {
    share: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PromoteQuery {
    version: Option<u64>,
    min_shadow_sample: Option<u64>,
}

/// A public JWKS from an admin request: every entry must load, and none may carry
/// private or symmetric key material.
fn public_keyset(b: Body<'_>) -> Result<Keyset, ApiError> {
    let b = body(b)?;
    let text = std::str::from_utf8(b).map_err(|_| ApiError::bad("body is not UTF-8"))?;
    let ks = Keyset::from_jwks_json(text).map_err(|e| {
        let why = std::error::Error::source(&e)
            .map_or_else(|| e.to_string(), |cause| format!("{e}: {cause}"));
        if e.entry_error()
            .is_some_and(|k| k.kind() == KeyErrorKind::PrivateMaterial)
        {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::PrivateKeyMaterial,
                format!("bad JWKS: {why}"),
            )
        } else {
            ApiError::bad(format!("bad JWKS: {why}"))
        }
    })?;
    if let Some(w) = ks.warnings().first() {
        let error = if w.kind() == KeyErrorKind::PrivateMaterial {
            ErrorCode::PrivateKeyMaterial
        } else {
            ErrorCode::InvalidRequest
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
            ErrorCode::PrivateKeyMaterial,
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

fn query<T: for<'de> Deserialize<'de>>(q: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(q.unwrap_or(""))
        .map_err(|e| ApiError::bad(format!("bad query: {e}")))
}

/// Publishes the public JWKS of the request. Keys from HTTP cannot sign, so the current
/// signing key is kept (`keep_signing=true`), or explicitly dropped (`keep_signing=false`:
/// a verify-only deploy, the issuer cannot sign until a rollback); with an issuer and
/// neither, the publish is refused (409 `no_signing_key`) rather than leaving `/token`
/// broken.
fn publish(s: &AdminState, q: Option<&str>, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    let q: PublishQuery = query(q)?;
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
                ErrorCode::NoSigningKey,
                "this keyset would leave the issuer without a signing key: add \
                 ?keep_signing=true to keep the current one, or ?keep_signing=false to \
                 publish a verify-only keyset",
            ));
        }
        _ => ks,
    };
    let v = store.publish(with_label(ks, q.label));
    s.audit(AuditAction::KeysetPublished, format!("publish v{v}"));
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"version": v}),
        &[],
    ))
}

/// Stages the public JWKS of the request as a candidate: a canary (`share` percent of
/// clients, 0 by default: its keys verify for everyone, the current keys sign) or a
/// shadow (`mode=shadow`: judged beside the current keys, affecting no response).
fn stage(s: &AdminState, q: Option<&str>, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    if q.is_some_and(|q| q.split('&').any(|p| p.starts_with("keep_signing="))) {
        return Err(ApiError::bad("keep_signing applies to publish only"));
    }
    let q: StageQuery = query(q)?;
    let mode = match q.mode.as_deref() {
        None | Some("canary") => RolloutMode::Canary,
        Some("shadow") => RolloutMode::Shadow,
        Some(_) => return Err(ApiError::bad("mode must be canary or shadow")),
    };
    if mode == RolloutMode::Shadow && q.share.is_some() {
        return Err(ApiError::bad("a shadow candidate takes no share"));
    }
    let ks = with_label(public_keyset(b)?, q.label);
    let store = s.inner.validator.keyset_store();
    let v = match mode {
        RolloutMode::Shadow => store.stage_shadow(ks),
        _ => store.stage_canary(ks, q.share.unwrap_or(0.0)),
    }
    .map_err(|e| keyset_error(&e))?;
    let share = store.current().canary_share();
    let detail = match mode {
        RolloutMode::Shadow => format!("stage v{v} shadow"),
        _ => format!("stage v{v} canary {share}%"),
    };
    s.audit(AuditAction::KeysetStaged, detail);
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"version": v, "mode": mode.as_str()}),
        &[],
    ))
}

fn share(s: &AdminState, q: Option<&str>) -> ApiResult {
    audit_ready(s)?;
    let q: ShareQuery = query(q)?;
    let share = q.share.ok_or_else(|| ApiError::bad("missing share"))?;
    let store = s.inner.validator.keyset_store();
    let v = store.set_share(share).map_err(|e| keyset_error(&e))?;
    s.audit(AuditAction::KeysetShare, format!("canary v{v} at {share}%"));
    Ok(json_response(
        StatusCode::OK,
        &json!({"version": v, "share": store.current().canary_share()}),
        &[],
    ))
}

fn release(s: &AdminState, version: &str) -> ApiResult {
    audit_ready(s)?;
    let version: u64 = version
        .parse()
        .map_err(|_| ApiError::bad("version must be a number"))?;
    if !s.inner.validator.keyset_store().release(version) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownVersion,
            format!("keyset version {version} is not quarantined"),
        ));
    }
    s.audit(AuditAction::KeysetReleased, format!("release v{version}"));
    Ok(json_response(
        StatusCode::OK,
        &json!({"released": version}),
        &[],
    ))
}

fn revoke_key(s: &AdminState, kid: &str) -> ApiResult {
    if kid.is_empty() || kid.len() > 256 || kid.chars().any(char::is_control) {
        return Err(ApiError::bad("kid must be 1 to 256 printable characters"));
    }
    keyset_change(
        s,
        AuditAction::KeyRevoked,
        &format!("revoke key {kid:?} (compromised); current"),
        |store| store.revoke_key(kid),
    )
}

fn keyset_error(e: &KeysetError) -> ApiError {
    let (status, code) = match e.kind() {
        KeysetErrorKind::UnknownVersion => (StatusCode::NOT_FOUND, ErrorCode::UnknownVersion),
        KeysetErrorKind::KidConflict | KeysetErrorKind::KeyRevoked => {
            (StatusCode::CONFLICT, ErrorCode::KidConflict)
        }
        KeysetErrorKind::Quarantined => (StatusCode::CONFLICT, ErrorCode::Quarantined),
        KeysetErrorKind::InvalidShare => (StatusCode::BAD_REQUEST, ErrorCode::InvalidShare),
        KeysetErrorKind::RolloutInProgress => (StatusCode::CONFLICT, ErrorCode::RolloutInProgress),
        KeysetErrorKind::ShadowRegressions | KeysetErrorKind::ShadowSampleTooSmall => {
            (StatusCode::CONFLICT, ErrorCode::ShadowRegressions)
        }
        _ => (StatusCode::CONFLICT, ErrorCode::Conflict),
    };
    ApiError::new(status, code, e.to_string())
}

/// Refuses (503) an operation that would change state while its audit event could not be
/// queued (a stalled audit sink has filled the control lane): nothing changes unaudited,
/// and nothing waits on audit I/O.
fn audit_ready(s: &AdminState) -> Result<(), ApiError> {
    match s.inner.validator.observer() {
        Some(o) if !o.audit_ready() => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TemporarilyUnavailable,
            "the audit trail is not keeping up; nothing was changed",
        )),
        _ => Ok(()),
    }
}

/// A keyset change that names the version it leads to: change, audit, answer.
fn keyset_change(
    s: &AdminState,
    action: AuditAction,
    verb: &str,
    change: impl FnOnce(&KeysetStore) -> Result<u64, KeysetError>,
) -> ApiResult {
    audit_ready(s)?;
    let v = change(s.inner.validator.keyset_store()).map_err(|e| keyset_error(&e))?;
    s.audit(action, format!("{verb} v{v}"));
    Ok(json_response(StatusCode::OK, &json!({"version": v}), &[]))
}

fn promote(s: &AdminState, q: Option<&str>) -> ApiResult {
    let q: PromoteQuery = query(q)?;
    keyset_change(
        s,
        AuditAction::KeysetPromoted,
        "promote to",
        |store| match q.version {
            Some(v) => store.promote_version(v, q.min_shadow_sample),
            None => store.promote_checked(q.min_shadow_sample),
        },
    )
}

fn rollback(s: &AdminState) -> ApiResult {
    keyset_change(s, AuditAction::KeysetRollback, "rollback to", |store| {
        store.rollback()
    })
}

fn rollback_to(s: &AdminState, version: &str) -> ApiResult {
    let version: u64 = version
        .parse()
        .map_err(|_| ApiError::bad("version must be a number"))?;
    keyset_change(s, AuditAction::KeysetRollback, "rollback to", |store| {
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

fn mint(s: &AdminState, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    let body: MintBody = json_body(b)?;
    let issuer = s.inner.issuer.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no issuer configured",
        )
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
            seed: 7,
            by_addr: Mutex::new(HashMap::new()),
        };
        let at = |ip: IpAddr| t.bucket(ip, &Identity::Bearer);
        for i in 0..(MAX_TRACKED as u32 + 5_000) {
            t.failed(at(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))), 100);
        }
        assert!(t.tracked() <= MAX_TRACKED + 1, "{}", t.tracked());
        // The first addresses are tracked on their own; an address past the bound shares
        // the bucket (which is now full of failures).
        let first = IpAddr::V4(Ipv4Addr::from(0x0a00_0000));
        assert_eq!(t.blocked(at(first), 100), None);
        t.failed(at(first), 100);
        assert_eq!(t.blocked(at(first), 100), Some(60));
        let late = IpAddr::V4(Ipv4Addr::from(0x0b00_0000));
        assert!(t.blocked(at(late), 100).is_some());
        // After the window, lapsed entries make room again.
        t.failed(at(late), 200);
        assert!(t.tracked() <= MAX_TRACKED + 1);
        assert_eq!(t.blocked(at(late), 200), None);
        // Another identity from the same address has a bucket of its own.
        assert_eq!(
            t.blocked(t.bucket(first, &Identity::Id("client")), 100),
            None
        );
    }
}
