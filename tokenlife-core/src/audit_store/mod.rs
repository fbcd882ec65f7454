//! A durable audit trail on PostgreSQL (feature `postgres`): every audit record the
//! [`Auditor`](crate::observe::audit::Auditor) emits, in a table an operator can ask
//! questions of ("how and when was this token used", a subject's tokens in a window,
//! what a keyset version rejected).
//!
//! - [`PgAuditStore`] connects, applies the embedded, versioned migrations (under an
//!   advisory lock, so the nodes of a fleet starting at once apply each once), creates
//!   the daily partitions and drops the old ones ([`PgAuditStore::drop_before`]), and
//!   answers [`AuditQuery`]s.
//! - [`PgAuditSink`] is an [`AuditSink`](crate::observe::audit::AuditSink): the auditor's
//!   background lane hands it each record, and it never waits on the database — records
//!   go into a bounded queue drained by a writer thread of its own, in batches (binary
//!   `COPY` into a temporary table, then one `INSERT … ON CONFLICT DO NOTHING`, so a batch
//!   retried after a lost acknowledgement is not stored twice). While PostgreSQL is
//!   down, batches go to a spool file when one is configured
//!   ([`PgAuditSinkBuilder::spool`]: append-only, checksummed, synced per batch, replayed
//!   in order once the database answers, by this process or the next); without one, the
//!   batch in hand is retried with a backoff and new records queue up. What neither the
//!   queue nor the spool can hold is dropped and counted ([`PgAuditSink::dropped`]), never
//!   silently.
//!
//! Rows carry the keyed fingerprint of a token, never the token; the subject as it is, or
//! a keyed hash of it ([`PgAuditSinkBuilder::pseudonymise`]); and the node that wrote
//! them, so every node of a fleet can write to one database.
//!
//! Why the synchronous `postgres` client: the sink runs on threads of its own (the
//! auditor's lane and its writer), never on an async runtime, and binary `COPY` is its
//! fast path; one connection per writer, one for queries.

mod query;
mod report;
mod row;
mod sink;
mod spool;

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use query::{AuditCursor, AuditPage, AuditQuery, MAX_BROAD_RANGE, MAX_PAGE};
pub use report::{AuditReport, Rejections, SubjectReport, SubjectToken, TokenLife, Usage};
pub use row::AuditRow;
pub use sink::{PgAuditSink, PgAuditSinkBuilder};

use crate::error::BoxError;

/// Why the audit store refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditStoreErrorKind {
    /// PostgreSQL could not be reached or refused the connection.
    Connect,
    /// A migration failed (nothing of it was applied).
    Migrate,
    /// A query or a write failed.
    Database,
    /// A filter of an [`AuditQuery`] is malformed or out of bounds
    /// ([`AuditStoreError::field`] names it).
    InvalidFilter,
    /// A schema name that is not a plain lower-case identifier.
    InvalidSchema,
    /// The spool file could not be opened.
    Spool,
}

/// The audit store could not do what was asked.
#[derive(Debug)]
pub struct AuditStoreError {
    kind: AuditStoreErrorKind,
    field: Option<&'static str>,
    source: Option<BoxError>,
}

impl AuditStoreError {
    pub(crate) fn new(kind: AuditStoreErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            field: None,
            source: Some(source.into()),
        }
    }

    pub(crate) fn schema() -> Self {
        Self {
            kind: AuditStoreErrorKind::InvalidSchema,
            field: None,
            source: None,
        }
    }

    pub(crate) fn filter(field: &'static str) -> Self {
        Self {
            kind: AuditStoreErrorKind::InvalidFilter,
            field: Some(field),
            source: None,
        }
    }

    /// Whether the database closed the connection under the query (an I/O error).
    fn lost_connection(&self) -> bool {
        self.source
            .as_deref()
            .and_then(|e| e.downcast_ref::<postgres::Error>())
            .is_some_and(|e| {
                e.is_closed()
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            })
    }

    /// Why.
    pub fn kind(&self) -> AuditStoreErrorKind {
        self.kind
    }

    /// For [`AuditStoreErrorKind::InvalidFilter`]: the filter at fault.
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }
}

impl fmt::Display for AuditStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.field) {
            (AuditStoreErrorKind::InvalidFilter, Some(field)) => {
                write!(f, "invalid audit filter: {field}")
            }
            (AuditStoreErrorKind::Connect, _) => f.write_str("audit store unreachable"),
            (AuditStoreErrorKind::Migrate, _) => f.write_str("audit store migration failed"),
            (AuditStoreErrorKind::InvalidSchema, _) => f.write_str("invalid audit schema name"),
            _ => f.write_str("audit store query failed"),
        }
    }
}

impl std::error::Error for AuditStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(crate::error::as_source)
    }
}

