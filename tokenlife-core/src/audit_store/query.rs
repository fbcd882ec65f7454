//! [`AuditQuery`]: parameterised, bounded, paginated questions to the audit store.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::types::ToSql;
use serde::Serialize;

use super::report::AuditReport;
use super::row::{AuditRow, row_of};
use super::{AuditStoreError, COLUMNS, PgAuditStore, db};
use crate::observe::TokenRef;

/// The most rows one page holds.
pub const MAX_PAGE: usize = 1_000;

/// The longest time range a query without a token, `jti`, subject, client, address or
/// keyset version may span: a broad question is asked a month at a time.
pub const MAX_BROAD_RANGE: Duration = Duration::from_secs(31 * 86_400);

/// Longest filter string accepted.
const MAX_FILTER_LEN: usize = 256;

/// A question to the audit store: every filter given must hold; rows newest first,
/// [`limit`](Self::limit) per page, the next page from [`AuditPage::next`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tokenlife_core::audit_store::AuditQuery;
/// let q = AuditQuery::new().subject("alice").since(SystemTime::now() - Duration::from_secs(86_400));
/// assert!(q.check().is_ok());
/// // No selective filter and no time range: refused, naming the field.
/// assert_eq!(AuditQuery::new().check().unwrap_err().field(), Some("since"));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct AuditQuery {
    fingerprint: Option<String>,
    subject: Option<String>,
    client: Option<String>,
    jti: Option<String>,
    issuer: Option<String>,
    address: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    keyset_version: Option<i64>,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    limit: Option<usize>,
    after: Option<AuditCursor>,
    /// `report=` of a query string: which named report it asks for.
    report: Option<String>,
}

/// Where a page ended: give it to [`AuditQuery::after`] for the next one. Opaque text
/// (`<microseconds>.<event id>`), safe to hand to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AuditCursor(String);

impl AuditCursor {
    /// The cursor as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A cursor from its text.
    ///
    /// # Errors
    /// [`InvalidFilter`](super::AuditStoreErrorKind::InvalidFilter) (`after`) for text
    /// that is not a cursor.
    pub fn parse(text: &str) -> Result<Self, AuditStoreError> {
        match Self::split(text) {
            Some(_) => Ok(Self(text.to_owned())),
            None => Err(AuditStoreError::filter("after")),
        }
    }

    fn split(text: &str) -> Option<(i64, Vec<u8>)> {
        let (micros, id) = text.split_once('.')?;
        let micros: i64 = micros.parse().ok()?;
        if id.len() != 32 {
            return None;
        }
        let bytes = (0..16)
            .map(|i| u8::from_str_radix(id.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some((micros, bytes))
    }
}

/// A page of rows and where the next one starts.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AuditPage {
    /// Newest first.
    pub rows: Vec<AuditRow>,
    /// The next page's cursor, when there are more rows.
    pub next: Option<AuditCursor>,
}

fn text(field: &'static str, value: &str) -> Result<String, AuditStoreError> {
    if value.is_empty() || value.len() > MAX_FILTER_LEN {
        return Err(AuditStoreError::filter(field));
    }
    Ok(value.to_owned())
}

impl AuditQuery {
    /// A query with no filter yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records of the token whose keyed fingerprint this is (32 hex digits).
    pub fn fingerprint(mut self, fp: impl Into<String>) -> Self {
        self.fingerprint = Some(fp.into());
        self
    }

    /// Records of this raw token: its fingerprint under `key` (the monitor's fingerprint
    /// key, [`Monitor::fingerprint`](crate::Monitor::fingerprint) gives the same). The
    /// token itself goes nowhere.
    pub fn token(self, token: &str, key: &[u8; 32]) -> Self {
        self.fingerprint(TokenRef::new(token).fingerprint(key).to_string())
    }

