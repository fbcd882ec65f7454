//! Fleet mode on Redis (feature `redis`): revocations made on one replica reach every
//! replica in milliseconds, and validation never leaves the process.
//!
//! Each node keeps its own lock-free [`RevocationList`] on the hot path. [`RedisFleet`]
//! connects that list to Redis:
//!
//! - **out**: a revocation made here is applied locally first, then queued; a background
//!   writer stores it in Redis with a TTL equal to its remaining life (`SET … EX`) and
//!   publishes it on the fleet's channel, in one pipeline. While Redis is down the queue
//!   holds it (bounded: a full queue refuses with a typed error, the local entry stays) and
//!   the writer replays it when Redis is back. On every reconnect the writer also re-asserts
//!   the revocations this node made that are still live (`SET NX`, then publish), so a Redis
//!   restarted empty is filled again and no revocation made on either side of an outage is
//!   lost.
//! - **in**: a subscriber applies every published revocation to the local list. On every
//!   (re)connect it subscribes first, then reads every stored revocation (`SCAN` + `MGET`)
//!   before it counts itself in sync. A message it cannot use (oversize, not JSON, an
//!   unknown version, an invalid id) is counted and dropped, never applied half-way.
//!
//! The outage policy is fail-static by default: nodes keep validating from their local
//! state. [`FleetConfig::fail_closed`] makes a node answer 503 once it has been cut off
//! for longer than a bound. Key
//! names start with a prefix holding a hash tag (default `{tokenlife}`), so every key of a
//! fleet lives in one Redis Cluster slot. Health is in [`RedisFleet::status`] and in the
//! `tokenlife_fleet_*` metrics.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tokenlife_core::RevocationList;
//! use tokenlife_core::fleet::{FleetConfig, RedisFleet};
//!
//! let fleet = RedisFleet::new(FleetConfig::new("redis://127.0.0.1:6379/"))?;
//! let revocations = RevocationList::builder().backend(fleet.backend()).build();
//! let _tasks = fleet.start(revocations.clone()); // on the current tokio runtime
//! // hand `revocations` to the Validator and the Issuer builders
//! # Ok(()) }
//! ```

use std::collections::{HashMap, VecDeque};
use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

mod keysets;
#[cfg(feature = "remote")]
mod last_good;
mod refresh;
mod sync_conn;

#[cfg(feature = "remote")]
pub use last_good::RedisLastGood;
pub use refresh::RedisRefreshStore;

use crate::keys::{KeysetSnapshot, KeysetStore};

use crate::error::RevocationErrorKind;
use crate::hash::random_u64;
use crate::observe::{Event, FleetDrop, FleetEvent, Observer, SharedObserver};
use crate::revoke::{Revocation, RevocationBackend, RevocationList, RevocationTarget};

/// Largest message applied from the channel or the store, in bytes.
const MAX_MESSAGE: usize = 4096;
/// Default bound on revocations queued while Redis is unreachable.
const DEFAULT_MAX_QUEUE: usize = 100_000;
/// Most revocations sent in one pipeline.
const BATCH: usize = 256;

/// Stores a revocation merged with the one already stored under its key: the later
/// `issued_before` and the later `until` win, so a narrower revocation made later (on
/// another node) never weakens a stronger one, and a late joiner reads the union. The
/// TTL is the merged entry's remaining life. KEYS[1] the key; ARGV the body, `until`,
/// `issued_before` (-1: none), now.
const MERGE_REVOCATION: &str = r"
local body = ARGV[1]
local u = tonumber(ARGV[2])
local ib = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' then
    local ou = tonumber(old['until']) or 0
    local oib = tonumber(old['issued_before'])
    local mu = math.max(u, ou)
    local mib = ib
    if oib and oib > mib then mib = oib end
    if mu == ou and (ib < 0 or mib == oib) then
      return 0
    end
    local new = cjson.decode(body)
    new['until'] = mu
    if ib >= 0 then new['issued_before'] = mib end
    body = cjson.encode(new)
    u = mu
  end
end
if u <= now then return 0 end
redis.call('SET', KEYS[1], body, 'EX', u - now)
return 1
";

/// A fleet's settings. Its `Debug` never shows the URL's password.
#[derive(Clone)]
#[must_use]
pub struct FleetConfig {
    url: String,
    prefix: String,
    node_id: String,
    max_queue: usize,
    max_backoff: Duration,
    fail_closed: Option<Duration>,
    heartbeat: Duration,
    observer: Option<SharedObserver>,
}

