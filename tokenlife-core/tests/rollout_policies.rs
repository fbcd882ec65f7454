//! Staged rollouts and blue-green continuity on the manual clock: a canary by traffic
//! share (stable per subject, the candidate's keys only inside it, the guard judging the
//! canary arm alone and bounding how many clients see a broken candidate), shadow
//! candidates (counted, never answering), and the three retirement policies for tokens of
//! keys a change removes — each tried from the attacker's side too.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;
use tokenlife_core::error::KeysetErrorKind;
use tokenlife_core::keys::{KeysetSnapshot, Retirement};
use tokenlife_core::observe::{Arm, Event, RetirementPolicy, from_fn};
use tokenlife_core::rollout::{GuardPolicy, RolloutGuard};
use tokenlife_core::{
    Algorithm, Issuer, Key, Keyset, KeysetStore, ManualClock, TokenRequest,
    ValidationErrorKind as K, Validator, testing,
};

fn es(kid: &str) -> Arc<Key> {
    Arc::new(testing::key(kid, Algorithm::ES256))
}

fn token_for(key: &Key, sub: &str, exp: u64) -> String {
    testing::sign(
        key,
        &json!({"iss": ISS, "aud": AUD, "sub": sub, "iat": T0, "exp": exp}),
    )
}

fn validator(store: &KeysetStore, clock: &ManualClock) -> Validator {
    Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Subjects `user-0` … and whether each is inside a share of `percent`.
fn subjects(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user-{i}")).collect()
}

#[test]
fn the_canary_share_is_stable_per_subject_and_close_to_the_share() {
    let store = KeysetStore::new(Keyset::new([es("blue")]).unwrap());
    store
        .stage_canary(Keyset::new([es("green")]).unwrap(), 10.0)
        .unwrap();
    let snap = store.current();
    let subs = subjects(10_000);
    let inside = subs.iter().filter(|s| snap.in_canary(s)).count();
    // Binomial(10 000, 0.1): σ = 30; ±5σ.
    assert!(
        (850..=1150).contains(&inside),
        "{inside} of 10 000 inside a 10 % canary"
    );
    // Stable: the bucket is a pure function of the subject, the same on every node.
    for s in &subs[..100] {
        assert_eq!(KeysetSnapshot::bucket(s), KeysetSnapshot::bucket(s));
    }
    // Widening keeps everyone who was inside.
    store.set_share(30.0).unwrap();
    let wider = store.current();
    assert!(
        subs.iter()
            .all(|s| !snap.in_canary(s) || wider.in_canary(s))
    );
    assert_eq!(wider.canary_share(), 30.0);
    // 0 and 100 are the ends.
    store.set_share(0.0).unwrap();
    assert!(subs.iter().all(|s| !store.current().in_canary(s)));
    store.set_share(100.0).unwrap();
    assert!(subs.iter().all(|s| store.current().in_canary(s)));
}

#[test]
fn inside_the_canary_only_the_candidate_judges_and_signs() {
    let clock = ManualClock::at_unix(T0);
    let blue = es("blue");
    let green = es("green");
    let store = KeysetStore::new(Keyset::new([blue.clone()]).unwrap());
    let v = validator(&store, &clock);
    let issuer = Issuer::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap();
    store
        .stage_canary(Keyset::new([green.clone()]).unwrap(), 50.0)
        .unwrap();
    let snap = store.current();
    let subs = subjects(200);
    let inside = subs.iter().find(|s| snap.in_canary(s)).unwrap();
    let outside = subs.iter().find(|s| !snap.in_canary(s)).unwrap();

    // Outside: blue as before, and green (pre-published) verifies too.
    let ok = v.validate(&token_for(&blue, outside, T0 + 900)).unwrap();
    assert_eq!((ok.kid(), ok.arm()), ("blue", Arm::Active));
    assert!(v.validate(&token_for(&green, outside, T0 + 900)).is_ok());
    // Inside: the candidate alone.
    let ok = v.validate(&token_for(&green, inside, T0 + 900)).unwrap();
    assert_eq!((ok.kid(), ok.arm()), ("green", Arm::Canary));
    assert_eq!(
        v.validate(&token_for(&blue, inside, T0 + 900))
            .unwrap_err()
            .kind(),
        K::UnknownKid
    );
    // The issuer signs with the candidate's key inside, the active key outside.
    let t = issuer
        .issue_access(TokenRequest::subject(inside.as_str()))
        .unwrap();
    assert_eq!(v.validate(&t.access_token).unwrap().kid(), "green");
    let t = issuer
        .issue_access(TokenRequest::subject(outside.as_str()))
        .unwrap();
    assert_eq!(v.validate(&t.access_token).unwrap().kid(), "blue");

    // A cached blue token of a subject that the widened share now covers is judged again.
    let widened_out = subs
        .iter()
        .find(|s| !snap.in_canary(s) && KeysetSnapshot::bucket(s) < 10_000)
        .unwrap();
    let t = token_for(&blue, widened_out, T0 + 900);
    assert!(v.validate(&t).is_ok());
    store.set_share(100.0).unwrap();
    assert_eq!(v.validate(&t).unwrap_err().kind(), K::UnknownKid);
    // Abort: everyone back on blue; green no longer verifies at all.
    store.abort().unwrap();
    assert!(v.validate(&t).is_ok());
    assert_eq!(
        v.validate(&token_for(&green, inside, T0 + 900))
            .unwrap_err()
            .kind(),
        K::UnknownKid
    );
}

/// The issue's canary target: a broken candidate at 10 % reaches at most about 10 % of
/// distinct clients before the guard acts, and the guard acts at `min_sample` canary
/// failures however much healthy traffic surrounds them.
#[test]
fn a_broken_canary_is_aborted_by_the_guard_after_few_clients() {
    let clock = ManualClock::at_unix(T0);
    let blue = es("blue");
    let store = KeysetStore::new(Keyset::new([blue.clone()]).unwrap());
    let guard = RolloutGuard::new(store.clone(), GuardPolicy::default()).with_clock(clock.clone());
    let v = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .observer(guard.clone())
        .build()
        .unwrap();
    let subs = subjects(2_000);
    let tokens: Vec<String> = subs.iter().map(|s| token_for(&blue, s, T0 + 900)).collect();
    v.validate(&tokens[0]).unwrap();
    // The candidate lacks blue: every client inside the canary fails.
    let bad = store
        .stage_canary(Keyset::new([es("green")]).unwrap(), 10.0)
        .unwrap();
    let mut failed_clients = HashSet::new();
    let mut failures = 0;
    let mut requests = 0;
    'outer: for round in 0..5 {
        for (i, t) in tokens.iter().enumerate() {
            if store.current().version() != bad {
                break 'outer;
            }
            requests += 1;
            if v.validate(t).is_err() {
                failures += 1;
                failed_clients.insert(i);
            }
            let _ = round;
        }
    }
    assert_ne!(store.current().version(), bad, "the guard acted");
    assert_eq!(failures, 20, "acted at min_sample canary failures");
    let share_failed = failed_clients.len() as f64 / subs.len() as f64;
    assert!(
        share_failed <= 0.10,
        "{} of {} clients ({:.1} %) saw a failure in {requests} requests",
        failed_clients.len(),
        subs.len(),
        share_failed * 100.0
    );
    // Aborted, not narrowed: no candidate left, the version quarantined, all clients fine.
    assert!(store.current().candidate().is_none());
    assert!(store.is_quarantined(bad));
    assert!(tokens.iter().all(|t| v.validate(t).is_ok()));
    // Promote of the quarantined version is refused; the store is unchanged.
    let before = (store.current().version(), store.generation());
    assert_eq!(
        store.promote_version(bad, None).unwrap_err().kind(),
        KeysetErrorKind::Quarantined
    );
    assert_eq!((store.current().version(), store.generation()), before);
}

