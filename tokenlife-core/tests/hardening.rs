//! The review's lifecycle findings, each from the attacker's side: a revoked user must
//! stay revoked whatever way back in is tried (renew, retry, race, full store, lapsed
//! `until`), and no bad configuration may panic.

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::{AUD, ISS, T0};
use tokenlife_core::apikey::{ApiKeyErrorKind, ApiKeys};
use tokenlife_core::issue::{IssueErrorKind, MemoryRefreshStore, RenewErrorKind};
use tokenlife_core::{
    Algorithm, Clock, Issuer, Keyset, KeysetStore, ManualClock, TokenRequest,
    ValidationErrorKind as K, Validator, testing,
};

const DAY: u64 = 86_400;

struct World {
    clock: ManualClock,
    store: KeysetStore,
    validator: Validator,
    issuer: Issuer,
}

fn world_with(
    f: impl FnOnce(tokenlife_core::issue::IssuerBuilder) -> tokenlife_core::issue::IssuerBuilder,
) -> World {
    let clock = ManualClock::at_unix(T0);
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap();
    let issuer = f(Issuer::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .access_ttl(Duration::from_secs(900))
        .refresh_ttl(Duration::from_secs(30 * DAY))
        .clock(clock.clone())
        .revocations(validator.revocations().clone()))
    .build()
    .unwrap();
    World {
        clock,
        store,
        validator,
        issuer,
    }
}

fn world() -> World {
    world_with(|b| b)
}

