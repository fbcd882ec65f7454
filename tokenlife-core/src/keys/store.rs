//! [`KeysetSnapshot`] and the versioned [`KeysetStore`]: one atomic swap per change, a
//! bounded history for rollback, staged rollouts (a canary by traffic share, a shadow
//! candidate) and the [`Retirement`] policy for tokens of keys a change removes.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;

use super::key::Key;
use super::keyset::Keyset;
use crate::clock::{Clock, SystemClock};
use crate::error::{KeysetError, KeysetErrorKind};
use crate::observe::{Arm, Event, Observer, RetirementPolicy, SharedObserver};

/// Whether two keys are the same key: one `Arc`, or one algorithm and one public JWK.
pub(crate) fn same_key(a: &Arc<Key>, b: &Arc<Key>) -> bool {
    Arc::ptr_eq(a, b) || (a.alg == b.alg && a.public_jwk.is_some() && a.public_jwk == b.public_jwk)
}

/// Canary buckets: a share is counted in hundredths of a percent.
const BUCKETS: u64 = 10_000;
/// A fixed seed, so every node of a fleet puts a subject in the same bucket.
const BUCKET_SEED: u64 = 0x746f_6b65_6e6c_6966;

/// A share in percent as canary buckets (hundredths of a percent).
fn share_buckets(share: f64) -> Result<u16, KeysetError> {
    if !(0.0..=100.0).contains(&share) {
        return Err(KeysetError::new(KeysetErrorKind::InvalidShare));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let b = (share * 100.0).round() as u16;
    Ok(b)
}

/// What a staged candidate does while it is staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RolloutMode {
    /// The candidate's keys verify for every client, and for the clients inside the
    /// canary share they are the only keys (and its signing key signs their tokens).
    Canary,
    /// The candidate judges live traffic beside the current keyset without affecting any
    /// response; what it would have rejected is counted ([`ShadowStats`]).
    Shadow,
}

impl RolloutMode {
    /// `canary` or `shadow`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canary => "canary",
            Self::Shadow => "shadow",
        }
    }
}

/// What a shadow candidate has seen: validations the current keyset accepted, and how
/// many of those the candidate would have rejected.
#[derive(Debug, Default)]
pub struct ShadowStats {
    sample: AtomicU64,
    regressions: AtomicU64,
}

impl ShadowStats {
    /// Validations judged by the candidate (those the current keyset accepted).
    pub fn sample(&self) -> u64 {
        self.sample.load(Ordering::Relaxed)
    }

    /// Of those, how many the candidate would have rejected.
    pub fn regressions(&self) -> u64 {
        self.regressions.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, regression: bool) {
        self.sample.fetch_add(1, Ordering::Relaxed);
        if regression {
            self.regressions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What becomes of tokens signed by a key that a publish, promote, abort or rollback
/// removes from the current keyset (blue-green continuity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Retirement {
    /// Rejected at once, as `unknown_kid` (the default).
    #[default]
    Reject,
    /// Still accepted, verify-only, until the grace period after the change ends; then
    /// rejected as `unknown_kid`.
    Grace(Duration),
    /// Rejected with `invalid_token` and the description "the key that signed this token
    /// was retired: renew the token" (for this long after the change; `unknown_kid`
    /// after); the issuer's renewal signs the new access token with the current key.
    RenewRequired(Duration),
}

impl Retirement {
    /// The `policy` label: `reject`, `grace`, `renew_required`.
    pub fn as_str(self) -> &'static str {
        self.policy().as_str()
    }

    /// The policy, without its duration.
    pub fn policy(self) -> RetirementPolicy {
        match self {
            Self::Reject => RetirementPolicy::Reject,
            Self::Grace(_) => RetirementPolicy::Grace,
            Self::RenewRequired(_) => RetirementPolicy::RenewRequired,
        }
    }

    fn keep_for(self) -> Option<Duration> {
        match self {
            Self::Reject => None,
            Self::Grace(d) | Self::RenewRequired(d) => Some(d),
        }
    }
}

/// The staged candidate of a snapshot.
#[derive(Debug, Clone)]
struct Candidate {
    keyset: Keyset,
    mode: RolloutMode,
    /// Canary share in hundredths of a percent (0..=10 000).
    share: u16,
    shadow: Arc<ShadowStats>,
}

/// One immutable, versioned state of the [`KeysetStore`]: the active keyset (which signs
/// and verifies) and, during a rollout, a staged candidate.
#[derive(Debug)]
pub struct KeysetSnapshot {
    version: u64,
    /// Unique to this snapshot object in this process: what the verified-token cache
    /// trusts, since a version number can come back with other keys (a fleet state).
    instance: u64,
    created_at: SystemTime,
    active: Keyset,
    candidate: Option<Candidate>,
}

/// The next snapshot instance id.
fn next_instance() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl KeysetSnapshot {
    /// This snapshot object's id (unique in the process; never reused, unlike a version
    /// number a fleet state may bring back with other keys).
    pub(crate) fn instance(&self) -> u64 {
        self.instance
    }

    /// The version: 1 for the first keyset, then one more for each publish, stage, share
    /// change, promote or abort. A rollback reinstalls an earlier snapshot with its own
    /// version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When this snapshot was created (on the store's clock).
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// The active keyset's label.
    pub fn label(&self) -> Option<&str> {
        self.active.label()
    }

    /// The active keyset.
    pub fn active(&self) -> &Keyset {
        &self.active
    }

    /// The staged canary keyset, if a canary is staged.
    pub fn staged(&self) -> Option<&Keyset> {
        self.candidate
            .as_ref()
            .filter(|c| c.mode == RolloutMode::Canary)
            .map(|c| &c.keyset)
    }

    /// The shadow candidate, if one is staged.
    pub fn shadow(&self) -> Option<&Keyset> {
        self.candidate
            .as_ref()
            .filter(|c| c.mode == RolloutMode::Shadow)
            .map(|c| &c.keyset)
    }

    /// The staged candidate (canary or shadow) and its mode.
    pub fn candidate(&self) -> Option<(&Keyset, RolloutMode)> {
        self.candidate.as_ref().map(|c| (&c.keyset, c.mode))
    }

    /// The candidate's keyset, mode and share in hundredths of a percent (fleet mode).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn candidate_parts(&self) -> Option<(&Keyset, RolloutMode, u16)> {
        self.candidate
            .as_ref()
            .map(|c| (&c.keyset, c.mode, c.share))
    }

    /// What the shadow candidate has seen, if one is staged.
    pub fn shadow_stats(&self) -> Option<&ShadowStats> {
        self.candidate
            .as_ref()
            .filter(|c| c.mode == RolloutMode::Shadow)
            .map(|c| &*c.shadow)
    }

    /// The canary share, in percent (0 when no canary is staged).
    pub fn canary_share(&self) -> f64 {
        self.staged_share().map_or(0.0, |b| f64::from(b) / 100.0)
    }

