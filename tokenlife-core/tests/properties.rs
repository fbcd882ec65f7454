//! Property tests (proptest) of the promises users rely on, over random sequences of
//! operations on a manual clock:
//!
//! - an issued token validates until `exp` (+ leeway) and never after;
//! - a revoked token never validates again, whatever the order of revoke, validate,
//!   rollback, re-publish and cache state;
//! - once a subject or a family is revoked, no sequence of renew, validate, introspect
//!   or rollback yields a token of it that validates or renews, for as long as any of its
//!   refresh tokens could live;
//! - rollback then re-publish gives identical verdicts;
//! - lifecycle transitions never leave the table.

mod common;

use std::time::Duration;

use common::{AUD, ISS, T0};
use proptest::prelude::*;
use tokenlife_core::{
    Algorithm, Clock, Issuer, Key, Keyset, KeysetStore, ManualClock, Monitor, TokenRequest,
    ValidationErrorKind as K, Validator, testing,
};

const LEEWAY: u64 = 30;
const ACCESS_TTL: u64 = 900;
const REFRESH_TTL: u64 = 7 * 86_400;

struct World {
    clock: ManualClock,
    store: KeysetStore,
    keys: Keyset,
    validator: Validator,
    issuer: Issuer,
    monitor: Monitor,
}

fn world() -> World {
    let clock = ManualClock::at_unix(T0);
    let keys = Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap();
    let store = KeysetStore::new(keys.clone());
    let monitor = Monitor::builder().clock(clock.clone()).build();
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .leeway(Duration::from_secs(LEEWAY))
        .clock(clock.clone())
        .monitor(monitor.clone())
        .build()
        .unwrap();
    let issuer = Issuer::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .access_ttl(Duration::from_secs(ACCESS_TTL))
        .refresh_ttl(Duration::from_secs(REFRESH_TTL))
        .clock(clock.clone())
        .revocations(validator.revocations().clone())
        .monitor(monitor.clone())
        .build()
        .unwrap();
    World {
        clock,
        store,
        keys,
        validator,
        issuer,
        monitor,
    }
}

/// What an attacker (or a busy system) may do between two checks.
#[derive(Debug, Clone)]
enum Op {
    Validate(usize),
    Renew(usize),
    Inspect(usize),
    Rollback,
    Republish,
    ClearCache,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..8usize).prop_map(Op::Validate),
        3 => (0..8usize).prop_map(Op::Renew),
        1 => (0..8usize).prop_map(Op::Inspect),
        1 => Just(Op::Rollback),
        1 => Just(Op::Republish),
        1 => Just(Op::ClearCache),
        2 => (0..(2 * 86_400u64)).prop_map(Op::Advance),
    ]
}

/// The tokens of one session: every access and refresh token it was ever given.
#[derive(Default)]
struct Session {
    access: Vec<String>,
    refresh: Vec<String>,
}

impl World {
    fn login(&self, sub: &str) -> Session {
        let pair = self.issuer.issue(TokenRequest::subject(sub)).unwrap();
        Session {
            access: vec![pair.access_token],
            refresh: vec![pair.refresh_token.unwrap()],
        }
    }