fn at(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Finding 1: revoking a subject kills its refresh tokens too, and for good.
#[test]
fn a_revoked_subject_cannot_renew_its_way_back() {
    let w = world();
    let pair = w.issuer.issue(TokenRequest::subject("alice")).unwrap();
    let refresh = pair.refresh_token.clone().unwrap();
    let bob = w.issuer.issue(TokenRequest::subject("bob")).unwrap();
    w.clock.advance(Duration::from_secs(10));

    let until = w.issuer.revoke_subject("alice", w.clock.now()).unwrap();
    assert!(
        until >= at(T0 + 10 + 30 * DAY),
        "until covers every refresh token"
    );
    assert_eq!(
        w.validator.validate(&pair.access_token).unwrap_err().kind(),
        K::Revoked
    );
    // The way back in through renewal is shut.
    assert_eq!(
        w.issuer.renew(&refresh).unwrap_err().kind(),
        RenewErrorKind::Revoked
    );
    // Introspection agrees.
    assert!(w.issuer.inspect_refresh(&refresh).unwrap().is_none());
    // Other subjects are untouched.
    w.validator.validate(&bob.access_token).unwrap();
    w.issuer
        .renew(bob.refresh_token.as_deref().unwrap())
        .unwrap();
    // A new login after the cut-off works.
    w.clock.advance(Duration::from_secs(1));
    let fresh = w.issuer.issue(TokenRequest::subject("alice")).unwrap();
    w.validator.validate(&fresh.access_token).unwrap();
}

/// Finding 1, the lapsed `until`: a revocation made through the list with a short
/// `until` lapses; the family it caught at a renewal stays dead.
#[test]
fn a_subject_revocation_that_lapses_does_not_bring_a_caught_family_back() {
    let w = world();
    let pair = w.issuer.issue(TokenRequest::subject("alice")).unwrap();
    let refresh = pair.refresh_token.clone().unwrap();
    w.clock.advance(Duration::from_secs(10));
    let now = w.clock.now();
    w.validator
        .revocations()
        .revoke_subject("alice", now, now + Duration::from_secs(DAY))
        .unwrap();
    assert_eq!(
        w.issuer.renew(&refresh).unwrap_err().kind(),
        RenewErrorKind::Revoked
    );
    w.clock.advance(Duration::from_secs(2 * DAY));
    assert_eq!(
        w.issuer.renew(&refresh).unwrap_err().kind(),
        RenewErrorKind::Revoked
    );
}

/// Review 3, HIGH 5: the cut-off of a subject revocation is compared with the start of
/// the refresh family, not with its last renewal: a family renewed once after the
/// cut-off (on this node, or on another before the revocation reached it) is still
/// caught, and stays dead.
#[test]
fn a_family_renewed_after_the_cut_off_is_still_caught_by_the_subject_revocation() {
    let w = world();
    let pair = w.issuer.issue(TokenRequest::subject("alice")).unwrap();
    w.clock.advance(Duration::from_secs(100));
    let renewed = w
        .issuer
        .renew(pair.refresh_token.as_deref().unwrap())
        .unwrap();
    let refresh = renewed.refresh_token.clone().unwrap();
    // Every token of alice issued up to T0 + 50: the family began at T0.
    w.validator
        .revocations()
        .revoke_subject("alice", at(T0 + 50), at(T0 + 40 * DAY))
        .unwrap();
    assert_eq!(
        w.issuer.renew(&refresh).unwrap_err().kind(),
        RenewErrorKind::Revoked
    );
    assert!(w.issuer.inspect_refresh(&refresh).unwrap().is_none());
    // A family that began after the cut-off is not caught.
    let later = w.issuer.issue(TokenRequest::subject("alice")).unwrap();
    w.clock.advance(Duration::from_secs(10));
    w.issuer
        .renew(later.refresh_token.as_deref().unwrap())
        .unwrap();
}

/// Finding 1 through `Issuer::revoke_subject`: even if nobody presents the refresh token
/// while the revocation holds, it holds until the token has expired.
#[test]
fn issuer_subject_revocation_outlives_every_refresh_token() {
    let w = world();
    let pair = w.issuer.issue(TokenRequest::subject("alice")).unwrap();
    let refresh = pair.refresh_token.clone().unwrap();
    w.issuer.revoke_subject("alice", w.clock.now()).unwrap();
    w.clock.advance(Duration::from_secs(30 * DAY - 1));
    w.validator.revocations().run_pending_tasks();
    assert_eq!(
        w.issuer.renew(&refresh).unwrap_err().kind(),
        RenewErrorKind::Revoked
    );
}

/// Finding 9: a token issued earlier in the same second as the cut-off is covered.
#[test]
fn subject_revocation_covers_tokens_of_the_same_second() {
    let w = world();
    let pair = w.issuer.issue(TokenRequest::subject("alice")).unwrap();
    // Same second (the manual clock has not moved).
    let now = w.clock.now();
    w.validator
        .revocations()
        .revoke_subject("alice", now, now + Duration::from_secs(3600))
        .unwrap();
    assert_eq!(
        w.validator.validate(&pair.access_token).unwrap_err().kind(),
        K::Revoked
    );
}

/// Finding 2: a full refresh store refuses with a typed error; it never drops a live
/// record, and it makes room when records lapse (on the injected clock).
#[test]
fn a_full_refresh_store_refuses_and_keeps_every_live_token() {
    let w = world_with(|b| b.refresh_capacity(3));
    let pairs: Vec<_> = (0..3)
        .map(|i| {
            w.issuer
                .issue(TokenRequest::subject(format!("u{i}")))
                .unwrap()
        })
        .collect();
    let err = w.issuer.issue(TokenRequest::subject("u3")).unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::Full, "{err:?}");
    assert_eq!(
        (err.status(), err.oauth_error()),
        (
            503,
            tokenlife_core::error::ErrorCode::TemporarilyUnavailable
        )
    );
    for p in &pairs {
        assert!(
            w.issuer
                .inspect_refresh(p.refresh_token.as_deref().unwrap())
                .unwrap()
                .is_some(),
            "a live record was dropped"
        );
    }
    // A renewal needs a slot too: refused as Full, and the token is not spent.
    let r0 = pairs[0].refresh_token.clone().unwrap();
    let full = w.issuer.renew(&r0).unwrap_err();
    assert_eq!((full.kind(), full.status()), (RenewErrorKind::Full, 503));
    assert!(w.issuer.inspect_refresh(&r0).unwrap().is_some());
    // Once they lapse (30 days + the retired slack), there is room again.
    w.clock.advance(Duration::from_secs(30 * DAY + 61));
    w.issuer.issue(TokenRequest::subject("u4")).unwrap();
}

