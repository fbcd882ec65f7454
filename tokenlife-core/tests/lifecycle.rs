//! The lifecycle end to end on a manual clock: issue, validate, renew, reuse, family
//! revocation, expiry; API keys; metrics (debugging recorder); audit sinks; alerts.

mod common;

use std::io::Write;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{AUD, ISS, T0};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokenlife_core::apikey::{ApiKeyErrorKind, ApiKeys};
use tokenlife_core::issue::RenewErrorKind;
use tokenlife_core::observe::audit::{AuditAction, AuditEvent, Auditor};
use tokenlife_core::observe::lifecycle::{TokenKind, TokenState};
use tokenlife_core::observe::{AlertKind, AlertPolicy};
use tokenlife_core::{
    Algorithm, Issuer, Keyset, KeysetStore, ManualClock, Monitor, TokenRequest,
    ValidationErrorKind as K, Validator, testing,
};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

struct World {
    clock: ManualClock,
    store: KeysetStore,
    monitor: Monitor,
    validator: Validator,
    issuer: Issuer,
    api_keys: ApiKeys,
    events: Receiver<AuditEvent>,
    json: Buf,
    snapshotter: Snapshotter,
    recorder: Arc<DebuggingRecorder>,
}

fn world(policy: AlertPolicy) -> World {
    let recorder = Arc::new(DebuggingRecorder::new());
    let snapshotter = recorder.snapshotter();
    // Handles registered inside keep reporting to this recorder.
    metrics::with_local_recorder(&*recorder.clone(), || {
        let clock = ManualClock::at_unix(T0);
        let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
        let (sink, events) = Auditor::channel(10_000);
        let json = Buf::default();
        let auditor = Auditor::builder()
            .sink(sink)
            .json_lines(json.clone())
            .tracing()
            .build();
        let monitor = Monitor::builder()
            .clock(clock.clone())
            .auditor(auditor)
            .alert_policy(policy)
            .latency_sample(1)
            .build();
        let validator = Validator::builder(store.clone())
            .issuer(ISS)
            .audience(AUD)
            .clock(clock.clone())
            .monitor(monitor.clone())
            .build()
            .unwrap();
        let issuer = Issuer::builder(store.clone())
            .issuer(ISS)
            .audience(AUD)
            .access_ttl(Duration::from_secs(900))
            .refresh_ttl(Duration::from_secs(86_400))
            .clock(clock.clone())
            .revocations(validator.revocations().clone())
            .monitor(monitor.clone())
            .build()
            .unwrap();
        let api_keys = ApiKeys::builder()
            .clock(clock.clone())
            .monitor(monitor.clone())
            .build();
        World {
            clock,
            store,
            monitor,
            validator,
            issuer,
            api_keys,
            events,
            json,
            snapshotter,
            recorder,
        }
    })
}

impl World {
    fn events(&self) -> Vec<AuditEvent> {
        self.monitor.auditor().unwrap().flush();
        self.events.try_iter().collect()
    }

    /// Counter values accumulated since the last call (a snapshot drains counters).
    fn counters(&self) -> Vec<(metrics_util::CompositeKey, DebugValue)> {
        self.snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, _, v)| (k, v))
            .collect()
    }
}

