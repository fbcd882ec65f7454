//! The tower adapter on the Redis backend: two nodes, each an axum API behind
//! `TokenLifeLayer` and an admin router, their revocation lists and keyset stores shared
//! through a real `redis-server`. What an admin does on node A over HTTP is what a client
//! of node B sees over HTTP. The node setup is a function of the backend, so the same
//! checks run against an in-memory pair (where nothing crosses) for contrast, and the
//! actix adapter's conformance suite can reuse the shape.

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::*;
use tokenlife_core::fleet::{FleetConfig, FleetTasks, RedisFleet};
use tokenlife_core::testing::RedisServer;
use tokenlife_core::{
    Algorithm, Issuer, Keyset, KeysetStore, RevocationList, TokenRequest, Validator, testing,
};
use tokenlife_tower::TokenLifeLayer;
use tokenlife_tower::admin::{self, AdminState};

struct Node {
    api: String,
    admin: String,
    issuer: Issuer,
    _fleet: Option<(RedisFleet, FleetTasks)>,
}

/// One node on `redis` (a fleet node) or on its own (`None`: in-memory).
async fn node(redis: Option<&str>, name: &str) -> Node {
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let (list, fleet) = match redis {
        Some(url) => {
            let fleet = RedisFleet::new(
                FleetConfig::new(url)
                    .node_id(name)
                    .max_backoff(Duration::from_millis(50)),
            )
            .unwrap();
            fleet.share_keysets(&store);
            let list = RevocationList::builder().backend(fleet.backend()).build();
            let tasks = fleet.start(list.clone()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !fleet.status().connected {
                assert!(Instant::now() < deadline, "node {name} never synced");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (list, Some((fleet, tasks)))
        }
        None => (RevocationList::new(), None),
    };
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .revocations(list.clone())
        .build()
        .unwrap();
    let issuer = Issuer::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .revocations(list)
        .build()
        .unwrap();
    let state = AdminState::builder(validator.clone())
        .issuer(issuer.clone())
        .admin_key(ADMIN_KEY)
        .build()
        .unwrap();
    let api = serve(
        Router::new()
            .route("/orders", get(|| async { "orders" }))
            .layer(TokenLifeLayer::new(validator)),
    )
    .await;
    let admin = serve(admin::router(state)).await;
    Node {
        api,
        admin,
        issuer,
        _fleet: fleet,
    }
}

async fn orders(http: &reqwest::Client, n: &Node, token: &str) -> (u16, String) {
    let res = http
        .get(format!("{}/orders", n.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (res.status().as_u16(), challenge)
}

async fn admin_post(http: &reqwest::Client, n: &Node, path: &str, body: &str) -> u16 {
    http.post(format!("{}{path}", n.admin))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The `jti` of a token this test minted (read without verification: the test's own).
fn jti_of(token: &str) -> String {
    tokenlife_core::jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token)
        .unwrap()
        .claims["jti"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Publishes, on `n`'s admin router, a keyset without `n`'s signing key (a bad deploy):
/// tokens signed before it are then unknown-kid.
async fn publish_without_the_signing_key(http: &reqwest::Client, n: &Node) {
    let jwks = Keyset::new([testing::key("k2", Algorithm::ES384)])
        .unwrap()
        .to_public_jwks();
    assert_eq!(
        admin_post(http, n, "/keysets?keep_signing=false", &jwks).await,
        201
    );
}

/// Polls (bounded) until node `n` answers `want` for `token`.
async fn until(http: &reqwest::Client, n: &Node, token: &str, want: u16) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = orders(http, n, token).await;
        if got.0 == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_action_on_node_a_is_what_clients_of_node_b_see() {
    let redis = RedisServer::start();
    let (a, b) = (
        node(Some(&redis.url()), "a").await,
        node(Some(&redis.url()), "b").await,
    );
    let http = reqwest::Client::new();
    let pair = a
        .issuer
        .issue_access(TokenRequest::subject("alice"))
        .unwrap();
    let jti = jti_of(&pair.access_token);
    assert_eq!(orders(&http, &b, &pair.access_token).await.0, 200);

    // Revoke by jti on A's admin router: B answers 401 invalid_token.
    let s = admin_post(
        &http,
        &a,
        "/revocations/jti",
        &format!(r#"{{"jti":"{jti}"}}"#),
    )
    .await;
    assert_eq!(s, 200);
    let (status, challenge) = until(&http, &b, &pair.access_token, 401).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );

    // A publish without the signing key on A (a bad deploy) and a rollback on B.
    let fresh = a
        .issuer
        .issue_access(TokenRequest::subject("bob"))
        .unwrap()
        .access_token;
    publish_without_the_signing_key(&http, &a).await;
    assert_eq!(
        until(&http, &b, &fresh, 401).await.0,
        401,
        "the publish crossed"
    );
    assert_eq!(admin_post(&http, &b, "/keysets/rollback", "").await, 200);
    assert_eq!(
        until(&http, &a, &fresh, 200).await.0,
        200,
        "the rollback crossed"
    );
    assert_eq!(orders(&http, &b, &fresh).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fleet_nothing_crosses() {
    let (a, b) = (node(None, "a").await, node(None, "b").await);
    let http = reqwest::Client::new();
    let t = a
        .issuer
        .issue_access(TokenRequest::subject("alice"))
        .unwrap()
        .access_token;
    let jti = jti_of(&t);
    assert_eq!(
        admin_post(
            &http,
            &a,
            "/revocations/jti",
            &format!(r#"{{"jti":"{jti}"}}"#)
        )
        .await,
        200
    );
    assert_eq!(orders(&http, &a, &t).await.0, 401);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        orders(&http, &b, &t).await.0,
        200,
        "an in-memory node is alone"
    );
}

/// The same adapter behaviour on one node, whichever backend holds its state: a
/// revocation through the admin router is a 401 `invalid_token` at once, a publish that
/// drops the signing key is a 401 for its tokens, a rollback brings them back.
async fn one_node_behaves_the_same(redis: Option<&str>) -> Vec<(u16, bool)> {
    let n = node(redis, "solo").await;
    let http = reqwest::Client::new();
    let mut seen = Vec::new();
    let mut record = |(s, c): (u16, String)| seen.push((s, c.contains("invalid_token")));
    let t = n
        .issuer
        .issue_access(TokenRequest::subject("alice"))
        .unwrap()
        .access_token;
    record(orders(&http, &n, &t).await);
    let body = format!(r#"{{"jti":"{}"}}"#, jti_of(&t));
    assert_eq!(admin_post(&http, &n, "/revocations/jti", &body).await, 200);
    record(orders(&http, &n, &t).await);
    let fresh = n
        .issuer
        .issue_access(TokenRequest::subject("bob"))
        .unwrap()
        .access_token;
    publish_without_the_signing_key(&http, &n).await;
    record(orders(&http, &n, &fresh).await);
    assert_eq!(admin_post(&http, &n, "/keysets/rollback", "").await, 200);
    record(orders(&http, &n, &fresh).await);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_answers_the_same_on_the_in_memory_and_the_redis_backend() {
    let redis = RedisServer::start();
    let memory = one_node_behaves_the_same(None).await;
    let fleet = one_node_behaves_the_same(Some(&redis.url())).await;
    assert_eq!(
        memory,
        [(200, false), (401, true), (401, true), (200, false)]
    );
    assert_eq!(fleet, memory);
}

/// Security review 3, MEDIUM 7: refresh grants on a Redis that stopped answering
/// (`CLIENT PAUSE`) never hold the async workers: the API's `/healthz` answers while they
/// wait, and past `max_concurrent_grants` further grants are answered 503 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_grants_on_a_stalled_redis_never_stall_the_api() {
    use tokenlife_core::fleet::RedisRefreshStore;
    let redis = RedisServer::start();
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let issuer = Issuer::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .refresh_store(
            RedisRefreshStore::new(&redis.url())
                .unwrap()
                .timeout(Duration::from_secs(2)),
        )
        .build()
        .unwrap();
    let refresh: Vec<String> = (0..6)
        .map(|i| {
            issuer
                .issue(TokenRequest::subject(format!("u{i}")).client("c"))
                .unwrap()
                .refresh_token
                .unwrap()
        })
        .collect();
    let state = AdminState::builder(validator.clone())
        .issuer(issuer)
        .client("c", "client-secret", None)
        .max_concurrent_grants(2)
        .build()
        .unwrap();
    let api = serve(
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/orders", get(|| async { "orders" }))
            .layer(TokenLifeLayer::new(validator).skip_path("/healthz")),
    )
    .await;
    let admin = serve(admin::router(state)).await;
    // Redis stops answering for three seconds.
    let paused = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port().to_string(),
            "CLIENT",
            "PAUSE",
            "3000",
            "ALL",
        ])
        .output()
        .expect("redis-cli (installed with redis-server)");
    assert!(paused.status.success());
    let http = reqwest::Client::new();
    // The order answers arrive in: an admitted grant (waiting on Redis) must answer after
    // the API's health check, never before it.
    let order = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let grants: Vec<_> = refresh
        .iter()
        .map(|rt| {
            let req = http
                .post(format!("{admin}/token"))
                .basic_auth("c", Some("client-secret"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("grant_type=refresh_token&refresh_token={rt}"));
            let order = order.clone();
            tokio::spawn(async move {
                let res = req.send().await.unwrap();
                let at = order.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let retry = res
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                (res.status().as_u16(), retry, at)
            })
        })
        .collect();
    // Four refusals mean two grants are in flight, waiting on Redis (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(2);
    while order.load(std::sync::atomic::Ordering::SeqCst) < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let health = http.get(format!("{api}/healthz")).send().await.unwrap();
    let health_at = order.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(health.status(), 200);
    let mut refused = 0;
    for g in grants {
        let (status, retry, at) = g.await.unwrap();
        if status == 503 && retry.as_deref() == Some("1") {
            refused += 1;
        } else {
            assert!(
                at > health_at,
                "a grant waiting on Redis ({status}) answered before the API's health check"
            );
        }
    }
    assert!(refused >= 4, "{refused} grants refused past the bound of 2");
}

/// Peer gaps, item 4, over HTTP across two nodes on one Redis: a client's renewal on node
/// A is answered but the answer is lost; the client retries on node B's token endpoint
/// with the same refresh token and gets a working pair; the pair it holds renews on A;
/// the lost answer's refresh token is refused; another client may not retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_refresh_answer_is_retried_on_another_nodes_token_endpoint() {
    use tokenlife_core::fleet::RedisRefreshStore;
    let redis = RedisServer::start();
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let node = |validator: &Validator| {
        let issuer = Issuer::builder(store.clone())
            .issuer(ISS)
            .audience(AUD)
            .revocations(validator.revocations().clone())
            .refresh_store(RedisRefreshStore::new(&redis.url()).unwrap())
            .build()
            .unwrap();
        let state = AdminState::builder(validator.clone())
            .issuer(issuer.clone())
            .client("c", "client-secret", None)
            .client("other", "other-secret", None)
            .build()
            .unwrap();
        (issuer, state)
    };
    let (issuer, a_state) = node(&validator);
    let (_, b_state) = node(&validator);
    let (a, b) = (
        serve(admin::router(a_state)).await,
        serve(admin::router(b_state)).await,
    );
    let rt = issuer
        .issue(TokenRequest::subject("u").client("c"))
        .unwrap()
        .refresh_token
        .unwrap();
    let http = reqwest::Client::new();
    let grant = |base: &str, rt: &str, who: (&str, &str)| {
        http.post(format!("{base}/token"))
            .basic_auth(who.0, Some(who.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=refresh_token&refresh_token={rt}"))
            .send()
    };
    let client = ("c", "client-secret");
    let body = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let json: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        (status, json)
    };
    let (status, lost) = body(grant(&a, &rt, client).await.unwrap()).await;
    assert_eq!(status, 200);
    let (status, err) = body(grant(&b, &rt, ("other", "other-secret")).await.unwrap()).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, retried) = body(grant(&b, &rt, client).await.unwrap()).await;
    assert_eq!(status, 200, "{retried}");
    assert!(
        validator
            .validate(retried["access_token"].as_str().unwrap())
            .is_ok()
    );
    let (status, next) = body(
        grant(&a, retried["refresh_token"].as_str().unwrap(), client)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{next}");
    let (status, err) = body(
        grant(&b, lost["refresh_token"].as_str().unwrap(), client)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}
