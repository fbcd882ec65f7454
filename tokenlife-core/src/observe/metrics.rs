//! Every metric name and label tokenlife emits, in one place.
//!
//! Metrics go through the [`metrics`] facade: install any recorder (Prometheus, StatsD,
//! …) **before** building a [`Monitor`](crate::Monitor), which registers its handles once so
//! the hot path only bumps atomics. Labels have bounded cardinality: kinds, outcomes,
//! reasons, states and keyset versions, never a subject, client or token id.
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `tokenlife_tokens_issued_total` | counter | `kind` |
//! | `tokenlife_tokens_renewed_total` | counter | `kind` |
//! | `tokenlife_tokens_revoked_total` | counter | `kind`, `reason` |
//! | `tokenlife_tokens_expired_total` | counter | `kind` |
//! | `tokenlife_validations_total` | counter | `outcome`, `keyset_version`, `issuer` (the judging validator's configured issuer: bounded by configuration) |
//! | `tokenlife_validation_duration_seconds` | histogram (sampled) | — |
//! | `tokenlife_cache_hits_total` / `tokenlife_cache_misses_total` | counter | — |
//! | `tokenlife_revocation_list_entries` | gauge | — |
//! | `tokenlife_refresh_reuse_total` | counter | — |
//! | `tokenlife_keyset_version` | gauge | — |
//! | `tokenlife_lifecycle_transitions_total` | counter | `kind`, `from`, `to` |
//! | `tokenlife_alerts_total` | counter | `alert` |
//! | `tokenlife_audit_dropped_total` | counter | — |
//! | `tokenlife_api_key_validations_total` | counter | `outcome` |
//! | `tokenlife_admin_auth_failures_total` | counter | — |
//! | `tokenlife_remote_fetches_total` | counter | `outcome` |
//! | `tokenlife_remote_keys_skipped_total` | counter | — |
//! | `tokenlife_remote_unknown_kid_suppressed_total` | counter | — |
//! | `tokenlife_remote_degraded` | gauge (1: started without its provider, no fetch succeeded since) | `source` (configured) |
//! | `tokenlife_fleet_connected` | gauge | — |
//! | `tokenlife_fleet_last_sync_timestamp_seconds` | gauge | — |
//! | `tokenlife_fleet_messages_applied_total` | counter | — |
//! | `tokenlife_fleet_messages_dropped_total` | counter | `reason` |
//! | `tokenlife_fleet_replay_queue` | gauge | — |
//! | `tokenlife_fleet_keyset_states_ignored_total` | counter | — |
//! | `tokenlife_fleet_epoch_changes_total` | counter | — |
//! | `tokenlife_fleet_heartbeat_missed_total` | counter | — |

use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;

use super::event::{Arm, Event, FleetEvent, Observer, RetirementPolicy, RevokeReason};
use super::lifecycle::{TokenKind, TokenState};
use crate::error::ValidationErrorKind;
use crate::error::{ApiKeyErrorKind, RenewErrorKind};