fn counter(
    snap: &[(metrics_util::CompositeKey, DebugValue)],
    name: &str,
    labels: &[(&str, &str)],
) -> u64 {
    snap.iter()
        .filter(|(k, _)| {
            k.key().name() == name
                && labels
                    .iter()
                    .all(|(n, v)| k.key().labels().any(|l| l.key() == *n && l.value() == *v))
        })
        .map(|(_, v)| match v {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

fn transitions(w: &World, kind: TokenKind, from: Option<TokenState>, to: TokenState) -> u64 {
    w.monitor.tracker().count(kind, from, to)
}

#[test]
fn one_token_through_its_whole_life() {
    let w = world(AlertPolicy::default());
    // Per-keyset-version counters are registered when a version is first seen: keep the
    // test's recorder in place for the whole story.
    metrics::with_local_recorder(&*w.recorder.clone(), || whole_life(&w));
}

fn whole_life(w: &World) {
    let pair = w
        .issuer
        .issue(TokenRequest::subject("user-42").scope("orders:read"))
        .unwrap();
    assert_eq!(pair.expires_in, 900);
    let refresh1 = pair.refresh_token.clone().unwrap();

    // validate: Issued → Active (first sight), then cache hits
    let v = w.validator.validate(&pair.access_token).unwrap();
    assert_eq!(v.claims().sub.as_deref(), Some("user-42"));
    assert!(v.claims().family.is_some());
    assert!(
        w.validator
            .validate(&pair.access_token)
            .unwrap()
            .from_cache()
    );

    // renew: the refresh token is retired, a new pair in the same family
    w.clock.advance(Duration::from_secs(600));
    let pair2 = w.issuer.renew(&refresh1).unwrap();
    let v2 = w.validator.validate(&pair2.access_token).unwrap();
    assert_eq!(v2.claims().family, v.claims().family);

    // presented again at once (the answer was lost): a sibling pair in the same family
    let sibling = w.issuer.renew(&refresh1).unwrap();
    assert_eq!(
        w.validator
            .validate(&sibling.access_token)
            .unwrap()
            .claims()
            .family,
        v.claims().family
    );
    w.validator.validate(&pair2.access_token).unwrap();

    // reuse of the retired refresh token after the retry grace: family revoked, alert
    w.clock.advance(Duration::from_secs(31));
    let err = w.issuer.renew(&refresh1).unwrap_err();
    assert_eq!(err.kind(), RenewErrorKind::Reused);
    assert_eq!(
        err.oauth_error(),
        tokenlife_core::error::ErrorCode::InvalidGrant
    );
    let refresh2 = pair2.refresh_token.clone().unwrap();
    assert_eq!(
        w.issuer.renew(&refresh2).unwrap_err().kind(),
        RenewErrorKind::Revoked
    );
    let revoked = w.validator.validate(&pair2.access_token).unwrap_err();
    assert_eq!((revoked.kind(), revoked.field()), (K::Revoked, Some("fam")));

    // expiry of an unrelated token on the manual clock
    let other = w
        .issuer
        .issue_access(TokenRequest::subject("user-7"))
        .unwrap();
    assert!(other.refresh_token.is_none());
    w.validator.validate(&other.access_token).unwrap();
    w.clock.advance(Duration::from_secs(901 + 30));
    assert_eq!(
        w.validator
            .validate(&other.access_token)
            .unwrap_err()
            .kind(),
        K::Expired
    );

    // lifecycle counts
    use TokenState::*;
    // (the sibling of the retry counts as one more issue and renewal)
    assert_eq!(transitions(w, TokenKind::Access, None, Issued), 4);
    assert_eq!(transitions(w, TokenKind::Access, Some(Issued), Active), 4);
    assert_eq!(transitions(w, TokenKind::Refresh, None, Issued), 3);
    assert_eq!(transitions(w, TokenKind::Refresh, Some(Issued), Renewed), 2);
    assert_eq!(
        transitions(w, TokenKind::Refresh, Some(Renewed), Revoked),
        1
    );
    assert_eq!(
        transitions(w, TokenKind::Access, Some(Active), Revoked),
        1,
        "family write to the list"
    );
    assert_eq!(transitions(w, TokenKind::Access, Some(Active), Expired), 1);

    // metrics, through the facade
    let snap = w.counters();
    assert_eq!(
        counter(
            &snap,
            "tokenlife_tokens_issued_total",
            &[("kind", "access")]
        ),
        4
    );
    assert_eq!(
        counter(
            &snap,
            "tokenlife_tokens_renewed_total",
            &[("kind", "refresh")]
        ),
        2
    );
    assert_eq!(counter(&snap, "tokenlife_refresh_retries_total", &[]), 1);
    assert_eq!(counter(&snap, "tokenlife_refresh_reuse_total", &[]), 1);
    assert_eq!(
        counter(
            &snap,
            "tokenlife_validations_total",
            &[("outcome", "ok"), ("keyset_version", "1")]
        ),
        6
    );
    assert_eq!(
        counter(
            &snap,
            "tokenlife_validations_total",
            &[("outcome", "revoked")]
        ),
        1
    );
    assert_eq!(
        counter(
            &snap,
            "tokenlife_validations_total",
            &[("outcome", "expired")]
        ),
        1
    );
    assert_eq!(counter(&snap, "tokenlife_cache_hits_total", &[]), 2);
    assert_eq!(counter(&snap, "tokenlife_cache_misses_total", &[]), 4);
    assert_eq!(
        counter(
            &snap,
            "tokenlife_alerts_total",
            &[("alert", "refresh_token_reuse")]
        ),
        1
    );
    assert_eq!(
        counter(
            &snap,
            "tokenlife_alerts_total",
            &[("alert", "revoked_token_reuse")]
        ),
        1
    );
    assert_eq!(
        counter(
            &snap,
            "tokenlife_tokens_expired_total",
            &[("kind", "access")]
        ),
        1
    );
    assert!(
        snap.iter()
            .any(|(k, _)| k.key().name() == "tokenlife_validation_duration_seconds")
    );
    // bounded label cardinality: no subject or token id anywhere in the labels
    for (k, _) in &snap {
        for l in k.key().labels() {
            assert!(!l.value().contains("user-"), "{}={}", l.key(), l.value());
        }
    }

    // audit: the story in order, with fingerprints
    let events = w.events();
    let actions: Vec<_> = events.iter().map(|e| e.action).collect();
    assert!(actions.contains(&AuditAction::TokenIssued));
    assert!(actions.contains(&AuditAction::TokenRenewed));
    let alerts: Vec<_> = events.iter().filter_map(|e| e.alert).collect();
    assert!(alerts.contains(&AlertKind::RefreshTokenReuse));
    assert!(alerts.contains(&AlertKind::RevokedTokenReuse));
    let reuse = events
        .iter()
        .find(|e| e.alert == Some(AlertKind::RefreshTokenReuse))
        .unwrap();
    assert_eq!(reuse.fingerprint, Some(w.monitor.fingerprint(&refresh1)));
    assert_eq!(reuse.subject.as_deref(), Some("user-42"));
}

#[test]
fn no_sink_ever_sees_a_raw_token_or_key() {
    let w = world(AlertPolicy {
        burst_threshold: 2,
        spike_threshold: 3,
        ..AlertPolicy::default()
    });
    let mut secrets = Vec::new();
    let pair = w
        .issuer
        .issue(TokenRequest::subject("s").client("app"))
        .unwrap();
    secrets.push(pair.access_token.clone());
    let r1 = pair.refresh_token.clone().unwrap();
    secrets.push(r1.clone());
    w.validator.validate(&pair.access_token).unwrap();
    let pair2 = w.issuer.renew_as(&r1, Some("app")).unwrap();
    secrets.push(pair2.access_token.clone());
    secrets.push(pair2.refresh_token.clone().unwrap());
    w.clock.advance(Duration::from_secs(31));
    let _ = w.issuer.renew_as(&r1, Some("app")); // reuse
    let _ = w.validator.validate(&pair2.access_token); // revoked
    let forged = testing::sign(&testing::key("k1", Algorithm::HS256), &common::claims());
    secrets.push(forged.clone());
    for _ in 0..3 {
        let _ = w.validator.validate_from(&forged, Some("10.0.0.9"));
    }
    let (raw_key, info) = w
        .api_keys
        .issue("ci-bot", Duration::from_secs(3600))
        .unwrap();
    secrets.push(raw_key.clone());
    w.api_keys.validate(&raw_key).unwrap();
    let (raw2, _) = w
        .api_keys
        .rotate(&info.id, Duration::from_secs(60))
        .unwrap();
    secrets.push(raw2.clone());
    w.api_keys.revoke(&info.id);
    let _ = w.api_keys.validate(&raw_key);
    let _ = w.issuer.renew("tlr_garbage");

    let events = w.events();
    assert!(events.len() > 10);
    let channel_text: String = events.iter().map(AuditEvent::to_json).collect();
    let json_text = w.json.text();
    assert!(json_text.lines().count() >= events.len());
    for secret in &secrets {
        // The signature part alone is enough to tell.
        let tail = &secret[secret.len() - 20..];
        assert!(!channel_text.contains(tail), "channel sink holds a token");
        assert!(!json_text.contains(tail), "JSON-lines sink holds a token");
    }
    // The alerts of this story were raised.
    let alerts: Vec<_> = events.iter().filter_map(|e| e.alert).collect();
    for a in [
        AlertKind::RefreshTokenReuse,
        AlertKind::RevokedTokenReuse,
        AlertKind::BadSignatureBurst,
        AlertKind::FailureSpike,
    ] {
        assert!(alerts.contains(&a), "{a:?} missing from {alerts:?}");
    }
}

#[test]
fn bursts_and_spikes_follow_the_injected_clock() {
    let w = world(AlertPolicy {
        burst_threshold: 3,
        burst_window: Duration::from_secs(60),
        spike_threshold: 5,
        spike_window: Duration::from_secs(60),
    });
    let bad = testing::sign(&testing::key("nope", Algorithm::ES256), &common::claims());
    let burst = |w: &World| {
        w.events()
            .iter()
            .filter(|e| e.alert == Some(AlertKind::BadSignatureBurst))
            .count()
    };
    w.validator.validate_from(&bad, Some("a")).unwrap_err();
    w.validator.validate_from(&bad, Some("a")).unwrap_err();
    assert_eq!(burst(&w), 0);
    // A minute later the window starts over: two more do not alert…
    w.clock.advance(Duration::from_secs(60));
    w.validator.validate_from(&bad, Some("a")).unwrap_err();
    w.validator.validate_from(&bad, Some("a")).unwrap_err();
    assert_eq!(burst(&w), 0);
    // …the third in the same window does, once.
    w.validator.validate_from(&bad, Some("a")).unwrap_err();
    w.validator.validate_from(&bad, Some("a")).unwrap_err();
    let events = w.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.alert == Some(AlertKind::BadSignatureBurst))
            .count(),
        1
    );
    // 6 failures in all, but only 4 in the second window: no spike yet.
    assert_eq!(
        events
            .iter()
            .filter(|e| e.alert == Some(AlertKind::FailureSpike))
            .count(),
        0
    );
    w.validator.validate("garbage").unwrap_err();
    assert_eq!(
        w.events()
            .iter()
            .filter(|e| e.alert == Some(AlertKind::FailureSpike))
            .count(),
        1
    );
}

#[test]
fn bad_refresh_tokens_change_nothing() {
    let w = world(AlertPolicy::default());
    let pair = w.issuer.issue(TokenRequest::subject("s")).unwrap();
    let good = pair.refresh_token.unwrap();
    let foreign = format!("tlr_{}", "A".repeat(43));
    for (bad, kind) in [
        ("", RenewErrorKind::Malformed),
        ("tlr_short", RenewErrorKind::Malformed),
        (&*format!("xyz_{}", &good[4..]), RenewErrorKind::Malformed),
        (
            &*format!("tlr_{}!", &good[4..good.len() - 1]),
            RenewErrorKind::Malformed,
        ),
        (&*foreign, RenewErrorKind::Unknown),
        (&*pair.access_token, RenewErrorKind::Malformed),
    ] {
        assert_eq!(w.issuer.renew(bad).unwrap_err().kind(), kind, "{bad:?}");
    }
    // The good token still renews (nothing was retired or revoked).
    let next = w.issuer.renew(&good).unwrap();
    // An expired refresh token is refused and stays unused (no reuse alarm later).
    w.clock.advance(Duration::from_secs(86_401));
    let r = next.refresh_token.unwrap();
    assert_eq!(
        w.issuer.renew(&r).unwrap_err().kind(),
        RenewErrorKind::Expired
    );
    assert_eq!(
        w.issuer.renew(&r).unwrap_err().kind(),
        RenewErrorKind::Expired
    );
    assert_eq!(
        w.monitor.tracker().count(
            TokenKind::Refresh,
            Some(TokenState::Renewed),
            TokenState::Revoked
        ),
        0
    );
}

/// Eight renewals of one token at once: the first renewal and exactly three idempotent
/// retries (the default bound) get a pair, the rest are refused as a race; of the four
/// siblings only the first renewed moves the family on.
#[test]
fn concurrent_renewals_of_one_token_give_a_bounded_generation() {
    let w = world(AlertPolicy::default());
    let r = w
        .issuer
        .issue(TokenRequest::subject("s"))
        .unwrap()
        .refresh_token
        .unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| w.issuer.renew(&r).map_err(|e| e.kind())))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let pairs: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(pairs.len(), 4, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|e| e.as_ref().unwrap_err() == &RenewErrorKind::Rotated)
    );
    let renewed: Vec<_> = pairs
        .iter()
        .map(|p| w.issuer.renew(p.refresh_token.as_deref().unwrap()).is_ok())
        .collect();
    assert_eq!(renewed, [true, false, false, false]);
}

