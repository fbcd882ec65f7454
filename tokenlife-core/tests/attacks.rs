//! The attack suite: hostile tokens minted here, by this test's own code, each rejected
//! with the right error kind and never a panic; valid tokens of every algorithm still
//! pass. SECURITY.md maps each attack class to the test that covers it.

mod common;

use common::*;
use serde_json::{Value, json};
use tokenlife_core::testing;
use tokenlife_core::{Algorithm, Key, ValidationErrorKind as K};

fn sign_raw(key: &Key, header: &[u8], payload: &[u8]) -> String {
    testing::sign_raw(key, header, payload)
}

fn header_of(alg: Algorithm) -> Value {
    json!({"alg": format!("{alg:?}"), "kid": format!("{alg:?}")})
}

fn kind(f: &Fixture, token: &str) -> K {
    let err = f.validator.validate(token).expect_err("must be rejected");
    assert!(!format!("{err} {err:?}").contains(token));
    err.kind()
}

fn signed(f: &Fixture, alg: Algorithm, header: &Value, payload: &Value) -> String {
    sign_raw(
        f.key(alg),
        header.to_string().as_bytes(),
        payload.to_string().as_bytes(),
    )
}

#[test]
fn the_raw_signer_makes_valid_tokens() {
    // The control: the helper's tokens pass when nothing is wrong with them.
    let f = Fixture::new();
    for alg in ALL_ALGS {
        let t = signed(&f, alg, &header_of(alg), &claims());
        f.validator
            .validate(&t)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    }
}

#[test]
fn alg_none_in_every_spelling() {
    let f = Fixture::new();
    let payload = b64(claims().to_string().as_bytes());
    for alg in [
        "none",
        "None",
        "NONE",
        "nOnE",
        " none",
        "none ",
        "none\u{0}",
        "",
    ] {
        for kid in [Some("RS256"), Some("HS256"), None] {
            let mut h = json!({"alg": alg});
            if let Some(k) = kid {
                h["kid"] = json!(k);
            }
            let h = b64(h.to_string().as_bytes());
            for t in [format!("{h}.{payload}."), format!("{h}.{payload}.AAAA")] {
                assert!(
                    matches!(kind(&f, &t), K::AlgorithmMismatch | K::UnknownKid),
                    "{alg:?} {kid:?}"
                );
            }
        }
    }
}

#[test]
fn hmac_with_a_public_key_as_secret_rsa_and_ec() {
    let f = Fixture::new();
    for target in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let public = serde_json::to_vec(f.key(target).public_jwk().unwrap()).unwrap();
        let forger = Key::hmac(
            format!("{target:?}"),
            Algorithm::HS256,
            &[&public[..], &[0; 32]].concat(),
        )
        .unwrap();
        let t = signed_with(
            &forger,
            &json!({"alg": "HS256", "kid": format!("{target:?}")}),
        );
        assert_eq!(kind(&f, &t), K::AlgorithmMismatch, "{target:?}");
    }
}

fn signed_with(key: &Key, header: &Value) -> String {
    sign_raw(
        key,
        header.to_string().as_bytes(),
        claims().to_string().as_bytes(),
    )
}

#[test]
fn kid_injection() {
    let f = Fixture::new();
    let key = f.key(Algorithm::ES256);
    for kid in [
        json!("../../../../etc/passwd"),
        json!("' OR '1'='1' --"),
        json!("ES256\u{0}"),
        json!("ES256 "),
        json!(""),
        json!("x".repeat(5000)),
        json!("%45%53%32%35%36"),
    ] {
        let t = signed_with(key, &json!({"alg": "ES256", "kid": kid}));
        assert_eq!(kind(&f, &t), K::UnknownKid, "{kid}");
    }
    for kid in [
        json!(256),
        json!(["ES256"]),
        json!({"kid": "ES256"}),
        json!(true),
    ] {
        let t = signed_with(key, &json!({"alg": "ES256", "kid": kid}));
        assert_eq!(kind(&f, &t), K::Malformed, "{kid}");
    }
    // null is not a string either (RFC 7515 §4.1.4): not taken for "no kid".
    let t = signed_with(key, &json!({"alg": "ES256", "kid": null}));
    assert_eq!(kind(&f, &t), K::Malformed);
    // With no kid at all, the one ES256 key verifies it.
    let t = signed_with(key, &json!({"alg": "ES256"}));
    f.validator.validate(&t).unwrap();
}

