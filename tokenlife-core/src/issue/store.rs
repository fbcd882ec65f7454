//! Refresh-token state: [`RefreshRecord`], the [`RefreshStore`] trait and the bounded
//! in-memory [`MemoryRefreshStore`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;

use crate::error::BoxError;

/// A stored refresh token (by hash; the token itself is never stored).
///
/// Build one with [`RefreshRecord::new`]; they are serde-able so that a store outside
/// this crate (the fleet's) can keep them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefreshRecord {
    /// The family id.
    pub family: String,
    /// The subject.
    pub subject: String,
    /// The scope.
    pub scope: Option<String>,
    /// The client it was issued to (renewing then requires that client).
    pub client: Option<String>,
    /// Custom claims carried to every renewed access token.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Unix seconds.
    pub issued_at: u64,
    /// When the family began (Unix seconds): the first token's `issued_at`, carried
    /// through every renewal. A subject revocation's cut-off is compared with this, so a
    /// family renewed after the cut-off is still caught. Records stored without it read
    /// as 0 (older than any cut-off: caught, never let through).
    #[serde(default)]
    pub family_started_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// When it was used (rotated), Unix milliseconds; `None` while it is live.
    pub used_at_ms: Option<u64>,
    /// The mark was made by a renewal whose successor is not yet stored
    /// ([`RefreshStore::commit_renewal`] not done): if it stays so past the reuse grace,
    /// that renewal failed, and any node takes the mark back instead of calling a retry
    /// reuse. Stores without two-phase renewals never set it.
    #[serde(skip)]
    pub renewal_pending: bool,
    /// The hash of the refresh token this one was renewed from; `None` for a family's
    /// first. Siblings (a renewal and its idempotent retries) share it, and the first of
    /// them to be renewed moves the family on ([`RefreshStore::advance`]).
    #[serde(default)]
    pub parent: Option<[u8; 32]>,
    /// The in-memory store's retry bookkeeping (other stores keep their own).
    #[serde(skip)]
    pub(crate) retry: RetryState,
}

/// Which child moved the family on from a retired record, and how many idempotent
/// retries it gave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RetryState {
    /// The child renewed first, and when (Unix milliseconds).
    advanced: Option<([u8; 32], u64)>,
    /// Retries granted.
    retries: u8,
}

/// What [`RefreshStore::advance`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Advance {
    /// This child moves the family on (or already did, or the parent is forgotten).
    Claimed,
    /// A sibling moved the family on first, at `at_ms` (Unix milliseconds): this child
    /// was left behind, and presenting it is reuse.
    Taken {
        /// When the sibling was renewed.
        at_ms: u64,
    },
}

/// What [`RefreshStore::take_retry`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryGrant {
    /// One more retry counted: the caller may store a sibling.
    Granted,
    /// The record gave its retries already.
    Exhausted,
    /// Not a retry: the mark differs, the renewal is still pending, a child already
    /// moved the family on, or the store does not do retries.
    No,
}

impl RefreshRecord {
    /// A live record of `family` for `subject`, valid from `issued_at` to `expires_at`
    /// (Unix seconds).
    pub fn new(
        family: impl Into<String>,
        subject: impl Into<String>,
        issued_at: u64,
        expires_at: u64,
    ) -> Self {
        Self {
            family: family.into(),
            subject: subject.into(),
            scope: None,
            client: None,
            claims: serde_json::Map::new(),
            issued_at,
            family_started_at: issued_at,
            expires_at,
            used_at_ms: None,
            renewal_pending: false,
            parent: None,
            retry: RetryState::default(),
        }
    }

    /// Whether it has been used (retired).
    pub fn is_used(&self) -> bool {
        self.used_at_ms.is_some()
    }
}

/// Why a refresh store refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefreshStoreErrorKind {
    /// The store holds its capacity of live records; nothing live is ever evicted.
    Full,
    /// The backing store failed.
    Backend,
}