#[test]
fn issue_request_checks() {
    let w = world(AlertPolicy::default());
    assert!(w.issuer.issue(TokenRequest::subject("")).is_err());
    assert!(
        w.issuer
            .issue(TokenRequest::subject("s").claim("exp", 1))
            .is_err()
    );
    let pair = w
        .issuer
        .issue_access(TokenRequest::subject("s").claim("tenant", "acme"))
        .unwrap();
    let v = w.validator.validate(&pair.access_token).unwrap();
    #[derive(serde::Deserialize)]
    struct C {
        tenant: String,
    }
    assert_eq!(v.deserialize_claims::<C>().unwrap().tenant, "acme");
    // No signing key (a public-only keyset): a typed error.
    let jwks = Keyset::new([testing::key("k1", Algorithm::ES256)])
        .unwrap()
        .to_public_jwks();
    w.store.publish(Keyset::from_jwks_json(&jwks).unwrap());
    assert_eq!(
        w.issuer
            .issue(TokenRequest::subject("s"))
            .unwrap_err()
            .kind(),
        tokenlife_core::issue::IssueErrorKind::NoSigningKey
    );
}

#[test]
fn api_keys_live_the_same_lifecycle() {
    let w = world(AlertPolicy::default());
    let (raw, info) = w
        .api_keys
        .issue("ci-bot", Duration::from_secs(3600))
        .unwrap();
    assert!(raw.starts_with("tl_live_") && raw.contains(&*info.id));
    assert_eq!(&*w.api_keys.validate(&raw).unwrap().client, "ci-bot");
    // Wrong shapes are refused before lookup; a wrong secret is "unknown".
    for bad in [
        "",
        "tl_live_",
        "sk_live_abc",
        &raw[..raw.len() - 1],
        &format!("{raw}x"),
    ] {
        assert_eq!(
            w.api_keys.validate(bad).unwrap_err().kind(),
            ApiKeyErrorKind::Malformed,
            "{bad}"
        );
    }
    let mut wrong = raw.clone().into_bytes();
    let n = wrong.len() - 1;
    wrong[n] = if wrong[n] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        w.api_keys
            .validate(std::str::from_utf8(&wrong).unwrap())
            .unwrap_err()
            .kind(),
        ApiKeyErrorKind::Unknown
    );

    // Rotation: both work during the overlap, then only the new one.
    let (raw2, info2) = w
        .api_keys
        .rotate(&info.id, Duration::from_secs(300))
        .unwrap();
    assert!(w.api_keys.validate(&raw).is_ok() && w.api_keys.validate(&raw2).is_ok());
    w.clock.advance(Duration::from_secs(301));
    assert_eq!(
        w.api_keys.validate(&raw).unwrap_err().kind(),
        ApiKeyErrorKind::Expired
    );
    assert!(w.api_keys.validate(&raw2).is_ok());
    // Expiry and revocation.
    w.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        w.api_keys.validate(&raw2).unwrap_err().kind(),
        ApiKeyErrorKind::Expired
    );
    let (raw3, info3) = w.api_keys.issue("ops", Duration::from_secs(60)).unwrap();
    assert!(w.api_keys.revoke(&info3.id));
    assert_eq!(
        w.api_keys.validate(&raw3).unwrap_err().kind(),
        ApiKeyErrorKind::Revoked
    );
    assert!(!w.api_keys.revoke("no-such-id"));
    w.api_keys.sweep(w.monitor.now());
    assert!(w.api_keys.get(&info2.id).is_none() && w.api_keys.is_empty());

    use TokenState::*;
    let t = |from, to| transitions(&w, TokenKind::ApiKey, from, to);
    assert_eq!(t(None, Issued), 3);
    assert_eq!(t(Some(Issued), Active), 2);
    assert_eq!(t(Some(Active), Renewed), 1);
    assert_eq!(t(Some(Active), Expired), 2);
    assert_eq!(t(Some(Active), Revoked), 1);
    let snap = w.counters();
    assert_eq!(
        counter(
            &snap,
            "tokenlife_api_key_validations_total",
            &[("outcome", "malformed")]
        ),
        5
    );
}

