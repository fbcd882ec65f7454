//! [`Monitor`]: metrics, lifecycle tracking, audit and alerts in one [`Observer`], shared
//! by the validator, the issuer, API keys, the revocation list and the admin operations.
//!
//! # Examples
//!
//! ```
//! use tokenlife_core::observe::audit::Auditor;
//! use tokenlife_core::observe::{AlertPolicy, Monitor};
//!
//! let (sink, events) = Auditor::channel(1024);
//! let monitor = Monitor::builder()
//!     .auditor(Auditor::builder().tracing().sink(sink).build())
//!     .alert_policy(AlertPolicy::default())
//!     .build();
//! // Validator::builder(store).monitor(monitor.clone()) …, Issuer::builder(store).monitor(monitor) …
//! # let _ = (monitor, events);
//! ```

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::Counter;

use super::alert::{AlertKind, AlertPolicy, Detector};
use super::audit::{AuditAction, AuditEvent, Auditor};
use super::event::{
    AdminFailure, Arm, Event, FleetEvent, Observer, RemoteFetch, RetirementPolicy, RevokeReason,
    TokenRef,
};
use super::lifecycle::{LifecycleTracker, TokenKind, TokenState};
use super::metrics::{self as m, Handles, VersionCounters};
use crate::clock::{Clock, SystemClock};
use crate::error::ValidationErrorKind as Kind;
use crate::error::{ApiKeyErrorKind, RenewErrorKind};
use crate::fingerprint::Fingerprint;
use crate::hash::random_key;

/// Keyset versions whose counters stay registered in the monitor.
const RECENT_VERSIONS: usize = 4;

/// Distinct keyset versions that get series of their own (16 each) over the life of a
/// process; later versions share `keyset_version="other"`, so the recorder's series stay
/// bounded however many deploys a process sees.
const MAX_VERSION_LABELS: usize = 64;

/// Default: one validation in 16 has its latency recorded.
const DEFAULT_LATENCY_SAMPLE: u32 = 16;

/// Observability for the token lifecycle. Cheap to clone; clones share everything.
///
/// Install your metrics recorder before building it: it registers its metric handles once.
#[derive(Clone)]
pub struct Monitor {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    fingerprint_key: [u8; 32],
    auditor: Option<Auditor>,
    tracker: LifecycleTracker,
    detector: Detector,
    handles: Handles,
    versions: ArcSwap<Recent>,
    labelled_versions: std::sync::atomic::AtomicUsize,
    issued: [Counter; TokenKind::COUNT],
    renewed: [Counter; TokenKind::COUNT],
    expired: [Counter; TokenKind::COUNT],
    alerts: [Counter; AlertKind::ALL.len()],
    revoked: Vec<((TokenKind, &'static str), Counter)>,
    /// `ok`, then one per [`ApiKeyErrorKind`], in its table order.
    api_key_outcomes: Vec<Counter>,
    sample: u32,
}

const REVOKE_REASONS: [(TokenKind, &str); 6] = [
    (TokenKind::Access, "jti"),
    (TokenKind::Access, "subject"),
    (TokenKind::Access, "family"),
    (TokenKind::Refresh, "family"),
    (TokenKind::Refresh, "refresh_reuse"),
    (TokenKind::ApiKey, "api_key"),
];

impl Drop for Inner {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.fingerprint_key);
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("auditor", &self.inner.auditor)
            .finish_non_exhaustive()
    }
}

/// Counters of the most recently seen keyset versions; the current one inline, so the hot
/// path follows one pointer.
struct Recent {
    head: Option<VersionCounters>,
    older: Vec<VersionCounters>,
}

impl Recent {
    fn iter(&self) -> impl Iterator<Item = &VersionCounters> {
        self.head.iter().chain(self.older.iter())
    }
}

thread_local! {
    static SAMPLE: Cell<u32> = const { Cell::new(0) };
}

fn per_kind(name: &'static str) -> [Counter; TokenKind::COUNT] {
    TokenKind::ALL.map(|k| metrics::counter!(name, "kind" => k.as_str()))
}

impl Monitor {
    /// Distinct keyset versions that get metric series of their own over the life of a
    /// process; later versions share `keyset_version="other"`.
    pub const MAX_VERSION_LABELS: usize = MAX_VERSION_LABELS;
    /// Default: one validation in this many has its latency recorded.
    pub const DEFAULT_LATENCY_SAMPLE: u32 = DEFAULT_LATENCY_SAMPLE;
}

