//! Keys from an identity provider (feature `remote`): a JWKS URL, or an issuer URL whose
//! discovery document (`/.well-known/openid-configuration`, else RFC 8414's
//! `/.well-known/oauth-authorization-server`) names it.
//!
//! [`RemoteKeys`] fetches the keys into its own [`KeysetStore`]: every fetch that changes
//! them is a new snapshot version, so history, rollback, canaries and the rollout guard
//! work for remote keys as for local ones. Validation never does I/O and never waits on
//! a fetch: it reads the store. Around it:
//!
//! - [`RemoteKeys::refresh_task`] refreshes in the background, when `Cache-Control:
//!   max-age` says (within [`RemoteKeysBuilder::refresh_bounds`]), with `If-None-Match`;
//! - as an [`Observer`] of the validator, an unknown `kid` wakes one refresh (single
//!   flight). Two bounds keep junk from costing the provider, and from starving a real
//!   rotation: each `kid` wakes at most one refresh per cooldown (default 60 s; a bounded
//!   table of the last 1,024 kids tried), and all unknown kids together at most one per
//!   [`unknown_kid_min_interval`](RemoteKeysBuilder::unknown_kid_min_interval)
//!   (default 2 s). A flood of junk kids is then one fetch every 2 s, and every such fetch
//!   brings the provider's new keys too, so a real new `kid` is known within that
//!   interval however much junk arrives; the unknown kids themselves fail fast, with no
//!   network;
//! - a key the library cannot use is skipped and reported (metric, log, status); the
//!   others load;
//! - a failed fetch (timeout, non-200, bad JSON, oversize body, no usable key) keeps the
//!   last good keys current, and is typed, counted and shown by [`RemoteKeys::status`].
//!
//! # Examples
//!
//! ```no_run
//! use tokenlife_core::Validator;
//! use tokenlife_core::keys::remote::RemoteKeys;
//!
//! # #[allow(dead_code)]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = RemoteKeys::issuer("https://idp.example.com/realms/main").build().await?;
//! let validator = Validator::builder(keys.store().clone())
//!     .issuer("https://idp.example.com/realms/main")
//!     .audience("api://orders")
//!     .also_observer(keys.clone()) // unknown kid: one refresh, then a cooldown
//!     .build()?;
//! tokio::spawn(keys.clone().refresh_task());
//! # let _ = validator; Ok(()) }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::clock::{Clock, SystemClock};
pub use crate::error::RemoteErrorKind;
use crate::error::{KeyErrorKind, ValidationErrorKind};
use crate::keys::{Keyset, KeysetStore};
use crate::observe::span;
use crate::observe::{Event, Observer, RemoteFetch};

use crate::error::BoxError;

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A JWKS URL.
    Jwks(String),
    /// An issuer URL: its discovery document names the JWKS, and its `issuer` must be
    /// this URL.
    Issuer(String),
}

/// A failed fetch: its kind, the HTTP status if there was one, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("remote keys: {} {}", kind.as_str(), status.map(|s| s.to_string()).unwrap_or_default())]
pub struct RemoteError {
    kind: RemoteErrorKind,
    status: Option<u16>,
    #[source]
    source: Option<BoxError>,
}

impl RemoteError {
    fn new(kind: RemoteErrorKind) -> Self {
        Self {
            kind,
            status: None,
            source: None,
        }
    }

    fn because(kind: RemoteErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            status: None,
            source: Some(source.into()),
        }
    }

    fn status(status: u16) -> Self {
        Self {
            kind: RemoteErrorKind::HttpStatus,
            status: Some(status),
            source: None,
        }
    }

    fn from_reqwest(e: reqwest::Error) -> Self {
        let kind = if e.is_timeout() {
            RemoteErrorKind::Timeout
        } else {
            RemoteErrorKind::Unreachable
        };
        Self::because(kind, e)
    }

    /// What went wrong.
    pub fn kind(&self) -> RemoteErrorKind {
        self.kind
    }

    /// The HTTP status, for [`RemoteErrorKind::HttpStatus`].
    pub fn http_status(&self) -> Option<u16> {
        self.status
    }
}

/// What one successful fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refreshed {
    /// 304 to `If-None-Match`: nothing downloaded.
    NotModified,
    /// The same keys as the current snapshot: no new version.
    Unchanged,
    /// New keys, published as this snapshot version.
    Updated(u64),
}

/// A JWKS entry that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Its `kid`, if it had one.
    pub kid: Option<String>,
    /// Why (the key error kind, e.g. `Unsupported`).
    pub reason: String,
}

/// What [`RemoteKeys::status`] reports (and the admin endpoint `GET /keysets/remote`
/// shows): where the keys come from, when they were last fetched, what failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemoteStatus {
    /// The source as configured (the JWKS URL or the issuer URL).
    pub source: String,
    /// Started without reaching the provider and no fetch has succeeded since
    /// ([`RemoteKeysBuilder::degraded_start`]): the keys are the last good ones kept, or none.
    pub degraded: bool,
    /// The JWKS URL in use (from discovery, for an issuer source).
    pub jwks_uri: Option<String>,
    /// When a fetch was last attempted (Unix seconds).
    pub last_attempt: Option<u64>,
    /// When a fetch last succeeded (200 or 304).
    pub last_success: Option<u64>,
    /// When the keys last changed (a new snapshot version).
    pub last_change: Option<u64>,
    /// When the next scheduled refresh is due.
    pub next_refresh: Option<u64>,
    /// The `ETag` of the keys held.
    pub etag: Option<String>,
    /// The `kid`s of the keys held.
    pub kids: Vec<String>,
    /// Entries of the last JWKS that were skipped.
    pub skipped: Vec<Skipped>,
    /// The last failure's kind, if the last fetch failed.
    pub last_error: Option<&'static str>,
    /// The last failure, in words.
    pub last_error_detail: Option<String>,
    /// Failed fetches in a row.
    pub consecutive_failures: u64,
    /// Fetches attempted (discovery not counted).
    pub fetches: u64,
    /// Refreshes woken by an unknown `kid`.
    pub unknown_kid_refreshes: u64,
    /// Unknown `kid`s seen during the cooldown, which woke nothing.
    pub unknown_kid_suppressed: u64,
    /// When the keys in use were fetched from the provider: by this node, or — taken from
    /// a last-good store ([`RemoteKeysBuilder::last_good`]) while the provider is not
    /// reached — by another node or an earlier run.
    pub keys_fetched_at: Option<u64>,
}

