//! The console's live feed: [`ConsoleFeed`], an [`Observer`] that counts validations by
//! outcome and keeps the last keyset changes and alerts, for the admin console's event
//! stream (`GET /console/events`, `admin::console`).
//!
//! Bounded by construction: the counters are a fixed set of atomics; the keyset timeline
//! and the alert feed are two rings of [`RING`] entries each. Anyone on the API path can
//! cause alerts (a revoked token presented again, a refresh token replayed), so alerts
//! have a ring of their own — no flood of them can push a rollback off the timeline — and
//! an alert of the kind the newest one is, within the same second, adds to its count
//! instead of taking a slot. Readers hold a cursor (the sequence number of the last entry
//! they saw), never a queue: a stalled reader costs nothing and, when it comes back,
//! learns how many entries it missed.
//!
//! ```
//! use tokenlife_core::Observer;
//! use tokenlife_core::observe::console::ConsoleFeed;
//! use tokenlife_core::observe::{Event, RollbackReason};
//!
//! let feed = ConsoleFeed::new();
//! feed.on_event(&Event::KeysetRolledBack {
//!     from: 3, to: 2, reason: RollbackReason::BadKeyRate, failures: 40, sample: 50,
//! });
//! let (entries, missed) = feed.timeline_since(0);
//! assert_eq!((entries.len(), missed), (1, 0));
//! assert_eq!(entries[0].what, "automatic_rollback");
//! assert_eq!(entries[0].version, Some(2));
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::clock::{Clock, SystemClock};
use crate::error::ValidationErrorKind;

use super::audit::AuditAction;
use super::event::{AdminFailure, Event, FleetEvent, Hit, Hits, Observer, RemoteFetch};

/// Entries each ring keeps (the timeline's and the alerts').
pub const RING: usize = 128;

/// Event streams a feed serves at once ([`ConsoleFeed::open_stream`]).
pub const MAX_STREAMS: usize = 8;

/// The console's live feed (cheap to clone: the clones share one feed). Add it to the
/// validator's and issuer's observer (a tuple with the `Monitor`) and give the same feed
/// to the admin state (`AdminStateBuilder::console`).
#[derive(Clone)]
pub struct ConsoleFeed(Arc<Inner>);

impl std::fmt::Debug for ConsoleFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleFeed")
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

struct Inner {
    clock: Arc<dyn Clock>,
    counts: [AtomicU64; COUNTERS],
    timeline: Mutex<Ring>,
    alerts: Mutex<Ring>,
    streams: AtomicUsize,
}

const ACCEPTED: usize = 0;
const CACHE_HITS: usize = 1;
const EXPIRED: usize = 2;
const REVOKED: usize = 3;
const BAD_KEY: usize = 4;
const REJECTED: usize = 5;
const ISSUED: usize = 6;
const RENEWED: usize = 7;
const REVOCATIONS: usize = 8;
const COUNTERS: usize = 9;

/// The feed's counters since it was made: the stream sends their change each second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Validations that passed (cache hits included).
    pub accepted: u64,
    /// Of those, answered from the verified-token cache.
    pub cache_hits: u64,
    /// Refused as expired.
    pub expired: u64,
    /// Refused as revoked.
    pub revoked: u64,
    /// Refused for their key: bad signature, unknown kid, algorithm mismatch, retired or
    /// stale keys (what a bad keyset deploy causes).
    pub bad_key: u64,
    /// Refused for anything else (malformed, wrong issuer or audience, claims, scope).
    pub rejected: u64,
    /// Tokens and keys issued.
    pub issued: u64,
    /// Refresh tokens and keys renewed.
    pub renewed: u64,
    /// Revocations made.
    pub revocations: u64,
}

impl Counters {
    /// What changed from `earlier` to `self` (saturating: never negative).
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            accepted: self.accepted.saturating_sub(earlier.accepted),
            cache_hits: self.cache_hits.saturating_sub(earlier.cache_hits),
            expired: self.expired.saturating_sub(earlier.expired),
            revoked: self.revoked.saturating_sub(earlier.revoked),
            bad_key: self.bad_key.saturating_sub(earlier.bad_key),
            rejected: self.rejected.saturating_sub(earlier.rejected),
            issued: self.issued.saturating_sub(earlier.issued),
            renewed: self.renewed.saturating_sub(earlier.renewed),
            revocations: self.revocations.saturating_sub(earlier.revocations),
        }
    }
}

