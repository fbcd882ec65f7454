//! Alerts on irregularities: revoked-token reuse, refresh-token reuse, a burst of bad
//! signatures or unknown kids from one client, a validation-failure spike.
//!
//! Alerts are audit events (action `alert`) and a counter (`tokenlife_alerts_total`).
//! Windows run on the injected clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Which irregularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// A revoked token was presented.
    RevokedTokenReuse,
    /// A retired refresh token was presented again; its family was revoked.
    RefreshTokenReuse,
    /// One client sent many tokens with bad signatures or unknown kids.
    BadSignatureBurst,
    /// Validation failures across all clients rose past the threshold.
    FailureSpike,
    /// The rollout guard rolled a failing keyset back by itself.
    AutomaticRollback,
}

impl AlertKind {
    /// Every kind, in table order.
    pub const ALL: [AlertKind; 5] = [
        Self::RevokedTokenReuse,
        Self::RefreshTokenReuse,
        Self::BadSignatureBurst,
        Self::FailureSpike,
        Self::AutomaticRollback,
    ];

    /// Position in [`Self::ALL`]: an exhaustive `match`, checked against `ALL` at
    /// compile time.
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::RevokedTokenReuse => 0,
            Self::RefreshTokenReuse => 1,
            Self::BadSignatureBurst => 2,
            Self::FailureSpike => 3,
            Self::AutomaticRollback => 4,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RevokedTokenReuse => "revoked_token_reuse",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::BadSignatureBurst => "bad_signature_burst",
            Self::FailureSpike => "failure_spike",
            Self::AutomaticRollback => "automatic_rollback",
        }
    }
}

const _: () = {
    let mut i = 0;
    while i < AlertKind::ALL.len() {
        assert!(AlertKind::ALL[i].index() == i);
        i += 1;
    }
};

/// Thresholds. A burst or spike alerts once per window when the count reaches the threshold.
#[derive(Debug, Clone, Copy)]
pub struct AlertPolicy {
    /// Bad signatures / unknown kids from one client within `burst_window` (default 20).
    pub burst_threshold: u64,
    /// Window for the per-client burst (default 60 s).
    pub burst_window: Duration,
    /// Validation failures (all clients) within `spike_window` (default 1000).
    pub spike_threshold: u64,
    /// Window for the failure spike (default 60 s).
    pub spike_window: Duration,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            burst_threshold: 20,
            burst_window: Duration::from_secs(60),
            spike_threshold: 1000,
            spike_window: Duration::from_secs(60),
        }
    }
}

/// A fixed window counter: counts within the current window, says when the threshold is
/// first reached in it. The window's number and its count share one atomic word (number in
/// the high 32 bits, count in the low 32), so a window's reset and its hits are one
/// compare-and-swap: no hit is lost to a reset, none counts in the wrong window, and
/// exactly one hit per window crosses the threshold, however many threads race.
#[derive(Debug, Default)]
struct Window {
    state: AtomicU64,
}

impl Window {
    /// Counts one event at `now`; true exactly when this event makes the window's count
    /// reach `threshold` (a threshold of 0 counts as 1).
    fn hit(&self, now: u64, window: u64, threshold: u64) -> bool {
        // Window numbers are compared, never ordered: 32 bits wrap harmlessly.
        let epoch = (now / window.max(1)).wrapping_add(1) & 0xffff_ffff;
        let threshold = threshold.clamp(1, u64::from(u32::MAX));
        let mut seen = self.state.load(Ordering::Acquire);
        loop {
            let count = if seen >> 32 == epoch {
                seen & 0xffff_ffff
            } else {
                0
            };
            if count >= threshold {
                // Already alerted in this window: nothing left to count.
                return false;
            }
            let next = (epoch << 32) | (count + 1);
            match self
                .state
                .compare_exchange_weak(seen, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return count + 1 == threshold,
                Err(now_seen) => seen = now_seen,
            }
        }
    }
}

/// The key a client's burst is counted under: its address, with an IPv6 address cut to
/// its /64 — the block one host or one customer gets, so stepping through the addresses of
/// one's own /64 does not start a fresh count each time. Anything that is not an address
/// (a client id) is its own key.
fn burst_key(client: &str) -> std::borrow::Cow<'_, str> {
    match client.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            std::borrow::Cow::Owned(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
        }
        _ => std::borrow::Cow::Borrowed(client),
    }
}

/// Most clients whose bad-signature windows are kept. The table is a quick_cache with
/// this hard bound (CLOCK-Pro eviction over seeded hashes): churn of client addresses
/// only ever loses alert precision, never memory, and no caller picks what is evicted.
pub(crate) const MAX_CLIENTS: u64 = 100_000;

type Clients = quick_cache::sync::Cache<String, Arc<Window>>;

