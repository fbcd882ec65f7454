//! Runnable examples for tokenlife (`cargo run -p examples --example NAME`) and the
//! gateway they share with their tests.
//!
//! - `gateway`: the main job. An axum API protected by [`TokenLifeLayer`], the admin
//!   router on its own port, Prometheus `/metrics`; prints the curl lines to try it.
//! - `actix_gateway`: the same on actix-web ([`start_actix`]).
//! - `lifecycle`: one token's life on a manual clock, with audit lines and metrics.
//! - `quickstart`: the core API on the console.

pub mod cli;
pub mod incident;
pub mod nginx;

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tokenlife_core::admin::audit_answer;
use tokenlife_core::audit_store::{PgAuditSink, PgAuditStore};
use tokenlife_core::fleet::{
    FleetConfig, FleetTasks, RedisFleet, RedisLastGood, RedisRefreshStore,
};
use tokenlife_core::keys::remote::RemoteKeys;
use tokenlife_core::observe::audit::Auditor;
use tokenlife_core::observe::console::ConsoleFeed;
use tokenlife_core::observe::usage::UsageRollup;
use tokenlife_core::rollout::{GuardPolicy, RolloutGuard};
use tokenlife_core::{
    Algorithm, Issuer, Key, Keyset, KeysetStore, Monitor, RevocationList, Validator,
};
use tokenlife_tower::admin::{self, AdminState};
use tokenlife_tower::{Claims, TokenLifeLayer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;
use zeroize::Zeroizing;

/// A secret string: zeroized on drop, never shown by `Debug`.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Limits on each listener, as a production service sets them.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Longest wait for a request's headers (a half-sent request is dropped after it).
    pub header_read_timeout: Duration,
    /// Longest time a request may take once its headers are in (408 after it).
    pub request_timeout: Duration,
    /// Most open connections; further ones wait in the accept queue.
    pub max_connections: usize,
    /// Most open connections from one client address (default 64): one client dripping
    /// requests cannot hold every slot. Past it, a new connection from that address is
    /// closed at once (axum: before it is served; actix-web: shut down in `on_connect`).
    pub max_connections_per_address: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_address: 64,
        }
    }
}

/// How the gateway is set up (flags and env in the `gateway` example).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where the protected API listens.
    pub api_addr: SocketAddr,
    /// Where the admin router and `/metrics` listen.
    pub admin_addr: SocketAddr,
    /// The `iss` of issued tokens (and the one accepted).
    pub issuer: String,
    /// The `aud` of issued tokens (and the one accepted).
    pub audience: String,
    /// The admin credential.
    pub admin_key: Secret,
    /// The demo client's id.
    pub client_id: String,
    /// The demo client's secret.
    pub client_secret: Secret,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// How long a rotated refresh token may be retried by its client whose answer was
    /// lost ([`IssuerBuilder::retry_grace`](tokenlife_core::issue::IssuerBuilder::retry_grace)); zero turns retries off.
    pub refresh_retry_grace: Duration,
    /// How long after a refresh token's rotation presenting it again counts as a
    /// concurrent duplicate (refused, nothing revoked) rather than reuse
    /// ([`IssuerBuilder::reuse_grace`](tokenlife_core::issue::IssuerBuilder::reuse_grace)).
    pub refresh_reuse_grace: Duration,
    /// Write audit events as JSON lines to stdout.
    pub audit_stdout: bool,
    /// Limits on both listeners.
    pub limits: ServeLimits,
    /// The signing key as a PKCS#8 PEM (ES256); `None`: a fresh one. Every node of a
    /// fleet needs the same one.
    pub signing_key_pem: Option<Secret>,
    /// Fleet mode: revocations, keysets and refresh tokens shared through Redis.
    pub fleet: Option<FleetSettings>,
    /// External identity providers (issuer URLs) whose tokens the API accepts too,
    /// with their keys from OpenID discovery, refreshed in the background.
    pub external_issuers: Vec<String>,
    /// After an unknown kid wakes an external issuer's key refresh, how long that same
    /// kid wakes none again.
    pub unknown_kid_cooldown: Duration,
    /// Where each external issuer's last good JWKS is kept (one file per issuer), so a
    /// restart while its provider is down begins from those keys.
    pub jwks_cache: Option<std::path::PathBuf>,
    /// The audit trail also goes to this PostgreSQL database, where `GET /audit` and
    /// `tokenlife audit` question it.
    pub audit_db: Option<AuditDb>,
    /// This node's name in the audit trail (and the fleet's).
    pub node_id: String,
    /// Alerts also go to this webhook.
    pub alert_webhook: Option<AlertWebhook>,
}