/// A refresh store could not do what was asked; nothing was changed. Store
/// implementations build it with [`full`](Self::full) or [`backend`](Self::backend).
#[derive(Debug)]
pub struct RefreshStoreError {
    kind: RefreshStoreErrorKind,
    source: Option<BoxError>,
}

impl RefreshStoreError {
    /// The store is at capacity.
    pub fn full() -> Self {
        Self {
            kind: RefreshStoreErrorKind::Full,
            source: None,
        }
    }

    /// The backing store failed, with its cause.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        Self {
            kind: RefreshStoreErrorKind::Backend,
            source: Some(source.into()),
        }
    }

    /// Why.
    pub fn kind(&self) -> RefreshStoreErrorKind {
        self.kind
    }
}

impl fmt::Display for RefreshStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            RefreshStoreErrorKind::Full => "refresh store is full",
            RefreshStoreErrorKind::Backend => "refresh store failed",
        })
    }
}

impl std::error::Error for RefreshStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(crate::error::as_source)
    }
}

/// Where refresh-token state lives. The in-memory [`MemoryRefreshStore`] is the default;
/// fleet mode adds a shared one.
///
/// The methods are synchronous: they run on the token endpoint's path, never on the
/// validation hot path.
pub trait RefreshStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new record under the token's hash.
    ///
    /// # Errors
    /// [`RefreshStoreErrorKind::Full`](crate::issue::RefreshStoreErrorKind::Full) at capacity (nothing live is evicted), or a backend
    /// failure.
    fn insert(&self, id: [u8; 32], record: RefreshRecord) -> Result<(), RefreshStoreError>;
    /// The record, if any.
    ///
    /// # Errors
    /// Storage failure.
    fn get(&self, id: &[u8; 32]) -> Result<Option<RefreshRecord>, RefreshStoreError>;
    /// Atomically marks the record used at `at_ms` (Unix milliseconds) unless it already
    /// is, and returns it as it was before: of two concurrent renewals exactly one sees it
    /// unused. A record already used keeps its first `used_at_ms`.
    ///
    /// # Errors
    /// Storage failure.
    fn mark_used(
        &self,
        id: &[u8; 32],
        at_ms: u64,
    ) -> Result<Option<RefreshRecord>, RefreshStoreError>;
    /// Undoes the [`mark_used`](Self::mark_used) made at `at_ms` (a renewal that failed
    /// after marking): the record is live again. A record marked at another time is left
    /// alone.
    ///
    /// # Errors
    /// Storage failure.
    fn unmark_used(&self, id: &[u8; 32], at_ms: u64) -> Result<(), RefreshStoreError>;
    /// Completes a renewal: stores the successor `record` under `new_id`, if and only if
    /// `old` still carries the mark made at `at_ms`, and confirms that mark. `Ok(false)`:
    /// the mark was taken back meanwhile (another node found the renewal failed), nothing
    /// was stored. A store whose `mark_used` is two-phase (sets
    /// [`RefreshRecord::renewal_pending`]) does both in one atomic step; the default only
    /// inserts.
    ///
    /// # Errors
    /// As for [`insert`](Self::insert).
    fn commit_renewal(
        &self,
        old: &[u8; 32],
        at_ms: u64,
        new_id: [u8; 32],
        record: RefreshRecord,
    ) -> Result<bool, RefreshStoreError> {
        let _ = (old, at_ms);
        self.insert(new_id, record).map(|()| true)
    }
    /// Before `child` (live, renewed from `parent`) is renewed: claims the move from
    /// `parent`'s generation to the next for `child`. Of the siblings an idempotent retry
    /// made, the first renewed wins; every other is left behind ([`Advance::Taken`]) and
    /// is reuse when presented. Idempotent for the same child; a forgotten parent is
    /// [`Advance::Claimed`]. The default (a store without retries) always claims.
    ///
    /// # Errors
    /// Storage failure.
    fn advance(
        &self,
        parent: &[u8; 32],
        child: &[u8; 32],
        at_ms: u64,
    ) -> Result<Advance, RefreshStoreError> {
        let _ = (parent, child, at_ms);
        Ok(Advance::Claimed)
    }
    /// An idempotent retry of a rotated record (its client lost the answer): counts one
    /// retry of `id` if and only if it still carries the committed mark made at
    /// `used_at_ms`, no child of it has been renewed yet ([`advance`](Self::advance)),
    /// and it gave fewer than `max` retries. The default (a store without retries)
    /// answers [`RetryGrant::No`].
    ///
    /// # Errors
    /// Storage failure.
    fn take_retry(
        &self,
        id: &[u8; 32],
        used_at_ms: u64,
        max: u8,
    ) -> Result<RetryGrant, RefreshStoreError> {
        let _ = (id, used_at_ms, max);
        Ok(RetryGrant::No)
    }
    /// Revokes a family until `until` (Unix seconds).
    ///
    /// # Errors
    /// [`RefreshStoreErrorKind::Full`](crate::issue::RefreshStoreErrorKind::Full) or a storage failure.
    fn revoke_family(&self, family: &str, until: u64) -> Result<(), RefreshStoreError>;
    /// Whether the family is revoked.
    ///
    /// # Errors
    /// Storage failure.
    fn is_family_revoked(&self, family: &str) -> Result<bool, RefreshStoreError>;
}

