//! Audit events and where they go: [`Auditor`] and its sinks.
//!
//! An [`AuditEvent`] says what happened to which token (by keyed fingerprint, never the
//! token), when, under which keyset version, with what outcome and why. The [`Auditor`]
//! hands events to the sinks (`tracing`, JSON lines, a channel of your own) on background
//! threads, through two lanes:
//!
//! - the *traffic* lane (validations, issues, renewals, alerts, failed authentications):
//!   a bounded queue that never blocks the caller; when it is full the event is dropped
//!   and counted;
//! - the *control* lane (keyset changes, successful admin actions and revocations): a
//!   queue of its own, so a flood of bad tokens can never push a rollback out of the
//!   audit trail. It never blocks either (no request thread waits on audit I/O): the
//!   admin operations ask [`Auditor::control_ready`] (through
//!   [`Observer::audit_ready`](crate::Observer::audit_ready)) before they change anything
//!   and answer 503 while a stalled sink has filled it; what still finds it full is
//!   counted ([`Auditor::control_dropped`]).
//!
//! # Examples
//!
//! ```
//! use tokenlife_core::observe::audit::{AuditAction, AuditEvent, Auditor};
//!
//! let (sink, events) = Auditor::channel(16);
//! let auditor = Auditor::builder().sink(sink).build();
//! auditor.emit(AuditEvent::new(AuditAction::KeysetRollback, 1_700_000_000).detail("to v1"));
//! auditor.flush();
//! assert_eq!(events.try_recv().unwrap().action, AuditAction::KeysetRollback);
//! ```

use std::fmt;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

use serde::Serialize;

use super::alert::AlertKind;
use super::lifecycle::TokenKind;
use crate::fingerprint::Fingerprint;

/// What an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditAction {
    /// A token was minted.
    TokenIssued,
    /// A refresh token was rotated (or an API key rotated).
    TokenRenewed,
    /// A token was presented and rejected.
    ValidationFailed,
    /// A token, subject or family was revoked.
    TokenRevoked,
    /// A token renewal was refused.
    RenewFailed,
    /// An alert was raised (see [`AuditEvent::alert`]).
    Alert,
    /// A keyset was published.
    KeysetPublished,
    /// A keyset was staged as a canary.
    KeysetStaged,
    /// The staged keyset was promoted.
    KeysetPromoted,
    /// The keyset was rolled back.
    KeysetRollback,
    /// A staged rollout was aborted.
    KeysetAborted,
    /// A canary's share changed.
    KeysetShare,
    /// A quarantined keyset version was released.
    KeysetReleased,
    /// A key was revoked as compromised (never trusted again).
    KeyRevoked,
    /// A keyset change removed keys (`reason`: the retirement policy).
    KeysRetired,
    /// A fetch of remote keys ended (`reason`: its outcome; `detail`: the source and any
    /// skipped keys).
    RemoteKeys,
    /// A shadow candidate would have rejected a token the current keyset accepted.
    ShadowRegression,
    /// A token's successful validations in one time bucket, rolled up by
    /// [`UsageRollup`](super::usage::UsageRollup) (`detail`: first and last seen, count,
    /// the distinct client addresses up to a bound), or one successful validation when it
    /// records every one.
    TokenUsed,
    /// An admin request (see `detail`).
    Admin,
    /// An OAuth client's or resource server's request (RFC 7009 revoke, RFC 7662
    /// introspect): traffic, never the control lane — any client can send these.
    ClientRequest,
}

impl AuditAction {
    /// Whether an event of this action with this outcome travels on the control lane
    /// (never dropped): keyset changes, and successful admin actions and revocations.
    pub fn is_control(self, outcome: &str) -> bool {
        match self {
            Self::KeysetPublished
            | Self::KeysetStaged
            | Self::KeysetPromoted
            | Self::KeysetRollback
            | Self::KeysetAborted
            | Self::KeysetShare
            | Self::KeysetReleased
            | Self::KeyRevoked
            | Self::KeysRetired
            | Self::RemoteKeys => true,
            Self::Admin | Self::TokenRevoked => outcome == "ok",
            _ => false,
        }
    }
}

