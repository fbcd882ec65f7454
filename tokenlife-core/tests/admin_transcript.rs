//! The admin and OAuth routes answer byte for byte as they did before the reshape moved
//! their operations into `tokenlife_core::admin`: a scripted session through the route
//! table ([`AdminState::respond`], what the adapters mount; it ran over axum and a real
//! client until the table moved into core), every answer's status, the headers clients
//! read and the exact body, compared with `tests/golden/admin_transcript.txt`. That file was recorded with the
//! routers as they were before the move (commit aa834fd) and must not be regenerated to
//! make a change pass: a difference is a behaviour change for every client.
//!
//! Re-recorded once, deliberately, for the rollout issue's fixes of what this transcript
//! had recorded: a second `POST /keysets/stage` while a candidate is staged is refused
//! (409 `rollout_in_progress`) instead of silently replacing it; `promote` of a public
//! candidate keeps the current signing key and the candidate's label (it dropped both);
//! `GET /keysets` shows each snapshot's `rollout` and the `quarantined` versions; a
//! stage answers its `mode`. Every other answer is byte for byte the aa834fd one.
//!
//! The only parts masked are the ones that differ from run to run by design: signed
//! tokens and `jti`s (random), and keyset `created_at` (wall clock).

#![cfg(feature = "admin")]

mod common;

use std::time::Duration;

use common::client::Client;