#[test]
fn a_shadow_candidate_never_answers_and_counts_what_it_would_reject() {
    let clock = ManualClock::at_unix(T0);
    let blue = es("blue");
    let store = KeysetStore::new(Keyset::new([blue.clone()]).unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let v = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .observer(from_fn(move |e: &Event<'_>| {
            if let Event::Shadow { outcome, .. } = e {
                s2.lock().unwrap().push(*outcome);
            }
        }))
        .build()
        .unwrap();
    let green = es("green");
    // A candidate without blue: it would reject every current token.
    store
        .stage_shadow(Keyset::new([green.clone()]).unwrap())
        .unwrap();
    let t = token_for(&blue, "user-1", T0 + 900);
    for _ in 0..5 {
        assert!(
            v.validate(&t).is_ok(),
            "the response is the current keyset's"
        );
    }
    // A token signed by the shadow key is not accepted: shadow keys never verify.
    assert_eq!(
        v.validate(&token_for(&green, "user-1", T0 + 900))
            .unwrap_err()
            .kind(),
        K::UnknownKid
    );
    // Introspection-style reads are not traffic.
    v.inspect(&t).unwrap();
    let stats = (
        store.current().shadow_stats().unwrap().sample(),
        store.current().shadow_stats().unwrap().regressions(),
    );
    assert_eq!(stats, (5, 5));
    assert_eq!(seen.lock().unwrap().as_slice(), [Err(K::UnknownKid); 5]);
    let err = store.promote_checked(Some(1)).unwrap_err();
    assert_eq!(
        (err.kind(), err.count()),
        (KeysetErrorKind::ShadowRegressions, Some(5))
    );
    store.abort().unwrap();

    // A candidate that keeps blue and adds green: no regression, but it must see enough.
    store
        .stage_shadow(Keyset::new([blue.clone(), green.clone()]).unwrap())
        .unwrap();
    for _ in 0..3 {
        v.validate(&t).unwrap();
    }
    let err = store.promote_checked(Some(10)).unwrap_err();
    assert_eq!(
        (err.kind(), err.count()),
        (KeysetErrorKind::ShadowSampleTooSmall, Some(3))
    );
    for _ in 0..7 {
        v.validate(&t).unwrap();
    }
    store.promote_checked(Some(10)).unwrap();
    assert!(v.validate(&token_for(&green, "user-1", T0 + 900)).is_ok());
    // A same-kid candidate with other material is a bad signature, not a pass.
    let rsa = Arc::new(testing::key("r", Algorithm::RS256));
    let rs_store = KeysetStore::new(Keyset::new([rsa.clone()]).unwrap());
    let rv = validator(&rs_store, &clock);
    let other = Key::from_private_pem("r", Algorithm::RS256, testing::RSA2_PEM.as_bytes()).unwrap();
    rs_store
        .stage_shadow(Keyset::new([other]).unwrap())
        .unwrap();
    rv.validate(&token_for(&rsa, "user-1", T0 + 900)).unwrap();
    let stats = rs_store.current();
    let stats = stats.shadow_stats().unwrap();
    assert_eq!((stats.sample(), stats.regressions()), (1, 1));
}

