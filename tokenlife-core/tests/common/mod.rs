//! Shared fixtures for the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use serde_json::{Value, json};
use tokenlife_core::testing;
use tokenlife_core::{Algorithm, Key, Keyset, KeysetStore, ManualClock, Validator};

pub const T0: u64 = 1_700_000_000;
pub const ISS: &str = "https://auth.example.com";
pub const AUD: &str = "api://orders";

pub const ALL_ALGS: [Algorithm; 12] = testing::ALGORITHMS;

/// One key per algorithm, kid = the algorithm's name.
pub fn all_keys() -> Vec<Arc<Key>> {
    testing::keys_for_all_algorithms()
        .into_iter()
        .map(Arc::new)
        .collect()
}

pub struct Fixture {
    pub keys: Vec<Arc<Key>>,
    pub store: KeysetStore,
    pub clock: ManualClock,
    pub validator: Validator,
}

impl Fixture {
    pub fn new() -> Self {
        let keys = all_keys();
        let store = KeysetStore::new(Keyset::new(keys.clone()).unwrap().with_label("v1"));
        let clock = ManualClock::at_unix(T0);
        let validator = Validator::builder(store.clone())
            .issuer(ISS)
            .audience(AUD)
            .clock(clock.clone())
            .build()
            .unwrap();
        Self {
            keys,
            store,
            clock,
            validator,
        }
    }

    pub fn key(&self, alg: Algorithm) -> &Arc<Key> {
        self.keys.iter().find(|k| k.algorithm() == alg).unwrap()
    }

    pub fn token(&self, alg: Algorithm) -> String {
        testing::sign(self.key(alg), &claims())
    }
}

/// Valid claims at T0 for 15 minutes.
pub fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "user-42", "jti": "jti-1",
        "iat": T0, "nbf": T0, "exp": T0 + 900, "scope": "orders:read",
    })
}

pub fn claims_with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims();
    f(c.as_object_mut().unwrap());
    c
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(feature = "admin")]
pub mod client;

/// Peer gaps, item 4, told once for every refresh store: a client loses the answer of a
/// renewal on node `a` and retries on node `b`; the retry's sibling works and moves the
/// family on, the lost answer is left behind, retries are bounded, and the old token
/// after the retry grace is reuse that kills the family. `live` says whether an access
/// token still validates.
pub fn lost_answer_story(
    a: &tokenlife_core::Issuer,
    b: &tokenlife_core::Issuer,
    clock: &ManualClock,
    live: impl Fn(&str) -> bool,
) {
    use std::time::Duration;
    use tokenlife_core::TokenRequest;
    use tokenlife_core::issue::RenewErrorKind;
    let first = a
        .issue(TokenRequest::subject("erin").client("app"))
        .unwrap();
    let rt = first.refresh_token.unwrap();
    let lost = a.renew_as(&rt, Some("app")).unwrap();
    clock.advance(Duration::from_secs(5));
    // Another client may not retry it.
    assert_eq!(
        b.renew_as(&rt, Some("other")).unwrap_err().kind(),
        RenewErrorKind::WrongClient
    );
    // Its own client gets a working sibling, three times at most.
    let siblings: Vec<_> = (0..3)
        .map(|_| b.renew_as(&rt, Some("app")).unwrap())
        .collect();
    assert!(siblings.iter().all(|p| live(&p.access_token)));
    let fourth = b.renew_as(&rt, Some("app")).unwrap_err();
    assert_eq!(
        fourth.kind(),
        RenewErrorKind::Rotated,
        "a fourth retry is refused, nothing revoked: {fourth:?}"
    );
    assert!(live(&lost.access_token));
    // The client renews the last answer it got: the family moves on through it.
    let kept = siblings[2].refresh_token.as_deref().unwrap();
    let next = a.renew_as(kept, Some("app")).unwrap();
    // Every other sibling, and the lost answer, is left behind: within the race grace a
    // race, later reuse.
    assert_eq!(
        b.renew_as(lost.refresh_token.as_deref().unwrap(), Some("app"))
            .unwrap_err()
            .kind(),
        RenewErrorKind::Rotated
    );
    assert!(live(&next.access_token));
    // Retrying the old token once the family moved on is not a retry any more.
    clock.advance(Duration::from_secs(3));
    assert_eq!(
        b.renew_as(&rt, Some("app")).unwrap_err().kind(),
        RenewErrorKind::Reused
    );
    assert!(!live(&next.access_token));
    assert_eq!(
        a.renew_as(next.refresh_token.as_deref().unwrap(), Some("app"))
            .unwrap_err()
            .kind(),
        RenewErrorKind::Revoked
    );
}

/// A thief who replays a public client's rotated refresh token within the retry grace
/// gets a sibling, and as soon as the thief and the client have both renewed, the family
/// is revoked (whoever renewed second is refused as reuse).
pub fn thief_within_the_retry_grace_story(
    issuer: &tokenlife_core::Issuer,
    clock: &ManualClock,
    live: impl Fn(&str) -> bool,
) {
    use std::time::Duration;
    use tokenlife_core::TokenRequest;
    use tokenlife_core::issue::RenewErrorKind;
    let rt = issuer
        .issue(TokenRequest::subject("frank"))
        .unwrap()
        .refresh_token
        .unwrap();
    let client = issuer.renew(&rt).unwrap();
    clock.advance(Duration::from_secs(10));
    let thief = issuer.renew(&rt).unwrap();
    // The client renews first (15 minutes later): it moves the family on.
    clock.advance(Duration::from_secs(900));
    let client2 = issuer
        .renew(client.refresh_token.as_deref().unwrap())
        .unwrap();
    // The thief's sibling, renewed a minute later, was left behind: reuse, the family
    // dies, the client's tokens too.
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        issuer
            .renew(thief.refresh_token.as_deref().unwrap())
            .unwrap_err()
            .kind(),
        RenewErrorKind::Reused
    );
    assert!(!live(&client2.access_token));
    assert!(!live(&thief.access_token));
}