/// The last good JWKS of a remote key source: the public JWKS and when it was fetched
/// from the provider (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastGood {
    /// The public JWKS, as JSON.
    pub jwks: String,
    /// When it was fetched from the provider (Unix seconds).
    pub fetched_at: u64,
}

/// Where a remote key source keeps its last good JWKS (peer gaps, item 1), so that a
/// start while the provider is down begins from it, and a node cut off from the provider
/// takes the keys another node fetched: a file ([`RemoteKeysBuilder::persist_to`]) or, in
/// fleet mode, Redis (`fleet::RedisLastGood`, shared by every node).
///
/// Called off the request path, on tokio's blocking pool; failures read as "nothing
/// kept" and never fail a fetch. A store is trusted with *public* keys only: what it
/// returns is parsed as a public JWKS (a key that could sign is skipped), held to
/// [`Keyset::MAX_JWKS_BYTES`], its time held to no later than now, and it is used only
/// while the provider cannot be reached — the provider's own answer always wins.
pub trait LastGoodStore: Send + Sync + std::fmt::Debug + 'static {
    /// The last good JWKS kept for `source`, if any.
    fn load(&self, source: &str) -> Option<LastGood>;
    /// Keeps `good` as `source`'s last good JWKS (best effort).
    fn save(&self, source: &str, good: &LastGood);
}

/// A file holding one source's last good JWKS, rewritten through a temporary file renamed
/// over it (a crash never leaves half a file); its modification time is the fetch time.
#[derive(Debug, Clone)]
pub struct LastGoodFile {
    path: std::path::PathBuf,
}

impl LastGoodFile {
    /// The file at `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl LastGoodStore for LastGoodFile {
    fn load(&self, _source: &str) -> Option<LastGood> {
        let meta = std::fs::metadata(&self.path).ok()?;
        if meta.len() > Keyset::MAX_JWKS_BYTES as u64 {
            return None;
        }
        Some(LastGood {
            jwks: std::fs::read_to_string(&self.path).ok()?,
            fetched_at: crate::clock::unix_secs(meta.modified().ok()?),
        })
    }

    fn save(&self, _source: &str, good: &LastGood) {
        let tmp = self.path.with_extension("tmp");
        if std::fs::write(&tmp, &good.jwks).is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }
}

type LastGoodStores = Arc<[Arc<dyn LastGoodStore>]>;

/// The newest usable JWKS the stores keep for `source` (parsed as public keys, its time
/// no later than `now`), read on the blocking pool.
async fn load_last_good(stores: &LastGoodStores, source: &str, now: u64) -> Option<(Keyset, u64)> {
    if stores.is_empty() {
        return None;
    }
    let (stores, source) = (stores.clone(), source.to_owned());
    let found = tokio::task::spawn_blocking(move || {
        stores
            .iter()
            .filter_map(|s| s.load(&source))
            .collect::<Vec<_>>()
    })
    .await
    .ok()?;
    found
        .into_iter()
        .filter(|g| g.jwks.len() <= Keyset::MAX_JWKS_BYTES)
        .filter_map(|g| {
            let keyset = Keyset::from_public_jwks_json(&g.jwks).ok()?;
            Some((keyset, g.fetched_at.min(now)))
        })
        .max_by_key(|(_, at)| *at)
}

/// Keeps the store's current public JWKS, fetched at `at`, in every last-good store.
async fn save_last_good(stores: &LastGoodStores, source: &str, store: &KeysetStore, at: u64) {
    if stores.is_empty() {
        return;
    }
    let good = LastGood {
        jwks: store.current().active().to_public_jwks(),
        fetched_at: at,
    };
    let (stores, source) = (stores.clone(), source.to_owned());
    let _ = tokio::task::spawn_blocking(move || {
        for s in stores.iter() {
            s.save(&source, &good);
        }
    })
    .await;
}

/// Builds [`RemoteKeys`]: [`RemoteKeys::jwks`] or [`RemoteKeys::issuer`], then
/// [`build`](Self::build).
#[must_use]
pub struct RemoteKeysBuilder {
    source: Source,
    client: Option<reqwest::Client>,
    timeout: Duration,
    min_refresh: Duration,
    max_refresh: Duration,
    default_refresh: Duration,
    cooldown: Duration,
    kid_gap: Duration,
    max_staleness: Duration,
    max_bytes: usize,
    clock: Arc<dyn Clock>,
    history: usize,
    observer: Option<Arc<dyn Observer>>,
    allow_http: bool,
    jwks_origins: Vec<String>,
    degraded_start: bool,
    last_good: Vec<Arc<dyn LastGoodStore>>,
}

