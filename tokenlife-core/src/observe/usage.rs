//! [`UsageRollup`]: "when was this token used, and from where" without a row per request.
//!
//! Successful validations are summed per token per time bucket — first seen, last seen,
//! count, the keyset version, the distinct client addresses up to a bound — and handed to
//! the [`Auditor`] as one [`AuditAction::TokenUsed`] record per token and bucket, by a
//! thread of the rollup's own: a request only updates an entry in a sharded map. Failures
//! are not its business (the [`AuditTrail`](super::trail::AuditTrail) records each one).
//!
//! Memory is bounded: at most `capacity` tokens per bucket (spread over shards); a shard
//! that fills hands its entries on early and starts again, so nothing is lost for want
//! of room — at worst a token's bucket is told in two records. Handed-on entries wait in
//! a short queue for the thread; when even that is full (the audit sink stalled for
//! long), they are dropped and counted ([`UsageRollup::dropped`],
//! `tokenlife_usage_dropped_total`), never silently.
//!
//! Who reaches it: anyone holding a token that validates. Many tokens make early
//! hand-ons, many addresses for one token stop at the bound; nothing they send grows
//! memory or blocks a request.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::audit::{AuditAction, AuditEvent, Auditor};
use super::event::{Event, Hit, Observer, TokenRef};
use super::lifecycle::TokenKind;
use super::metrics::USAGE_DROPPED;
use super::monitor::Monitor;
use super::trail::Stamp;
use crate::clock::Clock;
use crate::fingerprint::Fingerprint;
use crate::hash::{Prehashed, random_u64, token_key};

/// Shards of the map: concurrent requests rarely take the same lock.
const SHARDS: usize = 16;
/// The longest a client address is kept (longer ones are cut).
const MAX_CLIENT_LEN: usize = 64;
/// How long the thread waits for room in the auditor's queue, per record.
const EMIT_WAIT: Duration = Duration::from_millis(250);

/// One token's use in the current bucket.
struct Entry {
    fp: Fingerprint,
    kind: TokenKind,
    first: u64,
    last: u64,
    count: u64,
    version: Option<u64>,
    /// The validator's issuer (JWTs).
    issuer: Option<Box<str>>,
    clients: Vec<Box<str>>,
    more_clients: bool,
}

impl Entry {
    fn new(fp: Fingerprint, kind: TokenKind, now: u64, issuer: Option<&str>) -> Self {
        Self {
            fp,
            kind,
            first: now,
            last: now,
            count: 0,
            version: None,
            issuer: issuer.filter(|i| !i.is_empty()).map(Into::into),
            clients: Vec::new(),
            more_clients: false,
        }
    }

    fn seen(&mut self, now: u64, version: Option<u64>, client: Option<&str>, max: usize) {
        self.first = self.first.min(now);
        self.last = self.last.max(now);
        self.count += 1;
        if version.is_some() {
            self.version = version;
        }
        if let Some(c) = client {
            let c = cut(c);
            if !self.clients.iter().any(|k| &**k == c) {
                if self.clients.len() < max {
                    self.clients.push(c.into());
                } else {
                    self.more_clients = true;
                }
            }
        }
    }

    fn record(&self) -> AuditEvent {
        let detail = serde_json::json!({
            "first_seen": self.first,
            "last_seen": self.last,
            "count": self.count,
            "clients": self.clients,
            "more_clients": self.more_clients,
        });
        let mut e = AuditEvent::new(AuditAction::TokenUsed, self.last)
            .kind(self.kind)
            .fingerprint(self.fp)
            .address(self.clients.first().map(|c| &**c))
            .issuer(self.issuer.as_deref())
            .detail(detail.to_string());
        if let Some(v) = self.version {
            e = e.keyset_version(v);
        }
        e
    }
}

/// The longest prefix of `c` within [`MAX_CLIENT_LEN`] bytes, on a char boundary.
fn cut(c: &str) -> &str {
    if c.len() <= MAX_CLIENT_LEN {
        return c;
    }
    let mut end = MAX_CLIENT_LEN;
    while !c.is_char_boundary(end) {
        end -= 1;
    }
    &c[..end]
}

type Shard = HashMap<u128, Entry, Prehashed>;

enum Job {
    Entries(Vec<Entry>),
    Flush(SyncSender<()>),
}

struct Shared {
    stamp: Arc<Stamp>,
    auditor: Auditor,
    seed: u64,
    bucket: u64,
    per_shard: usize,
    max_clients: usize,
    every: bool,
    /// Start (Unix seconds) of the bucket being filled.
    start: AtomicU64,
    shards: Box<[Mutex<Shard>]>,
    tx: SyncSender<Job>,
    /// Entries handed on and not yet told: at most the capacity.
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
    /// Uses (not entries) dropped.
    dropped: AtomicU64,
}

