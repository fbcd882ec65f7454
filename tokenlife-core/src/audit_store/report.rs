//! The three named reports: a token's whole life, a subject's tokens in a window, what a
//! keyset version rejected. Each is a few parameterised queries on the indexes the schema
//! keeps for them (fingerprint, subject, keyset version — each with the time).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::types::ToSql;
use serde::Serialize;

use super::row::{AuditRow, row_of};
use super::{AuditStoreError, COLUMNS, PgAuditStore, db};

/// Client addresses listed per token in a report at most.
const MAX_CLIENTS: usize = 32;
/// Tokens listed in a subject report at most.
const MAX_TOKENS: i64 = 1_000;
/// Rows (events, revocations, samples) listed per report section at most.
const MAX_ROWS: i64 = 1_000;

/// Which report ([`PgAuditStore::report`]); from a query string with
/// [`AuditQuery::from_query`](super::AuditQuery::from_query)'s `report=` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditReport {
    /// A token's whole life: issued → used when and where → renewed → failures →
    /// revocations that cover it (`report=token&fingerprint=…`).
    TokenLife {
        /// The token's keyed fingerprint (32 hex digits).
        fingerprint: String,
    },
    /// A subject's tokens in a window: each with its uses, renewals, failures; the
    /// subject's revocations (`report=subject&subject=…&since=…[&until=…]`).
    Subject {
        /// The subject as stored (plain or `h:` hashed).
        subject: String,
        /// From.
        since: SystemTime,
        /// Until (default now).
        until: Option<SystemTime>,
    },
    /// Everything a keyset version rejected in a window, by reason, with the newest
    /// records (`report=rejections&keyset_version=…&since=…[&until=…]`).
    Rejections {
        /// The keyset version.
        keyset_version: u64,
        /// From.
        since: SystemTime,
        /// Until (default now).
        until: Option<SystemTime>,
    },
}

/// How a token was used: the sum of its usage records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Usage {
    /// Successful validations.
    pub count: u64,
    /// First use (Unix seconds).
    pub first_seen: Option<u64>,
    /// Last use (Unix seconds).
    pub last_seen: Option<u64>,
    /// The distinct client addresses seen (at most 32 listed).
    pub clients: Vec<String>,
    /// Whether more addresses were seen than listed.
    pub more_clients: bool,
}

/// A token's whole life ([`AuditReport::TokenLife`]).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TokenLife {
    /// The fingerprint asked about.
    pub fingerprint: String,
    /// The record of its issue, if the trail has it.
    pub issued: Option<AuditRow>,
    /// Its successful uses.
    pub usage: Usage,
    /// Every record of it, oldest first (usage records included; at most 1,000).
    pub events: Vec<AuditRow>,
    /// Revocations of its subject at or after its issue (they cover it when their
    /// cut-off is at or after its `iat`).
    pub revocations: Vec<AuditRow>,
}

/// One token of a subject report.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SubjectToken {
    /// Its fingerprint.
    pub fingerprint: String,
    /// Access, refresh or API key.
    pub token_kind: Option<String>,
    /// When it was issued (Unix seconds).
    pub issued_at: u64,
    /// Who it was issued to.
    pub client: Option<String>,
    /// Its uses in the window.
    pub usage: Usage,
    /// Its failed validations in the window.
    pub failures: u64,
}

/// A subject's tokens in a window ([`AuditReport::Subject`]).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SubjectReport {
    /// The subject asked about.
    pub subject: String,
    /// From (Unix seconds).
    pub since: u64,
    /// Until (Unix seconds).
    pub until: u64,
    /// The tokens issued to it in the window, oldest first (at most 1,000).
    pub tokens: Vec<SubjectToken>,
    /// Refresh-token renewals (each one a family moving on).
    pub renewals: u64,
    /// Renewals refused (reuse among them: a family revoked).
    pub renewals_refused: u64,
    /// The subject's revocations in the window, oldest first.
    pub revocations: Vec<AuditRow>,
}