impl Monitor {
    /// Starts a monitor (system clock, random fingerprint key, no audit sinks, default alerts).
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder {
            clock: Arc::new(SystemClock),
            fingerprint_key: None,
            auditor: None,
            policy: AlertPolicy::default(),
            sample: DEFAULT_LATENCY_SAMPLE,
        }
    }

    /// The lifecycle tracker.
    pub fn tracker(&self) -> &LifecycleTracker {
        &self.inner.tracker
    }

    /// The auditor, if one was given.
    pub fn auditor(&self) -> Option<&Auditor> {
        self.inner.auditor.as_ref()
    }

    /// The keyed fingerprint of a token or key.
    pub fn fingerprint(&self, token: &str) -> Fingerprint {
        Fingerprint::compute(&self.inner.fingerprint_key, token)
    }

    /// Unix seconds on the monitor's clock.
    pub fn now(&self) -> u64 {
        self.inner.clock.unix_now()
    }

    /// Queues an audit event (if there is an auditor).
    fn audit(&self, event: AuditEvent) {
        if let Some(a) = &self.inner.auditor {
            a.emit(event);
        }
    }

    /// Raises an alert: counter, plus an audit event built on `base`.
    fn alert(&self, kind: AlertKind, base: AuditEvent) {
        self.inner.alerts[kind.index()].increment(1);
        let mut e = base.alert(kind);
        e.action = AuditAction::Alert;
        self.audit(e);
    }

    /// Records a lifecycle transition; an illegal one is counted nowhere and ignored
    /// here (callers that care use [`LifecycleTracker::record`] directly).
    fn transition(&self, kind: TokenKind, from: Option<TokenState>, to: TokenState) {
        let _ = self.inner.tracker.record(kind, from, to);
        let per_kind = match to {
            TokenState::Issued => &self.inner.issued,
            TokenState::Renewed => &self.inner.renewed,
            TokenState::Expired => &self.inner.expired,
            _ => return,
        };
        per_kind[kind.index()].increment(1);
    }

    /// Counts a revocation.
    fn revoked(&self, kind: TokenKind, reason: RevokeReason, entries: Option<u64>) {
        let reason = reason.as_str();
        if let Some((_, c)) = self
            .inner
            .revoked
            .iter()
            .find(|(k, _)| *k == (kind, reason))
        {
            c.increment(1);
        }
        if let Some(n) = entries {
            self.inner.handles.revocation_entries.set(n as f64);
        }
    }

    fn api_key_outcome(&self, outcome: Result<(), ApiKeyErrorKind>) {
        let i = outcome.map_or_else(|k| 1 + k.index(), |()| 0);
        if let Some(c) = self.inner.api_key_outcomes.get(i) {
            c.increment(1);
        }
    }

    fn fp(&self, token: TokenRef<'_>) -> Fingerprint {
        token.fingerprint(&self.inner.fingerprint_key)
    }

    /// Runs `f` with the counters of this keyset version: one lock-free load. The last
    /// few versions stay registered, so a rollback flipping between two versions does
    /// not register anything again.
    #[inline]
    fn with_counters(&self, version: u64, f: impl FnOnce(&VersionCounters)) {
        let recent = self.inner.versions.load();
        if let Some(head) = &recent.head
            && head.version == version
        {
            return f(head);
        }
        let known = recent.iter().find(|c| c.version == version).cloned();
        let counters = known.unwrap_or_else(|| {
            let n = self
                .inner
                .labelled_versions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            VersionCounters::new(version, n >= MAX_VERSION_LABELS)
        });
        f(&counters);
        let older = recent
            .iter()
            .filter(|c| c.version != version)
            .take(RECENT_VERSIONS - 1)
            .cloned()
            .collect();
        self.inner.versions.store(Arc::new(Recent {
            head: Some(counters),
            older,
        }));
        self.inner.handles.keyset_version.set(version as f64);
    }

    /// Everything a validation outcome feeds: counters, lifecycle, audit, alerts.
    #[inline]
    fn validated(
        &self,
        outcome: &Result<super::Validated, Kind>,
        token: TokenRef<'_>,
        client: Option<&str>,
        version: u64,
        elapsed: Option<Duration>,
    ) {
        let inner = &*self.inner;
        if let Some(t) = elapsed {
            inner.handles.duration.record(t.as_secs_f64());
        }
        match outcome {
            Ok(v) => {
                self.with_counters(version, |c| c.ok.increment(1));
                if v.from_cache {
                    inner.handles.cache_hits.increment(1);
                } else {
                    inner.handles.cache_misses.increment(1);
                    // First time this node sees the token valid.
                    self.transition(
                        TokenKind::Access,
                        Some(TokenState::Issued),
                        TokenState::Active,
                    );
                }
            }
            &Err(kind) => {
                self.with_counters(version, |c| c.failed[kind.index()].increment(1));
                if kind == Kind::MissingToken {
                    return;
                }
                let now = self.now();
                let fp = self.fp(token);
                let event = AuditEvent::new(AuditAction::ValidationFailed, now)
                    .failure(kind.as_str())
                    .kind(TokenKind::Access)
                    .fingerprint(fp)
                    .keyset_version(version)
                    .client(client);
                match kind {
                    Kind::Expired => self.transition(
                        TokenKind::Access,
                        Some(TokenState::Active),
                        TokenState::Expired,
                    ),
                    Kind::Revoked => self.alert(
                        AlertKind::RevokedTokenReuse,
                        event.clone().reason(kind.as_str()),
                    ),
                    _ => self.transition(TokenKind::Access, None, TokenState::Rejected),
                }
                self.audit(event);
                let bad_key = matches!(
                    kind,
                    Kind::BadSignature | Kind::UnknownKid | Kind::AlgorithmMismatch
                );
                for alert in inner.detector.failure(now, client, bad_key) {
                    let base = AuditEvent::new(AuditAction::Alert, now)
                        .failure(kind.as_str())
                        .keyset_version(version)
                        .client(client);
                    self.alert(alert, base);
                }
            }
        }
    }
}

