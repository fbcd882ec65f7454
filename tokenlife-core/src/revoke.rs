//! Revocation: [`RevocationList`] (in memory, on papaya) and the [`RevocationBackend`] trait.
//!
//! A token can be revoked by its `jti`, by its subject (every token issued before a
//! time) or by its family (every token of one refresh chain). Entries carry an `until`
//! time after which they can be forgotten (the token's own expiry, usually) and are swept
//! from memory by themselves.
//!
//! The list is a lock-free hash map (papaya) keyed by a seeded 128-bit hash of the id:
//! reads never wait for writers, and a million entries take about 70 MB.
//!
//! # Examples
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use tokenlife_core::RevocationList;
//!
//! let list = RevocationList::new();
//! let until = SystemTime::now() + Duration::from_secs(900);
//! list.revoke_jti("b9a1c2d3", until)?;
//! assert!(list.is_jti_revoked("b9a1c2d3"));
//! assert!(!list.is_jti_revoked("another"));
//! # Ok::<(), tokenlife_core::error::RevocationError>(())
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use crate::clock::{Clock, SystemClock, unix_secs};
use crate::error::{RevocationError, RevocationErrorKind};
use crate::hash::Prehashed;
use crate::observe::lifecycle::{TokenKind, TokenState};
use crate::observe::{Event, Observer, RevokeReason, SharedObserver};

/// How often (at most) lapsed entries are swept when revocations are added.
const SWEEP_EVERY_SECS: u64 = 60;

/// Longest identifier (jti, subject, family) accepted, in bytes.
const MAX_ID_LEN: usize = 1024;

/// Default bound on entries (all kinds together): about 61 MB when full.
const DEFAULT_CAPACITY: u64 = 1_000_000;

/// What a revocation applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationTarget {
    /// One token, by its `jti`.
    Jti(String),
    /// Every token of this subject issued (`iat`) at or before `issued_before` (Unix
    /// seconds). `iat` has whole seconds, so a cut-off at "now" also covers tokens issued
    /// later in the same second: the safe side.
    Subject {
        /// The `sub` claim.
        subject: String,
        /// Tokens with `iat` at or before this are revoked.
        issued_before: u64,
    },
    /// Every token of one refresh-token family.
    Family(String),
}

/// One revocation: what, and until when it must be remembered (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// What is revoked.
    pub target: RevocationTarget,
    /// After this time (Unix seconds) the entry can be forgotten.
    pub until: u64,
}

/// Why a token counts as revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokedBy {
    /// Its `jti` was revoked.
    Jti,
    /// Its subject was revoked after it was issued.
    Subject,
    /// Its family was revoked.
    Family,
}

/// Where revocations go beyond this process (fleet mode plugs in here).
///
/// The local [`RevocationList`] is always updated first; a backend error is returned to
/// the caller as [`RevocationErrorKind::Backend`] and the local entry stays.
pub trait RevocationBackend: Send + Sync + fmt::Debug + 'static {
    /// Stores and propagates one revocation.
    ///
    /// # Errors
    /// Any failure to store or publish it.
    fn publish(&self, revocation: &Revocation) -> Result<(), Box<dyn StdError + Send + Sync>>;
}

#[derive(Clone, Copy)]
struct Entry {
    /// Unix seconds until which the entry holds.
    until: u64,
    /// For subjects: tokens issued before this are revoked.
    issued_before: u64,
}

/// One kind of revocation: a lock-free map from the seeded 128-bit hash of the id to its
/// entry. Ids are not kept (the hash is enough to match, and lists leak nothing).
struct Map {
    map: papaya::HashMap<u128, Entry, Prehashed>,
    /// Set on the first insert and never cleared: lets the hot path skip a lookup in a
    /// map that has never held anything.
    used: AtomicBool,
}

impl Map {
    fn new() -> Self {
        Self {
            // Blocking resizes: the writer (an admin revocation) finishes a resize
            // itself, so hot-path reads never help copy nor search two tables.
            map: papaya::HashMap::builder()
                .hasher(Prehashed)
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
            used: AtomicBool::new(false),
        }
    }

    #[inline]
    fn get(&self, id: u128) -> Option<Entry> {
        if !self.used.load(Ordering::Relaxed) {
            return None;
        }
        self.map.pin().get(&id).copied()
    }

    /// Whether the map has ever held anything: the hot path hashes an id only then.
    #[inline]
    fn is_used(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }

