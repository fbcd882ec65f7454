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