/// What a keyset version rejected ([`AuditReport::Rejections`]).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Rejections {
    /// The version asked about.
    pub keyset_version: u64,
    /// From (Unix seconds).
    pub since: u64,
    /// Until (Unix seconds).
    pub until: u64,
    /// Every rejection.
    pub total: u64,
    /// Rejections by reason.
    pub by_reason: BTreeMap<String, u64>,
    /// Distinct tokens rejected.
    pub tokens: u64,
    /// The newest rejections (at most 100).
    pub newest: Vec<AuditRow>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn window(
    since: SystemTime,
    until: Option<SystemTime>,
) -> Result<(SystemTime, SystemTime), AuditStoreError> {
    let until = until.unwrap_or_else(|| SystemTime::now() + Duration::from_secs(1));
    if until <= since {
        return Err(AuditStoreError::filter("until"));
    }
    if until.duration_since(since).unwrap_or_default() > super::MAX_BROAD_RANGE * 12 {
        return Err(AuditStoreError::filter("since"));
    }
    Ok((since, until))
}

impl AuditReport {
    /// Checks the report's fields.
    ///
    /// # Errors
    /// [`InvalidFilter`](super::AuditStoreErrorKind::InvalidFilter) naming the field: a
    /// fingerprint that is not 32 hex digits, an empty or over-long subject, a window
    /// that ends before it starts or spans more than a year.
    pub fn check(&self) -> Result<(), AuditStoreError> {
        match self {
            Self::TokenLife { fingerprint } => {
                if fingerprint.len() != 32 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(AuditStoreError::filter("fingerprint"));
                }
            }
            Self::Subject {
                subject,
                since,
                until,
            } => {
                if subject.is_empty() || subject.len() > 256 {
                    return Err(AuditStoreError::filter("subject"));
                }
                window(*since, *until)?;
            }
            Self::Rejections { since, until, .. } => {
                window(*since, *until)?;
            }
        }
        Ok(())
    }
}

/// The usage of each fingerprint in `fps` (rows `token_used`, `at` in the window).
fn usage_of(
    client: &mut postgres::Client,
    schema: &str,
    fps: &[String],
    range: Option<(SystemTime, SystemTime)>,
) -> Result<BTreeMap<String, Usage>, postgres::Error> {
    let mut out: BTreeMap<String, Usage> = BTreeMap::new();
    if fps.is_empty() {
        return Ok(out);
    }
    let (filter, params): (&str, Vec<&(dyn ToSql + Sync)>) = match &range {
        Some((s, u)) => (" AND at >= $2 AND at < $3", vec![&fps, s, u]),
        None => ("", vec![&fps]),
    };
    let sums = client.query(
        &format!(
            "SELECT fingerprint, sum((detail->>'count')::bigint)::bigint,
                    min((detail->>'first_seen')::bigint), max((detail->>'last_seen')::bigint),
                    bool_or(coalesce((detail->>'more_clients')::boolean, false))
             FROM {schema}.tokenlife_audit
             WHERE action = 'token_used' AND fingerprint = ANY($1){filter}
             GROUP BY fingerprint"
        ),
        &params,
    )?;
    for r in sums {
        let u = out.entry(r.get(0)).or_default();
        u.count = r.get::<_, Option<i64>>(1).map_or(0, |n| n.unsigned_abs());
        u.first_seen = r.get::<_, Option<i64>>(2).map(i64::unsigned_abs);
        u.last_seen = r.get::<_, Option<i64>>(3).map(i64::unsigned_abs);
        u.more_clients = r.get::<_, Option<bool>>(4).unwrap_or(false);
    }
    let clients = client.query(
        &format!(
            "SELECT DISTINCT fingerprint, c
             FROM {schema}.tokenlife_audit, jsonb_array_elements_text(detail->'clients') AS c
             WHERE action = 'token_used' AND fingerprint = ANY($1){filter}
             ORDER BY fingerprint, c"
        ),
        &params,
    )?;
    for r in clients {
        let u = out.entry(r.get(0)).or_default();
        if u.clients.len() < MAX_CLIENTS {
            u.clients.push(r.get(1));
        } else {
            u.more_clients = true;
        }
    }
    Ok(out)
}

