//! Audit records into PostgreSQL: how many a second the sink stores, and what the
//! auditor's caller pays per record meanwhile.
//!
//! ```text
//! cargo run --release -p benches --bin audit_pg -- [RECORDS] [URL]
//! ```
//!
//! Default 500,000 records into `postgres://postgres@127.0.0.1:5432/test`, a schema of
//! its own (dropped after). Prints the records stored per second (from the first emit
//! to the flush that confirms the last), the records dropped (none expected: the queue
//! holds a second of traffic), and the emit cost per record on the caller's thread.

use std::time::{Duration, Instant, UNIX_EPOCH};

use tokenlife_core::audit_store::{AuditQuery, PgAuditSink, PgAuditStore};
use tokenlife_core::observe::audit::{AuditAction, AuditEvent, Auditor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(500_000), |a| a.parse())?;
    let url = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("bench_{}", std::process::id());
    let store = PgAuditStore::connect_in(&url, &schema)?;
    let sink = PgAuditSink::builder(url.clone(), "bench")
        .schema(&schema)
        .capacity(200_000)
        .build()?;
    let (dropped, written) = (sink.dropped(), sink.written());
    let auditor = Auditor::builder().sink(sink).capacity(200_000).build();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let start = Instant::now();
    let mut emit_time = Duration::ZERO;
    for i in 0..n {
        let e = AuditEvent::new(AuditAction::ValidationFailed, 1_790_000_000 + i / 10_000)
            .failure("expired")
            .subject(Some(&format!("user-{}", i % 5_000)))
            .client(Some("10.0.0.7"))
            .keyset_version(3);
        let t = Instant::now();
        auditor.emit(e);
        emit_time += t.elapsed();
        // Keep under the queues: emit at most what the sink has nearly taken.
        while i.saturating_sub(written.load(std::sync::atomic::Ordering::Relaxed)) > 150_000 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    auditor.flush();
    let took = start.elapsed();
    let stored = written.load(std::sync::atomic::Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let rate = stored as f64 / took.as_secs_f64();
    println!(
        "records {n}, stored {stored}, dropped {} (auditor {}), {:.1} s: {rate:.0} records/s; emit {:.0} ns/record",
        dropped.load(std::sync::atomic::Ordering::Relaxed),
        auditor.dropped(),
        took.as_secs_f64(),
        emit_time.as_nanos() as f64 / n as f64,
    );
    let page = store.query(&AuditQuery::new().subject("user-42").since(t0).limit(5))?;
    println!(
        "a subject's latest records: {} (query check)",
        page.rows.len()
    );
    drop(store);
    let mut c = postgres::Client::connect(&url, postgres::NoTls)?;
    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))?;
    Ok(())
}
