//! The admin API's behaviour, driven with `http` types through
//! [`AdminState::respond`] (the route table the adapters mount): every endpoint, good
//! and bad input, who may call what, and the rule that a refused request changes
//! nothing. Each adapter keeps a mount test proving every route answers on it.
#![cfg(feature = "admin")]

mod common;

use common::client::Client;
use serde_json::{Value, json};
use tokenlife_core::admin::AdminState;
use tokenlife_core::observe::audit::AuditAction;
use tokenlife_core::testing::{ADMIN_KEY, Fixture};
use tokenlife_core::testing::{AUD, ISS};
use tokenlife_core::{Algorithm, Keyset, testing};

struct Env {
    f: Fixture,
    http: Client,
}

async fn env() -> Env {
    let f = Fixture::new();
    let state = f
        .admin()
        .auth_throttle(10_000, std::time::Duration::from_secs(60))
        .max_body(4096)
        .build()
        .unwrap();
    Env {
        f,
        http: Client::new(state),
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

impl Env {
    async fn post(
        &self,
        path: &str,
        ctype: &str,
        body: impl Into<String>,
        admin: bool,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(path)
            .header("content-type", ctype)
            .body(body.into());
        if admin {
            req = req.bearer_auth(ADMIN_KEY);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// What a protected API answers `token` (the guard's status for its validation).
    async fn orders(&self, token: &str) -> u16 {
        match self.f.validator.validate(token) {
            Ok(_) => 200,
            Err(e) => tokenlife_core::gate::Rejection::from_error(&e).status,
        }
    }

    async fn client_token(&self) -> String {
        let (s, body) = self
            .post(
                "/token",
                FORM,
                "grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret",
                false,
            )
            .await;
        assert_eq!(s, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    fn version(&self) -> u64 {
        self.f.store.current().version()
    }
}

#[tokio::test]
async fn jwks_is_public_and_has_no_private_material() {
    let e = env().await;
    let res = e.http.get("/.well-known/jwks.json").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/jwk-set+json");
    let jwks: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "k1");
    assert!(jwks["keys"][0].get("d").is_none());
}

#[tokio::test]
async fn token_endpoint_grants_and_errors() {
    let e = env().await;
    // client_credentials with HTTP Basic
    let res = e
        .http
        .post("/token")
        .basic_auth("demo-client", Some("demo-secret"))
        .header("content-type", FORM)
        .body("grant_type=client_credentials&scope=orders:read")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(
        (body["token_type"].as_str(), body["scope"].as_str()),
        (Some("Bearer"), Some("orders:read"))
    );
    assert!(body.get("refresh_token").is_none());
    assert_eq!(e.orders(body["access_token"].as_str().unwrap()).await, 200);

    for (form, status, error) in [
        (
            "grant_type=client_credentials&client_id=demo-client&client_secret=wrong",
            401,
            "invalid_client",
        ),
        ("grant_type=client_credentials", 401, "invalid_client"),
        (
            "grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret&scope=admin",
            400,
            "invalid_scope",
        ),
        (
            "grant_type=password&username=a&password=b",
            400,
            "unsupported_grant_type",
        ),
        ("", 400, "invalid_request"),
        ("grant_type=refresh_token", 400, "invalid_request"),
        (
            "grant_type=refresh_token&refresh_token=tlr_nope",
            400,
            "invalid_grant",
        ),
        ("%%%=&&", 400, "invalid_request"),
    ] {
        let (s, body) = e.post("/token", FORM, form, false).await;
        assert_eq!((s, body["error"].as_str()), (status, Some(error)), "{form}");
    }

    // refresh_token grant: rotation, then reuse → invalid_grant and the family is dead
    let (s, pair) = e
        .post(
            "/tokens",
            "application/json",
            r#"{"subject":"user-1","scope":"orders:read"}"#,
            true,
        )
        .await;
    assert_eq!(s, 200);
    let r1 = pair["refresh_token"].as_str().unwrap().to_owned();
    let (s, pair2) = e
        .post(
            "/token",
            FORM,
            format!("grant_type=refresh_token&refresh_token={r1}"),
            false,
        )
        .await;
    assert_eq!(s, 200);
    // Past the 30 s retry grace: reuse.
    e.f.clock.advance(std::time::Duration::from_secs(31));
    let (s, body) = e
        .post(
            "/token",
            FORM,
            format!("grant_type=refresh_token&refresh_token={r1}"),
            false,
        )
        .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(e.orders(pair2["access_token"].as_str().unwrap()).await, 401);
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_key_and_never_a_managed_token() {
    let e = env().await;
    let managed = e.client_token().await;
    let before = e.version();
    for path in [
        "/revoke",
        "/introspect",
        "/revocations/jti",
        "/revocations/subject",
        "/revocations/family",
        "/keysets",
        "/keysets/stage",
        "/keysets/promote",
        "/keysets/share?share=5",
        "/keysets/abort",
        "/keysets/release/1",
        "/keysets/rollback",
        "/keysets/rollback/1",
        "/tokens",
    ] {
        for auth in [None, Some(managed.as_str()), Some("wrong-key")] {
            let mut req = e.http.post(path).body("{}");
            if let Some(a) = auth {
                req = req.bearer_auth(a);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 401, "{path} with {auth:?}");
            assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="admin""#);
        }
    }
    let res = e.http.get("/keysets").send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(e.version(), before);
}

#[tokio::test]
async fn rfc7009_revoke_and_rfc7662_introspect() {
    let e = env().await;
    let token = e.client_token().await;
    let (s, body) = e
        .post("/introspect", FORM, format!("token={token}"), true)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (body["active"].as_bool(), body["sub"].as_str()),
        (Some(true), Some("demo-client"))
    );
    assert_eq!(body["client_id"], "demo-client");
    assert_eq!(body["scope"], "orders:read orders:write");

    assert_eq!(e.orders(&token).await, 200);
    let (s, _) = e
        .post(
            "/revoke",
            FORM,
            format!("token={token}&token_type_hint=access_token"),
            true,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(e.orders(&token).await, 401);
    let (_, body) = e
        .post("/introspect", FORM, format!("token={token}"), true)
        .await;
    assert_eq!(body, json!({"active": false}));

    // Invalid tokens: 200 (RFC 7009 §2.2) and inactive; a missing token: 400.
    let (s, _) = e.post("/revoke", FORM, "token=garbage", true).await;
    assert_eq!(s, 200);
    let (s, body) = e
        .post("/revoke", FORM, "token_type_hint=access_token", true)
        .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")));
    let (s, body) = e.post("/introspect", FORM, "", true).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")));

    // A refresh token revoked through RFC 7009 takes its family with it.
    let (_, pair) = e
        .post("/tokens", "application/json", r#"{"subject":"u"}"#, true)
        .await;
    let (s, _) = e
        .post(
            "/revoke",
            FORM,
            format!("token={}", pair["refresh_token"].as_str().unwrap()),
            true,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(e.orders(pair["access_token"].as_str().unwrap()).await, 401);
}

#[tokio::test]
async fn revocation_endpoints_and_their_bad_input() {
    let e = env().await;
    let token = e.client_token().await;
    let jti =
        e.f.validator
            .validate(&token)
            .unwrap()
            .claims()
            .jti
            .clone()
            .unwrap();
    let entries = e.f.validator.revocations().len();
    let now = e.f.validator.clock().unix_now();
    for (path, body) in [
        ("/revocations/jti", "{".to_string()),
        ("/revocations/jti", r#"{"jti": 5}"#.into()),
        ("/revocations/jti", r#"{}"#.into()),
        ("/revocations/jti", r#"{"jti": ""}"#.into()),
        (
            "/revocations/jti",
            format!(r#"{{"jti": "{}"}}"#, "x".repeat(2000)),
        ),
        (
            "/revocations/jti",
            format!(r#"{{"jti": "{jti}", "until": {}}}"#, now - 10),
        ),
        (
            "/revocations/jti",
            format!(r#"{{"jti": "{jti}", "extra": true}}"#),
        ),
        ("/revocations/subject", r#"{"sub": "demo-client"}"#.into()),
        ("/revocations/family", r#"["f"]"#.into()),
    ] {
        let (s, resp) = e.post(path, "application/json", body.clone(), true).await;
        assert_eq!(
            (s, resp["error"].as_str()),
            (400, Some("invalid_request")),
            "{path} {body}"
        );
    }
    assert_eq!(
        e.f.validator.revocations().len(),
        entries,
        "refused requests change nothing"
    );
    assert_eq!(e.orders(&token).await, 200);

    let (s, _) = e
        .post(
            "/revocations/jti",
            "application/json",
            format!(r#"{{"jti": "{jti}"}}"#),
            true,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(e.orders(&token).await, 401);

    let other = e.client_token().await;
    let (s, _) = e
        .post(
            "/revocations/subject",
            "application/json",
            r#"{"subject": "demo-client"}"#,
            true,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(e.orders(&other).await, 401);

    let (_, pair) = e
        .post("/tokens", "application/json", r#"{"subject":"u"}"#, true)
        .await;
    let fam =
        e.f.validator
            .validate(pair["access_token"].as_str().unwrap())
            .unwrap()
            .claims()
            .family
            .clone()
            .unwrap();
    let (s, _) = e
        .post(
            "/revocations/family",
            "application/json",
            format!(r#"{{"family": "{fam}"}}"#),
            true,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(e.orders(pair["access_token"].as_str().unwrap()).await, 401);
}

fn jwks_of(kid: &str, alg: Algorithm) -> String {
    Keyset::new([testing::key(kid, alg)])
        .unwrap()
        .to_public_jwks()
}

#[tokio::test]
async fn keyset_endpoints_publish_stage_promote_rollback() {
    let e = env().await;
    let token = e.client_token().await;
    let json = "application/json";

    // Bad JWKS bodies: refused, version unchanged.
    let mut with_private: Value = serde_json::from_str(&jwks_of("p", Algorithm::ES256)).unwrap();
    with_private["keys"][0]["d"] = json!("c2VjcmV0");
    let oct =
        r#"{"keys":[{"kty":"oct","kid":"h","k":"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo"}]}"#;
    for (body, error) in [
        (with_private.to_string(), "private_key_material"),
        (oct.to_string(), "private_key_material"),
        ("not json".into(), "invalid_request"),
        (r#"{"keys":[]}"#.into(), "invalid_request"),
        (
            r#"{"keys":[{"kty":"RSA","kid":"r","n":"!!","e":"AQAB"}]}"#.into(),
            "invalid_request",
        ),
    ] {
        for path in ["/keysets", "/keysets/stage"] {
            let (s, resp) = e.post(path, json, body.clone(), true).await;
            assert_eq!(
                (s, resp["error"].as_str()),
                (400, Some(error)),
                "{path} {body}"
            );
        }
    }
    let (s, resp) = e
        .post(
            "/keysets?label=x&bogus=1",
            json,
            jwks_of("n", Algorithm::ES256),
            true,
        )
        .await;
    assert_eq!((s, resp["error"].as_str()), (400, Some("invalid_request")));
    assert_eq!(e.version(), 1);

    // Nothing staged, nothing to roll back to, unknown version, non-numeric version.
    let (s, resp) = e.post("/keysets/promote", json, "", true).await;
    assert_eq!((s, resp["error"].as_str()), (409, Some("conflict")));
    let (s, _) = e.post("/keysets/rollback", json, "", true).await;
    assert_eq!(s, 409);
    let (s, resp) = e.post("/keysets/rollback/99", json, "", true).await;
    assert_eq!((s, resp["error"].as_str()), (404, Some("unknown_version")));
    let (s, _) = e.post("/keysets/rollback/abc", json, "", true).await;
    assert_eq!(s, 400);
    assert_eq!(e.version(), 1);

    // Publishing keys that cannot sign, with an issuer and without saying what becomes
    // of the signing key: refused, nothing changes.
    let (s, resp) = e
        .post(
            "/keysets?label=bad-deploy",
            json,
            jwks_of("other", Algorithm::ES256),
            true,
        )
        .await;
    assert_eq!((s, resp["error"].as_str()), (409, Some("no_signing_key")));
    assert_eq!(e.version(), 1);
    assert_eq!(e.f.store.current().signing_kid(), Some("k1"));
    // A bad deploy, verify-only on purpose: publish keys that do not include the
    // signing key; tokens fail.
    let (s, resp) = e
        .post(
            "/keysets?label=bad-deploy&keep_signing=false",
            json,
            jwks_of("other", Algorithm::ES256),
            true,
        )
        .await;
    assert_eq!((s, resp["version"].as_u64()), (201, Some(2)));
    assert_eq!(e.orders(&token).await, 401);
    let (s, resp) = e.post("/keysets/rollback", json, "", true).await;
    assert_eq!((s, resp["version"].as_u64()), (200, Some(1)));
    assert_eq!(e.orders(&token).await, 200);

    // keep_signing: new verification keys plus the current signing key.
    let (s, resp) = e
        .post(
            "/keysets?label=add&keep_signing=true",
            json,
            jwks_of("extra", Algorithm::EdDSA),
            true,
        )
        .await;
    assert_eq!((s, resp["version"].as_u64()), (201, Some(3)));
    assert_eq!(e.orders(&token).await, 200);
    assert_eq!(e.f.store.current().signing_kid(), Some("k1"));

    // Stage a canary, promote, roll back to a version.
    let (s, resp) = e
        .post(
            "/keysets/stage",
            json,
            jwks_of("canary", Algorithm::ES384),
            true,
        )
        .await;
    assert_eq!((s, resp["version"].as_u64()), (201, Some(4)));
    let res = e
        .http
        .get("/keysets")
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let list: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(list["current"], 4);
    let cur = list["keysets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap();
    assert_eq!(cur["staged_kids"], json!(["canary"]));
    let (s, resp) = e.post("/keysets/promote", json, "", true).await;
    assert_eq!((s, resp["version"].as_u64()), (200, Some(5)));
    let (s, _) = e.post("/keysets/rollback/1", json, "", true).await;
    assert_eq!(s, 200);
    assert_eq!(e.version(), 1);

    // Every admin action reached the audit trail.
    let actions: Vec<AuditAction> = e.f.audit_events().iter().map(|a| a.action).collect();
    for a in [
        AuditAction::KeysetPublished,
        AuditAction::KeysetStaged,
        AuditAction::KeysetPromoted,
        AuditAction::KeysetRollback,
    ] {
        assert!(actions.contains(&a), "{a:?}");
    }
}

// ---------------------------------------------------------------------------------
// The review's findings over HTTP, from the attacker's side.

const DAY: u64 = 86_400;

impl Env {
    /// POST with HTTP Basic credentials.
    async fn post_basic(
        &self,
        path: &str,
        body: impl Into<String>,
        id: &str,
        secret: &str,
    ) -> (u16, Value) {
        let res = self
            .http
            .post(path)
            .header("content-type", FORM)
            .basic_auth(id, Some(secret))
            .body(body.into())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn mint(&self, body: Value) -> Value {
        let (s, pair) = self
            .post("/tokens", "application/json", body.to_string(), true)
            .await;
        assert_eq!(s, 200, "{pair}");
        pair
    }

    async fn refresh(&self, rt: &str) -> (u16, Value) {
        self.post(
            "/token",
            FORM,
            format!("grant_type=refresh_token&refresh_token={rt}"),
            false,
        )
        .await
    }

    fn advance(&self, secs: u64) {
        self.f.clock.advance(std::time::Duration::from_secs(secs));
        self.f.validator.revocations().run_pending_tasks();
    }
}

/// Finding 1: "kill every session of user X" kills the refresh tokens too.
#[tokio::test]
async fn a_subject_revocation_stops_renewal() {
    let e = env().await;
    let pair = e.mint(json!({"subject": "alice"})).await;
    let rt = pair["refresh_token"].as_str().unwrap();
    let revoked = || {
        e.f.monitor.tracker().count(
            tokenlife_core::observe::lifecycle::TokenKind::Access,
            Some(tokenlife_core::observe::lifecycle::TokenState::Active),
            tokenlife_core::observe::lifecycle::TokenState::Revoked,
        )
    };
    let before = revoked();
    let (s, body) = e
        .post(
            "/revocations/subject",
            "application/json",
            r#"{"subject":"alice"}"#,
            true,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(revoked() - before, 1, "one revocation, counted once");
    // Security review 3, earlier finding 12: the audit record names the actor and the
    // target.
    let admin_events: Vec<_> =
        e.f.audit_events()
            .into_iter()
            .filter(|ev| ev.action == AuditAction::Admin && ev.outcome == "ok")
            .collect();
    let rec = admin_events
        .iter()
        .find(|ev| {
            ev.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("revoke subject"))
        })
        .expect("the subject revocation is audited");
    assert_eq!(rec.client.as_deref(), Some("admin"));
    assert_eq!(rec.subject.as_deref(), Some("alice"));
    let now = e.f.validator.clock().unix_now();
    assert!(body["until"].as_u64().unwrap() >= now + 30 * DAY, "{body}");
    assert_eq!(e.orders(pair["access_token"].as_str().unwrap()).await, 401);
    let (s, body) = e.refresh(rt).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    // Still dead after the default `until` (one day) would have lapsed.
    e.advance(2 * DAY);
    let (s, _) = e.refresh(rt).await;
    assert_eq!(s, 400);
}

/// Finding 3: admin family revocation takes the refresh chain, and outlives `until`.
#[tokio::test]
async fn a_family_revocation_takes_the_refresh_chain() {
    let e = env().await;
    let pair = e.mint(json!({"subject": "u"})).await;
    let fam =
        e.f.validator
            .inspect(pair["access_token"].as_str().unwrap())
            .unwrap()
            .claims()
            .family
            .clone()
            .unwrap();
    let now = e.f.validator.clock().unix_now();
    let (s, _) = e
        .post(
            "/revocations/family",
            "application/json",
            format!(r#"{{"family":"{fam}","until":{}}}"#, now + 60),
            true,
        )
        .await;
    assert_eq!(s, 200);
    let families = e.f.validator.revocations().len();
    assert_eq!(families, 1, "one list entry");
    let rt = pair["refresh_token"].as_str().unwrap();
    assert_eq!(e.refresh(rt).await.0, 400);
    e.advance(10 * DAY);
    assert_eq!(
        e.refresh(rt).await.0,
        400,
        "the family came back after `until`"
    );
}

/// Finding 5: ten concurrent renewals of one refresh token over HTTP: one wins, and the
/// winner's session survives the losers.
#[tokio::test]
async fn concurrent_renewals_keep_the_winner() {
    let e = env().await;
    let pair = e.mint(json!({"subject": "u"})).await;
    let rt = pair["refresh_token"].as_str().unwrap().to_owned();
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let (http, url, rt) = (e.http.clone(), "/token", rt.clone());
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .header("content-type", FORM)
                    .body(format!("grant_type=refresh_token&refresh_token={rt}"))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
                (status, body)
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    let winners: Vec<&Value> = results
        .iter()
        .filter(|r| r.0 == 200)
        .map(|r| &r.1)
        .collect();
    // The first renewal and at most three idempotent retries (siblings) get a pair.
    assert!((1..=4).contains(&winners.len()), "{results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.0 != 200)
            .all(|r| r.1["error"] == "invalid_grant")
    );
    for won in &winners {
        assert_eq!(e.orders(won["access_token"].as_str().unwrap()).await, 200);
    }
    // Whichever answer the client kept, it renews: the family lives on.
    let kept = winners[winners.len() - 1];
    assert_eq!(
        e.refresh(kept["refresh_token"].as_str().unwrap()).await.0,
        200
    );
    // And only one sibling moves the family on: any other is refused.
    if winners.len() > 1 {
        let other = winners[0]["refresh_token"].as_str().unwrap();
        assert_eq!(e.refresh(other).await.1["error"], "invalid_grant");
    }
}

/// Peer gaps, item 4: a client whose renewal answer was lost retries with the token it
/// still holds and gets a working pair in the same family, through the token endpoint;
/// the answer it lost is left behind, and the old token after the grace is still reuse.
#[tokio::test]
async fn a_lost_renewal_answer_is_retried_not_locked_out() {
    let e = env().await;
    let pair = e.mint(json!({"subject": "u"})).await;
    let rt = pair["refresh_token"].as_str().unwrap().to_owned();
    let (s, lost) = e.refresh(&rt).await;
    assert_eq!(s, 200);
    e.f.clock.advance(std::time::Duration::from_secs(10));
    let (s, retried) = e.refresh(&rt).await;
    assert_eq!(s, 200, "{retried}");
    assert_eq!(
        e.orders(retried["access_token"].as_str().unwrap()).await,
        200
    );
    let (s, next) = e.refresh(retried["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{next}");
    // The lost answer's refresh token never moves the family on now.
    let (s, body) = e.refresh(lost["refresh_token"].as_str().unwrap()).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    e.f.clock.advance(std::time::Duration::from_secs(31));
    // The old token presented after the grace: reuse, the whole family dies.
    let (s, body) = e.refresh(&rt).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(e.orders(next["access_token"].as_str().unwrap()).await, 401);
    assert_eq!(
        e.refresh(next["refresh_token"].as_str().unwrap()).await.0,
        400
    );
}

/// Finding 6: refresh tokens bound to a client renew only with that client's
/// credentials; RFC 7009 and 7662 have their own credentials.
#[tokio::test]
async fn client_binding_and_separate_credentials() {
    let e = env().await;
    let pair = e
        .mint(json!({"subject": "u", "client": "demo-client"}))
        .await;
    let rt = pair["refresh_token"].as_str().unwrap().to_owned();
    let grant = format!("grant_type=refresh_token&refresh_token={rt}");
    // No credentials, or a stranger's: refused, nothing spent.
    let (s, body) = e.refresh(&rt).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let (s, body) = e
        .post_basic("/token", grant.clone(), "demo-client", "wrong")
        .await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    let (s, body) = e
        .post(
            "/token",
            FORM,
            format!("{grant}&client_id=demo-client"),
            false,
        )
        .await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    // The right client renews.
    let (s, pair2) = e
        .post_basic("/token", grant, "demo-client", "demo-secret")
        .await;
    assert_eq!(s, 200, "{pair2}");

    // RFC 7662: a resource server introspects with its own credential; a client cannot.
    let access = pair2["access_token"].as_str().unwrap();
    let (s, body) = e
        .post_basic(
            "/introspect",
            format!("token={access}"),
            "orders-api",
            "rs-secret",
        )
        .await;
    assert_eq!((s, body["active"].as_bool()), (200, Some(true)));
    // Security review 3, LOW 20: a resource server learns nothing of refresh tokens
    // (whose they are, their scope); the admin does.
    let rt2 = pair2["refresh_token"].as_str().unwrap();
    let (s, body) = e
        .post_basic(
            "/introspect",
            format!("token={rt2}"),
            "orders-api",
            "rs-secret",
        )
        .await;
    assert_eq!((s, body.clone()), (200, json!({"active": false})));
    let (s, body) = e
        .post("/introspect", FORM, format!("token={rt2}"), true)
        .await;
    assert_eq!((s, body["active"].as_bool()), (200, Some(true)));
    let (s, _) = e
        .post_basic(
            "/introspect",
            format!("token={access}"),
            "demo-client",
            "demo-secret",
        )
        .await;
    assert_eq!(s, 401);
    // A resource server cannot reach the admin routes.
    let (s, _) = e
        .post_basic(
            "/revocations/jti",
            r#"{"jti":"x"}"#,
            "orders-api",
            "rs-secret",
        )
        .await;
    assert_eq!(s, 401);

    // RFC 7009: a client revokes its own tokens, not another's.
    let other = e.mint(json!({"subject": "v"})).await;
    let (s, body) = e
        .post_basic(
            "/revoke",
            format!("token={}", other["refresh_token"].as_str().unwrap()),
            "demo-client",
            "demo-secret",
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    assert_eq!(
        e.refresh(other["refresh_token"].as_str().unwrap()).await.0,
        200
    );
    let (s, _) = e
        .post_basic(
            "/revoke",
            format!("token={access}"),
            "demo-client",
            "demo-secret",
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(e.orders(access).await, 401);
}

/// Finding 7: RFC 7009 never answers "revoked" while revoking nothing, and never panics.
#[tokio::test]
async fn rfc7009_is_honest_about_what_it_revoked() {
    let e = env().await;
    let key = testing::key("k1", Algorithm::ES256);
    let now = e.f.validator.clock().unix_now();
    // A valid token with no jti and no family: cannot be revoked alone.
    let no_jti = testing::sign(
        &key,
        &json!({"iss": ISS, "aud": AUD, "sub": "x", "iat": now, "exp": now + 600}),
    );
    let (s, body) = e
        .post("/revoke", FORM, format!("token={no_jti}"), true)
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("unsupported_token_type"))
    );
    // A wrong hint does not stop the revocation of an access token.
    let token = e.client_token().await;
    let (s, _) = e
        .post(
            "/revoke",
            FORM,
            format!("token={token}&token_type_hint=refresh_token"),
            true,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(e.orders(&token).await, 401);
    // A huge exp: no panic, revoked.
    let huge = testing::sign(
        &key,
        &json!({"iss": ISS, "aud": AUD, "sub": "x", "jti": "huge", "exp": u64::MAX}),
    );
    assert_eq!(e.orders(&huge).await, 200);
    let (s, _) = e.post("/revoke", FORM, format!("token={huge}"), true).await;
    assert_eq!(s, 200);
    assert_eq!(e.orders(&huge).await, 401);
    // The audit trail says what each call did.
    let details: Vec<String> =
        e.f.audit_events()
            .into_iter()
            .filter_map(|ev| ev.detail)
            .filter(|d| d.starts_with("revoke token"))
            .collect();
    assert!(
        details.iter().any(|d| d.ends_with("revoked by jti")),
        "{details:?}"
    );
    assert!(
        !details.iter().any(|d| d.contains(&token)),
        "raw token in audit"
    );
}

/// Finding 19 and the reshape's test: introspection answers for refresh tokens, and
/// operator reads of a revoked token raise no alert and count no API validation.
#[tokio::test]
async fn operator_reads_are_silent_and_refresh_tokens_introspect() {
    let e = env().await;
    let pair = e
        .mint(json!({"subject": "u", "scope": "orders:read"}))
        .await;
    let rt = pair["refresh_token"].as_str().unwrap();
    let (s, body) = e
        .post("/introspect", FORM, format!("token={rt}"), true)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            body["active"].as_bool(),
            body["token_type"].as_str(),
            body["sub"].as_str()
        ),
        (Some(true), Some("refresh_token"), Some("u"))
    );
    let access = pair["access_token"].as_str().unwrap();
    let (s, _) = e
        .post("/revoke", FORM, format!("token={access}"), true)
        .await;
    assert_eq!(s, 200);
    let _ = e.f.audit_events();
    for _ in 0..3 {
        let (_, body) = e
            .post("/introspect", FORM, format!("token={access}"), true)
            .await;
        assert_eq!(body, json!({"active": false}));
        let (s, _) = e
            .post("/revoke", FORM, format!("token={access}"), true)
            .await;
        assert_eq!(s, 200);
    }
    let events = e.f.audit_events();
    assert!(
        events.iter().all(|ev| ev.action != AuditAction::Alert
            && ev.action != AuditAction::ValidationFailed),
        "{events:?}"
    );
    let lifecycle = e.f.monitor.tracker();
    let rejected = lifecycle.count(
        tokenlife_core::observe::lifecycle::TokenKind::Access,
        Some(tokenlife_core::observe::lifecycle::TokenState::Active),
        tokenlife_core::observe::lifecycle::TokenState::Revoked,
    );
    // One revocation was recorded (the operator's), none by the reads.
    assert_eq!(rejected, 1);
}

/// Finding 14: failed credentials are audited, counted and throttled; bodies are not
/// read before authentication; an empty admin key is a configuration error.
#[tokio::test]
async fn failed_authentication_is_audited_and_throttled() {
    let f = Fixture::new();
    assert!(
        AdminState::builder(f.validator.clone())
            .admin_key("")
            .build()
            .is_err()
    );
    assert!(
        AdminState::builder(f.validator.clone())
            .client("c", "", None)
            .build()
            .is_err()
    );
    let state = AdminState::builder(f.validator.clone())
        .issuer(f.issuer.clone())
        .admin_key(ADMIN_KEY)
        .client("demo-client", "demo-secret", None)
        .auth_throttle(3, std::time::Duration::from_secs(60))
        .max_body(1024)
        .build()
        .unwrap();
    let http = Client::new(state);
    // Unauthenticated, oversized: 401 (authentication first), never 413.
    let res = http
        .post("/keysets")
        .bearer_auth("wrong")
        .body("x".repeat(100_000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    for _ in 0..2 {
        let res = http
            .post("/keysets/rollback")
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    // The fourth attempt, even with the right key, waits for the window to end.
    let res = http
        .post("/keysets/rollback")
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(
        res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            <= 60
    );
    // Security review 3, MEDIUM 6: the lockout is of that identity from that address. A
    // client sharing the address (a proxy) keeps its valid credential.
    let res = http
        .post("/token")
        .basic_auth("demo-client", Some("demo-secret"))
        .header("content-type", FORM)
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "a valid client is not refused for others' failures"
    );
    // Client-secret guesses on /token are throttled per client id (the form's id too).
    for expect in [401, 401, 401, 429] {
        let res = http
            .post("/token")
            .header("content-type", FORM)
            .body("grant_type=client_credentials&client_id=demo-client&client_secret=guess")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expect);
    }
    let res = http
        .post("/token")
        .basic_auth("demo-client", Some("demo-secret"))
        .header("content-type", FORM)
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "that identity from that address waits");
    // After the window, the right key works again.
    f.clock.advance(std::time::Duration::from_secs(61));
    let res = http
        .post("/keysets/rollback")
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let failures = f
        .audit_events()
        .into_iter()
        .filter(|ev| ev.reason == Some("admin_auth"))
        .count();
    assert_eq!(failures, 3);
}

impl Env {
    async fn rollout_status(&self) -> Value {
        let res = self
            .http
            .get("/keysets/rollout")
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        serde_json::from_str(&res.text().await.unwrap()).unwrap()
    }

    /// Sends a request that must be refused with `status` and `error`, and checks that
    /// the store and the rollout status are exactly as before.
    async fn refused(&self, path: &str, body: &str, status: u16, error: &str) {
        let before = (self.rollout_status().await, self.f.store.generation());
        let (s, resp) = self.post(path, "application/json", body, true).await;
        assert_eq!(
            (s, resp["error"].as_str()),
            (status, Some(error)),
            "{path}: {resp}"
        );
        assert!(
            resp["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{path}: a clear description"
        );
        let after = (self.rollout_status().await, self.f.store.generation());
        assert_eq!(before, after, "{path} changed the store");
    }
}

#[tokio::test]
async fn rollout_operations_and_their_bad_input_through_the_admin_api() {
    let e = env().await;
    let token = e.client_token().await;
    let green = jwks_of("green", Algorithm::ES256);
    let status = e.rollout_status().await;
    assert_eq!(status["rollout"], Value::Null);
    assert_eq!(status["retirement"]["policy"], "reject");

    // Bad stage requests: share out of range, not a number, shadow with a share, an unknown
    // mode, a candidate with private key material.
    for (path, error) in [
        ("/keysets/stage?share=150", "invalid_share"),
        ("/keysets/stage?share=-1", "invalid_share"),
        ("/keysets/stage?share=ten", "invalid_request"),
        ("/keysets/stage?mode=shadow&share=5", "invalid_request"),
        ("/keysets/stage?mode=blue-green", "invalid_request"),
    ] {
        e.refused(path, &green, 400, error).await;
    }
    let mut private: Value = serde_json::from_str(&green).unwrap();
    private["keys"][0]["d"] = json!("c2VjcmV0");
    e.refused(
        "/keysets/stage?share=10",
        &private.to_string(),
        400,
        "private_key_material",
    )
    .await;
    // Nothing staged yet: share, abort and promote have nothing to act on.
    e.refused("/keysets/share?share=10", "", 409, "conflict")
        .await;
    e.refused("/keysets/abort", "", 409, "conflict").await;
    e.refused("/keysets/promote?version=99", "", 404, "unknown_version")
        .await;

    // A 10 % canary, labelled.
    let (s, resp) = e
        .post(
            "/keysets/stage?share=10&label=green",
            "application/json",
            green.clone(),
            true,
        )
        .await;
    assert_eq!((s, &resp["mode"]), (201, &json!("canary")), "{resp}");
    let staged = resp["version"].as_u64().unwrap();
    let status = e.rollout_status().await;
    assert_eq!(status["rollout"]["share"], 10.0);
    assert_eq!(status["rollout"]["label"], "green");
    assert_eq!(status["rollout"]["kids"], json!(["green"]));
    // A second rollout while this one runs, bad shares.
    e.refused(
        "/keysets/stage?share=5",
        &jwks_of("teal", Algorithm::ES256),
        409,
        "rollout_in_progress",
    )
    .await;
    e.refused("/keysets/share?share=100.5", "", 400, "invalid_share")
        .await;
    e.refused("/keysets/share", "", 400, "invalid_request")
        .await;
    e.refused("/keysets/share?share=5&extra=1", "", 400, "invalid_request")
        .await;
    // Widen.
    let (s, resp) = e
        .post("/keysets/share?share=50", "application/json", "", true)
        .await;
    assert_eq!((s, &resp["share"]), (200, &json!(50.0)), "{resp}");
    let widened = resp["version"].as_u64().unwrap();
    assert!(widened > staged);

    // The guard's step (as the rollout guard takes it): quarantined, and then neither
    // promote nor rollback brings it back until it is released.
    assert!(e.f.store.rollback_from(widened, 1).unwrap());
    e.refused(
        &format!("/keysets/promote?version={widened}"),
        "",
        409,
        "quarantined",
    )
    .await;
    e.refused(
        &format!("/keysets/rollback/{widened}"),
        "",
        409,
        "quarantined",
    )
    .await;
    assert_eq!(e.rollout_status().await["quarantined"], json!([widened]));
    e.refused("/keysets/release/abc", "", 400, "invalid_request")
        .await;
    e.refused("/keysets/release/1", "", 404, "unknown_version")
        .await;
    let (s, resp) = e
        .post(
            &format!("/keysets/release/{widened}"),
            "application/json",
            "",
            true,
        )
        .await;
    assert_eq!((s, &resp["released"]), (200, &json!(widened)));
    // Promote that very version's candidate: the public candidate keeps the signing key.
    let (s, resp) = e
        .post(
            &format!("/keysets/promote?version={widened}"),
            "application/json",
            "",
            true,
        )
        .await;
    assert_eq!(s, 200, "{resp}");
    let status = e.rollout_status().await;
    assert_eq!(status["rollout"], Value::Null);
    assert_eq!(status["label"], "green");
    assert_eq!(status["signing_kid"], "k1");
    assert_eq!(
        e.orders(&token).await,
        200,
        "tokens of the kept signing key still pass"
    );
    let fresh = e.client_token().await;
    assert_eq!(e.orders(&fresh).await, 200, "the issuer still signs");

    // A shadow candidate: promote waits for a clean sample; abort drops it.
    let (s, resp) = e
        .post(
            "/keysets/stage?mode=shadow",
            "application/json",
            jwks_of("teal", Algorithm::ES256),
            true,
        )
        .await;
    assert_eq!((s, &resp["mode"]), (201, &json!("shadow")));
    assert_eq!(e.orders(&token).await, 200, "a shadow never answers");
    let status = e.rollout_status().await;
    assert_eq!(
        status["rollout"]["shadow"],
        json!({"sample": 1, "regressions": 1})
    );
    e.refused(
        "/keysets/promote?min_shadow_sample=1",
        "",
        409,
        "shadow_regressions",
    )
    .await;
    e.refused("/keysets/share?share=5", "", 409, "conflict")
        .await;
    let (s, _) = e.post("/keysets/abort", "application/json", "", true).await;
    assert_eq!(s, 200);
    assert_eq!(e.rollout_status().await["rollout"], Value::Null);

    let actions: Vec<AuditAction> = e.f.audit_events().iter().map(|ev| ev.action).collect();
    for a in [
        AuditAction::KeysetStaged,
        AuditAction::KeysetShare,
        AuditAction::KeysetReleased,
        AuditAction::KeysetPromoted,
        AuditAction::KeysetAborted,
    ] {
        assert!(actions.contains(&a), "{a:?} audited");
    }
}

/// An audit sink that waits while the test holds its gate (a stalled stdout consumer).
struct Stalled(std::sync::Arc<std::sync::Mutex<()>>);

impl tokenlife_core::observe::audit::AuditSink for Stalled {
    fn write(&mut self, _: &tokenlife_core::observe::audit::AuditEvent) {
        drop(self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Security review 3, MEDIUM 8: with the audit consumer stalled, no request thread waits
/// on audit I/O — 2,000 introspections from a resource server all answer (they are
/// traffic, not control events) — and once the control lane is full an admin action is
/// refused with 503 and changes nothing, then works again when the sink moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The guard is the stalled sink's gate, held across the requests on purpose; only the
// audit thread waits on it.
#[allow(clippy::await_holding_lock)]
async fn a_stalled_audit_sink_never_blocks_requests_and_admin_actions_fail_visibly() {
    use tokenlife_core::observe::audit::{AuditEvent, Auditor};
    use tokenlife_core::{KeysetStore, Monitor, Validator};
    let gate = std::sync::Arc::new(std::sync::Mutex::new(()));
    let held = gate.lock().unwrap();
    let monitor = Monitor::builder()
        .auditor(Auditor::builder().sink(Stalled(gate.clone())).build())
        .build();
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .monitor(monitor.clone())
        .build()
        .unwrap();
    let state = AdminState::builder(validator.clone())
        .admin_key(ADMIN_KEY)
        .resource_server("orders-api", "orders-api-secret-0123456789")
        .build()
        .unwrap();
    let http = Client::new(state);
    for i in 0..2_000 {
        let send = http
            .post("/introspect")
            .basic_auth("orders-api", Some("orders-api-secret-0123456789"))
            .header("content-type", FORM)
            .body(format!("token=junk-{i}"))
            .send();
        let res = tokio::time::timeout(std::time::Duration::from_secs(5), send)
            .await
            .unwrap_or_else(|_| panic!("introspection #{i} did not answer"))
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    // Fill the control lane (the sink still stalled): emitting never blocks.
    let auditor = monitor.auditor().unwrap();
    for i in 0..Auditor::CONTROL_QUEUE as u64 {
        auditor.emit(AuditEvent::new(AuditAction::KeysetRollback, i));
    }
    assert_eq!(admin_revoke_jti(&http, "while-stalled").await, 503);
    assert!(!validator.revocations().is_jti_revoked("while-stalled"));
    let before = store.current().version();
    let res = http
        .post("/keysets/rollback")
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(store.current().version(), before);
    // The sink moves: admin actions work again.
    drop(held);
    auditor.flush();
    assert_eq!(admin_revoke_jti(&http, "after").await, 200);
    assert!(validator.revocations().is_jti_revoked("after"));
}

/// Security review 3, MEDIUM 9: an OAuth client cannot fill the revocation list by
/// minting and revoking its own tokens. Each client has a quota per window (429
/// `slow_down` past it), and clients never take the last tenth of the list, which stays
/// for admin revocations (and refresh-token reuse and the fleet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_client_cannot_fill_the_revocation_list() {
    use tokenlife_core::{Issuer, KeysetStore, ManualClock, RevocationList, Validator};
    let clock = ManualClock::starting_now();
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let list = RevocationList::builder()
        .clock(clock.clone())
        .capacity(20)
        .build();
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .revocations(list.clone())
        .build()
        .unwrap();
    let issuer = Issuer::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .revocations(list.clone())
        .build()
        .unwrap();
    let state = AdminState::builder(validator)
        .issuer(issuer)
        .admin_key(ADMIN_KEY)
        .client("demo-client", "demo-secret", Some("orders:read"))
        .client_revocation_quota(5, std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let http = Client::new(state);
    let post = |path: &'static str, body: String| {
        http.post(path)
            .header("content-type", FORM)
            .basic_auth("demo-client", Some("demo-secret"))
            .body(body)
    };
    let mint_and_revoke = || async {
        let res = post("/token", "grant_type=client_credentials".into())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        let token = body["access_token"].as_str().unwrap().to_owned();
        post("/revoke", format!("token={token}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..5 {
        assert_eq!(mint_and_revoke().await, 200);
    }
    assert_eq!(list.len(), 5);
    assert_eq!(mint_and_revoke().await, 429, "the client's quota");
    assert_eq!(list.len(), 5, "nothing added past the quota");
    // The admin is not held to it.
    for i in 0..13 {
        assert_eq!(admin_revoke_jti(&http, format!("admin-{i}")).await, 200);
    }
    assert_eq!(list.len(), 18);
    // A new window: the quota is back, but the last tenth of the list is not the
    // clients' to take.
    clock.advance(std::time::Duration::from_secs(3601));
    assert_eq!(mint_and_revoke().await, 503);
    assert_eq!(list.len(), 18);
    assert_eq!(
        admin_revoke_jti(&http, "admin-last").await,
        200,
        "the admin's headroom"
    );
}

/// Security review 3, earlier finding 3: a jti revocation without `until` lasts at least
/// as long as the issuer's access tokens live, not a fixed day.
#[tokio::test]
async fn a_jti_revocation_outlives_the_issuers_access_tokens_by_default() {
    use tokenlife_core::{Issuer, KeysetStore, ManualClock, TokenRequest, Validator};
    let clock = ManualClock::starting_now();
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap();
    let issuer = Issuer::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .access_ttl(std::time::Duration::from_secs(3 * 86_400))
        .revocations(validator.revocations().clone())
        .build()
        .unwrap();
    let pair = issuer.issue(TokenRequest::subject("u")).unwrap();
    let jti = validator
        .validate(&pair.access_token)
        .unwrap()
        .claims()
        .jti
        .clone()
        .unwrap();
    let state = AdminState::builder(validator.clone())
        .issuer(issuer)
        .admin_key(ADMIN_KEY)
        .build()
        .unwrap();
    let res = Client::new(state)
        .post("/revocations/jti")
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(json!({"jti": jti}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    let now = tokenlife_core::Clock::unix_now(&clock);
    assert!(
        body["until"].as_u64().unwrap() >= now + 3 * 86_400,
        "{body}"
    );
    // Two days on (past the old one-day default), the token is still refused.
    clock.advance(std::time::Duration::from_secs(2 * 86_400));
    validator.revocations().run_pending_tasks();
    assert!(validator.validate(&pair.access_token).is_err());
}

/// `POST /revocations/jti` as the admin (JSON `{"jti"}`); the status.
async fn admin_revoke_jti(http: &Client, jti: impl AsRef<str>) -> u16 {
    http.post("/revocations/jti")
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(json!({"jti": jti.as_ref()}).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A body over the limit, from the admin: 413 `payload_too_large`, nothing published;
/// a path the table does not have is 404, a method its path does not take 405 with
/// `Allow` (what the adapters' routers answer).
#[tokio::test]
async fn an_oversized_body_a_wrong_method_and_an_unknown_path() {
    let e = env().await;
    let big = format!(r#"{{"keys":[], "pad": "{}"}}"#, "x".repeat(10_000));
    let (s, body) = e.post("/keysets", "application/json", big, true).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert_eq!(e.version(), 1);
    let res = e
        .http
        .get("/revoke")
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    let res = e
        .http
        .get("/keysets/rollback/")
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
