//! Remote keys against a real HTTP server on 127.0.0.1 that this test starts and scripts:
//! discovery, rotation, ETag, unknown-kid refresh and cooldown, partially bad and broken
//! JWKS, outages, a caller's own client. Time for the cooldown and the status is a
//! manual clock.
#![cfg(all(feature = "remote", feature = "test-util"))]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokenlife_core::keys::remote::{Refreshed, RemoteErrorKind, RemoteKeys};
use tokenlife_core::observe::audit::{AuditAction, AuditEvent, Auditor};
use tokenlife_core::{
    Algorithm, Clock, ManualClock, Monitor, ValidationErrorKind, Validator, testing,
};

const AUD: &str = "api://orders";

/// What the provider answers; the test edits it between calls.
#[derive(Default)]
struct Script {
    issuer_in_doc: Option<String>,
    jwks_uri_in_doc: Option<String>,
    jwks: String,
    etag: Option<String>,
    cache_control: Option<String>,
    status: Option<u16>,
    body: Option<Vec<u8>>,
    delay: Option<Duration>,
    jwks_hits: u32,
    conditional_hits: u32,
    /// The JWKS moved to `/moved/jwks`: `/jwks` answers 404.
    moved: bool,
    seen_test_header: bool,
}

#[derive(Clone)]
struct Provider {
    base: String,
    script: Arc<Mutex<Script>>,
}

impl Provider {
    fn edit(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.script.lock().unwrap());
    }
    fn hits(&self) -> u32 {
        self.script.lock().unwrap().jwks_hits
    }
}

async fn discovery(State(p): State<Provider>) -> Response {
    let (issuer, jwks_uri) = {
        let s = p.script.lock().unwrap();
        (
            s.issuer_in_doc.clone().unwrap_or_else(|| p.base.clone()),
            s.jwks_uri_in_doc
                .clone()
                .unwrap_or_else(|| format!("{}/jwks", p.base)),
        )
    };
    axum::Json(json!({"issuer": issuer, "jwks_uri": jwks_uri})).into_response()
}

async fn old_jwks(State(p): State<Provider>, headers: HeaderMap) -> Response {
    if p.script.lock().unwrap().moved {
        return StatusCode::NOT_FOUND.into_response();
    }
    jwks(State(p), headers).await
}

async fn jwks(State(p): State<Provider>, headers: HeaderMap) -> Response {
    let (delay, answer) = {
        let mut s = p.script.lock().unwrap();
        s.jwks_hits += 1;
        s.seen_test_header |= headers.contains_key("x-test-client");
        let inm = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok());
        if inm.is_some() {
            s.conditional_hits += 1;
        }
        let answer = if let Some(code) = s.status {
            StatusCode::from_u16(code).unwrap().into_response()
        } else if inm.is_some() && inm == s.etag.as_deref() {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let body = s
                .body
                .clone()
                .unwrap_or_else(|| s.jwks.clone().into_bytes());
            let mut res = (StatusCode::OK, body).into_response();
            if let Some(tag) = &s.etag {
                res.headers_mut().insert(header::ETAG, tag.parse().unwrap());
            }
            if let Some(cc) = &s.cache_control {
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, cc.parse().unwrap());
            }
            res
        };
        (s.delay, answer)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    answer
}

async fn provider(keys: &[(&str, Algorithm)]) -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    provider_on(listener, keys)
}

fn provider_on(listener: tokio::net::TcpListener, keys: &[(&str, Algorithm)]) -> Provider {
    let base = format!("http://{}", listener.local_addr().unwrap());
    let p = Provider {
        base,
        script: Arc::new(Mutex::new(Script {
            jwks: public_jwks(keys),
            etag: Some("\"v1\"".into()),
            ..Script::default()
        })),
    };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(old_jwks))
        .route("/moved/jwks", get(jwks))
        .with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    p
}

fn public_jwks(keys: &[(&str, Algorithm)]) -> String {
    testing::public_jwks(keys)
}

fn token(iss: &str, kid: &str, alg: Algorithm, now: u64) -> String {
    testing::token_at(iss, AUD, kid, alg, now)
}

