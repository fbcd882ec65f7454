//! [`Monitor`]: metrics, lifecycle tracking, audit and alerts in one [`Observer`], shared
//! by the validator, the issuer, API keys, the revocation list and the admin operations.
//! It is four observers composed, each usable alone: [`Metrics`], [`LifecycleTracker`],
//! [`AuditTrail`] and [`Alerts`], called in that order for every event.
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

use std::fmt;
use std::sync::Arc;

use super::alert::{AlertPolicy, Alerts};
use super::audit::Auditor;
use super::event::{Event, Observer};
use super::lifecycle::LifecycleTracker;
use super::metrics::{self as m, Metrics};
use super::trail::{AuditTrail, Stamp};
use crate::clock::{Clock, SystemClock};
use crate::fingerprint::Fingerprint;
use crate::hash::random_key;

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
    metrics: Metrics,
    tracker: LifecycleTracker,
    trail: Option<AuditTrail>,
    alerts: Alerts,
    stamp: Arc<Stamp>,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("auditor", &self.auditor())
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// Distinct keyset versions that get metric series of their own over the life of a
    /// process; later versions share `keyset_version="other"`.
    pub const MAX_VERSION_LABELS: usize = m::MAX_VERSION_LABELS;
    /// Default: one validation in this many has its latency recorded.
    pub const DEFAULT_LATENCY_SAMPLE: u32 = DEFAULT_LATENCY_SAMPLE;

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

    /// The metrics part.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The audit trail, if an auditor was given.
    pub fn trail(&self) -> Option<&AuditTrail> {
        self.inner.trail.as_ref()
    }

    /// The alerts part.
    pub fn alerts(&self) -> &Alerts {
        &self.inner.alerts
    }

    /// The auditor, if one was given.
    pub fn auditor(&self) -> Option<&Auditor> {
        self.inner.trail.as_ref().map(AuditTrail::auditor)
    }

    /// The keyed fingerprint of a token or key.
    pub fn fingerprint(&self, token: &str) -> Fingerprint {
        Fingerprint::compute(&self.inner.stamp.key(), token)
    }

    /// The clock and fingerprint key, for the observers built beside the monitor.
    pub(crate) fn stamp(&self) -> Arc<Stamp> {
        self.inner.stamp.clone()
    }

    /// Unix seconds on the monitor's clock.
    pub fn now(&self) -> u64 {
        self.inner.stamp.now()
    }
}

impl Observer for Monitor {
    fn audit_ready(&self) -> bool {
        self.inner.trail.as_ref().is_none_or(Observer::audit_ready)
    }

    #[inline]
    fn time_validation(&self) -> bool {
        self.inner.metrics.time_validation()
    }

    fn fingerprint_key(&self) -> Option<[u8; 32]> {
        Some(self.inner.stamp.key())
    }

    /// A cache hit is only counted: the lifecycle, trail and alerts parts have nothing
    /// to do with one.
    #[inline]
    fn on_hit(&self, hit: &super::Hit<'_>) {
        self.inner.metrics.on_hit(hit);
    }

    /// Only the metrics part counts hits (the others have nothing to do with them).
    fn counts_hits(&self) -> bool {
        true
    }

    fn on_hits(&self, hits: &super::Hits<'_>) {
        self.inner.metrics.on_hits(hits);
    }