impl Observer for Monitor {
    fn audit_ready(&self) -> bool {
        self.inner
            .auditor
            .as_ref()
            .is_none_or(super::audit::Auditor::control_ready)
    }

    fn time_validation(&self) -> bool {
        let every = self.inner.sample;
        if every == 0 {
            return false;
        }
        SAMPLE.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n % every == 0
        })
    }

    fn fingerprint_key(&self) -> Option<[u8; 32]> {
        Some(self.inner.fingerprint_key)
    }

    fn on_event(&self, event: &Event<'_>) {
        match *event {
            Event::Validated {
                ref outcome,
                token,
                keyset_version,
                arm,
                client,
                elapsed,
            } => {
                if arm != Arm::Active {
                    let out = outcome.map_or_else(Kind::as_str, |_| "ok");
                    metrics::counter!(m::ROLLOUT_VALIDATIONS, "arm" => arm.as_str(), "outcome" => out)
                        .increment(1);
                }
                self.validated(outcome, token, client, keyset_version, elapsed);
            }
            Event::Shadow {
                outcome,
                token,
                keyset_version,
                client,
            } => {
                let out = outcome.map_or_else(Kind::as_str, |()| "ok");
                metrics::counter!(m::SHADOW_VALIDATIONS, "outcome" => out).increment(1);
                if outcome.is_err() {
                    self.audit(
                        AuditEvent::new(AuditAction::ShadowRegression, self.now())
                            .failure(out)
                            .kind(TokenKind::Access)
                            .fingerprint(self.fp(token))
                            .keyset_version(keyset_version)
                            .client(client),
                    );
                }
            }
            Event::RemoteKeys {
                source,
                outcome,
                version,
                skipped,
            } => {
                metrics::counter!(m::REMOTE_FETCHES, "outcome" => outcome.as_str()).increment(1);
                if outcome == RemoteFetch::Updated && !skipped.is_empty() {
                    metrics::counter!(m::REMOTE_KEYS_SKIPPED).increment(skipped.len() as u64);
                }
                let skipped = if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; skipped {}", skipped.join(", "))
                };
                let event = AuditEvent::new(AuditAction::RemoteKeys, self.now());
                let (event, state) = if outcome.is_failure() {
                    (
                        event.failure(outcome.as_str()),
                        "failed, last good keys kept",
                    )
                } else {
                    (event.reason(outcome.as_str()), "ok")
                };
                self.audit(
                    event
                        .keyset_version(version)
                        .detail(format!("{source}: {state}{skipped}")),
                );
            }
            Event::KeysRetired {
                version,
                kids,
                policy,
                until,
            } => {
                let policy = policy.as_str();
                metrics::counter!(m::KEYS_RETIRED, "policy" => policy).increment(kids.len() as u64);
                for p in RetirementPolicy::ALL.map(RetirementPolicy::as_str) {
                    let on = if p == policy { 1.0 } else { 0.0 };
                    metrics::gauge!(m::RETIREMENT_POLICY, "policy" => p).set(on);
                }
                let until = until.map_or(String::new(), |u| format!(" until {u}"));
                self.audit(
                    AuditEvent::new(AuditAction::KeysRetired, self.now())
                        .reason(policy)
                        .keyset_version(version)
                        .detail(format!("retired {}: {policy}{until}", kids.join(","))),
                );
            }
            Event::Issued {
                kind,
                token,
                keyset_version,
                key,
                subject,
                client,
            } => {
                self.transition(kind, None, TokenState::Issued);
                let mut e = AuditEvent::new(AuditAction::TokenIssued, self.now())
                    .kind(kind)
                    .fingerprint(self.fp(token))
                    .subject(subject)
                    .client(client);
                if let Some(v) = keyset_version {
                    e = e.keyset_version(v);
                }
                if let Some((kid, alg)) = key {
                    e = e.key(kid, alg);
                }
                self.audit(e);
            }
            Event::Renewed {
                kind,
                token,
                subject,
                client,
            } => {
                let from = match kind {
                    TokenKind::ApiKey => TokenState::Active,
                    _ => TokenState::Issued,
                };
                self.transition(kind, Some(from), TokenState::Renewed);
                let mut e = AuditEvent::new(AuditAction::TokenRenewed, self.now())
                    .kind(kind)
                    .subject(subject)
                    .client(client);
                if let Some(t) = token {
                    e = e.fingerprint(self.fp(t));
                }
                self.audit(e);
            }
            Event::RenewFailed {
                reason,
                token,
                subject,
                client,
            } => {
                self.audit(
                    AuditEvent::new(AuditAction::RenewFailed, self.now())
                        .failure(reason.as_str())
                        .kind(TokenKind::Refresh)
                        .fingerprint(self.fp(token))
                        .subject(subject)
                        .client(client),
                );
                if reason == RenewErrorKind::Expired {
                    self.transition(
                        TokenKind::Refresh,
                        Some(TokenState::Issued),
                        TokenState::Expired,
                    );
                }
            }
            Event::RefreshReuse {
                token,
                subject,
                client,
                revocation_entries,
            } => {
                self.inner.handles.refresh_reuse.increment(1);
                self.transition(
                    TokenKind::Refresh,
                    Some(TokenState::Renewed),
                    TokenState::Revoked,
                );
                let base = AuditEvent::new(AuditAction::Alert, self.now())
                    .failure("refresh_reuse")
                    .kind(TokenKind::Refresh)
                    .fingerprint(self.fp(token))
                    .subject(Some(subject))
                    .client(client);
                self.alert(AlertKind::RefreshTokenReuse, base);
                self.revoked(
                    TokenKind::Refresh,
                    RevokeReason::RefreshReuse,
                    Some(revocation_entries),
                );
            }
            Event::Revoked {
                kind,
                reason,
                from,
                subject,
                client,
                revocation_entries,
                audited,
            } => {
                self.revoked(kind, reason, revocation_entries);
                if let Some(from) = from {
                    self.transition(kind, Some(from), TokenState::Revoked);
                }
                if audited {
                    let mut e = AuditEvent::new(AuditAction::TokenRevoked, self.now())
                        .kind(kind)
                        .subject(subject)
                        .client(client);
                    if kind != TokenKind::ApiKey {
                        e = e.reason(reason.as_str());
                    }
                    self.audit(e);
                }
            }
            Event::ApiKeyChecked { outcome, token } => {
                self.api_key_outcome(outcome);
                if let Err(reason) = outcome {
                    self.audit(
                        AuditEvent::new(AuditAction::ValidationFailed, self.now())
                            .failure(reason.as_str())
                            .kind(TokenKind::ApiKey)
                            .fingerprint(self.fp(token)),
                    );
                }
            }
            Event::Transition { kind, from, to } => self.transition(kind, from, to),
            Event::KeysetRolledBack {
                from,
                to,
                reason,
                failures,
                sample,
            } => {
                let reason = reason.as_str();
                let base = AuditEvent::new(AuditAction::KeysetRollback, self.now())
                    .failure(reason)
                    .keyset_version(to)
                    .detail(format!(
                        "automatic rollback v{from} -> v{to}: {failures} failures ({reason}) in {sample} validations"
                    ));
                self.audit(base.clone());
                self.alert(AlertKind::AutomaticRollback, base);
            }
            Event::Admin {
                action,
                detail,
                failure,
                client,
                subject,
                keyset_version,
            } => {
                let mut e = AuditEvent::new(action, self.now())
                    .client(client)
                    .subject(subject);
                if let Some(f) = failure {
                    e = e.failure(f.as_str());
                }
                if let Some(v) = keyset_version {
                    e = e.keyset_version(v);
                }
                if let Some(d) = detail {
                    e = e.detail(d);
                }
                if let Some(AdminFailure::AdminAuth | AdminFailure::ClientAuth) = failure {
                    metrics::counter!(m::ADMIN_AUTH_FAILURES).increment(1);
                }
                self.audit(e);
            }
            Event::UnknownKidSuppressed { .. } => {
                metrics::counter!(m::REMOTE_UNKNOWN_KID_SUPPRESSED).increment(1);
            }
            Event::Fleet(fleet) => fleet_metrics(fleet),
        }
    }
}

