//! The rollout guard on the manual clock: a broken deploy is rolled back by itself after
//! at most `min_sample` failed validations, the failing version is quarantined until an
//! operator releases it, claim failures never trip it, the window lapses, an operator's
//! change wins a race, and the monitor raises the alert.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokenlife_core::error::KeysetErrorKind;
use tokenlife_core::observe::AlertKind;
use tokenlife_core::observe::audit::{AuditAction, Auditor};
use tokenlife_core::rollout::{GuardPolicy, RolloutGuard};
use tokenlife_core::{Algorithm, Keyset, KeysetStore, ManualClock, Monitor, Validator, testing};

struct World {
    store: KeysetStore,
    clock: ManualClock,
    guard: RolloutGuard,
    validator: Validator,
    token: String,
    clients: Vec<String>,
}

impl World {
    /// The token of the `n`th distinct client (all signed by the first version's key).
    fn client(&self, n: usize) -> &str {
        &self.clients[n % self.clients.len()]
    }
}

/// The world's own key and a partner key `partner-L` (the one that leaks).
fn k1_and_partner() -> (
    std::sync::Arc<tokenlife_core::Key>,
    std::sync::Arc<tokenlife_core::Key>,
) {
    (
        std::sync::Arc::new(testing::key("k1", Algorithm::ES256)),
        std::sync::Arc::new(testing::key("partner-L", Algorithm::ES256)),
    )
}

fn sub_token(key: &tokenlife_core::Key, sub: &str) -> String {
    testing::sign(
        key,
        &json!({"iss": ISS, "aud": AUD, "sub": sub, "iat": T0, "exp": T0 + 900}),
    )
}

fn world(policy: GuardPolicy, notify: Option<Monitor>) -> World {
    let key = testing::key("k1", Algorithm::ES256);
    let clock = ManualClock::at_unix(T0);
    let token = testing::sign(&key, &claims());
    let clients = (0..64)
        .map(|i| sub_token(&key, &format!("client-{i}")))
        .collect();
    let store = KeysetStore::new(Keyset::new([key]).unwrap());
    let mut guard = RolloutGuard::new(store.clone(), policy).with_clock(clock.clone());
    if let Some(m) = notify.clone() {
        guard = guard.notify(m);
    }
    let b = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone());
    let validator = match notify {
        Some(m) => b.observer((m, guard.clone())),
        None => b.observer(guard.clone()),
    }
    .build()
    .unwrap();
    validator.validate(&token).unwrap();
    World {
        store,
        clock,
        guard,
        validator,
        token,
        clients,
    }
}

fn broken() -> Keyset {
    Keyset::new([testing::key("other", Algorithm::ES256)]).unwrap()
}

#[test]
fn a_broken_deploy_is_rolled_back_after_min_sample_failures_and_quarantined() {
    let w = world(GuardPolicy::default(), None);
    let bad = w.store.publish(broken());
    let mut failed = 0;
    while w.store.current().version() == bad && failed < 1_000 {
        w.validator.validate(w.client(failed)).unwrap_err();
        failed += 1;
    }
    assert_eq!(failed, 20, "the default policy acts at 20 failures");
    assert_eq!(w.store.current().version(), 1);
    assert!(w.validator.validate(&w.token).is_ok(), "service restored");
    assert_eq!(w.guard.rollbacks(), 1);
    // Quarantined: neither a rollback nor a rollback_to brings it back.
    assert!(w.store.is_quarantined(bad));
    assert_eq!(
        w.store.rollback_to(bad).unwrap_err().kind(),
        KeysetErrorKind::Quarantined
    );
    assert_ne!(w.store.rollback().ok(), Some(bad));
    // Until an operator releases it.
    assert!(w.store.release(bad));
    w.store.rollback_to(bad).unwrap();
    assert_eq!(w.store.current().version(), bad);
}