/// A shared store: the issuer holds one handle, the application another (to read
/// [`MemoryRefreshStore::len`], or to sweep).
impl<S: RefreshStore + ?Sized> RefreshStore for Arc<S> {
    fn insert(&self, id: [u8; 32], record: RefreshRecord) -> Result<(), RefreshStoreError> {
        (**self).insert(id, record)
    }
    fn get(&self, id: &[u8; 32]) -> Result<Option<RefreshRecord>, RefreshStoreError> {
        (**self).get(id)
    }
    fn mark_used(
        &self,
        id: &[u8; 32],
        at_ms: u64,
    ) -> Result<Option<RefreshRecord>, RefreshStoreError> {
        (**self).mark_used(id, at_ms)
    }
    fn unmark_used(&self, id: &[u8; 32], at_ms: u64) -> Result<(), RefreshStoreError> {
        (**self).unmark_used(id, at_ms)
    }
    fn commit_renewal(
        &self,
        old: &[u8; 32],
        at_ms: u64,
        new_id: [u8; 32],
        record: RefreshRecord,
    ) -> Result<bool, RefreshStoreError> {
        (**self).commit_renewal(old, at_ms, new_id, record)
    }
    fn advance(
        &self,
        parent: &[u8; 32],
        child: &[u8; 32],
        at_ms: u64,
    ) -> Result<Advance, RefreshStoreError> {
        (**self).advance(parent, child, at_ms)
    }
    fn take_retry(
        &self,
        id: &[u8; 32],
        used_at_ms: u64,
        max: u8,
    ) -> Result<RetryGrant, RefreshStoreError> {
        (**self).take_retry(id, used_at_ms, max)
    }
    fn revoke_family(&self, family: &str, until: u64) -> Result<(), RefreshStoreError> {
        (**self).revoke_family(family, until)
    }
    fn is_family_revoked(&self, family: &str) -> Result<bool, RefreshStoreError> {
        (**self).is_family_revoked(family)
    }
}

/// A retired record is kept this long past its expiry, so that reuse stays detectable
/// while a clock-skewed client may still present it.
pub(super) const RETIRED_SLACK_SECS: u64 = 60;

/// How many retired (rotated) refresh tokens of one family are kept for reuse detection,
/// by default. A family's older retired tokens are forgotten: presented, they are refused
/// as unknown (`invalid_grant`) rather than caught as reuse. Without this bound, one holder
/// renewing in a loop would fill the store for everyone with its own retired tokens.
pub const DEFAULT_RETIRED_PER_FAMILY: usize = 16;