/// Failed admin, client and resource-server authentications at the admin and OAuth
/// endpoints.
pub const ADMIN_AUTH_FAILURES: &str = "tokenlife_admin_auth_failures_total";
/// Tokens minted, by `kind` (`access`, `refresh`, `api_key`).
pub const TOKENS_ISSUED: &str = "tokenlife_tokens_issued_total";
/// Refresh rotations and API-key rotations, by `kind`.
pub const TOKENS_RENEWED: &str = "tokenlife_tokens_renewed_total";
/// Revocations, by `kind` and `reason` (`jti`, `subject`, `family`, `refresh_reuse`, `api_key`).
pub const TOKENS_REVOKED: &str = "tokenlife_tokens_revoked_total";
/// Expired tokens presented, by `kind`.
pub const TOKENS_EXPIRED: &str = "tokenlife_tokens_expired_total";
/// Validations by `outcome` (`ok` or a [`ValidationErrorKind::as_str`]) and `keyset_version`.
pub const VALIDATIONS: &str = "tokenlife_validations_total";
/// Validation latency in seconds (one validation in [`Monitor`](crate::Monitor)'s sample rate).
pub const VALIDATION_DURATION: &str = "tokenlife_validation_duration_seconds";
/// Verified-token cache hits.
pub const CACHE_HITS: &str = "tokenlife_cache_hits_total";
/// Verified-token cache misses.
pub const CACHE_MISSES: &str = "tokenlife_cache_misses_total";
/// Entries in the revocation list.
pub const REVOCATION_ENTRIES: &str = "tokenlife_revocation_list_entries";
/// Retired refresh tokens presented again.
pub const REFRESH_REUSE: &str = "tokenlife_refresh_reuse_total";
/// Idempotent refresh retries: a rotated token presented again within the retry grace
/// that got a sibling pair.
pub const REFRESH_RETRIES: &str = "tokenlife_refresh_retries_total";
/// The current keyset version, as last seen by validation.
pub const KEYSET_VERSION: &str = "tokenlife_keyset_version";
/// Lifecycle transitions by `kind`, `from`, `to`.
pub const LIFECYCLE_TRANSITIONS: &str = "tokenlife_lifecycle_transitions_total";
/// Alerts raised, by `alert`.
pub const ALERTS: &str = "tokenlife_alerts_total";
/// Audit events dropped because the audit queue was full.
pub const AUDIT_DROPPED: &str = "tokenlife_audit_dropped_total";
/// Token-bucket entries of the usage rollup dropped because its queue was full (the audit
/// sink stalled).
pub const USAGE_DROPPED: &str = "tokenlife_usage_dropped_total";
/// Audit records waiting in the audit store's spool file (the database down): set at
/// scrape time by whoever holds the sink (the gateway does).
pub const AUDIT_SPOOLED: &str = "tokenlife_audit_spooled";
/// Alerts a webhook accepted.
pub const WEBHOOK_DELIVERIES: &str = "tokenlife_webhook_deliveries_total";
/// Alerts never delivered to the webhook (queue full, refused, or every attempt failed).
pub const WEBHOOK_DEAD_LETTERS: &str = "tokenlife_webhook_dead_letters_total";
/// Verifications the verified-token cache holds: set at scrape time (`Validator::cached`).
pub const CACHE_ENTRIES: &str = "tokenlife_cache_entries";
/// Verifications the cache may hold (`Validator::cache_capacity`), beside
/// [`CACHE_ENTRIES`].
pub const CACHE_CAPACITY: &str = "tokenlife_cache_capacity";
/// API-key validations by `outcome`.
pub const API_KEY_VALIDATIONS: &str = "tokenlife_api_key_validations_total";

/// Validations judged by a rollout arm other than the active keyset, by `arm` (`canary`,
/// `retired`) and `outcome`.
pub const ROLLOUT_VALIDATIONS: &str = "tokenlife_rollout_validations_total";
/// A shadow candidate's verdicts on tokens the current keyset accepted, by `outcome`
/// (`ok` or the kind it would have rejected with).
pub const SHADOW_VALIDATIONS: &str = "tokenlife_shadow_validations_total";
/// Keys removed by a keyset change, by the retirement `policy` in force (`reject`,
/// `grace`, `renew_required`).
pub const KEYS_RETIRED: &str = "tokenlife_keys_retired_total";
/// The retirement policy in force: 1 for the `policy` label of the last change that
/// removed keys.
pub const RETIREMENT_POLICY: &str = "tokenlife_retirement_policy";

/// Fetches of remote keys (an identity provider's JWKS), by `outcome`: `updated`,
/// `unchanged`, `not_modified`, or the failure's kind.
pub const REMOTE_FETCHES: &str = "tokenlife_remote_fetches_total";
/// Remote JWKS entries skipped as unusable (counted when the keys change).
pub const REMOTE_KEYS_SKIPPED: &str = "tokenlife_remote_keys_skipped_total";
/// Gauge per source: 1 while it started without its provider and no fetch succeeded.
pub const REMOTE_DEGRADED: &str = "tokenlife_remote_degraded";
/// Unknown kids that woke no refresh (a kid's cooldown, the interval).
pub const REMOTE_UNKNOWN_KID_SUPPRESSED: &str = "tokenlife_remote_unknown_kid_suppressed_total";

