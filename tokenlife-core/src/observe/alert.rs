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
/// first reached in it.
#[derive(Debug, Default)]
struct Window {
    epoch: AtomicU64,
    count: AtomicU64,
}

impl Window {
    /// Counts one event at `now`; true exactly when this event reaches `threshold`.
    fn hit(&self, now: u64, window: u64, threshold: u64) -> bool {
        let epoch = now / window.max(1) + 1;
        let seen = self.epoch.load(Ordering::Acquire);
        if seen != epoch
            && self
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.count.store(0, Ordering::Release);
        }
        self.count.fetch_add(1, Ordering::AcqRel) + 1 == threshold
    }
}

/// Most clients whose bad-signature windows are kept. A full table first drops the
/// windows idle for a whole window (on the injected clock), then, if still full, some in
/// table order: it only ever loses alert precision, never memory.
pub(crate) const MAX_CLIENTS: u64 = 100_000;

/// Detects bursts and spikes.
pub(crate) struct Detector {
    policy: AlertPolicy,
    spike: Window,
    clients: papaya::HashMap<Box<str>, Arc<Window>>,
    /// Shared by new clients while the table is full and cannot be swept yet.
    overflow: Arc<Window>,
    last_sweep: AtomicU64,
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
        Self {
            policy,
            spike: Window::default(),
            clients: papaya::HashMap::new(),
            overflow: Arc::new(Window::default()),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// The window of `client`, made (room first, if the table is full) when new.
    fn client_window(&self, client: &str, now: u64) -> Arc<Window> {
        let map = self.clients.pin();
        if let Some(w) = map.get(client) {
            return w.clone();
        }
        if map.len() as u64 >= MAX_CLIENTS {
            self.make_room(now);
            if map.len() as u64 >= MAX_CLIENTS {
                return self.overflow.clone();
            }
        }
        map.get_or_insert_with(client.into(), || Arc::new(Window::default()))
            .clone()
    }

    /// At most once a second: drop windows idle for a whole burst window, then trim to
    /// 15/16 of the bound in table order.
    fn make_room(&self, now: u64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now <= last && last != 0
            || self
                .last_sweep
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let window = self.policy.burst_window.as_secs().max(1);
        let current = now / window + 1;
        let map = self.clients.pin();
        map.retain(|_, w| w.epoch.load(Ordering::Acquire) + 1 >= current);
        let target = (MAX_CLIENTS - MAX_CLIENTS / 16) as usize;
        let excess = map.len().saturating_sub(target);
        if excess > 0 {
            let victims: Vec<Box<str>> = map.keys().take(excess).cloned().collect();
            for k in victims {
                map.remove(&k);
            }
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
            let w = self.client_window(client, now);
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

    #[test]
    fn per_client_state_is_bounded() {
        let d = Detector::new(AlertPolicy::default());
        for i in 0..MAX_CLIENTS + 50_000 {
            d.failure(
                0,
                Some(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)),
                true,
            );
        }
        assert!(d.clients.len() as u64 <= MAX_CLIENTS, "{}", d.clients.len());
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