/// Where the gateway's alerts are POSTed.
#[derive(Debug, Clone)]
pub struct AlertWebhook {
    /// The endpoint (`https://…`).
    pub url: String,
    /// The HMAC-SHA256 signing secret (`X-Tokenlife-Signature`), if any.
    pub secret: Option<Secret>,
    /// Slack-compatible `{"text": …}` payloads.
    pub slack: bool,
}

impl GatewayConfig {
    /// The gateway on in-memory defaults, both listeners on free ports of 127.0.0.1:
    /// issuer `https://gateway.example.com`, audience `api://orders`, the client
    /// `demo-client`, 15-minute access tokens, the default graces and limits, no fleet,
    /// no external issuer, no audit database, no webhook. Change what a run needs with
    /// struct update syntax.
    ///
    /// # Panics
    /// Never: the addresses are constants.
    pub fn local(admin_key: Secret, client_secret: Secret) -> Self {
        Self {
            api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: "https://gateway.example.com".into(),
            audience: "api://orders".into(),
            admin_key,
            client_id: "demo-client".into(),
            client_secret,
            access_ttl: Duration::from_secs(900),
            refresh_retry_grace: Duration::from_secs(30),
            refresh_reuse_grace: Duration::from_secs(2),
            audit_stdout: false,
            limits: ServeLimits::default(),
            signing_key_pem: None,
            external_issuers: Vec::new(),
            unknown_kid_cooldown: Duration::from_secs(60),
            jwks_cache: None,
            audit_db: None,
            node_id: "gateway".into(),
            fleet: None,
            alert_webhook: None,
        }
    }
}

/// The gateway's durable audit trail.
#[derive(Debug, Clone)]
pub struct AuditDb {
    /// `postgres://…` (it may hold a password: never shown in `Debug`).
    pub url: Secret,
    /// While the database is down, batches wait in a spool file in this directory
    /// (bounded by `spool_max_bytes`) and are replayed in order when it is back.
    pub spool: Option<std::path::PathBuf>,
    /// The spool's bound.
    pub spool_max_bytes: u64,
    /// Record every successful validation as a row, instead of one row per token per
    /// minute.
    pub every_validation: bool,
}

impl AuditDb {
    /// The trail at `url`: no spool, usage rolled up per minute.
    pub fn new(url: Secret) -> Self {
        Self {
            url,
            spool: None,
            spool_max_bytes: 1 << 30,
            every_validation: false,
        }
    }
}

/// Where a gateway's fleet lives.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// `redis://host:port/` (a password in it never shows in `Debug`).
    pub redis_url: Secret,
    /// Key and channel prefix, with a `{hash tag}`.
    pub prefix: String,
    /// This node's name.
    pub node_id: String,
}

/// A random URL-safe secret (for default credentials).
///
/// # Panics
/// If the OS random source fails.
pub fn random_secret() -> Secret {
    let mut b = [0u8; 18];
    getrandom::fill(&mut b).expect("OS random source");
    let s = Secret::new(b.iter().map(|x| format!("{x:02x}")).collect::<String>());
    zeroize::Zeroize::zeroize(&mut b);
    s
}