    /// Records of this subject, as stored in the clear.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Records of this subject where the sink pseudonymises subjects with `key`.
    pub fn pseudonymised_subject(self, subject: &str, key: &[u8; 32]) -> Self {
        let hashed = format!("h:{}", blake3::keyed_hash(key, subject.as_bytes()).to_hex());
        self.subject(hashed)
    }

    /// Records of this client.
    pub fn client(mut self, client: impl Into<String>) -> Self {
        self.client = Some(client.into());
        self
    }

    /// Records of the token with this `jti`.
    pub fn jti(mut self, jti: impl Into<String>) -> Self {
        self.jti = Some(jti.into());
        self
    }

    /// Records concerning this issuer.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Records of tokens presented from this address.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Records of this action (`token_issued`, `validation_failed`, …).
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Records of this outcome (`ok`, `failure`).
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = Some(outcome.into());
        self
    }

    /// Records under this keyset version.
    pub fn keyset_version(mut self, version: u64) -> Self {
        self.keyset_version = Some(i64::try_from(version).unwrap_or(i64::MAX));
        self
    }

    /// Records at or after `t`.
    pub fn since(mut self, t: SystemTime) -> Self {
        self.since = Some(t);
        self
    }

    /// Records before `t`.
    pub fn until(mut self, t: SystemTime) -> Self {
        self.until = Some(t);
        self
    }

    /// Rows per page (1 to [`MAX_PAGE`], default 100).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// The page after `cursor`.
    pub fn after(mut self, cursor: AuditCursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// A query from a URL query string (what `GET /audit?…` carries): `fingerprint`,
    /// `jti`, `subject`, `client`, `issuer`, `address`, `action`, `outcome`, `keyset_version`, `since` and `until`
    /// (Unix seconds), `limit`, `after` (a cursor), `report` (`token`, `subject`,
    /// `rejections`: see [`report`](Self::report)); percent-encoded as forms are. A raw
    /// token is never taken from a URL (proxies log them): ask by its fingerprint.
    ///
    /// ```
    /// use tokenlife_core::audit_store::AuditQuery;
    /// assert!(AuditQuery::from_query("subject=alice%40example.com&limit=10").is_ok());
    /// assert_eq!(AuditQuery::from_query("limit=ten").unwrap_err().field(), Some("limit"));
    /// assert_eq!(AuditQuery::from_query("token=abc").unwrap_err().field(), Some("query"));
    /// ```
    ///
    /// # Errors
    /// [`InvalidFilter`](super::AuditStoreErrorKind::InvalidFilter) naming the field (an
    /// unknown or repeated parameter, or bad percent-encoding, is `query`).
    pub fn from_query(qs: &str) -> Result<Self, AuditStoreError> {
        let mut q = Self::new();
        let mut seen: Vec<&str> = Vec::new();
        for pair in qs.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if seen.contains(&k) || seen.len() >= 16 {
                return Err(AuditStoreError::filter("query"));
            }
            seen.push(k);
            let v = crate::form::decode(v).ok_or_else(|| AuditStoreError::filter("query"))?;
            let secs = |field| {
                v.parse::<u64>()
                    .map(|s| UNIX_EPOCH + Duration::from_secs(s))
                    .map_err(|_| AuditStoreError::filter(field))
            };
            q = match k {
                "fingerprint" => q.fingerprint(v.clone()),
                "subject" => q.subject(v.clone()),
                "client" => q.client(v.clone()),
                "jti" => q.jti(v.clone()),
                "issuer" => q.issuer(v.clone()),
                "address" => q.address(v.clone()),
                "action" => q.action(v.clone()),
                "outcome" => q.outcome(v.clone()),
                "keyset_version" => q.keyset_version(
                    v.parse()
                        .map_err(|_| AuditStoreError::filter("keyset_version"))?,
                ),
                "since" => q.since(secs("since")?),
                "until" => q.until(secs("until")?),
                "limit" => q.limit(v.parse().map_err(|_| AuditStoreError::filter("limit"))?),
                "after" => q.after(AuditCursor::parse(&v)?),
                "report" => {
                    q.report = Some(v.clone());
                    q
                }
                _ => return Err(AuditStoreError::filter("query")),
            };
        }
        Ok(q)
    }