/// The `tokenlife_fleet_*` metrics of one fleet happening (rare: no handles kept).
#[allow(clippy::cast_precision_loss)]
fn fleet_metrics(event: FleetEvent) {
    match event {
        FleetEvent::Synced { at } => {
            metrics::gauge!(m::FLEET_CONNECTED).set(1.0);
            metrics::gauge!(m::FLEET_LAST_SYNC).set(at as f64);
        }
        FleetEvent::Disconnected => metrics::gauge!(m::FLEET_CONNECTED).set(0.0),
        FleetEvent::HeartbeatMissed => metrics::counter!(m::FLEET_HEARTBEAT_MISSED).increment(1),
        FleetEvent::RevocationApplied => metrics::counter!(m::FLEET_APPLIED).increment(1),
        FleetEvent::Dropped(reason) => {
            metrics::counter!(m::FLEET_DROPPED, "reason" => reason.as_str()).increment(1);
        }
        FleetEvent::Queued(n) => metrics::gauge!(m::FLEET_REPLAY_QUEUE).set(n as f64),
        FleetEvent::KeysetStateIgnored => metrics::counter!(m::FLEET_STATES_IGNORED).increment(1),
        FleetEvent::EpochChanged => metrics::counter!(m::FLEET_EPOCH_CHANGES).increment(1),
    }
}

