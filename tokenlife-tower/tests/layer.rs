//! The layer against a real server and real client, and through `oneshot`.

mod common;

use std::convert::Infallible;

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokenlife_core::{Algorithm, testing};
use tokenlife_tower::{Claims, Token, TokenLifeLayer, TokenSource};
use tower::{Service, ServiceExt};

#[derive(Deserialize)]
struct MyClaims {
    sub: String,
    scope: String,
}

async fn orders(Claims(c): Claims<MyClaims>) -> String {
    format!("hello {} ({})", c.sub, c.scope)
}

async fn whoami(token: Option<Token>) -> String {
    match token {
        Some(Token(v)) => format!("sub={}", v.claims().sub.as_deref().unwrap_or("")),
        None => "anonymous".into(),
    }
}

fn app(f: &Fixture) -> Router {
    Router::new()
        .route("/orders", get(orders))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/orders/write",
            get(|| async { "written" }).route_layer(
                TokenLifeLayer::new(f.validator.clone()).require_scope("orders:write"),
            ),
        )
        .layer(TokenLifeLayer::new(f.validator.clone()).skip_path("/healthz"))
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (parts.status, parts.headers, body)
}

fn get_with(path: &str, auth: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    b.body(Body::empty()).unwrap()
}

#[test]
fn the_error_type_stays_infallible() {
    fn infallible<S: Service<Request<Body>, Error = Infallible>>(_: &S) {}
    let f = Fixture::new();
    let svc = TokenLifeLayer::new(f.validator.clone());
    let routed: Router = Router::new()
        .route("/", get(|| async { "" }))
        .layer(svc.clone());
    infallible(&routed.into_service::<Body>());
    let bare = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(http::Response::new(Body::empty()))
    });
    infallible(&tower_layer::Layer::layer(&svc, bare));
}