    /// The named report a query string asked for (`report=`), from its other
    /// parameters: `token` takes `fingerprint`; `subject` takes `subject`, `since`
    /// (default: a day before `until`) and `until`; `rejections` takes `keyset_version`,
    /// `since` (default: a day before `until`) and `until`. `None` for a page query.
    ///
    /// ```
    /// use tokenlife_core::audit_store::{AuditQuery, AuditReport};
    /// let q = AuditQuery::from_query("report=token&fingerprint=00112233445566778899aabbccddeeff").unwrap();
    /// assert!(matches!(q.report(), Some(Ok(AuditReport::TokenLife { .. }))));
    /// let q = AuditQuery::from_query("report=subject").unwrap();
    /// assert_eq!(q.report().unwrap().unwrap_err().field(), Some("subject"));
    /// ```
    ///
    /// # Errors
    /// [`InvalidFilter`](super::AuditStoreErrorKind::InvalidFilter) naming the missing
    /// or unknown field (`report` for an unknown report).
    pub fn report(&self) -> Option<Result<AuditReport, AuditStoreError>> {
        let name = self.report.as_deref()?;
        let day_before =
            |u: Option<SystemTime>| u.unwrap_or_else(SystemTime::now) - Duration::from_secs(86_400);
        let report = match name {
            "token" => self
                .fingerprint
                .clone()
                .map(|fingerprint| AuditReport::TokenLife { fingerprint })
                .ok_or_else(|| AuditStoreError::filter("fingerprint")),
            "subject" => self
                .subject
                .clone()
                .map(|subject| AuditReport::Subject {
                    subject,
                    since: self.since.unwrap_or_else(|| day_before(self.until)),
                    until: self.until,
                })
                .ok_or_else(|| AuditStoreError::filter("subject")),
            "rejections" => self
                .keyset_version
                .map(|v| AuditReport::Rejections {
                    keyset_version: v.unsigned_abs(),
                    since: self.since.unwrap_or_else(|| day_before(self.until)),
                    until: self.until,
                })
                .ok_or_else(|| AuditStoreError::filter("keyset_version")),
            _ => Err(AuditStoreError::filter("report")),
        };
        Some(report.and_then(|r| r.check().map(|()| r)))
    }