use tokenlife_core::admin::AdminState;
use tokenlife_core::{Algorithm, Issuer, Keyset, KeysetStore, ManualClock, Validator, testing};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "api://orders";
const ADMIN: &str = "Bearer admin-secret-for-tests";
/// `demo-client:demo-secret`
const CLIENT: &str = "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=";
/// `demo-client:wrong`
const BAD_CLIENT: &str = "Basic ZGVtby1jbGllbnQ6d3Jvbmc=";
/// `orders-api:rs-secret`
const RS: &str = "Basic b3JkZXJzLWFwaTpycy1zZWNyZXQ=";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// Masks the values of `"field":"…"` in a JSON body.
fn mask(body: &str, field: &str) -> String {
    let pat = format!("\"{field}\":");
    let mut out = String::new();
    let mut rest = body;
    while let Some(i) = rest.find(&pat) {
        let (head, tail) = rest.split_at(i + pat.len());
        out.push_str(head);
        let end = if let Some(s) = tail.strip_prefix('"') {
            s.find('"').map_or(tail.len(), |e| e + 2)
        } else {
            tail.find([',', '}']).unwrap_or(tail.len())
        };
        out.push_str("\"<masked>\"");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

struct Session {
    http: Client,
    log: String,
}

impl Session {
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> String {
        let mut req = match method {
            "GET" => self.http.get(path),
            _ => self.http.post(path),
        };
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(c) = content_type {
            req = req.header("content-type", c);
        }
        let res = req.body(body.to_owned()).send().await.unwrap();
        let status = res.status().as_u16();
        let mut headers = String::new();
        for name in [
            "content-type",
            "cache-control",
            "pragma",
            "www-authenticate",
            "retry-after",
        ] {
            if let Some(v) = res.headers().get(name) {
                headers.push_str(&format!(" {name}={}", v.to_str().unwrap()));
            }
        }
        let text = res.text().await.unwrap();
        let mut shown = text.clone();
        for f in ["access_token", "refresh_token", "jti", "created_at"] {
            shown = mask(&shown, f);
        }
        self.log.push_str(&format!(
            "{method} {path}\n  {status}{headers}\n  {shown}\n"
        ));
        text
    }
}

fn field(body: &str, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v[name].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn admin_answers_match_the_recorded_transcript() {
    let clock = ManualClock::at_unix(1_700_000_000);
    let store = KeysetStore::new(
        Keyset::new([testing::key("k1", Algorithm::ES256)])
            .unwrap()
            .with_label("v1"),
    );
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap();
    let issuer = Issuer::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .revocations(validator.revocations().clone())
        .build()
        .unwrap();
    let state = AdminState::builder(validator)
        .issuer(issuer)
        .admin_key("admin-secret-for-tests")
        .client(
            "demo-client",
            "demo-secret",
            Some("orders:read orders:write"),
        )
        .resource_server("orders-api", "rs-secret")
        .auth_throttle(3, Duration::from_secs(60))
        .max_body(512)
        .build()
        .unwrap();
    let mut s = Session {
        http: Client::new(state),
        log: String::new(),
    };
    let new_jwks = Keyset::new([testing::key("k2", Algorithm::ES256)])
        .unwrap()
        .to_public_jwks();
    let canary_jwks = Keyset::new([testing::key("k3", Algorithm::RS256)])
        .unwrap()
        .to_public_jwks();

    s.call("GET", "/.well-known/jwks.json", None, None, "")
        .await;
    s.call("GET", "/keysets", Some(ADMIN), None, "").await;
    let pair = s
        .call(
            "POST",
            "/tokens",
            Some(ADMIN),
            Some(JSON),
            r#"{"subject":"u","scope":"orders:read","client":"demo-client"}"#,
        )
        .await;
    let (access, refresh) = (field(&pair, "access_token"), field(&pair, "refresh_token"));
    s.call("POST", "/tokens", Some(ADMIN), Some(JSON), "{not json")
        .await;
    s.call(
        "POST",
        "/tokens",
        Some(ADMIN),
        Some(JSON),
        r#"{"subject":"u","bogus":1}"#,
    )
    .await;
    s.call(
        "POST",
        "/tokens",
        Some(ADMIN),
        Some(JSON),
        r#"{"subject":"u","client":"nobody"}"#,
    )
    .await;
    s.call(
        "POST",
        "/token",
        Some(CLIENT),
        Some(FORM),
        "grant_type=client_credentials",
    )
    .await;
    s.call(
        "POST",
        "/token",
        Some(CLIENT),
        Some(FORM),
        "grant_type=client_credentials&scope=orders:admin",
    )
    .await;
    s.call("POST", "/token", Some(CLIENT), Some(FORM), "").await;
    s.call(
        "POST",
        "/token",
        Some(CLIENT),
        Some(FORM),
        "grant_type=password",
    )
    .await;
    s.call(
        "POST",
        "/token",
        None,
        Some(FORM),
        "grant_type=client_credentials",
    )
    .await;
    s.call(
        "POST",
        "/token",
        Some(CLIENT),
        Some(FORM),
        "grant_type=refresh_token",
    )
    .await;
    s.call(
        "POST",
        "/token",
        Some(CLIENT),
        Some(FORM),
        "grant_type=refresh_token&refresh_token=rt_garbage",
    )
    .await;
    s.call(
        "POST",
        "/token",
        Some(CLIENT),
        Some(FORM),
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    s.call(
        "POST",
        "/token",
        Some(CLIENT),
        Some(FORM),
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    s.call(
        "POST",
        "/introspect",
        Some(RS),
        Some(FORM),
        &format!("token={access}"),
    )
    .await;
    s.call("POST", "/introspect", Some(RS), Some(FORM), "")
        .await;
    s.call(
        "POST",
        "/introspect",
        None,
        Some(FORM),
        &format!("token={access}"),
    )
    .await;
    s.call(
        "POST",
        "/revoke",
        Some(CLIENT),
        Some(FORM),
        &format!("token={access}"),
    )
    .await;
    s.call(
        "POST",
        "/introspect",
        Some(RS),
        Some(FORM),
        &format!("token={access}"),
    )
    .await;
    s.call(
        "POST",
        "/revoke",
        Some(ADMIN),
        Some(FORM),
        &format!("token={access}"),
    )
    .await;
    s.call(
        "POST",
        "/revoke",
        Some(ADMIN),
        Some(FORM),
        "token=not-a-token",
    )
    .await;
    s.call(
        "POST",
        "/revocations/jti",
        Some(ADMIN),
        Some(JSON),
        r#"{"jti":"j-1"}"#,
    )
    .await;
    s.call(
        "POST",
        "/revocations/jti",
        Some(ADMIN),
        Some(JSON),
        r#"{"jti":""}"#,
    )
    .await;
    s.call(
        "POST",
        "/revocations/jti",
        Some(ADMIN),
        Some(JSON),
        r#"{"jti":"j-2","until":1}"#,
    )
    .await;
    s.call(
        "POST",
        "/revocations/subject",
        Some(ADMIN),
        Some(JSON),
        r#"{"subject":"u"}"#,
    )
    .await;
    s.call(
        "POST",
        "/revocations/family",
        Some(ADMIN),
        Some(JSON),
        r#"{"family":"f-1","until":1800000000}"#,
    )
    .await;
    s.call(
        "POST",
        "/revocations/jti",
        Some(ADMIN),
        Some(JSON),
        &format!(r#"{{"jti":"{}"}}"#, "x".repeat(600)),
    )
    .await;
    s.call("POST", "/keysets", Some(ADMIN), Some(JSON), &new_jwks)
        .await;
    s.call(
        "POST",
        "/keysets?keep_signing=true&label=v2",
        Some(ADMIN),
        Some(JSON),
        &new_jwks,
    )
    .await;
    s.call(
        "POST",
        "/keysets?bogus=1",
        Some(ADMIN),
        Some(JSON),
        &new_jwks,
    )
    .await;
    s.call(
        "POST",
        "/keysets?keep_signing=true",
        Some(ADMIN),
        Some(JSON),
        r#"{"keys":[{"kty":"oct","kid":"s","k":"AAAA"}]}"#,
    )
    .await;
    s.call(
        "POST",
        "/keysets/stage?keep_signing=true",
        Some(ADMIN),
        Some(JSON),
        &new_jwks,
    )
    .await;
    s.call("POST", "/keysets/promote", Some(ADMIN), None, "")
        .await;
    s.call(
        "POST",
        "/keysets/stage?label=canary",
        Some(ADMIN),
        Some(JSON),
        &canary_jwks,
    )
    .await;
    s.call(
        "POST",
        "/keysets/stage",
        Some(ADMIN),
        Some(JSON),
        &canary_jwks,
    )
    .await;
    s.call("GET", "/keysets", Some(ADMIN), None, "").await;
    s.call("POST", "/keysets/promote", Some(ADMIN), None, "")
        .await;
    s.call("POST", "/keysets/rollback", Some(ADMIN), None, "")
        .await;
    s.call("POST", "/keysets/rollback/abc", Some(ADMIN), None, "")
        .await;
    s.call("POST", "/keysets/rollback/99", Some(ADMIN), None, "")
        .await;
    s.call("POST", "/keysets/rollback/2", Some(ADMIN), None, "")
        .await;
    s.call("GET", "/keysets", Some(ADMIN), None, "").await;
    // The failing identity is throttled from its address; the admin, from the same
    // address, is not (security review 3, MEDIUM 6).
    for _ in 0..4 {
        s.call("GET", "/keysets", Some(BAD_CLIENT), None, "").await;
    }
    s.call("GET", "/keysets", Some(ADMIN), None, "").await;

    let golden = include_str!("golden/admin_transcript.txt");
    if std::env::var_os("TOKENLIFE_WRITE_TRANSCRIPT").is_some() {
        std::fs::write("tests/golden/admin_transcript.txt", &s.log).unwrap();
    }
    assert_eq!(
        s.log, golden,
        "the admin API answered differently from the recorded transcript"
    );
}