#[test]
fn psychic_and_malformed_ecdsa_signatures() {
    let f = Fixture::new();
    for (alg, n) in [(Algorithm::ES256, 32), (Algorithm::ES384, 48)] {
        let good = signed(&f, alg, &header_of(alg), &claims());
        let (msg, sig64) = good.rsplit_once('.').unwrap();
        let sig = base64_decode(sig64);
        let r = &sig[..n];
        let s = &sig[n..];
        let zero = vec![0u8; n];
        for bad in [
            [zero.clone(), zero.clone()].concat(), // r = s = 0 (CVE-2022-21449)
            [zero.clone(), s.to_vec()].concat(),   // r = 0
            [r.to_vec(), zero.clone()].concat(),   // s = 0
            sig[..2 * n - 1].to_vec(),             // one byte short
            [sig.clone(), vec![0]].concat(),       // one byte long
            der(r, s),                             // DER instead of r||s
            vec![0xff; 2 * n],                     // r, s >= n
        ] {
            let t = format!("{msg}.{}", b64(&bad));
            assert_eq!(kind(&f, &t), K::BadSignature, "{alg:?}");
        }
    }
}

/// High-S: `(r, n − s)` verifies too (the backends accept it); the validator accepts it
/// as the same token and gives it the same fingerprint. SECURITY.md explains the choice.
#[test]
fn high_s_twin_validates_with_the_same_fingerprint() {
    let f = Fixture::new();
    for alg in [Algorithm::ES256, Algorithm::ES384] {
        let good = signed(&f, alg, &header_of(alg), &claims());
        let twin = testing::ecdsa_twin(&good).unwrap();
        assert_ne!(good, twin);
        let a = f.validator.validate(&good).unwrap();
        let b = f.validator.validate(&twin).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint(), "{alg:?}");
        assert_eq!(
            f.validator.fingerprint(&good),
            f.validator.fingerprint(&twin)
        );
    }
}

