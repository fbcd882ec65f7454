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

fn echoes(e: &tokenlife_core::ValidationError, token: &str) -> bool {
    token.len() >= 8 && format!("{e} {e:?}").contains(token)
}

/// Every ASCII letter and digit moved one place on (a→b, z→a, 9→0): the same shape and
/// character classes, different text.
fn shift(token: &str) -> String {
    token
        .chars()
        .map(|c| match c {
            'a'..='y' | 'A'..='Y' | '0'..='8' => (c as u8 + 1) as char,
            'z' => 'a',
            'Z' => 'A',
            '9' => '0',
            c => c,
        })
        .collect()
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
            // The error never echoes the token. The error's own words are fixed text, and
            // the fuzzer learns to type them back ("ValidationError { kind: Malformed, ..."
            // was one), so finding the input inside the message proves nothing by itself.
            // An echo follows the input: shift every letter and digit of it and the shifted
            // input turns up in the new message too, where fixed text would not.
            if echoes(&e, token) {
                let shifted = shift(token);
                let again = v.validate(&shifted);
                assert!(
                    !again.as_ref().is_err_and(|e| echoes(e, &shifted)),
                    "the error echoes the token"
                );
            }
        }
    }
    let _ = v.fingerprint(token);
});