/// `url` with any password (or user) replaced by `***`.
fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetConfig")
            .field("url", &redacted_url(&self.url))
            .field("prefix", &self.prefix)
            .field("node_id", &self.node_id)
            .field("max_queue", &self.max_queue)
            .field("max_backoff", &self.max_backoff)
            .field("fail_closed", &self.fail_closed)
            .field("heartbeat", &self.heartbeat)
            .field("observer", &self.observer)
            .finish()
    }
}

/// Default interval of the fleet heartbeat.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

impl FleetConfig {
    /// Redis at `url` (`redis://host:port/db`), prefix `{tokenlife}`, a random node id.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "{tokenlife}".into(),
            node_id: format!("node-{:016x}", random_u64()),
            max_queue: DEFAULT_MAX_QUEUE,
            max_backoff: Duration::from_secs(1),
            fail_closed: None,
            heartbeat: DEFAULT_HEARTBEAT,
            observer: None,
        }
    }

    /// Where this node's fleet happenings go, as [`Event::Fleet`]: connected and synced,
    /// disconnected, heartbeat missed, revocations applied, messages dropped, the replay
    /// queue's length, ignored keyset states, epoch changes. The [`Monitor`](crate::observe::Monitor)
    /// turns them into the `tokenlife_fleet_*` metrics; without an observer they are
    /// only in [`RedisFleet::status`].
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observer = Some(SharedObserver::new(observer));
        self
    }

    /// How often this node publishes a heartbeat on the fleet's channel (default 1 s,
    /// at least 10 ms). A subscriber that hears nothing — no heartbeat from any node, no
    /// message — for three intervals counts itself cut off (a connection a NAT or load
    /// balancer dropped without a FIN looks alive to TCP): it reconnects and resyncs, and
    /// fail-closed applies from then on. Every Redis connection also has TCP keepalive
    /// and a user timeout of the same order.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval.max(Duration::from_millis(10));
        self
    }

    /// Fail-closed: once this node has been cut off from the fleet (or not yet synced
    /// after it started) for longer than `max_staleness`, its validator answers 503
    /// `revocations_stale` instead of trusting a revocation list that may be missing
    /// entries. The default is fail-static: keep validating from local state.
    pub fn fail_closed(mut self, max_staleness: Duration) -> Self {
        self.fail_closed = Some(max_staleness);
        self
    }

    /// The key and channel prefix; keep a `{hash tag}` in it for Redis Cluster.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// This node's name in messages (its own messages are not applied twice).
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = id.into();
        self
    }

    /// Most revocations queued while Redis is unreachable (default 100,000).
    pub fn max_queue(mut self, n: usize) -> Self {
        self.max_queue = n.max(1);
        self
    }

    /// Longest wait between reconnection attempts (default 1 s; they start at 10 ms).
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d.max(Duration::from_millis(10));
        self
    }
}

/// The fleet could not be set up: an opaque error with a [`FleetErrorKind`].
#[derive(Debug)]
pub struct FleetError {
    source: redis::RedisError,
}

/// Why the fleet could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FleetErrorKind {
    /// A URL the Redis client cannot use (scheme, host, database, TLS not built in).
    InvalidUrl,
}

impl FleetError {
    /// Why.
    pub fn kind(&self) -> FleetErrorKind {
        FleetErrorKind::InvalidUrl
    }
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad Redis settings: {}", self.source)
    }
}

impl StdError for FleetError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// A node's view of the fleet, for health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetStatus {
    /// The subscriber is connected and has synced since it connected.
    pub connected: bool,
    /// Unix time of the last full sync (0: never).
    pub last_sync: u64,
    /// Revocations received and applied.
    pub applied: u64,
    /// Messages dropped.
    pub dropped: u64,
    /// Local revocations waiting to reach Redis.
    pub queued: u64,
    /// Full syncs so far (one per connect).
    pub syncs: u64,
    /// The newest fleet keyset generation this node applied or published (0: none).
    pub keyset_generation: u64,
    /// Keyset states received from other nodes and installed.
    pub keysets_applied: u64,
    /// Keyset states not applied (not newer) whose content differed from this node's.
    pub states_ignored: u64,
    /// Times the fleet's epoch changed under this node (Redis lost its data).
    pub epoch_changes: u64,
    /// Subscriptions ended for want of a heartbeat.
    pub heartbeats_missed: u64,
}