#[test]
fn validations_are_counted_per_keyset_version_across_rollbacks() {
    let w = world(AlertPolicy::default());
    metrics::with_local_recorder(&*w.recorder.clone(), || {
        let token = w
            .issuer
            .issue_access(TokenRequest::subject("s"))
            .unwrap()
            .access_token;
        let same_keys = w.store.current().active().clone();
        w.validator.validate(&token).unwrap(); // v1
        let v2 = w.store.publish(same_keys.with_label("v2"));
        w.validator.validate(&token).unwrap(); // v2
        w.store.rollback().unwrap();
        w.validator.validate(&token).unwrap(); // v1 again
        w.store.rollback_to(v2).unwrap();
        w.validator.validate(&token).unwrap(); // v2 again
        w.validator.validate(&token).unwrap();
        let snap = w.counters();
        let ok = |v: &str| {
            counter(
                &snap,
                "tokenlife_validations_total",
                &[("outcome", "ok"), ("keyset_version", v)],
            )
        };
        assert_eq!((ok("1"), ok("2")), (2, 3));
    });
}

/// Finding 18: however many keyset versions a process sees, the metric series stay
/// bounded (per-version labels for the first `MAX_VERSION_LABELS`, then "other").
#[test]
fn per_version_series_are_bounded() {
    const MAX_VERSION_LABELS: usize = Monitor::MAX_VERSION_LABELS;
    let w = world(AlertPolicy::default());
    metrics::with_local_recorder(&*w.recorder.clone(), || {
        let token = w
            .issuer
            .issue_access(TokenRequest::subject("s"))
            .unwrap()
            .access_token;
        let keys = w.store.current().active().clone();
        for _ in 0..MAX_VERSION_LABELS + 20 {
            w.store.publish(keys.clone());
            w.validator.validate(&token).unwrap();
        }
        let snap = w.counters();
        let labels: std::collections::HashSet<String> = snap
            .iter()
            .filter(|(k, _)| k.key().name() == "tokenlife_validations_total")
            .filter_map(|(k, _)| {
                k.key()
                    .labels()
                    .find(|l| l.key() == "keyset_version")
                    .map(|l| l.value().to_owned())
            })
            .collect();
        assert_eq!(labels.len(), MAX_VERSION_LABELS + 1, "{labels:?}");
        assert!(labels.contains("other"));
        let other = counter(
            &snap,
            "tokenlife_validations_total",
            &[("outcome", "ok"), ("keyset_version", "other")],
        );
        assert_eq!(other, 20);
    });
}

