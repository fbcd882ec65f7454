//! The audit store's rows: as the sink writes them (and the spool keeps them), and as
//! queries read them back.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One row, as the writer stores it (and the spool keeps it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Row {
    pub(super) event_id: [u8; 16],
    pub(super) at: SystemTime,
    pub(super) action: String,
    pub(super) outcome: String,
    pub(super) reason: Option<String>,
    pub(super) token_kind: Option<String>,
    pub(super) fingerprint: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) client: Option<String>,
    pub(super) kid: Option<String>,
    pub(super) alg: Option<String>,
    pub(super) keyset_version: Option<i64>,
    pub(super) alert: Option<String>,
    pub(super) detail: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) jti: Option<String>,
    #[serde(default)]
    pub(super) issuer: Option<String>,
    #[serde(default)]
    pub(super) address: Option<String>,
    #[serde(default)]
    pub(super) trace_id: Option<String>,
}

/// One stored audit record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AuditRow {
    /// The record's id (hex).
    pub event_id: String,
    /// When (Unix seconds).
    pub at: u64,
    /// What happened (`token_issued`, `validation_failed`, …).
    pub action: String,
    /// `ok` or `failure`.
    pub outcome: String,
    /// Why.
    pub reason: Option<String>,
    /// Access, refresh or API key.
    pub token_kind: Option<String>,
    /// The token's keyed fingerprint.
    pub fingerprint: Option<String>,
    /// The subject (or its keyed hash).
    pub subject: Option<String>,
    /// The client.
    pub client: Option<String>,
    /// The signing key's kid.
    pub kid: Option<String>,
    /// Its algorithm.
    pub alg: Option<String>,
    /// The keyset version in force.
    pub keyset_version: Option<i64>,
    /// The alert raised.
    pub alert: Option<String>,
    /// The node that wrote it.
    pub node: String,
    /// Details of an admin action, or a usage record's sums.
    pub detail: Option<serde_json::Value>,
    /// The token's `jti` (issued access tokens).
    pub jti: Option<String>,
    /// The issuer concerned.
    pub issuer: Option<String>,
    /// The address the token was presented from.
    pub address: Option<String>,
    /// The trace active when it was recorded.
    pub trace_id: Option<String>,
}

/// A stored row ([`COLUMNS`] order) as an [`AuditRow`].
pub(crate) fn row_of(r: &postgres::Row) -> AuditRow {
    let id: Vec<u8> = r.get(0);
    let at: SystemTime = r.get(1);
    AuditRow {
        event_id: id.iter().map(|b| format!("{b:02x}")).collect(),
        at: at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        action: r.get(2),
        outcome: r.get(3),
        reason: r.get(4),
        token_kind: r.get(5),
        fingerprint: r.get(6),
        subject: r.get(7),
        client: r.get(8),
        kid: r.get(9),
        alg: r.get(10),
        keyset_version: r.get(11),
        alert: r.get(12),
        node: r.get(13),
        detail: r.get(14),
        jti: r.get(15),
        issuer: r.get(16),
        address: r.get(17),
        trace_id: r.get(18),
    }
}