/// Builds a [`Monitor`].
#[must_use]
pub struct MonitorBuilder {
    clock: Arc<dyn Clock>,
    fingerprint_key: Option<[u8; 32]>,
    auditor: Option<Auditor>,
    policy: AlertPolicy,
    sample: u32,
}

impl fmt::Debug for MonitorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorBuilder")
            .field(
                "fingerprint_key",
                &self.fingerprint_key.map(|_| "[redacted]"),
            )
            .field("auditor", &self.auditor)
            .field("policy", &self.policy)
            .field("sample", &self.sample)
            .finish_non_exhaustive()
    }
}

impl MonitorBuilder {
    /// The clock for event times and alert windows.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The fingerprint key; give every node the same one to correlate (default: random).
    pub fn fingerprint_key(mut self, key: [u8; 32]) -> Self {
        self.fingerprint_key = Some(key);
        self
    }

    /// Where audit events go.
    pub fn auditor(mut self, auditor: Auditor) -> Self {
        self.auditor = Some(auditor);
        self
    }

    /// Alert thresholds.
    pub fn alert_policy(mut self, policy: AlertPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Record the latency of one validation in `every` (default 16; 1 = all; 0 = none).
    pub fn latency_sample(mut self, every: u32) -> Self {
        self.sample = every;
        self
    }

    /// Registers the metric handles and returns the monitor.
    pub fn build(self) -> Monitor {
        Monitor {
            inner: Arc::new(Inner {
                clock: self.clock,
                fingerprint_key: self.fingerprint_key.unwrap_or_else(random_key),
                auditor: self.auditor,
                tracker: LifecycleTracker::new(),
                detector: Detector::new(self.policy),
                handles: Handles::new(),
                versions: ArcSwap::from_pointee(Recent { head: None, older: Vec::new() }),
                labelled_versions: std::sync::atomic::AtomicUsize::new(0),
                issued: per_kind(m::TOKENS_ISSUED),
                renewed: per_kind(m::TOKENS_RENEWED),
                expired: per_kind(m::TOKENS_EXPIRED),
                alerts: AlertKind::ALL.map(|a| metrics::counter!(m::ALERTS, "alert" => a.as_str())),
                revoked: REVOKE_REASONS
                    .iter()
                    .map(|&(k, r)| ((k, r), metrics::counter!(m::TOKENS_REVOKED, "kind" => k.as_str(), "reason" => r)))
                    .collect(),
                api_key_outcomes: std::iter::once("ok")
                    .chain(ApiKeyErrorKind::ALL.iter().map(|k| k.as_str()))
                    .map(|o| metrics::counter!(m::API_KEY_VALIDATIONS, "outcome" => o))
                    .collect(),
                sample: self.sample,
            }),
        }
    }
}