fn validator(keys: &RemoteKeys, iss: &str, clock: &ManualClock) -> Validator {
    Validator::builder(keys.store().clone())
        .issuer(iss)
        .audience(AUD)
        .clock(clock.clone())
        .also_observer(keys.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn discovery_finds_the_keys_and_tokens_validate() {
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let clock = ManualClock::starting_now();
    let keys = RemoteKeys::issuer(&p.base)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let status = keys.status();
    assert_eq!(
        status.jwks_uri.as_deref(),
        Some(&*format!("{}/jwks", p.base))
    );
    assert_eq!(status.kids, ["k1"]);
    assert_eq!(status.last_success, Some(clock.unix_now()));
    let v = validator(&keys, &p.base, &clock);
    let now = clock.unix_now();
    v.validate(&token(&p.base, "k1", Algorithm::ES256, now))
        .unwrap();

    // RFC 9068 access tokens validate out of the box, and a policy can require their
    // `typ` so an ID token is not taken for an access token.
    let at = testing::sign_with_header(
        &testing::key("k1", Algorithm::ES256),
        &{
            let mut h = tokenlife_core::jsonwebtoken::Header::new(Algorithm::ES256);
            h.kid = Some("k1".into());
            h.typ = Some("at+jwt".into());
            h
        },
        &json!({"iss": p.base, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 600,
                "client_id": "svc", "scope": "orders:read", "jti": "at-1"}),
    );
    let strict = Validator::builder(keys.store().clone())
        .issuer(&p.base)
        .audience(AUD)
        .clock(clock.clone())
        .accept_typ(["at+jwt", "application/at+jwt"])
        .build()
        .unwrap();
    let verified = strict.validate(&at).unwrap();
    assert!(verified.has_scope("orders:read"));
    assert_eq!(verified.all_claims()["client_id"], "svc");
    let id_token = token(&p.base, "k1", Algorithm::ES256, now);
    assert!(strict.validate(&id_token).is_err());
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_refused() {
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    p.edit(|s| s.issuer_in_doc = Some("https://evil.example".into()));
    let err = RemoteKeys::issuer(&p.base).build().await.unwrap_err();
    assert_eq!(err.kind(), RemoteErrorKind::IssuerMismatch);
    assert_eq!(p.hits(), 0, "no JWKS fetched from a mismatched document");
    let err = RemoteKeys::jwks("ftp://x").build().await.unwrap_err();
    assert_eq!(err.kind(), RemoteErrorKind::InvalidUrl);
}

#[tokio::test]
async fn a_rotation_is_a_new_version_and_rollback_still_works() {
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let clock = ManualClock::starting_now();
    let keys = RemoteKeys::jwks(format!("{}/jwks", p.base))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let v = validator(&keys, "https://idp", &clock);
    let now = clock.unix_now();
    let (t1, t2) = (
        token("https://idp", "k1", Algorithm::ES256, now),
        token("https://idp", "k2", Algorithm::ES384, now),
    );
    assert_eq!(keys.refresh().await.unwrap(), Refreshed::NotModified);
    p.edit(|s| {
        s.jwks = public_jwks(&[("k2", Algorithm::ES384)]);
        s.etag = Some("\"v2\"".into());
    });
    assert_eq!(keys.refresh().await.unwrap(), Refreshed::Updated(2));
    v.validate(&t2).unwrap();
    assert_eq!(
        v.validate(&t1).unwrap_err().kind(),
        ValidationErrorKind::UnknownKid
    );
    keys.store().rollback().unwrap();
    v.validate(&t1).unwrap();
    // The same keys under a new ETag: no new version.
    keys.store().rollback_to(2).unwrap();
    p.edit(|s| s.etag = Some("\"v2-again\"".into()));
    assert_eq!(keys.refresh().await.unwrap(), Refreshed::Unchanged);
    assert_eq!(keys.store().current().version(), 2);
    let s = p.script.lock().unwrap();
    assert!(s.conditional_hits >= 2, "If-None-Match was sent");
}

#[tokio::test]
async fn an_unknown_kid_wakes_one_refresh_then_a_cooldown() {
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let clock = ManualClock::starting_now();
    let keys = RemoteKeys::jwks(format!("{}/jwks", p.base))
        .clock(clock.clone())
        .refresh_bounds(
            Duration::from_secs(3600),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        )
        .build()
        .await
        .unwrap();
    tokio::spawn(keys.clone().refresh_task());
    let v = validator(&keys, "https://idp", &clock);
    let now = clock.unix_now();
    // The provider rotated; this node has not refreshed yet.
    p.edit(|s| {
        s.jwks = public_jwks(&[("k1", Algorithm::ES256), ("k2", Algorithm::ES384)]);
        s.etag = Some("\"v2\"".into());
    });
    let t2 = token("https://idp", "k2", Algorithm::ES384, now);
    // The first sight of k2 fails at once (no waiting on the network) and wakes one
    // refresh; then k2 validates.
    assert_eq!(
        v.validate(&t2).unwrap_err().kind(),
        ValidationErrorKind::UnknownKid
    );
    wait_for(|| p.hits() == 2).await;
    wait_for(|| v.validate(&t2).is_ok()).await;
    // A flood of unknown kids during the cooldown fetches nothing: the next fetch comes
    // only after the cooldown.
    for i in 0..50 {
        let junk = token("https://idp", &format!("junk-{i}"), Algorithm::ES256, now);
        assert_eq!(
            v.validate(&junk).unwrap_err().kind(),
            ValidationErrorKind::UnknownKid
        );
    }
    let status = keys.status();
    assert_eq!(
        (status.unknown_kid_refreshes, status.unknown_kid_suppressed),
        (1, 50)
    );
    assert_eq!(p.hits(), 2);
    // After the cooldown, the next unknown kid wakes one refresh again.
    clock.advance(Duration::from_secs(61));
    let junk = token("https://idp", "junk-late", Algorithm::ES256, now);
    assert!(v.validate(&junk).is_err());
    assert_eq!(keys.status().unknown_kid_refreshes, 2);
    wait_for(|| p.hits() == 3).await;
}

/// Peer gaps, item 1: a gateway starts while its provider is down. The issuer's port
/// refuses connections at build: `degraded_start` builds anyway, its status says
/// degraded, and the issuer's tokens are answered 503 `keys_stale` (retryable), not a
/// bad-token 401. Retries back off (1 s, 2 s, 4 s, … up to the minimum interval). The
/// provider comes up on that port: the next refresh redoes discovery, fetches the keys,
/// leaves the degraded state, and the tokens pass.
#[tokio::test]
async fn a_start_while_the_provider_is_down_is_degraded_then_recovers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let issuer = format!("http://{addr}");
    let clock = ManualClock::starting_now();
    let keys = RemoteKeys::issuer(&issuer)
        .clock(clock.clone())
        .timeout(Duration::from_secs(2))
        .degraded_start(true)
        .build()
        .await
        .unwrap();
    let status = keys.status();
    assert!(status.degraded);
    assert_eq!(status.last_error, Some("unreachable"));
    assert_eq!(status.jwks_uri, None);
    let v = validator(&keys, &issuer, &clock);
    let t = token(&issuer, "k1", Algorithm::ES256, clock.unix_now());
    let err = v.validate(&t).unwrap_err();
    assert_eq!(err.kind(), ValidationErrorKind::KeysStale);
    assert_eq!(err.status(), 503);
    // Without degraded_start, the same start fails as before.
    let refused = RemoteKeys::issuer(&issuer)
        .clock(clock.clone())
        .build()
        .await;
    assert_eq!(refused.unwrap_err().kind(), RemoteErrorKind::Unreachable);
    // Failed retries back off.
    let now = clock.unix_now();
    let delay = |keys: &RemoteKeys| keys.status().next_refresh.unwrap() - now;
    assert_eq!(delay(&keys), 1);
    keys.refresh().await.unwrap_err();
    assert!((1..=2).contains(&delay(&keys)), "{}", delay(&keys));
    keys.refresh().await.unwrap_err();
    assert!((3..=4).contains(&delay(&keys)), "{}", delay(&keys));
    for _ in 0..8 {
        keys.refresh().await.unwrap_err();
    }
    assert!(
        (54..=60).contains(&delay(&keys)),
        "held to the minimum interval: {}",
        delay(&keys)
    );
    // The provider comes up where it was expected.
    let p = provider_on(
        tokio::net::TcpListener::bind(addr).await.unwrap(),
        &[("k1", Algorithm::ES256)],
    );
    p.edit(|s| s.issuer_in_doc = Some(issuer.clone()));
    keys.refresh().await.unwrap();
    let status = keys.status();
    assert!(!status.degraded);
    assert_eq!(status.jwks_uri, Some(format!("{issuer}/jwks")));
    v.validate(&t).unwrap();
}

/// Peer gaps, item 1, with the last good keys kept: a source built with `persist_to`
/// writes its JWKS to the file; a later start with the provider down (answering 502)
/// begins from that file — the tokens pass at once — and stays degraded until a fetch
/// succeeds. A file that is not a JWKS is ignored (503 as with none).
#[tokio::test]
async fn a_degraded_start_begins_from_the_persisted_keys() {
    let dir = std::env::temp_dir().join(format!("tokenlife-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("idp.json");
    let _ = std::fs::remove_file(&file);
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let clock = ManualClock::starting_now();
    let first = RemoteKeys::jwks(format!("{}/jwks", p.base))
        .clock(clock.clone())
        .persist_to(&file)
        .build()
        .await
        .unwrap();
    assert!(!first.status().degraded);
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        written.contains("\"kid\":\"k1\"") && !written.contains("\"d\""),
        "{written}"
    );
    // The provider fails; a restarted node starts from the file.
    p.edit(|s| s.status = Some(502));
    let restarted = RemoteKeys::jwks(format!("{}/jwks", p.base))
        .clock(clock.clone())
        .persist_to(&file)
        .degraded_start(true)
        .build()
        .await
        .unwrap();
    let status = restarted.status();
    assert!(status.degraded);
    assert_eq!(
        (status.last_error, status.kids.clone()),
        (Some("http_status"), vec!["k1".to_owned()])
    );
    let v = validator(&restarted, "https://idp", &clock);
    v.validate(&token(
        "https://idp",
        "k1",
        Algorithm::ES256,
        clock.unix_now(),
    ))
    .unwrap();
    // A file that is not a JWKS: nothing trusted.
    std::fs::write(&file, "not json").unwrap();
    let bare = RemoteKeys::jwks(format!("{}/jwks", p.base))
        .clock(clock.clone())
        .persist_to(&file)
        .degraded_start(true)
        .build()
        .await
        .unwrap();
    let v = validator(&bare, "https://idp", &clock);
    assert_eq!(
        v.validate(&token(
            "https://idp",
            "k1",
            Algorithm::ES256,
            clock.unix_now()
        ))
        .unwrap_err()
        .kind(),
        ValidationErrorKind::KeysStale
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Peer gaps, item 3: discovery is redone when the provider's `jwks_uri` moves. The
/// provider moves its JWKS and its discovery document says so; the old URL answers 404:
/// that refresh fails (last good keys kept), the next asks discovery again and fetches
/// the new URL, with the rotated keys.
#[tokio::test]
async fn a_moved_jwks_uri_is_found_again_through_discovery() {
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let clock = ManualClock::starting_now();
    let keys = RemoteKeys::issuer(&p.base)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(keys.status().jwks_uri, Some(format!("{}/jwks", p.base)));
    let moved = format!("{}/moved/jwks", p.base);
    p.edit(|s| {
        s.moved = true;
        s.jwks_uri_in_doc = Some(moved);
        s.jwks = public_jwks(&[("k2", Algorithm::ES384)]);
        s.etag = Some("\"moved\"".into());
    });
    assert_eq!(
        keys.refresh().await.unwrap_err().kind(),
        RemoteErrorKind::HttpStatus
    );
    let v = validator(&keys, &p.base, &clock);
    let now = clock.unix_now();
    v.validate(&token(&p.base, "k1", Algorithm::ES256, now))
        .unwrap();
    assert!(matches!(
        keys.refresh().await.unwrap(),
        Refreshed::Updated(2)
    ));
    assert_eq!(
        keys.status().jwks_uri,
        Some(format!("{}/moved/jwks", p.base))
    );
    v.validate(&token(&p.base, "k2", Algorithm::ES384, now))
        .unwrap();
}

/// Peer gaps, item 2, the waiting rule itself (what the adapters ask after a request
/// failed `unknown_kid`): a refresh in flight is waited for; with none in flight, a kid
/// that is known by now (a refresh landed between the failed validation and the ask) is
/// checked again at once; any other kid has nothing to wait for.
#[tokio::test]
async fn what_a_request_with_an_unknown_kid_may_wait_for() {
    use tokenlife_core::keys::KeyWait;
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let keys = RemoteKeys::jwks(format!("{}/jwks", p.base))
        .build()
        .await
        .unwrap();
    let bound = Duration::from_millis(250);
    assert!(
        keys.wait(Some("k2"), bound).is_none(),
        "nothing in flight, kid unknown"
    );
    assert!(keys.wait(None, bound).is_none());
    // Landed in between: k1 is known, so the request is checked again at once.
    let ready = keys.wait(Some("k1"), bound).expect("a known kid");
    tokio::time::timeout(Duration::from_secs(1), ready)
        .await
        .unwrap();
    // A woken refresh (no task runs it here): waited for, up to the bound.
    keys.unknown_kid_named(Some("k2"));
    let waiting = keys.wait(Some("k2"), bound).expect("a refresh in flight");
    let refresh = keys.clone();
    let (waited, refreshed) = tokio::join!(waiting, refresh.refresh());
    let () = waited;
    refreshed.unwrap();
}

/// Peer gaps, item 2: junk cannot starve a real rotation. Twenty distinct junk kids a
/// second (anyone can send them) for twelve seconds of the clock; the provider rotates at
/// second 3 and a real client presents the new kid from then on. Each fetch an unknown kid
/// wakes brings the provider's whole JWKS, and unknown kids wake at most one every 2 s
/// (the minimum interval), so the new kid validates by second 4 — with the old single
/// 60 s cooldown, armed by the first junk kid, it failed until second 60. The provider
/// sees one fetch per interval, never one per junk kid; a junk kid sent again within its
/// own cooldown wakes nothing, even past the interval.
#[tokio::test]
async fn a_junk_flood_cannot_starve_a_real_rotation() {
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let clock = ManualClock::starting_now();
    let keys = RemoteKeys::jwks(format!("{}/jwks", p.base))
        .clock(clock.clone())
        .refresh_bounds(
            Duration::from_secs(3600),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        )
        .build()
        .await
        .unwrap();
    tokio::spawn(keys.clone().refresh_task());
    let v = validator(&keys, "https://idp", &clock);
    let mut k2_valid_at = None;
    let mut woken_before = 0;
    for second in 0..12u64 {
        let now = clock.unix_now();
        if second == 3 {
            p.edit(|s| {
                s.jwks = public_jwks(&[("k1", Algorithm::ES256), ("k2", Algorithm::ES384)]);
                s.etag = Some("\"v2\"".into());
            });
        }
        for i in 0..20 {
            let junk = token(
                "https://idp",
                &format!("junk-{second}-{i}"),
                Algorithm::ES256,
                now,
            );
            assert_eq!(
                v.validate(&junk).unwrap_err().kind(),
                ValidationErrorKind::UnknownKid
            );
        }
        // Let the refresh this second woke (if any) finish — its keys applied — before
        // the real client's request: one fetch at the build, one per refresh woken.
        let woken = keys.status().unknown_kid_refreshes;
        if woken > woken_before {
            // The provider was asked, and the answer applied (at second 0 the build's
            // success has the same time: nothing rotated yet then).
            wait_for(|| {
                u64::from(p.hits()) == 1 + woken && keys.status().last_success == Some(now)
            })
            .await;
            woken_before = woken;
        }
        if second >= 3 && k2_valid_at.is_none() {
            let real = token("https://idp", "k2", Algorithm::ES384, now);
            if v.validate(&real).is_ok() {
                k2_valid_at = Some(second);
            }
        }
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(
        k2_valid_at,
        Some(4),
        "the new kid is known within the interval"
    );
    let status = keys.status();
    // Seconds 0, 2, 4, …, 10: six refreshes for 240 junk kids (and k2 before second 4).
    assert_eq!(status.unknown_kid_refreshes, 6);
    assert_eq!(p.hits(), 7);
    // Past the interval, a junk kid already tried (second 10) wakes nothing: its own
    // cooldown holds; a new kid wakes one.
    clock.advance(Duration::from_secs(2));
    let now = clock.unix_now();
    assert!(
        v.validate(&token("https://idp", "junk-10-0", Algorithm::ES256, now))
            .is_err()
    );
    assert_eq!(keys.status().unknown_kid_refreshes, 6);
    assert!(
        v.validate(&token("https://idp", "junk-new", Algorithm::ES256, now))
            .is_err()
    );
    assert_eq!(keys.status().unknown_kid_refreshes, 7);
}

#[tokio::test]
async fn unusable_keys_are_skipped_and_reported_and_the_rest_load() {
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let mut jwks: Value = serde_json::from_str(&public_jwks(&[("k1", Algorithm::ES256)])).unwrap();
    let keys_arr = jwks["keys"].as_array_mut().unwrap();
    keys_arr.push(json!({"kty": "XYZ", "kid": "strange"}));
    let mut enc = keys_arr[0].clone();
    enc["kid"] = json!("for-encryption");
    enc["use"] = json!("enc");
    keys_arr.push(enc);
    p.edit(|s| s.jwks = jwks.to_string());
    let clock = ManualClock::starting_now();
    let (sink, audit) = Auditor::channel(100);
    let monitor = Monitor::builder()
        .clock(clock.clone())
        .auditor(Auditor::builder().sink(sink).build())
        .build();
    let keys = RemoteKeys::jwks(format!("{}/jwks", p.base))
        .clock(clock.clone())
        .observer(monitor.clone())
        .build()
        .await
        .unwrap();
    // The audit trail says what was skipped, and later what failed.
    p.edit(|s| s.status = Some(502));
    keys.refresh().await.unwrap_err();
    p.edit(|s| s.status = None);
    monitor.auditor().unwrap().flush();
    let events: Vec<AuditEvent> = audit.try_iter().collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e.action == AuditAction::RemoteKeys));
    assert_eq!(events[0].reason, Some("updated"));
    let detail = events[0].detail.as_deref().unwrap();
    assert!(
        detail.contains("skipped strange: Unsupported") && detail.contains("for-encryption"),
        "{detail}"
    );
    assert_eq!(
        (events[1].outcome, events[1].reason),
        ("failure", Some("http_status"))
    );
    assert!(
        events[1]
            .detail
            .as_deref()
            .unwrap()
            .contains("last good keys kept")
    );
    let status = keys.status();
    assert_eq!(status.kids, ["k1"]);
    let skipped: Vec<_> = status.skipped.iter().map(|s| s.kid.as_deref()).collect();
    assert_eq!(skipped, [Some("strange"), Some("for-encryption")]);
    let v = validator(&keys, "https://idp", &clock);
    v.validate(&token(
        "https://idp",
        "k1",
        Algorithm::ES256,
        clock.unix_now(),
    ))
    .unwrap();
}

#[tokio::test]
async fn every_failure_keeps_the_last_good_keys() {
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let clock = ManualClock::starting_now();
    let keys = RemoteKeys::jwks(format!("{}/jwks", p.base))
        .clock(clock.clone())
        .timeout(Duration::from_millis(300))
        .max_bytes(4096)
        .build()
        .await
        .unwrap();
    let v = validator(&keys, "https://idp", &clock);
    let t1 = token("https://idp", "k1", Algorithm::ES256, clock.unix_now());
    p.edit(|s| s.etag = None);
    type Case = (&'static str, Box<dyn Fn(&mut Script)>, RemoteErrorKind);
    let cases: Vec<Case> = vec![
        (
            "500",
            Box::new(|s| s.status = Some(500)),
            RemoteErrorKind::HttpStatus,
        ),
        (
            "404",
            Box::new(|s| s.status = Some(404)),
            RemoteErrorKind::HttpStatus,
        ),
        (
            "garbage",
            Box::new(|s| s.body = Some(b"<html>oops".to_vec())),
            RemoteErrorKind::InvalidJson,
        ),
        (
            "not UTF-8",
            Box::new(|s| s.body = Some(vec![0xff, 0xfe])),
            RemoteErrorKind::InvalidJson,
        ),
        (
            "empty set",
            Box::new(|s| s.body = Some(br#"{"keys":[]}"#.to_vec())),
            RemoteErrorKind::NoUsableKeys,
        ),
        (
            "all unusable",
            Box::new(|s| s.body = Some(br#"{"keys":[{"kty":"XYZ","kid":"a"}]}"#.to_vec())),
            RemoteErrorKind::NoUsableKeys,
        ),
        (
            "oversize",
            Box::new(|s| s.body = Some(vec![b' '; 5000])),
            RemoteErrorKind::TooLarge,
        ),
        (
            "slow",
            Box::new(|s| s.delay = Some(Duration::from_secs(3))),
            RemoteErrorKind::Timeout,
        ),
    ];
    for (i, (name, script, want)) in cases.into_iter().enumerate() {
        p.edit(|s| {
            s.status = None;
            s.body = None;
            s.delay = None;
            script(s);
        });
        let err = keys.refresh().await.unwrap_err();
        assert_eq!(err.kind(), want, "{name}: {err}");
        let status = keys.status();
        assert_eq!(status.last_error, Some(want.as_str()), "{name}");
        assert_eq!(status.consecutive_failures, i as u64 + 1, "{name}");
        assert_eq!(keys.store().current().version(), 1, "{name}");
        v.validate(&t1).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Back to normal: the status clears.
    p.edit(|s| {
        s.status = None;
        s.body = None;
        s.delay = None;
    });
    assert_eq!(keys.refresh().await.unwrap(), Refreshed::Unchanged);
    assert_eq!(keys.status().last_error, None);
    assert_eq!(keys.status().consecutive_failures, 0);

    // Nobody listening.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks", l.local_addr().unwrap())
    };
    let err = RemoteKeys::jwks(dead).build().await.unwrap_err();
    assert_eq!(err.kind(), RemoteErrorKind::Unreachable);
}

#[tokio::test]
async fn the_callers_own_client_is_used() {
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-test-client", "1".parse().unwrap());
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    RemoteKeys::issuer(&p.base)
        .client(client)
        .build()
        .await
        .unwrap();
    assert!(p.script.lock().unwrap().seen_test_header);
}

/// Polls `f` (bounded: 10 s) while the background task works.
async fn wait_for(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn several_issuers_each_with_their_own_keys_and_audiences() {
    let a = provider(&[("a-key", Algorithm::ES256)]).await;
    let b = provider(&[("b-key", Algorithm::RS256)]).await;
    let clock = ManualClock::starting_now();
    let keys_a = RemoteKeys::issuer(&a.base)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let keys_b = RemoteKeys::issuer(&b.base)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let for_b = Validator::builder(keys_b.store().clone())
        .issuer(&b.base)
        .audience("api://billing")
        .clock(clock.clone())
        .build()
        .unwrap();
    let v = Validator::builder(keys_a.store().clone())
        .issuer(&a.base)
        .audience(AUD)
        .clock(clock.clone())
        .tenant(for_b)
        .build()
        .unwrap();
    let now = clock.unix_now();
    let sign = |kid: &str, alg, iss: &str, aud: &str| {
        testing::sign(
            &testing::key(kid, alg),
            &json!({"iss": iss, "aud": aud, "sub": "alice", "iat": now, "exp": now + 600}),
        )
    };
    // Each issuer's tokens, with each issuer's audience.
    v.validate(&sign("a-key", Algorithm::ES256, &a.base, AUD))
        .unwrap();
    v.validate(&sign("b-key", Algorithm::RS256, &b.base, "api://billing"))
        .unwrap();
    // A's token signed with B's key (and the other way round): refused.
    let cross = v
        .validate(&sign("b-key", Algorithm::RS256, &a.base, AUD))
        .unwrap_err();
    assert_eq!(cross.kind(), ValidationErrorKind::UnknownKid);
    let cross = v
        .validate(&sign("a-key", Algorithm::ES256, &b.base, "api://billing"))
        .unwrap_err();
    assert_eq!(cross.kind(), ValidationErrorKind::UnknownKid);
    // B's audience is B's only.
    let wrong_aud = v
        .validate(&sign("b-key", Algorithm::RS256, &b.base, AUD))
        .unwrap_err();
    assert_eq!(wrong_aud.kind(), ValidationErrorKind::WrongAudience);
    // An issuer neither knows: refused by the first.
    let stranger = v
        .validate(&sign("a-key", Algorithm::ES256, "https://stranger", AUD))
        .unwrap_err();
    assert_eq!(stranger.kind(), ValidationErrorKind::WrongIssuer);
}

/// The admin operation behind `GET /keysets/remote`: where the keys come from, when
/// they were fetched, what failed.
#[cfg(feature = "admin")]
#[tokio::test]
async fn the_admin_status_shows_source_fetch_times_and_failures() {
    use tokenlife_core::admin::AdminState;
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let clock = ManualClock::starting_now();
    let keys = RemoteKeys::issuer(&p.base)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let v = validator(&keys, &p.base, &clock);
    let bare = AdminState::builder(v.clone())
        .admin_key("admin-key-for-remote-status")
        .build()
        .unwrap();
    assert_eq!(bare.remote().status(), 404);
    let state = AdminState::builder(v)
        .admin_key("admin-key-for-remote-status")
        .remote_keys(keys.clone())
        .build()
        .unwrap();
    p.edit(|s| s.status = Some(503));
    clock.advance(Duration::from_secs(5));
    keys.refresh().await.unwrap_err();
    let res = state.remote();
    assert_eq!(res.status(), 200);
    let body: Value = serde_json::from_slice(res.body()).unwrap();
    let src = &body["sources"][0];
    assert_eq!(src["source"], p.base);
    assert_eq!(src["jwks_uri"], format!("{}/jwks", p.base));
    assert_eq!(src["last_error"], "http_status");
    assert_eq!(src["consecutive_failures"], 1);
    assert_eq!(src["kids"], json!(["k1"]));
    assert_eq!(
        src["last_attempt"].as_u64().unwrap(),
        src["last_success"].as_u64().unwrap() + 5
    );
}

/// Security review 3, HIGH 4: a provider's JWKS that lists a symmetric `oct` key must not
/// make its `k` (public to anyone who can read the JWKS) a signing secret. The key is
/// skipped and reported; a token signed with it is refused.
#[tokio::test]
async fn a_symmetric_or_private_key_in_a_remote_jwks_is_skipped_never_trusted() {
    use base64::Engine as _;
    use tokenlife_core::jsonwebtoken::{EncodingKey, Header, encode};
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let secret = [7u8; 32];
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let mut jwks: Value = serde_json::from_str(&public_jwks(&[("k1", Algorithm::ES256)])).unwrap();
    let arr = jwks["keys"].as_array_mut().unwrap();
    arr.push(json!({"kty": "oct", "kid": "hmac", "alg": "HS256", "use": "sig", "k": k}));
    p.edit(|s| s.jwks = jwks.to_string());
    let clock = ManualClock::starting_now();
    let keys = RemoteKeys::jwks(format!("{}/jwks", p.base))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let status = keys.status();
    assert_eq!(status.kids, ["k1"]);
    assert_eq!(status.skipped.len(), 1, "{:?}", status.skipped);
    assert_eq!(status.skipped[0].kid.as_deref(), Some("hmac"));
    assert_eq!(status.skipped[0].reason, "Symmetric");
    let now = clock.unix_now();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hmac".into());
    let forged = encode(
        &header,
        &json!({"iss": "https://idp", "aud": AUD, "sub": "admin", "scope": "everything", "exp": now + 600}),
        &EncodingKey::from_secret(&secret),
    )
    .unwrap();
    let v = validator(&keys, "https://idp", &clock);
    assert_eq!(
        v.validate(&forged).unwrap_err().kind(),
        ValidationErrorKind::UnknownKid
    );
    // A JWKS of only a symmetric key has no usable key at all.
    p.edit(|s| {
        s.jwks =
            json!({"keys": [{"kty": "oct", "kid": "hmac", "alg": "HS256", "k": k}]}).to_string();
        s.etag = Some("\"v2\"".into());
    });
    let err = keys.refresh().await.unwrap_err();
    assert_eq!(err.kind(), RemoteErrorKind::NoUsableKeys);
    assert_eq!(keys.status().kids, ["k1"], "last good keys kept");
}

/// Security review 3, MEDIUM 10: the discovery document cannot send the gateway to any
/// host (SSRF at start and on every refresh) nor downgrade it to plain http. Its
/// `jwks_uri` must be on the issuer's origin or one the operator allowed; `http://` only
/// to loopback or with an explicit opt-in.
#[tokio::test]
async fn discovery_cannot_point_the_jwks_fetch_at_another_host_or_plain_http() {
    let idp = provider(&[("k1", Algorithm::ES256)]).await;
    let elsewhere = provider(&[("k1", Algorithm::ES256)]).await;
    idp.edit(|s| s.jwks_uri_in_doc = Some(format!("{}/jwks", elsewhere.base)));
    let err = RemoteKeys::issuer(&idp.base).build().await.unwrap_err();
    assert_eq!(err.kind(), RemoteErrorKind::ForeignOrigin);
    assert_eq!(elsewhere.hits(), 0, "nothing fetched from the other host");
    // The operator may allow that origin.
    let keys = RemoteKeys::issuer(&idp.base)
        .allow_jwks_origin(&elsewhere.base)
        .build()
        .await
        .unwrap();
    assert_eq!(keys.status().kids, ["k1"]);
    assert_eq!(elsewhere.hits(), 1);
    // Plain http off loopback is refused before any connection, unless opted in.
    idp.edit(|s| s.jwks_uri_in_doc = Some("http://keys.example.net/jwks".into()));
    let err = RemoteKeys::issuer(&idp.base).build().await.unwrap_err();
    assert_eq!(err.kind(), RemoteErrorKind::InsecureUrl);
    for url in ["http://idp.example.net/jwks", "http://10.0.0.1/jwks"] {
        let err = RemoteKeys::jwks(url).build().await.unwrap_err();
        assert_eq!(err.kind(), RemoteErrorKind::InsecureUrl, "{url}");
    }
    let err = RemoteKeys::jwks("file:///etc/passwd")
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), RemoteErrorKind::InvalidUrl);
}

/// Security review 3, LOW 19: remote keys age out. A provider unreachable — or serving no
/// usable key — for longer than `max_staleness` makes its tokens a 503 `keys_stale`
/// instead of trusting keys it may have withdrawn; one good fetch restores them. And the
/// unknown-kid cooldown cannot be set to zero (every junk kid would be a fetch).
#[tokio::test]
async fn remote_keys_age_out_after_max_staleness_and_the_cooldown_has_a_floor() {
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let clock = ManualClock::starting_now();
    let keys = RemoteKeys::jwks(format!("{}/jwks", p.base))
        .clock(clock.clone())
        .max_staleness(Duration::from_secs(3_600))
        .unknown_kid_cooldown(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let v = validator(&keys, "https://idp", &clock);
    let t = |clock: &ManualClock| token("https://idp", "k1", Algorithm::ES256, clock.unix_now());
    v.validate(&t(&clock)).unwrap();
    // The provider fails from now on: the last keys serve until the bound.
    p.edit(|s| s.status = Some(502));
    clock.advance(Duration::from_secs(1_800));
    keys.refresh().await.unwrap_err();
    v.validate(&t(&clock)).unwrap();
    clock.advance(Duration::from_secs(1_801));
    keys.refresh().await.unwrap_err();
    let err = v.validate(&t(&clock)).unwrap_err();
    assert_eq!(err.kind(), ValidationErrorKind::KeysStale);
    assert_eq!((err.status(), err.rfc6750_code()), (503, None));
    // A JWKS with no usable key is no better.
    p.edit(|s| {
        s.status = None;
        s.jwks = r#"{"keys":[]}"#.into();
        s.etag = Some("\"empty\"".into());
    });
    keys.refresh().await.unwrap_err();
    assert_eq!(
        v.validate(&t(&clock)).unwrap_err().kind(),
        ValidationErrorKind::KeysStale
    );
    // One good fetch restores the source.
    p.edit(|s| {
        s.jwks = public_jwks(&[("k1", Algorithm::ES256)]);
        s.etag = Some("\"back\"".into());
    });
    keys.refresh().await.unwrap();
    v.validate(&t(&clock)).unwrap();
    // Cooldown 0 was raised to the floor: two unknown kids in the same second wake one
    // refresh.
    for kid in ["junk-1", "junk-2"] {
        let junk = token("https://idp", kid, Algorithm::ES256, clock.unix_now());
        assert!(v.validate(&junk).is_err());
    }
    assert_eq!(keys.status().unknown_kid_refreshes, 1);
}

/// The Monitor counts remote-key events by their typed outcome: fetches by outcome, the
/// skipped entries of a change (one per entry), and suppressed unknown kids.
#[test]
fn the_monitor_counts_remote_key_events() {
    use metrics_util::debugging::DebuggingRecorder;
    use tokenlife_core::observe::metrics as m;
    use tokenlife_core::observe::{Event, Observer, RemoteFetch};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let monitor = tokenlife_core::Monitor::builder().build();
        let skipped = ["k9: Symmetric".to_owned(), "k8: PrivateMaterial".to_owned()];
        for (outcome, skipped) in [
            (RemoteFetch::Updated, &skipped[..]),
            (RemoteFetch::Unchanged, &skipped[..]),
            (RemoteFetch::Failed(RemoteErrorKind::Timeout), &[][..]),
        ] {
            monitor.on_event(&Event::RemoteKeys {
                source: "https://idp.example",
                outcome,
                version: 2,
                skipped,
                degraded: outcome.is_failure(),
            });
        }
        monitor.on_event(&Event::UnknownKidSuppressed {
            source: "https://idp.example",
        });
    });
    let snap = snapshotter.snapshot().into_vec();
    let value = |name: &str, label: Option<&str>| {
        snap.iter()
            .filter(|(k, _, _, _)| {
                k.key().name() == name
                    && label.is_none_or(|l| k.key().labels().any(|x| x.value() == l))
            })
            .map(|(_, _, _, v)| format!("{v:?}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(value(m::REMOTE_FETCHES, Some("updated")), ["Counter(1)"]);
    assert_eq!(value(m::REMOTE_FETCHES, Some("timeout")), ["Counter(1)"]);
    // Skipped entries count when the keys change, once per entry.
    assert_eq!(value(m::REMOTE_KEYS_SKIPPED, None), ["Counter(2)"]);
    assert_eq!(
        value(m::REMOTE_UNKNOWN_KID_SUPPRESSED, None),
        ["Counter(1)"]
    );
    // The last event said degraded (a failed start): the source's gauge is 1.
    assert_eq!(
        value(m::REMOTE_DEGRADED, Some("https://idp.example")),
        ["Gauge(1.0)"]
    );
}

/// Peer gaps, item 1, in fleet mode: the last good JWKS is kept in the fleet's Redis
/// (`RedisLastGood`). A node restarted while the provider is down starts from the keys a
/// peer fetched (tokens pass at once, status degraded, the peer's fetch time shown); while
/// it stays cut off, newer keys a peer fetched after a rotation are taken on its next
/// failed refresh; once the provider answers, its own keys win. A compromised Redis can
/// offer only public keys: a record holding a signing (`oct`) key is ignored, a fetch time
/// in the future is held to now, and an oversize record is never read.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_starts_from_the_keys_its_fleet_kept() {
    use tokenlife_core::fleet::RedisLastGood;
    use tokenlife_core::keys::remote::{LastGood, LastGoodStore};
    let redis = testing::RedisServer::start();
    let shared = || RedisLastGood::new(&redis.url()).unwrap().prefix("{t}");
    let p = provider(&[("k1", Algorithm::ES256)]).await;
    let source = format!("{}/jwks", p.base);
    let clock = ManualClock::starting_now();
    let t0 = clock.unix_now();
    let a = RemoteKeys::jwks(&source)
        .clock(clock.clone())
        .last_good(shared())
        .build()
        .await
        .unwrap();
    assert_eq!(shared().load(&source).unwrap().fetched_at, t0);

    // The provider goes down; node B restarts and starts from the fleet's copy.
    p.edit(|s| s.status = Some(502));
    clock.advance(Duration::from_secs(600));
    let b = RemoteKeys::jwks(&source)
        .clock(clock.clone())
        .last_good(shared())
        .degraded_start(true)
        .build()
        .await
        .unwrap();
    let status = b.status();
    assert!(status.degraded);
    assert_eq!(
        (status.kids.clone(), status.keys_fetched_at),
        (vec!["k1".to_owned()], Some(t0))
    );
    let vb = validator(&b, "https://idp", &clock);
    vb.validate(&token(
        "https://idp",
        "k1",
        Algorithm::ES256,
        clock.unix_now(),
    ))
    .unwrap();

    // The provider rotates to k2 and node A (which reaches it) fetches; B is still cut
    // off: its next failed refresh takes the newer keys its peer kept.
    p.edit(|s| {
        s.status = None;
        s.jwks = public_jwks(&[("k2", Algorithm::ES256)]);
        s.etag = Some("\"v2\"".into());
    });
    clock.advance(Duration::from_secs(60));
    let t1 = clock.unix_now();
    assert!(matches!(a.refresh().await.unwrap(), Refreshed::Updated(_)));
    p.edit(|s| s.status = Some(502));
    b.refresh().await.unwrap_err();
    let status = b.status();
    assert!(status.degraded, "the provider is still not reached");
    assert_eq!(
        (status.kids.clone(), status.keys_fetched_at),
        (vec!["k2".to_owned()], Some(t1))
    );
    vb.validate(&token(
        "https://idp",
        "k2",
        Algorithm::ES256,
        clock.unix_now(),
    ))
    .unwrap();

    // The provider answers B again: its own fetch wins, the degraded state ends.
    p.edit(|s| s.status = None);
    clock.advance(Duration::from_secs(5));
    b.refresh().await.unwrap();
    let status = b.status();
    assert!(!status.degraded);
    assert_eq!(status.keys_fetched_at, Some(clock.unix_now()));

    // A compromised Redis: a signing key is not a public key, so nothing is trusted.
    let evil = "http://127.0.0.1:1/evil/jwks";
    shared().save(
        evil,
        &LastGood {
            jwks: r#"{"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}"#.into(),
            fetched_at: clock.unix_now(),
        },
    );
    // A start while its provider is down (a port nothing listens on), from the fleet's copy.
    let start_down = |source: &'static str| {
        RemoteKeys::jwks(source)
            .clock(clock.clone())
            .timeout(Duration::from_millis(300))
            .last_good(shared())
            .degraded_start(true)
            .build()
    };
    let c = start_down(evil).await.unwrap();
    assert_eq!(c.status().keys_fetched_at, None);
    let vc = validator(&c, "https://idp", &clock);
    assert_eq!(
        vc.validate(&token(
            "https://idp",
            "k1",
            Algorithm::HS256,
            clock.unix_now()
        ))
        .unwrap_err()
        .kind(),
        ValidationErrorKind::KeysStale
    );
    // A fetch time in the future is held to now (trusted no longer than a fresh fetch).
    let future = "http://127.0.0.1:1/future/jwks";
    shared().save(
        future,
        &LastGood {
            jwks: public_jwks(&[("k1", Algorithm::ES256)]),
            fetched_at: clock.unix_now() + 10_000_000,
        },
    );
    let d = start_down(future).await.unwrap();
    assert_eq!(d.status().keys_fetched_at, Some(clock.unix_now()));
    // An oversize record is never read.
    let big = "http://127.0.0.1:1/big/jwks";
    shared().save(
        big,
        &LastGood {
            jwks: "x".repeat(tokenlife_core::Keyset::MAX_JWKS_BYTES + 1),
            fetched_at: clock.unix_now(),
        },
    );
    assert_eq!(shared().load(big), None);
    assert!(shared().load(&source).is_some());
}