/// 1 while the fleet subscriber is connected and in sync, else 0.
pub const FLEET_CONNECTED: &str = "tokenlife_fleet_connected";
/// Unix time of the fleet's last full sync (a resync on connect).
pub const FLEET_LAST_SYNC: &str = "tokenlife_fleet_last_sync_timestamp_seconds";
/// Revocations received from the fleet and applied.
pub const FLEET_APPLIED: &str = "tokenlife_fleet_messages_applied_total";
/// Fleet messages dropped, by `reason` (`oversize`, `malformed`, `version`, `invalid`,
/// `full`).
pub const FLEET_DROPPED: &str = "tokenlife_fleet_messages_dropped_total";
/// Local revocations waiting to reach Redis.
pub const FLEET_REPLAY_QUEUE: &str = "tokenlife_fleet_replay_queue";
/// Keyset states not applied (an older generation) whose content differs from this
/// node's current keyset: a node that stopped following the fleet shows here.
pub const FLEET_STATES_IGNORED: &str = "tokenlife_fleet_keyset_states_ignored_total";
/// Fleet epochs seen change (a Redis that lost its data, a failover).
pub const FLEET_EPOCH_CHANGES: &str = "tokenlife_fleet_epoch_changes_total";
/// Subscriptions ended because no heartbeat (nor any message) came within the bound.
pub const FLEET_HEARTBEAT_MISSED: &str = "tokenlife_fleet_heartbeat_missed_total";

/// Registers descriptions for every metric with the installed recorder.
pub fn describe() {
    describe_counter!(
        ROLLOUT_VALIDATIONS,
        "Validations judged by a canary candidate or a retired key, by arm and outcome"
    );
    describe_counter!(
        SHADOW_VALIDATIONS,
        "Shadow candidate verdicts on accepted tokens, by outcome"
    );
    describe_counter!(KEYS_RETIRED, "Keys removed by keyset changes, by policy");
    describe_gauge!(
        RETIREMENT_POLICY,
        "Retirement policy in force (1), by policy"
    );
    describe_counter!(TOKENS_ISSUED, "Tokens minted, by kind");
    describe_counter!(
        TOKENS_RENEWED,
        "Tokens renewed (refresh rotation, API-key rotation), by kind"
    );
    describe_counter!(TOKENS_REVOKED, "Revocations, by kind and reason");
    describe_counter!(TOKENS_EXPIRED, "Expired tokens presented, by kind");
    describe_counter!(
        VALIDATIONS,
        "Token validations, by outcome and keyset version"
    );
    describe_histogram!(
        VALIDATION_DURATION,
        metrics::Unit::Seconds,
        "Validation latency (sampled)"
    );
    describe_counter!(CACHE_HITS, "Verified-token cache hits");
    describe_counter!(CACHE_MISSES, "Verified-token cache misses");
    describe_gauge!(REVOCATION_ENTRIES, "Entries in the revocation list");
    describe_counter!(REFRESH_REUSE, "Retired refresh tokens presented again");
    describe_counter!(
        REFRESH_RETRIES,
        "Rotated refresh tokens retried within the retry grace (a sibling pair given)"
    );
    describe_gauge!(KEYSET_VERSION, "Current keyset version");
    describe_counter!(LIFECYCLE_TRANSITIONS, "Token lifecycle transitions");
    describe_counter!(ALERTS, "Alerts raised, by alert");
    describe_counter!(AUDIT_DROPPED, "Audit events dropped on a full queue");
    describe_gauge!(AUDIT_SPOOLED, "Audit records waiting in the spool file");
    describe_counter!(WEBHOOK_DELIVERIES, "Alerts a webhook accepted");
    describe_counter!(
        WEBHOOK_DEAD_LETTERS,
        "Alerts never delivered to the webhook"
    );
    describe_gauge!(CACHE_ENTRIES, "Verifications in the verified-token cache");
    describe_gauge!(CACHE_CAPACITY, "Capacity of the verified-token cache");
    describe_counter!(
        USAGE_DROPPED,
        "Usage rollup entries dropped on a full queue (audit sink stalled)"
    );
    describe_counter!(API_KEY_VALIDATIONS, "API-key validations, by outcome");
    describe_counter!(
        ADMIN_AUTH_FAILURES,
        "Failed admin, client and resource-server authentications"
    );
    describe_counter!(REMOTE_FETCHES, "Remote JWKS fetches, by outcome");
    describe_counter!(
        REMOTE_KEYS_SKIPPED,
        "Remote JWKS entries skipped as unusable"
    );
    describe_counter!(
        REMOTE_UNKNOWN_KID_SUPPRESSED,
        "Unknown kids during the cooldown, which woke no refresh"
    );
    describe_gauge!(
        REMOTE_DEGRADED,
        "1 while a remote key source started without its provider and no fetch has succeeded"
    );
    describe_gauge!(
        FLEET_CONNECTED,
        "Fleet subscriber connected and in sync (1)"
    );
    describe_gauge!(FLEET_LAST_SYNC, "Unix time of the fleet's last full sync");
    describe_counter!(FLEET_APPLIED, "Fleet revocations received and applied");
    describe_counter!(FLEET_DROPPED, "Fleet messages dropped, by reason");
    describe_gauge!(
        FLEET_REPLAY_QUEUE,
        "Local revocations waiting to reach Redis"
    );
    describe_counter!(
        FLEET_STATES_IGNORED,
        "Older fleet keyset states that differ from this node's keyset"
    );
    describe_counter!(FLEET_EPOCH_CHANGES, "Fleet epoch changes seen");
    describe_counter!(
        FLEET_HEARTBEAT_MISSED,
        "Fleet subscriptions ended by a missed heartbeat"
    );
}