    fn insert(&self, id: u128, entry: Entry) {
        self.map.pin().update_or_insert(
            id,
            |old| Entry {
                // Two revocations of one id: the later cut-off and the longer memory win.
                until: old.until.max(entry.until),
                issued_before: old.issued_before.max(entry.issued_before),
            },
            entry,
        );
        self.used.store(true, Ordering::Release);
    }

    fn sweep(&self, now: u64) {
        self.map.pin().retain(|_, e| e.until >= now);
    }
}

/// The in-memory revocation list. Cheap to clone; clones share the list.
#[derive(Clone)]
pub struct RevocationList {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    capacity: u64,
    last_sweep: AtomicU64,
    sweeps: AtomicU64,
    jti: Map,
    subject: Map,
    family: Map,
    clock: Arc<dyn Clock>,
    backend: Option<Arc<dyn RevocationBackend>>,
    observer: Option<SharedObserver>,
    /// Unix seconds after which the list no longer counts as current (fail-closed fleet
    /// mode sets it while cut off from the fleet); `u64::MAX`: always current.
    fresh_until: AtomicU64,
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationList")
            .field("entries", &self.len())
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl Default for RevocationList {
    fn default() -> Self {
        Self::new()
    }
}

impl RevocationList {
    /// Longest identifier (jti, subject, family) accepted, in bytes.
    pub const MAX_ID_LEN: usize = MAX_ID_LEN;
    /// Default bound on entries (all kinds together): about 61 MB when full.
    pub const DEFAULT_CAPACITY: u64 = DEFAULT_CAPACITY;

    /// An empty list on the system clock, bounded at [`Self::DEFAULT_CAPACITY`] entries per kind.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for the clock, capacity and fleet backend.
    pub fn builder() -> RevocationListBuilder {
        RevocationListBuilder {
            clock: Arc::new(SystemClock),
            capacity: DEFAULT_CAPACITY,
            backend: None,
            observer: None,
        }
    }

    fn check_id(id: &str) -> Result<(), RevocationError> {
        // No control characters: JSON escapes each as six bytes, and an id must fit a
        // fleet message once encoded (at most twice its length: `"` and `\`).
        if id.is_empty() || id.len() > MAX_ID_LEN || id.bytes().any(|b| b < 0x20) {
            return Err(RevocationError::new(RevocationErrorKind::InvalidId));
        }
        Ok(())
    }

    /// Revokes the token with this `jti` until `until` (its expiry, usually).
    ///
    /// # Errors
    /// [`RevocationErrorKind::InvalidId`] for an empty or over-long id (nothing changes);
    /// [`RevocationErrorKind::Backend`] if the fleet backend failed (the local entry stays).
    pub fn revoke_jti(&self, jti: &str, until: SystemTime) -> Result<(), RevocationError> {
        self.revoke(Revocation {
            target: RevocationTarget::Jti(jti.to_owned()),
            until: unix_secs(until),
        })
    }

    /// Revokes every token of `subject` issued at or before `issued_before` (whole
    /// seconds: `now` covers every token issued so far, and the rest of this second),
    /// remembered until `until`.
    ///
    /// `until` must outlive every token the revocation covers, refresh tokens included:
    /// `issued_before` plus the longest token lifetime. [`Issuer::revoke_subject`]
    /// computes it.
    ///
    /// [`Issuer::revoke_subject`]: crate::Issuer::revoke_subject
    ///
    /// # Errors
    /// As for [`revoke_jti`](Self::revoke_jti).
    pub fn revoke_subject(
        &self,
        subject: &str,
        issued_before: SystemTime,
        until: SystemTime,
    ) -> Result<(), RevocationError> {
        self.revoke(Revocation {
            target: RevocationTarget::Subject {
                subject: subject.to_owned(),
                issued_before: unix_secs(issued_before),
            },
            until: unix_secs(until),
        })
    }

    /// Revokes every token of a refresh-token family until `until`.
    ///
    /// # Errors
    /// As for [`revoke_jti`](Self::revoke_jti).
    pub fn revoke_family(&self, family: &str, until: SystemTime) -> Result<(), RevocationError> {
        self.revoke(Revocation {
            target: RevocationTarget::Family(family.to_owned()),
            until: unix_secs(until),
        })
    }

