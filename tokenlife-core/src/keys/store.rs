//! [`KeysetSnapshot`] and the versioned [`KeysetStore`]: one atomic swap per change, a
//! bounded history for rollback.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;

use super::key::Key;
use super::keyset::Keyset;
use crate::error::{KeysetError, KeysetErrorKind};

/// Whether two keys are the same key: one `Arc`, or one algorithm and one public JWK.
fn same_key(a: &Arc<Key>, b: &Arc<Key>) -> bool {
    Arc::ptr_eq(a, b) || (a.alg == b.alg && a.public_jwk.is_some() && a.public_jwk == b.public_jwk)
}

/// One immutable, versioned state of the [`KeysetStore`]: the active keyset (which signs
/// and verifies) and, during a canary, a staged keyset (which only verifies).
#[derive(Debug)]
pub struct KeysetSnapshot {
    version: u64,
    created_at: SystemTime,
    active: Keyset,
    staged: Option<Keyset>,
}

impl KeysetSnapshot {
    /// The version: 1 for the first keyset, then one more for each publish or stage.
    /// A rollback reinstalls an earlier snapshot with its own version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When this snapshot was created.
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

    /// The staged (canary) keyset, if one is staged.
    pub fn staged(&self) -> Option<&Keyset> {
        self.staged.as_ref()
    }

    /// The kid of the signing key (always from the active keyset).
    pub fn signing_kid(&self) -> Option<&str> {
        self.active.signing_kid.as_deref()
    }

    /// The signing key.
    pub fn signing_key(&self) -> Option<&Arc<Key>> {
        self.active.signing_key()
    }

    /// The verification key with this kid: active keys first, then staged ones.
    #[inline]
    pub fn find(&self, kid: &str) -> Option<&Arc<Key>> {
        self.active
            .get(kid)
            .or_else(|| self.staged.as_ref().and_then(|s| s.get(kid)))
    }

    /// Whether this exact key (not merely its kid) verifies in this snapshot. Compares
    /// pointers only, so it never touches the keys' shared reference counts.
    #[inline]
    pub(crate) fn holds(&self, key: &Arc<Key>) -> bool {
        self.active.keys.iter().any(|k| Arc::ptr_eq(k, key))
            || self
                .staged
                .as_ref()
                .is_some_and(|s| s.keys.iter().any(|k| Arc::ptr_eq(k, key)))
    }

    /// Every key that verifies in this snapshot (active, then staged).
    pub fn keys(&self) -> impl Iterator<Item = &Arc<Key>> {
        self.active
            .keys()
            .chain(self.staged.iter().flat_map(|s| s.keys()))
    }

    /// The public verification keys (active and staged) as JWKS JSON.
    pub fn to_public_jwks(&self) -> String {
        let set = JwkSet {
            keys: self.keys().filter_map(|k| k.public_jwk.clone()).collect(),
        };
        serde_json::to_string(&set).unwrap_or_else(|_| r#"{"keys":[]}"#.into())
    }
}

/// Default number of snapshots kept for rollback.
const DEFAULT_HISTORY: usize = 16;

/// The current keyset, swapped atomically, with a bounded history for rollback.
///
/// Cloning is cheap and clones share the store. Readers ([`current`](Self::current) and the
/// validator) never block; writers serialise on an internal lock, and each change is one
/// atomic swap.
#[derive(Clone)]
pub struct KeysetStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    current: ArcSwap<KeysetSnapshot>,
    generation: AtomicU64,
    admin: Mutex<Admin>,
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
            .finish_non_exhaustive()
    }
}

impl KeysetStore {
    /// Default number of snapshots kept for rollback.
    pub const DEFAULT_HISTORY: usize = DEFAULT_HISTORY;
}

impl KeysetStore {
    /// A store whose current snapshot (version 1) is `keyset`, keeping
    /// [`Self::DEFAULT_HISTORY`] snapshots.
    pub fn new(keyset: Keyset) -> Self {
        Self::with_history(keyset, DEFAULT_HISTORY)
    }

    /// A store that keeps `limit` snapshots (at least 2) for rollback.
    pub fn with_history(keyset: Keyset, limit: usize) -> Self {
        let first = Arc::new(KeysetSnapshot {
            version: 1,
            created_at: SystemTime::now(),
            active: keyset,
            staged: None,
        });
        Self {
            inner: Arc::new(StoreInner {
                current: ArcSwap::new(first.clone()),
                generation: AtomicU64::new(1),
                admin: Mutex::new(Admin {
                    next_version: 2,
                    limit: limit.max(2),
                    history: VecDeque::from([first]),
                    previous: Vec::new(),
                    quarantined: Vec::new(),
                }),
            }),
        }
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<KeysetSnapshot> {
        self.inner.current.load_full()
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

    fn admin(&self) -> MutexGuard<'_, Admin> {
        // A panic while holding the lock cannot leave the data half-changed: every change
        // is prepared first and applied by one swap, so a poisoned lock is still usable.
        self.inner.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn install(&self, admin: &mut Admin, snap: Arc<KeysetSnapshot>, remember_current: bool) {
        let cur = self.inner.current.load();
        if remember_current {
            admin.previous.push(cur.version);
            let limit = admin.limit;
            if admin.previous.len() > limit {
                admin.previous.remove(0);
            }
        }
        self.inner.current.store(snap);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn new_snapshot(
        &self,
        admin: &mut Admin,
        active: Keyset,
        staged: Option<Keyset>,
    ) -> Arc<KeysetSnapshot> {
        let snap = Arc::new(KeysetSnapshot {
            version: admin.next_version,
            created_at: SystemTime::now(),
            active,
            staged,
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

    /// Makes `keyset` current (signing and verifying) and returns its new version.
    pub fn publish(&self, keyset: Keyset) -> u64 {
        let mut admin = self.admin();
        let snap = self.new_snapshot(&mut admin, keyset, None);
        let version = snap.version;
        self.install(&mut admin, snap, true);
        version
    }

    /// Stages `keyset` as a canary: its keys verify, the current keys still sign. Returns
    /// the new snapshot's version. A later [`promote`](Self::promote) makes it current;
    /// a [`rollback`](Self::rollback) drops it.
    ///
    /// # Errors
    /// [`KeysetErrorKind::KidConflict`](crate::error::KeysetErrorKind::KidConflict) if a staged key shares its kid with a different
    /// active key (the same key staged again is fine); nothing changes.
    pub fn stage(&self, keyset: Keyset) -> Result<u64, KeysetError> {
        let mut admin = self.admin();
        let active = self.inner.current.load().active.clone();
        for key in keyset.keys() {
            if let Some(other) = active.get(key.kid())
                && !same_key(key, other)
            {
                return Err(KeysetError::kid_conflict(key.kid()));
            }
        }
        let snap = self.new_snapshot(&mut admin, active, Some(keyset));
        let version = snap.version;
        self.install(&mut admin, snap, true);
        Ok(version)
    }

    /// Publishes the staged keyset as the current one. Returns the new version.
    ///
    /// # Errors
    /// [`KeysetErrorKind::NothingStaged`](crate::error::KeysetErrorKind::NothingStaged) if no keyset is staged; nothing changes.
    pub fn promote(&self) -> Result<u64, KeysetError> {
        let mut admin = self.admin();
        let staged = self
            .inner
            .current
            .load()
            .staged
            .clone()
            .ok_or_else(|| KeysetError::new(KeysetErrorKind::NothingStaged))?;
        let snap = self.new_snapshot(&mut admin, staged, None);
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
                self.install(&mut admin, snap, false);
                return Ok(v);
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
