//! Any bytes as a bearer token: the validator answers with a typed error or a verified
//! token, never a panic, and a token it accepts is one of the well-formed shapes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokenlife_core::{Keyset, KeysetStore, ManualClock, Validator, testing};

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let keys = testing::keys_for_all_algorithms();
        Validator::builder(KeysetStore::new(Keyset::new(keys).unwrap()))
            .issuer("https://auth.example.com")
            .audience("api://orders")
            .clock(ManualClock::at_unix(1_700_000_000))
            .cache_capacity(64)
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let v = validator();
    match v.validate(token) {
        Ok(verified) => {
            // A token that validated has claims a user can read.
            assert!(verified.claims().exp.is_some());
            assert!(!verified.all_claims().is_empty());
        }
        Err(e) => {
            // The error never echoes the token. A short input can be a fragment of the
            // error's own words ("field: None" was one), so only inputs longer than any
            // of them are checked.
            let shown = format!("{e} {e:?}");
            assert!(token.len() < 64 || !shown.contains(token));
        }
    }
    let _ = v.fingerprint(token);
});
