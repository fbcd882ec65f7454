//! The admin routes mounted on axum: every route of the core's table answers, behind its
//! authentication; what axum itself adds (405 for a wrong method, the streamed body limit)
//! holds; the routers work through `oneshot` too. The operations' behaviour is tested in
//! core (`tokenlife-core/tests/admin.rs`), through the same table.

mod common;

use axum::body::Body;
use common::*;
use http::{Request, StatusCode};
use serde_json::Value;
use tokenlife_tower::admin::{self, AdminState};
use tower::ServiceExt;

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn wrong_method_and_oversized_body() {
    let f = Fixture::new();
    let state = AdminState::builder(f.validator.clone())
        .admin_key(ADMIN_KEY)
        .max_body(4096)
        .build()
        .unwrap();
    let admin = serve(admin::router(state)).await;
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{admin}/revoke"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let res = http
        .delete(format!("{admin}/keysets"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let big = format!(r#"{{"keys":[], "pad": "{}"}}"#, "x".repeat(10_000));
    let res = http
        .post(format!("{admin}/keysets"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "payload_too_large");
    assert_eq!(f.store.current().version(), 1);
}

#[tokio::test]
async fn the_router_also_works_through_oneshot() {
    let f = Fixture::new();
    let app = admin::router(
        AdminState::builder(f.validator.clone())
            .admin_key(ADMIN_KEY)
            .build()
            .unwrap(),
    );
    let res = app
        .clone()
        .oneshot(
            Request::post("/keysets/rollback")
                .header("authorization", format!("Bearer {ADMIN_KEY}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    // No issuer configured: the token endpoints say so.
    let res = app
        .oneshot(
            Request::post("/token")
                .header("content-type", FORM)
                .body(Body::from("grant_type=client_credentials"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Every route of the core's table answers on the axum routers: a guarded route refuses a
/// caller without credentials with the admin challenge (so it is mounted, behind its
/// authentication), the JWKS is public, `/token` answers JSON.
#[tokio::test]
async fn every_route_of_the_table_is_mounted_and_guarded() {
    use tokenlife_core::admin::routes::{Operation, ROUTES};
    let f = Fixture::new();
    let app = admin::router(
        AdminState::builder(f.validator.clone())
            .admin_key(ADMIN_KEY)
            // Twenty refusals in a row from one address: not a guess to throttle here.
            .auth_throttle(1_000, std::time::Duration::from_secs(60))
            .build()
            .unwrap(),
    );
    for route in ROUTES {
        let path = route.path_with("1");
        let req = Request::builder()
            .method(route.method.clone())
            .uri(&path)
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let at = format!("{} {path}", route.method);
        match route.operation {
            Operation::Jwks | Operation::ConsolePage => assert_eq!(status, StatusCode::OK, "{at}"),
            // The page's files are public; there is no file `1`.
            Operation::ConsoleAsset => assert_eq!(status, StatusCode::NOT_FOUND, "{at}"),
            Operation::Token => {
                serde_json::from_slice::<Value>(&body)
                    .unwrap_or_else(|_| panic!("{at}: {status} without a JSON body"));
            }
            _ => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{at}");
                assert_eq!(
                    headers["www-authenticate"], r#"Bearer realm="admin""#,
                    "{at}"
                );
            }
        }
    }
}