/// One entry of the timeline or the alert feed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedEntry {
    /// Its sequence number in its ring (from 1, increasing).
    pub seq: u64,
    /// When (Unix seconds, the feed's clock).
    pub at: u64,
    /// What happened, in snake case (`publish`, `automatic_rollback`, `refresh_reuse`…).
    pub what: &'static str,
    /// The detail the event carried (never a token: fingerprints at most).
    pub detail: String,
    /// The keyset version current afterwards, where the event says.
    pub version: Option<u64>,
    /// How many times it happened within its second (alerts coalesce).
    pub count: u64,
}

struct Ring {
    next: u64,
    entries: VecDeque<FeedEntry>,
}

impl Ring {
    fn new() -> Self {
        Self {
            next: 1,
            entries: VecDeque::with_capacity(RING),
        }
    }

    fn push(&mut self, at: u64, what: &'static str, detail: String, version: Option<u64>) {
        if self.entries.len() == RING {
            self.entries.pop_front();
        }
        self.entries.push_back(FeedEntry {
            seq: self.next,
            at,
            what,
            detail,
            version,
            count: 1,
        });
        self.next += 1;
    }

    /// An alert: the newest entry counts it when it is the same kind in the same second.
    fn coalesce(&mut self, at: u64, what: &'static str, detail: String) {
        if let Some(last) = self.entries.back_mut()
            && last.what == what
            && last.at == at
        {
            last.count += 1;
            // A reader that saw the entry sees it again with its new count.
            last.seq = self.next;
            self.next += 1;
            return;
        }
        self.push(at, what, detail, None);
    }

    fn since(&self, seq: u64) -> (Vec<FeedEntry>, u64) {
        let oldest = self.entries.front().map_or(self.next, |e| e.seq);
        let out = self
            .entries
            .iter()
            .filter(|e| e.seq > seq)
            .cloned()
            .collect();
        // Entries after `seq` that left the ring (or were folded into a later one).
        let missed = oldest.saturating_sub(seq.saturating_add(1));
        (out, missed.min(self.next.saturating_sub(1)))
    }
}