/// A `KeysRetired` event as seen: kids, policy, until.
type Retired = (Vec<String>, RetirementPolicy, Option<u64>);

struct Bg {
    clock: ManualClock,
    store: KeysetStore,
    v: Validator,
    issuer: Issuer,
    blue: Arc<Key>,
    retired: Arc<Mutex<Vec<Retired>>>,
}

fn blue_green(policy: Retirement) -> Bg {
    let clock = ManualClock::at_unix(T0);
    let blue = es("blue");
    let retired = Arc::new(Mutex::new(Vec::new()));
    let r2 = retired.clone();
    let store = KeysetStore::builder(Keyset::new([blue.clone()]).unwrap())
        .clock(clock.clone())
        .retirement(policy)
        .observer(from_fn(move |e: &Event<'_>| {
            if let Event::KeysRetired {
                kids,
                policy,
                until,
                ..
            } = e
            {
                let kids = kids.iter().map(|k| (*k).to_owned()).collect();
                r2.lock().unwrap().push((kids, *policy, *until));
            }
        }))
        .build();
    let v = validator(&store, &clock);
    let issuer = Issuer::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .revocations(v.revocations().clone())
        .build()
        .unwrap();
    Bg {
        clock,
        store,
        v,
        issuer,
        blue,
        retired,
    }
}

#[test]
fn retirement_reject_refuses_tokens_of_a_removed_key_at_once() {
    let bg = blue_green(Retirement::Reject);
    let t = token_for(&bg.blue, "u", T0 + 900);
    assert!(bg.v.validate(&t).is_ok());
    bg.store.publish(Keyset::new([es("green")]).unwrap());
    assert_eq!(bg.v.validate(&t).unwrap_err().kind(), K::UnknownKid);
    assert_eq!(
        bg.retired.lock().unwrap().as_slice(),
        [(vec!["blue".to_owned()], RetirementPolicy::Reject, None)]
    );
    assert!(bg.store.retired_kids().is_empty());
}