    fn staged_share(&self) -> Option<u16> {
        self.candidate
            .as_ref()
            .filter(|c| c.mode == RolloutMode::Canary)
            .map(|c| c.share)
    }

    /// Whether a canary with a share above 0 routes some clients to the candidate.
    #[inline]
    pub(crate) fn routes_canary(&self) -> bool {
        self.staged_share().is_some_and(|s| s > 0)
    }

    /// The canary bucket of a subject or client id: a stable hash (the same on every node
    /// and every run) in 0..10 000.
    pub fn bucket(subject: &str) -> u16 {
        #[allow(clippy::cast_possible_truncation)]
        let b = (xxhash_rust::xxh3::xxh3_64_with_seed(subject.as_bytes(), BUCKET_SEED) % BUCKETS)
            as u16;
        b
    }

    /// Whether this subject (or client id) is inside the canary share.
    pub fn in_canary(&self, subject: &str) -> bool {
        self.staged_share()
            .is_some_and(|share| share > 0 && Self::bucket(subject) < share)
    }

    /// The arm that judges a token of this subject (`None`: no subject, never in the
    /// canary).
    #[inline]
    pub(crate) fn arm_for(&self, subject: Option<&str>) -> Arm {
        match subject {
            Some(s) if self.in_canary(s) => Arm::Canary,
            _ => Arm::Active,
        }
    }

    /// The kid of the signing key (always from the active keyset).
    pub fn signing_kid(&self) -> Option<&str> {
        self.active.signing_kid.as_deref()
    }

    /// The signing key.
    pub fn signing_key(&self) -> Option<&Arc<Key>> {
        self.active.signing_key()
    }

    /// The key that signs tokens for this subject: the canary candidate's signing key for
    /// a subject inside the canary share (when the candidate has one), else the active one.
    pub fn signing_key_for(&self, subject: &str) -> Option<&Arc<Key>> {
        if self.in_canary(subject)
            && let Some(k) = self.staged().and_then(Keyset::signing_key)
        {
            return Some(k);
        }
        self.signing_key()
    }

    /// The verification key with this kid: active keys first, then staged canary ones.
    #[inline]
    pub fn find(&self, kid: &str) -> Option<&Arc<Key>> {
        self.active
            .get(kid)
            .or_else(|| self.staged().and_then(|s| s.get(kid)))
    }

    /// The verification key with this kid for a token judged by `arm`: inside the canary,
    /// the candidate's keys only.
    #[inline]
    pub(crate) fn find_for(&self, kid: &str, arm: Arm) -> Option<&Arc<Key>> {
        match arm {
            Arm::Canary => self.staged().and_then(|s| s.get(kid)),
            _ => self.find(kid),
        }
    }

    /// Whether this exact key (not merely its kid) verifies in this snapshot for `arm`.
    /// Compares pointers only, so it never touches the keys' shared reference counts.
    #[inline]
    pub(crate) fn holds_for(&self, key: &Arc<Key>, arm: Arm) -> bool {
        let in_staged = || {
            self.staged()
                .is_some_and(|s| s.keys.iter().any(|k| Arc::ptr_eq(k, key)))
        };
        match arm {
            Arm::Canary => in_staged(),
            _ => self.active.keys.iter().any(|k| Arc::ptr_eq(k, key)) || in_staged(),
        }
    }

    /// Every key that verifies in this snapshot (active, then staged canary keys).
    pub fn keys(&self) -> impl Iterator<Item = &Arc<Key>> {
        self.active
            .keys()
            .chain(self.staged().into_iter().flat_map(|s| s.keys()))
    }

    /// The public verification keys (active and staged canary keys) as JWKS JSON.
    pub fn to_public_jwks(&self) -> String {
        let set = JwkSet {
            keys: self.keys().filter_map(|k| k.public_jwk.clone()).collect(),
        };
        serde_json::to_string(&set).unwrap_or_else(|_| r#"{"keys":[]}"#.into())
    }
}

/// A key removed from the current keyset, remembered under the retirement policy.
#[derive(Debug, Clone)]
struct RetiredKey {
    key: Arc<Key>,
    until: u64,
}

/// The keys a change removed and the policy for their tokens.
#[derive(Debug, Default)]
struct RetiredKeys {
    policy: Option<Retirement>,
    keys: Vec<RetiredKey>,
}

/// Default number of snapshots kept for rollback.
const DEFAULT_HISTORY: usize = 16;
/// Most retired keys remembered at once (the oldest go first).
const MAX_RETIRED: usize = 64;
/// Most keys revoked as compromised that a store remembers.
const MAX_REVOKED: usize = 1024;

/// The current keyset, swapped atomically, with a bounded history for rollback and staged
/// rollouts (canary by traffic share, shadow).
///
/// Cloning is cheap and clones share the store. Readers ([`current`](Self::current) and the
/// validator) never block; writers serialise on an internal lock, and each change is one
/// atomic swap.
#[derive(Clone)]
pub struct KeysetStore {
    inner: Arc<StoreInner>,
}

/// Told of every local change (not of changes applied from the fleet).
pub(crate) type Listener = Arc<dyn Fn(&Arc<KeysetSnapshot>) + Send + Sync>;

struct StoreInner {
    listener: Mutex<Option<Listener>>,
    current: ArcSwap<KeysetSnapshot>,
    /// The current snapshot's instance, stored after each swap: the hot path compares a
    /// cached entry's snapshot with it in one load, without taking the snapshot.
    current_instance: AtomicU64,
    retired: ArcSwap<RetiredKeys>,
    /// Kids revoked as compromised: never trusted again by any change.
    revoked: ArcSwap<Vec<Box<str>>>,
    /// Unix seconds until which the keys count as current (`u64::MAX`: always).
    fresh_until: AtomicU64,
    generation: AtomicU64,
    admin: Mutex<Admin>,
    clock: Arc<dyn Clock>,
    retirement: Retirement,
    observer: Option<SharedObserver>,
}

struct Admin {
    next_version: u64,
    limit: usize,
    /// Every snapshot still kept, oldest first.
    history: VecDeque<Arc<KeysetSnapshot>>,
    /// The versions that were current before, most recent last (what `rollback` returns to).
    previous: Vec<u64>,
    /// Versions the rollout guard rolled back from: never made current again until released.
    quarantined: Vec<u64>,
}

impl fmt::Debug for KeysetStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cur = self.inner.current.load();
        f.debug_struct("KeysetStore")
            .field("version", &cur.version)
            .field("generation", &self.generation())
            .field("retirement", &self.inner.retirement)
            .finish_non_exhaustive()
    }
}