/// Counters for one keyset version: `ok` and one per error kind.
#[derive(Clone)]
pub(crate) struct VersionCounters {
    pub(crate) issuer: Arc<str>,
    pub(crate) version: u64,
    pub(crate) ok: Counter,
    pub(crate) failed: Arc<[Counter; ValidationErrorKind::ALL.len()]>,
}

impl VersionCounters {
    /// Counters labelled with `issuer` and `version`, or with `keyset_version="other"`
    /// (kept under `version` for lookups) when `label_other` is set.
    pub(crate) fn new(issuer: &str, version: u64, label_other: bool) -> Self {
        let v = if label_other {
            "other".to_owned()
        } else {
            version.to_string()
        };
        let iss = issuer.to_owned();
        Self {
            issuer: issuer.into(),
            version,
            ok: counter!(VALIDATIONS, "outcome" => "ok", "keyset_version" => v.clone(), "issuer" => iss.clone()),
            failed: Arc::new(ValidationErrorKind::ALL.map(|k| {
                counter!(VALIDATIONS, "outcome" => k.as_str(), "keyset_version" => v.clone(), "issuer" => iss.clone())
            })),
        }
    }
}

/// Handles registered once, bumped on the hot path.
pub(crate) struct Handles {
    pub(crate) duration: Histogram,
    pub(crate) cache_hits: Counter,
    pub(crate) cache_misses: Counter,
    pub(crate) keyset_version: Gauge,
    pub(crate) revocation_entries: Gauge,
    pub(crate) refresh_reuse: Counter,
}

impl Handles {
    pub(crate) fn new() -> Self {
        describe();
        Self {
            duration: histogram!(VALIDATION_DURATION),
            cache_hits: counter!(CACHE_HITS),
            cache_misses: counter!(CACHE_MISSES),
            keyset_version: gauge!(KEYSET_VERSION),
            revocation_entries: gauge!(REVOCATION_ENTRIES),
            refresh_reuse: counter!(REFRESH_REUSE),
        }
    }
}

/// Keyset versions whose counters stay registered.
const RECENT_VERSIONS: usize = 4;

/// Distinct keyset versions that get series of their own (16 each) over the life of a
/// process; later versions share `keyset_version="other"`, so the recorder's series stay
/// bounded however many deploys a process sees.
pub(crate) const MAX_VERSION_LABELS: usize = 64;

