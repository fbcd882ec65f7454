//! [`RolloutGuard`]: rolls a failing keyset back by itself.
//!
//! The guard is an [`Observer`]: give it to the validator beside the monitor
//! (`.observer((monitor, guard))`). It watches the validation outcomes of the keyset version
//! that is current, in a window on the injected clock. When a new version becomes current
//! (a publish, a promote), the one before it is remembered as the last good one.
//!
//! **Only evidence counts.** A failure is evidence of a bad deploy only when the token
//! *verifies under the last good version* (a token that used to work, not yet expired)
//! and its key was not revoked as compromised ([`KeysetStore::revoke_key`]): junk, forged
//! and never-valid tokens are noise, whoever sends them, and change nothing — not even
//! the sample. Evidence is counted per distinct client (the verified `sub`), and the guard
//! needs [`GuardPolicy::min_clients`] of them: one client, or one leaked token replayed,
//! cannot trip it. A key removed on purpose after a leak is removed with
//! [`KeysetStore::revoke_key`], so no rollback — this guard's included — trusts it again.
//!
//! If the new version's key failures (unknown kid, bad signature, algorithm mismatch)
//! reach [`GuardPolicy::max_bad_key_rate`] of at least [`GuardPolicy::min_sample`]
//! validations within [`GuardPolicy::window`], from at least
//! [`GuardPolicy::min_clients`] clients, the guard makes the last good version current again and
//! quarantines the failing one in the [`KeysetStore`] (it cannot be made current again
//! until an operator calls [`KeysetStore::release`]), and emits
//! [`Event::KeysetRolledBack`] (the monitor turns it into an alert and an audit record).
//! Expired or revoked tokens and other claim failures are not the keyset's fault and do
//! not count.
//!
//! During a canary ([`KeysetStore::stage_canary`], [`KeysetStore::set_share`]) only the
//! validations the candidate judged ([`Arm::Canary`]) count, so a candidate that breaks
//! every client of a 10 % canary is caught after `min_sample` of them, not drowned by the
//! other 90 %; and the version it rolls back to is the last one without a rollout in
//! progress, so a failing canary is aborted, not merely narrowed.
//!
//! ```
//! use tokenlife_core::rollout::{GuardPolicy, RolloutGuard};
//! use tokenlife_core::{Algorithm, Keyset, KeysetStore, ManualClock, Validator, testing};
//! # let key = std::sync::Arc::new(testing::key("k1", Algorithm::ES256));
//! # let clock = ManualClock::at_unix(1_700_000_000);
//! # let token = |n: u32| testing::sign(&key, &serde_json::json!({"iss": "i", "aud": "a", "sub": format!("client-{n}"), "exp": 1_700_000_900}));
//! let store = KeysetStore::new(Keyset::new([key.clone()])?);
//! let guard = RolloutGuard::new(store.clone(), GuardPolicy::default()).with_clock(clock.clone());
//! let validator = Validator::builder(store.clone())
//!     .issuer("i").audience("a").clock(clock.clone())
//!     .observer(guard.clone())
//!     .build()?;
//! validator.validate(&token(0))?;
//!
//! // A deploy that lacks the key every client's token names.
//! let broken = store.publish(Keyset::new([testing::key("other", Algorithm::ES256)])?);
//! // One client retrying, however often, is not evidence of a bad deploy.
//! for _ in 0..100 {
//!     validator.validate(&token(0)).unwrap_err();
//! }
//! assert_eq!(store.current().version(), broken);
//! // Failures from enough distinct clients are: with the sample already full, the
//! // fifth distinct client trips it.
//! let mut failed = 0;
//! while store.current().version() == broken && failed < 1_000 {
//!     validator.validate(&token(failed as u32 + 1)).unwrap_err();
//!     failed += 1;
//! }
//! assert_eq!(failed, GuardPolicy::default().min_clients - 1);
//! assert_eq!(store.current().version(), 1);
//! assert!(store.is_quarantined(broken));
//! assert_eq!(guard.rollbacks(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::clock::{Clock, SystemClock};
use crate::error::ValidationErrorKind as Kind;
use crate::keys::{Keyset, KeysetSnapshot, KeysetStore};
use crate::observe::{Arm, Event, Observer, RollbackReason, SharedObserver, TokenRef};