/// Builds a [`KeysetStore`]: history length, clock, retirement policy, observer.
///
/// ```
/// use std::time::Duration;
/// use tokenlife_core::keys::Retirement;
/// use tokenlife_core::{Algorithm, Keyset, KeysetStore, ManualClock, testing};
///
/// let clock = ManualClock::at_unix(1_700_000_000);
/// let store = KeysetStore::builder(Keyset::new([testing::key("blue", Algorithm::ES256)])?)
///     .retirement(Retirement::Grace(Duration::from_secs(300)))
///     .clock(clock.clone())
///     .build();
/// store.publish(Keyset::new([testing::key("green", Algorithm::ES256)])?);
/// assert_eq!(store.retired_kids(), ["blue"]);
/// clock.advance(Duration::from_secs(301));
/// assert!(store.retired_kids().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct KeysetStoreBuilder {
    keyset: Keyset,
    history: usize,
    clock: Arc<dyn Clock>,
    retirement: Retirement,
    observer: Option<SharedObserver>,
}

impl KeysetStoreBuilder {
    /// Keep `limit` snapshots (at least 2) for rollback (default
    /// [`KeysetStore::DEFAULT_HISTORY`]).
    pub fn history(mut self, limit: usize) -> Self {
        self.history = limit;
        self
    }

    /// The clock for snapshot times and retirement deadlines (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// What becomes of tokens of removed keys (default [`Retirement::Reject`]).
    pub fn retirement(mut self, policy: Retirement) -> Self {
        self.retirement = policy;
        self
    }

    /// Reports [`Event::KeysRetired`] to `observer` (a [`Monitor`](crate::Monitor) counts
    /// it and audits it). Do not pass a [`RolloutGuard`](crate::rollout::RolloutGuard)
    /// holding this store: that would be a reference cycle.
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observer = Some(SharedObserver::new(observer));
        self
    }

    /// The store; its current snapshot (version 1) is the keyset given.
    pub fn build(self) -> KeysetStore {
        let first = Arc::new(KeysetSnapshot {
            version: 1,
            instance: next_instance(),
            created_at: self.clock.now(),
            active: self.keyset,
            candidate: None,
        });
        KeysetStore {
            inner: Arc::new(StoreInner {
                listener: Mutex::new(None),
                current_instance: AtomicU64::new(first.instance),
                current: ArcSwap::new(first.clone()),
                retired: ArcSwap::from_pointee(RetiredKeys::default()),
                revoked: ArcSwap::from_pointee(Vec::new()),
                fresh_until: AtomicU64::new(u64::MAX),
                generation: AtomicU64::new(1),
                admin: Mutex::new(Admin {
                    next_version: 2,
                    limit: self.history.max(2),
                    history: VecDeque::from([first]),
                    previous: Vec::new(),
                    quarantined: Vec::new(),
                }),
                clock: self.clock,
                retirement: self.retirement,
                observer: self.observer,
            }),
        }
    }
}

impl KeysetStore {
    /// Default number of snapshots kept for rollback.
    pub const DEFAULT_HISTORY: usize = DEFAULT_HISTORY;
    /// Most keys revoked as compromised that a store remembers.
    pub const MAX_REVOKED_KEYS: usize = MAX_REVOKED;
}

/// `keyset` without the keys whose kid is in `revoked`: `None` if it holds none of them,
/// else the rest (`Err` with the first revoked kid if nothing is left).
fn without_revoked(keyset: &Keyset, revoked: &[Box<str>]) -> Option<Result<Keyset, KeysetError>> {
    let hit = keyset
        .keys()
        .find(|k| revoked.iter().any(|r| **r == *k.kid()))?;
    let first = hit.kid().to_owned();
    let keys: Vec<Arc<Key>> = keyset
        .keys()
        .filter(|k| !revoked.iter().any(|r| **r == *k.kid()))
        .cloned()
        .collect();
    let Ok(mut next) = Keyset::new(keys) else {
        return Some(Err(KeysetError::key_revoked(&first)));
    };
    next.signing_kid = keyset
        .signing_kid
        .clone()
        .filter(|kid| next.get(kid).is_some());
    Some(Ok(match keyset.label() {
        Some(l) => next.with_label(l),
        None => next,
    }))
}

impl KeysetStore {
    /// A store whose current snapshot (version 1) is `keyset`, keeping
    /// [`Self::DEFAULT_HISTORY`] snapshots, on the system clock, rejecting tokens of
    /// removed keys at once. [`builder`](Self::builder) for the rest.
    pub fn new(keyset: Keyset) -> Self {
        Self::builder(keyset).build()
    }

    /// A store that keeps `limit` snapshots (at least 2) for rollback.
    pub fn with_history(keyset: Keyset, limit: usize) -> Self {
        Self::builder(keyset).history(limit).build()
    }

    /// Starts a store whose first snapshot is `keyset`.
    pub fn builder(keyset: Keyset) -> KeysetStoreBuilder {
        KeysetStoreBuilder {
            keyset,
            history: DEFAULT_HISTORY,
            clock: Arc::new(SystemClock),
            retirement: Retirement::default(),
            observer: None,
        }
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<KeysetSnapshot> {
        self.inner.current.load_full()
    }

    /// The current snapshot's instance (one atomic load; a swap stores it right after
    /// the snapshot).
    #[inline]
    pub(crate) fn current_instance(&self) -> u64 {
        self.inner.current_instance.load(Ordering::Acquire)
    }

    /// The current snapshot without touching its reference count (the hot path).
    #[inline]
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<KeysetSnapshot>> {
        self.inner.current.load()
    }

    /// A counter that grows by one with every change to the current snapshot (including
    /// rollbacks, which reinstall an older version): it orders changes across a fleet.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Sets until when (Unix seconds) these keys count as current: past it, every token
    /// they would verify is answered
    /// [`ValidationErrorKind::KeysStale`](crate::ValidationErrorKind::KeysStale) (503).
    /// A remote key source moves it forward on every successful fetch, so keys an
    /// identity provider stopped confirming age out. `u64::MAX` (the default): always.
    pub fn set_fresh_until(&self, unix: u64) {
        self.inner.fresh_until.store(unix, Ordering::Release);
    }

    /// Whether the keys count as current at `now` (Unix seconds).
    #[inline]
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.inner.fresh_until.load(Ordering::Acquire)
    }

    /// The retirement policy in force.
    pub fn retirement(&self) -> Retirement {
        self.inner.retirement
    }

    /// The kids of removed keys whose tokens the retirement policy still answers for
    /// (accepted under [`Retirement::Grace`], "renew" under [`Retirement::RenewRequired`]).
    pub fn retired_kids(&self) -> Vec<String> {
        let now = self.inner.clock.unix_now();
        self.inner
            .retired
            .load()
            .keys
            .iter()
            .filter(|r| r.until > now)
            .map(|r| r.key.kid().to_owned())
            .collect()
    }

    /// A retired key with this kid still covered by the policy at `now`, and the policy.
    pub(crate) fn retired(&self, kid: &str, now: u64) -> Option<(Arc<Key>, Retirement)> {
        let retired = self.inner.retired.load();
        let policy = retired.policy?;
        retired
            .keys
            .iter()
            .find(|r| r.until > now && r.key.kid() == kid)
            .map(|r| (r.key.clone(), policy))
    }