/// The origin of an http(s) URL (`scheme://host:port`, the port made explicit), after the
/// scheme check: `https`, or `http` to a loopback host (or anywhere when `allow_http`).
fn checked_origin(url: &str, allow_http: bool) -> Result<String, RemoteError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| RemoteError::because(RemoteErrorKind::InvalidUrl, e))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| RemoteError::new(RemoteErrorKind::InvalidUrl))?
        .to_ascii_lowercase();
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = bare == "localhost"
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback && !allow_http {
                return Err(RemoteError::new(RemoteErrorKind::InsecureUrl));
            }
        }
        _ => return Err(RemoteError::new(RemoteErrorKind::InvalidUrl)),
    }
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| RemoteError::new(RemoteErrorKind::InvalidUrl))?;
    Ok(format!("{}://{host}:{port}", parsed.scheme()))
}

impl std::fmt::Debug for RemoteKeysBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeysBuilder")
            .field("source", &self.source)
            .field("timeout", &self.timeout)
            .field("cooldown", &self.cooldown)
            .finish_non_exhaustive()
    }
}

impl RemoteKeysBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            client: None,
            timeout: Duration::from_secs(10),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(24 * 3600),
            default_refresh: Duration::from_secs(600),
            cooldown: Duration::from_secs(60),
            kid_gap: Duration::from_secs(2),
            max_staleness: Duration::from_secs(24 * 3600),
            max_bytes: Keyset::MAX_JWKS_BYTES,
            clock: Arc::new(SystemClock),
            history: 16,
            observer: None,
            allow_http: false,
            jwks_origins: Vec::new(),
            degraded_start: false,
            last_good: Vec::new(),
        }
    }

    /// Accepts plain `http://` URLs to hosts other than loopback (default: only `https`,
    /// and `http` to 127.0.0.0/8, `::1` or `localhost`). Keys fetched in the clear can be
    /// replaced by anyone on the path: for a lab only.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Accepts a discovery document's `jwks_uri` on this origin too (`https://keys.example.com`)
    /// besides the issuer's own (the default: only the issuer's origin).
    pub fn allow_jwks_origin(mut self, origin: &str) -> Self {
        if let Ok(o) = checked_origin(&format!("{}/", origin.trim_end_matches('/')), true) {
            self.jwks_origins.push(o);
        }
        self
    }

    /// Reports every fetch as [`Event::RemoteKeys`] to `observer`: a
    /// [`Monitor`](crate::Monitor) writes it to the audit trail (skipped keys and
    /// failures included).
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Your own HTTP client (proxies, mTLS, custom roots). Default: a reqwest client with
    /// rustls and no redirects.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The longest a fetch may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The bounds a `Cache-Control: max-age` is held to (default 60 s to 24 h), and the
    /// refresh interval when there is none (default 10 min).
    pub fn refresh_bounds(mut self, min: Duration, max: Duration, default: Duration) -> Self {
        self.min_refresh = min;
        self.max_refresh = max.max(min);
        self.default_refresh = default.clamp(min, self.max_refresh);
        self
    }

    /// After an unknown `kid` wakes a refresh, how long that same `kid` wakes none again
    /// (default 60 s, at least 1 s).
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        // At least a second: with none, every unknown kid (anyone can send one) would
        // be a fetch from the provider.
        self.cooldown = cooldown.max(Duration::from_secs(1));
        self
    }

    /// Starts even when the provider cannot be reached (peer gaps, item 1): instead of
    /// failing, [`build`](Self::build) returns keys in the *degraded* state — the newest
    /// last good JWKS a [`last_good`](Self::last_good) store (a [`persist_to`](Self::persist_to)
    /// file, the fleet's Redis) holds, if there is one (trusted until its fetch time plus
    /// [`max_staleness`](Self::max_staleness)), else none: this
    /// source's tokens are answered 503 `keys_stale` (retryable; a client can tell it from
    /// a bad token). The refresh task retries with a jittered backoff (1 s, 2 s, 4 s, … up
    /// to the minimum refresh interval), discovery included; the first success leaves the
    /// degraded state ([`RemoteStatus::degraded`]). A bad URL still fails the build.
    pub fn degraded_start(mut self, allowed: bool) -> Self {
        self.degraded_start = allowed;
        self
    }

    /// Keeps the last good JWKS (public keys only) in this file, rewritten (a temporary
    /// file renamed over it) after each successful fetch: what a
    /// [`degraded_start`](Self::degraded_start) begins from while the provider is down.
    /// The same as [`last_good`](Self::last_good)`(LastGoodFile::new(path))`.
    pub fn persist_to(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.last_good(LastGoodFile::new(path))
    }

    /// Keeps the last good JWKS in `store` too (any number of stores: a file and the
    /// fleet's Redis, say). After each successful fetch, every store gets them;
    /// a [`degraded_start`](Self::degraded_start) begins from the newest any store holds,
    /// and while fetches fail, newer keys another node kept there are taken (still
    /// *degraded*: the provider is not reached), each trusted until its fetch time plus
    /// [`max_staleness`](Self::max_staleness).
    pub fn last_good(mut self, store: impl LastGoodStore) -> Self {
        self.last_good.push(Arc::new(store));
        self
    }

    /// The shortest time between two refreshes woken by unknown kids, whatever the kids
    /// (default 2 s, at least 1 s): under a flood of junk kids, the provider sees one
    /// fetch per interval, and a real new kid is known within it.
    pub fn unknown_kid_min_interval(mut self, interval: Duration) -> Self {
        self.kid_gap = interval.max(Duration::from_secs(1));
        self
    }

    /// How long the last keys stay trusted without a successful fetch (default 24 h):
    /// past it — the provider unreachable, or serving no usable key — this source's
    /// tokens are answered 503 [`keys_stale`](crate::ValidationErrorKind::KeysStale)
    /// until a fetch succeeds again, rather than trusting keys the provider may have
    /// withdrawn.
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness = max.max(Duration::from_secs(1));
        self
    }

    /// The largest body read (default [`Keyset::MAX_JWKS_BYTES`]).
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    /// The clock of the cooldown, the status times and the store's snapshots.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Snapshots kept for rollback (default 16).
    pub fn history(mut self, history: usize) -> Self {
        self.history = history;
        self
    }

    /// Discovers (for an issuer source), fetches the keys once and builds the store.
    ///
    /// # Errors
    /// The first fetch failed: there is no last good keyset to fall back on.
    pub async fn build(mut self) -> Result<RemoteKeys, RemoteError> {
        let url = match &self.source {
            Source::Jwks(u) | Source::Issuer(u) => u,
        };
        checked_origin(url, self.allow_http)?;
        let client = match self.client.take() {
            Some(c) => c,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| RemoteError::because(RemoteErrorKind::Unreachable, e))?,
        };
        let fetcher = Fetcher {
            client,
            timeout: self.timeout,
            max_bytes: self.max_bytes,
            allow_http: self.allow_http,
            jwks_origins: self.jwks_origins.clone(),
        };
        let first = async {
            let jwks_uri = match &self.source {
                Source::Jwks(u) => u.clone(),
                Source::Issuer(issuer) => fetcher.discover(issuer).await?,
            };
            match fetcher.jwks(&jwks_uri, None).await? {
                Fetched::Keys {
                    keyset,
                    etag,
                    max_age,
                } => Ok((jwks_uri, keyset, etag, max_age)),
                Fetched::NotModified { .. } => Err(RemoteError::status(304)),
            }
        }
        .await;
        let now = self.clock.unix_now();
        let mut status = RemoteStatus {
            source: url.clone(),
            last_attempt: Some(now),
            fetches: 1,
            ..RemoteStatus::default()
        };
        let (jwks_uri, keyset, etag, max_age) = match first {
            Ok(got) => got,
            Err(e) if self.degraded_start && e.kind() != RemoteErrorKind::InvalidUrl => {
                let stores: LastGoodStores = self.last_good.clone().into();
                let kept = load_last_good(&stores, url, now).await;
                return Ok(self.degraded(fetcher, status, &e, kept));
            }
            Err(e) => return Err(e),
        };
        status.jwks_uri = Some(jwks_uri);
        let policy = self.policy();
        report_skipped(&keyset, &mut status);
        status.kids = keyset.keys().map(|k| k.kid.to_string()).collect();
        status.etag = etag;
        status.last_success = Some(now);
        status.last_change = Some(now);
        status.next_refresh = Some(now + policy.next(max_age).as_secs());
        let store = KeysetStore::builder(keyset.with_label("remote"))
            .history(self.history)
            .clock(ClockRef(self.clock.clone()))
            .build();
        store.set_fresh_until(now.saturating_add(policy.max_staleness.as_secs()));
        let stores: LastGoodStores = self.last_good.clone().into();
        save_last_good(&stores, url, &store, now).await;
        if let Some(o) = &self.observer {
            o.on_event(&Event::RemoteKeys {
                source: &status.source,
                outcome: RemoteFetch::Updated,
                version: store.current().version(),
                skipped: &skipped_words(&status.skipped),
                degraded: false,
            });
        }
        Ok(self.assemble(fetcher, store, policy, status, now))
    }

    fn policy(&self) -> Policy {
        Policy {
            min: self.min_refresh,
            max: self.max_refresh,
            default: self.default_refresh,
            cooldown: self.cooldown,
            kid_gap: self.kid_gap,
            max_staleness: self.max_staleness,
        }
    }

    /// The keys of a start without the provider: the newest last good JWKS `kept`, or a
    /// placeholder key that verifies nothing under a store that is stale from the start.
    fn degraded(
        self,
        fetcher: Fetcher,
        mut status: RemoteStatus,
        error: &RemoteError,
        kept: Option<(Keyset, u64)>,
    ) -> RemoteKeys {
        let now = self.clock.unix_now();
        let policy = self.policy();
        status.degraded = true;
        status.last_error = Some(error.kind().as_str());
        status.last_error_detail = Some(error_chain(error));
        status.consecutive_failures = 1;
        status.next_refresh = Some(now + retry_delay(1, policy.min).as_secs());
        // A JWKS source's URL is known without the provider (an issuer's is found by
        // discovery once it answers): the refresh fetches it.
        if let Source::Jwks(u) = &self.source {
            status.jwks_uri = Some(u.clone());
        }
        let keys_at = kept.as_ref().map_or(0, |(_, at)| *at);
        let (keyset, fresh_until) = match kept {
            Some((keyset, fetched_at)) => {
                status.kids = keyset.keys().map(|k| k.kid.to_string()).collect();
                status.keys_fetched_at = Some(fetched_at);
                (
                    keyset,
                    fetched_at.saturating_add(policy.max_staleness.as_secs()),
                )
            }
            None => (placeholder(), 0),
        };
        let store = KeysetStore::builder(keyset.with_label("remote"))
            .history(self.history)
            .clock(ClockRef(self.clock.clone()))
            .build();
        store.set_fresh_until(fresh_until);
        if let Some(o) = &self.observer {
            o.on_event(&Event::RemoteKeys {
                source: &status.source,
                outcome: RemoteFetch::Failed(error.kind()),
                version: store.current().version(),
                skipped: &[],
                degraded: true,
            });
        }
        self.assemble(fetcher, store, policy, status, keys_at)
    }

    fn assemble(
        self,
        fetcher: Fetcher,
        store: KeysetStore,
        policy: Policy,
        mut status: RemoteStatus,
        keys_at: u64,
    ) -> RemoteKeys {
        if keys_at > 0 {
            status.keys_fetched_at = Some(keys_at);
        }
        let issuer = match &self.source {
            Source::Issuer(i) => Some(i.clone()),
            Source::Jwks(_) => None,
        };
        RemoteKeys {
            inner: Arc::new(Inner {
                fetcher,
                store,
                clock: self.clock,
                policy,
                source: status.source.clone(),
                state: Mutex::new(status),
                wake: tokio::sync::Notify::new(),
                flight: tokio::sync::Mutex::new(()),
                issuer,
                rediscover: std::sync::atomic::AtomicBool::new(false),
                last_good: self.last_good.into(),
                pending: std::sync::atomic::AtomicBool::new(false),
                done: tokio::sync::watch::Sender::new(0),
                kid_refresh_at: AtomicU64::new(0),
                kids_tried: quick_cache::sync::Cache::new(KIDS_TRIED),
                kid_refreshes: AtomicU64::new(0),
                kid_suppressed: AtomicU64::new(0),
                observer: self.observer,
            }),
        }
    }
}