/// One audit record. Carries a fingerprint, never a token or key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When, Unix seconds (from the injected clock).
    pub at: u64,
    /// What happened.
    pub action: AuditAction,
    /// `ok` or `failure`.
    pub outcome: &'static str,
    /// Why (a stable, low-cardinality reason such as `expired`, `refresh_reuse`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Access, refresh or API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_kind: Option<TokenKind>,
    /// The keyed fingerprint of the token concerned.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_fp")]
    pub fingerprint: Option<Fingerprint>,
    /// The keyset version in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyset_version: Option<u64>,
    /// The token's subject, where the auditor allows subjects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The client (API-key owner, OAuth client, or the actor of an admin action) where
    /// known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The address the token was presented from (validations, their alerts, usage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The token's `jti` (issued access tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The issuer (`iss`) concerned: the one that minted the token, or the validator's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The id of the trace active when it was emitted ([`AuditorBuilder::trace_id`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The kid of the key that signed the token (issued JWTs): what `tokenlife check
    /// --audit` checks a candidate keyset against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The algorithm of that key (`"ES256"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<jsonwebtoken::Algorithm>,
    /// The alert, for [`AuditAction::Alert`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertKind>,
    /// Free text for admin actions (never token material).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

fn ser_fp<S: serde::Serializer>(fp: &Option<Fingerprint>, s: S) -> Result<S::Ok, S::Error> {
    match fp {
        Some(fp) => s.collect_str(fp),
        None => s.serialize_none(),
    }
}

impl AuditEvent {
    /// An `ok` event of this action at `at` (Unix seconds).
    pub fn new(action: AuditAction, at: u64) -> Self {
        Self {
            at,
            action,
            outcome: "ok",
            reason: None,
            token_kind: None,
            fingerprint: None,
            keyset_version: None,
            subject: None,
            client: None,
            address: None,
            jti: None,
            issuer: None,
            trace_id: None,
            kid: None,
            alg: None,
            alert: None,
            detail: None,
        }
    }

    /// Sets the signing key's kid and algorithm.
    #[must_use]
    pub fn key(mut self, kid: &str, alg: jsonwebtoken::Algorithm) -> Self {
        self.kid = Some(kid.to_owned());
        self.alg = Some(alg);
        self
    }

    /// Marks it a failure with a reason.
    #[must_use]
    pub fn failure(mut self, reason: &'static str) -> Self {
        self.outcome = "failure";
        self.reason = Some(reason);
        self
    }

    /// Sets the reason.
    #[must_use]
    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Sets the token kind.
    #[must_use]
    pub fn kind(mut self, kind: TokenKind) -> Self {
        self.token_kind = Some(kind);
        self
    }

    /// Sets the fingerprint.
    #[must_use]
    pub fn fingerprint(mut self, fp: Fingerprint) -> Self {
        self.fingerprint = Some(fp);
        self
    }

    /// Sets the keyset version.
    #[must_use]
    pub fn keyset_version(mut self, v: u64) -> Self {
        self.keyset_version = Some(v);
        self
    }

    /// Sets the subject.
    #[must_use]
    pub fn subject(mut self, sub: Option<&str>) -> Self {
        self.subject = sub.map(str::to_owned);
        self
    }

    /// Sets the client.
    #[must_use]
    pub fn client(mut self, client: Option<&str>) -> Self {
        self.client = client.map(str::to_owned);
        self
    }

    /// Sets the address the token came from.
    #[must_use]
    pub fn address(mut self, address: Option<&str>) -> Self {
        self.address = address.map(str::to_owned);
        self
    }

    /// Sets the `jti`.
    #[must_use]
    pub fn jti(mut self, jti: Option<&str>) -> Self {
        self.jti = jti.map(str::to_owned);
        self
    }

    /// Sets the issuer.
    #[must_use]
    pub fn issuer(mut self, issuer: Option<&str>) -> Self {
        self.issuer = issuer.filter(|i| !i.is_empty()).map(str::to_owned);
        self
    }

    /// Sets the alert.
    #[must_use]
    pub fn alert(mut self, alert: AlertKind) -> Self {
        self.alert = Some(alert);
        self
    }

    /// Sets the detail text.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The event as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where audit events end up. Runs on the auditor's background thread.
pub trait AuditSink: Send + 'static {
    /// Records one event.
    fn write(&mut self, event: &AuditEvent);
    /// Flushes buffered output.
    fn flush(&mut self) {}
}