#[test]
fn claim_failures_and_a_healthy_deploy_never_trip_it() {
    let w = world(GuardPolicy::default(), None);
    // A healthy deploy (same key, new label) with a flood of expired tokens.
    let v2 = w.store.publish(
        Keyset::new([testing::key("k1", Algorithm::ES256)])
            .unwrap()
            .with_label("v2"),
    );
    let expired = testing::sign(
        &testing::key("k1", Algorithm::ES256),
        &json!({"iss": ISS, "aud": AUD, "sub": "u", "exp": T0 - 3600}),
    );
    for _ in 0..200 {
        w.validator.validate(&expired).unwrap_err();
    }
    assert_eq!(w.store.current().version(), v2);
    assert_eq!(w.guard.rollbacks(), 0);
}

#[test]
fn a_failure_rate_policy_also_rolls_back_a_deploy_that_fails_claims() {
    let w = world(GuardPolicy::default().with_max_failure_rate(0.5), None);
    let v2 = w.store.publish(
        Keyset::new([testing::key("k1", Algorithm::ES256)])
            .unwrap()
            .with_label("v2"),
    );
    let wrong_aud = |n: usize| {
        testing::sign(
            &testing::key("k1", Algorithm::ES256),
            &json!({"iss": ISS, "aud": "api://elsewhere", "sub": format!("u{n}"), "exp": T0 + 900}),
        )
    };
    let mut failed = 0;
    while w.store.current().version() == v2 && failed < 1_000 {
        w.validator.validate(&wrong_aud(failed)).unwrap_err();
        failed += 1;
    }
    assert_eq!(failed, 20);
    assert_eq!(w.store.current().version(), 1);
    // Requests without any token are not failures of the deploy.
    let w = world(GuardPolicy::default().with_max_failure_rate(0.5), None);
    let v2 = w
        .store
        .publish(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    for _ in 0..100 {
        w.validator.validate("").unwrap_err();
    }
    assert_eq!(w.store.current().version(), v2);
}

#[test]
fn a_bad_deploy_an_operator_rolled_back_is_never_the_last_good_version() {
    let w = world(GuardPolicy::default(), None);
    let bad = w.store.publish(broken());
    for _ in 0..5 {
        w.validator.validate(&w.token).unwrap_err();
    }
    w.store.rollback().unwrap();
    w.validator.validate(&w.token).unwrap();
    // v1 is current again and still the last good one (never the deploy that only failed).
    assert_eq!(w.guard.watching(), (1, 1));
    // The next bad deploy is rolled back to v1, not to the first bad one.
    let bad2 = w.store.publish(broken());
    let mut n = 0;
    while w.store.current().version() == bad2 && n < 1_000 {
        w.validator.validate(w.client(n)).unwrap_err();
        n += 1;
    }
    assert_eq!(w.store.current().version(), 1);
    assert_ne!(w.guard.watching().1, bad);
}

#[test]
fn a_lapsed_window_forgets_old_failures() {
    let w = world(GuardPolicy::new(Duration::from_secs(10), 20, 0.5), None);
    let bad = w.store.publish(broken());
    // 15 failures, then the window lapses: the count starts over.
    for n in 0..15 {
        w.validator.validate(w.client(n)).unwrap_err();
    }
    w.clock.advance(Duration::from_secs(11));
    for n in 15..30 {
        w.validator.validate(w.client(n)).unwrap_err();
    }
    assert_eq!(
        w.store.current().version(),
        bad,
        "15 + 15 across two windows"
    );
    for n in 30..35 {
        w.validator.validate(w.client(n)).unwrap_err();
    }
    assert_eq!(w.store.current().version(), 1, "20 within one window");
}

#[test]
fn the_first_version_is_never_rolled_back_and_an_operator_change_wins() {
    // A store whose only version fails: there is nothing to go back to.
    let w = world(GuardPolicy::default(), None);
    let stranger = testing::sign(&testing::key("nobody", Algorithm::ES256), &claims());
    for _ in 0..100 {
        w.validator.validate(&stranger).unwrap_err();
    }
    assert_eq!(w.store.current().version(), 1);
    assert_eq!(w.guard.rollbacks(), 0);
    // The operator publishes a fix while failures of the broken version are in flight:
    // the guard does not roll the fix back.
    let bad = w.store.publish(broken());
    for _ in 0..10 {
        w.validator.validate(&w.token).unwrap_err();
    }
    let fix = w.store.publish(
        Keyset::new([testing::key("k1", Algorithm::ES256)])
            .unwrap()
            .with_label("fix"),
    );
    assert!(!w.store.rollback_from(bad, 1).unwrap());
    assert_eq!(w.store.current().version(), fix);
    assert!(!w.store.is_quarantined(bad));
}

#[test]
fn the_monitor_raises_the_alert_and_audits_the_rollback() {
    let (sink, events) = Auditor::channel(1_000);
    let auditor = Auditor::builder().sink(sink).build();
    let clock = ManualClock::at_unix(T0);
    let monitor = Monitor::builder()
        .clock(clock)
        .auditor(auditor.clone())
        .build();
    let w = world(GuardPolicy::default(), Some(monitor));
    let bad = w.store.publish(broken());
    let mut n = 0;
    while w.store.current().version() == bad && n < 1_000 {
        w.validator.validate(w.client(n)).unwrap_err();
        n += 1;
    }
    auditor.flush();
    let events: Vec<_> = events.try_iter().collect();
    let alert = events
        .iter()
        .find(|e| e.alert == Some(AlertKind::AutomaticRollback))
        .expect("alert");
    assert_eq!(alert.keyset_version, Some(1));
    assert!(events.iter().any(|e| {
        e.action == AuditAction::KeysetRollback
            && e.detail
                .as_deref()
                .is_some_and(|d| d.contains(&format!("v{bad} -> v1")))
    }));
}

/// In-flight validations never see a torn keyset: while another thread publishes and
/// rolls back as fast as it can (bounded by count), every validation of a token whose key
/// both keysets hold succeeds, with the cache on and off, and names a version the store
/// really had.
#[test]
fn validations_never_observe_a_torn_swap() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let a = testing::key("k1", Algorithm::ES256);
    let b = testing::key("k2", Algorithm::RS256);
    let token = testing::sign(&a, &claims());
    let both = Keyset::new([a, b]).unwrap();
    let store = KeysetStore::new(both.clone());
    let clock = ManualClock::at_unix(T0);
    let validators: Vec<Validator> = [10_000, 0]
        .into_iter()
        .map(|cache| {
            Validator::builder(store.clone())
                .issuer(ISS)
                .audience(AUD)
                .clock(clock.clone())
                .cache_capacity(cache)
                .build()
                .unwrap()
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let mut top = 1;
            for i in 0..20_000u32 {
                top = store.publish(both.clone().with_label(format!("s{i}")));
                store.rollback().unwrap();
            }
            done.store(true, Ordering::Release);
            top
        })
    };
    let mut checked = 0u64;
    let mut highest = 0;
    while !done.load(Ordering::Acquire) || checked < 1_000 {
        for v in &validators {
            let verified = v.validate(&token).expect("valid under every snapshot");
            assert_eq!(verified.kid(), "k1");
            highest = highest.max(verified.keyset_version());
        }
        checked += 1;
    }
    let top = swapper.join().unwrap();
    assert!(top > 20_000, "the swapper ran: last version {top}");
    assert!(checked >= 1_000);
    assert!(
        (1..=top).contains(&highest),
        "a version the store had: {highest} of {top}"
    );
}