    /// Records a revocation locally, then hands it to the backend, if any.
    ///
    /// # Errors
    /// As for [`revoke_jti`](Self::revoke_jti).
    pub fn revoke(&self, revocation: Revocation) -> Result<(), RevocationError> {
        self.apply(&revocation)?;
        if let Some(o) = &self.inner.observer {
            let (reason, subject) = match &revocation.target {
                RevocationTarget::Jti(_) => (RevokeReason::Jti, None),
                RevocationTarget::Subject { subject, .. } => {
                    (RevokeReason::Subject, Some(subject.as_str()))
                }
                RevocationTarget::Family(_) => (RevokeReason::Family, None),
            };
            o.on_event(&Event::Revoked {
                kind: TokenKind::Access,
                reason,
                from: Some(TokenState::Active),
                subject,
                client: None,
                revocation_entries: Some(self.len()),
                audited: true,
            });
        }
        if let Some(backend) = &self.inner.backend {
            backend
                .publish(&revocation)
                .map_err(RevocationError::backend)?;
        }
        Ok(())
    }

    /// Records a revocation locally only (what a fleet node does with one it received).
    /// A revocation whose `until` has passed is accepted and dropped.
    ///
    /// # Errors
    /// [`RevocationErrorKind::InvalidId`] for an empty or over-long id; nothing changes.
    pub fn apply(&self, revocation: &Revocation) -> Result<(), RevocationError> {
        let (map, id, issued_before) = match &revocation.target {
            RevocationTarget::Jti(id) => (&self.inner.jti, id, 0),
            RevocationTarget::Subject {
                subject,
                issued_before,
            } => (&self.inner.subject, subject, *issued_before),
            RevocationTarget::Family(id) => (&self.inner.family, id, 0),
        };
        Self::check_id(id)?;
        let now = self.inner.clock.unix_now();
        if revocation.until < now {
            return Ok(());
        }
        let last = self.inner.last_sweep.load(Ordering::Relaxed);
        let full = self.len() >= self.inner.capacity;
        // A full list sweeps at most once a second: a flood of revocations against a
        // full list must not scan it on every call.
        if now >= last.saturating_add(SWEEP_EVERY_SECS) || (full && now > last) {
            self.inner.last_sweep.store(now, Ordering::Relaxed);
            self.sweep(now);
        }
        if full && self.len() >= self.inner.capacity {
            return Err(RevocationError::new(RevocationErrorKind::Full));
        }
        map.insert(
            self.hash(id),
            Entry {
                until: revocation.until,
                issued_before,
            },
        );
        Ok(())
    }

    #[inline]
    fn hash(&self, id: &str) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_seed(id.as_bytes(), self.inner.seed)
    }

    fn sweep(&self, now: u64) {
        self.inner.sweeps.fetch_add(1, Ordering::Relaxed);
        self.inner.jti.sweep(now);
        self.inner.subject.sweep(now);
        self.inner.family.sweep(now);
    }

    /// Sets until when (Unix seconds) this list counts as current: past it, validation
    /// answers [`ValidationErrorKind::RevocationsStale`](crate::ValidationErrorKind::RevocationsStale)
    /// (503). `u64::MAX` (the default) is always current. Fail-closed fleet mode moves it.
    pub fn set_fresh_until(&self, unix: u64) {
        self.inner.fresh_until.store(unix, Ordering::Release);
    }

    /// Whether the list counts as current at `now` (see [`set_fresh_until`](Self::set_fresh_until)).
    #[inline]
    pub fn is_fresh(&self, now: u64) -> bool {
        now <= self.inner.fresh_until.load(Ordering::Acquire)
    }

    /// Whether a token with this `jti` is revoked now.
    pub fn is_jti_revoked(&self, jti: &str) -> bool {
        let now = self.inner.clock.unix_now();
        self.inner
            .jti
            .get(self.hash(jti))
            .is_some_and(|e| e.until >= now)
    }

    /// Checks a token's identifiers against the list at `now` (Unix seconds). A token
    /// without `iat` counts as issued before any subject revocation.
    #[inline(always)]
    pub fn check(
        &self,
        jti: Option<&str>,
        subject: Option<&str>,
        issued_at: Option<u64>,
        family: Option<&str>,
        now: u64,
    ) -> Option<RevokedBy> {
        if let Some(jti) = jti
            && self.inner.jti.is_used()
            && self
                .inner
                .jti
                .get(self.hash(jti))
                .is_some_and(|e| e.until >= now)
        {
            return Some(RevokedBy::Jti);
        }
        if let Some(sub) = subject
            && self.inner.subject.is_used()
            && let Some(e) = self.inner.subject.get(self.hash(sub))
            && e.until >= now
            && issued_at.is_none_or(|iat| iat <= e.issued_before)
        {
            return Some(RevokedBy::Subject);
        }
        if let Some(fam) = family
            && self.inner.family.is_used()
            && self
                .inner
                .family
                .get(self.hash(fam))
                .is_some_and(|e| e.until >= now)
        {
            return Some(RevokedBy::Family);
        }
        None
    }