/// Detects bursts and spikes.
pub(crate) struct Detector {
    policy: AlertPolicy,
    spike: Window,
    clients: Clients,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("policy", &self.policy)
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl Detector {
    pub(crate) fn new(policy: AlertPolicy) -> Self {
        Self::with_capacity(policy, MAX_CLIENTS)
    }

    fn with_capacity(policy: AlertPolicy, clients: u64) -> Self {
        Self {
            policy,
            spike: Window::default(),
            clients: Clients::new(usize::try_from(clients).unwrap_or(usize::MAX)),
        }
    }

    /// The window of `client`, made when new (the cache evicts if full).
    fn client_window(&self, client: &str) -> Arc<Window> {
        let made: Result<_, std::convert::Infallible> = self
            .clients
            .get_or_insert_with(client, || Ok(Arc::new(Window::default())));
        match made {
            Ok(w) => w,
        }
    }

    /// A failed validation; `bad_key` for bad signatures and unknown kids.
    pub(crate) fn failure(&self, now: u64, client: Option<&str>, bad_key: bool) -> Vec<AlertKind> {
        let mut alerts = Vec::new();
        if self.spike.hit(
            now,
            self.policy.spike_window.as_secs(),
            self.policy.spike_threshold,
        ) {
            alerts.push(AlertKind::FailureSpike);
        }
        if bad_key && let Some(client) = client {
            let w = self.client_window(&burst_key(client));
            if w.hit(
                now,
                self.policy.burst_window.as_secs(),
                self.policy.burst_threshold,
            ) {
                alerts.push(AlertKind::BadSignatureBurst);
            }
        }
        alerts
    }
}

/// The [`Observer`](super::Observer) that raises alerts from the events: a revoked token
/// presented again, a retired refresh token presented again, an automatic rollback, and
/// the [`AlertPolicy`]'s bursts and spikes of failed validations. Each alert is counted
/// (`tokenlife_alerts_total`) and, with an auditor, recorded (action `alert`). One of
/// the [`Monitor`](crate::Monitor)'s parts.
pub struct Alerts {
    detector: Detector,
    counters: [metrics::Counter; AlertKind::ALL.len()],
    auditor: Option<super::audit::Auditor>,
    stamp: Arc<super::trail::Stamp>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("detector", &self.detector)
            .finish_non_exhaustive()
    }
}

impl Alerts {
    /// Alerts by `policy` on `clock`, recorded to `auditor` (if any) with tokens
    /// fingerprinted by `fingerprint_key`.
    pub fn new(
        policy: AlertPolicy,
        auditor: Option<super::audit::Auditor>,
        clock: impl crate::clock::Clock,
        fingerprint_key: [u8; 32],
    ) -> Self {
        Self::stamped(
            policy,
            auditor,
            super::trail::Stamp::new(Arc::new(clock), fingerprint_key),
        )
    }

    pub(crate) fn stamped(
        policy: AlertPolicy,
        auditor: Option<super::audit::Auditor>,
        stamp: Arc<super::trail::Stamp>,
    ) -> Self {
        Self {
            detector: Detector::new(policy),
            counters: AlertKind::ALL
                .map(|a| metrics::counter!(super::metrics::ALERTS, "alert" => a.as_str())),
            auditor,
            stamp,
        }
    }

    /// Raises `kind`: its counter, and a record built on `base`.
    fn raise(&self, kind: AlertKind, base: super::audit::AuditEvent) {
        self.counters[kind.index()].increment(1);
        if let Some(a) = &self.auditor {
            let mut e = base.alert(kind);
            e.action = super::audit::AuditAction::Alert;
            a.emit(e);
        }
    }
}