    /// Checks the filters: lengths, the page size, the time range (`until` after
    /// `since`; without a selective filter — token, `jti`, subject, client, address, keyset version — a
    /// `since` no more than [`MAX_BROAD_RANGE`] before `until` or now).
    ///
    /// # Errors
    /// [`InvalidFilter`](super::AuditStoreErrorKind::InvalidFilter) naming the field.
    pub fn check(&self) -> Result<(), AuditStoreError> {
        if let Some(fp) = &self.fingerprint
            && (fp.len() != 32 || !fp.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(AuditStoreError::filter("fingerprint"));
        }
        for (field, v) in [
            ("subject", &self.subject),
            ("client", &self.client),
            ("jti", &self.jti),
            ("issuer", &self.issuer),
            ("address", &self.address),
            ("action", &self.action),
            ("outcome", &self.outcome),
        ] {
            if let Some(v) = v {
                text(field, v)?;
            }
        }
        if self.limit.is_some_and(|n| n == 0 || n > MAX_PAGE) {
            return Err(AuditStoreError::filter("limit"));
        }
        if let (Some(s), Some(u)) = (self.since, self.until)
            && u <= s
        {
            return Err(AuditStoreError::filter("until"));
        }
        let selective = self.fingerprint.is_some()
            || self.subject.is_some()
            || self.client.is_some()
            || self.jti.is_some()
            || self.address.is_some()
            || self.keyset_version.is_some();
        if !selective {
            let end = self.until.unwrap_or_else(SystemTime::now);
            match self.since {
                Some(s) if end.duration_since(s).unwrap_or_default() <= MAX_BROAD_RANGE => {}
                _ => return Err(AuditStoreError::filter("since")),
            }
        }
        Ok(())
    }
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl PgAuditStore {
    /// Answers `q`: one page, newest first. Every filter is a bound parameter.
    ///
    /// # Errors
    /// [`InvalidFilter`](super::AuditStoreErrorKind::InvalidFilter) naming the field
    /// (see [`AuditQuery::check`]); [`Database`](super::AuditStoreErrorKind::Database).
    pub fn query(&self, q: &AuditQuery) -> Result<AuditPage, AuditStoreError> {
        q.check()?;
        self.retrying(|| self.query_once(q))
    }

    fn query_once(&self, q: &AuditQuery) -> Result<AuditPage, AuditStoreError> {
        let limit = q.limit.unwrap_or(100);
        let mut clauses: Vec<String> = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        let mut push = |clause: &str, value: Box<dyn ToSql + Sync>| {
            params.push(value);
            clauses.push(clause.replace('?', &format!("${}", params.len())));
        };
        if let Some(v) = &q.fingerprint {
            push("fingerprint = ?", Box::new(v.to_ascii_lowercase()));
        }
        for (col, v) in [
            ("subject", &q.subject),
            ("client", &q.client),
            ("jti", &q.jti),
            ("issuer", &q.issuer),
            ("address", &q.address),
            ("action", &q.action),
            ("outcome", &q.outcome),
        ] {
            if let Some(v) = v {
                push(&format!("{col} = ?"), Box::new(v.clone()));
            }
        }
        if let Some(v) = q.keyset_version {
            push("keyset_version = ?", Box::new(v));
        }
        if let Some(t) = q.since {
            push("at >= ?", Box::new(t));
        }
        if let Some(t) = q.until {
            push("at < ?", Box::new(t));
        }
        if let Some(c) = &q.after {
            let (m, id) =
                AuditCursor::split(&c.0).ok_or_else(|| AuditStoreError::filter("after"))?;
            params.push(Box::new(
                UNIX_EPOCH + Duration::from_micros(u64::try_from(m).unwrap_or(0)),
            ));
            params.push(Box::new(id));
            clauses.push(format!(
                "(at, event_id) < (${}, ${})",
                params.len() - 1,
                params.len()
            ));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM {}.tokenlife_audit {filter} ORDER BY at DESC, event_id DESC LIMIT {}",
            self.schema,
            limit + 1
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p).collect();
        let rows = self.client()?.query(&sql, &refs).map_err(db)?;
        let mut out: Vec<AuditRow> = Vec::with_capacity(rows.len().min(limit));
        let mut cursor = None;
        for (i, r) in rows.iter().enumerate() {
            if i == limit {
                break;
            }
            let row = row_of(r);
            let at: SystemTime = r.get(1);
            cursor = Some(AuditCursor(format!("{}.{}", micros(at), row.event_id)));
            out.push(row);
        }
        let next = if rows.len() > limit { cursor } else { None };
        Ok(AuditPage { rows: out, next })
    }
}

impl PgAuditStore {
    /// Answers a `GET /audit` query string: a named report when it asks for one
    /// ([`AuditQuery::report`]), else a page of rows ([`AuditPage`]), as JSON.
    ///
    /// # Errors
    /// [`InvalidFilter`](super::AuditStoreErrorKind::InvalidFilter) naming the field;
    /// [`Database`](super::AuditStoreErrorKind::Database).
    pub fn search(&self, query_string: &str) -> Result<serde_json::Value, AuditStoreError> {
        let q = AuditQuery::from_query(query_string)?;
        let value = match q.report() {
            Some(report) => return self.report(&report?),
            None => serde_json::to_value(self.query(&q)?),
        };
        value.map_err(|e| AuditStoreError::new(super::AuditStoreErrorKind::Database, e))
    }
}