/// What a candidate keyset would make of a live token: `Ok` with the kid of the key that
/// would verify it, or the [`Kind`] it would be rejected with (`unknown_kid`,
/// `algorithm_mismatch`, `bad_signature`, `malformed`…). Only the key half of validation
/// runs: the claims, their times and revocation are the same under any keyset. The
/// `tokenlife check` command runs this over a sample of tokens before a deploy.
///
/// ```
/// use tokenlife_core::rollout::check_token;
/// use tokenlife_core::{Algorithm, Keyset, ValidationErrorKind, testing};
///
/// let blue = testing::key("blue", Algorithm::ES256);
/// let token = testing::sign(&blue, &serde_json::json!({"sub": "u"}));
/// assert_eq!(check_token(&Keyset::new([blue])?, &token), Ok("blue".to_owned()));
/// let green = Keyset::new([testing::key("green", Algorithm::ES256)])?;
/// assert_eq!(check_token(&green, &token), Err(ValidationErrorKind::UnknownKid));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// The kind the candidate would reject the token with.
pub fn check_token(candidate: &Keyset, token: &str) -> Result<String, Kind> {
    crate::validate::key_check(candidate, token)
        .map(|k| k.kid().to_owned())
        .map_err(|e| e.kind())
}

/// What a candidate keyset would make of tokens known only by `kid` and algorithm (as
/// the audit trail records issued tokens): `Ok` if it holds a key of that kid and
/// algorithm.
///
/// # Errors
/// [`Kind::UnknownKid`] or [`Kind::AlgorithmMismatch`].
pub fn check_kid(candidate: &Keyset, kid: &str, alg: jsonwebtoken::Algorithm) -> Result<(), Kind> {
    match candidate.get(kid) {
        None => Err(Kind::UnknownKid),
        Some(k) if k.algorithm() != alg => Err(Kind::AlgorithmMismatch),
        Some(_) => Ok(()),
    }
}

/// When the guard acts.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct GuardPolicy {
    /// The window validations are counted in (default 60 s).
    pub window: Duration,
    /// Validations of the new version needed before it can be judged (default 20):
    /// successes and evidence failures (tokens that verify under the last good version).
    pub min_sample: u64,
    /// Distinct clients (verified subjects) whose evidence failures are needed before it
    /// acts (default 5, at least 2 whatever is set): one client, or one leaked token,
    /// never trips it alone.
    pub min_clients: u64,
    /// Share of those that are key failures at which it is rolled back (default 0.5).
    pub max_bad_key_rate: f64,
    /// Share of those that fail for any reason (a missing token aside) at which it is
    /// rolled back too (default `None`: off, since expired or revoked tokens are the
    /// clients' doing; set it when a deploy also changes the validation policy).
    pub max_failure_rate: Option<f64>,
}

impl Default for GuardPolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            min_sample: 20,
            min_clients: 5,
            max_bad_key_rate: 0.5,
            max_failure_rate: None,
        }
    }
}

impl GuardPolicy {
    /// A policy with these thresholds (and the default [`min_clients`](Self::min_clients));
    /// `max_bad_key_rate` is clamped to (0, 1].
    pub fn new(window: Duration, min_sample: u64, max_bad_key_rate: f64) -> Self {
        Self {
            window: window.max(Duration::from_secs(1)),
            min_sample: min_sample.max(1),
            min_clients: 5,
            max_bad_key_rate: if max_bad_key_rate.is_nan() {
                1.0
            } else {
                max_bad_key_rate.clamp(f64::MIN_POSITIVE, 1.0)
            },
            max_failure_rate: None,
        }
    }

    /// The same policy, needing evidence from `n` distinct clients (at least 2: a single
    /// client must never be able to trip the guard).
    #[must_use]
    pub fn with_min_clients(mut self, n: u64) -> Self {
        self.min_clients = n.max(2);
        self
    }