/// One revocation on the wire and in the store.
#[derive(Serialize, Deserialize)]
struct Wire {
    v: u32,
    node: String,
    kind: String,
    id: String,
    until: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issued_before: Option<u64>,
}

impl Wire {
    fn from_revocation(node: &str, r: &Revocation) -> Self {
        let (kind, id, issued_before) = match &r.target {
            RevocationTarget::Jti(id) => ("jti", id.clone(), None),
            RevocationTarget::Subject {
                subject,
                issued_before,
            } => ("subject", subject.clone(), Some(*issued_before)),
            RevocationTarget::Family(id) => ("family", id.clone(), None),
        };
        Self {
            v: 1,
            node: node.to_owned(),
            kind: kind.to_owned(),
            id,
            until: r.until,
            issued_before,
        }
    }

    fn into_revocation(self) -> Option<Revocation> {
        let target = match (self.kind.as_str(), self.issued_before) {
            ("jti", None) => RevocationTarget::Jti(self.id),
            ("family", None) => RevocationTarget::Family(self.id),
            ("subject", Some(issued_before)) => RevocationTarget::Subject {
                subject: self.id,
                issued_before,
            },
            _ => return None,
        };
        Some(Revocation {
            target,
            until: self.until,
        })
    }
}

struct Inner {
    config: FleetConfig,
    client: redis::Client,
    tx: mpsc::Sender<Revocation>,
    rx: Mutex<Option<mpsc::Receiver<Revocation>>>,
    connected: AtomicBool,
    last_sync: AtomicU64,
    applied: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicU64,
    syncs: AtomicU64,
    /// Rung by the subscriber after every sync: Redis may have restarted empty, so the
    /// writer re-asserts this node's live revocations.
    resynced: tokio::sync::Notify,
    /// The keyset store shared with the fleet, if any, and its local changes.
    keysets: Mutex<Option<KeysetStore>>,
    keyset_rx: Mutex<Option<tokio::sync::watch::Receiver<Option<Arc<KeysetSnapshot>>>>>,
    keyset_generation: AtomicU64,
    keysets_applied: AtomicU64,
    /// Live revocations received from the fleet (by kind and id; bounded): re-stored
    /// after every resync with this node's own, so a Redis that lost its data is refilled
    /// by any node that survived, not only by the one that made each revocation.
    received: Mutex<HashMap<(String, String), Revocation>>,
    /// The fleet epoch this node's keyset generation belongs to.
    epoch: Mutex<Option<String>>,
    states_ignored: AtomicU64,
    epoch_changes: AtomicU64,
    heartbeats_missed: AtomicU64,
}

impl Inner {
    fn drop_message(&self, reason: FleetDrop) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.emit(FleetEvent::Dropped(reason));
    }

    fn emit(&self, event: FleetEvent) {
        if let Some(o) = &self.config.observer {
            o.on_event(&Event::Fleet(event));
        }
    }

    fn known_epoch(&self) -> Option<String> {
        self.epoch.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn keyset_store(&self) -> Option<KeysetStore> {
        self.keysets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Connects a node's [`RevocationList`] to the fleet through Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisFleet {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisFleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFleet")
            .field("node", &self.inner.config.node_id)
            .field("prefix", &self.inner.config.prefix)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// The [`RevocationBackend`] half of a [`RedisFleet`]: give it to
/// [`RevocationListBuilder::backend`](crate::revoke::RevocationListBuilder::backend).
#[derive(Clone)]
pub struct FleetBackend {
    inner: Arc<Inner>,
}

impl fmt::Debug for FleetBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetBackend")
            .field("node", &self.inner.config.node_id)
            .finish_non_exhaustive()
    }
}

/// Why a revocation could not be queued for the fleet (the local list has it).
#[derive(Debug)]
struct QueueError(&'static str);

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl StdError for QueueError {}

impl RevocationBackend for FleetBackend {
    fn publish(&self, revocation: &Revocation) -> Result<(), Box<dyn StdError + Send + Sync>> {
        // Counted before it is sent: the writer subtracts what it has stored, so the count
        // never misses a revocation the writer has already taken.
        self.inner.queued.fetch_add(1, Ordering::AcqRel);
        match self.inner.tx.try_send(revocation.clone()) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.inner.queued.fetch_sub(1, Ordering::AcqRel);
                Err(Box::new(QueueError(match e {
                    mpsc::error::TrySendError::Full(_) => {
                        "the fleet's replay queue is full (Redis unreachable too long)"
                    }
                    mpsc::error::TrySendError::Closed(_) => "the fleet is stopped",
                })))
            }
        }
    }
}