/// Emits each event as a `tracing` event at INFO (target `tokenlife::audit`), with the
/// event as JSON in the `event` field.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl AuditSink for TracingSink {
    fn write(&mut self, event: &AuditEvent) {
        tracing::info!(target: "tokenlife::audit", action = ?event.action, outcome = event.outcome,
            reason = event.reason, event = %event.to_json(), "audit");
    }
}

/// Writes each event as one line of JSON.
#[derive(Debug)]
pub struct JsonLinesSink<W: Write + Send + 'static> {
    out: W,
}

impl<W: Write + Send + 'static> JsonLinesSink<W> {
    /// Writes to `out` (a `File`, a `BufWriter`, …).
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write + Send + 'static> AuditSink for JsonLinesSink<W> {
    fn write(&mut self, event: &AuditEvent) {
        let mut line = event.to_json();
        line.push('\n');
        // An audit write failure must not take the service down; the event is lost.
        let _ = self.out.write_all(line.as_bytes());
    }
    fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

/// Forwards events to a bounded channel of your own; drops (and counts) when it is full.
#[derive(Debug)]
pub struct ChannelSink {
    tx: SyncSender<AuditEvent>,
    dropped: Arc<AtomicU64>,
}

impl ChannelSink {
    /// Events dropped because the consumer was not keeping up.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }
}