/// Serves `app` (a `Router`, or any service that answers every request) on `listener`
/// with `limits`: hyper's header-read timeout (on tokio's timer), a request timeout
/// (408), and at most `max_connections` connections at once. Each request carries
/// `ConnectInfo<SocketAddr>`.
pub async fn serve<S>(listener: TcpListener, app: S, limits: ServeLimits)
where
    S: Service<Request, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = AddressSlots::new(limits.max_connections_per_address);
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        // One address's share of the slots: past it, closed at once.
        let Some(slot) = per_address.take(addr.ip()) else {
            drop(stream);
            continue;
        };
        let app = app.clone();
        let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(addr));
            let mut app = app.clone();
            // The request timeout around the service's answer (not the body streamed
            // after it), in the connection's service: no middleware layer per route.
            async move {
                let answer = tokio::time::timeout(limits.request_timeout, async {
                    std::future::poll_fn(|cx| app.poll_ready(cx)).await?;
                    app.call(req.map(axum::body::Body::new)).await
                });
                Ok::<_, Infallible>(match answer.await {
                    Ok(res) => res.unwrap_or_else(|e: Infallible| match e {}),
                    Err(_) => (StatusCode::REQUEST_TIMEOUT, "request timed out\n").into_response(),
                })
            }
        });
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                // A handler may take the connection over (a proxied WebSocket).
                .with_upgrades();
            let _ = conn.await;
            drop(slot);
            drop(permit);
        });
    }
}

/// Open connections per client address, each at most `max`: the map holds only
/// addresses with an open connection, so it is bounded by the connection cap.
#[derive(Debug, Clone)]
struct AddressSlots {
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    max: usize,
}

/// One open connection's place in its address's share; given back on drop.
#[derive(Debug)]
struct AddressSlot {
    slots: AddressSlots,
    ip: std::net::IpAddr,
}

impl AddressSlots {
    fn new(max: usize) -> Self {
        Self {
            open: Arc::default(),
            max: max.max(1),
        }
    }