/// A key that verifies nothing anyone sends (its private half is dropped at once), for a
/// degraded start without persisted keys: the store is stale from the start, so this
/// source's tokens get 503 `keys_stale` before any key is looked at.
fn placeholder() -> Keyset {
    crate::keys::Key::hmac(
        "tokenlife-degraded-start",
        jsonwebtoken::Algorithm::HS256,
        &crate::hash::random_key(),
    )
    .and_then(|k| Keyset::new([k]))
    .unwrap_or_else(|_| unreachable!("a 32-byte HMAC key is always a key"))
}

/// After `failures` failed fetches in a row: 1 s, 2 s, 4 s, … up to `max`, less a random
/// tenth (never below 1 s).
fn retry_delay(failures: u64, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(16) as u32;
    let base = Duration::from_secs(1u64 << exp)
        .min(max)
        .max(Duration::from_secs(1));
    jittered(base, Duration::from_secs(1), crate::hash::random_u64())
}

/// A shared clock, as the store's clock.
#[derive(Debug)]
struct ClockRef(Arc<dyn Clock>);

impl Clock for ClockRef {
    fn now(&self) -> std::time::SystemTime {
        self.0.now()
    }
}

/// Most kids remembered as having woken a refresh: junk kids evict each other, and a
/// forgotten one is still held to the global interval.
const KIDS_TRIED: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Policy {
    min: Duration,
    max: Duration,
    default: Duration,
    cooldown: Duration,
    kid_gap: Duration,
    max_staleness: Duration,
}