/// Review 3, earlier finding 2: one holder renewing in a loop — 10× the store's capacity
/// of renewals, the clock moving — keeps a bounded share of the store (its live token and
/// its last retired ones); everyone else can still sign in; a recently retired token is
/// still caught as reuse, an old one is refused as unknown.
#[test]
fn one_holder_renewing_in_a_loop_cannot_fill_the_refresh_store() {
    use tokenlife_core::issue::DEFAULT_RETIRED_PER_FAMILY;
    const CAP: usize = 100;
    let clock = ManualClock::at_unix(T0);
    let store = Arc::new(MemoryRefreshStore::new(CAP, Arc::new(clock.clone())));
    // The issuer and its store on one clock (`clock`), which the test moves.
    let w = world_with({
        let (store, clock) = (store.clone(), clock.clone());
        move |b| b.clock(clock).refresh_store(store)
    });
    // Two holders, one per thread, renewing 5× the capacity each.
    let bound = 2 * (DEFAULT_RETIRED_PER_FAMILY + 1);
    let runs: Vec<(String, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = ["holder-a", "holder-b"]
            .into_iter()
            .map(|who| {
                let (w, store, clock) = (&w, &store, &clock);
                s.spawn(move || {
                    let mut current = w
                        .issuer
                        .issue(TokenRequest::subject(who))
                        .unwrap()
                        .refresh_token
                        .unwrap();
                    let mut spent = Vec::new();
                    for _ in 0..CAP * 5 {
                        clock.advance(Duration::from_secs(1));
                        let next = w.issuer.renew(&current).unwrap().refresh_token.unwrap();
                        spent.push(std::mem::replace(&mut current, next));
                        assert!(store.len() <= bound, "{}", store.len());
                    }
                    (current, spent)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (current, spent) = &runs[0];
    // Everyone else still gets tokens.
    for i in 0..CAP - bound {
        w.issuer
            .issue(TokenRequest::subject(format!("u{i}")))
            .unwrap();
    }
    // An old retired token is unknown; a recent one is reuse and kills the family.
    let old = w.issuer.renew(&spent[0]).unwrap_err();
    assert_eq!(old.kind(), RenewErrorKind::Unknown, "{old:?}");
    assert!(
        w.issuer.renew(current).is_ok(),
        "an unknown token is not reuse"
    );
    let recent = spent.last().unwrap();
    clock.advance(Duration::from_secs(60));
    let reuse = w.issuer.renew(recent).unwrap_err();
    assert_eq!(reuse.kind(), RenewErrorKind::Reused, "{reuse:?}");
}

/// Finding 2, directly on the store: `insert` on a full store is an error, not a silent
/// drop.
#[test]
fn memory_refresh_store_insert_is_refused_when_full() {
    use tokenlife_core::issue::{RefreshRecord, RefreshStore};
    let clock = ManualClock::at_unix(T0);
    let store = MemoryRefreshStore::new(2, Arc::new(clock.clone()));
    store
        .insert([1; 32], RefreshRecord::new("f1", "s", T0, T0 + 10))
        .unwrap();
    store
        .insert([2; 32], RefreshRecord::new("f2", "s", T0, T0 + 1000))
        .unwrap();
    assert_eq!(
        store
            .insert([3; 32], RefreshRecord::new("f3", "s", T0, T0 + 10))
            .map_err(|e| e.kind()),
        Err(tokenlife_core::issue::RefreshStoreErrorKind::Full)
    );
    assert!(store.get(&[1; 32]).unwrap().is_some() && store.get(&[2; 32]).unwrap().is_some());
    assert!(store.get(&[3; 32]).unwrap().is_none());
    clock.advance(Duration::from_secs(71));
    store
        .insert([3; 32], RefreshRecord::new("f3", "s", T0, T0 + 1000))
        .unwrap();
    assert!(
        store.get(&[1; 32]).unwrap().is_none(),
        "lapsed record swept"
    );
    // Revoked families are bounded the same way.
    store.revoke_family("a", T0 + 5000).unwrap();
    store.revoke_family("b", T0 + 5000).unwrap();
    assert_eq!(
        store.revoke_family("c", T0 + 5000).map_err(|e| e.kind()),
        Err(tokenlife_core::issue::RefreshStoreErrorKind::Full)
    );
    // Re-revoking a held family needs no room.
    store.revoke_family("a", T0 + 9000).unwrap();
    assert!(store.is_family_revoked("a").unwrap() && !store.is_family_revoked("c").unwrap());
    // Records round-trip through serde (a store outside the crate keeps them).
    let rec = store.get(&[2; 32]).unwrap().unwrap();
    let json = serde_json::to_string(&rec).unwrap();
    assert_eq!(serde_json::from_str::<RefreshRecord>(&json).unwrap(), rec);
}

/// Finding 4: a renewal that fails after the token was marked used puts the mark back,
/// so the client's retry renews instead of being treated as reuse.
#[test]
fn a_failed_renewal_can_be_retried_without_counting_as_reuse() {
    let w = world_with(|b| b.refresh_capacity(2).reuse_grace(Duration::ZERO));
    let other = w.issuer.issue(TokenRequest::subject("other")).unwrap();
    w.clock.advance(Duration::from_secs(DAY));
    let mine = w.issuer.issue(TokenRequest::subject("me")).unwrap();
    let refresh = mine.refresh_token.clone().unwrap();
    // Store full: the new record cannot be stored after the old one was marked.
    for _ in 0..3 {
        assert_eq!(
            w.issuer.renew(&refresh).unwrap_err().kind(),
            RenewErrorKind::Full
        );
    }
    // Nothing was revoked: both sessions live.
    w.validator.validate(&mine.access_token).unwrap();
    w.validator.validate(&other.access_token).ok();
    // Once "other" lapses there is room, and the same token renews.
    w.clock.advance(Duration::from_secs(29 * DAY + 61));
    let renewed = w.issuer.renew(&refresh).unwrap();
    w.validator.validate(&renewed.access_token).unwrap();
}

/// A refresh store whose writes fail while `down` (a Redis that went away mid-renewal):
/// the mark succeeds, then storing the new record and taking the mark back both fail.
#[derive(Debug)]
struct Flaky {
    inner: tokenlife_core::issue::MemoryRefreshStore,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl tokenlife_core::issue::RefreshStore for Flaky {
    fn insert(
        &self,
        id: [u8; 32],
        record: tokenlife_core::issue::RefreshRecord,
    ) -> Result<(), tokenlife_core::issue::RefreshStoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(tokenlife_core::issue::RefreshStoreError::backend(
                "redis gone",
            ));
        }
        self.inner.insert(id, record)
    }
    fn get(
        &self,
        id: &[u8; 32],
    ) -> Result<
        Option<tokenlife_core::issue::RefreshRecord>,
        tokenlife_core::issue::RefreshStoreError,
    > {
        self.inner.get(id)
    }
    fn mark_used(
        &self,
        id: &[u8; 32],
        at_ms: u64,
    ) -> Result<
        Option<tokenlife_core::issue::RefreshRecord>,
        tokenlife_core::issue::RefreshStoreError,
    > {
        self.inner.mark_used(id, at_ms)
    }
    fn unmark_used(
        &self,
        id: &[u8; 32],
        at_ms: u64,
    ) -> Result<(), tokenlife_core::issue::RefreshStoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(tokenlife_core::issue::RefreshStoreError::backend(
                "redis gone",
            ));
        }
        self.inner.unmark_used(id, at_ms)
    }
    fn revoke_family(
        &self,
        family: &str,
        until: u64,
    ) -> Result<(), tokenlife_core::issue::RefreshStoreError> {
        self.inner.revoke_family(family, until)
    }
    fn is_family_revoked(
        &self,
        family: &str,
    ) -> Result<bool, tokenlife_core::issue::RefreshStoreError> {
        self.inner.is_family_revoked(family)
    }
}

/// Security review 3, earlier finding 4: when the store fails twice in a renewal (the
/// new record, then taking the mark back), the client's retry is still a renewal once the
/// store is back — never "reuse" that revokes the family.
#[test]
fn a_renewal_whose_undo_failed_too_is_retried_not_called_reuse() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clock = ManualClock::at_unix(T0);
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let issuer = Issuer::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .reuse_grace(Duration::ZERO)
        .refresh_store(Flaky {
            inner: MemoryRefreshStore::new(1_000, Arc::new(clock.clone())),
            down: down.clone(),
        })
        .build()
        .unwrap();
    let pair = issuer.issue(TokenRequest::subject("me")).unwrap();
    let refresh = pair.refresh_token.clone().unwrap();
    down.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = issuer.renew(&refresh).unwrap_err();
    assert_eq!(err.kind(), RenewErrorKind::Store);
    // Still down: the retry is an outage again, not reuse.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        issuer.renew(&refresh).unwrap_err().kind(),
        RenewErrorKind::Store
    );
    // The store is back: the same token renews.
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    clock.advance(Duration::from_secs(1));
    let renewed = issuer.renew(&refresh).unwrap();
    assert!(renewed.refresh_token.is_some());
}