/// The fleet's background tasks; dropping this stops them.
#[derive(Debug)]
pub struct FleetTasks {
    writer: tokio::task::JoinHandle<()>,
    subscriber: tokio::task::JoinHandle<()>,
    heartbeat: tokio::task::JoinHandle<()>,
    keyset_writer: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for FleetTasks {
    fn drop(&mut self) {
        self.writer.abort();
        self.subscriber.abort();
        self.heartbeat.abort();
        if let Some(k) = &self.keyset_writer {
            k.abort();
        }
    }
}

impl RedisFleet {
    /// A fleet node for `config` (no connection is made yet).
    ///
    /// # Errors
    /// A URL the `redis` crate cannot use.
    pub fn new(config: FleetConfig) -> Result<Self, FleetError> {
        let client = client(&config.url, config.heartbeat)?;
        let (tx, rx) = mpsc::channel(config.max_queue);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                client,
                tx,
                rx: Mutex::new(Some(rx)),
                connected: AtomicBool::new(false),
                last_sync: AtomicU64::new(0),
                applied: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                queued: AtomicU64::new(0),
                syncs: AtomicU64::new(0),
                resynced: tokio::sync::Notify::new(),
                keysets: Mutex::new(None),
                keyset_rx: Mutex::new(None),
                keyset_generation: AtomicU64::new(0),
                keysets_applied: AtomicU64::new(0),
                received: Mutex::new(HashMap::new()),
                epoch: Mutex::new(None),
                states_ignored: AtomicU64::new(0),
                epoch_changes: AtomicU64::new(0),
                heartbeats_missed: AtomicU64::new(0),
            }),
        })
    }

    /// Shares `store` with the fleet (call before [`start`](Self::start)): every local
    /// change — publish, stage, share, promote, abort, rollback, the rollout guard's
    /// automatic rollback — becomes the fleet's keyset state under a new fleet-wide
    /// generation, and this node installs every newer state another node publishes
    /// (public keys only; a state with private key material is dropped).
    pub fn share_keysets(&self, store: &KeysetStore) {
        let rx = keysets::watch_store(store);
        *self
            .inner
            .keyset_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(rx);
        *self.inner.keysets.lock().unwrap_or_else(|p| p.into_inner()) = Some(store.clone());
    }

    /// The backend to build this node's [`RevocationList`] with.
    pub fn backend(&self) -> FleetBackend {
        FleetBackend {
            inner: self.inner.clone(),
        }
    }

    /// Starts the writer and the subscriber on the current tokio runtime, applying the
    /// fleet's revocations to `list` (the list built with [`backend`](Self::backend)).
    /// Only the first call starts anything.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(&self, list: RevocationList) -> Option<FleetTasks> {
        let rx = self
            .inner
            .rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        if let Some(bound) = self.inner.config.fail_closed {
            // Until the first sync, the boot grace.
            list.set_fresh_until(list.clock().unix_now().saturating_add(bound.as_secs()));
        }
        let writer = tokio::spawn(writer(self.inner.clone(), rx, list.clone()));
        let keyset_writer = self
            .inner
            .keyset_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(|rx| tokio::spawn(keysets::writer(self.inner.clone(), rx)));
        let subscriber = tokio::spawn(subscriber(self.inner.clone(), list));
        let heartbeat = tokio::spawn(heartbeat(self.inner.clone()));
        Some(FleetTasks {
            writer,
            subscriber,
            heartbeat,
            keyset_writer,
        })
    }

    /// This node's view of the fleet.
    pub fn status(&self) -> FleetStatus {
        let i = &self.inner;
        FleetStatus {
            connected: i.connected.load(Ordering::Acquire),
            last_sync: i.last_sync.load(Ordering::Acquire),
            applied: i.applied.load(Ordering::Relaxed),
            dropped: i.dropped.load(Ordering::Relaxed),
            queued: i.queued.load(Ordering::Acquire),
            syncs: i.syncs.load(Ordering::Relaxed),
            keyset_generation: i.keyset_generation.load(Ordering::Acquire),
            keysets_applied: i.keysets_applied.load(Ordering::Relaxed),
            states_ignored: i.states_ignored.load(Ordering::Relaxed),
            epoch_changes: i.epoch_changes.load(Ordering::Relaxed),
            heartbeats_missed: i.heartbeats_missed.load(Ordering::Relaxed),
        }
    }

    /// The channel revocations are published on.
    pub fn channel(&self) -> String {
        channel(&self.inner.config.prefix)
    }

    /// The Redis key a revocation is stored under.
    pub fn key_of(&self, revocation: &Revocation) -> String {
        let w = Wire::from_revocation("", revocation);
        key(&self.inner.config.prefix, &w.kind, &w.id)
    }
}

