//! Any text as a JWKS document: loaded or refused with a typed error, never a panic;
//! a loaded keyset serialises back to a public JWKS that loads again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenlife_core::Keyset;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ks) = Keyset::from_jwks_json(text) {
        assert!(ks.keys().count() > 0);
        let public = ks.to_public_jwks();
        assert!(!public.contains("\"d\""));
        // Symmetric keys are never published, so the round trip may be empty.
        if ks.keys().any(|k| !k.is_symmetric()) {
            Keyset::from_jwks_json(&public).unwrap();
        }
    }
});