/// Peer gaps, item 11: validations are counted per issuer. A validator for one issuer
/// with a tenant for another, sharing one Monitor: each issuer's successes and failures
/// carry its own `issuer` label (from configuration: a token's own `iss` never becomes a
/// label — an unknown one is judged, and labelled, by the main validator).
#[test]
fn validations_are_counted_per_issuer() {
    let recorder = Arc::new(DebuggingRecorder::new());
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&*recorder.clone(), || {
        let monitor = Monitor::builder().clock(ManualClock::at_unix(T0)).build();
        let key = |kid| testing::key(kid, Algorithm::ES256);
        let store = |kid| KeysetStore::new(Keyset::new([key(kid)]).unwrap());
        let tenant = Validator::builder(store("b-key"))
            .issuer("https://b.example")
            .audience(AUD)
            .clock(ManualClock::at_unix(T0))
            .monitor(monitor.clone())
            .build()
            .unwrap();
        let v = Validator::builder(store("a-key"))
            .issuer(ISS)
            .audience(AUD)
            .clock(ManualClock::at_unix(T0))
            .monitor(monitor.clone())
            .tenant(tenant)
            .build()
            .unwrap();
        let claims = |iss: &str| serde_json::json!({"iss": iss, "aud": AUD, "sub": "u", "iat": T0, "exp": T0 + 600});
        for _ in 0..3 {
            v.validate(&testing::sign(&key("a-key"), &claims(ISS)))
                .unwrap();
        }
        v.validate(&testing::sign(&key("b-key"), &claims("https://b.example")))
            .unwrap();
        // B's claim under A's key: B does not know the key.
        v.validate(&testing::sign(&key("a-key"), &claims("https://b.example")))
            .unwrap_err();
        // An issuer nobody configured: judged (and labelled) by the main validator.
        v.validate(&testing::sign(
            &key("a-key"),
            &claims("https://attacker.example"),
        ))
        .unwrap_err();
    });
    let snap: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| (k, v))
        .collect();
    let ok = |iss| {
        counter(
            &snap,
            "tokenlife_validations_total",
            &[("outcome", "ok"), ("issuer", iss)],
        )
    };
    assert_eq!((ok(ISS), ok("https://b.example")), (3, 1));
    assert_eq!(
        counter(
            &snap,
            "tokenlife_validations_total",
            &[("outcome", "unknown_kid"), ("issuer", "https://b.example")]
        ),
        1
    );
    assert_eq!(
        counter(
            &snap,
            "tokenlife_validations_total",
            &[("outcome", "wrong_issuer"), ("issuer", ISS)]
        ),
        1
    );
    assert!(
        snap.iter().all(|(k, _)| k
            .key()
            .labels()
            .all(|l| l.value() != "https://attacker.example")),
        "a token's iss is never a label"
    );
}