#[test]
fn retirement_grace_accepts_until_the_deadline_and_not_a_second_after() {
    let bg = blue_green(Retirement::Grace(Duration::from_secs(300)));
    let t = token_for(&bg.blue, "u", T0 + 3_600);
    let revoked = testing::sign(
        &bg.blue,
        &json!({"iss": ISS, "aud": AUD, "sub": "u", "jti": "gone", "iat": T0, "exp": T0 + 3_600}),
    );
    assert!(bg.v.validate(&t).is_ok(), "cached under blue");
    bg.store.publish(Keyset::new([es("green")]).unwrap());
    // The cached entry and a fresh verification both answer within the grace.
    let ok = bg.v.validate(&t).unwrap();
    assert_eq!((ok.kid(), ok.arm()), ("blue", Arm::Retired));
    bg.v.clear_cache();
    assert_eq!(bg.v.validate(&t).unwrap().arm(), Arm::Retired);
    assert_eq!(
        bg.retired.lock().unwrap().as_slice(),
        [(
            vec!["blue".to_owned()],
            RetirementPolicy::Grace,
            Some(T0 + 300)
        )]
    );
    // A retired key is verify-only: a revocation still wins, the algorithm is still its own.
    bg.v.revocations()
        .revoke_jti(
            "gone",
            std::time::UNIX_EPOCH + Duration::from_secs(T0 + 3_600),
        )
        .unwrap();
    assert_eq!(bg.v.validate(&revoked).unwrap_err().kind(), K::Revoked);
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("blue".into());
    let forged = testing::sign_with_header(
        &testing::key("x", Algorithm::HS256),
        &header,
        &json!({"iss": ISS, "aud": AUD, "sub": "u", "exp": T0 + 3_600}),
    );
    assert_eq!(
        bg.v.validate(&forged).unwrap_err().kind(),
        K::AlgorithmMismatch
    );
    // The lapsed deadline: rejected, cached or not.
    bg.clock.advance(Duration::from_secs(299));
    assert!(bg.v.validate(&t).is_ok());
    bg.clock.advance(Duration::from_secs(1));
    assert_eq!(bg.v.validate(&t).unwrap_err().kind(), K::UnknownKid);
    assert!(bg.store.retired_kids().is_empty());
    // A later change does not bring it back.
    bg.store.publish(Keyset::new([es("teal")]).unwrap());
    assert_eq!(bg.v.validate(&t).unwrap_err().kind(), K::UnknownKid);
}

#[test]
fn retirement_renew_required_says_renew_and_the_refresh_reissues_under_the_current_key() {
    let bg = blue_green(Retirement::RenewRequired(Duration::from_secs(3_600)));
    let pair = bg
        .issuer
        .issue(TokenRequest::subject("alice").scope("orders:read"))
        .unwrap();
    assert_eq!(bg.v.validate(&pair.access_token).unwrap().kid(), "blue");
    // A rollback-style change: green (with its own signing key) replaces blue.
    bg.store.publish(Keyset::new([es("green")]).unwrap());
    let err = bg.v.validate(&pair.access_token).unwrap_err();
    assert_eq!(err.kind(), K::KeyRetired);
    assert_eq!(
        (err.status(), err.rfc6750_code()),
        (401, Some("invalid_token"))
    );
    assert!(err.to_string().contains("renew"), "{err}");
    // The refresh token still works, and the new access token is green's.
    let renewed = bg
        .issuer
        .renew(pair.refresh_token.as_deref().unwrap())
        .unwrap();
    assert_eq!(bg.v.validate(&renewed.access_token).unwrap().kid(), "green");
    // After the window, an old token is simply unknown.
    bg.clock.advance(Duration::from_secs(3_600));
    assert_eq!(
        bg.v.validate(&pair.access_token).unwrap_err().kind(),
        K::UnknownKid
    );
}

#[test]
fn a_rollback_that_removes_the_signing_key_is_under_the_same_policy() {
    let bg = blue_green(Retirement::Grace(Duration::from_secs(60)));
    bg.store.publish(Keyset::new([es("green")]).unwrap());
    // Tokens minted by green after the deploy…
    let by_green = bg
        .issuer
        .issue_access(TokenRequest::subject("bob"))
        .unwrap();
    assert_eq!(
        bg.v.validate(&by_green.access_token).unwrap().kid(),
        "green"
    );
    // …survive the rollback to blue for the grace period.
    bg.store.rollback().unwrap();
    assert_eq!(
        bg.v.validate(&by_green.access_token).unwrap().arm(),
        Arm::Retired
    );
    assert_eq!(bg.store.retired_kids(), ["green"]);
    // blue, back in the keyset, is no longer retired.
    assert!(bg.store.retired_kids().iter().all(|k| k != "blue"));
    bg.clock.advance(Duration::from_secs(61));
    assert_eq!(
        bg.v.validate(&by_green.access_token).unwrap_err().kind(),
        K::UnknownKid
    );
}

