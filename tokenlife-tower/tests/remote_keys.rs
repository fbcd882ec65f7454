//! Peer gaps, item 2, over HTTP: a provider that starts signing with a new kid costs no
//! failed request. A scripted identity provider on 127.0.0.1 (JWKS answered from a
//! script, optionally slow), `RemoteKeys` with its refresh task, and an axum app behind
//! `TokenLifeLayer` on a real server, called by a real client: a request whose kid the
//! keys lack joins the refresh its unknown kid wakes and waits for it (at most the
//! bound), then passes; a request during a cooldown, with no refresh coming, does not
//! wait; a provider slower than the bound gets the request its 401.
#![cfg(feature = "axum")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokenlife_core::keys::remote::RemoteKeys;
use tokenlife_core::{Algorithm, Validator, testing};
use tokenlife_tower::TokenLifeLayer;

const ISS: &str = "https://idp.test";
const AUD: &str = "api://orders";

#[derive(Clone, Default)]
struct Script {
    jwks: Arc<Mutex<String>>,
    delay: Arc<Mutex<Duration>>,
    hits: Arc<Mutex<u32>>,
}

async fn jwks(State(s): State<Script>) -> ([(&'static str, &'static str); 1], String) {
    *s.hits.lock().unwrap() += 1;
    let delay = *s.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let body = s.jwks.lock().unwrap().clone();
    // No ETag: every fetch is a full answer.
    ([("content-type", "application/json")], body)
}

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

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

struct Setup {
    script: Script,
    keys: RemoteKeys,
    api: String,
    http: reqwest::Client,
}

async fn setup(wait: Duration) -> Setup {
    let script = Script::default();
    *script.jwks.lock().unwrap() = public_jwks(&[("k1", Algorithm::ES256)]);
    let idp = serve(
        Router::new()
            .route("/jwks", get(jwks))
            .with_state(script.clone()),
    )
    .await;
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
        .unknown_kid_wait(wait)
        .build()
        .unwrap();
    let api = serve(
        Router::new()
            .route("/orders", get(|| async { "orders" }))
            .layer(TokenLifeLayer::new(validator)),
    )
    .await;
    Setup {
        script,
        keys,
        api,
        http: reqwest::Client::new(),
    }
}

impl Setup {
    async fn orders(&self, token: &str) -> u16 {
        self.http
            .get(format!("{}/orders", self.api))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// The provider rotates to k2 and signs with it at once: eight concurrent first requests
/// with k2 all pass (one refresh, the others join it), and so does everything after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_costs_no_failed_request() {
    let s = setup(Duration::from_secs(5)).await;
    assert_eq!(s.orders(&token("k1", Algorithm::ES256)).await, 200);
    *s.script.jwks.lock().unwrap() =
        public_jwks(&[("k1", Algorithm::ES256), ("k2", Algorithm::ES384)]);
    let k2 = token("k2", Algorithm::ES384);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, k2) = (s.http.clone(), format!("{}/orders", s.api), k2.clone());
            tokio::spawn(async move {
                let res = http.get(url).bearer_auth(k2).send().await.unwrap();
                res.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    assert_eq!(statuses, vec![200; 8]);
    assert_eq!(s.orders(&k2).await, 200);
    // One fetch at build, one woken by k2: the other seven joined it.
    assert_eq!(*s.script.hits.lock().unwrap(), 2);
    assert_eq!(s.keys.status().unknown_kid_refreshes, 1);
}

/// With no refresh coming (this kid's cooldown, the interval), a junk kid does not wait:
/// 401 at once, and the provider is not asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_kids_during_a_cooldown_do_not_wait() {
    let s = setup(Duration::from_secs(30)).await;
    let junk = token("junk", Algorithm::ES256);
    // The first wakes a refresh and waits for it (the provider answers at once): 401.
    assert_eq!(s.orders(&junk).await, 401);
    // Within the interval nothing is in flight: an answer without any wait, far below
    // the 30 s bound (a wait would make this test time out, not pass slowly).
    let answered = tokio::time::timeout(Duration::from_secs(10), s.orders(&junk)).await;
    assert_eq!(answered.ok(), Some(401));
    assert_eq!(*s.script.hits.lock().unwrap(), 2);
}

/// A provider slower than the bound: the request waits at most the bound and gets its
/// 401; the refresh still lands, and the next request passes without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_slower_than_the_bound_gets_the_request_its_401() {
    let s = setup(Duration::from_millis(50)).await;
    *s.script.jwks.lock().unwrap() =
        public_jwks(&[("k1", Algorithm::ES256), ("k2", Algorithm::ES384)]);
    *s.script.delay.lock().unwrap() = Duration::from_millis(1500);
    let k2 = token("k2", Algorithm::ES384);
    assert_eq!(s.orders(&k2).await, 401);
    // The refresh completes in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.keys.status().fetches < 2 || s.keys.store().current().version() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the refresh never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.orders(&k2).await, 200);
}