/// Revocation counters kept as handles: (kind, reason).
const REVOKE_REASONS: [(TokenKind, RevokeReason); 6] = [
    (TokenKind::Access, RevokeReason::Jti),
    (TokenKind::Access, RevokeReason::Subject),
    (TokenKind::Access, RevokeReason::Family),
    (TokenKind::Refresh, RevokeReason::Family),
    (TokenKind::Refresh, RevokeReason::RefreshReuse),
    (TokenKind::ApiKey, RevokeReason::ApiKey),
];

thread_local! {
    static SAMPLE: Cell<u32> = const { Cell::new(0) };
    /// This thread's last (metrics instance, keyset version) and its `ok` counter: a
    /// success under the version the thread saw last costs no shared load.
    static OK_HEAD: std::cell::RefCell<Option<OkHead>> =
        const { std::cell::RefCell::new(None) };
}

/// A thread's head: (metrics instance, issuer, keyset version, that `ok` counter).
type OkHead = (usize, Arc<str>, u64, Counter);

/// Numbers [`Metrics`] instances, for [`OK_HEAD`].
static INSTANCES: AtomicUsize = AtomicUsize::new(1);

/// The [`Observer`] that makes every metric of the table above from the events: one of
/// the [`Monitor`](crate::Monitor)'s parts, usable alone (metrics without audit).
///
/// ```
/// use tokenlife_core::observe::metrics::Metrics;
/// use tokenlife_core::observe::{Arm, Event, Observer, TokenRef};
/// let m = Metrics::new(16);
/// m.on_event(&Event::Validated {
///     outcome: Err(tokenlife_core::ValidationErrorKind::Expired),
///     token: TokenRef::new("t"), keyset_version: 1, issuer: "i", arm: Arm::Active, client: None, elapsed: None,
/// });
/// // One validation in 16 is timed.
/// assert_eq!((0..16).filter(|_| m.time_validation()).count(), 1);
/// ```
pub struct Metrics {
    id: usize,
    handles: Handles,
    versions: ArcSwap<Recent>,
    labelled_versions: AtomicUsize,
    issued: [Counter; TokenKind::COUNT],
    renewed: [Counter; TokenKind::COUNT],
    expired: [Counter; TokenKind::COUNT],
    revoked: [Counter; REVOKE_REASONS.len()],
    /// `ok`, then one per [`ApiKeyErrorKind`], in its table order.
    api_key_outcomes: Vec<Counter>,
    sample: u32,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("sample", &self.sample)
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

fn per_kind(name: &'static str) -> [Counter; TokenKind::COUNT] {
    TokenKind::ALL.map(|k| counter!(name, "kind" => k.as_str()))
}

impl Metrics {
    /// Registers every handle with the installed recorder (install it first); one
    /// validation in `sample` has its latency recorded (0: none).
    pub fn new(sample: u32) -> Self {
        Self {
            id: INSTANCES.fetch_add(1, Ordering::Relaxed),
            handles: Handles::new(),
            versions: ArcSwap::from_pointee(Recent {
                head: None,
                older: Vec::new(),
            }),
            labelled_versions: AtomicUsize::new(0),
            issued: per_kind(TOKENS_ISSUED),
            renewed: per_kind(TOKENS_RENEWED),
            expired: per_kind(TOKENS_EXPIRED),
            revoked: REVOKE_REASONS.map(
                |(k, r)| counter!(TOKENS_REVOKED, "kind" => k.as_str(), "reason" => r.as_str()),
            ),
            api_key_outcomes: std::iter::once("ok")
                .chain(ApiKeyErrorKind::ALL.iter().map(|k| k.as_str()))
                .map(|o| counter!(API_KEY_VALIDATIONS, "outcome" => o))
                .collect(),
            sample,
        }
    }

    /// Runs `f` with the counters of this keyset version: one lock-free load. The last
    /// few versions stay registered, so a rollback flipping between two versions does
    /// not register anything again.
    #[inline]
    fn with_counters(&self, issuer: &str, version: u64, f: impl FnOnce(&VersionCounters)) {
        let recent = self.versions.load();
        if let Some(head) = &recent.head
            && head.version == version
            && *head.issuer == *issuer
        {
            return f(head);
        }
        let known = recent
            .iter()
            .find(|c| c.version == version && *c.issuer == *issuer)
            .cloned();
        let counters = known.unwrap_or_else(|| {
            let n = self.labelled_versions.fetch_add(1, Ordering::Relaxed);
            VersionCounters::new(issuer, version, n >= MAX_VERSION_LABELS)
        });
        f(&counters);
        let older = recent
            .iter()
            .filter(|c| c.version != version || *c.issuer != *issuer)
            .take(RECENT_VERSIONS - 1)
            .cloned()
            .collect();
        self.versions.store(Arc::new(Recent {
            head: Some(counters),
            older,
        }));
        #[allow(clippy::cast_precision_loss)]
        self.handles.keyset_version.set(version as f64);
    }

