//! The audit trail on PostgreSQL (audit store issue, first part): against the machine's
//! PostgreSQL (`TOKENLIFE_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/test`),
//! each test in a schema of its own, dropped at the end. Records of a real issuer and
//! validator reach the table through the auditor's queue and the sink's writer; the
//! questions of an operator are answered page by page; filters are bounded and named
//! when refused; retention drops whole days; subjects can be pseudonymised; no row
//! holds a token; a database that is down costs the request path nothing and every
//! record it could not take is counted.
#![cfg(all(feature = "postgres", feature = "test-util"))]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokenlife_core::audit_store::{
    AuditQuery, AuditStoreErrorKind, MAX_PAGE, PgAuditSink, PgAuditStore,
};
use tokenlife_core::observe::audit::{AuditAction, AuditEvent, Auditor};
use tokenlife_core::testing::Fixture;
use tokenlife_core::{ManualClock, TokenRequest};

fn url() -> String {
    std::env::var("TOKENLIFE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema of the test's own, dropped when the test ends (also on panic).
struct Schema(String);

impl Schema {
    fn new() -> Self {
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).unwrap();
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Self(format!("t_{hex}"))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0));
        }
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn a_real_issuer_and_validator_leave_a_trail_an_operator_can_question() {
    let schema = Schema::new();
    let store = PgAuditStore::connect_in(&url(), &schema.0).unwrap();
    assert_eq!(store.migrations().unwrap(), vec![1, 2, 3]);
    // A second node starting against the same database applies nothing twice.
    let again = PgAuditStore::connect_in(&url(), &schema.0).unwrap();
    assert_eq!(again.migrations().unwrap(), vec![1, 2, 3]);

    let sink = PgAuditSink::builder(url(), "node-a")
        .schema(&schema.0)
        .build()
        .unwrap();
    let written = sink.written();
    let f = Fixture::with_sink(ManualClock::starting_now(), sink);
    let (validator, issuer, monitor, clock) = (&f.validator, &f.issuer, &f.monitor, &f.clock);
    let pair = issuer
        .issue(TokenRequest::subject("alice").client("app"))
        .unwrap();
    let access = pair.access_token.clone();
    // One character in the middle of the signature changed: a bad signature.
    let mut tampered = access.clone().into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    validator.validate(&tampered).unwrap_err();
    let refresh = pair.refresh_token.clone().unwrap();
    issuer.renew_as(&refresh, Some("app")).unwrap();
    f.audit_events();
    assert!(written.load(std::sync::atomic::Ordering::Relaxed) >= 4);

    // "How was this token used": by the raw token, through the monitor's key.
    let key = tokenlife_core::observe::Observer::fingerprint_key(monitor).unwrap();
    let page = store
        .query(&AuditQuery::new().token(&access, &key))
        .unwrap();
    assert_eq!(page.rows.len(), 1, "{:#?}", page.rows);
    let issued = &page.rows[0];
    assert_eq!(
        (
            issued.action.as_str(),
            issued.subject.as_deref(),
            issued.client.as_deref(),
            issued.kid.as_deref(),
            issued.node.as_str(),
            issued.keyset_version,
        ),
        (
            "token_issued",
            Some("alice"),
            Some("app"),
            Some("k1"),
            "node-a",
            Some(1)
        )
    );
    assert_eq!(
        issued.fingerprint,
        Some(monitor.fingerprint(&access).to_string())
    );
    // Its jti and issuer are stored, and a token is found by its jti too.
    let claims = validator.inspect(&access).unwrap();
    let jti = claims.claims().jti.clone().unwrap();
    assert_eq!(issued.jti.as_deref(), Some(jti.as_str()));
    assert_eq!(issued.issuer.as_deref(), Some(tokenlife_core::testing::ISS));
    let by_jti = store.query(&AuditQuery::new().jti(&jti)).unwrap();
    assert_eq!(by_jti.rows, page.rows);
    // A subject's records in a window: issue (access and refresh) and the renewal.
    let since = tokenlife_core::Clock::now(clock) - Duration::from_secs(3600);
    let alice = store
        .query(&AuditQuery::new().subject("alice").since(since))
        .unwrap();
    let actions: Vec<_> = alice.rows.iter().map(|r| r.action.as_str()).collect();
    assert!(actions.contains(&"token_renewed"), "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "token_issued").count(), 4);
    // Everything keyset version 1 rejected.
    let rejected = store
        .query(
            &AuditQuery::new()
                .keyset_version(1)
                .outcome("failure")
                .action("validation_failed"),
        )
        .unwrap();
    assert_eq!(rejected.rows.len(), 1);
    assert_eq!(rejected.rows[0].reason.as_deref(), Some("bad_signature"));
    // No row holds a token: the signature part of each appears nowhere.
    let all = store
        .query(&AuditQuery::new().since(since).limit(MAX_PAGE))
        .unwrap();
    let text = serde_json::to_string(&all.rows).unwrap();
    for secret in [&access, &tampered, &refresh] {
        assert!(
            !text.contains(&secret[secret.len() - 20..]),
            "a token in the trail"
        );
    }
}

#[test]
fn pages_follow_the_cursor_and_retention_drops_whole_days() {
    let schema = Schema::new();
    let store = PgAuditStore::connect_in(&url(), &schema.0).unwrap();
    let sink = PgAuditSink::builder(url(), "node-b")
        .schema(&schema.0)
        .batch_size(64)
        .build()
        .unwrap();
    let auditor = Auditor::builder().sink(sink).build();
    let day = 86_400;
    let t0 = 1_790_000_000 / day * day;
    // 250 records of bob over three days (the middle day holds most).
    for i in 0..250u64 {
        let t = t0 + day / 2 + i * 600;
        auditor.emit(
            AuditEvent::new(AuditAction::TokenIssued, t)
                .subject(Some("bob"))
                .detail(format!("n={i}")),
        );
    }
    auditor.flush();
    let mut seen = Vec::new();
    let mut q = AuditQuery::new().subject("bob").limit(100);
    let mut pages = 0;
    loop {
        let page = store.query(&q).unwrap();
        pages += 1;
        seen.extend(page.rows.iter().map(|r| (r.at, r.event_id.clone())));
        match page.next {
            Some(c) => q = AuditQuery::new().subject("bob").limit(100).after(c),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 250));
    // Newest first, no row twice.
    assert!(seen.windows(2).all(|w| w[0] > w[1]));
    let days = store.partitions().unwrap();
    assert_eq!(days.len(), 3, "{days:?}");
    // Retention: everything before the third day goes, as whole partitions.
    let third = at((days[2] * day as i64) as u64);
    assert_eq!(store.drop_before(third).unwrap(), 2);
    let left = store
        .query(&AuditQuery::new().subject("bob").limit(MAX_PAGE))
        .unwrap();
    assert!(!left.rows.is_empty() && left.rows.iter().all(|r| at(r.at) >= third));
    assert_eq!(store.partitions().unwrap().len(), 1);
}

#[test]
fn malformed_or_unbounded_filters_are_refused_by_name() {
    let schema = Schema::new();
    let store = PgAuditStore::connect_in(&url(), &schema.0).unwrap();
    let now = SystemTime::now();
    let field = |q: AuditQuery| {
        let e = store.query(&q).unwrap_err();
        assert_eq!(e.kind(), AuditStoreErrorKind::InvalidFilter);
        e.field().unwrap()
    };
    assert_eq!(field(AuditQuery::new()), "since");
    assert_eq!(
        field(AuditQuery::new().since(now - Duration::from_secs(40 * 86_400))),
        "since"
    );
    assert_eq!(field(AuditQuery::new().subject("a").limit(0)), "limit");
    assert_eq!(
        field(AuditQuery::new().subject("a").limit(MAX_PAGE + 1)),
        "limit"
    );
    assert_eq!(field(AuditQuery::new().fingerprint("zz")), "fingerprint");
    assert_eq!(field(AuditQuery::new().subject("x".repeat(300))), "subject");
    assert_eq!(
        field(AuditQuery::new().subject("a").since(now).until(now)),
        "until"
    );
    assert!(
        tokenlife_core::audit_store::AuditCursor::parse("nope")
            .unwrap_err()
            .field()
            == Some("after")
    );
    // An injection attempt is a value like any other: no row, no error.
    let page = store
        .query(&AuditQuery::new().subject("x' OR '1'='1"))
        .unwrap();
    assert!(page.rows.is_empty());
    assert_eq!(
        PgAuditStore::connect_in(&url(), "bad; DROP")
            .unwrap_err()
            .kind(),
        AuditStoreErrorKind::InvalidSchema
    );
}

#[test]
fn pseudonymised_subjects_are_found_by_whoever_holds_the_key() {
    let schema = Schema::new();
    let store = PgAuditStore::connect_in(&url(), &schema.0).unwrap();
    let key = [7u8; 32];
    let sink = PgAuditSink::builder(url(), "node-c")
        .schema(&schema.0)
        .pseudonymise(key)
        .build()
        .unwrap();
    let auditor = Auditor::builder().sink(sink).build();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    auditor.emit(AuditEvent::new(AuditAction::TokenIssued, now).subject(Some("carol")));
    auditor.flush();
    let window = SystemTime::now() - Duration::from_secs(3600);
    assert!(
        store
            .query(&AuditQuery::new().subject("carol"))
            .unwrap()
            .rows
            .is_empty()
    );
    let found = store
        .query(&AuditQuery::new().pseudonymised_subject("carol", &key))
        .unwrap();
    assert_eq!(found.rows.len(), 1);
    let stored = found.rows[0].subject.clone().unwrap();
    assert!(stored.starts_with("h:") && !stored.contains("carol"));
    let all = store.query(&AuditQuery::new().since(window)).unwrap();
    assert!(!serde_json::to_string(&all.rows).unwrap().contains("carol"));
}

/// PostgreSQL unreachable (a port nothing listens on): emitting never waits on it, the
/// writer holds its batch and retries, and every record past the sink's bounded queue is
/// dropped and counted — never silently.
#[test]
fn a_database_that_is_down_costs_nothing_and_every_lost_record_is_counted() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = PgAuditSink::builder(
        format!("postgres://postgres@127.0.0.1:{port}/test?connect_timeout=1"),
        "node-d",
    )
    .capacity(100)
    .batch_size(10)
    .flush_wait(Duration::from_millis(200))
    .build()
    .unwrap();
    let dropped = sink.dropped();
    let written = sink.written();
    let auditor = Auditor::builder().sink(sink).capacity(10_000).build();
    for i in 0..1_000 {
        auditor.emit(AuditEvent::new(AuditAction::TokenIssued, 1_790_000_000 + i));
    }
    auditor.flush();
    let lost = dropped.load(std::sync::atomic::Ordering::Relaxed);
    // At most the queue (100) and the batch in hand (10) wait for the database.
    assert!(lost >= 1_000 - 110, "{lost} dropped");
    assert_eq!(written.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(auditor.dropped(), 0, "the auditor's own queue never filled");
}

/// `GET /audit` through the admin route table (what both adapters mount): the admin key
/// only, filters from the query string, pages with a cursor, a malformed filter a 400
/// naming it, no store a 404.
#[cfg(feature = "admin")]
#[test]
fn the_admin_endpoint_answers_audit_questions() {
    use tokenlife_core::testing::ADMIN_KEY;
    let schema = Schema::new();
    let store = std::sync::Arc::new(PgAuditStore::connect_in(&url(), &schema.0).unwrap());
    let sink = PgAuditSink::builder(url(), "node-e")
        .schema(&schema.0)
        .build()
        .unwrap();
    let auditor = Auditor::builder().sink(sink).build();
    for i in 0..3 {
        auditor.emit(
            AuditEvent::new(AuditAction::TokenIssued, 1_790_000_000 + i).subject(Some("dora")),
        );
    }
    auditor.flush();
    let f = Fixture::new();
    let admin = f.admin().audit_store(store).build().unwrap();
    let get = |path: &str, key: Option<&str>| {
        let mut req = http::Request::get(path);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let res = admin.respond(&req.body(Vec::new()).unwrap(), None);
        let body: serde_json::Value =
            serde_json::from_slice(res.body()).unwrap_or(serde_json::Value::Null);
        (res.status().as_u16(), body)
    };
    assert_eq!(get("/audit?subject=dora", None).0, 401);
    let (status, page) = get("/audit?subject=dora&limit=2", Some(ADMIN_KEY));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["rows"].as_array().unwrap().len(), 2);
    assert_eq!(page["rows"][0]["at"], 1_790_000_002);
    let next = page["next"].as_str().unwrap().to_owned();
    let (status, rest) = get(
        &format!("/audit?subject=dora&limit=2&after={next}"),
        Some(ADMIN_KEY),
    );
    assert_eq!(status, 200);
    assert_eq!(rest["rows"].as_array().unwrap().len(), 1);
    assert!(rest["next"].is_null());
    for (qs, field) in [
        ("subject=dora&limit=0", "limit"),
        ("since=yesterday", "since"),
        ("token=abc", "query"),
        ("subject=dora&subject=eve", "query"),
        ("", "since"),
    ] {
        let (status, body) = get(&format!("/audit?{qs}"), Some(ADMIN_KEY));
        assert_eq!(status, 400, "{qs}");
        assert_eq!(
            body["error_description"],
            format!("invalid audit filter: {field}"),
            "{qs}"
        );
    }
    let bare = f.admin().build().unwrap();
    let req = http::Request::get("/audit?subject=dora")
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .body(Vec::new())
        .unwrap();
    assert_eq!(bare.respond(&req, None).status(), 404);
}