/// Finding 4, the signing side: no signing key means the token is not spent.
#[test]
fn a_renewal_without_a_signing_key_leaves_the_token_live() {
    let w = world_with(|b| b.reuse_grace(Duration::ZERO));
    let pair = w.issuer.issue(TokenRequest::subject("me")).unwrap();
    let refresh = pair.refresh_token.clone().unwrap();
    let public = Keyset::from_jwks_json(
        &Keyset::new([testing::key("k1", Algorithm::ES256)])
            .unwrap()
            .to_public_jwks(),
    )
    .unwrap();
    w.store.publish(public);
    let err = w.issuer.renew(&refresh).unwrap_err();
    assert_eq!(
        (err.kind(), err.status(), err.oauth_error()),
        (
            RenewErrorKind::NoSigningKey,
            503,
            tokenlife_core::error::ErrorCode::TemporarilyUnavailable
        )
    );
    w.store.rollback().unwrap();
    let renewed = w.issuer.renew(&refresh).unwrap();
    w.validator.validate(&renewed.access_token).unwrap();
}

/// Finding 5: concurrent renewals of one token within the grace: one wins, the others
/// are refused, and the winner's new tokens live.
#[test]
fn a_race_of_renewals_keeps_the_winners_session() {
    let w = world();
    let r = w
        .issuer
        .issue(TokenRequest::subject("s"))
        .unwrap()
        .refresh_token
        .unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(|| w.issuer.renew(&r))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    // The first renewal and at most three idempotent retries (siblings).
    assert!((1..=4).contains(&winners.len()), "{results:?}");
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.kind(), RenewErrorKind::Rotated);
    }
    let won = winners[winners.len() - 1];
    for w2 in &winners {
        w.validator.validate(&w2.access_token).unwrap();
    }
    w.issuer
        .renew(won.refresh_token.as_deref().unwrap())
        .unwrap();
}