    /// Whether this exact key is retired and still accepted (grace) at `now`.
    pub(crate) fn retired_accepts(&self, key: &Arc<Key>, now: u64) -> bool {
        let retired = self.inner.retired.load();
        matches!(retired.policy, Some(Retirement::Grace(_)))
            && retired
                .keys
                .iter()
                .any(|r| r.until > now && Arc::ptr_eq(&r.key, key))
    }

    fn admin(&self) -> MutexGuard<'_, Admin> {
        // A panic while holding the lock cannot leave the data half-changed: every change
        // is prepared first and applied by one swap, so a poisoned lock is still usable.
        self.inner.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn install(&self, admin: &mut Admin, snap: Arc<KeysetSnapshot>, remember_current: bool) {
        self.install_as(admin, snap, remember_current, true);
    }

    fn install_as(
        &self,
        admin: &mut Admin,
        snap: Arc<KeysetSnapshot>,
        remember_current: bool,
        notify: bool,
    ) {
        let cur = self.inner.current.load_full();
        if remember_current {
            admin.previous.push(cur.version);
            let limit = admin.limit;
            if admin.previous.len() > limit {
                admin.previous.remove(0);
            }
        }
        // The retired keys first: a reader that sees the new snapshot sees them too.
        let removed = self.retire(&cur, &snap);
        self.inner.current.store(snap.clone());
        self.inner
            .current_instance
            .store(snap.instance, Ordering::Release);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        if notify {
            self.notify(&snap);
        }
        if !removed.is_empty()
            && let Some(o) = &self.inner.observer
        {
            let kids: Vec<&str> = removed.iter().map(|k| k.kid()).collect();
            let policy = self.inner.retirement;
            o.on_event(&Event::KeysRetired {
                version: snap.version,
                kids: &kids,
                policy: policy.policy(),
                until: policy
                    .keep_for()
                    .map(|d| self.inner.clock.unix_now().saturating_add(d.as_secs())),
            });
        }
    }

    /// Records the keys that verified in `old` and no longer do in `new` under the
    /// retirement policy; forgets those back in `new` and those past their deadline.
    fn retire(&self, old: &KeysetSnapshot, new: &KeysetSnapshot) -> Vec<Arc<Key>> {
        let removed: Vec<Arc<Key>> = old
            .keys()
            .filter(|k| !new.keys().any(|n| same_key(k, n)))
            .cloned()
            .collect();
        let now = self.inner.clock.unix_now();
        let prev = self.inner.retired.load();
        let policy = self.inner.retirement;
        let mut keys: Vec<RetiredKey> = prev
            .keys
            .iter()
            .filter(|r| r.until > now && !new.keys().any(|n| same_key(&r.key, n)))
            .cloned()
            .collect();
        if let Some(keep) = policy.keep_for() {
            let until = now.saturating_add(keep.as_secs());
            for key in &removed {
                keys.retain(|r| r.key.kid() != key.kid());
                keys.push(RetiredKey {
                    key: key.clone(),
                    until,
                });
            }
        }
        if keys.len() > MAX_RETIRED {
            keys.drain(..keys.len() - MAX_RETIRED);
        }
        if !keys.is_empty() || !prev.keys.is_empty() {
            self.inner.retired.store(Arc::new(RetiredKeys {
                policy: Some(policy),
                keys,
            }));
        }
        removed
    }

    fn new_snapshot(
        &self,
        admin: &mut Admin,
        active: Keyset,
        candidate: Option<Candidate>,
    ) -> Arc<KeysetSnapshot> {
        let snap = Arc::new(KeysetSnapshot {
            version: admin.next_version,
            instance: next_instance(),
            created_at: self.inner.clock.now(),
            active,
            candidate,
        });
        admin.next_version += 1;
        admin.history.push_back(snap.clone());
        // Evict the oldest snapshots, but never the current one: it is about to become
        // the target of `rollback`.
        let current = self.inner.current.load().version;
        while admin.history.len() > admin.limit {
            match admin.history.iter().position(|s| s.version != current) {
                Some(i) => {
                    admin.history.remove(i);
                }
                None => break,
            }
        }
        // A quarantine outlives nothing it guards: a version gone from the history can
        // never be made current again anyway. Keeps the list bounded by the history.
        let Admin {
            history,
            quarantined,
            ..
        } = admin;
        quarantined.retain(|q| history.iter().any(|s| s.version == *q));
        snap
    }

    /// Makes `keyset` current (signing and verifying) and returns its new version. Any
    /// rollout in progress is dropped with the old snapshot.
    ///
    /// Keys revoked as compromised ([`revoke_key`](Self::revoke_key)) are left out; if no
    /// other key is left nothing changes and the current version is returned
    /// ([`try_publish`](Self::try_publish) says so as an error).
    pub fn publish(&self, keyset: Keyset) -> u64 {
        self.try_publish(keyset)
            .unwrap_or_else(|_| self.current().version)
    }

    /// [`publish`](Self::publish), refusing a keyset that holds nothing but revoked keys.
    ///
    /// # Errors
    /// [`KeysetErrorKind::KeyRevoked`]; nothing changes.
    pub fn try_publish(&self, keyset: Keyset) -> Result<u64, KeysetError> {
        let mut admin = self.admin();
        let keyset = match without_revoked(&keyset, &self.inner.revoked.load()) {
            None => keyset,
            Some(k) => k?,
        };
        let snap = self.new_snapshot(&mut admin, keyset, None);
        let version = snap.version;
        self.install(&mut admin, snap, true);
        Ok(version)
    }

    /// Stages `keyset` beside the current one, its keys verifying for every client while
    /// the current keys still sign (a canary at 0 %: how a new key is pre-published before
    /// it signs). Returns the new snapshot's version. [`set_share`](Self::set_share)
    /// routes a share of clients to it, [`promote`](Self::promote) makes it current,
    /// [`abort`](Self::abort) or a [`rollback`](Self::rollback) drops it.
    ///
    /// # Errors
    /// [`KeysetErrorKind::KidConflict`](crate::error::KeysetErrorKind::KidConflict) if a staged key shares its kid with a different
    /// active key (the same key staged again is fine);
    /// [`KeysetErrorKind::RolloutInProgress`](crate::error::KeysetErrorKind::RolloutInProgress)
    /// if a candidate is staged already. Nothing changes.
    pub fn stage(&self, keyset: Keyset) -> Result<u64, KeysetError> {
        self.stage_as(keyset, RolloutMode::Canary, 0.0)
    }

    /// Stages `keyset` as a canary for `share` percent (0–100) of clients, chosen by a
    /// stable hash of the token's subject ([`KeysetSnapshot::bucket`]): a client inside
    /// the share is judged by the candidate's keys only and gets its tokens signed by the
    /// candidate's signing key (if it has one); the others keep the current keys (the
    /// candidate's keys verify for them too).
    ///
    /// # Errors
    /// As for [`stage`](Self::stage), and
    /// [`KeysetErrorKind::InvalidShare`](crate::error::KeysetErrorKind::InvalidShare) for a
    /// share outside 0–100.
    pub fn stage_canary(&self, keyset: Keyset, share: f64) -> Result<u64, KeysetError> {
        self.stage_as(keyset, RolloutMode::Canary, share)
    }