    /// Applies `op` to the session; returns whether a token of it validated or renewed.
    fn apply(&self, s: &mut Session, op: &Op) -> bool {
        match op {
            Op::Validate(i) => {
                let t = &s.access[i % s.access.len()];
                self.validator.validate(t).is_ok()
            }
            Op::Inspect(i) => {
                let t = &s.access[i % s.access.len()];
                let r = &s.refresh[i % s.refresh.len()];
                self.validator.inspect(t).is_ok()
                    | self.issuer.inspect_refresh(r).unwrap().is_some()
            }
            Op::Renew(i) => {
                let r = s.refresh[i % s.refresh.len()].clone();
                match self.issuer.renew(&r) {
                    Ok(pair) => {
                        s.access.push(pair.access_token);
                        s.refresh.push(pair.refresh_token.unwrap());
                        true
                    }
                    Err(_) => false,
                }
            }
            Op::Rollback => {
                let _ = self.store.rollback();
                false
            }
            Op::Republish => {
                self.store.publish(self.keys.clone());
                false
            }
            Op::ClearCache => {
                self.validator.clear_cache();
                false
            }
            Op::Advance(secs) => {
                self.clock.advance(Duration::from_secs(*secs));
                false
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// An issued token validates until `exp` + leeway and never after, cached or not.
    #[test]
    fn valid_until_exp_plus_leeway_never_after(steps in prop::collection::vec(0..400u64, 1..12)) {
        let w = world();
        let pair = w.issuer.issue_access(TokenRequest::subject("s")).unwrap();
        let exp = T0 + ACCESS_TTL;
        for step in steps {
            w.clock.advance(Duration::from_secs(step));
            let now = w.clock.unix_now();
            let verdict = w.validator.validate(&pair.access_token);
            if now <= exp + LEEWAY {
                prop_assert!(verdict.is_ok(), "at {} (exp {exp})", now);
            } else {
                prop_assert_eq!(verdict.unwrap_err().kind(), K::Expired);
            }
        }
    }

    /// A revoked token never validates again, whatever happens around it.
    #[test]
    fn a_revoked_token_stays_revoked(
        before in prop::collection::vec(op(), 0..8),
        after in prop::collection::vec(op(), 1..16),
    ) {
        let w = world();
        let mut s = w.login("alice");
        let target = s.access[0].clone();
        for op in &before {
            if !matches!(op, Op::Advance(_)) {
                w.apply(&mut s, op);
            }
        }
        let jti = w.validator.inspect(&target).ok().and_then(|v| v.claims().jti.clone());
        prop_assume!(jti.is_some());
        let until = w.clock.now() + Duration::from_secs(ACCESS_TTL + LEEWAY + 60);
        w.validator.revocations().revoke_jti(&jti.unwrap(), until).unwrap();
        for op in &after {
            w.apply(&mut s, op);
            prop_assert!(w.validator.validate(&target).is_err(), "after {:?}", op);
            prop_assert!(w.validator.inspect(&target).is_err());
        }
    }

    /// Once a subject (or a family) is revoked, nothing of it validates or renews again
    /// while any of its refresh tokens could live, and other users are untouched.
    #[test]
    fn a_revoked_subject_or_family_has_no_way_back(
        before in prop::collection::vec(op(), 0..10),
        after in prop::collection::vec(op(), 1..20),
        by_family in any::<bool>(),
    ) {
        let w = world();
        let mut alice = w.login("alice");
        let mut bob = w.login("bob");
        for op in &before {
            if !matches!(op, Op::Advance(_)) {
                w.apply(&mut alice, op);
                w.apply(&mut bob, op);
            }
        }
        let cut = w.clock.unix_now();
        if by_family {
            let fam = w.validator.inspect(&alice.access[0]).unwrap().claims().family.clone().unwrap();
            w.issuer.revoke_family(&fam).unwrap();
        } else {
            w.issuer.revoke_subject("alice", w.clock.now()).unwrap();
        }
        for op in &after {
            let got_in = w.apply(&mut alice, op);
            let now = w.clock.unix_now();
            if now <= cut + REFRESH_TTL {
                prop_assert!(!got_in, "{:?} let a revoked session back in at +{}s", op, now - cut);
                for t in &alice.access {
                    prop_assert!(w.validator.validate(t).is_err());
                }
            }
        }
        // Bob's newest tokens were never touched by Alice's revocation.
        let r = bob.refresh.last().unwrap().clone();
        if w.clock.unix_now() <= cut {
            prop_assert!(w.issuer.inspect_refresh(&r).unwrap().is_some());
        }
    }

    /// Rollback then re-publish gives the verdicts the keyset gave before.
    #[test]
    fn rollback_and_republish_give_identical_verdicts(
        signers in prop::collection::vec(0..4usize, 1..8),
        republish_first in any::<bool>(),
    ) {
        let keys: Vec<Key> = vec![
            testing::key("a", Algorithm::ES256),
            testing::key("b", Algorithm::RS256),
            testing::key("c", Algorithm::EdDSA),
            testing::key("d", Algorithm::HS256),
        ];
        let blue = Keyset::new([testing::key("a", Algorithm::ES256), testing::key("b", Algorithm::RS256)]).unwrap();
        let green = Keyset::new([testing::key("c", Algorithm::EdDSA), testing::key("d", Algorithm::HS256)]).unwrap();
        let store = KeysetStore::new(blue.clone());
        let v = Validator::builder(store.clone()).issuer(ISS).audience(AUD)
            .clock(ManualClock::at_unix(T0)).build().unwrap();
        let tokens: Vec<String> = signers.iter().map(|&i| testing::sign(&keys[i], &common::claims())).collect();
        let verdicts = |v: &Validator| -> Vec<Result<(), K>> {
            tokens.iter().map(|t| v.validate(t).map(|_| ()).map_err(|e| e.kind())).collect()
        };
        let on_blue = verdicts(&v);
        store.publish(green.clone());
        let on_green = verdicts(&v);
        store.rollback().unwrap();
        prop_assert_eq!(&verdicts(&v), &on_blue);
        if republish_first {
            store.publish(green.clone());
        } else {
            store.rollback_to(2).unwrap();
        }
        prop_assert_eq!(&verdicts(&v), &on_green);
        store.publish(blue.clone());
        prop_assert_eq!(&verdicts(&v), &on_blue);
    }

    /// Whatever happens, the domain never asks the lifecycle for a transition the table
    /// forbids.
    #[test]
    fn lifecycle_transitions_never_leave_the_table(
        ops in prop::collection::vec(op(), 1..30),
        revoke_at in 0..30usize,
    ) {
        let w = world();
        let mut s = w.login("alice");
        for (i, op) in ops.iter().enumerate() {
            if i == revoke_at {
                w.issuer.revoke_subject("alice", w.clock.now()).unwrap();
            }
            w.apply(&mut s, op);
        }
        let r = s.refresh[0].clone();
        let _ = w.issuer.revoke_refresh(&r, None);
        prop_assert_eq!(w.monitor.tracker().illegal(), 0);
    }
}