    /// A slot for a new connection from `ip`, or `None` when that address holds its share.
    fn take(&self, ip: std::net::IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// actix-web's `on_connect` for [`ServeLimits::max_connections_per_address`]: a
/// connection past its address's share is shut down before a byte is read; the others
/// carry their slot in the connection's data, given back when actix drops it.
fn actix_address_cap(
    slots: AddressSlots,
) -> impl Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) + Send + Sync + 'static {
    move |conn, data| {
        let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        match slots.take(peer.ip()) {
            Some(slot) => {
                data.insert(slot);
            }
            None => {
                let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Base URL of the API.
    pub api_url: String,
    /// Base URL of the admin router.
    pub admin_url: String,
    /// The config it runs with.
    pub config: GatewayConfig,
    /// A public JWKS of a fresh key that signs nothing here: publishing it is a "bad deploy".
    pub bad_deploy_jwks: String,
    /// The keyset store behind both listeners (for drills that watch it change).
    pub store: KeysetStore,
    /// The rollout guard watching the store.
    pub guard: RolloutGuard,
    /// In fleet mode, the fleet and its running tasks.
    pub fleet: Option<(RedisFleet, Option<FleetTasks>)>,
}

#[derive(Deserialize)]
struct OrderClaims {
    sub: String,
    scope: Option<String>,
}

async fn orders(Claims(c): Claims<OrderClaims>) -> String {
    format!(
        "orders for {} (scope: {})\n",
        c.sub,
        c.scope.unwrap_or_default()
    )
}

/// The file name an issuer's persisted JWKS gets: its URL with every byte but ASCII
/// letters and digits as `_` (`https://idp.example.com/x` → `https___idp_example_com_x.json`).
fn jwks_file(issuer: &str) -> String {
    let name: String = issuer
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{name}.json")
}

/// The process's Prometheus recorder, installed once (several gateways in one process,
/// as in the tests, share it).
fn prometheus() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Validation latency as a true histogram (the dashboard's p50/p99 are
            // `histogram_quantile` over the buckets, across instances).
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        tokenlife_core::observe::metrics::VALIDATION_DURATION.into(),
                    ),
                    &[
                        1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
                        1e-2, 0.1, 0.25,
                    ],
                )
                // Only empty buckets are refused: never these.
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed: the handle then renders nothing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// What `/metrics` answers: the process's Prometheus handle, and the gauges read when
/// scraped — the verified-token cache's size and capacity, the audit spool's records.
#[derive(Clone)]
pub struct Scrape {
    prometheus: PrometheusHandle,
    validator: Validator,
    spooled: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

impl Scrape {
    /// The Prometheus text exposition, the validator's counted hits told and the
    /// scrape-time gauges set first.
    #[allow(clippy::cast_precision_loss)]
    pub fn render(&self) -> String {
        use tokenlife_core::observe::metrics::{AUDIT_SPOOLED, CACHE_CAPACITY, CACHE_ENTRIES};
        // The cache hits counted and not yet told reach the counters first.
        self.validator.flush_hits();
        metrics::gauge!(CACHE_ENTRIES).set(self.validator.cached() as f64);
        metrics::gauge!(CACHE_CAPACITY).set(self.validator.cache_capacity() as f64);
        if let Some(s) = &self.spooled {
            metrics::gauge!(AUDIT_SPOOLED).set(s.load(std::sync::atomic::Ordering::Relaxed) as f64);
        }
        self.prometheus.render()
    }
}

/// What both gateways (axum and actix-web) mount: the validator, the admin state and
/// what watches them, built from a [`GatewayConfig`].
pub struct Parts {
    /// The validator of the API routes.
    pub validator: Validator,
    /// The admin and OAuth operations.
    pub state: AdminState,
    /// The keyset store behind both.
    pub store: KeysetStore,
    /// The rollout guard watching the store.
    pub guard: RolloutGuard,
    /// What `/metrics` answers.
    pub metrics: Scrape,
    /// In fleet mode, the fleet and its running tasks.
    pub fleet: Option<(RedisFleet, Option<FleetTasks>)>,
    /// A public JWKS of a fresh key that signs nothing here.
    pub bad_deploy_jwks: String,
}

impl fmt::Debug for Parts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parts").finish_non_exhaustive()
    }
}

/// Builds the gateway's keys, stores, validator, issuer, monitor, guard and admin state
/// (and joins the fleet, in fleet mode, and fetches each external issuer's keys, on the
/// current runtime); no listener yet.
///
/// # Errors
/// A key could not be generated or loaded, or the fleet's URL is bad.
pub async fn parts(config: &GatewayConfig) -> Result<Parts, Box<dyn std::error::Error>> {
    let prometheus = prometheus();
    let signing = match &config.signing_key_pem {
        Some(pem) => Key::from_private_pem("gw-1", Algorithm::ES256, pem.expose().as_bytes())?,
        None => Key::generate("gw-1", Algorithm::ES256)?,
    };
    let store = KeysetStore::new(Keyset::new([signing])?.with_label("boot"));
    let mut auditor = Auditor::builder();
    if config.audit_stdout {
        auditor = auditor.json_lines(std::io::stdout());
    }
    // The durable trail: migrations at start (a database that cannot be reached is a
    // start error, not a silent loss), then a sink that never blocks a request.
    let mut spooled = None;
    let audit_store = match &config.audit_db {
        Some(db) => {
            // The synchronous client runs a runtime of its own: connect off this one.
            let u = db.url.expose().to_owned();
            let store = tokio::task::spawn_blocking(move || PgAuditStore::connect(&u))
                .await?
                .map_err(|e| format!("--audit-db: {e}"))?;
            let mut sink = PgAuditSink::builder(db.url.expose(), &config.node_id);
            if let Some(dir) = &db.spool {
                sink = sink.spool(dir, db.spool_max_bytes);
            }
            let sink = sink.build()?;
            spooled = Some(sink.spooled());
            auditor = auditor.sink(sink);
            Some(Arc::new(store))
        }
        None => None,
    };
    if let Some(w) = &config.alert_webhook {
        let mut sink =
            tokenlife_core::observe::webhook::WebhookSink::builder(&w.url).slack(w.slack);
        if let Some(s) = &w.secret {
            sink = sink.secret(s.expose().as_bytes());
        }
        auditor = auditor.sink(sink.build());
    }
    let monitor = Monitor::builder().auditor(auditor.build()).build();
    // The console's live feed: beside the monitor wherever events are told.
    let console = ConsoleFeed::new();
    let observed = (monitor.clone(), console.clone());
    // With a durable trail, successful validations are rolled up per token per minute
    // (or recorded one by one): "when was this token used, and from where".
    let usage = match (&config.audit_db, UsageRollup::for_monitor(&monitor)) {
        (Some(db), Some(b)) => {
            let usage = b.every_validation(db.every_validation).build();
            let ticking = usage.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    ticking.tick();
                }
            });
            Some(usage)
        }
        _ => None,
    };
    let (revocations, refresh_store, fleet) = match &config.fleet {
        Some(f) => {
            let fleet = RedisFleet::new(
                FleetConfig::new(f.redis_url.expose())
                    .prefix(&f.prefix)
                    .node_id(&f.node_id)
                    .observer(observed.clone()),
            )?;
            fleet.share_keysets(&store);
            let list = RevocationList::builder().backend(fleet.backend()).build();
            let tasks = fleet.start(list.clone());
            let refresh = RedisRefreshStore::new(f.redis_url.expose())?.prefix(&f.prefix);
            // An evicting Redis could forget a revoked family: refuse to start on one.
            refresh.check_eviction_policy()?;
            (list, Some(refresh), Some((fleet, tasks)))
        }
        None => (RevocationList::new(), None, None),
    };
    // Rolls a keyset deploy that breaks validation back by itself (and alerts).
    let guard = RolloutGuard::new(store.clone(), GuardPolicy::default()).notify(observed.clone());
    let mut validator = Validator::builder(store.clone())
        .issuer(&config.issuer)
        .audience(&config.audience)
        .monitor(monitor.clone())
        .also_observer(guard.clone())
        .also_observer(console.clone())
        .revocations(revocations.clone());
    if let Some(u) = &usage {
        validator = validator.also_observer(u.clone());
    }
    // Each external provider: its own keys (discovery, background refresh, an unknown
    // kid wakes one refresh), its tokens routed to it by `iss`, the same audience,
    // revocation list and monitor.
    let mut remote = Vec::new();
    for url in &config.external_issuers {
        let mut builder = RemoteKeys::issuer(url)
            .unknown_kid_cooldown(config.unknown_kid_cooldown)
            // A provider down at start: the gateway starts anyway (its tokens 503
            // `keys_stale`, or the persisted keys), retrying with backoff.
            .degraded_start(true)
            .observer(observed.clone());
        if let Some(dir) = &config.jwks_cache {
            builder = builder.persist_to(dir.join(jwks_file(url)));
        }
        if let Some(f) = &config.fleet {
            // The fleet keeps each provider's last good keys: a node restarted while
            // the provider is down starts from its peers' keys.
            builder =
                builder.last_good(RedisLastGood::new(f.redis_url.expose())?.prefix(&f.prefix));
        }
        let keys = builder
            .build()
            .await
            .map_err(|e| format!("--issuer {url}: {e}"))?;
        tokio::spawn(keys.clone().refresh_task());
        remote.push(keys.clone());
        let mut tenant = Validator::builder(keys.store().clone())
            .issuer(url)
            .audience(&config.audience)
            .monitor(monitor.clone())
            .also_observer(keys.clone())
            .also_observer(console.clone())
            // A request with a kid these keys lack waits (≤ 250 ms) for the refresh its
            // unknown kid wakes: a provider's key rotation fails no request.
            .key_wait(keys)
            .revocations(revocations.clone());
        if let Some(u) = &usage {
            tenant = tenant.also_observer(u.clone());
        }
        validator = validator.tenant(tenant.build()?);
    }
    let validator = validator.build()?;
    let mut issuer = Issuer::builder(store.clone())
        .issuer(&config.issuer)
        .audience(&config.audience)
        .access_ttl(config.access_ttl)
        .retry_grace(config.refresh_retry_grace)
        .reuse_grace(config.refresh_reuse_grace)
        .revocations(validator.revocations().clone())
        .monitor(observed);
    let monitor_auditor = monitor.auditor().cloned();
    if let Some(r) = refresh_store {
        issuer = issuer.refresh_store(r);
    }
    let issuer = issuer.build()?;
    let mut state = AdminState::builder(validator.clone()).issuer(issuer);
    for keys in remote {
        state = state.remote_keys(keys);
    }
    if let (Some((fleet, _)), Some(f)) = (&fleet, &config.fleet) {
        let (fleet, node, prefix) = (fleet.clone(), f.node_id.clone(), f.prefix.clone());
        state = state.fleet_status(move || {
            let s = fleet.status();
            serde_json::json!({
                "node": node, "prefix": prefix, "connected": s.connected,
                "last_sync": s.last_sync, "keyset_generation": s.keyset_generation,
                "revocations_applied": s.applied, "keysets_applied": s.keysets_applied,
                "queued": s.queued, "dropped": s.dropped, "syncs": s.syncs,
                "states_ignored": s.states_ignored, "epoch_changes": s.epoch_changes,
                "heartbeats_missed": s.heartbeats_missed,
            })
        });
    }
    if let Some(store) = audit_store {
        // An answer includes the latest uses: the rollup and the audit queue are
        // flushed into the database first (on the admin's blocking pool).
        let auditor = monitor_auditor.clone();
        state = state.audit_search(move |qs| {
            if let Some(u) = &usage {
                u.flush();
            }
            if let Some(a) = &auditor {
                a.flush();
            }
            audit_answer(&store, qs)
        });
    }
    let state = state
        .console(console)
        .rollout_guard(guard.clone())
        .admin_key(config.admin_key.expose())
        .client(
            &config.client_id,
            config.client_secret.expose(),
            Some("orders:read"),
        )
        .build()?;
    let bad_deploy_jwks =
        Keyset::new([Key::generate("bad-deploy", Algorithm::ES256)?])?.to_public_jwks();
    Ok(Parts {
        metrics: Scrape {
            prometheus,
            validator: validator.clone(),
            spooled,
        },
        validator,
        state,
        store,
        guard,
        fleet,
        bad_deploy_jwks,
    })
}

