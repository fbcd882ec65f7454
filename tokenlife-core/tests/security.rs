//! Hostile tokens: each must be rejected with a clear kind, never a panic, and the error
//! must never contain the token.

mod common;

use common::*;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use tokenlife_core::testing;
use tokenlife_core::{Algorithm, Keyset, ValidationError, ValidationErrorKind as K};

fn reject(f: &Fixture, token: &str) -> ValidationError {
    let err = f
        .validator
        .validate(token)
        .expect_err("token must be rejected");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(token),
        "error output contains the token: {shown}"
    );
    err
}

#[test]
fn every_supported_algorithm_validates() {
    let f = Fixture::new();
    for alg in ALL_ALGS {
        let v = f
            .validator
            .validate(&f.token(alg))
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(v.algorithm(), alg);
        assert_eq!(v.kid(), format!("{alg:?}"));
        assert_eq!(v.claims().sub.as_deref(), Some("user-42"));
    }
}

#[test]
fn header_alg_different_from_the_keys_is_rejected() {
    let f = Fixture::new();
    // The RS256 key's kid, but the token says RS512 (signed correctly with RS512).
    let key = f.key(Algorithm::RS256);
    let mut header = Header::new(Algorithm::RS512);
    header.kid = Some("RS256".into());
    let token =
        testing::sign_with_header(&testing::key("RS256", Algorithm::RS512), &header, &claims());
    let err = reject(&f, &token);
    assert_eq!(err.kind(), K::AlgorithmMismatch);
    assert_eq!(err.field(), Some("alg"));
    // The same claims signed as the key says pass.
    assert!(f.validator.validate(&testing::sign(key, &claims())).is_ok());
}

#[test]
fn alg_none_never_passes() {
    let f = Fixture::new();
    let payload = b64(claims().to_string().as_bytes());
    for header in [
        json!({"alg": "none", "kid": "RS256"}),
        json!({"alg": "none"}),
        json!({"alg": "None", "kid": "HS256"}),
        json!({"alg": "", "kid": "HS256"}),
    ] {
        let h = b64(header.to_string().as_bytes());
        for token in [format!("{h}.{payload}."), format!("{h}.{payload}.c2ln")] {
            let kind = reject(&f, &token).kind();
            assert!(
                matches!(kind, K::AlgorithmMismatch | K::UnknownKid),
                "{header}: {kind:?}"
            );
        }
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_rejected() {
    let f = Fixture::new();
    let rsa_public_pem = {
        let jwk = f.key(Algorithm::RS256).public_jwk().unwrap().clone();
        serde_json::to_vec(&jwk).unwrap()
    };
    // The classic key-confusion attack: the public key material as the HMAC secret.
    for kid in [Some("RS256"), None] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(Into::into);
        for secret in [&rsa_public_pem[..], testing::RSA_PEM.as_bytes()] {
            let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))
                .unwrap();
            let kind = reject(&f, &token).kind();
            assert!(
                matches!(kind, K::AlgorithmMismatch | K::BadSignature),
                "{kind:?}"
            );
        }
    }
}

#[test]
fn key_carrying_headers_are_never_followed() {
    let f = Fixture::new();
    // An attacker signs with its own key and ships the key (or a URL to it) in the header.
    let attacker = testing::key("attacker", Algorithm::RS256);
    let attacker_pub = attacker.public_jwk().unwrap().clone();
    let attacker_other = tokenlife_core::Key::from_private_pem(
        "RS256",
        Algorithm::RS256,
        testing::RSA2_PEM.as_bytes(),
    )
    .unwrap();
    for kid in ["attacker", "RS256"] {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        header.jwk = Some(attacker_pub.clone());
        header.jku = Some("http://127.0.0.1:1/jwks.json".into());
        header.x5u = Some("http://127.0.0.1:1/cert.pem".into());
        header.x5c = Some(vec!["MIIBIjANBgkq".into()]);
        let signer = if kid == "attacker" {
            &attacker
        } else {
            &attacker_other
        };
        let token = testing::sign_with_header(signer, &header, &claims());
        let kind = reject(&f, &token).kind();
        let expected = if kid == "attacker" {
            K::UnknownKid
        } else {
            K::BadSignature
        };
        assert_eq!(kind, expected);
    }
}

