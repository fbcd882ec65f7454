//! The gateway's printed walkthrough, step by step, with a real client against the
//! real servers (ephemeral ports): the axum gateway and the actix-web one alike, and
//! each one's listener limits.

use std::time::Duration;

use examples::{AuditDb, Gateway, GatewayConfig, Secret, ServeLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(limits: ServeLimits) -> GatewayConfig {
    GatewayConfig {
        limits,
        ..GatewayConfig::local(Secret::new("adm"), Secret::new("sec"))
    }
}

/// A token pair for `subject` (scope `orders:read`) from the admin's `POST /tokens`.
async fn mint(http: &reqwest::Client, admin: &str, subject: &str) -> serde_json::Value {
    let res = http
        .post(format!("{admin}/tokens"))
        .bearer_auth("adm")
        .header("content-type", "application/json")
        .body(serde_json::json!({"subject": subject, "scope": "orders:read"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    serde_json::from_str(&res.text().await.unwrap()).unwrap()
}

fn token_from(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

/// Which gateway a test starts.
#[derive(Clone, Copy, Debug)]
enum Framework {
    Axum,
    Actix,
}

async fn start(framework: Framework, config: GatewayConfig) -> Gateway {
    match framework {
        Framework::Axum => examples::start(config).await.unwrap(),
        Framework::Actix => examples::start_actix(config).await.unwrap(),
    }
}

#[tokio::test]
async fn the_printed_walkthrough_works_on_axum() {
    walkthrough(start(Framework::Axum, config(ServeLimits::default())).await).await;
}

#[tokio::test]
async fn the_printed_walkthrough_works_on_actix() {
    walkthrough(start(Framework::Actix, config(ServeLimits::default())).await).await;
}

async fn walkthrough(gw: Gateway) {
    let lines = gw.curl_lines();
    assert!(
        lines.contains(&gw.api_url)
            && lines.contains(&gw.admin_url)
            && lines.contains("-u \"demo-client:$TOKENLIFE_CLIENT_SECRET\"")
            && lines.contains("Bearer $TOKENLIFE_ADMIN_KEY"),
        "{lines}"
    );
    // Security review 3, earlier finding 10: secrets that came from the environment or a
    // file are never printed.
    assert!(
        !lines.contains(":sec") && !lines.contains("Bearer adm\""),
        "{lines}"
    );
    let (api, admin) = (&gw.api_url, &gw.admin_url);
    let http = reqwest::Client::new();
    let get_token = || async {
        let res = http
            .post(format!("{admin}/token"))
            .basic_auth("demo-client", Some("sec"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        token_from(&res.text().await.unwrap())
    };
    let orders = |t: String| {
        let http = http.clone();
        async move {
            http.get(format!("{api}/orders"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
        }
    };

    // 1–2: token, protected route
    let token = get_token().await;
    let res = orders(token.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.text().await.unwrap(),
        "orders for demo-client (scope: orders:read)\n"
    );
    // health check needs no token; the admin-scope route needs orders:write
    assert_eq!(
        http.get(format!("{api}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = http
        .get(format!("{api}/orders/admin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // 3–4: revoke, then 401
    let res = http
        .post(format!("{admin}/revoke"))
        .bearer_auth("adm")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = orders(token).await;
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("token revoked")
    );

    // 5: bad deploy, then rollback. A publish that would leave the issuer without a
    // signing key is refused unless it says so (keep_signing=false: verify-only).
    let token = get_token().await;
    let publish = |query: &'static str| {
        http.post(format!("{admin}/keysets?label=bad-deploy{query}"))
            .bearer_auth("adm")
            .header("content-type", "application/json")
            .body(gw.bad_deploy_jwks.clone())
            .send()
    };
    let res = publish("").await.unwrap();
    assert_eq!(res.status(), 409);
    let res = publish("&keep_signing=false").await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(orders(token.clone()).await.status(), 401);
    let res = http
        .post(format!("{admin}/keysets/rollback"))
        .bearer_auth("adm")
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), r#"{"version":1}"#);
    assert_eq!(orders(token).await.status(), 200);

    // 6: metrics (this test's process may not own the global recorder; the route answers)
    let res = http.get(format!("{admin}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("tokenlife_validations_total{outcome=\"ok\",keyset_version=\"1\",issuer=\"https://gateway.example.com\"}"),
        "{text}"
    );
}

/// Reads until the server closes the connection (or `limit` passes); what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

/// Finding 12: a half-sent request is dropped after the header-read timeout.
#[tokio::test]
async fn a_half_sent_request_is_dropped_after_the_header_timeout() {
    for framework in [Framework::Axum, Framework::Actix] {
        half_sent(framework).await;
    }
}

async fn half_sent(framework: Framework) {
    let gw = start(
        framework,
        config(ServeLimits {
            header_read_timeout: Duration::from_millis(300),
            ..ServeLimits::default()
        }),
    )
    .await;
    for base in [&gw.api_url, &gw.admin_url] {
        let addr = base.trim_start_matches("http://");
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // The server closes it by itself (well before this bound).
        let seen = read_until_closed(&mut slow, Duration::from_secs(20)).await;
        assert!(
            seen.is_some(),
            "{framework:?} {base}: a half-sent request was kept open"
        );
        assert!(!seen.unwrap().contains("200 OK"));
    }
}

/// Finding 12: at most `max_connections` connections are served at once; the next one
/// waits until a slot frees up.
#[tokio::test]
async fn connections_are_capped() {
    for framework in [Framework::Axum, Framework::Actix] {
        capped(framework).await;
    }
}

async fn capped(framework: Framework) {
    let gw = start(
        framework,
        config(ServeLimits {
            max_connections: 2,
            ..ServeLimits::default()
        }),
    )
    .await;
    let addr = gw.api_url.trim_start_matches("http://").to_owned();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    // Two idle connections hold both slots.
    let mut idle1 = TcpStream::connect(&addr).await.unwrap();
    let _idle2 = TcpStream::connect(&addr).await.unwrap();
    idle1.write_all(b"GET").await.unwrap();
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "{framework:?}: a third connection was served beyond the cap"
    );
    drop(idle1);
    let served = read_until_closed(&mut third, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}

/// Finding 13: secrets never show in `Debug`.
#[test]
fn secrets_are_redacted_in_debug() {
    let mut c = config(ServeLimits::default());
    // Security review 3, LOW 17: a Redis password too.
    c.fleet = Some(examples::FleetSettings {
        redis_url: examples::Secret::new("redis://:redis-pw-1@127.0.0.1:6379/"),
        prefix: "{t}".into(),
        node_id: "n".into(),
    });
    let shown = format!("{c:?}");
    assert!(!shown.contains("redis-pw-1"), "{shown}");
    assert!(
        !shown.contains("adm\"") && !shown.contains("sec\""),
        "{shown}"
    );
    assert!(shown.contains("[redacted]"));
}

/// Security review 3, MEDIUM 12: a client that drips a `/token` body (anyone may call it)
/// is answered 408 once the admin body deadline passes, on both gateways — it does not
/// hold its connection for the whole request timeout.
#[tokio::test]
async fn a_dripped_token_body_is_answered_408() {
    for framework in [Framework::Axum, Framework::Actix] {
        let gw = start(framework, config(ServeLimits::default())).await;
        let addr = gw.admin_url.trim_start_matches("http://").to_owned();
        let mut slow = TcpStream::connect(&addr).await.unwrap();
        slow.write_all(
            b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\nConnection: close\r\n\r\ngrant_type",
        )
        .await
        .unwrap();
        // Bounded well past the 3 s body deadline, well short of the 30 s request one.
        let seen = read_until_closed(&mut slow, Duration::from_secs(15)).await;
        let seen = seen.unwrap_or_else(|| panic!("{framework:?}: no answer to a dripped body"));
        assert!(seen.starts_with("HTTP/1.1 408"), "{framework:?}: {seen}");
        assert!(seen.contains("request body not received in time"), "{seen}");
    }
}

/// Security review 3, MEDIUM 12: one address cannot hold every connection slot of
/// either gateway: past its share, its new connections are closed, while another address
/// is still served, and a slot comes back when its connection closes.
#[tokio::test]
async fn one_address_cannot_hold_every_connection_slot() {
    for framework in [Framework::Axum, Framework::Actix] {
        one_address_cannot_hold_every_connection_slot_on(framework).await;
    }
}

async fn one_address_cannot_hold_every_connection_slot_on(framework: Framework) {
    let gw = start(
        framework,
        config(ServeLimits {
            max_connections: 8,
            max_connections_per_address: 2,
            ..ServeLimits::default()
        }),
    )
    .await;
    let addr: std::net::SocketAddr = gw.api_url.trim_start_matches("http://").parse().unwrap();
    let from = |ip: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind((std::net::Ipv4Addr::from(ip), 0).into())
            .unwrap();
        socket.connect(addr).await.unwrap()
    };
    let mut held = vec![from([127, 0, 0, 1]).await, from([127, 0, 0, 1]).await];
    let mut third = from([127, 0, 0, 1]).await;
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let seen = read_until_closed(&mut third, Duration::from_secs(10)).await;
    assert_eq!(
        seen.as_deref(),
        Some(""),
        "{framework:?}: closed without an answer"
    );
    // A held connection closes: its address gets the slot back.
    drop(held.pop());
    let mut again = None;
    for _ in 0..100 {
        let mut next = from([127, 0, 0, 1]).await;
        let _ = next
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        match read_until_closed(&mut next, Duration::from_secs(10)).await {
            Some(s) if s.starts_with("HTTP/1.1 200") => {
                again = Some(s);
                break;
            }
            // The close may not have reached the server yet.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(again.is_some(), "{framework:?}: the slot never came back");
    let mut other = from([127, 0, 0, 2]).await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let served = read_until_closed(&mut other, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        served.starts_with("HTTP/1.1 200"),
        "{framework:?}: {served}"
    );
}

/// The audit store issue, item 7: `--audit-db` sends the gateway's audit trail to
/// PostgreSQL (a database of the test's own on the machine's server, dropped after), and
/// the admin listener answers `GET /audit` from it, on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_writes_its_trail_to_postgres_and_answers_audit_queries() {
    let base = std::env::var("TOKENLIFE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut id = [0u8; 6];
    getrandom_fill(&mut id);
    let db: String = format!(
        "tokenlife_gw_{}",
        id.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let admin_pg = {
        let (b, d) = (base.clone(), db.clone());
        tokio::task::spawn_blocking(move || {
            let mut c = postgres::Client::connect(&b, postgres::NoTls).unwrap();
            c.batch_execute(&format!("CREATE DATABASE {d}")).unwrap();
        })
        .await
        .unwrap();
        let (head, _) = base.rsplit_once('/').unwrap();
        format!("{head}/{db}")
    };
    struct DropDb(String, String);
    impl Drop for DropDb {
        fn drop(&mut self) {
            let (base, db) = (self.0.clone(), self.1.clone());
            let _ = std::thread::spawn(move || {
                if let Ok(mut c) = postgres::Client::connect(&base, postgres::NoTls) {
                    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
                }
            })
            .join();
        }
    }
    let _drop = DropDb(base.clone(), db.clone());
    for framework in [Framework::Axum, Framework::Actix] {
        let mut cfg = config(ServeLimits::default());
        cfg.audit_db = Some(AuditDb::new(Secret::new(admin_pg.clone())));
        cfg.node_id = format!("gw-{framework:?}").to_lowercase();
        let gw = start(framework, cfg).await;
        let http = reqwest::Client::new();
        let res = http
            .get(format!("{}/orders", gw.api_url))
            .bearer_auth("not.a.token")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 3600;
        // The sink writes in batches of at most 100 ms: ask until the row is there.
        let url = format!(
            "{}/audit?action=validation_failed&since={since}",
            gw.admin_url
        );
        let mut rows = serde_json::Value::Null;
        for _ in 0..100 {
            let res = http.get(&url).bearer_auth("adm").send().await.unwrap();
            assert_eq!(res.status(), 200, "{framework:?}");
            let page: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
            rows = page["rows"].clone();
            if rows.as_array().is_some_and(|r| {
                r.iter()
                    .any(|row| row["node"] == format!("gw-{framework:?}").to_lowercase())
            }) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mine: Vec<_> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["node"] == format!("gw-{framework:?}").to_lowercase())
            .collect();
        assert_eq!(mine.len(), 1, "{framework:?}: {rows}");
        assert_eq!(mine[0]["reason"], "malformed");
        // A successful use is rolled up, and a report asked right after sees it (the
        // gateway flushes its rollup and audit queue first).
        let subject = format!("ivy-{framework:?}").to_lowercase();
        let minted = mint(&http, &gw.admin_url, &subject).await;
        let access = minted["access_token"].as_str().unwrap();
        for _ in 0..3 {
            let res = http
                .get(format!("{}/orders", gw.api_url))
                .bearer_auth(access)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
        let report: serde_json::Value = serde_json::from_str(
            &http
                .get(format!(
                    "{}/audit?report=subject&subject={subject}",
                    gw.admin_url
                ))
                .bearer_auth("adm")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        let mut tokens = report["tokens"].as_array().unwrap().clone();
        tokens.sort_by_key(|t| t["token_kind"].as_str().unwrap_or("").to_owned());
        let kinds: Vec<_> = tokens
            .iter()
            .map(|t| t["token_kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["access", "refresh"], "{framework:?}: {report:#}");
        assert_eq!(tokens[0]["usage"]["count"], 3, "{framework:?}: {report:#}");
        assert_eq!(
            tokens[0]["usage"]["clients"],
            serde_json::json!(["127.0.0.1"])
        );
        assert_eq!(tokens[1]["usage"]["count"], 0);
        // Only the admin asks, and a malformed filter is named.
        let res = http.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 401);
        let res = http
            .get(format!("{}/audit?limit=5000&subject=x", gw.admin_url))
            .bearer_auth("adm")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert!(
            res.text()
                .await
                .unwrap()
                .contains("invalid audit filter: limit")
        );
    }
}

fn getrandom_fill(buf: &mut [u8]) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mixed = nanos ^ u128::from(std::process::id()) << 64;
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (mixed >> (8 * (i % 16))) as u8;
    }
}

/// `--alert-webhook`: a refresh-token reuse provoked over HTTP reaches a real receiver as
/// a signed alert (the receiver verifies the signature and the replay window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_alerts_reach_a_signed_webhook() {
    use tokenlife_core::observe::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature};
    type Received = Vec<(axum::http::HeaderMap, Vec<u8>)>;
    let got: std::sync::Arc<std::sync::Mutex<Received>> = std::sync::Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: axum::http::HeaderMap, b: axum::body::Bytes| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push((h, b.to_vec()));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut cfg = config(ServeLimits::default());
    cfg.refresh_reuse_grace = Duration::ZERO;
    cfg.refresh_retry_grace = Duration::ZERO;
    cfg.alert_webhook = Some(examples::AlertWebhook {
        url: hook,
        secret: Some(Secret::new("hook-secret")),
        slack: false,
    });
    let gw = examples::start(cfg).await.unwrap();
    let http = reqwest::Client::new();
    let pair = mint(&http, &gw.admin_url, "wendy").await;
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    for expect in [200, 400] {
        let res = http
            .post(format!("{}/token", gw.admin_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=refresh_token&refresh_token={refresh}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expect);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (headers, body) = loop {
        if let Some(hit) = got.lock().unwrap().first().cloned() {
            break hit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no alert reached the webhook"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let alert: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(alert["alert"], "refresh_token_reuse");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(verify_signature(
        b"hook-secret",
        headers[TIMESTAMP_HEADER].to_str().unwrap(),
        &body,
        headers[SIGNATURE_HEADER].to_str().unwrap(),
        now,
        300
    ));
    assert!(!String::from_utf8_lossy(&body).contains(&refresh));
}

/// `GET /fleet` (the console's Fleet view): a gateway in a fleet reports its node, its
/// link with Redis and the keyset generation, to the admin only; one outside a fleet
/// answers 404 saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_status_reports_this_nodes_link() {
    let redis = tokenlife_core::testing::RedisServer::start();
    let mut c = config(ServeLimits::default());
    c.fleet = Some(examples::FleetSettings {
        redis_url: Secret::new(redis.url()),
        prefix: "{fleet-status}".into(),
        node_id: "node-a".into(),
    });
    let http = reqwest::Client::new();
    for framework in [Framework::Axum, Framework::Actix] {
        let gw = start(framework, c.clone()).await;
        let url = format!("{}/fleet", gw.admin_url);
        assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            let res = http.get(&url).bearer_auth("adm").send().await.unwrap();
            assert_eq!(res.status(), 200, "{framework:?}");
            let v: serde_json::Value = res.json().await.unwrap();
            if v["connected"] == true {
                break v;
            }
            assert!(std::time::Instant::now() < deadline, "{framework:?}: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status["node"], "node-a");
        assert_eq!(status["prefix"], "{fleet-status}");
        // A keyset published here is shared under the next fleet generation.
        let before = status["keyset_generation"].as_u64().unwrap();
        let res = http
            .post(format!("{}/keysets?keep_signing=true", gw.admin_url))
            .bearer_auth("adm")
            .header("content-type", "application/json")
            .body(gw.bad_deploy_jwks.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        loop {
            let v: serde_json::Value = http
                .get(&url)
                .bearer_auth("adm")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["keyset_generation"].as_u64().unwrap() > before {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{framework:?}: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let alone = start(Framework::Axum, config(ServeLimits::default())).await;
    let res = http
        .get(format!("{}/fleet", alone.admin_url))
        .bearer_auth("adm")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("not in a fleet"));
}

/// `serve`'s request timeout: a handler that has not answered when it passes is answered
/// 408 (the connection's service times the router, with no middleware per route), and a
/// handler that answers in time is not touched.
#[tokio::test]
async fn a_handler_past_the_request_timeout_is_answered_408() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(std::future::pending::<&'static str>),
        )
        .route("/fast", axum::routing::get(|| async { "ok" }));
    let limits = ServeLimits {
        request_timeout: Duration::from_millis(300),
        ..ServeLimits::default()
    };
    let server = tokio::spawn(examples::serve(listener, app, limits));
    let http = reqwest::Client::new();
    let fast = http
        .get(format!("http://{addr}/fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(fast.status(), 200);
    assert_eq!(fast.text().await.unwrap(), "ok");
    let slow = http
        .get(format!("http://{addr}/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 408);
    assert_eq!(slow.text().await.unwrap(), "request timed out\n");
    server.abort();
}
