//! The webhook alert sink against a real HTTP receiver on 127.0.0.1 (axum): alerts are
//! delivered signed (the receiver verifies the HMAC and the replay window), retried
//! through `500`s, refused `4xx` and unreachable or slow receivers end as counted dead
//! letters, a full queue never blocks the auditor, Slack gets `{"text": …}`, and no
//! record other than an alert leaves.
#![cfg(feature = "webhook")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use tokenlife_core::observe::AlertKind;
use tokenlife_core::observe::TokenRef;
use tokenlife_core::observe::audit::{AuditAction, AuditEvent, AuditSink, Auditor};
use tokenlife_core::observe::webhook::{
    SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSink, WebhookStats, verify_signature,
};

const SECRET: &[u8] = b"webhook-secret-for-tests";

/// What the receiver got, and what it answers next.
#[derive(Default)]
struct Receiver {
    got: Vec<(HeaderMap, Vec<u8>)>,
    /// Statuses to answer, in order; 200 once they run out.
    answers: Vec<u16>,
    delay: Duration,
}

fn receiver(state: Arc<Mutex<Receiver>>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                    let state = state.clone();
                    async move {
                        let (status, delay) = {
                            let mut s = state.lock().unwrap();
                            s.got.push((headers, body.to_vec()));
                            let status = if s.answers.is_empty() {
                                200
                            } else {
                                s.answers.remove(0)
                            };
                            (status, s.delay)
                        };
                        tokio::time::sleep(delay).await;
                        StatusCode::from_u16(status).unwrap()
                    }
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{}/hook", rx.recv().unwrap())
}

fn alert(kind: AlertKind) -> AuditEvent {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    AuditEvent::new(AuditAction::Alert, now)
        .failure("refresh_reuse")
        .alert(kind)
        .keyset_version(7)
        .fingerprint(TokenRef::new("the.raw.token").fingerprint(&[1; 32]))
        .address(Some("203.0.113.9"))
}

/// Waits (bounded) until the sink's thread has settled `n` alerts.
fn settled(stats: &WebhookStats, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.delivered() + stats.dead_letters() < n {
        assert!(Instant::now() < deadline, "not settled: {stats:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn alerts_are_delivered_signed_and_retried_through_server_errors() {
    let state = Arc::new(Mutex::new(Receiver {
        answers: vec![500, 503],
        ..Receiver::default()
    }));
    let url = receiver(state.clone());
    let sink = WebhookSink::builder(url)
        .secret(SECRET)
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
        .build();
    let stats = sink.stats();
    let auditor = Auditor::builder().sink(sink).build();
    // Not an alert: stays in the process.
    auditor.emit(AuditEvent::new(AuditAction::TokenIssued, 1));
    auditor.emit(alert(AlertKind::RefreshTokenReuse));
    auditor.flush();
    settled(&stats, 1);
    assert_eq!(
        (stats.delivered(), stats.dead_letters(), stats.attempts()),
        (1, 0, 3)
    );
    let got = &state.lock().unwrap().got;
    assert_eq!(got.len(), 3, "two server errors, then delivered");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (headers, body) in got {
        let ts = headers[TIMESTAMP_HEADER].to_str().unwrap();
        let sig = headers[SIGNATURE_HEADER].to_str().unwrap();
        assert!(
            verify_signature(SECRET, ts, body, sig, now, 300),
            "a valid signature"
        );
        assert!(!verify_signature(b"wrong", ts, body, sig, now, 300));
        // A replay much later is refused by the window.
        assert!(!verify_signature(SECRET, ts, body, sig, now + 3_600, 300));
        assert_eq!(headers["content-type"], "application/json");
    }
    let body: serde_json::Value = serde_json::from_slice(&got[2].1).unwrap();
    assert_eq!(body["alert"], "refresh_token_reuse");
    assert_eq!(body["reason"], "refresh_reuse");
    assert_eq!(body["keyset_version"], 7);
    assert_eq!(body["address"], "203.0.113.9");
    assert_eq!(
        body["fingerprint"],
        TokenRef::new("the.raw.token")
            .fingerprint(&[1; 32])
            .to_string()
    );
    assert!(!String::from_utf8_lossy(&got[2].1).contains("the.raw.token"));
}

#[test]
fn refusals_and_unreachable_receivers_are_counted_dead_letters() {
    // 400: refused, not retried.
    let state = Arc::new(Mutex::new(Receiver {
        answers: vec![400],
        ..Receiver::default()
    }));
    let mut sink = WebhookSink::builder(receiver(state.clone()))
        .backoff(Duration::from_millis(5), Duration::from_millis(5))
        .build();
    let stats = sink.stats();
    sink.write(&alert(AlertKind::AutomaticRollback));
    settled(&stats, 1);
    assert_eq!(
        (stats.delivered(), stats.dead_letters(), stats.attempts()),
        (0, 1, 1)
    );
    assert_eq!(state.lock().unwrap().got.len(), 1);

    // Nobody listening: every attempt fails, then a dead letter.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut sink = WebhookSink::builder(format!("http://127.0.0.1:{port}/hook"))
        .max_attempts(3)
        .backoff(Duration::from_millis(5), Duration::from_millis(10))
        .build();
    let stats = sink.stats();
    sink.write(&alert(AlertKind::RevokedTokenReuse));
    settled(&stats, 1);
    assert_eq!(
        (stats.delivered(), stats.dead_letters(), stats.attempts()),
        (0, 1, 3)
    );
}

/// A receiver slower than the timeout, and more alerts than the queue holds: `write`
/// returns at once every time (the auditor's lane never waits), what does not fit is a
/// dead letter at once, what was queued times out into dead letters too.
#[test]
fn a_slow_receiver_and_a_full_queue_cost_dead_letters_never_a_wait() {
    let state = Arc::new(Mutex::new(Receiver {
        delay: Duration::from_secs(3),
        ..Receiver::default()
    }));
    let mut sink = WebhookSink::builder(receiver(state))
        .capacity(2)
        .max_attempts(1)
        .timeout(Duration::from_millis(100))
        .build();
    let stats = sink.stats();
    for _ in 0..50 {
        sink.write(&alert(AlertKind::BadSignatureBurst));
    }
    // At most the two queued and the one in flight are still pending.
    assert!(stats.dead_letters() >= 47, "{stats:?}");
    settled(&stats, 50);
    assert_eq!((stats.delivered(), stats.dead_letters()), (0, 50));
}

#[test]
fn slack_gets_a_text_payload() {
    let state = Arc::new(Mutex::new(Receiver::default()));
    let mut sink = WebhookSink::builder(receiver(state.clone()))
        .slack(true)
        .build();
    let stats = sink.stats();
    sink.write(&alert(AlertKind::AutomaticRollback).detail("automatic rollback v8 -> v7"));
    settled(&stats, 1);
    assert_eq!(stats.delivered(), 1);
    let got = &state.lock().unwrap().got;
    let body: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("*automatic_rollback*"), "{text}");
    assert!(
        text.contains("keyset v7") && text.contains("from 203.0.113.9"),
        "{text}"
    );
    assert!(text.ends_with(": automatic rollback v8 -> v7"), "{text}");
    assert_eq!(body.as_object().unwrap().len(), 1, "only `text`");
    // Unsigned without a secret.
    assert!(!got[0].0.contains_key(SIGNATURE_HEADER));
}