impl AuditSink for ChannelSink {
    fn write(&mut self, event: &AuditEvent) {
        if self.tx.try_send(event.clone()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

enum Msg {
    Event(Box<AuditEvent>),
    Flush(SyncSender<()>),
}

/// Queues audit events for the sinks. Cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    traffic: SyncSender<Msg>,
    control: SyncSender<Msg>,
    /// Control events queued and not yet written.
    control_queued: Arc<AtomicU64>,
    control_dropped: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    subjects: bool,
    on_drop: metrics::Counter,
    trace_id: Option<TraceId>,
}

/// What reads the active trace's id (see [`AuditorBuilder::trace_id`]).
type TraceId = Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl fmt::Debug for Auditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auditor")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

/// Default capacity of the traffic lane's queue.
const DEFAULT_QUEUE: usize = 4096;

/// Capacity of the control lane's queue.
const CONTROL_QUEUE: usize = 1024;
/// Room kept in the control lane for what follows an admin action (its own events).
const CONTROL_HEADROOM: u64 = 16;

impl Auditor {
    /// Default capacity of the traffic lane's queue.
    pub const DEFAULT_QUEUE: usize = DEFAULT_QUEUE;
    /// Capacity of the control lane's queue.
    pub const CONTROL_QUEUE: usize = CONTROL_QUEUE;

    /// Starts an auditor.
    pub fn builder() -> AuditorBuilder {
        AuditorBuilder {
            sinks: Vec::new(),
            capacity: DEFAULT_QUEUE,
            subjects: true,
            trace_id: None,
        }
    }

    /// A channel sink and the receiver to read events from (bounded at `capacity`).
    pub fn channel(capacity: usize) -> (ChannelSink, Receiver<AuditEvent>) {
        let (tx, rx) = mpsc::sync_channel(capacity);
        (
            ChannelSink {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    /// Queues an event; never blocks. A traffic event is dropped and counted when its
    /// queue is full; a control event ([`AuditAction::is_control`]) goes on the control
    /// lane, which the admin operations keep from filling ([`control_ready`](Self::control_ready));
    /// one that still finds it full is dropped and counted in
    /// [`control_dropped`](Self::control_dropped).
    pub fn emit(&self, mut event: AuditEvent) {
        if !self.subjects {
            event.subject = None;
        }
        if event.trace_id.is_none()
            && let Some(f) = &self.trace_id
        {
            event.trace_id = f();
        }
        if event.action.is_control(event.outcome) {
            self.control_queued.fetch_add(1, Ordering::AcqRel);
            if self.control.try_send(Msg::Event(Box::new(event))).is_err() {
                self.control_queued.fetch_sub(1, Ordering::AcqRel);
                self.control_dropped.fetch_add(1, Ordering::Relaxed);
                self.count_drop();
            }
            return;
        }
        match self.traffic.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.count_drop(),
        }
    }

    /// Queues a traffic event, waiting up to `wait` for room: for the auditor's own
    /// background producers (the usage rollup's thread), never for a request thread.
    pub(crate) fn emit_waiting(&self, mut event: AuditEvent, wait: std::time::Duration) {
        if !self.subjects {
            event.subject = None;
        }
        let deadline = std::time::Instant::now() + wait;
        let mut msg = Msg::Event(Box::new(event));
        loop {
            match self.traffic.try_send(msg) {
                Ok(()) => return,
                Err(TrySendError::Full(m)) if std::time::Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(_) => return self.count_drop(),
            }
        }
    }

    fn count_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.on_drop.increment(1);
    }

    /// Waits until every event queued so far, on both lanes, has reached the sinks, and
    /// flushes them.
    pub fn flush(&self) {
        for lane in [&self.traffic, &self.control] {
            let (tx, rx) = mpsc::sync_channel(1);
            if lane.send(Msg::Flush(tx)).is_ok() {
                let _ = rx.recv();
            }
        }
    }

    /// Events dropped so far because their queue was full (both lanes).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Control events dropped because the control lane was full (a sink stalled long
    /// enough for the admin operations' check to be raced past).
    pub fn control_dropped(&self) -> u64 {
        self.control_dropped.load(Ordering::Relaxed)
    }

    /// Whether the control lane has room for an admin action's events: while a stalled
    /// sink keeps it full, admin operations refuse (503) instead of acting unaudited.
    pub fn control_ready(&self) -> bool {
        self.control_queued.load(Ordering::Acquire) + CONTROL_HEADROOM <= CONTROL_QUEUE as u64
    }
}

type Sinks = Arc<std::sync::Mutex<Vec<Box<dyn AuditSink>>>>;

/// One lane's thread: hands each event to every sink (counting down `queued`, the
/// control lane's count, after each).
fn lane(name: &str, rx: Receiver<Msg>, sinks: Sinks, queued: Option<Arc<AtomicU64>>) {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let lock = || sinks.lock().unwrap_or_else(|p| p.into_inner());
            while let Ok(msg) = rx.recv() {
                match msg {
                    Msg::Event(e) => {
                        lock().iter_mut().for_each(|s| s.write(&e));
                        if let Some(q) = &queued {
                            q.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                    Msg::Flush(ack) => {
                        lock().iter_mut().for_each(|s| s.flush());
                        let _ = ack.send(());
                    }
                }
            }
            lock().iter_mut().for_each(|s| s.flush());
        })
        .expect("spawn an audit thread");
}

/// Builds an [`Auditor`].
#[must_use]
pub struct AuditorBuilder {
    sinks: Vec<Box<dyn AuditSink>>,
    capacity: usize,
    subjects: bool,
    trace_id: Option<TraceId>,
}

impl fmt::Debug for AuditorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditorBuilder")
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

impl AuditorBuilder {
    /// Stamps every event emitted while a trace is active with its id, read by `f` on
    /// the emitting thread (tokenlife stays free of OpenTelemetry: with
    /// `tracing-opentelemetry`, `f` reads `Span::current().context()`'s trace id).
    pub fn trace_id(mut self, f: impl Fn() -> Option<String> + Send + Sync + 'static) -> Self {
        self.trace_id = Some(Arc::new(f));
        self
    }

    /// Adds a sink.
    pub fn sink(mut self, sink: impl AuditSink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Adds the `tracing` sink.
    pub fn tracing(self) -> Self {
        self.sink(TracingSink)
    }

    /// Adds a JSON-lines sink writing to `out`.
    pub fn json_lines(self, out: impl Write + Send + 'static) -> Self {
        self.sink(JsonLinesSink::new(out))
    }

    /// Queue capacity (default 4096); past it events are dropped and counted.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Whether events may carry the token's subject (default true). Turn off where
    /// subjects are personal data your audit store must not hold.
    pub fn subjects(mut self, allow: bool) -> Self {
        self.subjects = allow;
        self
    }

    /// Starts the two lanes' background threads and returns the auditor.
    ///
    /// # Panics
    /// If the OS cannot start a thread.
    pub fn build(self) -> Auditor {
        let (traffic, traffic_rx) = mpsc::sync_channel::<Msg>(self.capacity);
        let (control, control_rx) = mpsc::sync_channel::<Msg>(CONTROL_QUEUE);
        let sinks: Sinks = Arc::new(std::sync::Mutex::new(self.sinks));
        let control_queued = Arc::new(AtomicU64::new(0));
        lane("tokenlife-audit", traffic_rx, sinks.clone(), None);
        lane(
            "tokenlife-audit-control",
            control_rx,
            sinks,
            Some(control_queued.clone()),
        );
        Auditor {
            traffic,
            control,
            control_queued,
            control_dropped: Arc::new(AtomicU64::new(0)),
            dropped: Arc::new(AtomicU64::new(0)),
            subjects: self.subjects,
            on_drop: metrics::counter!(super::metrics::AUDIT_DROPPED),
            trace_id: self.trace_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_and_subject_policy() {
        let out = Shared::default();
        let a = Auditor::builder()
            .json_lines(out.clone())
            .subjects(false)
            .build();
        a.emit(
            AuditEvent::new(AuditAction::TokenIssued, 5)
                .subject(Some("alice"))
                .kind(TokenKind::Access),
        );
        a.flush();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "{\"at\":5,\"action\":\"token_issued\",\"outcome\":\"ok\",\"token_kind\":\"access\"}\n"
        );
    }

    /// A sink that blocks until released, to fill the queue.
    struct Gate(Arc<Mutex<()>>);
    impl AuditSink for Gate {
        fn write(&mut self, _: &AuditEvent) {
            drop(self.0.lock().unwrap());
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let a = Auditor::builder()
            .sink(Gate(gate.clone()))
            .capacity(2)
            .build();
        for i in 0..50 {
            a.emit(AuditEvent::new(AuditAction::ValidationFailed, i));
        }
        // At most: one in the sink, two queued.
        assert!(a.dropped() >= 47, "dropped {}", a.dropped());
        drop(held);
        a.flush();
    }

    /// A sink that blocks until released and keeps what it saw.
    struct Recording(Arc<Mutex<()>>, Arc<Mutex<Vec<AuditAction>>>);
    impl AuditSink for Recording {
        fn write(&mut self, e: &AuditEvent) {
            drop(self.0.lock().unwrap());
            self.1.lock().unwrap().push(e.action);
        }
    }

    /// An auditor (traffic queue of 4) whose one sink records actions and waits while
    /// the gate is held.
    type Seen = Arc<Mutex<Vec<AuditAction>>>;

    fn gated_auditor() -> (Arc<Mutex<()>>, Seen, Auditor) {
        let gate = Arc::new(Mutex::new(()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let a = Auditor::builder()
            .sink(Recording(gate.clone(), seen.clone()))
            .capacity(4)
            .build();
        (gate, seen, a)
    }

    /// Security review 3, MEDIUM 8: a stalled sink never blocks the caller, on either
    /// lane; the control lane says when it has no room, and what finds it full is
    /// counted.
    #[test]
    fn a_stalled_sink_never_blocks_and_the_control_lane_says_when_it_is_full() {
        let (gate, _seen, a) = gated_auditor();
        let held = gate.lock().unwrap();
        assert!(a.control_ready());
        // Far more control events than the lane holds: every call returns.
        for i in 0..(CONTROL_QUEUE as u64 * 3) {
            a.emit(AuditEvent::new(AuditAction::KeysetRollback, i));
        }
        assert!(!a.control_ready());
        assert!(a.control_dropped() > 0);
        drop(held);
        a.flush();
        assert!(a.control_ready(), "room again once the sink moves");
    }

    /// Finding 11: a flood of traffic events cannot push admin and keyset events out.
    #[test]
    fn control_events_survive_a_flood_of_traffic() {
        let (gate, seen, a) = gated_auditor();
        let held = gate.lock().unwrap();
        for i in 0..10_000 {
            a.emit(AuditEvent::new(AuditAction::ValidationFailed, i).failure("bad_signature"));
            if i % 1000 == 0 {
                a.emit(AuditEvent::new(AuditAction::KeysetRollback, i));
                a.emit(AuditEvent::new(AuditAction::Admin, i).detail("revoke jti"));
            }
        }
        assert!(a.dropped() >= 9_000);
        drop(held);
        a.flush();
        let seen = seen.lock().unwrap();
        let count = |x| seen.iter().filter(|a| **a == x).count();
        assert_eq!(count(AuditAction::KeysetRollback), 10);
        assert_eq!(count(AuditAction::Admin), 10);
    }
}
