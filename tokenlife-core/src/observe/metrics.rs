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
//! | `tokenlife_validations_total` | counter | `outcome`, `keyset_version` |
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

use std::sync::Arc;

use crate::error::ValidationErrorKind;

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
/// The current keyset version, as last seen by validation.
pub const KEYSET_VERSION: &str = "tokenlife_keyset_version";
/// Lifecycle transitions by `kind`, `from`, `to`.
pub const LIFECYCLE_TRANSITIONS: &str = "tokenlife_lifecycle_transitions_total";
/// Alerts raised, by `alert`.
pub const ALERTS: &str = "tokenlife_alerts_total";
/// Audit events dropped because the audit queue was full.
pub const AUDIT_DROPPED: &str = "tokenlife_audit_dropped_total";
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
/// Unknown kids seen during the cooldown, which woke no refresh.
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
    describe_gauge!(KEYSET_VERSION, "Current keyset version");
    describe_counter!(LIFECYCLE_TRANSITIONS, "Token lifecycle transitions");
    describe_counter!(ALERTS, "Alerts raised, by alert");
    describe_counter!(AUDIT_DROPPED, "Audit events dropped on a full queue");
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
    pub(crate) version: u64,
    pub(crate) ok: Counter,
    pub(crate) failed: Arc<[Counter; ValidationErrorKind::ALL.len()]>,
}

impl VersionCounters {
    /// Counters labelled with `version`, or with `keyset_version="other"` (kept under
    /// `version` for lookups) when `label_other` is set.
    pub(crate) fn new(version: u64, label_other: bool) -> Self {
        let v = if label_other {
            "other".to_owned()
        } else {
            version.to_string()
        };
        Self {
            version,
            ok: counter!(VALIDATIONS, "outcome" => "ok", "keyset_version" => v.clone()),
            failed: Arc::new(ValidationErrorKind::ALL.map(
                |k| counter!(VALIDATIONS, "outcome" => k.as_str(), "keyset_version" => v.clone()),
            )),
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