/// The quarantine list is bounded by the history: once a quarantined version has left
/// the history it is forgotten (it could not be made current anyway).
#[test]
fn quarantine_is_bounded_by_the_history() {
    let w = world(GuardPolicy::default(), None);
    let bad = w.store.publish(broken());
    let mut n = 0;
    while w.store.current().version() == bad && n < 1_000 {
        w.validator.validate(w.client(n)).unwrap_err();
        n += 1;
    }
    assert!(w.store.is_quarantined(bad));
    for i in 0..=KeysetStore::DEFAULT_HISTORY {
        w.store.publish(
            Keyset::new([testing::key("k1", Algorithm::ES256)])
                .unwrap()
                .with_label(format!("later-{i}")),
        );
    }
    assert!(!w.store.is_quarantined(bad));
    assert_eq!(
        w.store.rollback_to(bad).unwrap_err().kind(),
        KeysetErrorKind::UnknownVersion
    );
}

/// Security review 3, HIGH 1: junk is noise. Tokens that no version ever trusted — an
/// unknown kid, random subjects, forged signatures — never count, however many, so they
/// can neither roll back a good deploy nor abort a correct canary.
#[test]
fn junk_tokens_never_trip_the_guard_nor_abort_a_correct_canary() {
    use tokenlife_core::jsonwebtoken::{EncodingKey, Header, encode};
    let w = world(GuardPolicy::default(), None);
    // A correct deploy: the same key and a new one.
    let v2 = w.store.publish(
        Keyset::new([
            testing::key("k1", Algorithm::ES256),
            testing::key("k9", Algorithm::ES256),
        ])
        .unwrap(),
    );
    w.validator.validate(w.client(1)).unwrap();
    let stranger = testing::key("nope", Algorithm::ES256);
    for i in 0..400 {
        // Unknown kid, random subject, no credentials.
        w.validator
            .validate(&sub_token(&stranger, &format!("rnd-{i}")))
            .unwrap_err();
        // A known kid with a forged signature.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        let forged = encode(
            &h,
            &json!({"iss": ISS, "aud": AUD, "sub": format!("f-{i}"), "exp": T0 + 900}),
            &EncodingKey::from_secret(b"guess"),
        )
        .unwrap();
        w.validator.validate(&forged).unwrap_err();
    }
    assert_eq!(w.store.current().version(), v2);
    assert_eq!(w.guard.rollbacks(), 0);
    // A correct 10 % canary under the same flood is not aborted.
    let canary = w
        .store
        .stage_canary(
            Keyset::new([
                testing::key("k1", Algorithm::ES256),
                testing::key("k7", Algorithm::ES256),
            ])
            .unwrap(),
            10.0,
        )
        .unwrap();
    w.validator.validate(w.client(2)).unwrap();
    for i in 0..400 {
        w.validator
            .validate(&sub_token(&stranger, &format!("canary-rnd-{i}")))
            .unwrap_err();
    }
    assert_eq!(w.store.current().version(), canary);
    assert!(!w.store.is_quarantined(canary));
    assert_eq!(w.guard.rollbacks(), 0);
}

