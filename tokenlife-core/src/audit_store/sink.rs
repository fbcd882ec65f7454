//! [`PgAuditSink`]: audit records into PostgreSQL, off every request path.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use super::row::Row;
use super::{COLUMNS, day_of, ensure_partition};
use crate::observe::audit::{AuditEvent, AuditSink};

enum Msg {
    Row(Box<Row>),
    Flush(SyncSender<()>),
}

/// The column types of a row, in [`COLUMNS`] order.
const TYPES: [Type; 19] = [
    Type::BYTEA,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
];

/// An [`AuditSink`] writing to PostgreSQL through a writer thread of its own (see the
/// [module](super)). Give it to [`AuditorBuilder::sink`](crate::observe::audit::AuditorBuilder::sink).
pub struct PgAuditSink {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    spooled: Arc<AtomicU64>,
    pseudonym: Option<[u8; 32]>,
    flush_wait: Duration,
}

impl fmt::Debug for PgAuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgAuditSink")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .field("written", &self.written.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Builds a [`PgAuditSink`].
#[must_use]
pub struct PgAuditSinkBuilder {
    url: String,
    schema: String,
    node: String,
    capacity: usize,
    batch: usize,
    linger: Duration,
    pseudonym: Option<[u8; 32]>,
    flush_wait: Duration,
    spool: Option<(std::path::PathBuf, u64)>,
}