fn channel(prefix: &str) -> String {
    format!("{prefix}:revocations")
}

fn heartbeat_channel(prefix: &str) -> String {
    format!("{prefix}:heartbeat")
}

/// A client whose every connection has TCP keepalive and a user timeout in the order of
/// the heartbeat bound: a peer that vanished without a FIN is noticed by the kernel too.
fn client(url: &str, heartbeat: Duration) -> Result<redis::Client, FleetError> {
    use redis::IntoConnectionInfo;
    use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
    let info = url
        .into_connection_info()
        .map_err(|source| FleetError { source })?;
    let idle = (heartbeat * 3).max(Duration::from_secs(1));
    let tcp = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(
            TcpKeepalive::new()
                .with_time(idle)
                .with_interval(idle)
                .with_retries(3),
        )
        .set_user_timeout(idle * 4);
    redis::Client::open(info.set_tcp_settings(tcp)).map_err(|source| FleetError { source })
}

/// Publishes this node's heartbeat every interval (a PUBLISH, so every subscriber of the
/// fleet hears that Redis still delivers).
async fn heartbeat(inner: Arc<Inner>) {
    let chan = heartbeat_channel(&inner.config.prefix);
    let interval = inner.config.heartbeat;
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    loop {
        tokio::time::sleep(interval).await;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match inner.client.get_multiplexed_async_connection().await {
                Ok(c) => conn.insert(c),
                Err(_) => continue,
            },
        };
        let sent = tokio::time::timeout(
            interval * 3,
            redis::cmd("PUBLISH")
                .arg(&chan)
                .arg(&inner.config.node_id)
                .query_async::<()>(c),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            conn = None;
        }
    }
}

fn key(prefix: &str, kind: &str, id: &str) -> String {
    format!("{prefix}:rev:{kind}:{id}")
}

fn backoff_step(d: Duration, max: Duration) -> Duration {
    (d * 2).min(max)
}