/// The embedded migrations, in order: `(version, SQL)`. `{s}` is the schema. A database
/// holds the versions it applied in `{s}.tokenlife_audit_migrations`; a migration is
/// never edited once released, only followed by another.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r"
CREATE TABLE IF NOT EXISTS {s}.tokenlife_audit (
    event_id bytea NOT NULL,
    at timestamptz NOT NULL,
    action text NOT NULL,
    outcome text NOT NULL,
    reason text,
    token_kind text,
    fingerprint text,
    subject text,
    client text,
    kid text,
    alg text,
    keyset_version bigint,
    alert text,
    node text NOT NULL,
    detail jsonb,
    PRIMARY KEY (at, event_id)
) PARTITION BY RANGE (at);
CREATE INDEX IF NOT EXISTS tokenlife_audit_fingerprint ON {s}.tokenlife_audit (fingerprint, at);
CREATE INDEX IF NOT EXISTS tokenlife_audit_subject ON {s}.tokenlife_audit (subject, at);
CREATE INDEX IF NOT EXISTS tokenlife_audit_version ON {s}.tokenlife_audit (keyset_version, outcome, at);
CREATE INDEX IF NOT EXISTS tokenlife_audit_action ON {s}.tokenlife_audit (action, at);
",
    ),
    (
        2,
        r"
ALTER TABLE {s}.tokenlife_audit ADD COLUMN IF NOT EXISTS jti text;
ALTER TABLE {s}.tokenlife_audit ADD COLUMN IF NOT EXISTS issuer text;
ALTER TABLE {s}.tokenlife_audit ADD COLUMN IF NOT EXISTS address text;
CREATE INDEX IF NOT EXISTS tokenlife_audit_jti ON {s}.tokenlife_audit (jti, at);
",
    ),
    (
        3,
        r"
ALTER TABLE {s}.tokenlife_audit ADD COLUMN IF NOT EXISTS trace_id text;
",
    ),
];

/// The columns every write and read names, in this order.
pub(crate) const COLUMNS: &str = "event_id, at, action, outcome, reason, token_kind, fingerprint, \
     subject, client, kid, alg, keyset_version, alert, node, detail, jti, issuer, address, trace_id";

/// Connections a store keeps for queries at most.
pub const POOL_SIZE: usize = 4;

/// The audit database, for migrations, partitions, retention and queries. Cheap to share
/// behind an `Arc`: queries run on a small pool of connections ([`POOL_SIZE`]), each
/// made when first needed and made again when it was lost (a database restarted), so
/// concurrent questions do not queue behind one another and an outage ends by itself.
pub struct PgAuditStore {
    schema: String,
    /// It may hold a password: wiped on drop, never shown.
    url: zeroize::Zeroizing<String>,
    slots: Box<[Mutex<Option<postgres::Client>>]>,
    next: AtomicUsize,
}

/// The synchronous client owns a runtime of its own, which may not be dropped on an
/// async worker: the connections go on a thread of their own.
impl Drop for PgAuditStore {
    fn drop(&mut self) {
        let clients: Vec<postgres::Client> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.get_mut().unwrap_or_else(|p| p.into_inner()).take())
            .collect();
        if !clients.is_empty() {
            let _ = std::thread::Builder::new()
                .name("tokenlife-audit-drop".into())
                .spawn(move || drop(clients));
        }
    }
}

impl fmt::Debug for PgAuditStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgAuditStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

pub(crate) fn connect(url: &str) -> Result<postgres::Client, AuditStoreError> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| AuditStoreError::new(AuditStoreErrorKind::Connect, e))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config
        .connect(postgres::NoTls)
        .map_err(|e| AuditStoreError::new(AuditStoreErrorKind::Connect, e))
}

fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 48
        && schema.starts_with(|c: char| c.is_ascii_lowercase())
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The day (Unix days) of `at`.
fn day_of(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| {
        i64::try_from(d.as_secs() / 86_400).unwrap_or(i64::MAX)
    })
}