fn der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let int = |x: &[u8]| {
        let mut v = vec![0x02, (x.len() + 1) as u8, 0];
        v.extend_from_slice(x);
        v
    };
    let body = [int(r), int(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[test]
fn claim_type_confusion() {
    let f = Fixture::new();
    let h = header_of(Algorithm::ES256);
    for (name, value, expected) in [
        ("exp", json!("1700000900"), K::InvalidClaim),
        ("exp", json!(true), K::InvalidClaim),
        ("exp", json!([T0 + 900]), K::InvalidClaim),
        ("exp", json!({"v": 1}), K::InvalidClaim),
        ("exp", json!(-1), K::InvalidClaim),
        ("exp", json!(null), K::InvalidClaim),
        ("nbf", json!("0"), K::InvalidClaim),
        ("iat", json!(false), K::InvalidClaim),
        ("iss", json!([ISS]), K::InvalidClaim),
        ("iss", json!(null), K::MissingClaim),
        ("aud", json!({"aud": AUD}), K::InvalidClaim),
        ("aud", json!([AUD, 7]), K::InvalidClaim),
        ("sub", json!(42), K::InvalidClaim),
        ("jti", json!(["a"]), K::InvalidClaim),
        ("fam", json!(1), K::InvalidClaim),
        ("scope", json!(["orders:read"]), K::InvalidClaim),
    ] {
        let c = claims_with(|c| {
            c.insert(name.into(), value.clone());
        });
        let t = signed(&f, Algorithm::ES256, &h, &c);
        assert_eq!(kind(&f, &t), expected, "{name}: {value}");
    }
    // A float NumericDate is a number (RFC 7519 §2): allowed.
    let c = claims_with(|c| {
        c.insert("exp".into(), json!((T0 + 900) as f64 + 0.5));
    });
    f.validator
        .validate(&signed(&f, Algorithm::ES256, &h, &c))
        .unwrap();
}

#[test]
fn huge_numbers_and_deep_nesting() {
    let f = Fixture::new();
    let key = f.key(Algorithm::ES256);
    let h = header_of(Algorithm::ES256).to_string();
    let base = claims().to_string();
    let strip = &base[..base.len() - 1];
    for (extra, expected) in [
        (r#","exp":1e400"#.to_string(), K::Malformed),
        (
            r#","exp":18446744073709551616"#.to_string(),
            K::InvalidClaim,
        ),
        (r#","exp":1e300"#.to_string(), K::InvalidClaim),
        (
            format!(r#","deep":{}{}"#, "[".repeat(2_000), "]".repeat(2_000)),
            K::Malformed,
        ),
    ] {
        // Appended members come after the first "exp": a duplicate, or a deep value.
        let payload = format!("{strip}{extra}}}");
        let t = sign_raw(key, h.as_bytes(), payload.as_bytes());
        let k = f.validator.validate(&t).map(|_| ()).map_err(|e| e.kind());
        if extra.contains("deep") {
            assert_eq!(k, Err(expected), "deep nesting");
        } else {
            // A second "exp" is a duplicate member: refused whatever its value.
            assert!(k.is_err(), "{extra}");
        }
    }
    // Deep nesting in the header, and a huge number as a lone claim.
    let deep_header = format!(
        r#"{{"alg":"ES256","kid":"ES256","x":{}{}}}"#,
        "[".repeat(2_000),
        "]".repeat(2_000)
    );
    let t = sign_raw(key, deep_header.as_bytes(), base.as_bytes());
    assert_eq!(kind(&f, &t), K::Malformed);
    let c = claims_with(|c| {
        c.insert(
            "exp".into(),
            serde_json::from_str("1e400").unwrap_or(json!(f64::MAX)),
        );
    });
    assert!(
        f.validator
            .validate(&signed(
                &f,
                Algorithm::ES256,
                &header_of(Algorithm::ES256),
                &c
            ))
            .is_err()
    );
}

#[test]
fn duplicate_members_are_refused() {
    let f = Fixture::new();
    let key = f.key(Algorithm::ES256);
    let good_payload = claims().to_string();
    // Header: a second alg.
    let h = r#"{"alg":"ES256","kid":"ES256","alg":"HS256"}"#;
    assert_eq!(
        kind(&f, &sign_raw(key, h.as_bytes(), good_payload.as_bytes())),
        K::Malformed
    );
    let h = r#"{"alg":"ES256","kid":"nope","kid":"ES256"}"#;
    assert_eq!(
        kind(&f, &sign_raw(key, h.as_bytes(), good_payload.as_bytes())),
        K::Malformed
    );
    // Payload: a second exp far in the future, a second sub, a second iss.
    let h = header_of(Algorithm::ES256).to_string();
    for dup in [
        format!(r#","exp":{}"#, T0 + 10_000_000),
        r#","sub":"admin""#.to_string(),
        r#","iss":"https://evil.example""#.to_string(),
    ] {
        let p = format!("{}{dup}}}", &good_payload[..good_payload.len() - 1]);
        let k = kind(&f, &sign_raw(key, h.as_bytes(), p.as_bytes()));
        assert!(matches!(k, K::InvalidClaim | K::Malformed), "{dup}: {k:?}");
    }
}

#[test]
fn segments_truncated_extra_and_jwe_shaped() {
    let f = Fixture::new();
    let good = f.token(Algorithm::ES256);
    let parts: Vec<&str> = good.split('.').collect();
    for t in [
        parts[0].to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}..{}", parts[0], parts[2]),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{good}."),
        format!("{good}.{}", parts[2]),
        // JWE compact serialisation: five segments.
        format!(
            "{}.{}.{}.{}.{}",
            b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#),
            "a",
            "b",
            "c",
            "d"
        ),
        "....".to_string(),
        ".".to_string(),
    ] {
        assert!(
            matches!(kind(&f, &t), K::Malformed | K::BadSignature),
            "{t}"
        );
    }
}

#[test]
fn whitespace_padding_and_the_wrong_base64_alphabet() {
    let f = Fixture::new();
    let good = f.token(Algorithm::ES256);
    let (h, rest) = good.split_once('.').unwrap();
    for t in [
        format!(" {good}"),
        format!("{good} "),
        format!("{good}\n"),
        format!("{h}=.{rest}"),
        format!("{h}==.{rest}"),
        format!("{h} .{rest}"),
        format!("{}.{rest}", h.replace('-', "+").replace('_', "/") + "+/"),
        format!("{h}.\t{rest}"),
    ] {
        assert!(
            matches!(kind(&f, &t), K::Malformed | K::BadSignature),
            "{t:?}"
        );
    }
}

#[test]
fn nul_bytes_and_invalid_utf8() {
    let f = Fixture::new();
    let key = f.key(Algorithm::ES256);
    let h = header_of(Algorithm::ES256).to_string();
    let p = claims().to_string();
    // Invalid UTF-8 inside a member the validator ignores, in the header and the payload.
    let mut bad_h = br#"{"alg":"ES256","kid":"ES256","x":""#.to_vec();
    bad_h.extend([0xff, 0xfe, b'"', b'}']);
    assert_eq!(kind(&f, &sign_raw(key, &bad_h, p.as_bytes())), K::Malformed);
    let mut bad_p = p.as_bytes()[..p.len() - 1].to_vec();
    bad_p.extend(br#","note":""#);
    bad_p.extend([0xc3, 0x28, b'"', b'}']);
    assert_eq!(kind(&f, &sign_raw(key, h.as_bytes(), &bad_p)), K::Malformed);
    // A raw NUL byte is not JSON; an escaped one is a valid string.
    let mut nul_p = p.as_bytes()[..p.len() - 1].to_vec();
    nul_p.extend(b",\"x\":\"a\0b\"}");
    assert_eq!(kind(&f, &sign_raw(key, h.as_bytes(), &nul_p)), K::Malformed);
    let escaped = claims_with(|c| {
        c.insert("sub".into(), json!("user\u{0}42"));
    });
    let v = f
        .validator
        .validate(&signed(
            &f,
            Algorithm::ES256,
            &header_of(Algorithm::ES256),
            &escaped,
        ))
        .unwrap();
    assert_eq!(v.claims().sub.as_deref(), Some("user\u{0}42"));
    // A NUL in the token string itself.
    let good = f.token(Algorithm::ES256);
    assert!(matches!(
        kind(&f, &good.replacen('.', "\0.", 1)),
        K::Malformed | K::BadSignature
    ));
}

#[test]
fn non_object_header_and_claims() {
    let f = Fixture::new();
    let key = f.key(Algorithm::RS256);
    let p = claims().to_string();
    for h in [
        r#"["RS256"]"#,
        r#"["RS256","RS256"]"#,
        r#""RS256""#,
        "256",
        "null",
        "true",
        "[]",
    ] {
        assert_eq!(
            kind(&f, &sign_raw(key, h.as_bytes(), p.as_bytes())),
            K::Malformed,
            "header {h}"
        );
    }
    let h = header_of(Algorithm::RS256).to_string();
    let seq = format!(r#"["{ISS}","user-42","{AUD}",{},{}]"#, T0 + 900, T0);
    for payload in [seq.as_str(), "[]", r#""claims""#, "42", "null"] {
        assert_eq!(
            kind(&f, &sign_raw(key, h.as_bytes(), payload.as_bytes())),
            K::Malformed,
            "payload {payload}"
        );
    }
    // Leading JSON whitespace before an object is still an object.
    let t = sign_raw(
        key,
        format!(" \n{h}").as_bytes(),
        format!("\t{p}").as_bytes(),
    );
    f.validator.validate(&t).unwrap();
}

#[test]
fn sixty_four_kib_tokens_are_too_large() {
    let f = Fixture::new();
    let big = claims_with(|c| {
        c.insert("pad".into(), json!("x".repeat(64 * 1024)));
    });
    let t = signed(&f, Algorithm::ES256, &header_of(Algorithm::ES256), &big);
    assert!(t.len() > 64 * 1024);
    assert_eq!(kind(&f, &t), K::TooLarge);
    assert_eq!(kind(&f, &"a".repeat(64 * 1024)), K::TooLarge);
}

#[test]
fn keys_of_the_wrong_type_for_the_headers_alg() {
    let f = Fixture::new();
    // Each header names another family's key by kid: refused before any crypto.
    for (alg, kid) in [
        (Algorithm::ES256, "RS256"),
        (Algorithm::RS256, "ES256"),
        (Algorithm::EdDSA, "ES256"),
        (Algorithm::ES384, "ES256"),
        (Algorithm::PS256, "RS256"),
        (Algorithm::HS256, "EdDSA"),
        (Algorithm::RS256, "HS256"),
    ] {
        let t = signed_with(f.key(alg), &json!({"alg": format!("{alg:?}"), "kid": kid}));
        assert_eq!(kind(&f, &t), K::AlgorithmMismatch, "{alg:?} with {kid}");
    }
}

#[test]
fn explicit_typing_when_asked() {
    let keys = all_keys();
    let store =
        tokenlife_core::KeysetStore::new(tokenlife_core::Keyset::new(keys.clone()).unwrap());
    let v = tokenlife_core::Validator::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .clock(tokenlife_core::ManualClock::at_unix(T0))
        .accept_typ(["at+jwt"])
        .build()
        .unwrap();
    let key = keys
        .iter()
        .find(|k| k.algorithm() == Algorithm::ES256)
        .unwrap();
    let with_typ = |typ: Value| {
        let mut h = header_of(Algorithm::ES256);
        h["typ"] = typ;
        sign_raw(
            key,
            h.to_string().as_bytes(),
            claims().to_string().as_bytes(),
        )
    };
    for ok in [
        json!("at+jwt"),
        json!("AT+JWT"),
        json!("application/at+jwt"),
    ] {
        v.validate(&with_typ(ok)).unwrap();
    }
    for bad in [json!("JWT"), json!("id_token+jwt"), json!("")] {
        assert_eq!(v.validate(&with_typ(bad)).unwrap_err().kind(), K::WrongType);
    }
    assert_eq!(
        v.validate(&testing::sign(key, &claims()))
            .unwrap_err()
            .kind(),
        K::WrongType
    );
}

/// The cache is keyed by a hash of the token's length and tail (its signature): a token
/// forged to share a cached token's key is refused (the cached bytes must match the
/// presented ones exactly) and does not evict the genuine entry.
#[test]
fn a_forged_token_sharing_the_cache_key_is_refused_and_evicts_nothing() {
    let f = Fixture::new();
    let token = f.token(Algorithm::ES256);
    assert!(!f.validator.validate(&token).unwrap().from_cache());
    assert!(f.validator.validate(&token).unwrap().from_cache());
    // Same length, same signature, one payload byte changed.
    let (head, rest) = token.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let mut p = payload.as_bytes().to_vec();
    p[5] = if p[5] == b'A' { b'B' } else { b'A' };
    let forged = format!("{head}.{}.{sig}", String::from_utf8(p).unwrap());
    assert_eq!(forged.len(), token.len());
    assert_ne!(forged, token);
    for _ in 0..3 {
        let err = f.validator.validate(&forged).unwrap_err();
        assert!(
            matches!(err.kind(), K::BadSignature | K::Malformed),
            "{err:?}"
        );
    }
    assert!(f.validator.validate(&token).unwrap().from_cache());
}
