//! Peer gaps, item 9, actix half: the extractors' rejections go through an
//! `ExtractorConfig` in the app data when there is one (actix-web's idiom, as
//! `JsonConfig::error_handler`), and keep the default 401 with the middleware's realm when
//! there is none. The app runs through actix-web's own test service.

use actix_web::error::InternalError;
use actix_web::{App, HttpResponse, test, web};
use tokenlife_actix::{Claims, ExtractorConfig, MaybeClaims, Token, TokenLife};
use tokenlife_core::testing::Fixture;

#[derive(serde::Deserialize)]
struct NeedsLevel {
    #[allow(dead_code)]
    level: u32,
}

async fn whoami(t: Token) -> HttpResponse {
    HttpResponse::Ok().body(t.0.claims().sub.clone().unwrap_or_default())
}

async fn level(_: Claims<NeedsLevel>) -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn maybe_level(c: MaybeClaims<NeedsLevel>) -> HttpResponse {
    HttpResponse::Ok().body(if c.0.is_some() { "some" } else { "none" })
}

fn config() -> ExtractorConfig {
    ExtractorConfig::default().error_handler(|rejection, _req| {
        let body = HttpResponse::Forbidden()
            .json(serde_json::json!({"error": "custom", "why": rejection.to_string()}));
        InternalError::from_response(rejection, body).into()
    })
}

#[actix_web::test]
async fn extractor_rejections_go_through_the_configured_handler() {
    let f = Fixture::new();
    let token = f.token("orders:read");
    let app = test::init_service(
        App::new()
            .app_data(config())
            // No middleware: the extractor itself refuses.
            .route("/bare", web::get().to(whoami))
            .service(
                web::scope("/api")
                    .wrap(TokenLife::new(f.validator.clone()).realm("orders"))
                    .route("/level", web::get().to(level))
                    .route("/maybe", web::get().to(maybe_level))
                    .route("/whoami", web::get().to(whoami)),
            ),
    )
    .await;
    let call = |path: &str, auth: bool| {
        let mut req = test::TestRequest::get().uri(path);
        if auth {
            req = req.insert_header(("authorization", format!("Bearer {token}")));
        }
        req.to_request()
    };
    // Missing (no middleware) and claims that do not fit: the handler's 403 and body.
    for (path, auth, why) in [
        ("/bare", false, "no verified bearer token"),
        ("/api/level", true, "token claims do not fit"),
        ("/api/maybe", true, "token claims do not fit"),
    ] {
        let res = test::call_service(&app, call(path, auth)).await;
        assert_eq!(res.status(), 403, "{path}");
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(
            body,
            serde_json::json!({"error": "custom", "why": why}),
            "{path}"
        );
    }
    // What passes is untouched.
    let res = test::call_service(&app, call("/api/whoami", true)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(test::read_body(res).await, "user-42");
}

#[actix_web::test]
async fn without_a_config_the_rejection_is_the_default_401_with_the_realm() {
    let f = Fixture::new();
    let token = f.token("orders:read");
    let app = test::init_service(
        App::new().service(
            web::scope("/api")
                .wrap(TokenLife::new(f.validator.clone()).realm("orders"))
                .route("/level", web::get().to(level)),
        ),
    )
    .await;
    let req = test::TestRequest::get()
        .uri("/api/level")
        .insert_header(("authorization", format!("Bearer {token}")))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers().get("www-authenticate").unwrap(),
        r#"Bearer realm="orders", error="invalid_token", error_description="token claims do not fit""#
    );
}