    /// Most entries the list holds.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// Number of entries (all kinds), lapsed ones included until the next sweep.
    pub fn len(&self) -> u64 {
        (self.inner.jti.map.len() + self.inner.subject.map.len() + self.inner.family.map.len())
            as u64
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every entry whose `until` has passed (this also happens by itself, at
    /// most once a minute, when revocations are added).
    pub fn run_pending_tasks(&self) {
        let now = self.inner.clock.unix_now();
        self.inner.last_sweep.store(now, Ordering::Relaxed);
        self.sweep(now);
    }

    /// The clock this list reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }
}

/// Builds a [`RevocationList`].
#[derive(Debug)]
#[must_use]
pub struct RevocationListBuilder {
    clock: Arc<dyn Clock>,
    capacity: u64,
    backend: Option<Arc<dyn RevocationBackend>>,
    observer: Option<SharedObserver>,
}

impl RevocationListBuilder {
    /// Reports every revocation to `observer` (a [`Monitor`](crate::observe::Monitor)
    /// counts and audits them).
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observer = Some(SharedObserver::new(observer));
        self
    }

    pub(crate) fn observer_arc(mut self, observer: SharedObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The clock deciding when entries lapse.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub(crate) fn clock_arc(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Most entries in all (jti, subject and family together). A revocation that finds
    /// the list full after lapsed entries are swept is refused with
    /// [`RevocationErrorKind::Full`]: nothing live is ever evicted.
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// Where revocations are propagated (fleet mode).
    pub fn backend(mut self, backend: impl RevocationBackend) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// The list.
    pub fn build(self) -> RevocationList {
        RevocationList {
            inner: Arc::new(Inner {
                seed: crate::hash::random_u64(),
                capacity: self.capacity,
                last_sweep: AtomicU64::new(0),
                sweeps: AtomicU64::new(0),
                jti: Map::new(),
                subject: Map::new(),
                family: Map::new(),
                clock: self.clock,
                backend: self.backend,
                observer: self.observer,
                fresh_until: AtomicU64::new(u64::MAX),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, from_unix_secs};
    use std::sync::Mutex;
    use std::time::Duration;

    const T0: u64 = 1_700_000_000;

    fn list(clock: &ManualClock) -> RevocationList {
        RevocationList::builder().clock(clock.clone()).build()
    }

    #[test]
    fn jti_revocation_lapses_at_until() {
        let clock = ManualClock::at_unix(T0);
        let l = list(&clock);
        l.revoke_jti("j1", from_unix_secs(T0 + 100)).unwrap();
        assert_eq!(
            l.check(Some("j1"), None, None, None, T0),
            Some(RevokedBy::Jti)
        );
        assert!(l.is_jti_revoked("j1"));
        clock.advance(Duration::from_secs(101));
        assert!(!l.is_jti_revoked("j1"));
    }

    #[test]
    fn subject_revocation_covers_only_older_tokens() {
        let clock = ManualClock::at_unix(T0);
        let l = list(&clock);
        l.revoke_subject("alice", from_unix_secs(T0), from_unix_secs(T0 + 3600))
            .unwrap();
        assert_eq!(
            l.check(None, Some("alice"), Some(T0 - 1), None, T0),
            Some(RevokedBy::Subject)
        );
        assert_eq!(
            l.check(None, Some("alice"), None, None, T0),
            Some(RevokedBy::Subject)
        );
        // Same second as the cut-off: covered (iat has whole seconds).
        assert_eq!(
            l.check(None, Some("alice"), Some(T0), None, T0),
            Some(RevokedBy::Subject)
        );
        assert_eq!(l.check(None, Some("alice"), Some(T0 + 1), None, T0), None);
        assert_eq!(l.check(None, Some("bob"), Some(T0 - 1), None, T0), None);
    }

    #[test]
    fn family_revocation() {
        let clock = ManualClock::at_unix(T0);
        let l = list(&clock);
        l.revoke_family("fam-1", from_unix_secs(T0 + 10)).unwrap();
        assert_eq!(
            l.check(Some("x"), Some("s"), Some(T0), Some("fam-1"), T0),
            Some(RevokedBy::Family)
        );
    }

    #[test]
    fn bad_ids_are_rejected_and_change_nothing() {
        let clock = ManualClock::at_unix(T0);
        let l = list(&clock);
        assert_eq!(
            l.revoke_jti("", from_unix_secs(T0 + 1))
                .map_err(|e| e.kind()),
            Err(RevocationErrorKind::InvalidId)
        );
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(
            l.revoke_family(&long, from_unix_secs(T0 + 1))
                .map_err(|e| e.kind()),
            Err(RevocationErrorKind::InvalidId)
        );
        l.run_pending_tasks();
        assert!(l.is_empty());
    }

    #[test]
    fn a_full_list_refuses_new_entries_and_keeps_the_old_ones() {
        let clock = ManualClock::at_unix(T0);
        let l = RevocationList::builder()
            .clock(clock.clone())
            .capacity(2)
            .build();
        l.revoke_jti("a", from_unix_secs(T0 + 10)).unwrap();
        l.revoke_jti("b", from_unix_secs(T0 + 1000)).unwrap();
        assert_eq!(
            l.revoke_jti("c", from_unix_secs(T0 + 10))
                .map_err(|e| e.kind()),
            Err(RevocationErrorKind::Full)
        );
        assert!(l.is_jti_revoked("a") && l.is_jti_revoked("b") && !l.is_jti_revoked("c"));
        // Once "a" lapses, the sweep makes room.
        clock.advance(Duration::from_secs(11));
        l.revoke_jti("c", from_unix_secs(T0 + 100)).unwrap();
        assert_eq!(l.len(), 2);
        assert!(l.is_jti_revoked("b") && l.is_jti_revoked("c"));
    }

    #[test]
    fn a_full_list_sweeps_at_most_once_a_second() {
        let clock = ManualClock::at_unix(T0);
        let l = RevocationList::builder()
            .clock(clock.clone())
            .capacity(100)
            .build();
        for i in 0..100 {
            l.revoke_jti(&format!("j{i}"), from_unix_secs(T0 + 1000))
                .unwrap();
        }
        let before = l.inner.sweeps.load(Ordering::Relaxed);
        for i in 0..1000 {
            let err = l.revoke_jti(&format!("x{i}"), from_unix_secs(T0 + 10));
            assert_eq!(err.unwrap_err().kind(), RevocationErrorKind::Full);
        }
        assert!(l.inner.sweeps.load(Ordering::Relaxed) - before <= 1);
        clock.advance(Duration::from_secs(1));
        assert!(l.revoke_jti("y", from_unix_secs(T0 + 10)).is_err());
        assert!(l.inner.sweeps.load(Ordering::Relaxed) - before <= 2);
        // Every live entry is still there.
        assert!((0..100).all(|i| l.is_jti_revoked(&format!("j{i}"))));
    }

    #[test]
    fn lapsed_entries_are_swept() {
        let clock = ManualClock::at_unix(T0);
        let l = list(&clock);
        l.revoke_jti("a", from_unix_secs(T0 + 10)).unwrap();
        l.revoke_family("f", from_unix_secs(T0 + 500)).unwrap();
        clock.advance(Duration::from_secs(100));
        l.run_pending_tasks();
        assert_eq!(l.len(), 1);
    }

    #[derive(Debug, Default)]
    struct Failing(Mutex<u32>);
    impl RevocationBackend for Arc<Failing> {
        fn publish(&self, _: &Revocation) -> Result<(), Box<dyn StdError + Send + Sync>> {
            *self.0.lock().unwrap() += 1;
            Err("redis down".into())
        }
    }

    #[test]
    fn backend_failure_keeps_the_local_entry() {
        let clock = ManualClock::at_unix(T0);
        let backend = Arc::new(Failing::default());
        let l = RevocationList::builder()
            .clock(clock.clone())
            .backend(backend.clone())
            .build();
        let err = l.revoke_jti("j", from_unix_secs(T0 + 5)).unwrap_err();
        assert_eq!(err.kind(), RevocationErrorKind::Backend);
        assert!(l.is_jti_revoked("j"));
        assert_eq!(*backend.0.lock().unwrap(), 1);
    }
}
