//! Writes the attack vectors, with tokenlife's verdict for each, as JSON on stdout, for
//! comparison with an independent JOSE library (`interop/compare.sh` runs npm `jose`).
//!
//! `cargo run -p examples --example attack_vectors > interop/vectors.json`

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokenlife_core::{Algorithm, Key, Keyset, KeysetStore, ManualClock, Validator, testing};

const T0: u64 = 1_700_000_000;
const ISS: &str = "https://auth.example.com";
const AUD: &str = "api://orders";

const ALGS: [Algorithm; 12] = testing::ALGORITHMS;

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "user-42", "jti": "jti-1",
           "iat": T0, "nbf": T0, "exp": T0 + 900})
}

fn with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims();
    f(c.as_object_mut().expect("object"));
    c
}

fn header(alg: Algorithm) -> Value {
    json!({"alg": format!("{alg:?}"), "kid": format!("{alg:?}")})
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys: Vec<Key> = testing::keys_for_all_algorithms();
    let key = |a: Algorithm| &keys[ALGS.iter().position(|x| *x == a).expect("alg")];
    let keyset = Keyset::new(testing::keys_for_all_algorithms())?;
    let jwks: Value = serde_json::from_str(&keyset.to_public_jwks())?;
    let validator = Validator::builder(KeysetStore::new(keyset))
        .issuer(ISS)
        .audience(AUD)
        .clock(ManualClock::at_unix(T0))
        .build()?;
    let raw = |k: &Key, h: &[u8], p: &[u8]| testing::sign_raw(k, h, p);
    let signed = |a: Algorithm, h: &Value, p: &Value| {
        raw(key(a), h.to_string().as_bytes(), p.to_string().as_bytes())
    };

    let mut vectors: Vec<(String, String)> = Vec::new();
    let mut add = |name: String, token: String| vectors.push((name, token));

    for a in ALGS {
        add(format!("valid {a:?}"), signed(a, &header(a), &claims()));
    }
    let payload = b64(claims().to_string().as_bytes());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(json!({"alg": alg}).to_string().as_bytes());
        add(format!("alg {alg}"), format!("{h}.{payload}."));
    }
    for target in [Algorithm::RS256, Algorithm::ES256] {
        let public = serde_json::to_vec(key(target).public_jwk().expect("public"))?;
        let forger = Key::hmac(
            format!("{target:?}"),
            Algorithm::HS256,
            &[&public[..], &[0; 32]].concat(),
        )?;
        let h = json!({"alg": "HS256", "kid": format!("{target:?}")});
        add(
            format!("HS256 with the {target:?} public key as secret"),
            raw(
                &forger,
                h.to_string().as_bytes(),
                claims().to_string().as_bytes(),
            ),
        );
    }
    for (name, kid) in [
        ("path", json!("../../etc/passwd")),
        ("sql", json!("' OR '1'='1")),
        ("empty", json!("")),
        ("number", json!(256)),
        ("array", json!(["ES256"])),
        ("null", json!(null)),
    ] {
        add(
            format!("kid {name}"),
            signed(
                Algorithm::ES256,
                &json!({"alg": "ES256", "kid": kid}),
                &claims(),
            ),
        );
    }
    let good = signed(Algorithm::ES256, &header(Algorithm::ES256), &claims());
    let (msg, _) = good.rsplit_once('.').expect("jws");
    add("psychic r=s=0".into(), format!("{msg}.{}", b64(&[0u8; 64])));
    add(
        "signature 0xff".into(),
        format!("{msg}.{}", b64(&[0xffu8; 64])),
    );
    for (name, field, value) in [
        ("exp string", "exp", json!("1700000900")),
        ("exp bool", "exp", json!(true)),
        ("exp float", "exp", json!(1_700_000_900.5)),
        ("exp negative", "exp", json!(-1)),
        ("nbf future", "nbf", json!(T0 + 3600)),
        ("iss array", "iss", json!([ISS])),
        ("aud object", "aud", json!({"a": AUD})),
        ("aud array", "aud", json!(["other", AUD])),
        ("sub number", "sub", json!(42)),
        ("expired", "exp", json!(T0 - 3600)),
    ] {
        add(
            name.into(),
            signed(
                Algorithm::ES256,
                &header(Algorithm::ES256),
                &with(|c| {
                    c.insert(field.into(), value);
                }),
            ),
        );
    }
    for field in ["exp", "iss", "aud"] {
        add(
            format!("missing {field}"),
            signed(
                Algorithm::ES256,
                &header(Algorithm::ES256),
                &with(|c| {
                    c.remove(field);
                }),
            ),
        );
    }
    let k = key(Algorithm::ES256);
    let p = claims().to_string();
    add(
        "duplicate alg".into(),
        raw(
            k,
            br#"{"alg":"ES256","kid":"ES256","alg":"HS256"}"#,
            p.as_bytes(),
        ),
    );
    add(
        "duplicate exp".into(),
        raw(
            k,
            header(Algorithm::ES256).to_string().as_bytes(),
            format!("{},\"exp\":{}}}", &p[..p.len() - 1], T0 + 99_999_999).as_bytes(),
        ),
    );
    add("header array".into(), raw(k, br#"["ES256"]"#, p.as_bytes()));
    add(
        "payload array".into(),
        raw(
            k,
            header(Algorithm::ES256).to_string().as_bytes(),
            format!(r#"["{ISS}"]"#).as_bytes(),
        ),
    );
    let mut bad = br#"{"alg":"ES256","kid":"ES256","x":""#.to_vec();
    bad.extend([0xff, b'"', b'}']);
    add(
        "header invalid UTF-8 in an ignored member".into(),
        raw(k, &bad, p.as_bytes()),
    );
    let mut badp = p.as_bytes()[..p.len() - 1].to_vec();
    badp.extend(br#","note":""#);
    badp.extend([0xc3, 0x28, b'"', b'}']);
    add(
        "payload invalid UTF-8 in an ignored member".into(),
        raw(k, header(Algorithm::ES256).to_string().as_bytes(), &badp),
    );
    add(
        "crit unknown".into(),
        signed(
            Algorithm::ES256,
            &json!({"alg": "ES256", "kid": "ES256", "crit": ["x"], "x": 1}),
            &claims(),
        ),
    );
    add(
        "jwk embedded".into(),
        signed(
            Algorithm::ES256,
            &json!({"alg": "ES256", "kid": "ES256", "jwk": jwks["keys"][0]}),
            &claims(),
        ),
    );
    add(
        "deep nesting in an ignored member".into(),
        raw(
            k,
            header(Algorithm::ES256).to_string().as_bytes(),
            format!(
                r#"{},"deep":{}{}}}"#,
                &p[..p.len() - 1],
                "[".repeat(100),
                "]".repeat(100)
            )
            .as_bytes(),
        ),
    );
    add("five segments".into(), format!("{good}.x.y"));
    add("padding".into(), good.replacen('.', "=.", 1));
    for (a, kid) in [
        (Algorithm::ES256, "RS256"),
        (Algorithm::RS256, "ES256"),
        (Algorithm::HS256, "EdDSA"),
    ] {
        add(
            format!("{a:?} header naming the {kid} key"),
            signed(a, &json!({"alg": format!("{a:?}"), "kid": kid}), &claims()),
        );
    }
    add(
        "ES256 (r, n - s) twin".into(),
        testing::ecdsa_twin(&good).ok_or("twin")?,
    );

    let out: Vec<Value> = vectors
        .into_iter()
        .map(|(name, token)| {
            let verdict = match validator.validate(&token) {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.kind().as_str().to_owned(),
            };
            json!({"name": name, "token": token, "tokenlife": verdict})
        })
        .collect();
    let doc = json!({
        "now": T0, "iss": ISS, "aud": AUD, "leeway": 30, "jwks": jwks,
        "hmac_secret_b64": b64(&[0x5a; 64]), "vectors": out,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