    /// The same policy, also rolling back when this share of validations fails for any
    /// reason a deploy can cause (clamped to (0, 1]); expired, not-yet-valid and revoked
    /// tokens are the clients' doing and never count.
    #[must_use]
    pub fn with_max_failure_rate(mut self, rate: f64) -> Self {
        self.max_failure_rate = Some(if rate.is_nan() {
            1.0
        } else {
            rate.clamp(f64::MIN_POSITIVE, 1.0)
        });
        self
    }
}

/// Watches validation outcomes per keyset version and rolls a failing version back.
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct RolloutGuard {
    inner: Arc<Inner>,
}

struct Inner {
    store: KeysetStore,
    policy: GuardPolicy,
    clock: Arc<dyn Clock>,
    observer: Option<SharedObserver>,
    /// The version being judged (0: none yet).
    watched: AtomicU64,
    /// Counts of `watched` in the window that starts at `window_start`.
    window_start: AtomicU64,
    total: AtomicU64,
    bad_key: AtomicU64,
    failed: AtomicU64,
    /// Successful validations of `watched` since it became current: a version that never
    /// served one is never a last good one (an operator's manual rollback of a bad deploy
    /// does not make the bad deploy "good").
    oks: AtomicBool,
    tripped: AtomicBool,
    /// `watched` routes a canary share: only the candidate's verdicts count.
    canary_only: AtomicBool,
    rollbacks: AtomicU64,
    /// The last good version and the switch to a new watched version.
    switch: Mutex<Switch>,
    /// The last good snapshot: what an evidence failure must verify under.
    last_good: ArcSwapOption<KeysetSnapshot>,
    /// Distinct clients (hashed verified subjects) with evidence failures in the window,
    /// at most `min_clients` of them (no more are needed).
    clients: Mutex<Vec<u64>>,
}

#[derive(Default)]
struct Switch {
    /// The version to roll back to (0: none).
    last_good: u64,
    /// Whether the watched version has a rollout in progress (never a last good one).
    watched_in_rollout: bool,
}

impl fmt::Debug for RolloutGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RolloutGuard")
            .field("policy", &self.inner.policy)
            .field("watched", &self.inner.watched.load(Ordering::Relaxed))
            .field("rollbacks", &self.rollbacks())
            .finish_non_exhaustive()
    }
}

impl RolloutGuard {
    /// A guard over `store` on the system clock. Use [`with_clock`](Self::with_clock)
    /// in tests, and [`notify`](Self::notify) to have its rollbacks reach a monitor.
    pub fn new(store: KeysetStore, policy: GuardPolicy) -> Self {
        Self::build(store, policy, Arc::new(SystemClock), None)
    }

    /// The same guard reading `clock` for its window.
    #[must_use]
    pub fn with_clock(self, clock: impl Clock) -> Self {
        let inner = &self.inner;
        Self::build(
            inner.store.clone(),
            inner.policy,
            Arc::new(clock),
            inner.observer.clone(),
        )
    }

    /// The same guard, reporting its rollbacks to `observer` (a
    /// [`Monitor`](crate::Monitor) raises an `automatic_rollback` alert and audits it).
    #[must_use]
    pub fn notify(self, observer: impl Observer) -> Self {
        let inner = &self.inner;
        Self::build(
            inner.store.clone(),
            inner.policy,
            inner.clock.clone(),
            Some(SharedObserver::new(observer)),
        )
    }