/// Finding 5, the other side: after the (retry) grace, a second presentation is reuse;
/// with no grace, even a race is reuse.
#[test]
fn after_the_grace_or_with_none_a_second_presentation_is_reuse() {
    let w = world();
    let pair = w.issuer.issue(TokenRequest::subject("s")).unwrap();
    let r1 = pair.refresh_token.clone().unwrap();
    let pair2 = w.issuer.renew(&r1).unwrap();
    w.clock.advance(Duration::from_millis(30_000));
    assert_eq!(
        w.issuer.renew(&r1).unwrap_err().kind(),
        RenewErrorKind::Reused
    );
    assert_eq!(
        w.validator
            .validate(&pair2.access_token)
            .unwrap_err()
            .kind(),
        K::Revoked
    );

    let strict = world_with(|b| b.reuse_grace(Duration::ZERO).retry_grace(Duration::ZERO));
    let r = strict
        .issuer
        .issue(TokenRequest::subject("s"))
        .unwrap()
        .refresh_token
        .unwrap();
    strict.issuer.renew(&r).unwrap();
    assert_eq!(
        strict.issuer.renew(&r).unwrap_err().kind(),
        RenewErrorKind::Reused
    );
}

/// Finding 6 (library side): a token issued to a client renews only for that client.
#[test]
fn a_client_bound_refresh_token_renews_only_for_its_client() {
    let w = world_with(|b| b.reuse_grace(Duration::ZERO));
    let pair = w
        .issuer
        .issue(TokenRequest::subject("s").client("app"))
        .unwrap();
    let r = pair.refresh_token.clone().unwrap();
    for who in [None, Some("other")] {
        let e = w.issuer.renew_as(&r, who).unwrap_err();
        assert_eq!(
            (e.kind(), e.oauth_error()),
            (
                RenewErrorKind::WrongClient,
                tokenlife_core::error::ErrorCode::InvalidGrant
            )
        );
    }
    // The attempts spent nothing and revoked nothing.
    let next = w.issuer.renew_as(&r, Some("app")).unwrap();
    w.validator.validate(&next.access_token).unwrap();
    // Another client cannot revoke it either.
    let r2 = next.refresh_token.unwrap();
    assert_eq!(
        w.issuer
            .revoke_refresh(&r2, Some("other"))
            .unwrap_err()
            .kind(),
        RenewErrorKind::WrongClient
    );
    assert!(w.issuer.revoke_refresh(&r2, Some("app")).unwrap());
    assert_eq!(
        w.issuer.renew_as(&r2, Some("app")).unwrap_err().kind(),
        RenewErrorKind::Revoked
    );
}