impl Drop for Shared {
    /// What the last handle leaves behind is handed on (or counted), not lost.
    fn drop(&mut self) {
        self.hand_on(self.drain());
    }
}

impl Shared {
    fn drain(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(|p| p.into_inner()));
            out.extend(taken.into_values());
        }
        out
    }

    fn hand_on(&self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let n = entries.len();
        let room = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
                (f + n <= self.capacity).then_some(f + n)
            })
            .is_ok();
        if !room {
            return self.drop_uses(&entries);
        }
        if let Err(
            TrySendError::Full(Job::Entries(e)) | TrySendError::Disconnected(Job::Entries(e)),
        ) = self.tx.try_send(Job::Entries(entries))
        {
            self.in_flight.fetch_sub(n, Ordering::AcqRel);
            self.drop_uses(&e);
        }
    }

    fn drop_uses(&self, entries: &[Entry]) {
        let uses: u64 = entries.iter().map(|e| e.count).sum();
        self.dropped.fetch_add(uses, Ordering::Relaxed);
        metrics::counter!(USAGE_DROPPED).increment(uses);
    }

    /// A new bucket has begun: the one that ended is handed on (by whichever request
    /// noticed first).
    fn rotate(&self, now: u64) {
        let start = self.start.load(Ordering::Acquire);
        if now < start.saturating_add(self.bucket) {
            return;
        }
        let next = now - now % self.bucket;
        if self
            .start
            .compare_exchange(start, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.hand_on(self.drain());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn seen(
        &self,
        token: TokenRef<'_>,
        kind: TokenKind,
        version: Option<u64>,
        issuer: Option<&str>,
        client: Option<&str>,
        now: u64,
    ) {
        if self.every {
            let mut e = Entry::new(self.stamp.fp(token), kind, now, issuer);
            e.seen(now, version, client, self.max_clients);
            return self.auditor.emit(e.record());
        }
        self.rotate(now);
        // The validator's cache key: the length and the signature's last bytes, not the
        // whole token (several hundred bytes to hash on every request).
        let h = token_key(token.expose(), self.seed);
        #[allow(clippy::cast_possible_truncation)]
        let shard = &self.shards[(h >> 64) as usize % SHARDS];
        let full = {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = map.get_mut(&h) {
                e.seen(now, version, client, self.max_clients);
                None
            } else {
                let full = if map.len() >= self.per_shard {
                    Some(std::mem::take(&mut *map).into_values().collect::<Vec<_>>())
                } else {
                    None
                };
                let mut e = Entry::new(self.stamp.fp(token), kind, now, issuer);
                e.seen(now, version, client, self.max_clients);
                map.insert(h, e);
                full
            }
        };
        if let Some(entries) = full {
            self.hand_on(entries);
        }
    }
}

/// The rollup's thread: each handed-on batch becomes records for the auditor.
fn run(auditor: &Auditor, rx: &Receiver<Job>, in_flight: &AtomicUsize) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::Entries(entries) => {
                for e in &entries {
                    auditor.emit_waiting(e.record(), EMIT_WAIT);
                }
                in_flight.fetch_sub(entries.len(), Ordering::AcqRel);
            }
            Job::Flush(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// An [`Observer`] that rolls successful validations (JWTs and API keys) up per token per
/// time bucket into [`AuditAction::TokenUsed`] records (see the [module](self)). Cheap to
/// clone; add it beside the [`Monitor`] (for instance with
/// `ValidatorBuilder::also_observer`).
///
/// ```
/// use tokenlife_core::observe::audit::{AuditAction, Auditor};
/// use tokenlife_core::observe::usage::UsageRollup;
/// use tokenlife_core::observe::{Arm, Event, Observer, TokenRef, Validated};
/// use tokenlife_core::ManualClock;
///
/// let (sink, records) = Auditor::channel(16);
/// let auditor = Auditor::builder().sink(sink).build();
/// let clock = ManualClock::at_unix(1_000);
/// let usage = UsageRollup::builder(auditor.clone(), clock.clone(), [7; 32]).build();
/// let used = |client| Event::Validated {
///     outcome: Ok(Validated::default()), token: TokenRef::new("t"), keyset_version: 2,
///     issuer: "https://idp", arm: Arm::Active, client: Some(client), elapsed: None,
/// };
/// usage.on_event(&used("10.0.0.1"));
/// clock.advance(std::time::Duration::from_secs(5));
/// usage.on_event(&used("10.0.0.2"));
/// usage.flush();
/// auditor.flush();
/// let r = records.try_recv().unwrap();
/// assert_eq!((r.action, r.at, r.keyset_version), (AuditAction::TokenUsed, 1_005, Some(2)));
/// let d: serde_json::Value = serde_json::from_str(r.detail.as_deref().unwrap()).unwrap();
/// assert_eq!((d["first_seen"].as_u64(), d["count"].as_u64()), (Some(1_000), Some(2)));
/// assert_eq!(d["clients"], serde_json::json!(["10.0.0.1", "10.0.0.2"]));
/// ```
#[derive(Clone)]
pub struct UsageRollup {
    shared: Arc<Shared>,
}

impl fmt::Debug for UsageRollup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageRollup")
            .field("bucket", &self.shared.bucket)
            .field("every_validation", &self.shared.every)
            .finish_non_exhaustive()
    }
}