/// Security review 3, HIGH 1, the replay: v2 adds partner key L, v3 removes it after a
/// leak. The attacker replays the leaked L token: one client, so never evidence enough —
/// no rollback to v2, L stays refused, v3 is not quarantined.
#[test]
fn one_leaked_token_replayed_cannot_roll_back_its_keys_removal() {
    let w = world(GuardPolicy::default(), None);
    let (k1, partner) = k1_and_partner();
    w.store
        .publish(Keyset::new([k1.clone(), partner.clone()]).unwrap());
    w.validator.validate(w.client(0)).unwrap();
    let leaked = sub_token(&partner, "partner-service");
    w.validator.validate(&leaked).unwrap();
    let v3 = w
        .store
        .publish(Keyset::new([k1.clone()]).unwrap().with_label("L removed"));
    w.validator.validate(w.client(1)).unwrap();
    for _ in 0..400 {
        assert_eq!(
            w.validator.validate(&leaked).unwrap_err().kind(),
            tokenlife_core::ValidationErrorKind::UnknownKid
        );
    }
    assert_eq!(w.store.current().version(), v3);
    assert!(!w.store.is_quarantined(v3));
    assert_eq!(w.guard.rollbacks(), 0);
}

/// Security review 3, HIGH 1, the deliberate removal: a key revoked as compromised is
/// never evidence — even an attacker holding its private half and minting any number of
/// subjects cannot trip the guard — and no rollback, manual or automatic, trusts it again.
#[test]
fn a_revoked_key_is_never_evidence_and_no_rollback_trusts_it_again() {
    let w = world(GuardPolicy::default(), None);
    let (k1, partner) = k1_and_partner();
    let v2 = w
        .store
        .publish(Keyset::new([k1.clone(), partner.clone()]).unwrap());
    w.validator.validate(w.client(0)).unwrap();
    let v3 = w.store.revoke_key("partner-L").unwrap();
    assert!(v3 > v2);
    assert_eq!(w.store.revoked_keys(), ["partner-L"]);
    w.validator.validate(w.client(1)).unwrap();
    for i in 0..200 {
        w.validator
            .validate(&sub_token(&partner, &format!("minted-{i}")))
            .unwrap_err();
    }
    assert_eq!(w.store.current().version(), v3);
    assert_eq!(w.guard.rollbacks(), 0);
    // The operator's own rollback to v2 brings v2's other keys back, never L.
    w.store.rollback_to(v2).unwrap();
    assert!(w.store.current().find("partner-L").is_none());
    assert!(w.validator.validate(&sub_token(&partner, "x")).is_err());
    w.validator.validate(w.client(2)).unwrap();
    // Nor does a publish that names it again, nor staging it.
    w.store
        .publish(Keyset::new([k1.clone(), partner.clone()]).unwrap());
    assert!(w.store.current().find("partner-L").is_none());
    assert_eq!(
        w.store
            .stage(Keyset::new([partner.clone()]).unwrap())
            .unwrap_err()
            .kind(),
        KeysetErrorKind::KeyRevoked
    );
    // A keyset of nothing but the revoked key is refused, and nothing changes.
    let before = w.store.current().version();
    assert_eq!(
        w.store
            .try_publish(Keyset::new([partner.clone()]).unwrap())
            .unwrap_err()
            .kind(),
        KeysetErrorKind::KeyRevoked
    );
    assert_eq!(w.store.current().version(), before);
    // Revoking the only key left is refused: publish a replacement first.
    assert_eq!(
        w.store.revoke_key("k1").unwrap_err().kind(),
        KeysetErrorKind::KeyRevoked
    );
    assert!(!w.store.is_key_revoked("k1"));
}