impl Policy {
    /// When to refresh next: the answer's `max-age` held to the bounds (or the default),
    /// less a random tenth of it, never below the minimum — so the nodes of a fleet, all
    /// started at once, do not fetch from the provider in step.
    fn next(&self, max_age: Option<Duration>) -> Duration {
        jittered(self.interval(max_age), self.min, crate::hash::random_u64())
    }

    /// The answer's `max-age` held to the bounds, or the default.
    fn interval(&self, max_age: Option<Duration>) -> Duration {
        max_age.map_or(self.default, |a| a.clamp(self.min, self.max))
    }
}

/// `base` less `r`'s share (0 to 1/10) of it, never below `floor` (nor above `base`).
fn jittered(base: Duration, floor: Duration, r: u64) -> Duration {
    let tenth = base / 10;
    let cut = tenth.mul_f64((r % 1_001) as f64 / 1_000.0);
    base.saturating_sub(cut).max(floor.min(base))
}

struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
    max_bytes: usize,
    allow_http: bool,
    /// Origins a discovered `jwks_uri` may be on besides the issuer's.
    jwks_origins: Vec<String>,
}

enum Fetched {
    NotModified {
        max_age: Option<Duration>,
    },
    Keys {
        keyset: Keyset,
        etag: Option<String>,
        max_age: Option<Duration>,
    },
}