    /// Stages `keyset` as a shadow candidate: every validation the current keyset accepts
    /// is judged by the candidate too, without affecting the response, and what it would
    /// have rejected is counted ([`KeysetSnapshot::shadow_stats`], [`Event::Shadow`]).
    ///
    /// # Errors
    /// As for [`stage`](Self::stage) (a shadow candidate's kids may shadow active ones:
    /// that is what it tests).
    pub fn stage_shadow(&self, keyset: Keyset) -> Result<u64, KeysetError> {
        self.stage_as(keyset, RolloutMode::Shadow, 0.0)
    }

    fn stage_as(&self, keyset: Keyset, mode: RolloutMode, share: f64) -> Result<u64, KeysetError> {
        let share = share_buckets(share)?;
        let mut admin = self.admin();
        let cur = self.inner.current.load_full();
        if cur.candidate.is_some() {
            return Err(KeysetError::new(KeysetErrorKind::RolloutInProgress));
        }
        if let Some(k) = keyset.keys().find(|k| self.is_key_revoked(k.kid())) {
            return Err(KeysetError::key_revoked(k.kid()));
        }
        if mode == RolloutMode::Canary {
            for key in keyset.keys() {
                if let Some(other) = cur.active.get(key.kid())
                    && !same_key(key, other)
                {
                    return Err(KeysetError::kid_conflict(key.kid()));
                }
            }
        }
        let candidate = Candidate {
            keyset,
            mode,
            share,
            shadow: Arc::default(),
        };
        let snap = self.new_snapshot(&mut admin, cur.active.clone(), Some(candidate));
        let version = snap.version;
        self.install(&mut admin, snap, true);
        Ok(version)
    }

    /// Widens (or narrows) the staged canary to `share` percent of clients. Returns the
    /// new snapshot's version.
    ///
    /// # Errors
    /// [`KeysetErrorKind::InvalidShare`](crate::error::KeysetErrorKind::InvalidShare) outside
    /// 0–100, [`KeysetErrorKind::NotACanary`](crate::error::KeysetErrorKind::NotACanary) if no
    /// canary is staged. Nothing changes.
    pub fn set_share(&self, share: f64) -> Result<u64, KeysetError> {
        let share = share_buckets(share)?;
        let mut admin = self.admin();
        let cur = self.inner.current.load_full();
        let Some(c) = cur
            .candidate
            .as_ref()
            .filter(|c| c.mode == RolloutMode::Canary)
        else {
            return Err(KeysetError::new(KeysetErrorKind::NotACanary));
        };
        let candidate = Candidate { share, ..c.clone() };
        let snap = self.new_snapshot(&mut admin, cur.active.clone(), Some(candidate));
        let version = snap.version;
        self.install(&mut admin, snap, true);
        Ok(version)
    }

    /// Publishes the staged candidate (canary or shadow) as the current keyset. If the
    /// candidate has no signing key (a public JWKS), the current signing key comes along
    /// and keeps signing. Returns the new version.
    ///
    /// # Errors
    /// [`KeysetErrorKind::NothingStaged`](crate::error::KeysetErrorKind::NothingStaged) if no keyset is staged; nothing changes.
    pub fn promote(&self) -> Result<u64, KeysetError> {
        self.promote_checked(None)
    }

    /// Promotes like [`promote`](Self::promote), but a shadow candidate only after it
    /// judged at least `min_sample` validations and would have rejected none of them.
    ///
    /// # Errors
    /// As for [`promote`](Self::promote), and
    /// [`KeysetErrorKind::ShadowSampleTooSmall`](crate::error::KeysetErrorKind::ShadowSampleTooSmall) /
    /// [`KeysetErrorKind::ShadowRegressions`](crate::error::KeysetErrorKind::ShadowRegressions).
    pub fn promote_checked(&self, min_shadow_sample: Option<u64>) -> Result<u64, KeysetError> {
        self.promote_inner(None, min_shadow_sample)
    }

    /// Promotes the candidate staged in snapshot `version` (still in the history, not
    /// necessarily current), with the same shadow check as
    /// [`promote_checked`](Self::promote_checked).
    ///
    /// # Errors
    /// [`KeysetErrorKind::Quarantined`](crate::error::KeysetErrorKind::Quarantined) if the
    /// rollout guard rolled `version` back,
    /// [`KeysetErrorKind::UnknownVersion`](crate::error::KeysetErrorKind::UnknownVersion) if it
    /// is not in the history, and as for [`promote_checked`](Self::promote_checked).
    pub fn promote_version(
        &self,
        version: u64,
        min_shadow_sample: Option<u64>,
    ) -> Result<u64, KeysetError> {
        self.promote_inner(Some(version), min_shadow_sample)
    }

    fn promote_inner(
        &self,
        version: Option<u64>,
        min_shadow_sample: Option<u64>,
    ) -> Result<u64, KeysetError> {
        let mut admin = self.admin();
        let cur = match version {
            None => self.inner.current.load_full(),
            Some(v) => {
                if admin.quarantined.contains(&v) {
                    return Err(KeysetError::quarantined(v));
                }
                admin
                    .history
                    .iter()
                    .find(|s| s.version == v)
                    .cloned()
                    .ok_or_else(|| KeysetError::unknown_version(v))?
            }
        };
        let c = cur
            .candidate
            .as_ref()
            .ok_or_else(|| KeysetError::new(KeysetErrorKind::NothingStaged))?;
        if let Some(min) = min_shadow_sample
            && c.mode == RolloutMode::Shadow
        {
            let (sample, bad) = (c.shadow.sample(), c.shadow.regressions());
            if bad > 0 {
                return Err(KeysetError::with_count(
                    KeysetErrorKind::ShadowRegressions,
                    bad,
                ));
            }
            if sample < min {
                return Err(KeysetError::with_count(
                    KeysetErrorKind::ShadowSampleTooSmall,
                    sample,
                ));
            }
        }
        let mut next = c.keyset.clone();
        if next.signing_key().is_none()
            && let Some(sk) = cur.signing_key()
            && next.get(sk.kid()).is_none_or(|k| same_key(k, sk))
        {
            let label = next.label().map(str::to_owned);
            let keys: Vec<Arc<Key>> = next
                .keys()
                .filter(|k| k.kid() != sk.kid())
                .cloned()
                .chain([sk.clone()])
                .collect();
            if let Ok(ks) = Keyset::new(keys).and_then(|k| k.with_signing_kid(sk.kid())) {
                next = match label {
                    Some(l) => ks.with_label(l),
                    None => ks,
                };
            }
        }
        let snap = self.new_snapshot(&mut admin, next, None);
        let version = snap.version;
        self.install(&mut admin, snap, true);
        Ok(version)
    }