/// Binds both listeners and starts serving the axum gateway in the background (on the
/// current runtime).
///
/// # Errors
/// A key could not be generated or a listener could not bind.
pub async fn start(config: GatewayConfig) -> Result<Gateway, Box<dyn std::error::Error>> {
    let p = parts(&config).await?;
    let validator = p.validator;
    let api = Router::new()
        .route("/orders", get(orders))
        .route(
            "/orders/admin",
            get(|| async { "order admin\n" })
                .route_layer(TokenLifeLayer::new(validator.clone()).require_scope("orders:write")),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(TokenLifeLayer::new(validator).skip_path("/healthz"));
    let scrape = p.metrics;
    let admin =
        admin::router(p.state).route("/metrics", get(move || std::future::ready(scrape.render())));

    let api_listener = TcpListener::bind(config.api_addr).await?;
    let admin_listener = TcpListener::bind(config.admin_addr).await?;
    let api_url = format!("http://{}", api_listener.local_addr()?);
    let admin_url = format!("http://{}", admin_listener.local_addr()?);
    tokio::spawn(serve(api_listener, api, config.limits));
    tokio::spawn(serve(admin_listener, admin, config.limits));
    Ok(Gateway {
        api_url,
        admin_url,
        config,
        bad_deploy_jwks: p.bad_deploy_jwks,
        store: p.store,
        guard: p.guard,
        fleet: p.fleet,
    })
}

/// The same gateway on actix-web: the API behind `tokenlife_actix::TokenLife`, the admin
/// scope and `/metrics` on the second listener, the same routes, answers and curl lines.
/// The actix server runs on its own thread (its own actix system); the fleet, in fleet
/// mode, on the current tokio runtime. The header-read timeout and the connection cap
/// are actix's own (`client_request_timeout`, `max_connections`); actix-web has no
/// whole-request timeout, so `request_timeout` applies to the axum gateway only.
///
/// # Errors
/// A key could not be generated or a listener could not bind.
pub async fn start_actix(config: GatewayConfig) -> Result<Gateway, Box<dyn std::error::Error>> {
    use actix_web::{App, HttpResponse, HttpServer, web};
    use tokenlife_actix::TokenLife;

    async fn orders(
        tokenlife_actix::Claims(c): tokenlife_actix::Claims<OrderClaims>,
    ) -> HttpResponse {
        text(format!(
            "orders for {} (scope: {})\n",
            c.sub,
            c.scope.unwrap_or_default()
        ))
    }
    fn text(body: impl Into<String>) -> HttpResponse {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(body.into())
    }

    let p = parts(&config).await?;
    let api_listener = std::net::TcpListener::bind(config.api_addr)?;
    let admin_listener = std::net::TcpListener::bind(config.admin_addr)?;
    let api_url = format!("http://{}", api_listener.local_addr()?);
    let admin_url = format!("http://{}", admin_listener.local_addr()?);
    let limits = config.limits;
    let validator = p.validator;
    let api = HttpServer::new(move || {
        App::new()
            .wrap(TokenLife::new(validator.clone()).skip_path("/healthz"))
            .route("/orders", web::get().to(orders))
            .service(
                web::resource("/orders/admin")
                    .wrap(TokenLife::new(validator.clone()).require_scope("orders:write"))
                    .route(web::get().to(|| async { text("order admin\n") })),
            )
            .route("/healthz", web::get().to(|| async { text("ok\n") }))
    });
    let (state, scrape) = (p.state, p.metrics);
    let admin = HttpServer::new(move || {
        let scrape = scrape.clone();
        App::new()
            .route(
                "/metrics",
                web::get().to(move || std::future::ready(text(scrape.render()))),
            )
            .service(tokenlife_actix::admin::scope("", state.clone()))
    });
    // One worker each, actix's header-read timeout and connection cap (per worker), and
    // the per-address share.
    macro_rules! limited {
        ($server:expr) => {
            $server
                .workers(1)
                .disable_signals()
                .client_request_timeout(limits.header_read_timeout)
                .max_connections(limits.max_connections)
                .on_connect(actix_address_cap(AddressSlots::new(
                    limits.max_connections_per_address,
                )))
        };
    }
    let api = limited!(api).listen(api_listener)?.run();
    let admin = limited!(admin).listen(admin_listener)?.run();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let _ = futures_join(api, admin).await;
        })
    });
    Ok(Gateway {
        api_url,
        admin_url,
        config,
        bad_deploy_jwks: p.bad_deploy_jwks,
        store: p.store,
        guard: p.guard,
        fleet: p.fleet,
    })
}

