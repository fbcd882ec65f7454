//! Validator behaviour users rely on: time, cache, revocation, keyset swaps.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use common::*;
use serde_json::json;
use tokenlife_core::error::ConfigErrorKind;
use tokenlife_core::testing;
use tokenlife_core::{
    Algorithm, Clock, Key, Keyset, KeysetStore, ValidationErrorKind as K, Validator,
};

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Validator>();
    assert_send_sync::<tokenlife_core::Verified>();
    assert_send_sync::<KeysetStore>();
    assert_send_sync::<tokenlife_core::RevocationList>();
    assert_send_sync::<tokenlife_core::ValidationError>();
    assert_send_sync::<tokenlife_core::error::KeyError>();
    assert_send_sync::<Keyset>();
}

#[test]
fn builder_requires_issuer_and_audience() {
    let store = KeysetStore::new(Keyset::new([testing::key("k", Algorithm::HS256)]).unwrap());
    let err = Validator::builder(store.clone())
        .audience(AUD)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::MissingIssuer);
    let err = Validator::builder(store.clone())
        .issuer(ISS)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::MissingAudience);
    let err = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .max_token_size(0)
        .build();
    let err = err.unwrap_err();
    assert_eq!(
        (err.kind(), err.field()),
        (ConfigErrorKind::InvalidValue, Some("max_token_size"))
    );
    assert_eq!(err.to_string(), "invalid value for `max_token_size`");
    assert!(
        Validator::builder(store)
            .required_claims(["custom"])
            .is_err()
    );
}

#[test]
fn expiry_and_not_before_follow_the_injected_clock_with_leeway() {
    let f = Fixture::new(); // leeway 30 s
    let t = f.token(Algorithm::ES256); // nbf = T0, exp = T0 + 900
    assert!(f.validator.validate(&t).is_ok());
    f.clock.advance(Duration::from_secs(900 + 30));
    assert!(f.validator.validate(&t).is_ok(), "within leeway");
    f.clock.advance(Duration::from_secs(1));
    let err = f.validator.validate(&t).unwrap_err();
    assert_eq!((err.kind(), err.field()), (K::Expired, Some("exp")));
    // Back in time: before nbf - leeway.
    f.clock.set_unix(T0 - 31);
    assert_eq!(f.validator.validate(&t).unwrap_err().kind(), K::NotYetValid);
    f.clock.set_unix(T0 - 30);
    assert!(f.validator.validate(&t).is_ok());
}

#[test]
fn a_cached_token_still_expires() {
    let f = Fixture::new();
    let t = f.token(Algorithm::RS256);
    assert!(!f.validator.validate(&t).unwrap().from_cache());
    assert!(f.validator.validate(&t).unwrap().from_cache());
    f.clock.advance(Duration::from_secs(3600));
    assert_eq!(f.validator.validate(&t).unwrap_err().kind(), K::Expired);
}

#[test]
fn cache_hit_needs_the_exact_token() {
    let f = Fixture::new();
    let t = f.token(Algorithm::HS256);
    f.validator.validate(&t).unwrap();
    // Same length, one signature character changed: must not borrow the cached result.
    let mut bad = t.clone().into_bytes();
    let last = bad.len() - 2;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    assert_eq!(
        f.validator.validate(&bad).unwrap_err().kind(),
        K::BadSignature
    );
    assert!(f.validator.validate(&t).unwrap().from_cache());
}