    /// Drops the staged candidate: the current keyset alone, as a new version.
    ///
    /// # Errors
    /// [`KeysetErrorKind::NothingStaged`](crate::error::KeysetErrorKind::NothingStaged) if no keyset is staged; nothing changes.
    pub fn abort(&self) -> Result<u64, KeysetError> {
        let mut admin = self.admin();
        let cur = self.inner.current.load_full();
        if cur.candidate.is_none() {
            return Err(KeysetError::new(KeysetErrorKind::NothingStaged));
        }
        let snap = self.new_snapshot(&mut admin, cur.active.clone(), None);
        let version = snap.version;
        self.install(&mut admin, snap, true);
        Ok(version)
    }
    /// Goes back to the snapshot that was current before this one. Returns its version.
    ///
    /// # Errors
    /// [`KeysetErrorKind::NoPrevious`](crate::error::KeysetErrorKind::NoPrevious) if there is none left in the history; nothing changes.
    pub fn rollback(&self) -> Result<u64, KeysetError> {
        let mut admin = self.admin();
        let current = self.inner.current.load().version;
        while let Some(v) = admin.previous.pop() {
            if v == current || admin.quarantined.contains(&v) {
                continue;
            }
            if let Some(snap) = admin.history.iter().find(|s| s.version == v).cloned() {
                let Ok(snap) = self.admit(&mut admin, snap) else {
                    continue;
                };
                let version = snap.version;
                self.install(&mut admin, snap, false);
                return Ok(version);
            }
        }
        Err(KeysetError::new(KeysetErrorKind::NoPrevious))
    }

    /// Makes the snapshot with this version current again.
    ///
    /// # Errors
    /// [`KeysetErrorKind::UnknownVersion`](crate::error::KeysetErrorKind::UnknownVersion) if it is not in the history,
    /// [`KeysetErrorKind::Quarantined`](crate::error::KeysetErrorKind::Quarantined) if the rollout guard rolled back from it;
    /// nothing changes.
    pub fn rollback_to(&self, version: u64) -> Result<(), KeysetError> {
        let mut admin = self.admin();
        if self.inner.current.load().version == version {
            return Ok(());
        }
        if admin.quarantined.contains(&version) {
            return Err(KeysetError::quarantined(version));
        }
        let snap = admin
            .history
            .iter()
            .find(|s| s.version == version)
            .cloned()
            .ok_or_else(|| KeysetError::unknown_version(version))?;
        let snap = self.admit(&mut admin, snap)?;
        self.install(&mut admin, snap, true);
        Ok(())
    }

    /// The rollout guard's step: if `from` is still current, quarantines it and makes
    /// `to` current, in one step under the store's lock (an operator's change in between
    /// wins: nothing happens and `Ok(false)` is returned).
    ///
    /// # Errors
    /// [`KeysetErrorKind::UnknownVersion`](crate::error::KeysetErrorKind::UnknownVersion) if `to` is no longer in the history;
    /// nothing changes.
    pub fn rollback_from(&self, from: u64, to: u64) -> Result<bool, KeysetError> {
        let mut admin = self.admin();
        if self.inner.current.load().version != from {
            return Ok(false);
        }
        let snap = admin
            .history
            .iter()
            .find(|s| s.version == to)
            .cloned()
            .ok_or_else(|| KeysetError::unknown_version(to))?;
        let snap = self.admit(&mut admin, snap)?;
        if !admin.quarantined.contains(&from) {
            admin.quarantined.push(from);
        }
        self.install(&mut admin, snap, true);
        Ok(true)
    }

    /// Whether the rollout guard quarantined this version.
    pub fn is_quarantined(&self, version: u64) -> bool {
        self.admin().quarantined.contains(&version)
    }

