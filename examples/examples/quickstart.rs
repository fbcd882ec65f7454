//! The core story on the console: load a JWKS, validate, revoke, roll a keyset back.
//!
//! `cargo run -p examples --example quickstart`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The identity provider's key (a fixed test key) and its public JWKS.
    let idp_key = testing::key("deploy-41", Algorithm::RS256);
    let jwks = Keyset::new([testing::key("deploy-41", Algorithm::RS256)])?.to_public_jwks();
    println!("JWKS served by the identity provider:\n  {jwks}\n");

    let store = KeysetStore::new(Keyset::from_jwks_json(&jwks)?.with_label("deploy-41"));
    let validator = Validator::builder(store.clone())
        .issuer("https://auth.example.com")
        .audience("api://orders")
        .build()?;

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let token = testing::sign(
        &idp_key,
        &json!({"iss": "https://auth.example.com", "aud": "api://orders", "sub": "user-42",
                "jti": "b9a1c2d3", "iat": now, "exp": now + 900}),
    );
    let fp = validator.fingerprint(&token);

    let v = validator.validate(&token)?;
    println!(
        "validate  token {fp}: ok, sub={:?}, keyset v{}",
        v.claims().sub,
        v.keyset_version()
    );
    let v = validator.validate(&token)?;
    println!(
        "validate  token {fp}: ok again (from cache: {})",
        v.from_cache()
    );

    // A bad deploy: a keyset without the IdP's key.
    let v2 = store
        .publish(Keyset::new([testing::key("bad-deploy", Algorithm::ES256)])?.with_label("bad"));
    let err = validator.validate(&token).unwrap_err();
    println!(
        "publish   keyset v{v2} (label bad): token now fails: {err} -> {:?}",
        err.rfc6750_code()
    );

    let back = store.rollback()?;
    validator.validate(&token)?;
    println!("rollback  to keyset v{back}: token validates again");

    validator
        .revocations()
        .revoke_jti("b9a1c2d3", SystemTime::now() + Duration::from_secs(900))?;
    let err = validator.validate(&token).unwrap_err();
    println!(
        "revoke    jti b9a1c2d3: {err} (HTTP {}, {:?})",
        err.status(),
        err.rfc6750_code()
    );

    println!("\nhistory:");
    for snap in store.history() {
        println!("  v{} {:?}", snap.version(), snap.label());
    }
    Ok(())
}