/// The guard's own rollback, to a last good version that held a key revoked since, makes
/// current that version's keys without it.
#[test]
fn the_guards_rollback_never_restores_a_revoked_key() {
    let w = world(GuardPolicy::default(), None);
    let (k1, partner) = k1_and_partner();
    w.store
        .publish(Keyset::new([k1.clone(), partner.clone()]).unwrap());
    w.validator.validate(w.client(0)).unwrap();
    w.store.revoke_key("partner-L").unwrap();
    w.validator.validate(w.client(1)).unwrap();
    // A bad deploy after it: every client fails; the guard rolls back.
    let bad = w.store.publish(broken());
    let mut n = 0;
    while w.store.current().version() == bad && n < 1_000 {
        w.validator.validate(w.client(n)).unwrap_err();
        n += 1;
    }
    assert_eq!(w.guard.rollbacks(), 1);
    assert!(w.store.current().find("k1").is_some());
    assert!(w.store.current().find("partner-L").is_none());
    assert!(w.validator.validate(&sub_token(&partner, "x")).is_err());
}

/// The guard judges a rate, not a count: after a deploy that removes a partner's key,
/// a few partner services failing (bad key, from more than `min_clients` subjects and
/// past `min_sample`) among many successful requests — most of them answered from the
/// cache, told to the guard as hits — stay under `max_bad_key_rate` and roll nothing
/// back. With the successes not counted, the same failures would be a 100 % rate.
#[test]
fn successes_from_the_cache_dilute_failures_so_a_small_rate_rolls_nothing_back() {
    let w = world(GuardPolicy::default(), None);
    let (k1, partner) = k1_and_partner();
    w.store
        .publish(Keyset::new([k1.clone(), partner.clone()]).unwrap());
    let partners: Vec<_> = (0..8)
        .map(|i| sub_token(&partner, &format!("partner-{i}")))
        .collect();
    for t in &partners {
        w.validator.validate(t).unwrap();
    }
    w.validator.validate(w.client(0)).unwrap();
    let v3 = w.store.publish(
        Keyset::new([k1.clone()])
            .unwrap()
            .with_label("partner removed"),
    );
    // 30 evidence failures from 8 partner subjects among 600 successes: a 5 % rate.
    let mut hits = 0;
    for round in 0..30 {
        for n in 0..20 {
            let ok = w.validator.validate(w.client(n)).unwrap();
            hits += usize::from(ok.from_cache());
        }
        w.validator
            .validate(&partners[round % partners.len()])
            .unwrap_err();
    }
    assert!(hits > 500, "the successes were cache hits: {hits}");
    assert_eq!(w.store.current().version(), v3);
    assert_eq!(w.guard.rollbacks(), 0);
}