#[test]
fn unknown_crit_is_rejected() {
    let f = Fixture::new();
    let key = f.key(Algorithm::ES256);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ES256".into());
    header.crit = Some(vec!["urn:example:must-understand".into()]);
    let err = reject(&f, &testing::sign_with_header(key, &header, &claims()));
    assert_eq!(err.kind(), K::UnsupportedCritical);
}

#[test]
fn iss_aud_exp_are_required() {
    let f = Fixture::new();
    let key = f.key(Algorithm::HS256);
    for claim in ["iss", "aud", "exp"] {
        let token = testing::sign(
            key,
            &claims_with(|c| {
                c.remove(claim);
            }),
        );
        let err = reject(&f, &token);
        assert_eq!((err.kind(), err.field()), (K::MissingClaim, Some(claim)));
    }
    // nbf is optional unless configured.
    let no_nbf = testing::sign(
        key,
        &claims_with(|c| {
            c.remove("nbf");
        }),
    );
    assert!(f.validator.validate(&no_nbf).is_ok());
    let strict = tokenlife_core::Validator::builder(f.store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(f.clock.clone())
        .require_nbf(true)
        .required_claims(["sub", "jti"])
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(strict.validate(&no_nbf).unwrap_err().field(), Some("nbf"));
    let no_jti = testing::sign(
        key,
        &claims_with(|c| {
            c.remove("jti");
        }),
    );
    assert_eq!(
        strict.validate(&no_jti).unwrap_err().kind(),
        K::MissingClaim
    );
}

#[test]
fn claims_of_the_wrong_json_type_are_rejected() {
    let f = Fixture::new();
    let key = f.key(Algorithm::HS256);
    for (claim, value) in [
        ("exp", json!(format!("{}", T0 + 900))),
        ("iss", json!(12345)),
        ("aud", json!({"x": 1})),
        ("nbf", json!(true)),
        ("sub", json!(["a"])),
        ("exp", json!(-5)),
    ] {
        let token = testing::sign(
            key,
            &claims_with(|c| {
                c.insert(claim.into(), value.clone());
            }),
        );
        assert_eq!(
            reject(&f, &token).kind(),
            K::InvalidClaim,
            "{claim} = {value}"
        );
    }
}

#[test]
fn wrong_issuer_and_audience() {
    let f = Fixture::new();
    let key = f.key(Algorithm::ES256);
    let t = testing::sign(
        key,
        &claims_with(|c| {
            c.insert("iss".into(), json!("https://evil.example.com"));
        }),
    );
    assert_eq!(reject(&f, &t).kind(), K::WrongIssuer);
    let t = testing::sign(
        key,
        &claims_with(|c| {
            c.insert("aud".into(), json!(["api://billing", "api://other"]));
        }),
    );
    assert_eq!(reject(&f, &t).kind(), K::WrongAudience);
    let t = testing::sign(
        key,
        &claims_with(|c| {
            c.insert("aud".into(), json!(["api://billing", AUD]));
        }),
    );
    assert!(f.validator.validate(&t).is_ok());
}

#[test]
fn oversize_input_is_rejected_before_decoding() {
    let f = Fixture::new();
    // Not base64 at all: a decoder would say Malformed; the size check comes first.
    let junk = "!".repeat(8 * 1024 + 1);
    assert_eq!(reject(&f, &junk).kind(), K::TooLarge);
    // A correctly signed token that is merely too big.
    let big = testing::sign(
        f.key(Algorithm::HS256),
        &claims_with(|c| {
            c.insert("pad".into(), json!("x".repeat(9000)));
        }),
    );
    assert_eq!(reject(&f, &big).kind(), K::TooLarge);
    // The limit is configurable.
    let roomy = tokenlife_core::Validator::builder(f.store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(f.clock.clone())
        .max_token_size(64 * 1024)
        .build()
        .unwrap();
    assert!(roomy.validate(&big).is_ok());
}

#[test]
fn malformed_input_is_invalid_token_not_a_panic() {
    let f = Fixture::new();
    let good = f.token(Algorithm::HS256);
    let mut parts = good.split('.');
    let (h, p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let not_json = b64(b"not json");
    let cases = [
        "abc".to_string(),
        "a.b".into(),
        "a.b.c.d".into(),
        "..".into(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.{s}"),
        format!("!!!.{p}.{s}"),
        format!("{not_json}.{p}.{s}"),
        format!("{h}.{not_json}.{s}"),
        format!("{h}.{p}.***"),
        format!("{h}.{p}.{s}="),
        format!("{}.{p}.{s}", b64(b"[1,2]")),
        format!(
            "{}.{p}.{s}",
            b64(br#"{"alg":"HS256","alg":"RS256","kid":"HS256"}"#)
        ),
        "\u{0}\u{1}.\u{ff}.x".into(),
    ];
    for token in &cases {
        let err = reject(&f, token);
        assert!(
            matches!(err.kind(), K::Malformed | K::BadSignature),
            "{token:?}: {:?}",
            err.kind()
        );
        assert_eq!(err.rfc6750_code(), Some("invalid_token"));
        assert_eq!(err.status(), 401);
    }
}

#[test]
fn a_tampered_payload_fails_the_signature() {
    let f = Fixture::new();
    for alg in ALL_ALGS {
        let good = f.token(alg);
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = b64(claims_with(|c| {
            c.insert("sub".into(), json!("admin"));
        })
        .to_string()
        .as_bytes());
        parts[1] = &evil;
        let err = reject(&f, &parts.join("."));
        assert_eq!(err.kind(), K::BadSignature, "{alg:?}");
    }
}

#[test]
fn unknown_kid_says_so() {
    let f = Fixture::new();
    let token = testing::sign(&testing::key("not-in-keyset", Algorithm::ES256), &claims());
    let err = reject(&f, &token);
    assert_eq!(err.kind(), K::UnknownKid);
    assert_eq!(err.field(), Some("kid"));
    assert_eq!(err.to_string(), "unknown key id (kid)");
}

#[test]
fn no_kid_is_accepted_only_when_one_key_has_that_algorithm() {
    let f = Fixture::new();
    let key = f.key(Algorithm::ES384);
    let header = Header::new(Algorithm::ES384);
    let token = testing::sign_with_header(key, &header, &claims());
    assert_eq!(f.validator.validate(&token).unwrap().kid(), "ES384");
    // Two HS256 keys: a kid-less HS256 token is ambiguous.
    let store = tokenlife_core::KeysetStore::new(
        Keyset::new([
            testing::key("a", Algorithm::HS256),
            tokenlife_core::Key::hmac("b", Algorithm::HS256, &[9; 32]).unwrap(),
        ])
        .unwrap(),
    );
    let v = tokenlife_core::Validator::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .clock(f.clock.clone())
        .build()
        .unwrap();
    let token = testing::sign_with_header(
        &testing::key("a", Algorithm::HS256),
        &Header::new(Algorithm::HS256),
        &claims(),
    );
    assert_eq!(v.validate(&token).unwrap_err().kind(), K::UnknownKid);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(Fixture::new)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_strings_are_rejected_without_panic(s in ".{0,300}") {
            prop_assert!(fixture().validator.validate(&s).is_err());
        }

        #[test]
        fn arbitrary_base64_parts_are_rejected_without_panic(
            h in proptest::collection::vec(any::<u8>(), 0..80),
            p in proptest::collection::vec(any::<u8>(), 0..200),
            s in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let token = format!("{}.{}.{}", b64(&h), b64(&p), b64(&s));
            let err = fixture().validator.validate(&token).unwrap_err();
            prop_assert_eq!(err.rfc6750_code(), Some("invalid_token"));
        }
    }
}