/// Finding 3 (library side): one family-revocation path, refresh store and list both.
#[test]
fn revoking_a_family_kills_its_refresh_chain_for_its_whole_life() {
    let w = world();
    let pair = w.issuer.issue(TokenRequest::subject("s")).unwrap();
    let family = w
        .validator
        .validate(&pair.access_token)
        .unwrap()
        .claims()
        .family
        .clone()
        .unwrap();
    w.issuer.revoke_family(&family).unwrap();
    let r = pair.refresh_token.unwrap();
    assert_eq!(
        w.issuer.renew(&r).unwrap_err().kind(),
        RenewErrorKind::Revoked
    );
    w.clock.advance(Duration::from_secs(29 * DAY));
    w.validator.revocations().run_pending_tasks();
    assert_eq!(
        w.issuer.renew(&r).unwrap_err().kind(),
        RenewErrorKind::Revoked
    );
    assert!(w.issuer.revoke_family("").is_err());
}

/// Finding 16: durations from configuration are checked at build time.
#[test]
fn out_of_range_durations_are_config_errors_not_panics() {
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let b = || Issuer::builder(store.clone()).issuer(ISS).audience(AUD);
    for huge in [Duration::from_secs(u64::MAX), Duration::MAX] {
        assert_eq!(
            b().access_ttl(huge).build().unwrap_err().field(),
            Some("access_ttl")
        );
        assert_eq!(
            b().refresh_ttl(huge).build().unwrap_err().field(),
            Some("refresh_ttl")
        );
    }
    assert!(b().reuse_grace(Duration::from_secs(3600)).build().is_err());
    assert!(b().refresh_capacity(0).build().is_err());
    let keys = ApiKeys::builder().build();
    assert_eq!(
        keys.issue("c", Duration::from_secs(u64::MAX))
            .unwrap_err()
            .kind(),
        ApiKeyErrorKind::InvalidTtl
    );
    assert_eq!(
        keys.issue("c", Duration::ZERO).unwrap_err().kind(),
        ApiKeyErrorKind::InvalidTtl
    );
}

/// Finding 19: an expired API key cannot be rotated back to life.
#[test]
fn an_expired_api_key_cannot_be_rotated() {
    let clock = ManualClock::at_unix(T0);
    let keys = ApiKeys::builder().clock(clock.clone()).build();
    let (_, info) = keys.issue("c", Duration::from_secs(60)).unwrap();
    clock.advance(Duration::from_secs(61));
    let err = keys.rotate(&info.id, Duration::from_secs(10)).unwrap_err();
    assert_eq!(err.kind(), ApiKeyErrorKind::Expired);
    // Display says why in words a log reader can use (not a Debug dump of the kind).
    assert_eq!(err.to_string(), "API key refused: expired");
}

/// Finding 17: every validator and key store draws its own secret keys.
#[test]
fn fingerprint_keys_differ_per_validator() {
    let w1 = world();
    let w2 = world();
    assert_ne!(w1.validator.fingerprint("t"), w2.validator.fingerprint("t"));
}