/// A TCP forwarder to the machine's PostgreSQL that is down (accepts and hangs up) until
/// switched up: a real network fault in front of a real database.
struct Forwarder {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn forwarder(target: std::net::SocketAddr) -> Forwarder {
    use std::sync::atomic::Ordering::SeqCst;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = up.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            if !flag.load(SeqCst) {
                drop(client);
                continue;
            }
            let Ok(server) = std::net::TcpStream::connect(target) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c1, mut s1) = (client, server);
            std::thread::spawn(move || std::io::copy(&mut c1, &mut s1));
            std::thread::spawn(move || std::io::copy(&mut s2, &mut c2));
        }
    });
    Forwarder { port, up }
}

/// Peer gaps of the audit store, item 6: PostgreSQL unreachable behind a forwarder. With a
/// spool, nothing is dropped: every batch goes to the spool file, a process that stops
/// leaves it, the next one replays it in order once the database answers — each record
/// stored exactly once — and a spool that is full drops and counts.
#[test]
fn batches_spooled_while_the_database_is_down_are_replayed_once_it_is_back() {
    use std::sync::atomic::Ordering::Relaxed;
    let schema = Schema::new();
    let store = PgAuditStore::connect_in(&url(), &schema.0).unwrap();
    let config: postgres::Config = url().parse().unwrap();
    let pg_port = config.get_ports().first().copied().unwrap_or(5432);
    let fwd = forwarder(std::net::SocketAddr::from(([127, 0, 0, 1], pg_port)));
    let via = url().replace(&format!(":{pg_port}/"), &format!(":{}/", fwd.port));
    let dir = std::env::temp_dir().join(format!("tokenlife-spool-{}", schema.0));
    let sink = |max: u64| {
        PgAuditSink::builder(format!("{via}?connect_timeout=2"), "node-s")
            .schema(&schema.0)
            .capacity(10_000)
            .batch_size(10)
            .spool(&dir, max)
            .flush_wait(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let first = sink(1 << 20);
    let (dropped, spooled, written) = (first.dropped(), first.spooled(), first.written());
    let auditor = Auditor::builder().sink(first).capacity(10_000).build();
    for i in 0..1_000 {
        auditor.emit(
            AuditEvent::new(AuditAction::TokenIssued, 1_790_000_000 + i).subject(Some("sam")),
        );
    }
    auditor.flush();
    assert_eq!(
        (
            dropped.load(Relaxed),
            spooled.load(Relaxed),
            written.load(Relaxed)
        ),
        (0, 1_000, 0)
    );
    // The process stops with its spool on disk; the next one starts while the database
    // is back, and replays it.
    drop(auditor);
    std::thread::sleep(Duration::from_millis(100));
    fwd.up.store(true, std::sync::atomic::Ordering::SeqCst);
    let second = sink(1 << 20);
    let (spooled2, written2) = (second.spooled(), second.written());
    assert_eq!(
        spooled2.load(Relaxed),
        1_000,
        "the spool left behind is counted"
    );
    let _auditor = Auditor::builder().sink(second).build();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while written2.load(Relaxed) < 1_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((written2.load(Relaxed), spooled2.load(Relaxed)), (1_000, 0));
    let page = store
        .query(&AuditQuery::new().subject("sam").limit(MAX_PAGE))
        .unwrap();
    assert_eq!(
        (page.rows.len(), page.next.is_none()),
        (1_000, true),
        "each record once"
    );
    // In order: the replay kept the emit order (times ascend with the emit order).
    let mut times: Vec<u64> = page.rows.iter().map(|r| r.at).collect();
    times.dedup();
    assert_eq!(times.len(), 1_000);

    // A spool that is full drops, and counts what it dropped.
    fwd.up.store(false, std::sync::atomic::Ordering::SeqCst);
    let _ = std::fs::remove_dir_all(&dir);
    let tiny = sink(4_000);
    let (dropped3, spooled3) = (tiny.dropped(), tiny.spooled());
    let auditor = Auditor::builder().sink(tiny).capacity(10_000).build();
    for i in 0..100 {
        auditor.emit(AuditEvent::new(AuditAction::TokenIssued, 1_790_100_000 + i));
    }
    auditor.flush();
    let (lost, kept) = (dropped3.load(Relaxed), spooled3.load(Relaxed));
    assert!(lost > 0 && kept > 0, "{lost} dropped, {kept} spooled");
    assert_eq!(lost + kept, 100);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The three named reports, from a story of a real issuer and validator with the usage
/// rollup beside the monitor: a token's whole life (issued → used when and where →
/// revoked → refused), a subject's tokens in a window (with where each was used), and
/// everything a keyset version rejected — each expected answer written out.
#[test]
fn the_named_reports_tell_a_tokens_life_a_subjects_tokens_and_a_versions_rejections() {
    use tokenlife_core::Validator;
    use tokenlife_core::audit_store::AuditReport;
    use tokenlife_core::observe::usage::UsageRollup;
    use tokenlife_core::testing::{AUD, ISS};

    let schema = Schema::new();
    let store = PgAuditStore::connect_in(&url(), &schema.0).unwrap();
    let sink = PgAuditSink::builder(url(), "node-r")
        .schema(&schema.0)
        .build()
        .unwrap();
    let f = Fixture::with_sink(ManualClock::starting_now(), sink);
    let usage = UsageRollup::for_monitor(&f.monitor)
        .unwrap()
        .bucket(Duration::from_secs(60))
        .build();
    let validator = Validator::builder(f.store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(f.clock.clone())
        .monitor(f.monitor.clone())
        .also_observer(usage.clone())
        .revocations(f.validator.revocations().clone())
        .build()
        .unwrap();
    // The story starts two seconds into a minute, so the first two uses share a
    // 60-second usage bucket whatever the wall clock says.
    let t0 = (f.monitor.now() / 60 + 1) * 60 + 2;
    f.clock.set_unix(t0);
    let pair = f
        .issuer
        .issue(TokenRequest::subject("erin").client("app"))
        .unwrap();
    let access = pair.access_token.clone();
    let fp = f.monitor.fingerprint(&access).to_string();
    // Used from two places, in two buckets (the second after two minutes).
    for (dt, client) in [(0, "10.0.0.1"), (5, "10.0.0.1"), (125, "203.0.113.9")] {
        f.clock.set_unix(t0 + dt);
        validator.validate_from(&access, Some(client)).unwrap();
    }
    // Another subject's token is not in erin's report.
    let other = f
        .issuer
        .issue_access(TokenRequest::subject("frank"))
        .unwrap();
    validator.validate(&other.access_token).unwrap();
    // Revoked at t0 + 130: the next use is refused.
    f.clock.set_unix(t0 + 130);
    f.issuer
        .revoke_subject("erin", UNIX_EPOCH + Duration::from_secs(t0 + 130))
        .unwrap();
    f.clock.set_unix(t0 + 131);
    assert!(
        validator
            .validate_from(&access, Some("203.0.113.9"))
            .is_err()
    );
    usage.flush();
    f.audit_events();

    let life = store
        .report(&AuditReport::TokenLife {
            fingerprint: fp.clone(),
        })
        .unwrap();
    assert_eq!(life["issued"]["subject"], "erin");
    assert_eq!(life["issued"]["at"], t0);
    assert_eq!(life["usage"]["count"], 3);
    assert_eq!(life["usage"]["first_seen"], t0);
    assert_eq!(life["usage"]["last_seen"], t0 + 125);
    assert_eq!(
        life["usage"]["clients"],
        serde_json::json!(["10.0.0.1", "203.0.113.9"])
    );
    let actions: Vec<&str> = life["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions[..3],
        ["token_issued", "token_used", "token_used"],
        "{life:#}"
    );
    // The refusal, and — a revoked token presented again — its alert, in the same
    // second (either order).
    let last: Vec<&serde_json::Value> = life["events"].as_array().unwrap()[3..].iter().collect();
    assert_eq!(last.len(), 2, "{life:#}");
    assert!(
        last.iter()
            .any(|e| e["action"] == "validation_failed" && e["reason"] == "revoked")
    );
    assert!(last.iter().any(|e| e["alert"] == "revoked_token_reuse"));
    assert_eq!(life["revocations"].as_array().unwrap().len(), 1);

    let since = UNIX_EPOCH + Duration::from_secs(t0 - 60);
    // The test clock runs ahead of the wall clock: the window's end is given.
    let until = Some(UNIX_EPOCH + Duration::from_secs(t0 + 3_600));
    let report = store
        .report(&AuditReport::Subject {
            subject: "erin".into(),
            since,
            until,
        })
        .unwrap();
    let tokens = report["tokens"].as_array().unwrap();
    // Access and refresh token, nothing of frank's.
    assert_eq!(tokens.len(), 2, "{report:#}");
    let a = tokens.iter().find(|t| t["fingerprint"] == fp).unwrap();
    assert_eq!(
        (a["usage"]["count"].as_u64(), a["failures"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(a["client"], "app");
    let r = tokens.iter().find(|t| t["fingerprint"] != fp).unwrap();
    assert_eq!(r["token_kind"], "refresh");
    assert_eq!(r["usage"]["count"], 0);
    assert_eq!(report["revocations"].as_array().unwrap().len(), 1);

    let rejected = store
        .report(&AuditReport::Rejections {
            keyset_version: 1,
            since,
            until,
        })
        .unwrap();
    assert_eq!(rejected["total"], 1);
    assert_eq!(rejected["by_reason"], serde_json::json!({"revoked": 1}));
    assert_eq!(rejected["tokens"], 1);
    assert_eq!(rejected["newest"][0]["fingerprint"], fp);
    // Nothing for a version that rejected nothing (the window's end the default, now: its
    // start well before, as the test clock may run up to 62 s ahead); bad fields named.
    let none = store
        .report(&AuditReport::Rejections {
            keyset_version: 9,
            since: UNIX_EPOCH + Duration::from_secs(t0 - 600),
            until: None,
        })
        .unwrap();
    assert_eq!(none["total"], 0);
    let err = store.search("report=token&fingerprint=xyz").unwrap_err();
    assert_eq!(err.field(), Some("fingerprint"));
    assert_eq!(
        store.search("report=nope").unwrap_err().field(),
        Some("report")
    );
    assert_eq!(
        store
            .search("report=subject&subject=erin&since=10&until=5")
            .unwrap_err()
            .field(),
        Some("until")
    );
    // The same report through the query string.
    let via_qs = store
        .search(&format!("report=token&fingerprint={fp}"))
        .unwrap();
    assert_eq!(via_qs["usage"]["count"], 3);
}

/// Item 6: a private PostgreSQL (initdb + postgres on a free port) killed like a crash
/// under load and started again: with a spool, every record emitted — before, during
/// and after the outage — is in the table exactly once, none dropped; the emitting
/// thread never waits.
#[test]
fn a_database_killed_under_load_loses_no_record() {
    use std::sync::atomic::Ordering::Relaxed;
    use tokenlife_core::testing::PgServer;

    let mut pg = PgServer::start();
    let url = pg.url();
    PgAuditStore::connect(&url).unwrap();
    let spool = std::env::temp_dir().join(format!("tokenlife-kill-{}", pg.port()));
    let sink = PgAuditSink::builder(&url, "node-k")
        .batch_size(500)
        .linger(Duration::from_millis(20))
        .spool(&spool, 256 << 20)
        .flush_wait(Duration::from_secs(30))
        .build()
        .unwrap();
    let (written, spooled, dropped) = (sink.written(), sink.spooled(), sink.dropped());
    const N: u64 = 30_000;
    let auditor = Auditor::builder().capacity(N as usize).sink(sink).build();
    let t0 = 1_790_000_000;
    for i in 0..N {
        auditor.emit(
            AuditEvent::new(AuditAction::ValidationFailed, t0 + i / 1_000)
                .failure("expired")
                .detail(format!("n={i}")),
        );
        if i == N / 3 {
            // Under load: the database goes away, and records keep coming.
            pg.kill();
        }
        if i == 2 * N / 3 {
            // The writer drains the queue at its own pace: the records emitted since
            // the kill may still be queued. Before the database comes back, wait (a
            // bounded while) until the writer has met the outage and spooled.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while spooled.load(Relaxed) == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "nothing was spooled while down"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            pg.restart();
        }
    }
    auditor.flush();
    // The spool is replayed once the writer's backoff lets it try again.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while spooled.load(Relaxed) > 0 || written.load(Relaxed) < N {
        assert!(
            std::time::Instant::now() < deadline,
            "the spool was not replayed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT count(*), count(DISTINCT detail->>'text') FROM tokenlife_audit",
            &[],
        )
        .unwrap();
    let (rows, distinct): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((rows, distinct), (N as i64, N as i64), "every record once");
    assert_eq!(dropped.load(Relaxed), 0);
    assert_eq!(auditor.dropped(), 0);
    let _ = std::fs::remove_dir_all(&spool);
}

/// The store's pool: questions asked from several threads at once are answered; while
/// the database is down a question is a clear error, not a hang; once it is back the
/// store answers again by itself (lost connections are made again).
#[test]
fn the_store_answers_again_once_a_restarted_database_is_back() {
    use tokenlife_core::testing::PgServer;

    let mut pg = PgServer::start();
    let store = std::sync::Arc::new(PgAuditStore::connect(&pg.url()).unwrap());
    let ask = |s: &PgAuditStore| s.query(&AuditQuery::new().subject("nobody"));
    std::thread::scope(|scope| {
        for _ in 0..6 {
            let store = store.clone();
            scope.spawn(move || {
                for _ in 0..20 {
                    assert!(ask(&store).unwrap().rows.is_empty());
                }
            });
        }
    });
    pg.kill();
    let down = ask(&store).unwrap_err();
    assert!(
        matches!(
            down.kind(),
            AuditStoreErrorKind::Database | AuditStoreErrorKind::Connect
        ),
        "{down:?}"
    );
    pg.restart();
    // Every connection of the pool was lost; each is made again when next taken.
    for _ in 0..8 {
        assert!(ask(&store).unwrap().rows.is_empty());
    }
}