/// Builds a [`UsageRollup`].
#[must_use]
pub struct UsageRollupBuilder {
    auditor: Auditor,
    stamp: Arc<Stamp>,
    bucket: Duration,
    capacity: usize,
    max_clients: usize,
    every: bool,
}

impl fmt::Debug for UsageRollupBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageRollupBuilder")
            .field("bucket", &self.bucket)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl UsageRollup {
    /// Default bucket: a minute.
    pub const DEFAULT_BUCKET: Duration = Duration::from_secs(60);
    /// Default tokens held per bucket.
    pub const DEFAULT_CAPACITY: usize = 100_000;
    /// Default distinct client addresses kept per token and bucket.
    pub const DEFAULT_CLIENTS: usize = 8;

    /// A rollup writing to `auditor`, timed by `clock`, fingerprinting tokens with
    /// `fingerprint_key` (the monitor's, so its records and the trail's match: see
    /// [`for_monitor`](Self::for_monitor)).
    pub fn builder(
        auditor: Auditor,
        clock: impl Clock,
        fingerprint_key: [u8; 32],
    ) -> UsageRollupBuilder {
        Self::stamped(auditor, Stamp::new(Arc::new(clock), fingerprint_key))
    }

    /// A rollup writing to `monitor`'s auditor with its clock and fingerprint key; `None`
    /// when the monitor has no auditor.
    pub fn for_monitor(monitor: &Monitor) -> Option<UsageRollupBuilder> {
        Some(Self::stamped(monitor.auditor()?.clone(), monitor.stamp()))
    }

    fn stamped(auditor: Auditor, stamp: Arc<Stamp>) -> UsageRollupBuilder {
        UsageRollupBuilder {
            auditor,
            stamp,
            bucket: Self::DEFAULT_BUCKET,
            capacity: Self::DEFAULT_CAPACITY,
            max_clients: Self::DEFAULT_CLIENTS,
            every: false,
        }
    }

    /// Hands every token's use so far on to the auditor and waits (at most 10 s) until
    /// its thread has queued the records; [`Auditor::flush`] then waits for the sinks.
    /// For a query that must see the latest uses, and at shutdown. A token used again
    /// later in the same bucket gets a second record: readers sum them.
    pub fn flush(&self) {
        let wait = Duration::from_secs(10);
        // Room in flight first (the thread is telling earlier entries), within the wait.
        let deadline = std::time::Instant::now() + wait;
        while self.shared.in_flight.load(Ordering::Acquire) > 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.shared.hand_on(self.shared.drain());
        let (ack, done) = mpsc::sync_channel(1);
        if self.shared.tx.send(Job::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(wait);
        }
    }

    /// Hands the bucket on when its time is over even without a request to notice:
    /// call it now and then (the gateway does, every second) so a quiet service's last
    /// uses reach the trail within a bucket.
    pub fn tick(&self) {
        self.shared.rotate(self.shared.stamp.now());
    }

    /// Uses dropped because a capacity's worth of entries was already waiting for the
    /// audit queue (the audit sink stalled or far behind), so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Tokens held in the current bucket (at most the capacity).
    pub fn len(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl UsageRollupBuilder {
    /// The bucket length (default a minute; at least a second).
    pub fn bucket(mut self, bucket: Duration) -> Self {
        self.bucket = bucket.max(Duration::from_secs(1));
        self
    }

    /// Tokens held per bucket at most (default 100,000; at least one per shard), and as
    /// many again waiting for the audit queue: memory is at most twice this many entries.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// Distinct client addresses kept per token and bucket (default 8); past it the
    /// record says `more_clients`.
    pub fn clients_per_token(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }

    /// Records every successful validation as a record of its own (count 1) instead of
    /// rolling them up: for those who must keep every use. The auditor's queue bounds it
    /// (full: dropped and counted by the auditor).
    pub fn every_validation(mut self, every: bool) -> Self {
        self.every = every;
        self
    }

    /// Starts the rollup's thread.
    ///
    /// # Panics
    /// If the OS cannot start a thread.
    pub fn build(self) -> UsageRollup {
        let capacity = self.capacity.max(SHARDS);
        let (tx, rx) = mpsc::sync_channel(capacity.min(4_096));
        let auditor = self.auditor.clone();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counted = in_flight.clone();
        std::thread::Builder::new()
            .name("tokenlife-usage".into())
            .spawn(move || run(&auditor, &rx, &counted))
            .expect("spawn the usage rollup thread");
        UsageRollup {
            shared: Arc::new(Shared {
                stamp: self.stamp,
                auditor: self.auditor,
                seed: random_u64(),
                bucket: self.bucket.as_secs(),
                per_shard: capacity.div_ceil(SHARDS),
                max_clients: self.max_clients,
                every: self.every,
                start: AtomicU64::new(0),
                shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
                tx,
                in_flight,
                capacity,
                dropped: AtomicU64::new(0),
            }),
        }
    }
}

impl Observer for UsageRollup {
    fn on_hit(&self, hit: &Hit<'_>) {
        self.shared.seen(
            hit.token,
            TokenKind::Access,
            Some(hit.keyset_version),
            Some(hit.issuer),
            hit.client,
            hit.now,
        );
    }

    fn on_event(&self, event: &Event<'_>) {
        match *event {
            Event::Validated {
                outcome: Ok(_),
                token,
                keyset_version,
                issuer,
                client,
                ..
            } => self.shared.seen(
                token,
                TokenKind::Access,
                Some(keyset_version),
                Some(issuer),
                client,
                self.shared.stamp.now(),
            ),
            Event::ApiKeyChecked {
                outcome: Ok(()),
                token,
            } => self.shared.seen(
                token,
                TokenKind::ApiKey,
                None,
                None,
                None,
                self.shared.stamp.now(),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::Receiver;
    use std::time::Duration;

    use super::UsageRollup;
    use crate::clock::ManualClock;
    use crate::observe::audit::{AuditAction, AuditEvent, AuditSink, Auditor};
    use crate::observe::{Arm, Event, Observer, TokenRef, Validated};

    fn used<'a>(token: &'a str, client: Option<&'a str>) -> Event<'a> {
        Event::Validated {
            outcome: Ok(Validated::default()),
            token: TokenRef::new(token),
            keyset_version: 4,
            issuer: "https://idp",
            arm: Arm::Active,
            client,
            elapsed: None,
        }
    }

    fn detail(e: &AuditEvent) -> serde_json::Value {
        serde_json::from_str(e.detail.as_deref().unwrap_or("{}")).unwrap_or_default()
    }

    fn records(rx: &Receiver<AuditEvent>) -> Vec<AuditEvent> {
        rx.try_iter().collect()
    }

    #[test]
    fn a_bucket_becomes_one_record_per_token_with_its_bounded_addresses() {
        let (sink, rx) = Auditor::channel(1024);
        let auditor = Auditor::builder().sink(sink).build();
        let clock = ManualClock::at_unix(6_000);
        let usage = UsageRollup::builder(auditor.clone(), clock.clone(), [3; 32])
            .bucket(Duration::from_secs(60))
            .clients_per_token(2)
            .build();
        for (i, client) in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]
            .iter()
            .enumerate()
        {
            clock.set_unix(6_000 + i as u64);
            usage.on_event(&used("alice-token", Some(client)));
        }
        usage.on_event(&used("bob-token", None));
        // Within the bucket nothing is told yet.
        auditor.flush();
        assert!(records(&rx).is_empty());
        // The next bucket's first request hands the last one on.
        clock.set_unix(6_060);
        usage.on_event(&used("bob-token", Some("10.9.9.9")));
        usage.flush();
        auditor.flush();
        let mut got = records(&rx);
        got.sort_by_key(|e| (e.at, detail(e)["count"].as_u64()));
        assert_eq!(got.len(), 3, "{got:?}");
        let alice_fp = TokenRef::new("alice-token").fingerprint(&[3; 32]);
        let alice = got
            .iter()
            .find(|e| e.fingerprint == Some(alice_fp))
            .unwrap();
        let d = detail(alice);
        assert_eq!(alice.action, AuditAction::TokenUsed);
        assert_eq!((alice.at, alice.keyset_version), (6_003, Some(4)));
        assert_eq!(
            (d["first_seen"].as_u64(), d["last_seen"].as_u64()),
            (Some(6_000), Some(6_003))
        );
        assert_eq!(d["count"].as_u64(), Some(4));
        assert_eq!(d["clients"], serde_json::json!(["10.0.0.1", "10.0.0.2"]));
        assert_eq!(d["more_clients"], serde_json::json!(true));
        assert_eq!(alice.address.as_deref(), Some("10.0.0.1"));
        assert_eq!(alice.issuer.as_deref(), Some("https://idp"));
        // Bob: one use in each bucket, each its own record.
        let bob: Vec<_> = got
            .iter()
            .filter(|e| e.fingerprint != Some(alice_fp))
            .collect();
        assert_eq!(bob.iter().map(|e| e.at).collect::<Vec<_>>(), [6_003, 6_060]);
        // Failures are not the rollup's: the trail records each.
        usage.on_event(&Event::Validated {
            outcome: Err(crate::error::ValidationErrorKind::Expired),
            token: TokenRef::new("x"),
            keyset_version: 4,
            issuer: "i",
            arm: Arm::Active,
            client: None,
            elapsed: None,
        });
        assert!(usage.is_empty());
    }

    #[test]
    fn every_validation_is_a_record_when_asked() {
        let (sink, rx) = Auditor::channel(64);
        let auditor = Auditor::builder().sink(sink).build();
        let usage = UsageRollup::builder(auditor.clone(), ManualClock::at_unix(9), [1; 32])
            .every_validation(true)
            .build();
        for _ in 0..5 {
            usage.on_event(&used("t", Some("10.0.0.1")));
        }
        auditor.flush();
        let got = records(&rx);
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|e| detail(e)["count"].as_u64() == Some(1)));
        assert!(usage.is_empty());
    }

    /// ≥ 10× the capacity in distinct tokens from two threads while the clock moves:
    /// the map never holds more than the capacity, and every use is told — the counts of
    /// the records add up to the requests.
    #[test]
    fn memory_stays_bounded_under_churn_and_every_use_is_told_or_counted() {
        let (sink, rx) = Auditor::channel(1 << 20);
        let auditor = Auditor::builder().capacity(1 << 20).sink(sink).build();
        let clock = ManualClock::at_unix(100_000);
        let usage = UsageRollup::builder(auditor.clone(), clock.clone(), [9; 32])
            .capacity(160)
            .bucket(Duration::from_secs(10))
            .build();
        let max_seen = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..2 {
                let (usage, clock, max_seen) = (&usage, &clock, &max_seen);
                s.spawn(move || {
                    for i in 0..4_000u32 {
                        let token = format!("t{t}-{}", i % 2_000);
                        let client = format!("10.{t}.{}.{}", i % 7, i % 3);
                        usage.on_event(&used(&token, Some(&client)));
                        if i % 500 == 0 {
                            clock.advance(Duration::from_secs(3));
                        }
                        max_seen.fetch_max(usage.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        assert!(max_seen.into_inner() <= 160, "the map outgrew its capacity");
        usage.flush();
        auditor.flush();
        let got = records(&rx);
        let total: u64 = got
            .iter()
            .map(|e| detail(e)["count"].as_u64().unwrap_or(0))
            .sum();
        // Every use is told, or (when the rollup's thread fell a capacity behind) counted.
        assert_eq!(total + usage.dropped(), 8_000);
        assert!(total > 0);
        assert!(got.iter().all(|e| {
            detail(e)["clients"]
                .as_array()
                .is_some_and(|c| c.len() <= 8)
        }));
    }

    /// A sink that waits until released: the audit pipeline stalled.
    struct Stalled(std::sync::Arc<std::sync::Barrier>);

    impl AuditSink for Stalled {
        fn write(&mut self, _: &AuditEvent) {
            self.0.wait();
        }
    }

    /// The audit sink stalls: the auditor's queue fills, the rollup's thread waits, its
    /// own queue fills — then entries are dropped and counted, memory stays bounded and
    /// requests never wait.
    #[test]
    fn a_stalled_audit_sink_costs_counted_drops_never_a_blocked_request() {
        let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
        let auditor = Auditor::builder()
            .capacity(1)
            .sink(Stalled(gate.clone()))
            .build();
        let usage = UsageRollup::builder(auditor, ManualClock::at_unix(50), [2; 32])
            .capacity(16)
            .build();
        // Were a hand-on to wait, this loop would hang on the stalled sink.
        for i in 0..16 * 64 {
            usage.on_event(&used(&format!("t{i}"), None));
        }
        assert!(usage.dropped() > 0, "a full queue drops and counts");
        assert!(usage.len() <= 16);
        gate.wait();
    }
}
