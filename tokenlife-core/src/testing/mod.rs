//! Fixed test keys, a signing helper and the common [`Fixture`] (feature `test-util`);
//! real servers for tests that break them: `RedisServer` (feature `redis`), `PgServer`
//! (feature `postgres`).
//!
//! These keys are public knowledge: they exist so that tests, examples and benches sign
//! real tokens without generating keys. Never use them to protect anything.

use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;

use crate::keys::Key;

mod fixture;
#[cfg(feature = "admin")]
pub use fixture::{ADMIN_KEY, CLIENT, RESOURCE_SERVER};
pub use fixture::{AUD, Fixture, ISS};

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use redis::RedisServer;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::PgServer;

/// A free 127.0.0.1 port that no test server of this process was given before. A test
/// that kills its server for an outage starts it again on the same port: were that port
/// handed to another test's server meanwhile, the two tests would share one server (and
/// one would see the other's keys, outages and settings). So a port given once stays
/// given for the life of the process (two bytes per server started).
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn free_port() -> u16 {
    use std::collections::BTreeSet;
    use std::sync::{Mutex, PoisonError};
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if GIVEN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
}

/// Panics, naming `port`, when something answers on it: a test server about to start
/// there would otherwise fail to bind and its test would use another's server.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn assert_unanswered(port: u16) {
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} is already taken: another server answers there"
    );
}

/// Runs `script` under `sh` as a watchdog: the script starts a server in the background,
/// reads its stdin (a pipe only this process writes to) until EOF, then stops the server.
/// EOF comes from [`stop_watchdog`], or when this process dies, however.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn watchdog(script: &str, expect: &str) -> std::process::Child {
    use std::process::{Command, Stdio};
    Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(expect)
}

/// Closes a [`watchdog`]'s stdin, so it stops its server, and waits until it has.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn stop_watchdog(child: Option<std::process::Child>) {
    if let Some(mut c) = child {
        drop(c.stdin.take());
        let _ = c.wait();
    }
}

/// Every algorithm tokenlife verifies.
pub const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One test key per algorithm, each with the algorithm's name as its kid.
pub fn keys_for_all_algorithms() -> Vec<Key> {
    ALGORITHMS
        .iter()
        .map(|a| key(&format!("{a:?}"), *a))
        .collect()
}

/// The malleable twin of an ES256/ES384 token: its signature `(r, s)` turned into
/// `(r, n − s)`, which verifies too. `None` for any other token.
pub fn ecdsa_twin(token: &str) -> Option<String> {
    crate::ecdsa::twin(token)
}

/// RSA 2048 private key (PKCS#8 PEM).
pub const RSA_PEM: &str = include_str!("rsa.pem");
/// A second, different RSA 2048 private key (PKCS#8 PEM).
pub const RSA2_PEM: &str = include_str!("rsa2.pem");
/// EC P-256 private key (PKCS#8 PEM).
pub const EC256_PEM: &str = include_str!("ec256.pem");
/// EC P-384 private key (PKCS#8 PEM).
pub const EC384_PEM: &str = include_str!("ec384.pem");
/// Ed25519 private key (PKCS#8 PEM).
pub const ED25519_PEM: &str = include_str!("ed25519.pem");

/// A signing key for `alg` from the fixed test keys (HMAC keys use a fixed secret).
///
/// # Panics
/// Never for the supported algorithms: the embedded keys are valid.
pub fn key(kid: &str, alg: Algorithm) -> Key {
    use jsonwebtoken::AlgorithmFamily as F;
    match alg.family() {
        F::Hmac => Key::hmac(kid, alg, &[0x5a; 64]),
        F::Rsa => Key::from_private_pem(kid, alg, RSA_PEM.as_bytes()),
        F::Ec if alg == Algorithm::ES384 => Key::from_private_pem(kid, alg, EC384_PEM.as_bytes()),
        F::Ec => Key::from_private_pem(kid, alg, EC256_PEM.as_bytes()),
        F::Ed => Key::from_private_pem(kid, alg, ED25519_PEM.as_bytes()),
    }
    .expect("embedded test key is valid")
}

/// Signs `claims` with `key` (its kid and algorithm in the header).
///
/// # Panics
/// If the key cannot sign or the claims cannot be serialised.
pub fn sign(key: &Key, claims: &impl Serialize) -> String {
    let mut header = Header::new(key.algorithm());
    header.kid = Some(key.kid().to_owned());
    sign_with_header(key, &header, claims)
}

/// Signs `claims` with `key` under a header of your own (for tests of hostile headers).
///
/// # Panics
/// If the key cannot sign or the claims cannot be serialised.
pub fn sign_with_header(key: &Key, header: &Header, claims: &impl Serialize) -> String {
    let enc = key.encoding_key().expect("test key can sign");
    jsonwebtoken::encode(header, claims, enc).expect("test token encodes")
}

/// Signs raw header and payload bytes, which need not be JSON objects nor UTF-8 (for
/// tests of hostile encodings).
///
/// # Panics
/// If the key cannot sign.
pub fn sign_raw(key: &Key, header: &[u8], payload: &[u8]) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let message = format!("{}.{}", b64(header), b64(payload));
    let enc = key.encoding_key().expect("test key can sign");
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), enc, key.algorithm())
        .expect("test token signs");
    format!("{message}.{sig}")
}

/// The public JWKS of the test keys `(kid, algorithm)`: what a scripted identity provider
/// serves.
///
/// ```
/// use tokenlife_core::{Algorithm, testing};
/// let jwks = testing::public_jwks(&[("k1", Algorithm::ES256)]);
/// assert!(jwks.contains(r#""kid":"k1""#) && !jwks.contains(r#""d":"#));
/// ```
///
/// # Panics
/// On a kid given twice (the keyset refuses it).
pub fn public_jwks(keys: &[(&str, Algorithm)]) -> String {
    crate::keys::Keyset::new(keys.iter().map(|(kid, alg)| key(kid, *alg)))
        .expect("distinct kids")
        .to_public_jwks()
}

/// A token of the test key `(kid, alg)` for `iss` and `aud`, subject `alice`, issued at
/// `now` and valid ten minutes.
pub fn token_at(iss: &str, aud: &str, kid: &str, alg: Algorithm, now: u64) -> String {
    sign(
        &key(kid, alg),
        &serde_json::json!({"iss": iss, "aud": aud, "sub": "alice", "iat": now, "exp": now + 600}),
    )
}