#[tokio::test]
async fn rfc6750_responses_through_oneshot() {
    let f = Fixture::new();
    let app = app(&f);
    let good = f.token("orders:read");

    let (s, h, body) = call(&app, get_with("/orders", Some(&format!("Bearer {good}")))).await;
    assert_eq!(
        (s, body.as_str()),
        (StatusCode::OK, "hello user-42 (orders:read)")
    );
    assert!(h.get(header::WWW_AUTHENTICATE).is_none());

    let (s, h, _) = call(&app, get_with("/orders", None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h[header::WWW_AUTHENTICATE], r#"Bearer realm="api""#);

    let (s, h, body) = call(&app, get_with("/orders", Some("Bearer not.a.token"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h[header::WWW_AUTHENTICATE],
        r#"Bearer realm="api", error="invalid_token", error_description="malformed token""#
    );
    assert!(body.is_empty());

    // Malformed header: 400 invalid_request. Another scheme: not ours, so "no token".
    let (s, h, _) = call(&app, get_with("/orders", Some("Bearer"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        h[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_request""#)
    );
    let (s, _, _) = call(&app, get_with("/orders", Some("Bearer a b"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, h, _) = call(&app, get_with("/orders", Some("Basic dXNlcjpwYXNz"))).await;
    assert_eq!(
        (s, h[header::WWW_AUTHENTICATE].to_str().unwrap()),
        (StatusCode::UNAUTHORIZED, r#"Bearer realm="api""#)
    );
    // Scheme is case-insensitive.
    let (s, ..) = call(&app, get_with("/orders", Some(&format!("bearer {good}")))).await;
    assert_eq!(s, StatusCode::OK);

    // Scopes per route: 403 insufficient_scope, naming the scope.
    let (s, h, _) = call(
        &app,
        get_with("/orders/write", Some(&format!("Bearer {good}"))),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        h[header::WWW_AUTHENTICATE],
        r#"Bearer realm="api", error="insufficient_scope", error_description="insufficient scope", scope="orders:write""#
    );
    let writer = f.token("orders:read orders:write");
    let (s, _, body) = call(
        &app,
        get_with("/orders/write", Some(&format!("Bearer {writer}"))),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "written"));

    // Skip paths.
    let (s, _, body) = call(&app, get_with("/healthz", None)).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn expired_foreign_and_revoked_tokens() {
    let f = Fixture::new();
    let app = app(&f);
    let now = f.validator.clock().unix_now();
    let expired = testing::sign(
        &testing::key("k1", Algorithm::ES256),
        &serde_json::json!({"iss": ISS, "aud": AUD, "sub": "x", "scope": "s", "exp": now - 3600}),
    );
    let (s, h, body) = call(
        &app,
        get_with("/orders", Some(&format!("Bearer {expired}"))),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        h[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains(r#"error_description="token expired""#)
    );
    assert!(!body.contains(&expired));
    let foreign = testing::sign(
        &testing::key("k1", Algorithm::HS256),
        &serde_json::json!({"iss": ISS, "aud": AUD, "sub": "x", "scope": "s", "exp": now + 3600}),
    );
    let (s, h, _) = call(
        &app,
        get_with("/orders", Some(&format!("Bearer {foreign}"))),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        h[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("algorithm does not match")
    );

    let good = f.token("orders:read");
    let v = f.validator.validate(&good).unwrap();
    let until = std::time::SystemTime::now() + std::time::Duration::from_secs(900);
    f.validator
        .revocations()
        .revoke_jti(v.claims().jti.as_deref().unwrap(), until)
        .unwrap();
    let (s, h, _) = call(&app, get_with("/orders", Some(&format!("Bearer {good}")))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        h[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains(r#"error_description="token revoked""#)
    );
}

#[tokio::test]
async fn optional_auth_cookie_header_and_custom_sources() {
    let f = Fixture::new();
    let good = f.token("orders:read");
    let app = Router::new().route("/me", get(whoami)).layer(
        TokenLifeLayer::new(f.validator.clone())
            .optional()
            .cookie("session")
            .sources([
                TokenSource::Bearer,
                TokenSource::Cookie("session".into()),
                TokenSource::Header(http::HeaderName::from_static("x-token")),
                TokenSource::Custom(std::sync::Arc::new(|h: &http::HeaderMap| {
                    h.get("x-custom")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("tok:"))
                })),
            ]),
    );
    let (s, _, body) = call(&app, get_with("/me", None)).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "anonymous"));
    let (s, ..) = call(&app, get_with("/me", Some("Bearer junk"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a bad token is still rejected");
    for (name, value) in [
        ("cookie", format!("theme=dark; session={good}")),
        ("x-token", good.clone()),
        ("x-custom", format!("tok:{good}")),
    ] {
        let req = Request::get("/me")
            .header(name, value)
            .body(Body::empty())
            .unwrap();
        let (s, _, body) = call(&app, req).await;
        assert_eq!(
            (s, body.as_str()),
            (StatusCode::OK, "sub=user-42"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn custom_renderer_keeps_the_challenge() {
    let f = Fixture::new();
    let app = Router::new().route("/", get(|| async { "" })).layer(TokenLifeLayer::new(f.validator.clone()).realm("orders").render_with(
        |r| {
            let body = serde_json::json!({"type": "about:blank", "status": r.status, "title": r.description});
            let mut res = http::Response::new(Bytes::from(body.to_string()));
            *res.status_mut() = StatusCode::from_u16(r.status).unwrap();
            res.headers_mut().insert(header::CONTENT_TYPE, "application/problem+json".parse().unwrap());
            res
        },
    ));
    let (s, h, body) = call(&app, get_with("/", Some("Bearer x.y.z"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h[header::CONTENT_TYPE], "application/problem+json");
    assert!(
        h[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with(r#"Bearer realm="orders", error="invalid_token""#)
    );
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 401);
}

#[tokio::test]
async fn extractors_without_the_layer_reject_with_a_challenge() {
    let app = Router::new()
        .route(
            "/c",
            get(|Claims(c): Claims<MyClaims>| async move { c.sub }),
        )
        .route("/t", get(|Token(_): Token| async { "" }));
    for path in ["/c", "/t"] {
        let (s, h, _) = call(&app, get_with(path, None)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(h.contains_key(header::WWW_AUTHENTICATE));
    }
    // Claims that do not fit the type: 401 invalid_token.
    let f = Fixture::new();
    #[derive(Deserialize)]
    struct Needs {
        #[allow(dead_code)]
        tenant: String,
    }
    let app = Router::new()
        .route("/n", get(|Claims(_): Claims<Needs>| async { "" }))
        .layer(TokenLifeLayer::new(f.validator.clone()));
    let (s, h, _) = call(
        &app,
        get_with("/n", Some(&format!("Bearer {}", f.token("s")))),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        h[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

#[tokio::test]
async fn over_a_real_server_with_a_real_client() {
    let f = Fixture::new();
    let json = get(|Token(v): Token| async move { Json(v.claims().clone()) })
        .route_layer(TokenLifeLayer::new(f.validator.clone()));
    let url = serve(app(&f).route("/json", json)).await;
    let client = reqwest::Client::new();
    let good = f.token("orders:read");

    let res = client
        .get(format!("{url}/orders"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello user-42 (orders:read)");

    let res = client.get(format!("{url}/orders")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api""#);

    let res = client
        .get(format!("{url}/orders"))
        .bearer_auth("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let res = client
        .get(format!("{url}/json"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    let claims: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(claims["sub"], "user-42");

    // An oversized token: refused before decoding.
    let huge = "a".repeat(9000);
    let res = client
        .get(format!("{url}/orders"))
        .bearer_auth(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("token too large")
    );

    // The failures reached the audit trail with the client address and no token.
    let events = f.audit_events();
    let failed: Vec<_> = events.iter().filter(|e| e.outcome == "failure").collect();
    assert!(
        failed
            .iter()
            .any(|e| e.address.as_deref() == Some("127.0.0.1"))
    );
    let all: String = events.iter().map(|e| e.to_json()).collect();
    assert!(!all.contains(&good[good.len() - 20..]));
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TokenLifeLayer>();
    assert_send_sync::<tokenlife_tower::TokenLifeService<Router>>();
    assert_send_sync::<tokenlife_tower::Rejection>();
    assert_send_sync::<tokenlife_tower::admin::AdminState>();
    assert_send_sync::<Claims<MyClaims>>();
    assert_send_sync::<Token>();
}

/// Two Authorization headers (a second credential smuggled past a proxy that checks the
/// first): refused as a bad request, whichever is valid.
#[tokio::test]
async fn two_authorization_headers_are_a_bad_request() {
    let f = Fixture::new();
    let app = app(&f);
    let good = format!("Bearer {}", f.token("orders:read"));
    for pair in [[good.as_str(), "Bearer x"], ["Bearer x", good.as_str()]] {
        let req = Request::get("/orders")
            .header(header::AUTHORIZATION, pair[0])
            .header(header::AUTHORIZATION, pair[1])
            .body(Body::empty())
            .unwrap();
        let (status, headers, _) = call(&app, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("invalid_request")
        );
    }
}

/// `skip_prefix` matches whole path segments.
#[tokio::test]
async fn skip_prefix_does_not_exempt_lookalike_paths() {
    let f = Fixture::new();
    let app = Router::new()
        .route("/public/docs", get(|| async { "docs" }))
        .route("/publicity", get(|| async { "secret plans" }))
        .layer(TokenLifeLayer::new(f.validator.clone()).skip_prefix("/public"));
    assert_eq!(
        call(&app, get_with("/public/docs", None)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, get_with("/publicity", None)).await.0,
        StatusCode::UNAUTHORIZED
    );
}