/// Runs both servers to the end.
async fn futures_join(a: actix_web::dev::Server, b: actix_web::dev::Server) {
    let b = actix_web::rt::spawn(b);
    let _ = a.await;
    let _ = b.await;
}

impl Gateway {
    /// The curl lines that walk through the gateway, ready to paste into a shell where
    /// `TOKENLIFE_ADMIN_KEY` and `TOKENLIFE_CLIENT_SECRET` are set: the secrets themselves
    /// are never printed (the banner shows them once only when it generated them).
    pub fn curl_lines(&self) -> String {
        let (api, admin, c) = (&self.api_url, &self.admin_url, &self.config);
        let key = "$TOKENLIFE_ADMIN_KEY";
        let get_token = format!(
            "TOKEN=$(curl -s -u \"{}:$TOKENLIFE_CLIENT_SECRET\" -d grant_type=client_credentials {admin}/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')",
            c.client_id,
        );
        format!(
            "\
# 1. get a token (OAuth 2.0 client credentials)
{get_token}
# 2. call a protected route: 200
curl -i -H \"Authorization: Bearer $TOKEN\" {api}/orders
# 3. revoke it (RFC 7009)
curl -i -H \"Authorization: Bearer {key}\" -d \"token=$TOKEN\" {admin}/revoke
# 4. call again: 401 invalid_token (token revoked)
curl -i -H \"Authorization: Bearer $TOKEN\" {api}/orders
# 5. a bad keyset deploy, then the rollback
{get_token}
curl -s -H \"Authorization: Bearer {key}\" -H 'content-type: application/json' -d '{jwks}' '{admin}/keysets?label=bad-deploy&keep_signing=false'
curl -i -H \"Authorization: Bearer $TOKEN\" {api}/orders
curl -s -X POST -H \"Authorization: Bearer {key}\" {admin}/keysets/rollback
curl -i -H \"Authorization: Bearer $TOKEN\" {api}/orders
curl -s -H \"Authorization: Bearer {key}\" {admin}/keysets
# 6. read the metrics
curl -s {admin}/metrics | grep '^tokenlife_'
",
            jwks = self.bad_deploy_jwks
        )
    }
}