    #[inline]
    fn on_event(&self, event: &Event<'_>) {
        let inner = &*self.inner;
        inner.metrics.on_event(event);
        // A success from the cache is only counted: the other parts have nothing to do
        // with it (no transition, no record, no alert), so they are not asked.
        if let Event::Validated { outcome: Ok(v), .. } = event
            && v.from_cache
        {
            return;
        }
        inner.tracker.on_event(event);
        if let Some(trail) = &inner.trail {
            trail.on_event(event);
        }
        inner.alerts.on_event(event);
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
        let stamp = Stamp::new(self.clock, self.fingerprint_key.unwrap_or_else(random_key));
        Monitor {
            inner: Arc::new(Inner {
                metrics: Metrics::new(self.sample),
                tracker: LifecycleTracker::new(),
                trail: self
                    .auditor
                    .clone()
                    .map(|a| AuditTrail::stamped(a, stamp.clone())),
                alerts: Alerts::stamped(self.policy, self.auditor, stamp.clone()),
                stamp,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::error::ValidationErrorKind as Kind;
    use crate::observe::audit::AuditEvent;
    use crate::observe::lifecycle::{TokenKind, TokenState};
    use crate::observe::{Arm, TokenRef};

    fn script(o: &dyn Observer) {
        for (i, kind) in [
            Kind::Expired,
            Kind::Revoked,
            Kind::BadSignature,
            Kind::MissingToken,
        ]
        .into_iter()
        .enumerate()
        {
            o.on_event(&Event::Validated {
                outcome: Err(kind),
                token: TokenRef::new("a.b.c"),
                keyset_version: 2,
                issuer: "https://idp",
                arm: Arm::Active,
                client: Some("10.0.0.9"),
                elapsed: None,
            });
            o.on_event(&Event::Issued {
                kind: TokenKind::Refresh,
                token: TokenRef::new(&format!("refresh-{i}")),
                keyset_version: Some(2),
                key: None,
                subject: Some("user-1"),
                client: None,
                jti: None,
                issuer: None,
            });
        }
        o.on_event(&Event::RefreshReuse {
            token: TokenRef::new("refresh-0"),
            subject: "user-1",
            client: Some("c"),
            revocation_entries: 3,
        });
    }

    fn records(rx: &std::sync::mpsc::Receiver<AuditEvent>, a: &Auditor) -> Vec<String> {
        a.flush();
        rx.try_iter().map(|e| e.to_json()).collect()
    }

    /// The Monitor is its parts composed: the same script through the Monitor and through
    /// `(tracker, (trail, alerts))` built by hand gives the same audit records in the
    /// same order and the same lifecycle counts; each part works alone.
    #[test]
    fn the_monitor_is_its_parts_composed() {
        let clock = ManualClock::at_unix(1_000);
        let (sink, from_monitor) = Auditor::channel(100);
        let monitor = Monitor::builder()
            .clock(clock.clone())
            .fingerprint_key([7; 32])
            .auditor(Auditor::builder().sink(sink).build())
            .build();
        script(&monitor);

        let (sink, from_parts) = Auditor::channel(100);
        let auditor = Auditor::builder().sink(sink).build();
        let parts = (
            LifecycleTracker::new(),
            (
                AuditTrail::new(auditor.clone(), clock.clone(), [7; 32]),
                Alerts::new(
                    AlertPolicy::default(),
                    Some(auditor.clone()),
                    clock,
                    [7; 32],
                ),
            ),
        );
        script(&parts);

        let monitor_records = records(&from_monitor, monitor.auditor().unwrap());
        assert_eq!(monitor_records, records(&from_parts, &auditor));
        // Expired, revoked, bad signature: three failures; four issues; the revoked
        // token's alert and the reuse alert.
        assert_eq!(monitor_records.len(), 3 + 4 + 2, "{monitor_records:#?}");
        assert!(monitor_records.iter().all(|r| !r.contains("a.b.c")));
        for (kind, from, to, n) in [
            (
                TokenKind::Access,
                Some(TokenState::Active),
                TokenState::Expired,
                1,
            ),
            (TokenKind::Access, None, TokenState::Rejected, 1),
            (TokenKind::Refresh, None, TokenState::Issued, 4),
            (
                TokenKind::Refresh,
                Some(TokenState::Renewed),
                TokenState::Revoked,
                1,
            ),
        ] {
            assert_eq!(monitor.tracker().count(kind, from, to), n);
            assert_eq!(parts.0.count(kind, from, to), n);
        }
    }
}