/// Bounded, expiring in-memory refresh store: lock-free maps (papaya), every expiry on
/// the injected clock. When full after lapsed records are swept, `insert` fails with
/// [`RefreshStoreErrorKind::Full`](crate::issue::RefreshStoreErrorKind::Full): a live record is never dropped.
/// Each family keeps at most [`DEFAULT_RETIRED_PER_FAMILY`] retired records (see
/// [`MemoryRefreshStore::retired_per_family`]), so one holder renewing in a loop holds a
/// bounded share of the store.
pub struct MemoryRefreshStore {
    records: papaya::HashMap<[u8; 32], RefreshRecord>,
    families: papaya::HashMap<String, u64>,
    /// Each family's retired records, oldest first (ids of `records`).
    retired: papaya::HashMap<String, Arc<std::sync::Mutex<std::collections::VecDeque<[u8; 32]>>>>,
    retired_per_family: usize,
    capacity: usize,
    last_sweep: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MemoryRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRefreshStore")
            .field("records", &self.records.len())
            .field("families", &self.families.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl MemoryRefreshStore {
    /// Default capacity (records, and revoked families, each).
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// A store holding at most `capacity` refresh tokens (retired ones included until
    /// they expire: reuse must stay detectable) and as many revoked families.
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            records: papaya::HashMap::new(),
            families: papaya::HashMap::new(),
            retired: papaya::HashMap::new(),
            retired_per_family: DEFAULT_RETIRED_PER_FAMILY,
            capacity,
            last_sweep: AtomicU64::new(0),
            clock,
        }
    }

    /// Keeps at most `n` (≥ 1) retired records per family (default
    /// [`DEFAULT_RETIRED_PER_FAMILY`]); the oldest goes when a renewal retires one more.
    #[must_use]
    pub fn retired_per_family(mut self, n: usize) -> Self {
        self.retired_per_family = n.max(1);
        self
    }

    /// Records held (lapsed ones until the next sweep).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forgets records and family revocations that have lapsed (also done by itself,
    /// at most once a second, when the store is full).
    pub fn sweep(&self) {
        let now = self.clock.unix_now();
        self.last_sweep.store(now, Ordering::Relaxed);
        self.records
            .pin()
            .retain(|_, r| r.expires_at.saturating_add(RETIRED_SLACK_SECS) >= now);
        self.families.pin().retain(|_, until| *until >= now);
        let records = self.records.pin();
        self.retired.pin().retain(|_, ids| {
            let mut ids = ids.lock().unwrap_or_else(|p| p.into_inner());
            ids.retain(|id| records.contains_key(id));
            !ids.is_empty()
        });
    }

    /// Files `id` (just retired) under its family, and forgets the family's oldest
    /// retired record beyond the bound.
    fn retire(&self, id: [u8; 32], family: &str) {
        let list = self
            .retired
            .pin()
            .get_or_insert_with(family.to_owned(), Arc::default)
            .clone();
        let mut ids = list.lock().unwrap_or_else(|p| p.into_inner());
        ids.push_back(id);
        while ids.len() > self.retired_per_family {
            let Some(old) = ids.pop_front() else { break };
            // Only a record still retired goes (an undone renewal made it live again).
            self.records
                .pin()
                .remove_if(&old, |_, r| r.is_used() && r.family == family)
                .ok();
        }
    }

    /// Makes room when `len()` is at capacity: sweeps (at most once a second, so a full
    /// store under load does not scan on every call), then checks again.
    fn room(&self, len: impl Fn() -> usize) -> Result<(), RefreshStoreError> {
        if len() < self.capacity {
            return Ok(());
        }
        if self.last_sweep.load(Ordering::Relaxed) < self.clock.unix_now() {
            self.sweep();
        }
        if len() < self.capacity {
            Ok(())
        } else {
            Err(RefreshStoreError::full())
        }
    }
}

impl RefreshStore for MemoryRefreshStore {
    fn insert(&self, id: [u8; 32], record: RefreshRecord) -> Result<(), RefreshStoreError> {
        self.room(|| self.records.len())?;
        self.records.pin().insert(id, record);
        Ok(())
    }