#[test]
fn revocation_by_jti_subject_and_family_applies_to_cached_tokens() {
    let f = Fixture::new();
    let key = f.key(Algorithm::EdDSA);
    let until = f.clock.now() + Duration::from_secs(900);
    let revs = f.validator.revocations();

    let t1 = testing::sign(
        key,
        &claims_with(|c| {
            c.insert("jti".into(), json!("j-1"));
        }),
    );
    assert!(f.validator.validate(&t1).is_ok());
    revs.revoke_jti("j-1", until).unwrap();
    let err = f.validator.validate(&t1).unwrap_err();
    assert_eq!((err.kind(), err.field()), (K::Revoked, Some("jti")));

    let t2 = testing::sign(
        key,
        &claims_with(|c| {
            c.insert("jti".into(), json!("j-2"));
            c.insert("sub".into(), json!("alice"));
        }),
    );
    assert!(f.validator.validate(&t2).is_ok());
    // Revoke alice's tokens issued before now + 1 s: t2 (iat = T0) is covered…
    revs.revoke_subject("alice", f.clock.now() + Duration::from_secs(1), until)
        .unwrap();
    assert_eq!(f.validator.validate(&t2).unwrap_err().field(), Some("sub"));
    // …a token she gets later is not.
    f.clock.advance(Duration::from_secs(5));
    let t3 = testing::sign(
        key,
        &claims_with(|c| {
            c.insert("jti".into(), json!("j-3"));
            c.insert("sub".into(), json!("alice"));
            c.insert("iat".into(), json!(T0 + 5));
        }),
    );
    assert!(f.validator.validate(&t3).is_ok());

    let t4 = testing::sign(
        key,
        &claims_with(|c| {
            c.insert("jti".into(), json!("j-4"));
            c.insert("fam".into(), json!("family-9"));
        }),
    );
    assert!(f.validator.validate(&t4).is_ok());
    revs.revoke_family("family-9", until).unwrap();
    assert_eq!(f.validator.validate(&t4).unwrap_err().field(), Some("fam"));
}

#[test]
fn verified_carries_version_kid_and_a_fingerprint_not_the_token() {
    let f = Fixture::new();
    let t = f.token(Algorithm::PS256);
    let v = f.validator.validate(&t).unwrap();
    assert_eq!(v.keyset_version(), 1);
    assert_eq!(v.kid(), "PS256");
    assert!(v.has_scope("orders:read"));
    assert_eq!(v.fingerprint(), f.validator.fingerprint(&t));
    assert!(!format!("{v:?}").contains(&t));
    #[derive(serde::Deserialize)]
    struct Mine {
        sub: String,
        scope: String,
    }
    let mine: Mine = v.deserialize_claims().unwrap();
    assert_eq!(
        (mine.sub.as_str(), mine.scope.as_str()),
        ("user-42", "orders:read")
    );
}

#[test]
fn fingerprints_are_shared_by_nodes_with_the_same_key() {
    let f = Fixture::new();
    let node = |k| {
        Validator::builder(f.store.clone())
            .issuer(ISS)
            .audience(AUD)
            .fingerprint_key(k)
            .build()
            .unwrap()
    };
    let t = f.token(Algorithm::HS256);
    assert_eq!(node([3; 32]).fingerprint(&t), node([3; 32]).fingerprint(&t));
    assert_ne!(node([3; 32]).fingerprint(&t), node([4; 32]).fingerprint(&t));
}

#[test]
fn rollback_that_removes_a_key_fails_its_tokens_on_the_very_next_call() {
    let keys = all_keys();
    let (a, b) = (keys[3].clone(), keys[9].clone()); // RS256, ES256
    let store = KeysetStore::new(Keyset::new([a.clone()]).unwrap());
    let clock = tokenlife_core::ManualClock::at_unix(T0);
    let v = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock)
        .build()
        .unwrap();
    let v2 = store.publish(Keyset::new([a.clone(), b.clone()]).unwrap());
    let tb = testing::sign(&b, &claims());
    let ta = testing::sign(&a, &claims());
    assert_eq!(v.validate(&tb).unwrap().keyset_version(), v2);
    assert!(v.validate(&tb).unwrap().from_cache());
    v.validate(&ta).unwrap();

    store.rollback().unwrap(); // back to {a}
    assert_eq!(
        v.validate(&tb).unwrap_err().kind(),
        K::UnknownKid,
        "cached token of a removed key"
    );
    let fresh = testing::sign(
        &b,
        &claims_with(|c| {
            c.insert("jti".into(), json!("never-seen"));
        }),
    );
    assert_eq!(
        v.validate(&fresh).unwrap_err().kind(),
        K::UnknownKid,
        "uncached token"
    );
    // The key that stayed keeps its cached verification across the swap.
    let kept = v.validate(&ta).unwrap();
    assert!(kept.from_cache());
    assert_eq!(kept.keyset_version(), 1);

    store.rollback_to(v2).unwrap();
    assert!(v.validate(&tb).is_ok());
}