/// Sends queued revocations (SET EX + PUBLISH per revocation, one pipeline per batch),
/// replays them after an outage, and re-asserts this node's live revocations on every
/// reconnect.
async fn writer(inner: Arc<Inner>, mut rx: mpsc::Receiver<Revocation>, list: RevocationList) {
    let prefix = inner.config.prefix.clone();
    let chan = channel(&prefix);
    let mut pending: VecDeque<Revocation> = VecDeque::new();
    // What this node made and Redis has stored: re-asserted on reconnect (bounded).
    let mut mine: Vec<Revocation> = Vec::new();
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut reassert = false;
    let mut backoff = Duration::from_millis(10);
    loop {
        if pending.is_empty() && !reassert {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => pending.push_back(r),
                    None => return,
                },
                () = inner.resynced.notified() => reassert = true,
            }
        }
        while pending.len() < inner.config.max_queue {
            match rx.try_recv() {
                Ok(r) => pending.push_back(r),
                Err(_) => break,
            }
        }
        report_queued(&inner);
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match inner.client.get_multiplexed_async_connection().await {
                Ok(c) => {
                    backoff = Duration::from_millis(10);
                    reassert = true;
                    conn.insert(c)
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = backoff_step(backoff, inner.config.max_backoff);
                    continue;
                }
            },
        };
        let now = list.clock().unix_now();
        if reassert {
            mine.retain(|r| r.until > now);
            // What others made is stored again (merged, never weakened), not published:
            // the nodes that are up hold it already.
            let theirs: Vec<Revocation> = {
                let mut received = inner.received.lock().unwrap_or_else(|p| p.into_inner());
                received.retain(|_, r| r.until > now);
                received.values().cloned().collect()
            };
            let mut ok = true;
            for chunk in theirs.chunks(BATCH) {
                let mut pipe = redis::pipe();
                for r in chunk {
                    let w = Wire::from_revocation(&inner.config.node_id, r);
                    let body = serde_json::to_string(&w).unwrap_or_default();
                    merge_cmd(&mut pipe, &key(&prefix, &w.kind, &w.id), &body, &w, now);
                }
                if pipe.query_async::<()>(c).await.is_err() {
                    ok = false;
                    break;
                }
            }
            for chunk in mine.chunks(BATCH) {
                if !ok {
                    break;
                }
                let mut pipe = redis::pipe();
                for r in chunk {
                    let w = Wire::from_revocation(&inner.config.node_id, r);
                    let body = serde_json::to_string(&w).unwrap_or_default();
                    merge_cmd(&mut pipe, &key(&prefix, &w.kind, &w.id), &body, &w, now);
                    pipe.cmd("PUBLISH").arg(&chan).arg(&body).ignore();
                }
                if pipe.query_async::<()>(c).await.is_err() {
                    ok = false;
                    break;
                }
            }
            if !ok {
                conn = None;
                continue;
            }
            reassert = false;
        }
        let n = pending.len().min(BATCH);
        if n == 0 {
            continue;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for r in pending.iter().take(n) {
            let w = Wire::from_revocation(&inner.config.node_id, r);
            let body = serde_json::to_string(&w).unwrap_or_default();
            if r.until > now {
                merge_cmd(&mut pipe, &key(&prefix, &w.kind, &w.id), &body, &w, now);
            }
            pipe.cmd("PUBLISH").arg(&chan).arg(&body).ignore();
        }
        match pipe.query_async::<()>(c).await {
            Ok(()) => {
                for r in pending.drain(..n) {
                    if r.until > now && mine.len() < inner.config.max_queue.saturating_mul(10) {
                        mine.push(r);
                    }
                }
                inner.queued.fetch_sub(n as u64, Ordering::AcqRel);
                report_queued(&inner);
            }
            Err(_) => {
                conn = None;
                tokio::time::sleep(backoff).await;
                backoff = backoff_step(backoff, inner.config.max_backoff);
            }
        }
    }
}

/// Keeps a received revocation for re-storing after a resync (merged with one of the same
/// id; bounded like this node's own).
fn remember(inner: &Inner, r: Revocation) {
    let w = Wire::from_revocation("", &r);
    let mut received = inner.received.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(old) = received.get_mut(&(w.kind.clone(), w.id.clone())) {
        old.until = old.until.max(r.until);
        if let (
            RevocationTarget::Subject {
                issued_before: a, ..
            },
            RevocationTarget::Subject {
                issued_before: b, ..
            },
        ) = (&mut old.target, &r.target)
        {
            *a = (*a).max(*b);
        }
    } else if received.len() < inner.config.max_queue.saturating_mul(10) {
        received.insert((w.kind, w.id), r);
    }
}

/// Adds the merge of one revocation into its stored entry to `pipe`.
fn merge_cmd(pipe: &mut redis::Pipeline, key: &str, body: &str, w: &Wire, now: u64) {
    pipe.cmd("EVAL")
        .arg(MERGE_REVOCATION)
        .arg(1)
        .arg(key)
        .arg(body)
        .arg(w.until)
        .arg(
            w.issued_before
                .map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX)),
        )
        .arg(now)
        .ignore();
}

/// Reports the revocations made here and not yet stored in Redis (counted from the
/// revoke call until the writer's pipeline succeeded).
fn report_queued(inner: &Inner) {
    inner.emit(FleetEvent::Queued(inner.queued.load(Ordering::Acquire)));
}

/// Subscribes, resyncs, then applies messages until the connection ends; again and again.
async fn subscriber(inner: Arc<Inner>, list: RevocationList) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let synced_before = inner.syncs.load(Ordering::Relaxed);
        let _ = subscription(&inner, &list).await;
        if inner.connected.load(Ordering::Acquire)
            && let Some(bound) = inner.config.fail_closed
        {
            // Cut off from here on: the local list stays trusted for `bound`.
            list.set_fresh_until(list.clock().unix_now().saturating_add(bound.as_secs()));
        }
        inner.connected.store(false, Ordering::Release);
        inner.emit(FleetEvent::Disconnected);
        if inner.syncs.load(Ordering::Relaxed) != synced_before {
            backoff = Duration::from_millis(10);
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff_step(backoff, inner.config.max_backoff);
    }
}