    /// Counts one success under `version`: from this thread's head when it is that
    /// version's, else through [`with_counters`](Self::with_counters), keeping the
    /// handle as the thread's head.
    #[inline]
    fn ok(&self, issuer: &str, version: u64) {
        let hit = OK_HEAD.with(|head| match &*head.borrow() {
            Some((id, iss, v, c)) if *id == self.id && *v == version && **iss == *issuer => {
                c.increment(1);
                true
            }
            _ => false,
        });
        if !hit {
            self.with_counters(issuer, version, |c| {
                c.ok.increment(1);
                let head = (self.id, c.issuer.clone(), version, c.ok.clone());
                OK_HEAD.with(|h| *h.borrow_mut() = Some(head));
            });
        }
    }

    /// Counts a state change into the per-kind totals.
    fn state(&self, kind: TokenKind, to: TokenState) {
        let per_kind = match to {
            TokenState::Issued => &self.issued,
            TokenState::Renewed => &self.renewed,
            TokenState::Expired => &self.expired,
            _ => return,
        };
        per_kind[kind.index()].increment(1);
    }

    #[allow(clippy::cast_precision_loss)]
    fn revoked(&self, kind: TokenKind, reason: RevokeReason, entries: Option<u64>) {
        if let Some(i) = REVOKE_REASONS
            .iter()
            .position(|&(k, r)| k == kind && r == reason)
        {
            self.revoked[i].increment(1);
        }
        if let Some(n) = entries {
            self.handles.revocation_entries.set(n as f64);
        }
    }
}

impl Observer for Metrics {
    #[inline]
    fn time_validation(&self) -> bool {
        let every = self.sample;
        if every == 0 {
            return false;
        }
        SAMPLE.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n % every == 0
        })
    }

    /// The `ok` and cache-hit counters, nothing else (a hit of a canary or retired key
    /// goes the event's way, for the rollout counter).
    #[inline]
    fn on_hit(&self, hit: &super::Hit<'_>) {
        if hit.arm != Arm::Active {
            return self.on_event(&hit.event());
        }
        self.ok(hit.issuer, hit.keyset_version);
        self.handles.cache_hits.increment(1);
    }

    fn counts_hits(&self) -> bool {
        true
    }

    /// The `ok` and cache-hit counters, by the count.
    fn on_hits(&self, hits: &super::Hits<'_>) {
        self.with_counters(hits.issuer, hits.keyset_version, |c| {
            c.ok.increment(hits.count);
        });
        self.handles.cache_hits.increment(hits.count);
    }

    #[allow(clippy::cast_precision_loss)]
    fn on_event(&self, event: &Event<'_>) {
        match *event {
            Event::Validated {
                ref outcome,
                keyset_version,
                issuer,
                arm,
                elapsed,
                ..
            } => {
                if let Some(t) = elapsed {
                    self.handles.duration.record(t.as_secs_f64());
                }
                if arm != Arm::Active {
                    let out = outcome.map_or_else(ValidationErrorKind::as_str, |_| "ok");
                    counter!(ROLLOUT_VALIDATIONS, "arm" => arm.as_str(), "outcome" => out)
                        .increment(1);
                }
                match outcome {
                    Ok(v) => {
                        self.ok(issuer, keyset_version);
                        if v.from_cache {
                            self.handles.cache_hits.increment(1);
                        } else {
                            self.handles.cache_misses.increment(1);
                        }
                    }
                    &Err(kind) => {
                        self.with_counters(issuer, keyset_version, |c| {
                            c.failed[kind.index()].increment(1);
                        });
                        if kind == ValidationErrorKind::Expired {
                            self.state(TokenKind::Access, TokenState::Expired);
                        }
                    }
                }
            }
            Event::Shadow { outcome, .. } => {
                let out = outcome.map_or_else(ValidationErrorKind::as_str, |()| "ok");
                counter!(SHADOW_VALIDATIONS, "outcome" => out).increment(1);
            }
            Event::RemoteKeys {
                source,
                outcome,
                skipped,
                degraded,
                ..
            } => {
                counter!(REMOTE_FETCHES, "outcome" => outcome.as_str()).increment(1);
                gauge!(REMOTE_DEGRADED, "source" => source.to_owned()).set(if degraded {
                    1.0
                } else {
                    0.0
                });
                if outcome == super::RemoteFetch::Updated && !skipped.is_empty() {
                    counter!(REMOTE_KEYS_SKIPPED).increment(skipped.len() as u64);
                }
            }
            Event::KeysRetired { kids, policy, .. } => {
                counter!(KEYS_RETIRED, "policy" => policy.as_str()).increment(kids.len() as u64);
                for p in RetirementPolicy::ALL {
                    let on = if p == policy { 1.0 } else { 0.0 };
                    gauge!(RETIREMENT_POLICY, "policy" => p.as_str()).set(on);
                }
            }
            Event::Issued { kind, .. } => self.state(kind, TokenState::Issued),
            Event::Renewed { kind, retry, .. } => {
                self.state(kind, TokenState::Renewed);
                if retry {
                    counter!(REFRESH_RETRIES).increment(1);
                }
            }
            Event::RenewFailed { reason, .. } => {
                if reason == RenewErrorKind::Expired {
                    self.state(TokenKind::Refresh, TokenState::Expired);
                }
            }
            Event::RefreshReuse {
                revocation_entries, ..
            } => {
                self.handles.refresh_reuse.increment(1);
                self.revoked(
                    TokenKind::Refresh,
                    RevokeReason::RefreshReuse,
                    Some(revocation_entries),
                );
            }
            Event::Revoked {
                kind,
                reason,
                revocation_entries,
                ..
            } => self.revoked(kind, reason, revocation_entries),
            Event::ApiKeyChecked { outcome, .. } => {
                let i = outcome.map_or_else(|k| 1 + k.index(), |()| 0);
                if let Some(c) = self.api_key_outcomes.get(i) {
                    c.increment(1);
                }
            }
            Event::Transition { kind, to, .. } => self.state(kind, to),
            Event::Admin {
                failure: Some(super::AdminFailure::AdminAuth | super::AdminFailure::ClientAuth),
                ..
            } => counter!(ADMIN_AUTH_FAILURES).increment(1),
            Event::UnknownKidSuppressed { .. } => {
                counter!(REMOTE_UNKNOWN_KID_SUPPRESSED).increment(1);
            }
            Event::Fleet(fleet) => fleet_metrics(fleet),
            Event::KeysetRolledBack { .. } | Event::Admin { .. } => {}
        }
    }
}

/// The `tokenlife_fleet_*` metrics of one fleet happening (rare: no handles kept).
#[allow(clippy::cast_precision_loss)]
fn fleet_metrics(event: FleetEvent) {
    match event {
        FleetEvent::Synced { at } => {
            gauge!(FLEET_CONNECTED).set(1.0);
            gauge!(FLEET_LAST_SYNC).set(at as f64);
        }
        FleetEvent::Disconnected => gauge!(FLEET_CONNECTED).set(0.0),
        FleetEvent::HeartbeatMissed => counter!(FLEET_HEARTBEAT_MISSED).increment(1),
        FleetEvent::RevocationApplied => counter!(FLEET_APPLIED).increment(1),
        FleetEvent::Dropped(reason) => {
            counter!(FLEET_DROPPED, "reason" => reason.as_str()).increment(1);
        }
        FleetEvent::Queued(n) => gauge!(FLEET_REPLAY_QUEUE).set(n as f64),
        FleetEvent::KeysetStateIgnored => counter!(FLEET_STATES_IGNORED).increment(1),
        FleetEvent::EpochChanged => counter!(FLEET_EPOCH_CHANGES).increment(1),
    }
}
