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
//! | `GET /audit` | [`AdminState::audit_records`]: the audit trail's records, filtered and paginated (`?fingerprint=…&subject=…&since=…&after=…`) | [`Access::ADMIN`] |
//! | `GET /fleet` | [`AdminState::fleet`]: this node's link with the fleet: connected, last sync, generation, epoch changes, queue | [`Access::ADMIN`] |
//! | `GET /console` | [`AdminState::console_page`]: the operator console ([`console`]) | anyone (the page holds no data) |
//! | `GET /console/assets/{file}` | [`AdminState::console_asset`]: its script and style | anyone |
//! | `GET /console/events` | [`AdminState::console_stream`]: the console's live Server-Sent Events | [`Access::ADMIN`] |
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

mod auth;
pub mod console;
mod keysets;
mod oauth;
mod revocations;
pub mod routes;

#[allow(clippy::wildcard_imports)]
use auth::*;
#[allow(clippy::wildcard_imports)]
use keysets::*;
#[allow(clippy::wildcard_imports)]
use oauth::*;
#[allow(clippy::wildcard_imports)]
use revocations::*;

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
    fleet: Option<KeySource>,
    audit: Option<AuditSearch>,
    console: Option<crate::observe::console::ConsoleFeed>,
    console_tick: Duration,
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
            fleet: None,
            audit: None,
            console: None,
            console_tick: console::TICK,
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
    fleet: Option<KeySource>,
    audit: Option<AuditSearch>,
    console: Option<crate::observe::console::ConsoleFeed>,
    console_tick: Duration,
}

/// A status report of where keys come from (`GET /keysets/remote`).
type KeySource = Arc<dyn Fn() -> Value + Send + Sync>;

/// What answers `GET /audit`: the query string in, a page of records as JSON out, or the
/// filter at fault (`Err(Some(field))`, a 400) or an unavailable store (`Err(None)`, 503).
type AuditSearch = Arc<dyn Fn(&str) -> Result<Value, Option<&'static str>> + Send + Sync>;

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

    /// This node's link with the fleet, for `GET /fleet` (and the console): a function
    /// that reports it as JSON, called on each request (the gateway reports
    /// `RedisFleet::status`).
    pub fn fleet_status(mut self, status: impl Fn() -> Value + Send + Sync + 'static) -> Self {
        self.fleet = Some(Arc::new(status));
        self
    }

    /// Reports these remote keys' status at `GET /keysets/remote`: when they were last
    /// fetched, from where, what was skipped, what failed.
    #[cfg(feature = "remote")]
    pub fn remote_keys(self, keys: crate::keys::remote::RemoteKeys) -> Self {
        self.key_source(move || serde_json::to_value(keys.status()).unwrap_or(Value::Null))
    }

    /// What answers `GET /audit`: a function from the query string to a page of records
    /// as JSON, or the filter at fault (`Err(Some(field))`: 400 naming it) or `Err(None)`
    /// (503: the store is unavailable). See [`audit_store`](Self::audit_store) for the
    /// PostgreSQL store. Without one, `GET /audit` answers 404 `not_found`.
    pub fn audit_search(
        mut self,
        search: impl Fn(&str) -> Result<Value, Option<&'static str>> + Send + Sync + 'static,
    ) -> Self {
        self.audit = Some(Arc::new(search));
        self
    }

    /// Answers `GET /audit` from this PostgreSQL audit store (feature `postgres`):
    /// [`PgAuditStore::search`](crate::audit_store::PgAuditStore::search) — filters,
    /// pages of [`AuditRow`](crate::audit_store::AuditRow)s and the next cursor, or a
    /// named report (`report=token|subject|rejections`).
    #[cfg(feature = "postgres")]
    pub fn audit_store(self, store: Arc<crate::audit_store::PgAuditStore>) -> Self {
        self.audit_search(move |qs| audit_answer(&store, qs))
    }

    /// The rollout guard watching the store, so `GET /keysets/rollout` shows what it
    /// watches and how often it rolled back.
    pub fn rollout_guard(mut self, guard: RolloutGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// The console's live feed (`GET /console/events`): the same [`ConsoleFeed`](crate::observe::console::ConsoleFeed)
    /// the validator's (and issuer's) observer includes. Without one the console's
    /// pages are served but its stream answers 404.
    pub fn console(mut self, feed: crate::observe::console::ConsoleFeed) -> Self {
        self.console = Some(feed);
        self
    }

    /// How often a console stream sends its counters (default [`console::TICK`], a
    /// second; at least 10 ms). Its streams live [`console::MAX_TICKS`] ticks.
    pub fn console_tick(mut self, tick: Duration) -> Self {
        self.console_tick = tick.max(Duration::from_millis(10));
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
                fleet: self.fleet,
                audit: self.audit,
                console: self.console,
                console_tick: self.console_tick,
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

    /// `GET /fleet` (admin): this node's link with the fleet
    /// ([`AdminStateBuilder::fleet_status`]); 404 `not_found` when none is configured.
    pub fn fleet(&self) -> AdminResponse {
        let Some(status) = &self.inner.fleet else {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "this node is not in a fleet (the gateway's --redis)",
            )
            .into_response();
        };
        json_response(
            StatusCode::OK,
            &status(),
            &[(header::CACHE_CONTROL, "no-store")],
        )
    }

    /// `GET /audit` (admin): `query` holds the filters
    /// ([`AdminStateBuilder::audit_search`]); a page of records, newest first, with the
    /// cursor of the next (`{"rows": […], "next": "…"}`). 400 `invalid_request` naming a
    /// malformed or unbounded filter; 503 while the store is unavailable; 404 without one.
    pub fn audit_records(&self, query: Option<&str>) -> AdminResponse {
        let Some(search) = &self.inner.audit else {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no audit store is configured (the gateway's --audit-db)",
            )
            .into_response();
        };
        match search(query.unwrap_or("")) {
            Ok(page) => json_response(
                StatusCode::OK,
                &page,
                &[(header::CACHE_CONTROL, "no-store")],
            ),
            Err(Some(field)) => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                format!("invalid audit filter: {field}"),
            )
            .into_response(),
            Err(None) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TemporarilyUnavailable,
                "the audit store is unavailable",
            )
            .into_response(),
        }
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

/// What [`AdminStateBuilder::audit_store`] answers `GET /audit` with: the store's
/// [`search`](crate::audit_store::PgAuditStore::search) as JSON, `Err(Some(field))` for a
/// bad filter (400 naming it), `Err(None)` when the store failed (503). For an
/// [`audit_search`](AdminStateBuilder::audit_search) that does something first (the
/// gateway flushes its usage rollup and audit queue, so an answer includes the latest
/// uses).
///
/// # Errors
/// As above.
#[cfg(feature = "postgres")]
pub fn audit_answer(
    store: &crate::audit_store::PgAuditStore,
    query_string: &str,
) -> Result<Value, Option<&'static str>> {
    use crate::audit_store::AuditStoreErrorKind;
    match store.search(query_string) {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == AuditStoreErrorKind::InvalidFilter => Err(e.field()),
        Err(_) => Err(None),
    }
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