/// `fut`, or a timeout error after three heartbeat intervals (at least 1 s): one round
/// trip to a Redis that went silent must not hold the subscriber forever.
async fn bounded<T>(
    inner: &Inner,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    let bound = (inner.config.heartbeat * 3).max(Duration::from_secs(1));
    match tokio::time::timeout(bound, fut).await {
        Ok(r) => r,
        Err(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "redis went silent").into())
        }
    }
}

async fn subscription(inner: &Inner, list: &RevocationList) -> redis::RedisResult<()> {
    let prefix = &inner.config.prefix;
    let keyset_store = inner.keyset_store();
    let keyset_channel = keysets::channel(prefix);
    let mut pubsub = bounded(inner, inner.client.get_async_pubsub()).await?;
    bounded(inner, pubsub.subscribe(channel(prefix))).await?;
    let beat = heartbeat_channel(prefix);
    bounded(inner, pubsub.subscribe(&beat)).await?;
    if keyset_store.is_some() {
        bounded(inner, pubsub.subscribe(&keyset_channel)).await?;
    }
    // Subscribed first: whatever is published from now on arrives on the channel, and
    // whatever was stored before is read here.
    let mut conn = bounded(inner, inner.client.get_multiplexed_async_connection()).await?;
    let pattern = format!("{prefix}:rev:*");
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = bounded(
            inner,
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn),
        )
        .await?;
        if !keys.is_empty() {
            let values: Vec<Option<Vec<u8>>> =
                bounded(inner, redis::cmd("MGET").arg(&keys).query_async(&mut conn)).await?;
            for v in values.into_iter().flatten() {
                handle(inner, list, &v, true);
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    if let Some(store) = &keyset_store {
        bounded(inner, keysets::resync(inner, store, &mut conn)).await?;
    }
    let now = list.clock().unix_now();
    inner.last_sync.store(now, Ordering::Release);
    inner.syncs.fetch_add(1, Ordering::Relaxed);
    inner.connected.store(true, Ordering::Release);
    if inner.config.fail_closed.is_some() {
        list.set_fresh_until(u64::MAX);
    }
    inner.resynced.notify_one();
    inner.emit(FleetEvent::Synced { at: now });
    let mut messages = pubsub.into_on_message();
    // Three heartbeat intervals of silence: the connection is dead, whatever TCP says.
    let silence = inner.config.heartbeat * 3;
    loop {
        let Ok(next) = tokio::time::timeout(silence, messages.next()).await else {
            inner.heartbeats_missed.fetch_add(1, Ordering::Relaxed);
            inner.emit(FleetEvent::HeartbeatMissed);
            return Ok(());
        };
        let Some(msg) = next else {
            return Ok(());
        };
        let name = msg.get_channel_name();
        if name == beat {
            continue;
        }
        match &keyset_store {
            Some(store) if name == keyset_channel => {
                if !keysets::handle_message(inner, store, msg.get_payload_bytes()) {
                    // Another epoch: this node's view is stale; resync from the start.
                    return Ok(());
                }
            }
            _ => handle(inner, list, msg.get_payload_bytes(), false),
        }
    }
}

/// Applies one message (from the channel, or a stored value during a resync), or counts
/// it dropped: nothing is applied from a message that is not whole and valid.
fn handle(inner: &Inner, list: &RevocationList, bytes: &[u8], from_store: bool) {
    let drop = |reason: FleetDrop| inner.drop_message(reason);
    if bytes.len() > MAX_MESSAGE {
        return drop(FleetDrop::Oversize);
    }
    let Ok(wire) = serde_json::from_slice::<Wire>(bytes) else {
        return drop(FleetDrop::Malformed);
    };
    if wire.v != 1 {
        return drop(FleetDrop::Version);
    }
    if !from_store && wire.node == inner.config.node_id {
        return; // our own, applied when it was made
    }
    let Some(revocation) = wire.into_revocation() else {
        return drop(FleetDrop::Malformed);
    };
    match list.apply(&revocation) {
        Ok(()) => {
            inner.applied.fetch_add(1, Ordering::Relaxed);
            inner.emit(FleetEvent::RevocationApplied);
            remember(inner, revocation);
        }
        Err(e) if e.kind() == RevocationErrorKind::Full => drop(FleetDrop::Full),
        Err(_) => drop(FleetDrop::Invalid),
    }
}