    /// Sets the one listener told of every local change (fleet mode).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn set_listener(&self, listener: Listener) {
        *self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(listener);
    }

    /// Installs a state another node made (fleet mode): `version` with this active keyset
    /// (public keys; a key this node holds privately, same kid and same public key, is
    /// used in its place, so it keeps signing) and candidate. Re-installs the snapshot of
    /// that version from the history when it holds the same keys. The listener is not
    /// told.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn apply_remote(
        &self,
        version: u64,
        active: Keyset,
        signing_kid: Option<&str>,
        candidate: Option<(Keyset, RolloutMode, u16)>,
    ) {
        let mut admin = self.admin();
        let cur = self.inner.current.load_full();
        let same_set = |a: &Keyset, b: &Keyset| {
            a.keys.len() == b.keys.len()
                && a.keys()
                    .all(|k| b.get(k.kid()).is_some_and(|o| same_key(k, o)))
        };
        let matches = |s: &KeysetSnapshot| {
            same_set(&s.active, &active)
                && s.active.signing_kid.as_deref() == signing_kid
                && match (&s.candidate, &candidate) {
                    (None, None) => true,
                    (Some(c), Some((k, m, sh))) => {
                        c.mode == *m && c.share == *sh && same_set(&c.keyset, k)
                    }
                    _ => false,
                }
        };
        if cur.version == version && matches(&cur) {
            return;
        }
        if let Some(snap) = admin
            .history
            .iter()
            .find(|s| s.version == version && matches(s))
            .cloned()
        {
            // A revoked key is never trusted again, whatever a fleet message says.
            if let Ok(snap) = self.admit(&mut admin, snap) {
                self.install_as(&mut admin, snap, true, false);
            }
            return;
        }
        // Our private halves of the same keys, from anything still in the history.
        let ours = |k: &Arc<Key>| -> Arc<Key> {
            admin
                .history
                .iter()
                .flat_map(|s| s.active.keys())
                .find(|o| o.can_sign() && o.kid() == k.kid() && same_key(o, k))
                .cloned()
                .unwrap_or_else(|| k.clone())
        };
        let label = active.label().map(str::to_owned);
        let keys: Vec<Arc<Key>> = active.keys().map(ours).collect();
        let Ok(mut next) = Keyset::new(keys) else {
            return;
        };
        next.signing_kid = signing_kid
            .filter(|kid| next.get(kid).is_some_and(|k| k.can_sign()))
            .map(Into::into);
        if let Some(l) = label {
            next = next.with_label(l);
        }
        let candidate = candidate.map(|(keyset, mode, share)| Candidate {
            keyset,
            mode,
            share,
            shadow: Arc::default(),
        });
        // The fleet's version number (nodes stay aligned); the verified-token cache keys
        // its trust on the snapshot instance, so a number that comes back with other keys
        // is never taken for the old snapshot.
        let snap = Arc::new(KeysetSnapshot {
            version,
            instance: next_instance(),
            created_at: self.inner.clock.now(),
            active: next,
            candidate,
        });
        admin.next_version = admin.next_version.max(version + 1);
        admin.history.retain(|s| s.version != version);
        admin.history.push_back(snap.clone());
        while admin.history.len() > admin.limit {
            admin.history.pop_front();
        }
        if let Ok(snap) = self.admit(&mut admin, snap) {
            self.install_as(&mut admin, snap, true, false);
        }
    }

    /// The active keyset and candidate of `snap` without revoked keys, if it holds any:
    /// `None` when it holds none.
    fn scrubbed(
        &self,
        snap: &KeysetSnapshot,
    ) -> Option<Result<(Keyset, Option<Candidate>), KeysetError>> {
        let revoked = self.inner.revoked.load();
        if revoked.is_empty() {
            return None;
        }
        let active = without_revoked(&snap.active, &revoked);
        let candidate = snap
            .candidate
            .as_ref()
            .and_then(|c| without_revoked(&c.keyset, &revoked).map(|ks| (c, ks)));
        if active.is_none() && candidate.is_none() {
            return None;
        }
        let active = match active {
            None => snap.active.clone(),
            Some(Ok(ks)) => ks,
            Some(Err(e)) => return Some(Err(e)),
        };
        let candidate = match candidate {
            None => snap.candidate.clone(),
            // A candidate left with no key is dropped: the rollout has nothing to test.
            Some((_, Err(_))) => None,
            Some((c, Ok(keyset))) => Some(Candidate {
                keyset,
                shadow: Arc::default(),
                ..c.clone()
            }),
        };
        Some(Ok((active, candidate)))
    }

    /// `snap` as it may be made current: itself, or — if it holds a revoked key — a new
    /// snapshot (a new version) of the same keys without it.
    ///
    /// # Errors
    /// [`KeysetErrorKind::KeyRevoked`] if no active key would be left.
    fn admit(
        &self,
        admin: &mut Admin,
        snap: Arc<KeysetSnapshot>,
    ) -> Result<Arc<KeysetSnapshot>, KeysetError> {
        match self.scrubbed(&snap) {
            None => Ok(snap),
            Some(Err(e)) => Err(e),
            Some(Ok((active, candidate))) => Ok(self.new_snapshot(admin, active, candidate)),
        }
    }

    /// Revokes the key `kid` as compromised (a leaked partner key, say): it leaves the
    /// current keyset at once (a new version, if the current one held it), its tokens get
    /// no retirement grace, and from now on no change — publish, stage, promote, a manual
    /// rollback, the rollout guard's automatic rollback, a fleet message — makes it trusted
    /// again: a snapshot that still holds it is made current without it (as a new
    /// version). The [`RolloutGuard`](crate::rollout::RolloutGuard) never counts its tokens
    /// as evidence of a bad deploy. In fleet mode the revocation travels with the keyset
    /// state. Returns the version current afterwards. Revoking a kid twice is a no-op.
    ///
    /// ```
    /// use tokenlife_core::{Algorithm, Keyset, KeysetStore, testing};
    ///
    /// let main = std::sync::Arc::new(testing::key("main", Algorithm::ES256));
    /// let partner = std::sync::Arc::new(testing::key("partner-L", Algorithm::ES256));
    /// let store = KeysetStore::new(Keyset::new([main.clone()])?);
    /// let with_partner = store.publish(Keyset::new([main.clone(), partner])?);
    /// let v = store.revoke_key("partner-L")?;
    /// assert!(store.current().find("partner-L").is_none());
    /// // Rolling back to the version that trusted it does not trust it again.
    /// store.rollback_to(with_partner)?;
    /// assert!(store.current().find("partner-L").is_none());
    /// assert!(store.current().find("main").is_some());
    /// assert!(store.current().version() > v);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`KeysetErrorKind::KeyRevoked`] if the current keyset would be left with no key
    /// (publish a replacement first), [`KeysetErrorKind::TooManyRevokedKeys`] past
    /// [`Self::MAX_REVOKED_KEYS`]. Nothing changes.
    pub fn revoke_key(&self, kid: &str) -> Result<u64, KeysetError> {
        let mut admin = self.admin();
        let before = self.inner.revoked.load_full();
        let known = before.iter().any(|k| **k == *kid);
        if !known && before.len() >= MAX_REVOKED {
            return Err(KeysetError::new(KeysetErrorKind::TooManyRevokedKeys));
        }
        let cur = self.inner.current.load_full();
        // Checked before anything changes: the current keyset must keep a key.
        let mut with: Vec<Box<str>> = before.iter().cloned().collect();
        if !known {
            with.push(kid.into());
        }
        if let Some(Err(e)) = without_revoked(&cur.active, &with) {
            return Err(e);
        }
        self.inner.revoked.store(Arc::new(with));
        self.forget_retired(kid);
        match self.scrubbed(&cur) {
            Some(Ok((active, candidate))) => {
                let snap = self.new_snapshot(&mut admin, active, candidate);
                let version = snap.version;
                self.install(&mut admin, snap, true);
                Ok(version)
            }
            _ => {
                // Nothing to take out of the current keyset: tell the fleet all the same.
                if !known {
                    self.notify(&cur);
                }
                Ok(cur.version)
            }
        }
    }

    /// The kids revoked as compromised ([`revoke_key`](Self::revoke_key)), oldest first.
    pub fn revoked_keys(&self) -> Vec<String> {
        self.inner
            .revoked
            .load()
            .iter()
            .map(|k| k.to_string())
            .collect()
    }

    /// Whether `kid` was revoked as compromised.
    pub fn is_key_revoked(&self, kid: &str) -> bool {
        self.inner.revoked.load().iter().any(|k| **k == *kid)
    }

    /// Adds kids another node revoked (fleet mode); beyond the bound the rest are
    /// ignored. Returns whether any was new. The current keyset is not changed here:
    /// the state that carried them is installed (scrubbed) next.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn merge_revoked(&self, kids: &[String]) -> bool {
        let _admin = self.admin();
        let before = self.inner.revoked.load_full();
        let mut with: Vec<Box<str>> = before.iter().cloned().collect();
        for kid in kids {
            if with.len() >= MAX_REVOKED {
                break;
            }
            if !kid.is_empty() && kid.len() <= 256 && !with.iter().any(|k| **k == **kid) {
                with.push(kid.as_str().into());
                self.forget_retired(kid);
            }
        }
        let grew = with.len() != before.len();
        if grew {
            self.inner.revoked.store(Arc::new(with));
        }
        grew
    }

    /// Drops `kid` from the retired keys: no grace for it.
    fn forget_retired(&self, kid: &str) {
        let prev = self.inner.retired.load_full();
        if prev.keys.iter().any(|r| r.key.kid() == kid) {
            self.inner.retired.store(Arc::new(RetiredKeys {
                policy: prev.policy,
                keys: prev
                    .keys
                    .iter()
                    .filter(|r| r.key.kid() != kid)
                    .cloned()
                    .collect(),
            }));
        }
    }

    /// Tells the listener of the current snapshot again (fleet mode: a Redis that lost
    /// the fleet's state gets this node's).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn announce(&self) {
        let _admin = self.admin();
        self.notify(&self.inner.current.load_full());
    }

    fn notify(&self, snap: &Arc<KeysetSnapshot>) {
        let listener = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(l) = listener {
            l(snap);
        }
    }

    /// Quarantines the versions another node's guard quarantined (fleet mode): those of
    /// them this node's history holds, unless current. Nothing else changes.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn merge_quarantine(&self, versions: &[u64]) {
        let mut admin = self.admin();
        let current = self.inner.current.load().version;
        for v in versions {
            if *v != current
                && !admin.quarantined.contains(v)
                && admin.history.iter().any(|s| s.version == *v)
            {
                admin.quarantined.push(*v);
            }
        }
    }

    /// The versions the rollout guard quarantined, oldest first.
    pub fn quarantined(&self) -> Vec<u64> {
        self.admin().quarantined.clone()
    }

    /// Lifts a quarantine (an operator's decision): the version may be made current again.
    /// Returns whether it was quarantined.
    pub fn release(&self, version: u64) -> bool {
        let mut admin = self.admin();
        let before = admin.quarantined.len();
        admin.quarantined.retain(|v| *v != version);
        admin.quarantined.len() != before
    }

    /// The snapshots still kept for rollback, oldest first (the current one included).
    pub fn history(&self) -> Vec<Arc<KeysetSnapshot>> {
        self.admin().history.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::KeyErrorKind;
    use jsonwebtoken::Algorithm;

    fn ks(kid: &str, byte: u8) -> Keyset {
        Keyset::new([Key::hmac(kid, Algorithm::HS256, &[byte; 32]).unwrap()]).unwrap()
    }

    /// Security review 3, LOW 13: a fleet state numbered like a local version that held
    /// other keys never lets a cached verification of the old keys pass: the cache
    /// trusts the snapshot instance, not its number.
    #[test]
    fn a_reused_version_number_never_answers_from_the_cache() {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let store = KeysetStore::new(ks("a", 1));
        let validator = crate::Validator::builder(store.clone())
            .issuer("i")
            .audience("x")
            .build()
            .unwrap();
        let v2 = store.publish(ks("b", 2));
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("b".into());
        let token = encode(
            &h,
            &serde_json::json!({"iss": "i", "aud": "x", "exp": 4_000_000_000u64}),
            &EncodingKey::from_secret(&[2; 32]),
        )
        .unwrap();
        validator.validate(&token).unwrap();
        assert!(validator.validate(&token).unwrap().from_cache());
        // Another node's state claims version 2 with other keys.
        store.apply_remote(v2, ks("c", 3), None, None);
        assert_eq!(store.current().version(), v2);
        assert_eq!(
            validator.validate(&token).unwrap_err().kind(),
            crate::ValidationErrorKind::UnknownKid
        );
    }

    #[test]
    fn publish_rollback_and_rollback_to() {
        let store = KeysetStore::new(ks("a", 1));
        let v2 = store.publish(ks("b", 2));
        let v3 = store.publish(ks("c", 3));
        assert_eq!((v2, v3), (2, 3));
        assert_eq!(store.rollback(), Ok(2));
        assert_eq!(store.rollback(), Ok(1));
        assert_eq!(
            store.rollback(),
            Err(KeysetError::new(KeysetErrorKind::NoPrevious))
        );
        assert_eq!(store.current().version(), 1);
        store.rollback_to(3).unwrap();
        assert!(store.current().find("c").is_some());
        assert_eq!(store.rollback_to(99), Err(KeysetError::unknown_version(99)));
        assert_eq!(
            store.current().version(),
            3,
            "a failed rollback changes nothing"
        );
        // every successful change moved the generation
        assert_eq!(store.generation(), 6);
    }

    #[test]
    fn stage_verifies_both_but_signs_with_current_then_promote() {
        let store = KeysetStore::new(ks("a", 1));
        assert_eq!(
            store.promote(),
            Err(KeysetError::new(KeysetErrorKind::NothingStaged))
        );
        let v = store.stage(ks("b", 2)).unwrap();
        let snap = store.current();
        assert_eq!(snap.version(), v);
        assert!(snap.find("a").is_some() && snap.find("b").is_some());
        assert_eq!(snap.signing_kid(), Some("a"));
        let v3 = store.promote().unwrap();
        let snap = store.current();
        assert_eq!(snap.version(), v3);
        assert_eq!(snap.signing_kid(), Some("b"));
        assert!(snap.find("a").is_none());
        // rolling back the promotion returns to the canary state
        assert_eq!(store.rollback(), Ok(v));
    }

    #[test]
    fn a_staged_key_may_not_shadow_a_different_active_key() {
        let store = KeysetStore::new(ks("a", 1));
        let gen_before = store.generation();
        assert_eq!(store.stage(ks("a", 2)), Err(KeysetError::kid_conflict("a")));
        assert_eq!(
            (store.current().version(), store.generation()),
            (1, gen_before)
        );
        // The very same key staged again is no conflict.
        let same = store.current().active().clone();
        store.stage(same).unwrap();
    }

    #[test]
    fn history_is_bounded_and_keeps_the_current_one() {
        let store = KeysetStore::with_history(ks("a", 1), 3);
        for i in 0..10u8 {
            store.publish(ks("x", i));
        }
        let h = store.history();
        assert_eq!(h.len(), 3);
        assert_eq!(h.last().unwrap().version(), store.current().version());
        assert_eq!(store.rollback_to(1), Err(KeysetError::unknown_version(1)));
    }

    #[test]
    fn a_long_publish_rollback_loop_can_always_roll_back() {
        let store = KeysetStore::with_history(ks("a", 1), 4);
        for i in 0..50u8 {
            store.publish(ks("b", i));
            assert_eq!(store.rollback(), Ok(1), "round {i}");
        }
        assert_eq!(store.history().len(), 4);
    }

    #[test]
    fn keyset_rejects_duplicates_and_empty() {
        let a = Key::hmac("a", Algorithm::HS256, &[1; 32]).unwrap();
        let a2 = Key::hmac("a", Algorithm::HS256, &[2; 32]).unwrap();
        assert_eq!(
            Keyset::new([a, a2]).unwrap_err().kind(),
            KeyErrorKind::DuplicateKid
        );
        assert_eq!(
            Keyset::new(Vec::<Key>::new()).unwrap_err().kind(),
            KeyErrorKind::Empty
        );
    }

    #[test]
    fn hmac_key_length_is_enforced() {
        assert_eq!(
            Key::hmac("a", Algorithm::HS256, &[1; 31])
                .unwrap_err()
                .kind(),
            KeyErrorKind::InvalidMaterial
        );
        assert_eq!(
            Key::hmac("a", Algorithm::HS512, &[1; 32])
                .unwrap_err()
                .kind(),
            KeyErrorKind::InvalidMaterial
        );
        assert_eq!(
            Key::hmac("a", Algorithm::RS256, &[1; 64])
                .unwrap_err()
                .kind(),
            KeyErrorKind::Unsupported
        );
    }
}
