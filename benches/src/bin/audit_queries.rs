//! The audit store's questions against a large table: a token's whole life and a
//! subject's 24-hour report, p50/p99 latency with ROWS rows stored.
//!
//! ```text
//! cargo run --release -p benches --bin audit_queries -- [ROWS] [URL]
//! ```
//!
//! Default 10,000,000 rows into `postgres://postgres@127.0.0.1:5432/test`, in a schema
//! `bench_q<ROWS>` kept between runs (filled once; `DROP SCHEMA bench_q10000000 CASCADE`
//! to start over). The table is the store's own (its migrations, daily partitions): ten
//! days; 1,000,000 tokens of 100,000 subjects, each issued once, then used (rollup rows
//! every few minutes, as `UsageRollup` writes them) and sometimes refused — the mix a
//! busy gateway leaves. Then 1,000 random tokens' lives and 300 random subjects' 24 h
//! reports are asked through `PgAuditStore`, each timed alone.

use std::time::{Duration, Instant, UNIX_EPOCH};

use tokenlife_core::audit_store::PgAuditStore;

const DAYS: i64 = 10;
const TOKENS: i64 = 1_000_000;
const SUBJECTS: i64 = 100_000;
const T0: i64 = 1_790_000_000 / 86_400 * 86_400;

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// A small deterministic generator (xorshift), so runs ask the same questions.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        #[allow(clippy::cast_possible_wrap)]
        let r = (self.0 >> 1) as i64;
        r % n
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: i64 = args.next().map_or(Ok(10_000_000), |a| a.parse())?;
    let url = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("bench_q{rows}");
    let store = PgAuditStore::connect_in(&url, &schema)?;
    let mut c = postgres::Client::connect(&url, postgres::NoTls)?;
    let have: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM {schema}.tokenlife_audit"),
            &[],
        )?
        .get(0);
    if have != rows {
        let start = Instant::now();
        c.batch_execute(&format!("TRUNCATE {schema}.tokenlife_audit"))?;
        for d in 0..DAYS {
            let day = T0 / 86_400 + d;
            c.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {schema}.tokenlife_audit_d{day}
                 PARTITION OF {schema}.tokenlife_audit
                 FOR VALUES FROM (to_timestamp({})) TO (to_timestamp({}))",
                day * 86_400,
                (day + 1) * 86_400
            ))?;
        }
        // Row g: the first TOKENS rows issue token g (spread over the ten days); the rest
        // are uses of token g % TOKENS (80 %: a rollup row) or refusals (20 %), after its
        // issue. md5 gives 32 hex digits, a fingerprint's shape.
        let span = DAYS * 86_400;
        c.batch_execute(&format!(
            "INSERT INTO {schema}.tokenlife_audit
               (event_id, at, action, outcome, reason, token_kind, fingerprint, subject,
                client, keyset_version, node, detail)
             SELECT decode(md5('e' || g), 'hex'),
                    to_timestamp({T0} + least({span} - 1,
                        (g % {TOKENS}) * ({span} / 2) / {TOKENS}
                        + CASE WHEN g < {TOKENS} THEN 0
                               ELSE (g / {TOKENS}) * 600 + (g % 97) END)),
                    CASE WHEN g < {TOKENS} THEN 'token_issued'
                         WHEN g % 5 = 0 THEN 'validation_failed' ELSE 'token_used' END,
                    CASE WHEN g >= {TOKENS} AND g % 5 = 0 THEN 'failure' ELSE 'ok' END,
                    CASE WHEN g >= {TOKENS} AND g % 5 = 0 THEN 'expired' END,
                    'access',
                    md5('t' || (g % {TOKENS})),
                    CASE WHEN g < {TOKENS} THEN 'user-' || (g % {SUBJECTS}) END,
                    '10.0.' || (g % 7) || '.' || (g % 251),
                    1 + (g % {TOKENS}) * 5 / {TOKENS},
                    'node-' || (g % 3),
                    CASE WHEN g >= {TOKENS} AND g % 5 <> 0 THEN jsonb_build_object(
                        'first_seen', {T0}, 'last_seen', {T0} + g % 1000, 'count', 1 + g % 50,
                        'clients', jsonb_build_array('10.0.' || (g % 7) || '.' || (g % 251)),
                        'more_clients', false) END
             FROM generate_series(0::bigint, {rows} - 1) AS g"
        ))?;
        c.batch_execute(&format!("ANALYZE {schema}.tokenlife_audit"))?;
        println!(
            "filled {rows} rows in {:.0} s",
            start.elapsed().as_secs_f64()
        );
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Warm the caches the way a running service has them.
    for _ in 0..50 {
        let fp: String = c
            .query_one("SELECT md5('t' || $1::bigint)", &[&rng.below(TOKENS)])?
            .get(0);
        store.token_life(&fp)?;
    }
    let mut life = Vec::new();
    let mut events = 0;
    for _ in 0..1_000 {
        let fp: String = c
            .query_one("SELECT md5('t' || $1::bigint)", &[&rng.below(TOKENS)])?
            .get(0);
        let t = Instant::now();
        let l = store.token_life(&fp)?;
        life.push(t.elapsed());
        events += l.events.len();
    }
    let mut subject = Vec::new();
    let mut tokens = 0;
    for _ in 0..300 {
        let s = format!("user-{}", rng.below(SUBJECTS));
        #[allow(clippy::cast_sign_loss)]
        let since = UNIX_EPOCH + Duration::from_secs((T0 + rng.below(DAYS - 1) * 86_400) as u64);
        let t = Instant::now();
        let r = store.subject_report(&s, since, Some(since + Duration::from_secs(86_400)))?;
        subject.push(t.elapsed());
        tokens += r.tokens.len();
    }
    println!(
        "rows {rows}: token life p50 {:.2} ms p99 {:.2} ms ({} events/token avg); \
         subject 24 h report p50 {:.2} ms p99 {:.2} ms ({:.1} tokens/report avg)",
        percentile(life.clone(), 0.5).as_secs_f64() * 1e3,
        percentile(life, 0.99).as_secs_f64() * 1e3,
        events / 1_000,
        percentile(subject.clone(), 0.5).as_secs_f64() * 1e3,
        percentile(subject, 0.99).as_secs_f64() * 1e3,
        f64::from(u32::try_from(tokens).unwrap_or(u32::MAX)) / 300.0,
    );
    Ok(())
}