#[test]
fn a_replaced_key_with_the_same_kid_is_verified_again() {
    let clock = tokenlife_core::ManualClock::at_unix(T0);
    let old = testing::key("k", Algorithm::RS256);
    let store = KeysetStore::new(Keyset::new([old]).unwrap());
    let v = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock)
        .build()
        .unwrap();
    let t = testing::sign(&testing::key("k", Algorithm::RS256), &claims());
    v.validate(&t).unwrap();
    let other =
        tokenlife_core::Key::from_private_pem("k", Algorithm::RS256, testing::RSA2_PEM.as_bytes())
            .unwrap();
    store.publish(Keyset::new([other]).unwrap());
    assert_eq!(v.validate(&t).unwrap_err().kind(), K::BadSignature);
}

#[test]
fn staged_keys_verify_and_rollback_drops_them() {
    let f = Fixture::new();
    let canary = testing::key("canary", Algorithm::ES256);
    let t = testing::sign(&canary, &claims());
    assert_eq!(f.validator.validate(&t).unwrap_err().kind(), K::UnknownKid);
    let v = f
        .store
        .stage(Keyset::new([testing::key("canary", Algorithm::ES256)]).unwrap())
        .unwrap();
    let ok = f.validator.validate(&t).unwrap();
    assert_eq!(ok.keyset_version(), v);
    assert_eq!(
        f.store.current().signing_kid(),
        Some("HS256"),
        "current keys still sign"
    );
    f.store.rollback().unwrap();
    assert_eq!(f.validator.validate(&t).unwrap_err().kind(), K::UnknownKid);
}

/// 8 threads validate 200,000 times each while a 9th swaps between two keysets that both
/// hold the tokens' keys at least 10,000 times: not one failure.
#[test]
fn validation_never_fails_while_keysets_swap() {
    const THREADS: usize = 8;
    const ITERATIONS: usize = 200_000;
    const MIN_SWAPS: u64 = 10_000;

    let keys = all_keys();
    let clock = tokenlife_core::ManualClock::at_unix(T0);
    let blue = Keyset::new(keys.clone()).unwrap().with_label("blue");
    let green = Keyset::new(keys.iter().rev().cloned())
        .unwrap()
        .with_label("green");
    let store = KeysetStore::new(blue.clone());
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock)
        .build()
        .unwrap();
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..24)
            .map(|n| {
                testing::sign(
                    &keys[n % keys.len()],
                    &claims_with(|c| {
                        c.insert("jti".into(), json!(format!("j-{n}")));
                    }),
                )
            })
            .collect(),
    );

    let done = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (store, done, swaps) = (store.clone(), done.clone(), swaps.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) || n < MIN_SWAPS {
                match n % 4 {
                    0 => {
                        store.publish(green.clone());
                    }
                    1 => {
                        store.rollback().unwrap();
                    }
                    2 => {
                        store.publish(blue.clone());
                    }
                    _ => {
                        let v = store.history().first().unwrap().version();
                        store.rollback_to(v).unwrap();
                    }
                }
                n += 1;
                swaps.store(n, Ordering::Relaxed);
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (validator, tokens) = (validator.clone(), tokens.clone());
            std::thread::spawn(move || {
                let mut failures = 0usize;
                for i in 0..ITERATIONS {
                    if validator.validate(&tokens[(i + t) % tokens.len()]).is_err() {
                        failures += 1;
                    }
                }
                failures
            })
        })
        .collect();
    let failures: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    done.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(failures, 0);
    assert!(swaps.load(Ordering::Relaxed) >= MIN_SWAPS);
}

#[test]
fn the_system_clock_is_the_default() {
    let store = KeysetStore::new(Keyset::new([testing::key("k", Algorithm::HS256)]).unwrap());
    let v = Validator::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(v.clock().unix_now().abs_diff(now) < 5);
}

