//! Peer gaps, item 2, on actix-web: a request whose kid the keys lack joins the key
//! refresh its unknown kid wakes and waits for it (bounded), then passes — a provider
//! that starts signing with a new kid costs no failed request; with no refresh coming, a
//! junk kid does not wait. A scripted provider (axum) and the app (actix-web) on
//! 127.0.0.1, a real client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use tokenlife_actix::TokenLife;
use tokenlife_core::keys::remote::RemoteKeys;
use tokenlife_core::{Algorithm, Validator, testing};

const ISS: &str = "https://idp.test";
const AUD: &str = "api://orders";

fn public_jwks(keys: &[(&str, Algorithm)]) -> String {
    testing::public_jwks(keys)
}

fn token(kid: &str, alg: Algorithm) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    testing::token_at(ISS, AUD, kid, alg, now)
}

#[actix_web::test]
async fn a_rotation_costs_no_failed_request_and_junk_does_not_wait() {
    // The provider: its JWKS from a script, counting fetches.
    let jwks = Arc::new(Mutex::new(public_jwks(&[("k1", Algorithm::ES256)])));
    let hits = Arc::new(Mutex::new(0u32));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp = format!("http://{}", listener.local_addr().unwrap());
    let (j, h) = (jwks.clone(), hits.clone());
    let provider = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (j, h) = (j.clone(), h.clone());
            async move {
                *h.lock().unwrap() += 1;
                j.lock().unwrap().clone()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, provider).await.unwrap() });

    let keys = RemoteKeys::jwks(format!("{idp}/jwks"))
        .refresh_bounds(
            Duration::from_secs(3600),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        )
        .build()
        .await
        .unwrap();
    tokio::spawn(keys.clone().refresh_task());
    let validator = Validator::builder(keys.store().clone())
        .issuer(ISS)
        .audience(AUD)
        .also_observer(keys.clone())
        .key_wait(keys.clone())
        .unknown_kid_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}/orders", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new().wrap(TokenLife::new(validator.clone())).route(
            "/orders",
            web::get().to(|| async { HttpResponse::Ok().body("orders") }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    let http = reqwest::Client::new();
    let orders = |t: String| {
        let (http, api) = (http.clone(), api.clone());
        async move {
            http.get(api)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    assert_eq!(orders(token("k1", Algorithm::ES256)).await, 200);
    // The provider rotates and signs with k2 at once: four concurrent first requests.
    *jwks.lock().unwrap() = public_jwks(&[("k1", Algorithm::ES256), ("k2", Algorithm::ES384)]);
    let k2 = token("k2", Algorithm::ES384);
    let calls: Vec<_> = (0..4).map(|_| tokio::spawn(orders(k2.clone()))).collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    assert_eq!(
        *hits.lock().unwrap(),
        2,
        "one fetch woken, the others joined it"
    );
    // A junk kid within the interval: nothing in flight, no wait, 401 (a wait for the
    // 5 s bound would trip this timeout's margin only on a very slow box: the answer
    // itself is what is asserted).
    let junk = tokio::time::timeout(
        Duration::from_secs(4),
        orders(token("junk", Algorithm::ES256)),
    );
    assert_eq!(junk.await.ok(), Some(401));
    assert_eq!(*hits.lock().unwrap(), 2);
}