impl PgAuditStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`), tables in the
    /// `public` schema, and applies the migrations this version knows.
    ///
    /// # Errors
    /// [`AuditStoreErrorKind::Connect`] or [`AuditStoreErrorKind::Migrate`].
    pub fn connect(url: &str) -> Result<Self, AuditStoreError> {
        Self::connect_in(url, "public")
    }

    /// As [`connect`](Self::connect), with the tables in `schema` (created if missing; a
    /// plain lower-case identifier): one database for several deployments, or a test each.
    ///
    /// # Errors
    /// [`AuditStoreErrorKind::InvalidSchema`], then as for [`connect`](Self::connect).
    pub fn connect_in(url: &str, schema: &str) -> Result<Self, AuditStoreError> {
        if !valid_schema(schema) {
            return Err(AuditStoreError::schema());
        }
        let first = connect(url)?;
        let store = Self {
            schema: schema.to_owned(),
            url: zeroize::Zeroizing::new(url.to_owned()),
            slots: std::iter::once(Some(first))
                .chain(std::iter::repeat_with(|| None))
                .take(POOL_SIZE)
                .map(Mutex::new)
                .collect(),
            next: AtomicUsize::new(0),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A connection of the pool: a free one if there is one, else the next in turn
    /// once it is free; (re)connected when it was never made or has been lost.
    fn client(&self) -> Result<ClientGuard<'_>, AuditStoreError> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let free = (0..n).find_map(|i| match self.slots[(start + i) % n].try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        });
        let mut guard = match free {
            Some(g) => g,
            None => self.slots[start % n]
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        };
        if guard.as_ref().is_none_or(postgres::Client::is_closed) {
            *guard = None;
            *guard = Some(connect(&self.url)?);
        }
        Ok(ClientGuard(guard))
    }

    /// Runs `f`, and once more when it failed on a connection the database had closed
    /// (a restart since it was last used): the pool's idle connections are dropped first,
    /// to be made again as they are taken.
    pub(crate) fn retrying<T>(
        &self,
        f: impl Fn() -> Result<T, AuditStoreError>,
    ) -> Result<T, AuditStoreError> {
        match f() {
            Err(e) if e.kind == AuditStoreErrorKind::Database && e.lost_connection() => {
                // The database went away since: its other idle connections are gone too.
                for slot in &*self.slots {
                    if let Ok(mut c) = slot.try_lock() {
                        *c = None;
                    }
                }
                f()
            }
            other => other,
        }
    }

    /// The migration versions applied, in order.
    ///
    /// # Errors
    /// [`AuditStoreErrorKind::Database`].
    pub fn migrations(&self) -> Result<Vec<i32>, AuditStoreError> {
        let sql = format!(
            "SELECT version FROM {}.tokenlife_audit_migrations ORDER BY version",
            self.schema
        );
        let rows = self.client()?.query(&sql, &[]).map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Applies the migrations not yet applied, each in its own transaction, under a
    /// transaction-level advisory lock (nodes starting at once take turns).
    fn migrate(&self) -> Result<(), AuditStoreError> {
        let s = &self.schema;
        let mut client = self.client()?;
        let mig = |e| AuditStoreError::new(AuditStoreErrorKind::Migrate, e);
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s};
                 CREATE TABLE IF NOT EXISTS {s}.tokenlife_audit_migrations (
                     version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            ))
            .map_err(mig)?;
        for (version, sql) in MIGRATIONS {
            let mut tx = client.transaction().map_err(mig)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('tokenlife_audit_migrate'))",
                &[],
            )
            .map_err(mig)?;
            let done: i64 = tx
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {s}.tokenlife_audit_migrations WHERE version = $1"
                    ),
                    &[version],
                )
                .map_err(mig)?
                .get(0);
            if done == 0 {
                tx.batch_execute(&sql.replace("{s}", s)).map_err(mig)?;
                tx.execute(
                    &format!("INSERT INTO {s}.tokenlife_audit_migrations (version) VALUES ($1)"),
                    &[version],
                )
                .map_err(mig)?;
            }
            tx.commit().map_err(mig)?;
        }
        Ok(())
    }

    /// The daily partitions, by first day (Unix days), oldest first.
    ///
    /// # Errors
    /// [`AuditStoreErrorKind::Database`].
    pub fn partitions(&self) -> Result<Vec<i64>, AuditStoreError> {
        let rows = self
            .client()?
            .query(
                "SELECT c.relname FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 JOIN pg_namespace n ON n.oid = p.relnamespace
                 WHERE p.relname = 'tokenlife_audit' AND n.nspname = $1",
                &[&self.schema],
            )
            .map_err(db)?;
        let mut days: Vec<i64> = rows
            .iter()
            .filter_map(|r| {
                r.get::<_, String>(0)
                    .strip_prefix("tokenlife_audit_d")
                    .and_then(|d| d.parse().ok())
            })
            .collect();
        days.sort_unstable();
        Ok(days)
    }

    /// Drops every daily partition that ends at or before `cutoff`: retention by whole
    /// days, no row-by-row delete. Returns how many partitions went.
    ///
    /// # Errors
    /// [`AuditStoreErrorKind::Database`].
    pub fn drop_before(&self, cutoff: SystemTime) -> Result<usize, AuditStoreError> {
        let last = day_of(cutoff);
        let mut dropped = 0;
        for day in self.partitions()? {
            if day < last {
                self.client()?
                    .batch_execute(&format!(
                        "DROP TABLE IF EXISTS {}.tokenlife_audit_d{day}",
                        self.schema
                    ))
                    .map_err(db)?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

/// The store's connection, taken in turn.
struct ClientGuard<'a>(std::sync::MutexGuard<'a, Option<postgres::Client>>);

impl std::ops::Deref for ClientGuard<'_> {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("a guard is handed out connected"))
    }
}

impl std::ops::DerefMut for ClientGuard<'_> {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("a guard is handed out connected"))
    }
}

/// Creates the partition of `day` (Unix days) if it does not exist.
pub(crate) fn ensure_partition(
    client: &mut postgres::Client,
    schema: &str,
    day: i64,
) -> Result<(), postgres::Error> {
    let from = day.saturating_mul(86_400);
    let to = from.saturating_add(86_400);
    client.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {schema}.tokenlife_audit_d{day}
         PARTITION OF {schema}.tokenlife_audit
         FOR VALUES FROM (to_timestamp({from})) TO (to_timestamp({to}))"
    ))
}

fn db(e: postgres::Error) -> AuditStoreError {
    AuditStoreError::new(AuditStoreErrorKind::Database, e)
}