impl fmt::Debug for PgAuditSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgAuditSinkBuilder")
            .field("schema", &self.schema)
            .field("node", &self.node)
            .field("capacity", &self.capacity)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl PgAuditSink {
    /// A sink writing into the database at `url`, schema `public`, as node `node` (every
    /// node of a fleet may write to one database). Connect a [`PgAuditStore`](super::PgAuditStore)
    /// to it first: that applies the migrations.
    pub fn builder(url: impl Into<String>, node: impl Into<String>) -> PgAuditSinkBuilder {
        PgAuditSinkBuilder {
            url: url.into(),
            schema: "public".into(),
            node: node.into(),
            capacity: 100_000,
            batch: 5_000,
            linger: Duration::from_millis(100),
            pseudonym: None,
            flush_wait: Duration::from_secs(10),
            spool: None,
        }
    }

    /// Records dropped because the queue was full (PostgreSQL down or slower than the
    /// traffic): counted, never silent.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Records stored so far.
    pub fn written(&self) -> Arc<AtomicU64> {
        self.written.clone()
    }

    /// Records waiting in the spool file for the database to come back
    /// ([`PgAuditSinkBuilder::spool`]).
    pub fn spooled(&self) -> Arc<AtomicU64> {
        self.spooled.clone()
    }

    fn row(&self, e: &AuditEvent) -> Row {
        let mut event_id = [0u8; 16];
        if getrandom::fill(&mut event_id).is_err() {
            // No random source: an id from the clock and a counter is still unique here.
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            event_id[..8].copy_from_slice(&n.to_le_bytes());
            event_id[8..].copy_from_slice(&(t as u64).to_le_bytes());
        }
        let subject = e.subject.as_deref().map(|s| match &self.pseudonym {
            Some(key) => format!("h:{}", blake3::keyed_hash(key, s.as_bytes()).to_hex()),
            None => s.to_owned(),
        });
        let action = serde_json::to_value(e.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let detail = e.detail.as_deref().map(|d| {
            serde_json::from_str::<serde_json::Value>(d)
                .ok()
                .filter(serde_json::Value::is_object)
                .unwrap_or_else(|| serde_json::json!({ "text": d }))
        });
        Row {
            event_id,
            at: UNIX_EPOCH + Duration::from_secs(e.at),
            action,
            outcome: e.outcome.to_owned(),
            reason: e.reason.map(str::to_owned),
            token_kind: e.token_kind.map(|k| k.as_str().to_owned()),
            fingerprint: e.fingerprint.map(|f| f.to_string()),
            subject,
            client: e.client.clone(),
            kid: e.kid.clone(),
            alg: e.alg.map(|a| format!("{a:?}")),
            keyset_version: e
                .keyset_version
                .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            alert: e.alert.map(|a| a.as_str().to_owned()),
            detail,
            jti: e.jti.clone(),
            issuer: e.issuer.clone(),
            address: e.address.clone(),
            trace_id: e.trace_id.clone(),
        }
    }
}

impl AuditSink for PgAuditSink {
    /// Queues the record; a full queue drops it and counts it. Never waits.
    fn write(&mut self, event: &AuditEvent) {
        let row = Box::new(self.row(event));
        match self.tx.try_send(Msg::Row(row)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits (at most the flush wait, 10 s by default) until every record queued before
    /// is stored: what [`Auditor::flush`](crate::observe::audit::Auditor::flush) asks.
    fn flush(&mut self) {
        let deadline = Instant::now() + self.flush_wait;
        let (ack, done) = mpsc::sync_channel(1);
        let mut msg = Msg::Flush(ack);
        // The queue may be full (the database down): wait for room, within the bound.
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => {
                    let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
                    return;
                }
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
    }
}

impl PgAuditSinkBuilder {
    /// The schema the tables live in (as given to
    /// [`PgAuditStore::connect_in`](super::PgAuditStore::connect_in)).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Records queued for the writer at most (default 100,000); past it they are dropped
    /// and counted.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }

    /// Records per batch at most (default 5,000).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// How long a partial batch waits for more records (default 100 ms).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Stores subjects as a keyed hash (`h:` and 64 hex digits of BLAKE3 keyed with
    /// `key`) instead of in the clear: the same subject is the same value, so a subject's
    /// history is still one query for whoever holds the key (see
    /// [`AuditQuery::pseudonymised_subject`](super::AuditQuery::pseudonymised_subject)).
    pub fn pseudonymise(mut self, key: [u8; 32]) -> Self {
        self.pseudonym = Some(key);
        self
    }

    /// While PostgreSQL is down or refuses a batch, keep batches in a spool file in `dir`
    /// (`tokenlife-audit-<node>.spool`: append-only, each batch checksummed and synced to
    /// disk before the next) of at most `max_bytes`, and replay them in order once it
    /// answers — a batch stored twice is stored once (event ids). New batches queue behind
    /// the spooled ones, so the order holds; when the spool is full, records are dropped
    /// and counted ([`PgAuditSink::dropped`]). A spool left by a stopped process is
    /// replayed by the next one. Without a spool the writer holds its batch and retries.
    pub fn spool(mut self, dir: impl Into<std::path::PathBuf>, max_bytes: u64) -> Self {
        self.spool = Some((dir.into(), max_bytes));
        self
    }

    /// The longest a flush waits for the writer (default 10 s).
    pub fn flush_wait(mut self, wait: Duration) -> Self {
        self.flush_wait = wait;
        self
    }

    /// Starts the writer thread. It connects by itself (and again after any failure),
    /// so a database down at start costs no start.
    ///
    /// # Errors
    /// [`InvalidSchema`](super::AuditStoreErrorKind::InvalidSchema) for a schema that is
    /// not a plain lower-case identifier.
    ///
    /// # Panics
    /// If the OS cannot start a thread.
    pub fn build(self) -> Result<PgAuditSink, super::AuditStoreError> {
        if !super::valid_schema(&self.schema) {
            return Err(super::AuditStoreError::schema());
        }
        let (tx, rx) = mpsc::sync_channel(self.capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let spooled = Arc::new(AtomicU64::new(0));
        let spool = match &self.spool {
            Some((dir, max)) => Some(
                super::spool::Spool::open(dir, &self.node, *max).map_err(|e| {
                    super::AuditStoreError::new(super::AuditStoreErrorKind::Spool, e)
                })?,
            ),
            None => None,
        };
        if let Some(s) = &spool {
            spooled.store(s.records(), Ordering::Relaxed);
        }
        let writer = Writer {
            spool,
            dropped: dropped.clone(),
            spooled: spooled.clone(),
            retry_at: Instant::now(),
            delay: Duration::from_millis(100),
            url: self.url,
            schema: self.schema,
            node: self.node,
            batch: self.batch,
            linger: self.linger,
            written: written.clone(),
            client: None,
            days: HashSet::new(),
        };
        std::thread::Builder::new()
            .name("tokenlife-audit-pg".into())
            .spawn(move || writer.run(&rx))
            .expect("spawn the audit writer");
        Ok(PgAuditSink {
            tx,
            dropped,
            written,
            spooled,
            pseudonym: self.pseudonym,
            flush_wait: self.flush_wait,
        })
    }
}

struct Writer {
    spool: Option<super::spool::Spool>,
    dropped: Arc<AtomicU64>,
    spooled: Arc<AtomicU64>,
    /// No attempt on the database before this (after a failure).
    retry_at: Instant,
    delay: Duration,
    url: String,
    schema: String,
    node: String,
    batch: usize,
    linger: Duration,
    written: Arc<AtomicU64>,
    client: Option<postgres::Client>,
    /// Days whose partition exists.
    days: HashSet<i64>,
}

impl Writer {
    fn run(mut self, rx: &Receiver<Msg>) {
        let mut batch: Vec<Row> = Vec::with_capacity(self.batch);
        let mut acks: Vec<SyncSender<()>> = Vec::new();
        loop {
            // The first record of a batch waits as long as it takes; the rest at most
            // the linger.
            let first = if batch.is_empty() && acks.is_empty() {
                if self.spool.as_ref().is_some_and(|s| !s.is_empty()) {
                    // Spooled batches wait: wake up to replay them when it is time.
                    let wait = self.retry_at.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait.max(Duration::from_millis(10))) {
                        Ok(m) => Some(m),
                        Err(RecvTimeoutError::Timeout) => {
                            self.replay();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                } else {
                    match rx.recv() {
                        Ok(m) => Some(m),
                        Err(_) => return,
                    }
                }
            } else {
                None
            };
            let deadline = Instant::now() + self.linger;
            let mut closed = false;
            let mut next = first;
            loop {
                match next.take() {
                    Some(Msg::Row(r)) => batch.push(*r),
                    Some(Msg::Flush(ack)) => {
                        acks.push(ack);
                        break;
                    }
                    None => {}
                }
                if batch.len() >= self.batch {
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(m) => next = Some(m),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            self.store(&batch);
            batch.clear();
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
            if closed {
                return;
            }
        }
    }

    /// Stores `batch`. With a spool: older spooled batches first; a batch the database
    /// does not take (or that would overtake spooled ones) is spooled, or dropped and
    /// counted when the spool is full. Without one: retried with a backoff (100 ms doubling
    /// to 5 s) until it is in, new records waiting in the bounded queue meanwhile.
    fn store(&mut self, batch: &[Row]) {
        if batch.is_empty() {
            return;
        }
        if self.spool.is_some() {
            self.replay();
            let behind = self.spool.as_ref().is_some_and(|s| !s.is_empty());
            if !behind && Instant::now() >= self.retry_at && self.try_store(batch).is_ok() {
                self.stored(batch.len());
                return;
            }
            if !behind {
                self.failed();
            }
            let n = batch.len() as u64;
            match self.spool.as_mut().map(|s| s.append(batch)) {
                Some(Ok(true)) => {
                    self.spooled.fetch_add(n, Ordering::Relaxed);
                }
                _ => {
                    self.dropped.fetch_add(n, Ordering::Relaxed);
                }
            }
            return;
        }
        let mut delay = Duration::from_millis(100);
        loop {
            match self.try_store(batch) {
                Ok(()) => {
                    self.written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(_) => {
                    self.client = None;
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn stored(&mut self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        self.delay = Duration::from_millis(100);
    }

    /// A failed attempt: the connection goes, the next attempt waits (backoff).
    fn failed(&mut self) {
        self.client = None;
        self.retry_at = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
    }

    /// Replays the spool in order when it is time to try the database again; clears it
    /// once every batch is in (a batch stored before a failure is stored again, once).
    fn replay(&mut self) {
        let Some(spool) = self.spool.as_ref() else {
            return;
        };
        if spool.is_empty() || Instant::now() < self.retry_at {
            return;
        }
        let (batches, corrupt) = spool.read_all();
        if corrupt > 0 {
            self.dropped.fetch_add(corrupt, Ordering::Relaxed);
        }
        let mut total = 0;
        for b in &batches {
            if self.try_store(b).is_err() {
                self.failed();
                return;
            }
            total += b.len();
        }
        if let Some(s) = self.spool.as_mut()
            && s.clear().is_ok()
        {
            self.spooled.store(0, Ordering::Relaxed);
        }
        self.stored(total);
    }

    fn try_store(&mut self, batch: &[Row]) -> Result<(), Box<dyn std::error::Error>> {
        if self.client.is_none() {
            self.client = Some(super::connect(&self.url)?);
            self.days.clear();
        }
        let Some(client) = self.client.as_mut() else {
            return Err("no connection".into());
        };
        let s = &self.schema;
        for day in batch.iter().map(|r| day_of(r.at)) {
            if self.days.insert(day) {
                ensure_partition(client, s, day)?;
            }
        }
        let mut tx = client.transaction()?;
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS tokenlife_audit_in
             (LIKE {s}.tokenlife_audit) ON COMMIT DELETE ROWS"
        ))?;
        let sink = tx.copy_in(&format!(
            "COPY tokenlife_audit_in ({COLUMNS}) FROM STDIN BINARY"
        ))?;
        let mut w = BinaryCopyInWriter::new(sink, &TYPES);
        for r in batch {
            let id: &[u8] = &r.event_id;
            let values: [&(dyn ToSql + Sync); 19] = [
                &id,
                &r.at,
                &r.action,
                &r.outcome,
                &r.reason,
                &r.token_kind,
                &r.fingerprint,
                &r.subject,
                &r.client,
                &r.kid,
                &r.alg,
                &r.keyset_version,
                &r.alert,
                &self.node,
                &r.detail,
                &r.jti,
                &r.issuer,
                &r.address,
                &r.trace_id,
            ];
            w.write(&values)?;
        }
        w.finish()?;
        tx.execute(
            &format!(
                "INSERT INTO {s}.tokenlife_audit ({COLUMNS})
                 SELECT {COLUMNS} FROM tokenlife_audit_in ON CONFLICT DO NOTHING"
            ),
            &[],
        )?;
        tx.commit()?;
        Ok(())
    }
}