impl Fetcher {
    async fn get(&self, url: &str, etag: Option<&str>) -> Result<reqwest::Response, RemoteError> {
        let mut req = self
            .client
            .get(url)
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(tag) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, tag);
        }
        req.send().await.map_err(RemoteError::from_reqwest)
    }

    /// The body, at most `max_bytes` of it.
    async fn body(&self, mut res: reqwest::Response) -> Result<Vec<u8>, RemoteError> {
        if res
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(RemoteError::new(RemoteErrorKind::TooLarge));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(RemoteError::from_reqwest)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(RemoteError::new(RemoteErrorKind::TooLarge));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The JWKS URL an issuer's discovery document names (OpenID Connect Discovery,
    /// else RFC 8414), after checking its `issuer`.
    async fn discover(&self, issuer: &str) -> Result<String, RemoteError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            issuer: String,
            jwks_uri: String,
        }
        let base = issuer.trim_end_matches('/');
        let mut last = RemoteError::new(RemoteErrorKind::HttpStatus);
        for path in [
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ] {
            let res = self.get(&format!("{base}{path}"), None).await?;
            if res.status() != reqwest::StatusCode::OK {
                last = RemoteError::status(res.status().as_u16());
                continue;
            }
            let body = self.body(res).await?;
            let doc: Doc = serde_json::from_slice(&body)
                .map_err(|e| RemoteError::because(RemoteErrorKind::InvalidJson, e))?;
            if doc.issuer != issuer {
                return Err(RemoteError::new(RemoteErrorKind::IssuerMismatch));
            }
            // The document is the provider's word, but not a licence to send the
            // gateway anywhere: https (or loopback), and the issuer's own origin or one
            // the operator allowed.
            let origin = checked_origin(&doc.jwks_uri, self.allow_http)?;
            if origin != checked_origin(issuer, self.allow_http)?
                && !self.jwks_origins.contains(&origin)
            {
                return Err(RemoteError::new(RemoteErrorKind::ForeignOrigin));
            }
            return Ok(doc.jwks_uri);
        }
        Err(last)
    }

    async fn jwks(&self, url: &str, etag: Option<&str>) -> Result<Fetched, RemoteError> {
        let res = self.get(url, etag).await?;
        let max_age = res
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        if res.status() == reqwest::StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Fetched::NotModified { max_age });
        }
        if res.status() != reqwest::StatusCode::OK {
            return Err(RemoteError::status(res.status().as_u16()));
        }
        let new_etag = res
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.body(res).await?;
        let text = std::str::from_utf8(&body)
            .map_err(|e| RemoteError::because(RemoteErrorKind::InvalidJson, e))?;
        let keyset = Keyset::from_public_jwks_json(text).map_err(|e| {
            let kind = match e.kind() {
                KeyErrorKind::TooLarge => RemoteErrorKind::TooLarge,
                KeyErrorKind::InvalidJson => RemoteErrorKind::InvalidJson,
                _ => RemoteErrorKind::NoUsableKeys,
            };
            RemoteError::because(kind, e)
        })?;
        Ok(Fetched::Keys {
            keyset,
            etag: new_etag,
            max_age,
        })
    }
}