/// Secrets hygiene: no `Debug` shows a secret; the public JWKS carries no private
/// member; key material is zeroized on drop (jsonwebtoken's keys are `ZeroizeOnDrop`).
#[test]
fn secrets_never_show_in_debug_or_the_public_jwks() {
    fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroized_on_drop::<jsonwebtoken::EncodingKey>();
    zeroized_on_drop::<jsonwebtoken::DecodingKey>();

    let hmac = tokenlife_core::Key::hmac("h", Algorithm::HS256, &[0x41; 32]).unwrap();
    let shown = format!("{hmac:?}");
    assert!(!shown.contains("65, 65") && !shown.contains("AAAA") && !shown.contains("QUFB"));

    // Review 3, earlier finding 10: the builders with their keys set.
    for shown in [
        format!("{:?}", ApiKeys::builder().pepper([0x5a; 32])),
        format!(
            "{:?}",
            tokenlife_core::Monitor::builder().fingerprint_key([0x5a; 32])
        ),
    ] {
        assert!(
            !shown.contains("90, 90") && !shown.contains("0x5a"),
            "{shown}"
        );
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    let w = world();
    let pair = w.issuer.issue(TokenRequest::subject("s")).unwrap();
    let refresh = pair.refresh_token.clone().unwrap();
    let v = w.validator.validate(&pair.access_token).unwrap();
    let keys = ApiKeys::builder().build();
    let (raw, info) = keys.issue("c", Duration::from_secs(60)).unwrap();
    for shown in [
        format!("{pair:?}"),
        format!("{v:?}"),
        format!("{:?}", w.issuer),
        format!("{:?}", w.validator),
        format!("{keys:?}"),
        format!("{info:?}"),
        format!("{:?}", w.store),
    ] {
        for secret in [&pair.access_token, &refresh, &raw] {
            assert!(!shown.contains(secret.as_str()), "{shown}");
        }
        let secret_part = raw.rsplit('_').next().unwrap();
        assert!(!shown.contains(secret_part), "{shown}");
    }
    // Private keys in the store never reach the public JWKS.
    let full = Keyset::new(common::all_keys()).unwrap();
    let jwks: serde_json::Value = serde_json::from_str(&full.to_public_jwks()).unwrap();
    for k in jwks["keys"].as_array().unwrap() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(private).is_none(), "{k}");
        }
    }
}

/// Peer gaps, item 4, on the in-memory store: a lost renewal answer is retried (two
/// issuers sharing one store stand for two nodes).
#[test]
fn a_lost_renewal_answer_is_retried_on_the_memory_store() {
    let w = world();
    let shared = std::sync::Arc::new(tokenlife_core::issue::MemoryRefreshStore::new(
        1_000,
        std::sync::Arc::new(w.clock.clone()),
    ));
    let node = |shared: &std::sync::Arc<tokenlife_core::issue::MemoryRefreshStore>| {
        Issuer::builder(w.store.clone())
            .issuer(ISS)
            .audience(AUD)
            .clock(w.clock.clone())
            .revocations(w.validator.revocations().clone())
            .refresh_store(shared.clone())
            .build()
            .unwrap()
    };
    let (a, b) = (node(&shared), node(&shared));
    common::lost_answer_story(&a, &b, &w.clock, |t| w.validator.validate(t).is_ok());
    common::thief_within_the_retry_grace_story(&a, &w.clock, |t| w.validator.validate(t).is_ok());
}

/// Retries: off with a zero grace, none for a revoked family, bounded options.
#[test]
fn retries_are_optional_never_revive_a_family_and_are_bounded() {
    let off = world_with(|b| b.retry_grace(Duration::ZERO));
    let r = off
        .issuer
        .issue(TokenRequest::subject("s"))
        .unwrap()
        .refresh_token
        .unwrap();
    off.issuer.renew(&r).unwrap();
    assert_eq!(
        off.issuer.renew(&r).unwrap_err().kind(),
        RenewErrorKind::Rotated
    );

    let w = world();
    let pair = w.issuer.issue(TokenRequest::subject("s")).unwrap();
    let r = pair.refresh_token.unwrap();
    let next = w.issuer.renew(&r).unwrap();
    let fam = w
        .validator
        .validate(&next.access_token)
        .unwrap()
        .claims()
        .family
        .clone()
        .unwrap();
    w.issuer.revoke_family(&fam).unwrap();
    assert_eq!(
        w.issuer.renew(&r).unwrap_err().kind(),
        RenewErrorKind::Revoked
    );

    let b = || Issuer::builder(w.store.clone()).issuer(ISS).audience(AUD);
    assert!(b().retry_grace(Duration::from_secs(301)).build().is_err());
    assert!(b().max_retries(11).build().is_err());
    assert!(
        b().retry_grace(Duration::from_secs(300))
            .max_retries(10)
            .build()
            .is_ok()
    );
}