#[test]
fn bad_rollout_requests_are_typed_and_change_nothing() {
    let store = KeysetStore::new(Keyset::new([es("blue")]).unwrap());
    let snapshot = |s: &KeysetStore| (s.current().version(), s.generation());
    let before = snapshot(&store);
    for share in [-1.0, 100.01, f64::NAN, f64::INFINITY] {
        assert_eq!(
            store
                .stage_canary(Keyset::new([es("green")]).unwrap(), share)
                .unwrap_err()
                .kind(),
            KeysetErrorKind::InvalidShare,
            "{share}"
        );
    }
    assert_eq!(
        store.set_share(10.0).unwrap_err().kind(),
        KeysetErrorKind::NotACanary
    );
    assert_eq!(
        store.abort().unwrap_err().kind(),
        KeysetErrorKind::NothingStaged
    );
    assert_eq!(
        store.promote_version(42, None).unwrap_err().kind(),
        KeysetErrorKind::UnknownVersion
    );
    assert_eq!(snapshot(&store), before);
    store
        .stage_shadow(Keyset::new([es("green")]).unwrap())
        .unwrap();
    let before = snapshot(&store);
    assert_eq!(
        store
            .stage_canary(Keyset::new([es("teal")]).unwrap(), 5.0)
            .unwrap_err()
            .kind(),
        KeysetErrorKind::RolloutInProgress
    );
    assert_eq!(
        store.set_share(10.0).unwrap_err().kind(),
        KeysetErrorKind::NotACanary
    );
    assert_eq!(
        store.set_share(150.0).unwrap_err().kind(),
        KeysetErrorKind::InvalidShare
    );
    assert_eq!(snapshot(&store), before);
}

/// The policy in force and what the rollout arms and the shadow judged reach the
/// monitor's metrics and audit trail.
#[test]
fn the_monitor_shows_the_policy_the_arms_and_the_shadow() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use tokenlife_core::Monitor;
    use tokenlife_core::observe::audit::{AuditAction, Auditor};
    use tokenlife_core::observe::metrics as m;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let events = metrics::with_local_recorder(&recorder, || {
        let clock = ManualClock::at_unix(T0);
        let (sink, events) = Auditor::channel(1_000);
        let monitor = Monitor::builder()
            .clock(clock.clone())
            .auditor(Auditor::builder().sink(sink).build())
            .build();
        let blue = es("blue");
        let store = KeysetStore::builder(Keyset::new([blue.clone()]).unwrap())
            .clock(clock.clone())
            .retirement(Retirement::Grace(Duration::from_secs(60)))
            .observer(monitor.clone())
            .build();
        let v = Validator::builder(store.clone())
            .issuer(ISS)
            .audience(AUD)
            .clock(clock.clone())
            .monitor(monitor.clone())
            .build()
            .unwrap();
        let t = token_for(&blue, "u", T0 + 900);
        store
            .stage_shadow(Keyset::new([es("green")]).unwrap())
            .unwrap();
        v.validate(&t).unwrap();
        store.promote().unwrap();
        // blue retired under grace: its token is judged by the retired arm.
        assert_eq!(v.validate(&t).unwrap().arm(), Arm::Retired);
        monitor.auditor().unwrap().flush();
        events.try_iter().collect::<Vec<_>>()
    });
    let snap: Vec<_> = snapshotter.snapshot().into_vec();
    let value = |name: &str, label: (&str, &str)| {
        snap.iter()
            .filter(|(k, _, _, _)| {
                k.key().name() == name
                    && k.key()
                        .labels()
                        .any(|l| l.key() == label.0 && l.value() == label.1)
            })
            .map(|(_, _, _, v)| match v {
                DebugValue::Counter(c) => *c as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(_) => 0.0,
            })
            .sum::<f64>()
    };
    assert_eq!(value(m::KEYS_RETIRED, ("policy", "grace")), 1.0);
    assert_eq!(value(m::RETIREMENT_POLICY, ("policy", "grace")), 1.0);
    assert_eq!(value(m::RETIREMENT_POLICY, ("policy", "reject")), 0.0);
    assert_eq!(
        value(m::SHADOW_VALIDATIONS, ("outcome", "unknown_kid")),
        1.0
    );
    assert_eq!(value(m::ROLLOUT_VALIDATIONS, ("arm", "retired")), 1.0);
    let retired = events
        .iter()
        .find(|e| e.action == AuditAction::KeysRetired)
        .expect("the retirement is audited");
    assert_eq!(retired.reason, Some("grace"));
    assert!(
        events
            .iter()
            .any(|e| e.action == AuditAction::ShadowRegression)
    );
}
