//! JWKS in and out: good keys load, bad entries are skipped with a typed warning.

mod common;

use common::*;
use serde_json::{Value, json};
use tokenlife_core::error::KeyErrorKind as E;
use tokenlife_core::testing;
use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator};

fn public_jwks_of_all() -> Value {
    let keyset = Keyset::new(all_keys()).unwrap();
    serde_json::from_str(&keyset.to_public_jwks()).unwrap()
}

#[test]
fn public_jwks_round_trips_and_verifies_every_asymmetric_algorithm() {
    let jwks = public_jwks_of_all();
    let keys = jwks["keys"].as_array().unwrap();
    // HMAC keys are never published; the nine asymmetric ones are.
    assert_eq!(keys.len(), 9);
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(private).is_none(), "{private} leaked in {k}");
        }
        assert_eq!(k["use"], "sig");
    }
    let loaded = Keyset::from_jwks_json(&jwks.to_string()).unwrap();
    assert!(loaded.warnings().is_empty());
    assert!(loaded.signing_key().is_none(), "public keys cannot sign");
    let clock = tokenlife_core::ManualClock::at_unix(T0);
    let v = Validator::builder(KeysetStore::new(loaded))
        .issuer(ISS)
        .audience(AUD)
        .clock(clock)
        .build()
        .unwrap();
    for key in all_keys().iter().filter(|k| !k.is_symmetric()) {
        let t = testing::sign(key, &claims());
        assert_eq!(v.validate(&t).unwrap().algorithm(), key.algorithm());
    }
}

#[test]
fn unusable_entries_are_skipped_with_typed_warnings() {
    let mut jwks = public_jwks_of_all();
    let good = jwks["keys"][0].clone();
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut k = good.clone();
        f(k.as_object_mut().unwrap());
        k
    };
    let bad = vec![
        (json!({"kty": "XYZ", "kid": "unknown-kty"}), E::Unsupported),
        (
            with(&|k| {
                k.insert("kid".into(), json!("enc-key"));
                k.insert("use".into(), json!("enc"));
            }),
            E::WrongUse,
        ),
        (
            with(&|k| {
                k.insert("kid".into(), json!("bad-b64"));
                k.insert("n".into(), json!("!!!not base64!!!"));
            }),
            E::InvalidMaterial,
        ),
        (
            with(&|k| {
                k.insert("kid".into(), json!("bad-alg"));
                k.insert("alg".into(), json!("ES256"));
            }),
            E::Unsupported,
        ),
        (
            with(&|k| {
                k.insert("kid".into(), json!("with-private"));
                k.insert("d".into(), json!("AAAA"));
            }),
            E::PrivateMaterial,
        ),
        (
            with(&|k| {
                k.remove("kid");
            }),
            E::MissingKid,
        ),
        (
            json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}),
            E::Unsupported,
        ),
        (
            json!({"kty": "OKP", "kid": "short", "crv": "Ed25519", "x": "AAAA"}),
            E::InvalidMaterial,
        ),
        (
            json!({"kty": "oct", "kid": "short-hmac", "k": "c2hvcnQ"}),
            E::InvalidMaterial,
        ),
        (good.clone(), E::DuplicateKid),
    ];
    let expected: Vec<E> = bad.iter().map(|(_, e)| *e).collect();
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .extend(bad.into_iter().map(|(k, _)| k));
    let loaded = Keyset::from_jwks_json(&jwks.to_string()).unwrap();
    assert_eq!(loaded.keys().count(), 9);
    let got: Vec<E> = loaded.warnings().iter().map(|w| w.kind()).collect();
    assert_eq!(got, expected);
    assert_eq!(loaded.warnings()[0].key_id(), Some("unknown-kty"));
}

#[test]
fn a_jwks_with_nothing_usable_fails_and_says_why() {
    let err = Keyset::from_jwks_json(r#"{"keys":[{"kty":"XYZ","kid":"a"}]}"#).unwrap_err();
    assert_eq!(err.kind(), E::Empty);
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(
        Keyset::from_jwks_json(r#"{"keys":[]}"#).unwrap_err().kind(),
        E::Empty
    );
    for bad in ["", "{", "[]", r#"{"keys": 5}"#, r#"{"nokeys": []}"#] {
        assert_eq!(
            Keyset::from_jwks_json(bad).unwrap_err().kind(),
            E::InvalidJson,
            "{bad}"
        );
    }
}

#[test]
fn a_bad_jwks_leaves_the_store_unchanged() {
    let f = Fixture::new();
    let t = f.token(Algorithm::RS256);
    let before = f.store.current().version();
    assert!(Keyset::from_jwks_json("{\"keys\": [{}]}").is_err());
    assert_eq!(f.store.current().version(), before);
    assert!(f.validator.validate(&t).is_ok());
}

#[test]
fn oct_jwks_keys_are_hmac_keys() {
    let jwks = r#"{"keys":[{"kty":"oct","kid":"h","alg":"HS512",
        "k":"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo"}]}"#;
    let ks = Keyset::from_jwks_json(jwks).unwrap();
    let key = ks.get("h").unwrap();
    assert_eq!(key.algorithm(), Algorithm::HS512);
    assert!(key.can_sign());
    assert_eq!(ks.to_public_jwks(), r#"{"keys":[]}"#);
}

#[test]
fn key_debug_never_shows_material() {
    let k = testing::key("k", Algorithm::HS256);
    let shown = format!("{k:?}");
    assert!(shown.contains("\"k\"") && !shown.contains("90"), "{shown}");
}

/// Limits: a JWKS document past the size or key-count bound is refused whole, typed,
/// before any key is built; at the bound it loads.
#[test]
fn jwks_size_and_key_count_are_bounded() {
    let entry = |i: usize| {
        json!({"kty": "oct", "kid": format!("k{i}"), "alg": "HS256",
               "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0"})
    };
    let doc = |n: usize| json!({"keys": (0..n).map(entry).collect::<Vec<_>>()}).to_string();
    let at_limit = Keyset::from_jwks_json(&doc(Keyset::MAX_JWKS_KEYS)).unwrap();
    assert_eq!(at_limit.keys().count(), Keyset::MAX_JWKS_KEYS);
    let over = Keyset::from_jwks_json(&doc(Keyset::MAX_JWKS_KEYS + 1)).unwrap_err();
    assert_eq!(over.kind(), E::TooLarge);
    let padded = format!(
        r#"{{"keys":[], "pad": "{}"}}"#,
        "x".repeat(Keyset::MAX_JWKS_BYTES)
    );
    assert_eq!(
        Keyset::from_jwks_json(&padded).unwrap_err().kind(),
        E::TooLarge
    );
}
