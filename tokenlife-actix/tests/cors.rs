//! Peer gaps, item 7, actix half: with actix-cors wrapped outside `TokenLife` (in
//! actix-web the `wrap` called last is the outermost) a browser's preflight is answered
//! by CORS and never reaches the guard, and a 401 carries the CORS headers; with the guard
//! outside, `skip_preflight()` lets the preflight through to the CORS middleware inside.
//! Real server, real client.

use actix_cors::Cors;
use actix_web::{App, HttpResponse, HttpServer, web};
use tokenlife_actix::TokenLife;
use tokenlife_core::testing::Fixture;

const ORIGIN: &str = "https://app.example";

fn cors() -> Cors {
    Cors::default()
        .allowed_origin(ORIGIN)
        .allowed_methods(["GET"])
        .allowed_header("authorization")
}

/// Serves on 127.0.0.1: CORS outside the guard, or the guard (skipping preflights or
/// not) outside CORS.
fn serve(f: &Fixture, guard_outside: Option<bool>) -> String {
    let v = f.validator.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        let guard = TokenLife::new(v.clone());
        let orders = web::resource("/orders")
            .route(web::get().to(|| async { HttpResponse::Ok().body("orders") }));
        match guard_outside {
            None => App::new().service(orders.wrap(guard).wrap(cors())),
            Some(skip) => {
                let guard = if skip { guard.skip_preflight() } else { guard };
                App::new().service(orders.wrap(cors()).wrap(guard))
            }
        }
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    format!("http://{addr}/orders")
}

async fn preflight(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn cors_outside_the_guard_answers_preflights_and_labels_the_401() {
    let f = Fixture::new();
    let url = serve(&f, None);
    let res = preflight(&url).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    let http = reqwest::Client::new();
    let res = http
        .get(&url)
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    let res = http
        .get(&url)
        .header("origin", ORIGIN)
        .bearer_auth(f.token("orders:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
}

#[actix_web::test]
async fn a_guard_outside_cors_needs_skip_preflight() {
    let f = Fixture::new();
    assert_eq!(preflight(&serve(&f, Some(false))).await.status(), 401);
    let res = preflight(&serve(&f, Some(true))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
}