impl super::Observer for Alerts {
    fn on_event(&self, event: &super::Event<'_>) {
        use super::Event;
        use super::audit::{AuditAction, AuditEvent};
        use super::lifecycle::TokenKind;
        use crate::error::ValidationErrorKind as Kind;
        let s = &*self.stamp;
        match *event {
            Event::Validated {
                outcome: Err(kind),
                token,
                keyset_version,
                client,
                ..
            } if kind != Kind::MissingToken => {
                let now = s.now();
                if kind == Kind::Revoked {
                    let base = super::trail::failed_validation(
                        s,
                        now,
                        kind,
                        token,
                        keyset_version,
                        client,
                    );
                    self.raise(AlertKind::RevokedTokenReuse, base.reason(kind.as_str()));
                }
                let bad_key = matches!(
                    kind,
                    Kind::BadSignature | Kind::UnknownKid | Kind::AlgorithmMismatch
                );
                for alert in self.detector.failure(now, client, bad_key) {
                    let base = AuditEvent::new(AuditAction::Alert, now)
                        .failure(kind.as_str())
                        .keyset_version(keyset_version)
                        .address(client);
                    self.raise(alert, base);
                }
            }
            Event::RefreshReuse {
                token,
                subject,
                client,
                ..
            } => {
                let base = AuditEvent::new(AuditAction::Alert, s.now())
                    .failure("refresh_reuse")
                    .kind(TokenKind::Refresh)
                    .fingerprint(s.fp(token))
                    .subject(Some(subject))
                    .client(client);
                self.raise(AlertKind::RefreshTokenReuse, base);
            }
            Event::KeysetRolledBack { .. } => {
                if let Some(base) = super::trail::rollback(event, s.now()) {
                    self.raise(AlertKind::AutomaticRollback, base);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_alerts_once_at_the_threshold_and_resets() {
        let w = Window::default();
        let hits: Vec<bool> = (0..5).map(|_| w.hit(100, 60, 3)).collect();
        assert_eq!(hits, [false, false, true, false, false]);
        // The next window starts over.
        assert!(!w.hit(130, 60, 3));
        assert!(!w.hit(130, 60, 3));
        assert!(w.hit(131, 60, 3));
    }

    /// Two threads hammering one window across many window changes: each window alerts
    /// exactly once — a reset never loses the hits around it, never double-counts a
    /// window, and a window that opens with the old window's count still high does not
    /// alert on its first hit.
    #[test]
    fn racing_threads_get_exactly_one_alert_per_window() {
        const WINDOWS: u64 = 2_000;
        const PER_THREAD: u64 = 3;
        let w = Window::default();
        let barrier = std::sync::Barrier::new(2);
        let alerts: Vec<Vec<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (w, barrier) = (&w, &barrier);
                    s.spawn(move || {
                        let mut fired = Vec::new();
                        for win in 0..WINDOWS {
                            barrier.wait();
                            for _ in 0..PER_THREAD {
                                if w.hit(win * 10, 10, 2 * PER_THREAD) {
                                    fired.push(win);
                                }
                            }
                        }
                        fired
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<u64> = alerts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..WINDOWS).collect::<Vec<_>>());
    }

    /// One host stepping through the addresses of its IPv6 /64 is one client; IPv4
    /// addresses and distinct /64s stay apart.
    #[test]
    fn an_ipv6_burst_is_counted_per_64() {
        let d = Detector::new(AlertPolicy {
            burst_threshold: 20,
            ..AlertPolicy::default()
        });
        let mut fired = Vec::new();
        for i in 0..20u32 {
            fired.extend(d.failure(0, Some(&format!("2001:db8:1:2::{i:x}")), true));
        }
        assert_eq!(fired, [AlertKind::BadSignatureBurst]);
        for i in 0..20u32 {
            assert!(
                d.failure(0, Some(&format!("2001:db8:1:{i:x}::1")), true)
                    .iter()
                    .all(|a| *a != AlertKind::BadSignatureBurst)
            );
            assert!(
                d.failure(0, Some(&format!("10.0.0.{i}")), true)
                    .iter()
                    .all(|a| *a != AlertKind::BadSignatureBurst)
            );
        }
        assert_eq!(burst_key("::ffff:10.0.0.1"), "::ffff:10.0.0.1");
        assert_eq!(burst_key("client-7"), "client-7");
    }

    /// 10× the bound of distinct clients, from two threads, with the clock moving: the
    /// table never holds more than its bound, and it still alerts.
    #[test]
    fn per_client_state_is_bounded() {
        const CAP: u64 = 1_000;
        let d = Detector::with_capacity(AlertPolicy::default(), CAP);
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let d = &d;
                s.spawn(move || {
                    for i in 0..CAP * 5 {
                        let now = 1_000 + i / 100;
                        d.failure(now, Some(&format!("10.{t}.{}.{}", i >> 8, i & 255)), true);
                        assert!(d.clients.len() as u64 <= CAP, "{}", d.clients.len());
                    }
                });
            }
        });
        assert!(d.clients.len() as u64 <= CAP, "{}", d.clients.len());
        // And it still works.
        let d2 = Detector::new(AlertPolicy {
            burst_threshold: 1,
            ..AlertPolicy::default()
        });
        assert_eq!(
            d2.failure(0, Some("x"), true),
            [AlertKind::BadSignatureBurst]
        );
    }

    #[test]
    fn bursts_are_per_client() {
        let d = Detector::new(AlertPolicy {
            burst_threshold: 2,
            ..AlertPolicy::default()
        });
        assert!(d.failure(0, Some("a"), true).is_empty());
        assert!(d.failure(0, Some("b"), true).is_empty());
        assert!(
            d.failure(0, Some("a"), false).is_empty(),
            "not a key failure"
        );
        assert_eq!(
            d.failure(0, Some("a"), true),
            [AlertKind::BadSignatureBurst]
        );
    }
}