/// Finding 10: a kid-less token keeps validating during a canary of the same algorithm,
/// whether the active or the staged key signed it; a kid collision cannot be staged.
#[test]
fn kidless_tokens_during_a_canary() {
    use jsonwebtoken::Header;
    let active = testing::key("blue", Algorithm::RS256);
    let staged_key =
        Key::from_private_pem("green", Algorithm::RS256, testing::RSA2_PEM.as_bytes()).unwrap();
    let store = KeysetStore::new(Keyset::new([testing::key("blue", Algorithm::RS256)]).unwrap());
    let clock = tokenlife_core::ManualClock::at_unix(T0);
    let v = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock)
        .build()
        .unwrap();
    let no_kid = Header::new(Algorithm::RS256);
    let by_active = testing::sign_with_header(&active, &no_kid, &claims());
    let by_staged = testing::sign_with_header(
        &staged_key,
        &no_kid,
        &claims_with(|c| {
            c.insert("jti".into(), "other".into());
        }),
    );
    v.validate(&by_active).unwrap();
    assert_eq!(v.validate(&by_staged).unwrap_err().kind(), K::BadSignature);
    store
        .stage(
            Keyset::new([Key::from_private_pem(
                "green",
                Algorithm::RS256,
                testing::RSA2_PEM.as_bytes(),
            )
            .unwrap()])
            .unwrap(),
        )
        .unwrap();
    v.clear_cache();
    assert_eq!(v.validate(&by_active).unwrap().kid(), "blue");
    assert_eq!(v.validate(&by_staged).unwrap().kid(), "green");
    // A forged kid-less token fails against both.
    let (msg, _) = by_active.rsplit_once('.').unwrap();
    let (_, other_sig) = by_staged.rsplit_once('.').unwrap();
    let forged = format!("{msg}.{other_sig}");
    assert_eq!(v.validate(&forged).unwrap_err().kind(), K::BadSignature);
    // Staging a different key under an active kid is refused.
    let clash = Keyset::new([Key::from_private_pem(
        "blue",
        Algorithm::RS256,
        testing::RSA2_PEM.as_bytes(),
    )
    .unwrap()])
    .unwrap();
    // While a candidate is staged, another stage is refused whatever it holds.
    let err = store.stage(clash.clone()).unwrap_err();
    assert_eq!(
        err.kind(),
        tokenlife_core::error::KeysetErrorKind::RolloutInProgress
    );
    store.abort().unwrap();
    let err = store.stage(clash).unwrap_err();
    assert_eq!(
        (err.kind(), err.kid()),
        (
            tokenlife_core::error::KeysetErrorKind::KidConflict,
            Some("blue")
        )
    );
}

/// The observer seam: every API validation is one `Validated` event, `inspect` emits
/// nothing, and two observers side by side both see each event.
#[test]
fn observers_see_validations_and_inspect_stays_silent() {
    use std::sync::Mutex;
    use tokenlife_core::observe::{self, Event};

    type Seen = Vec<(Result<bool, K>, u64)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let copy = seen.clone();
    let counted = Arc::new(AtomicU64::new(0));
    let c2 = counted.clone();
    let recorder = observe::from_fn(move |e: &Event<'_>| {
        if let Event::Validated {
            outcome,
            keyset_version,
            ..
        } = e
        {
            copy.lock()
                .unwrap()
                .push((outcome.map(|v| v.from_cache), *keyset_version));
        }
    });
    let counter = observe::from_fn(move |_: &Event<'_>| {
        c2.fetch_add(1, Ordering::Relaxed);
    });
    let f = Fixture::new();
    let store = f.store.clone();
    let v = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(f.clock.clone())
        .observer((recorder, counter))
        .build()
        .unwrap();
    let token = f.token(Algorithm::ES256);
    v.validate(&token).unwrap();
    v.inspect(&token).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1, "inspect emitted");
    v.validate(&token).unwrap();
    v.validate("not.a.token").unwrap_err();
    let version = store.current().version();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (Ok(false), version),
            (Ok(true), version),
            (Err(K::Malformed), version)
        ]
    );
    assert_eq!(counted.load(Ordering::Relaxed), 3);
}