/// `max-age=N` of a `Cache-Control` value; `no-cache` / `no-store` as zero (the
/// shortest refresh the bounds allow).
fn max_age(value: &str) -> Option<Duration> {
    let mut found = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            found = n
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

fn report_skipped(keyset: &Keyset, status: &mut RemoteStatus) {
    status.skipped = keyset
        .warnings()
        .iter()
        .map(|w| Skipped {
            kid: w.key_id().map(str::to_owned),
            reason: format!("{:?}", w.kind()),
        })
        .collect();
}

struct Inner {
    fetcher: Fetcher,
    store: KeysetStore,
    clock: Arc<dyn Clock>,
    policy: Policy,
    /// The source, as [`RemoteStatus::source`] (read without the state's lock).
    source: String,
    state: Mutex<RemoteStatus>,
    wake: tokio::sync::Notify,
    /// Held by the one fetch in flight (never by a validation).
    flight: tokio::sync::Mutex<()>,
    /// For an issuer source: discovery is redone while the JWKS URL is unknown, and after
    /// a failed fetch (the URL may have moved).
    issuer: Option<String>,
    rediscover: std::sync::atomic::AtomicBool,
    /// Where the last good JWKS is kept.
    last_good: LastGoodStores,
    /// A refresh is woken or in flight: requests with an unknown kid may wait for it.
    pending: std::sync::atomic::AtomicBool,
    /// Bumped when a refresh finishes (any outcome): what waiting requests watch.
    done: tokio::sync::watch::Sender<u64>,
    kid_refresh_at: AtomicU64,
    /// Kids that woke a refresh, and when: each wakes at most one per cooldown.
    kids_tried: quick_cache::sync::Cache<String, u64>,
    kid_refreshes: AtomicU64,
    kid_suppressed: AtomicU64,
    observer: Option<Arc<dyn Observer>>,
}

/// Keys fetched from an identity provider into a [`KeysetStore`]; see the
/// [module](self).
#[derive(Clone)]
pub struct RemoteKeys {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl RemoteKeys {
    /// Keys from this JWKS URL.
    pub fn jwks(url: impl Into<String>) -> RemoteKeysBuilder {
        RemoteKeysBuilder::new(Source::Jwks(url.into()))
    }

    /// Keys of this issuer, found through its discovery document.
    pub fn issuer(url: impl Into<String>) -> RemoteKeysBuilder {
        RemoteKeysBuilder::new(Source::Issuer(url.into()))
    }

    /// The store the keys are published into: give it to the validator.
    pub fn store(&self) -> &KeysetStore {
        &self.inner.store
    }

    /// Where the keys come from, when they were last fetched, what failed.
    pub fn status(&self) -> RemoteStatus {
        let mut s = self.lock().clone();
        s.unknown_kid_refreshes = self.inner.kid_refreshes.load(Ordering::Relaxed);
        s.unknown_kid_suppressed = self.inner.kid_suppressed.load(Ordering::Relaxed);
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RemoteStatus> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fetches the keys now (one fetch at a time: a second caller waits for the first,
    /// then fetches again). A failure keeps the current keys.
    ///
    /// # Errors
    /// The fetch failed; [`status`](Self::status) records it too.
    pub async fn refresh(&self) -> Result<Refreshed, RemoteError> {
        let _flight = self.inner.flight.lock().await;
        self.inner.pending.store(true, Ordering::Release);
        let result = span::remote_fetch_of(
            &self.inner.source,
            |e: &RemoteError| e.kind().as_str(),
            self.fetch_and_apply(),
        )
        .await;
        // Whatever the outcome, the requests waiting on this refresh look again now.
        self.inner.pending.store(false, Ordering::Release);
        self.inner.done.send_modify(|n| *n += 1);
        result
    }

    /// One fetch, applied (the flight lock held).
    async fn fetch_and_apply(&self) -> Result<Refreshed, RemoteError> {
        let (uri, etag) = {
            let mut s = self.lock();
            s.last_attempt = Some(self.inner.clock.unix_now());
            s.fetches += 1;
            (s.jwks_uri.clone(), s.etag.clone())
        };
        let rediscover = self.inner.rediscover.swap(false, Ordering::AcqRel);
        let got = match (uri, &self.inner.issuer) {
            (Some(uri), None) => self.inner.fetcher.jwks(&uri, etag.as_deref()).await,
            (Some(uri), Some(_)) if !rediscover => {
                self.inner.fetcher.jwks(&uri, etag.as_deref()).await
            }
            // Started degraded before discovery answered, or the last fetch failed (the
            // URL may have moved): discover first.
            (old, Some(issuer)) => match self.inner.fetcher.discover(issuer).await {
                Ok(uri) => {
                    // A moved URL: its ETag was the old URL's.
                    let etag = if old.as_deref() == Some(uri.as_str()) {
                        etag
                    } else {
                        None
                    };
                    self.lock().jwks_uri = Some(uri.clone());
                    self.inner.fetcher.jwks(&uri, etag.as_deref()).await
                }
                Err(e) => Err(e),
            },
            (None, None) => Err(RemoteError::new(RemoteErrorKind::InvalidUrl)),
        };
        let now = self.inner.clock.unix_now();
        let policy = self.inner.policy;
        let result = match got {
            Ok(Fetched::NotModified { max_age }) => {
                let mut s = self.lock();
                s.next_refresh = Some(now + policy.next(max_age).as_secs());
                Ok(Refreshed::NotModified)
            }
            Ok(Fetched::Keys {
                keyset,
                etag,
                max_age,
            }) => {
                let same =
                    self.inner.store.current().active().to_public_jwks() == keyset.to_public_jwks();
                let mut s = self.lock();
                report_skipped(&keyset, &mut s);
                s.etag = etag;
                s.next_refresh = Some(now + policy.next(max_age).as_secs());
                if same {
                    Ok(Refreshed::Unchanged)
                } else {
                    s.kids = keyset.keys().map(|k| k.kid.to_string()).collect();
                    s.last_change = Some(now);
                    let version = self.inner.store.publish(keyset.with_label("remote"));
                    Ok(Refreshed::Updated(version))
                }
            }
            Err(e) => Err(e),
        };
        // Every success renews the kept copy's time (a restarted node trusts it for the
        // staleness bound from then); a failure may take a newer copy another node kept.
        match &result {
            Ok(_) => {
                save_last_good(
                    &self.inner.last_good,
                    &self.inner.source,
                    &self.inner.store,
                    now,
                )
                .await;
            }
            Err(_) => self.take_last_good(now).await,
        }
        let mut s = self.lock();
        match &result {
            Ok(_) => {
                s.last_success = Some(now);
                s.degraded = false;
                s.keys_fetched_at = Some(now);
                self.inner
                    .store
                    .set_fresh_until(now.saturating_add(self.inner.policy.max_staleness.as_secs()));
                s.last_error = None;
                s.last_error_detail = None;
                s.consecutive_failures = 0;
            }
            Err(e) => {
                s.last_error = Some(e.kind().as_str());
                s.last_error_detail = Some(error_chain(e));
                s.consecutive_failures += 1;
                // An issuer's JWKS URL may have moved (a 404, a host gone): the next
                // attempt asks discovery again.
                self.inner.rediscover.store(true, Ordering::Release);
                // Retry soon, then less often: 1 s, 2 s, 4 s, … up to the shortest
                // interval the bounds allow, jittered.
                s.next_refresh =
                    Some(now + retry_delay(s.consecutive_failures, policy.min).as_secs());
            }
        }
        let outcome = match &result {
            Ok(Refreshed::NotModified) => RemoteFetch::NotModified,
            Ok(Refreshed::Unchanged) => RemoteFetch::Unchanged,
            Ok(Refreshed::Updated(_)) => RemoteFetch::Updated,
            Err(e) => RemoteFetch::Failed(e.kind()),
        };
        // A failed fetch skipped nothing: the skipped list is the last good JWKS's.
        let skipped = if result.is_ok() {
            skipped_words(&s.skipped)
        } else {
            Vec::new()
        };
        let source = s.source.clone();
        let degraded = s.degraded;
        drop(s);
        if let Some(o) = &self.inner.observer {
            o.on_event(&Event::RemoteKeys {
                source: &source,
                outcome,
                version: self.inner.store.current().version(),
                skipped: &skipped,
                degraded,
            });
        }
        result
    }

    /// After a failed fetch: newer keys than those in use that another node (or an
    /// earlier run) kept in a last-good store are taken, trusted until their fetch time
    /// plus the staleness bound. The provider's own answer, once it comes, wins.
    async fn take_last_good(&self, now: u64) {
        let Some((keyset, at)) =
            load_last_good(&self.inner.last_good, &self.inner.source, now).await
        else {
            return;
        };
        let held = self.lock().keys_fetched_at.unwrap_or(0);
        if at <= held {
            return;
        }
        let same = self.inner.store.current().active().to_public_jwks() == keyset.to_public_jwks();
        let mut s = self.lock();
        if !same {
            s.kids = keyset.keys().map(|k| k.kid.to_string()).collect();
            s.last_change = Some(now);
            self.inner.store.publish(keyset.with_label("remote"));
        }
        s.keys_fetched_at = Some(at);
        self.inner
            .store
            .set_fresh_until(at.saturating_add(self.inner.policy.max_staleness.as_secs()));
    }

    /// Refreshes in the background until dropped: when the last answer's `max-age` (held
    /// to the bounds) runs out, after a failure at the shortest interval, and at once
    /// when an unknown `kid` wakes it. Spawn it on your runtime.
    pub async fn refresh_task(self) {
        loop {
            let now = self.inner.clock.unix_now();
            let due = self.lock().next_refresh.unwrap_or(now);
            let wait = Duration::from_secs(due.saturating_sub(now));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.wake.notified() => {}
            }
            let _ = self.refresh().await;
        }
    }

    /// An unknown `kid` was seen (without its name: it counts as the kid-less one). See
    /// [`unknown_kid_named`](Self::unknown_kid_named).
    pub fn unknown_kid(&self) {
        self.unknown_kid_named(None);
    }

    /// An unknown `kid` was seen: wake one refresh, unless this kid woke one within the
    /// cooldown or any kid woke one within the minimum interval. Never waits, never does
    /// I/O.
    pub fn unknown_kid_named(&self, kid: Option<&str>) {
        let inner = &*self.inner;
        let now = inner.clock.unix_now();
        let name = kid.unwrap_or("");
        let this_kid_cooling = inner
            .kids_tried
            .get(name)
            .is_some_and(|at| now < at.saturating_add(inner.policy.cooldown.as_secs()));
        let last = inner.kid_refresh_at.load(Ordering::Acquire);
        let gap = last != 0 && now < last.saturating_add(inner.policy.kid_gap.as_secs());
        // Of racing callers, one wins the exchange and wakes the task; the rest count as
        // suppressed (the fetch it wakes brings whatever the provider has, their kids too).
        if !this_kid_cooling
            && !gap
            && inner
                .kid_refresh_at
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            inner.kids_tried.insert(name.to_owned(), now);
            inner.kid_refreshes.fetch_add(1, Ordering::Relaxed);
            inner.pending.store(true, Ordering::Release);
            inner.wake.notify_one();
        } else {
            inner.kid_suppressed.fetch_add(1, Ordering::Relaxed);
            if let Some(o) = &inner.observer {
                o.on_event(&Event::UnknownKidSuppressed {
                    source: &inner.source,
                });
            }
        }
    }
}

/// Requests with an unknown kid wait for the refresh woken or in flight (see
/// `ValidatorBuilder::key_wait`); during a
/// cooldown, with none coming, nothing waits.
impl super::KeyWait for RemoteKeys {
    fn wait(&self, kid: Option<&str>, bound: Duration) -> Option<super::KeyWaitFuture> {
        // Subscribed first: a refresh that finishes after this line wakes the waiter.
        let mut done = self.inner.done.subscribe();
        if self.inner.pending.load(Ordering::Acquire) {
            return Some(Box::pin(async move {
                let _ = tokio::time::timeout(bound, done.changed()).await;
            }));
        }
        // Nothing in flight: either a refresh finished between the failed validation and
        // now (the kid is known: check again at once), or none is coming.
        let known = kid.is_some_and(|k| self.inner.store.current().active().get(k).is_some());
        known.then(|| Box::pin(async {}) as super::KeyWaitFuture)
    }
}

/// Skipped entries as `kid: reason` words for [`Event::RemoteKeys`].
fn skipped_words(skipped: &[Skipped]) -> Vec<String> {
    skipped
        .iter()
        .map(|s| format!("{}: {}", s.kid.as_deref().unwrap_or("(no kid)"), s.reason))
        .collect()
}

fn error_chain(e: &RemoteError) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl Observer for RemoteKeys {
    /// A success: nothing to fetch.
    fn on_hit(&self, _: &crate::observe::Hit<'_>) {}

    /// Successes, counted or not: nothing to fetch.
    fn counts_hits(&self) -> bool {
        true
    }

    fn on_event(&self, event: &Event<'_>) {
        if let Event::Validated {
            outcome: Err(ValidationErrorKind::UnknownKid),
            token,
            ..
        } = event
        {
            self.unknown_kid_named(token.kid().as_deref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refresh schedule is spread over the last tenth of the interval, never below
    /// the minimum: nodes started together do not hit the provider in step.
    #[test]
    fn refreshes_are_jittered_within_a_tenth_and_above_the_minimum() {
        let (min, base) = (Duration::from_secs(60), Duration::from_secs(300));
        let draws: Vec<Duration> = (0..200)
            .map(|_| jittered(base, min, crate::hash::random_u64()))
            .collect();
        assert!(
            draws.iter().all(|d| *d <= base && *d >= base - base / 10),
            "{draws:?}"
        );
        let distinct: std::collections::HashSet<_> = draws.iter().map(Duration::as_secs).collect();
        assert!(distinct.len() > 10, "{distinct:?}");
        assert_eq!(jittered(base, min, 0), base);
        assert_eq!(jittered(base, min, 1_000), base - base / 10);
        // Held to the minimum.
        assert_eq!(jittered(min, min, 1_000), min);
    }

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
        let p = Policy {
            min: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            default: Duration::from_secs(600),
            cooldown: Duration::from_secs(60),
            kid_gap: Duration::from_secs(2),
            max_staleness: Duration::from_secs(86_400),
        };
        assert_eq!(
            p.interval(Some(Duration::from_secs(5))),
            Duration::from_secs(60)
        );
        assert_eq!(
            p.interval(Some(Duration::from_secs(99_999))),
            Duration::from_secs(3600)
        );
        assert_eq!(p.interval(None), Duration::from_secs(600));
        // The schedule itself is the interval, jittered down by at most a tenth.
        let next = p.next(Some(Duration::from_secs(99_999)));
        assert!(next <= Duration::from_secs(3600) && next >= Duration::from_secs(3240));
        assert_eq!(
            p.next(Some(Duration::from_secs(5))),
            Duration::from_secs(60)
        );
    }
}