    fn get(&self, id: &[u8; 32]) -> Result<Option<RefreshRecord>, RefreshStoreError> {
        let now = self.clock.unix_now();
        Ok(self
            .records
            .pin()
            .get(id)
            .filter(|r| r.expires_at.saturating_add(RETIRED_SLACK_SECS) >= now)
            .cloned())
    }

    fn mark_used(
        &self,
        id: &[u8; 32],
        at_ms: u64,
    ) -> Result<Option<RefreshRecord>, RefreshStoreError> {
        let map = self.records.pin();
        let before = match map.compute(*id, |entry| match entry {
            Some((_, rec)) if rec.is_used() => papaya::Operation::Abort(Some(rec.clone())),
            Some((_, rec)) => papaya::Operation::Insert(RefreshRecord {
                used_at_ms: Some(at_ms),
                ..rec.clone()
            }),
            None => papaya::Operation::Abort(None),
        }) {
            papaya::Compute::Updated { old: (_, old), .. } => {
                self.retire(*id, &old.family);
                Some(old.clone())
            }
            papaya::Compute::Aborted(before) => before,
            papaya::Compute::Inserted(..) | papaya::Compute::Removed(..) => None,
        };
        Ok(before)
    }

    fn unmark_used(&self, id: &[u8; 32], at_ms: u64) -> Result<(), RefreshStoreError> {
        self.records.pin().compute(*id, |entry| match entry {
            Some((_, rec)) if rec.used_at_ms == Some(at_ms) => {
                papaya::Operation::Insert(RefreshRecord {
                    used_at_ms: None,
                    ..rec.clone()
                })
            }
            _ => papaya::Operation::Abort(()),
        });
        Ok(())
    }

    fn advance(
        &self,
        parent: &[u8; 32],
        child: &[u8; 32],
        at_ms: u64,
    ) -> Result<Advance, RefreshStoreError> {
        let map = self.records.pin();
        let result = map.compute(*parent, |entry| match entry {
            Some((_, rec)) => match rec.retry.advanced {
                None => {
                    let mut rec = rec.clone();
                    rec.retry.advanced = Some((*child, at_ms));
                    papaya::Operation::Insert(rec)
                }
                Some((c, _)) if c == *child => papaya::Operation::Abort(Advance::Claimed),
                Some((_, at_ms)) => papaya::Operation::Abort(Advance::Taken { at_ms }),
            },
            None => papaya::Operation::Abort(Advance::Claimed),
        });
        Ok(match result {
            papaya::Compute::Aborted(a) => a,
            _ => Advance::Claimed,
        })
    }

    fn take_retry(
        &self,
        id: &[u8; 32],
        used_at_ms: u64,
        max: u8,
    ) -> Result<RetryGrant, RefreshStoreError> {
        let map = self.records.pin();
        let result = map.compute(*id, |entry| match entry {
            Some((_, rec))
                if rec.used_at_ms == Some(used_at_ms)
                    && !rec.renewal_pending
                    && rec.retry.advanced.is_none() =>
            {
                if rec.retry.retries >= max {
                    papaya::Operation::Abort(RetryGrant::Exhausted)
                } else {
                    let mut rec = rec.clone();
                    rec.retry.retries += 1;
                    papaya::Operation::Insert(rec)
                }
            }
            _ => papaya::Operation::Abort(RetryGrant::No),
        });
        Ok(match result {
            papaya::Compute::Aborted(g) => g,
            papaya::Compute::Updated { .. } => RetryGrant::Granted,
            _ => RetryGrant::No,
        })
    }

    fn revoke_family(&self, family: &str, until: u64) -> Result<(), RefreshStoreError> {
        if self.families.pin().get(family).is_none() {
            self.room(|| self.families.len())?;
        }
        self.families
            .pin()
            .update_or_insert(family.to_owned(), |old| (*old).max(until), until);
        Ok(())
    }

    fn is_family_revoked(&self, family: &str) -> Result<bool, RefreshStoreError> {
        let now = self.clock.unix_now();
        Ok(self
            .families
            .pin()
            .get(family)
            .is_some_and(|until| *until >= now))
    }
}