impl PgAuditStore {
    /// Answers one of the named reports, as JSON (see [`AuditReport`]).
    ///
    /// # Errors
    /// [`InvalidFilter`](super::AuditStoreErrorKind::InvalidFilter) naming the field;
    /// [`Database`](super::AuditStoreErrorKind::Database).
    pub fn report(&self, report: &AuditReport) -> Result<serde_json::Value, AuditStoreError> {
        report.check()?;
        let value = match report {
            AuditReport::TokenLife { fingerprint } => {
                serde_json::to_value(self.token_life(&fingerprint.to_ascii_lowercase())?)
            }
            AuditReport::Subject {
                subject,
                since,
                until,
            } => serde_json::to_value(self.subject_report(subject, *since, *until)?),
            AuditReport::Rejections {
                keyset_version,
                since,
                until,
            } => serde_json::to_value(self.rejections(*keyset_version, *since, *until)?),
        };
        value.map_err(|e| AuditStoreError::new(super::AuditStoreErrorKind::Database, e))
    }

    /// A token's whole life.
    ///
    /// # Errors
    /// [`Database`](super::AuditStoreErrorKind::Database).
    pub fn token_life(&self, fingerprint: &str) -> Result<TokenLife, AuditStoreError> {
        self.retrying(|| self.token_life_once(fingerprint))
    }