    fn build(
        store: KeysetStore,
        mut policy: GuardPolicy,
        clock: Arc<dyn Clock>,
        observer: Option<SharedObserver>,
    ) -> Self {
        // The field is public: whatever was set, one client never suffices.
        policy.min_clients = policy.min_clients.max(2);
        Self {
            inner: Arc::new(Inner {
                store,
                policy,
                clock,
                observer,
                watched: AtomicU64::new(0),
                window_start: AtomicU64::new(0),
                total: AtomicU64::new(0),
                bad_key: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                oks: AtomicBool::new(false),
                tripped: AtomicBool::new(false),
                canary_only: AtomicBool::new(false),
                rollbacks: AtomicU64::new(0),
                switch: Mutex::new(Switch::default()),
                last_good: ArcSwapOption::empty(),
                clients: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Automatic rollbacks so far.
    pub fn rollbacks(&self) -> u64 {
        self.inner.rollbacks.load(Ordering::Relaxed)
    }

    /// The version being judged, and the last good one it would roll back to (0: none).
    pub fn watching(&self) -> (u64, u64) {
        let last_good = self.lock().last_good;
        (self.inner.watched.load(Ordering::Acquire), last_good)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Switch> {
        self.inner.switch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `count` successes of `version` judged at `now`: the window's count, and the
    /// version has served one. Loads and one add, no clock read (the slow path runs
    /// once per new version).
    #[inline]
    fn success(&self, version: u64, arm: Arm, now: u64, count: u64) {
        let inner = &*self.inner;
        if inner.watched.load(Ordering::Acquire) != version && !self.switch_to(version) {
            return;
        }
        if !inner.oks.load(Ordering::Relaxed) {
            inner.oks.store(true, Ordering::Relaxed);
        }
        if inner.tripped.load(Ordering::Acquire)
            || (arm != Arm::Canary && inner.canary_only.load(Ordering::Acquire))
        {
            return;
        }
        self.roll_window(now);
        inner.total.fetch_add(count, Ordering::AcqRel);
    }

    /// Starts a new window when the current one (begun at `window_start`) is over.
    #[inline]
    fn roll_window(&self, now: u64) {
        let inner = &*self.inner;
        let window = inner.policy.window.as_secs().max(1);
        let start = inner.window_start.load(Ordering::Acquire);
        if now >= start.saturating_add(window)
            && inner
                .window_start
                .compare_exchange(start, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            inner.total.store(0, Ordering::Release);
            inner.bad_key.store(0, Ordering::Release);
            inner.failed.store(0, Ordering::Release);
            self.clients().clear();
        }
    }

    fn observe(&self, version: u64, arm: Arm, outcome: Result<(), Kind>, token: TokenRef<'_>) {
        let inner = &*self.inner;
        if outcome.is_ok() {
            return self.success(version, arm, inner.clock.unix_now(), 1);
        }
        if inner.watched.load(Ordering::Acquire) != version && !self.switch_to(version) {
            return;
        }
        if inner.tripped.load(Ordering::Acquire)
            || (arm != Arm::Canary && inner.canary_only.load(Ordering::Acquire))
        {
            return;
        }
        let bad_key = matches!(
            outcome,
            Err(Kind::UnknownKid | Kind::BadSignature | Kind::AlgorithmMismatch)
        );
        let counts = match outcome {
            Ok(()) => return,
            Err(_) if bad_key => true,
            // The clients' doing, never a deploy's.
            Err(
                Kind::MissingToken
                | Kind::Expired
                | Kind::NotYetValid
                | Kind::Revoked
                | Kind::RevocationsStale,
            ) => false,
            Err(_) => inner.policy.max_failure_rate.is_some(),
        };
        if !counts {
            return;
        }
        // A failure counts only as evidence: a token the last good version trusts.
        let Some(client) = self.evidence(token) else {
            return;
        };
        self.roll_window(inner.clock.unix_now());
        let total = inner.total.fetch_add(1, Ordering::AcqRel) + 1;
        let bad = if bad_key {
            inner.bad_key.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            inner.bad_key.load(Ordering::Acquire)
        };
        let failed = inner.failed.fetch_add(1, Ordering::AcqRel) + 1;
        let distinct = {
            let mut clients = self.clients();
            let cap = usize::try_from(inner.policy.min_clients).unwrap_or(usize::MAX);
            if clients.len() < cap && !clients.contains(&client) {
                clients.push(client);
            }
            clients.len() as u64
        };
        #[allow(clippy::cast_precision_loss)]
        let reason = if total < inner.policy.min_sample || distinct < inner.policy.min_clients {
            None
        } else if bad as f64 >= inner.policy.max_bad_key_rate * total as f64 {
            Some((RollbackReason::BadKeyRate, bad))
        } else if inner
            .policy
            .max_failure_rate
            .is_some_and(|r| failed as f64 >= r * total as f64)
        {
            Some((RollbackReason::FailureRate, failed))
        } else {
            None
        };
        if let Some((why, count)) = reason
            && !inner.tripped.swap(true, Ordering::AcqRel)
        {
            self.roll_back(version, why, count, total);
        }
    }

    /// The client a failed token is evidence from (a hash of its verified subject), if
    /// it is evidence at all: it verifies under the last good version, has not expired,
    /// and its key was not revoked as compromised.
    fn evidence(&self, token: TokenRef<'_>) -> Option<u64> {
        let inner = &*self.inner;
        let good = inner.last_good.load_full()?;
        let (key, sub, exp) = crate::validate::verified_parts(good.active(), token.expose())?;
        if exp.is_some_and(|exp| exp < inner.clock.unix_now())
            || inner.store.is_key_revoked(key.kid())
        {
            return None;
        }
        Some(xxhash_rust::xxh3::xxh3_64(
            sub.unwrap_or_default().as_bytes(),
        ))
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.inner.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts judging `version` if it is the store's current one; the version judged
    /// before becomes the last good one unless it failed. Returns whether `version` is
    /// now the one judged.
    fn switch_to(&self, version: u64) -> bool {
        let inner = &*self.inner;
        let mut switch = self.lock();
        let watched = inner.watched.load(Ordering::Acquire);
        if watched == version {
            return true;
        }
        let snap = inner.store.current();
        if snap.version() != version {
            // An in-flight validation of a version no longer (or not yet) current.
            return false;
        }
        if watched != 0
            && !switch.watched_in_rollout
            && inner.oks.load(Ordering::Relaxed)
            && !inner.store.is_quarantined(watched)
        {
            switch.last_good = watched;
            inner.last_good.store(
                inner
                    .store
                    .history()
                    .into_iter()
                    .find(|s| s.version() == watched),
            );
        }
        self.clients().clear();
        inner.oks.store(false, Ordering::Relaxed);
        switch.watched_in_rollout = snap.candidate().is_some();
        inner
            .canary_only
            .store(snap.routes_canary(), Ordering::Release);
        inner.total.store(0, Ordering::Release);
        inner.bad_key.store(0, Ordering::Release);
        inner.failed.store(0, Ordering::Release);
        inner
            .window_start
            .store(inner.clock.unix_now(), Ordering::Release);
        inner.tripped.store(false, Ordering::Release);
        inner.watched.store(version, Ordering::Release);
        true
    }

    fn roll_back(&self, from: u64, reason: RollbackReason, failures: u64, sample: u64) {
        let inner = &*self.inner;
        let to = self.lock().last_good;
        if to == 0 || to == from {
            // Nothing to go back to: the first version is never rolled back.
            return;
        }
        if let Ok(true) = inner.store.rollback_from(from, to) {
            inner.rollbacks.fetch_add(1, Ordering::Relaxed);
            if let Some(o) = &inner.observer {
                o.on_event(&Event::KeysetRolledBack {
                    from,
                    to,
                    reason,
                    failures,
                    sample,
                });
            }
        }
    }
}

impl Observer for RolloutGuard {
    /// A success from the cache: counted into the window on the validator's clock.
    #[inline]
    fn on_hit(&self, hit: &crate::observe::Hit<'_>) {
        self.success(hit.keyset_version, hit.arm, hit.now, 1);
    }

    fn counts_hits(&self) -> bool {
        true
    }

    /// Successes of the active keyset, counted: into the window of their second.
    fn on_hits(&self, hits: &crate::observe::Hits<'_>) {
        self.success(hits.keyset_version, Arm::Active, hits.now, hits.count);
    }

    fn on_event(&self, event: &Event<'_>) {
        if let Event::Validated {
            outcome,
            keyset_version,
            arm,
            token,
            ..
        } = event
        {
            self.observe(*keyset_version, *arm, outcome.map(|_| ()), *token);
        }
    }
}
