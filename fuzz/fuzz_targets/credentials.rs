//! Any text as a refresh token or an API key: refused with a typed error (or, for the
//! tokens the target itself minted, accepted), never a panic.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokenlife_core::apikey::ApiKeys;
use tokenlife_core::{Algorithm, Issuer, Keyset, KeysetStore, ManualClock, TokenRequest, testing};

fn world() -> &'static (Issuer, ApiKeys) {
    static W: OnceLock<(Issuer, ApiKeys)> = OnceLock::new();
    W.get_or_init(|| {
        let clock = ManualClock::at_unix(1_700_000_000);
        let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
        let issuer = Issuer::builder(store)
            .issuer("i")
            .audience("a")
            .clock(clock.clone())
            .build()
            .unwrap();
        issuer.issue(TokenRequest::subject("s")).unwrap();
        let keys = ApiKeys::builder().clock(clock).build();
        keys.issue("c", Duration::from_secs(60)).unwrap();
        (issuer, keys)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (issuer, keys) = world();
    assert!(issuer.renew(text).is_err());
    assert!(issuer.inspect_refresh(text).unwrap().is_none());
    assert!(issuer.revoke_refresh(text, None).is_ok());
    assert!(keys.validate(text).is_err());
});