    fn token_life_once(&self, fingerprint: &str) -> Result<TokenLife, AuditStoreError> {
        let s = &self.schema;
        let mut client = self.client()?;
        let fps = [fingerprint.to_owned()];
        // Times are whole seconds: within the second a token was issued in, its issue
        // comes first (the usage rollup's first use often shares that second).
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM {s}.tokenlife_audit WHERE fingerprint = $1
                     ORDER BY at, action <> 'token_issued', event_id LIMIT {MAX_ROWS}"
                ),
                &[&fingerprint],
            )
            .map_err(db)?;
        let events: Vec<AuditRow> = rows.iter().map(row_of).collect();
        let issued = events.iter().find(|r| r.action == "token_issued").cloned();
        let revocations = match issued
            .as_ref()
            .and_then(|i| i.subject.clone().map(|s| (s, i.at)))
        {
            Some((subject, at)) => client
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM {s}.tokenlife_audit
                         WHERE subject = $1 AND action = 'token_revoked' AND at >= $2
                         ORDER BY at, event_id LIMIT {MAX_ROWS}"
                    ),
                    &[&subject, &(UNIX_EPOCH + Duration::from_secs(at))],
                )
                .map_err(db)?
                .iter()
                .map(row_of)
                .collect(),
            None => Vec::new(),
        };
        let usage = usage_of(&mut client, s, &fps, None)
            .map_err(db)?
            .remove(fingerprint)
            .unwrap_or_default();
        Ok(TokenLife {
            fingerprint: fingerprint.to_owned(),
            issued,
            usage,
            events,
            revocations,
        })
    }

    /// A subject's tokens in a window (until: default now).
    ///
    /// # Errors
    /// [`InvalidFilter`](super::AuditStoreErrorKind::InvalidFilter) for a bad window;
    /// [`Database`](super::AuditStoreErrorKind::Database).
    pub fn subject_report(
        &self,
        subject: &str,
        since: SystemTime,
        until: Option<SystemTime>,
    ) -> Result<SubjectReport, AuditStoreError> {
        let (since, until) = window(since, until)?;
        self.retrying(|| self.subject_report_once(subject, since, until))
    }

    fn subject_report_once(
        &self,
        subject: &str,
        since: SystemTime,
        until: SystemTime,
    ) -> Result<SubjectReport, AuditStoreError> {
        let s = &self.schema;
        let mut client = self.client()?;
        let issued = client
            .query(
                &format!(
                    "SELECT fingerprint, token_kind, at, client FROM {s}.tokenlife_audit
                     WHERE subject = $1 AND action = 'token_issued' AND at >= $2 AND at < $3
                       AND fingerprint IS NOT NULL
                     ORDER BY at, event_id LIMIT {MAX_TOKENS}"
                ),
                &[&subject, &since, &until],
            )
            .map_err(db)?;
        let fps: Vec<String> = issued.iter().map(|r| r.get(0)).collect();
        let mut usage = usage_of(&mut client, s, &fps, Some((since, until))).map_err(db)?;
        let mut failures: BTreeMap<String, u64> = BTreeMap::new();
        for r in client
            .query(
                &format!(
                    "SELECT fingerprint, count(*) FROM {s}.tokenlife_audit
                     WHERE fingerprint = ANY($1) AND action = 'validation_failed'
                       AND at >= $2 AND at < $3
                     GROUP BY fingerprint"
                ),
                &[&fps, &since, &until],
            )
            .map_err(db)?
        {
            failures.insert(r.get(0), r.get::<_, i64>(1).unsigned_abs());
        }
        let tokens = issued
            .iter()
            .map(|r| {
                let fp: String = r.get(0);
                SubjectToken {
                    usage: usage.remove(&fp).unwrap_or_default(),
                    failures: failures.get(&fp).copied().unwrap_or(0),
                    token_kind: r.get(1),
                    issued_at: secs(r.get(2)),
                    client: r.get(3),
                    fingerprint: fp,
                }
            })
            .collect();
        let counts = client
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE action = 'token_renewed'),
                            count(*) FILTER (WHERE action = 'renew_failed')
                     FROM {s}.tokenlife_audit
                     WHERE subject = $1 AND at >= $2 AND at < $3"
                ),
                &[&subject, &since, &until],
            )
            .map_err(db)?;
        let revocations = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM {s}.tokenlife_audit
                     WHERE subject = $1 AND action = 'token_revoked' AND at >= $2 AND at < $3
                     ORDER BY at, event_id LIMIT {MAX_ROWS}"
                ),
                &[&subject, &since, &until],
            )
            .map_err(db)?
            .iter()
            .map(row_of)
            .collect();
        Ok(SubjectReport {
            subject: subject.to_owned(),
            since: secs(since),
            until: secs(until),
            tokens,
            renewals: counts.get::<_, i64>(0).unsigned_abs(),
            renewals_refused: counts.get::<_, i64>(1).unsigned_abs(),
            revocations,
        })
    }

    /// What keyset `version` rejected in a window (until: default now).
    ///
    /// # Errors
    /// [`InvalidFilter`](super::AuditStoreErrorKind::InvalidFilter) for a bad window;
    /// [`Database`](super::AuditStoreErrorKind::Database).
    pub fn rejections(
        &self,
        version: u64,
        since: SystemTime,
        until: Option<SystemTime>,
    ) -> Result<Rejections, AuditStoreError> {
        let (since, until) = window(since, until)?;
        self.retrying(|| self.rejections_once(version, since, until))
    }

    fn rejections_once(
        &self,
        version: u64,
        since: SystemTime,
        until: SystemTime,
    ) -> Result<Rejections, AuditStoreError> {
        let s = &self.schema;
        let v = i64::try_from(version).unwrap_or(i64::MAX);
        let mut client = self.client()?;
        let mut by_reason = BTreeMap::new();
        let mut total = 0;
        for r in client
            .query(
                &format!(
                    "SELECT coalesce(reason, ''), count(*) FROM {s}.tokenlife_audit
                     WHERE keyset_version = $1 AND outcome = 'failure' AND at >= $2 AND at < $3
                       AND action IN ('validation_failed', 'shadow_regression')
                     GROUP BY 1"
                ),
                &[&v, &since, &until],
            )
            .map_err(db)?
        {
            let n = r.get::<_, i64>(1).unsigned_abs();
            total += n;
            by_reason.insert(r.get(0), n);
        }
        let tokens = client
            .query_one(
                &format!(
                    "SELECT count(DISTINCT fingerprint) FROM {s}.tokenlife_audit
                     WHERE keyset_version = $1 AND outcome = 'failure' AND at >= $2 AND at < $3
                       AND action IN ('validation_failed', 'shadow_regression')"
                ),
                &[&v, &since, &until],
            )
            .map_err(db)?
            .get::<_, i64>(0)
            .unsigned_abs();
        let newest = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM {s}.tokenlife_audit
                     WHERE keyset_version = $1 AND outcome = 'failure' AND at >= $2 AND at < $3
                       AND action IN ('validation_failed', 'shadow_regression')
                     ORDER BY at DESC, event_id DESC LIMIT 100"
                ),
                &[&v, &since, &until],
            )
            .map_err(db)?
            .iter()
            .map(row_of)
            .collect();
        Ok(Rejections {
            keyset_version: version,
            since: secs(since),
            until: secs(until),
            total,
            by_reason,
            tokens,
            newest,
        })
    }
}