impl Default for ConsoleFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleFeed {
    /// A feed on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A feed stamping its entries with `clock` (a test's manual clock).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self(Arc::new(Inner {
            clock,
            counts: Default::default(),
            timeline: Mutex::new(Ring::new()),
            alerts: Mutex::new(Ring::new()),
            streams: AtomicUsize::new(0),
        }))
    }

    /// The counters now.
    pub fn counters(&self) -> Counters {
        let c = |i: usize| self.0.counts[i].load(Ordering::Relaxed);
        Counters {
            accepted: c(ACCEPTED),
            cache_hits: c(CACHE_HITS),
            expired: c(EXPIRED),
            revoked: c(REVOKED),
            bad_key: c(BAD_KEY),
            rejected: c(REJECTED),
            issued: c(ISSUED),
            renewed: c(RENEWED),
            revocations: c(REVOCATIONS),
        }
    }

    /// The timeline's entries after sequence number `seq`, oldest first, and how many
    /// after `seq` are no longer kept.
    pub fn timeline_since(&self, seq: u64) -> (Vec<FeedEntry>, u64) {
        lock(&self.0.timeline).since(seq)
    }

    /// The alert feed's entries after sequence number `seq`, oldest first, and how many
    /// after `seq` are no longer kept.
    pub fn alerts_since(&self, seq: u64) -> (Vec<FeedEntry>, u64) {
        lock(&self.0.alerts).since(seq)
    }

    /// The feed's clock, Unix seconds.
    pub fn unix_now(&self) -> u64 {
        self.0.clock.unix_now()
    }

    /// A slot for one event stream, or `None` when [`MAX_STREAMS`] are open: the slot
    /// is given back when dropped.
    pub fn open_stream(&self) -> Option<StreamSlot> {
        let prev = self.0.streams.fetch_add(1, Ordering::AcqRel);
        if prev >= MAX_STREAMS {
            self.0.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(StreamSlot(self.clone()))
    }

    /// Event streams open now.
    pub fn open_streams(&self) -> usize {
        self.0.streams.load(Ordering::Acquire)
    }

    fn count(&self, i: usize) {
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    fn timeline(&self, what: &'static str, detail: String, version: Option<u64>) {
        let at = self.0.clock.unix_now();
        lock(&self.0.timeline).push(at, what, detail, version);
    }

    fn alert(&self, what: &'static str, detail: String) {
        let at = self.0.clock.unix_now();
        lock(&self.0.alerts).coalesce(at, what, detail);
    }
}

/// One open event stream's place among [`MAX_STREAMS`]; dropping it frees the place.
#[derive(Debug)]
pub struct StreamSlot(ConsoleFeed);

impl StreamSlot {
    /// The feed this slot belongs to.
    pub fn feed(&self) -> &ConsoleFeed {
        &self.0
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        (self.0).0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock(m: &Mutex<Ring>) -> std::sync::MutexGuard<'_, Ring> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The timeline's name of an admin keyset action, if it is one.
fn keyset_action(action: AuditAction) -> Option<&'static str> {
    Some(match action {
        AuditAction::KeysetPublished => "publish",
        AuditAction::KeysetStaged => "stage",
        AuditAction::KeysetPromoted => "promote",
        AuditAction::KeysetRollback => "rollback",
        AuditAction::KeysetAborted => "abort",
        AuditAction::KeysetShare => "share",
        AuditAction::KeysetReleased => "release",
        AuditAction::KeyRevoked => "key_revoked",
        _ => return None,
    })
}

impl Observer for ConsoleFeed {
    fn on_event(&self, event: &Event<'_>) {
        match event {
            Event::Validated { outcome, .. } => match outcome {
                Ok(v) => {
                    self.count(ACCEPTED);
                    if v.from_cache {
                        self.count(CACHE_HITS);
                    }
                }
                Err(kind) => match kind {
                    ValidationErrorKind::Expired => self.count(EXPIRED),
                    ValidationErrorKind::Revoked => {
                        self.count(REVOKED);
                        self.alert("revoked_token_reuse", String::new());
                    }
                    ValidationErrorKind::BadSignature
                    | ValidationErrorKind::UnknownKid
                    | ValidationErrorKind::AlgorithmMismatch
                    | ValidationErrorKind::KeyRetired
                    | ValidationErrorKind::KeysStale => self.count(BAD_KEY),
                    _ => self.count(REJECTED),
                },
            },
            Event::Issued { .. } => self.count(ISSUED),
            Event::Renewed { .. } => self.count(RENEWED),
            Event::Revoked { audited: true, .. } => self.count(REVOCATIONS),
            Event::RefreshReuse { .. } => {
                self.alert("refresh_reuse", "the token's family is revoked".into());
            }
            Event::KeysetRolledBack {
                from,
                to,
                reason,
                failures,
                sample,
            } => {
                let detail = format!(
                    "v{from} → v{to} ({reason:?}: {failures} of {sample}); v{from} quarantined"
                );
                self.timeline("automatic_rollback", detail.clone(), Some(*to));
                self.alert("automatic_rollback", detail);
            }
            Event::KeysRetired { version, kids, .. } => {
                self.timeline("keys_retired", kids.join(", "), Some(*version));
            }
            Event::Admin {
                action,
                detail,
                failure: None,
                keyset_version,
                ..
            } => {
                if let Some(what) = keyset_action(*action) {
                    self.timeline(what, detail.unwrap_or_default().to_owned(), *keyset_version);
                }
            }
            Event::Admin {
                failure: Some(AdminFailure::AdminAuth),
                ..
            } => self.alert("admin_auth_refused", String::new()),
            Event::RemoteKeys {
                source,
                outcome,
                version,
                ..
            } => match outcome {
                RemoteFetch::Updated => {
                    self.timeline("remote_keys_updated", (*source).to_owned(), Some(*version));
                }
                RemoteFetch::Failed(kind) => {
                    self.alert("remote_keys_failed", format!("{source}: {kind:?}"));
                }
                _ => {}
            },
            Event::Fleet(FleetEvent::Disconnected) => {
                self.alert("fleet_disconnected", String::new());
            }
            Event::Fleet(FleetEvent::EpochChanged) => {
                self.alert("fleet_epoch_changed", String::new());
            }
            Event::Fleet(FleetEvent::HeartbeatMissed) => {
                self.alert("fleet_heartbeat_missed", String::new());
            }
            _ => {}
        }
    }

    #[inline]
    fn on_hit(&self, _hit: &Hit<'_>) {
        self.count(ACCEPTED);
        self.count(CACHE_HITS);
    }

    fn counts_hits(&self) -> bool {
        true
    }

    fn on_hits(&self, hits: &Hits<'_>) {
        self.0.counts[ACCEPTED].fetch_add(hits.count, Ordering::Relaxed);
        self.0.counts[CACHE_HITS].fetch_add(hits.count, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::observe::event::{TokenRef, Validated};
    use std::time::Duration;

    fn rejected(feed: &ConsoleFeed, kind: ValidationErrorKind) {
        validated(feed, Err(kind));
    }

    fn validated(feed: &ConsoleFeed, outcome: Result<Validated, ValidationErrorKind>) {
        feed.on_event(&Event::Validated {
            outcome,
            token: TokenRef::new("t"),
            keyset_version: 1,
            issuer: "",
            arm: crate::observe::event::Arm::Active,
            client: None,
            elapsed: None,
        });
    }

    /// An anonymous client replaying revoked tokens from two threads, for minutes of the
    /// clock: the alerts ring stays at its bound, each second's replays fold into one
    /// entry with their count, and the timeline — a rollback among them — is untouched.
    #[test]
    fn a_flood_of_alerts_stays_bounded_and_cannot_push_a_rollback_off_the_timeline() {
        let clock = Arc::new(ManualClock::at_unix(1_000));
        let feed = ConsoleFeed::with_clock(clock.clone());
        feed.on_event(&Event::KeysetRolledBack {
            from: 2,
            to: 1,
            reason: crate::observe::event::RollbackReason::BadKeyRate,
            failures: 9,
            sample: 10,
        });
        std::thread::scope(|s| {
            for _ in 0..2 {
                let feed = feed.clone();
                let clock = clock.clone();
                s.spawn(move || {
                    for i in 0..(RING * 10) as u64 {
                        rejected(&feed, ValidationErrorKind::Revoked);
                        if i % 7 == 0 {
                            clock.advance(Duration::from_secs(1));
                        }
                    }
                });
            }
        });
        let (alerts, missed) = feed.alerts_since(0);
        assert!(alerts.len() <= RING, "{}", alerts.len());
        assert!(missed > 0);
        assert!(alerts.iter().all(|a| a.what == "revoked_token_reuse"));
        // Every replay is counted: in the counters, and in the entries' counts of the
        // seconds still kept.
        assert_eq!(feed.counters().revoked, (RING * 20) as u64);
        assert!(alerts.iter().map(|a| a.count).sum::<u64>() >= alerts.len() as u64);
        let (timeline, missed) = feed.timeline_since(0);
        assert_eq!((timeline.len(), missed), (1, 0));
        assert_eq!(timeline[0].what, "automatic_rollback");
        // Within one second, one entry however many replays.
        let before = feed.alerts_since(0).0.len();
        for _ in 0..50 {
            rejected(&feed, ValidationErrorKind::Revoked);
        }
        let after = feed.alerts_since(0).0;
        assert!(after.len() <= before + 1);
        assert!(after.last().map(|a| a.count).unwrap_or(0) >= 50);
    }

    #[test]
    fn counters_tell_outcomes_apart_and_a_cursor_sees_only_what_is_new() {
        let feed = ConsoleFeed::with_clock(Arc::new(ManualClock::at_unix(5)));
        let hit = Hit {
            token: TokenRef::new("t"),
            keyset_version: 1,
            issuer: "",
            arm: crate::observe::event::Arm::Active,
            client: None,
            now: 5,
        };
        feed.on_hit(&hit);
        validated(&feed, Ok(Validated::default()));
        rejected(&feed, ValidationErrorKind::Expired);
        rejected(&feed, ValidationErrorKind::UnknownKid);
        rejected(&feed, ValidationErrorKind::WrongAudience);
        let c = feed.counters();
        assert_eq!(
            (c.accepted, c.cache_hits, c.expired, c.bad_key, c.rejected),
            (2, 1, 1, 1, 1)
        );
        assert_eq!(c.since(&Counters { accepted: 5, ..c }).accepted, 0);
        feed.timeline("publish", "v2".into(), Some(2));
        let (first, _) = feed.timeline_since(0);
        feed.timeline("promote", "v2".into(), Some(2));
        let (next, missed) = feed.timeline_since(first[0].seq);
        assert_eq!((next.len(), next[0].what, missed), (1, "promote", 0));
    }

    #[test]
    fn streams_are_bounded_and_a_dropped_slot_frees_its_place() {
        let feed = ConsoleFeed::new();
        let slots: Vec<_> = (0..MAX_STREAMS).map(|_| feed.open_stream()).collect();
        assert!(slots.iter().all(Option::is_some));
        assert!(feed.open_stream().is_none());
        drop(slots);
        assert_eq!(feed.open_streams(), 0);
        assert!(feed.open_stream().is_some());
    }
}
