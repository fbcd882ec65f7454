//! The proxy against real peers on 127.0.0.1: an upstream HTTP server of the test's own
//! that echoes what it received, raw TCP clients for what an attacker sends, and Debian's
//! nginx with `auth_request` in front of the forward-auth endpoint.
//!
//! Who reaches the proxy: anonymous clients (no token, a forged or revoked one, spoofed
//! claim and forwarding headers, hop-by-hop tricks, smuggling attempts, oversize bodies)
//! and OAuth clients with a valid token (their scope decides). What they can make it do
//! is what each test below pins: nothing reaches the upstream without the guard's
//! verdict, and what reaches it about the caller is written by the proxy alone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};
use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
use tokenlife_proxy::{ProxyConfig, RouteConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "api://orders";

mod common;
use common::upstream;

struct Setup {
    proxy: String,
    hits: Arc<AtomicUsize>,
    validator: Validator,
    key: tokenlife_core::Key,
}

fn validator() -> (Validator, tokenlife_core::Key) {
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let v = Validator::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    (v, testing::key("k1", Algorithm::ES256))
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    url
}

/// The proxy in front of the echo upstream: `/` requires a token, `/orders` the scope
/// `orders:read`, `/public` takes a token optionally, `/health` is skipped.
async fn setup(tune: impl FnOnce(&mut ProxyConfig)) -> Setup {
    let (up, hits) = upstream().await;
    let mut config = ProxyConfig::empty();
    let mut root = RouteConfig::new("/", &up);
    root.skip_paths = vec!["/health".into()];
    let mut orders = RouteConfig::new("/orders", &up);
    orders.require_scopes = vec!["orders:read".into()];
    let mut public = RouteConfig::new("/public", &up);
    public.optional = true;
    config.routes = vec![root, orders, public];
    config.upstream_timeout_ms = 300;
    config.max_body_bytes = 4096;
    tune(&mut config);
    let (validator, key) = validator();
    let app = tokenlife_proxy::app(validator.clone(), config).unwrap();
    Setup {
        proxy: serve(app).await,
        hits,
        validator,
        key,
    }
}

fn token(key: &tokenlife_core::Key, sub: &str, scope: &str, jti: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    testing::sign(
        key,
        &json!({"iss": ISS, "aud": AUD, "sub": sub, "scope": scope, "jti": jti,
            "iat": now, "exp": now + 600}),
    )
}

async fn echoed(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 200);
    serde_json::from_str(&res.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn a_valid_token_reaches_the_upstream_with_the_proxys_claims_and_nothing_spoofed() {
    let s = setup(|c| {
        c.claims.insert("tenant".into(), "X-Auth-Tenant".into());
        c.claims.insert("roles".into(), "X-Auth-Roles".into());
        c.claims.insert("email".into(), "X-Auth-Email".into());
    })
    .await;
    let http = reqwest::Client::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = testing::sign(
        &s.key,
        &json!({"iss": ISS, "aud": AUD, "sub": "alice", "scope": "orders:read profile",
            "jti": "j-1", "exp": now + 600, "tenant": "acme", "roles": ["buyer", "auditor"]}),
    );
    let res = http
        .post(format!("{}/orders/7?x=1", s.proxy))
        .bearer_auth(&t)
        // Spoofed claim headers, a hop-by-hop header named by Connection, a forged chain.
        .header("x-auth-subject", "root")
        .header("X-Auth-Scope", "admin")
        // A claim the token does not have: its spoofed header must not survive either.
        .header("x-auth-email", "root@example.com")
        .header("connection", "x-secret")
        .header("x-secret", "1")
        .header("x-forwarded-for", "6.6.6.6")
        .body(vec![b'a'; 1000])
        .send()
        .await
        .unwrap();
    let e = echoed(res).await;
    let h = &e["headers"];
    assert_eq!(e["uri"], "/orders/7?x=1");
    assert_eq!(e["method"], "POST");
    assert_eq!(e["body_len"], 1000);
    assert_eq!(h["x-auth-subject"], "alice");
    assert_eq!(h["x-auth-scope"], "orders:read profile");
    // Claims of other names, from the payload: a string as it is, an array joined.
    assert_eq!(h["x-auth-tenant"], "acme");
    assert_eq!(h["x-auth-roles"], "buyer auditor");
    assert!(h.get("x-auth-email").is_none(), "{h}");
    assert!(h.get("x-secret").is_none(), "{h}");
    assert!(
        h.get("authorization").is_none(),
        "the bearer token went upstream: {h}"
    );
    assert_eq!(h["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], s.proxy.trim_start_matches("http://"));
    assert_eq!(
        h["forwarded"],
        format!(
            "for=127.0.0.1;proto=http;host={}",
            s.proxy.trim_start_matches("http://")
        )
    );
}

#[tokio::test]
async fn without_a_valid_token_nothing_reaches_the_upstream() {
    let s = setup(|_| {}).await;
    let http = reqwest::Client::new();
    let k2 = testing::key("k2", Algorithm::ES256);
    for (auth, want, challenge) in [
        (None, 401, r#"Bearer realm="api""#),
        (Some("garbage".to_owned()), 401, "invalid_token"),
        (
            Some(token(&k2, "mallory", "orders:read", "j-x")),
            401,
            "invalid_token",
        ),
    ] {
        let mut req = http.get(format!("{}/anything", s.proxy));
        if let Some(a) = &auth {
            req = req.bearer_auth(a);
        }
        let res = req.header("x-auth-subject", "root").send().await.unwrap();
        assert_eq!(res.status(), want);
        let c = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(c.contains(challenge), "{c}");
    }
    // Without the scope: 403, and the upstream still saw nothing.
    let t = token(&s.key, "bob", "profile", "j-2");
    let res = http
        .get(format!("{}/orders", s.proxy))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
    // A skipped path, and an optional route without a token: they pass, without claims,
    // the spoofed one stripped.
    for path in ["/health", "/public/x"] {
        let res = http
            .get(format!("{}{path}", s.proxy))
            .header("x-auth-subject", "root")
            .send()
            .await
            .unwrap();
        let e = echoed(res).await;
        assert!(e["headers"].get("x-auth-subject").is_none(), "{path}: {e}");
    }
    // A bad token on the optional route is still 401.
    let res = http
        .get(format!("{}/public/x", s.proxy))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(s.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_revocation_is_seen_by_the_proxy_at_once() {
    let s = setup(|_| {}).await;
    let http = reqwest::Client::new();
    let t = token(&s.key, "carol", "orders:read", "j-revoke");
    let get = || http.get(format!("{}/x", s.proxy)).bearer_auth(&t).send();
    assert_eq!(get().await.unwrap().status(), 200);
    s.validator
        .revocations()
        .revoke_jti(
            "j-revoke",
            std::time::SystemTime::now() + Duration::from_secs(3600),
        )
        .unwrap();
    assert_eq!(get().await.unwrap().status(), 401);
}

#[tokio::test]
async fn an_upstream_down_is_502_and_a_slow_one_504_without_a_word_about_it() {
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let s = setup(|c| c.routes.push(RouteConfig::new("/dead", &dead))).await;
    let http = reqwest::Client::new();
    let t = token(&s.key, "dave", "", "j-3");
    let res = http
        .get(format!("{}/dead/x", s.proxy))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let body = res.text().await.unwrap();
    assert_eq!(body, r#"{"error":"upstream_unavailable"}"#);
    let res = http
        .get(format!("{}/slow", s.proxy))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 504);
    assert_eq!(res.text().await.unwrap(), r#"{"error":"upstream_timeout"}"#);
}

#[tokio::test]
async fn an_oversize_body_is_413_declared_or_streamed() {
    let s = setup(|_| {}).await;
    let http = reqwest::Client::new();
    let t = token(&s.key, "erin", "", "j-4");
    let res = http
        .post(format!("{}/x", s.proxy))
        .bearer_auth(&t)
        .body(vec![0u8; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // Chunked, no length declared: refused when it passes the bound.
    let mut chunked = format!(
        "POST /x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {t}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..5 {
        chunked.extend_from_slice(b"3e8\r\n");
        chunked.extend_from_slice(&[b'a'; 1000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(&s.proxy, &chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Exactly at the bound passes.
    let e = echoed(
        http.post(format!("{}/x", s.proxy))
            .bearer_auth(&t)
            .body(vec![0u8; 4096])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e["body_len"], 4096);
}

/// Sends raw bytes to the proxy and reads what comes back until it closes (bounded).
async fn raw(proxy: &str, bytes: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(proxy.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn request_smuggling_attempts_are_refused_before_the_upstream() {
    let s = setup(|_| {}).await;
    let t = token(&s.key, "frank", "", "j-5");
    // Content-Length and Transfer-Encoding together (CL.TE): the upstream must never see
    // the smuggled second request.
    let cl_te = format!(
        "POST /x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {t}\r\nContent-Length: 6\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    );
    // hyper reads such a request as chunked (RFC 9112 §6.1: Transfer-Encoding wins) and
    // closes the connection after answering it: the bytes behind are never a request.
    let answer = raw(&s.proxy, cl_te.as_bytes()).await;
    assert!(!answer.contains("/smuggled"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    // Two different Content-Length values.
    let two = format!(
        "POST /x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {t}\r\nContent-Length: 1\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\nab"
    );
    assert!(
        raw(&s.proxy, two.as_bytes())
            .await
            .starts_with("HTTP/1.1 400")
    );
    // An obs-fold line (RFC 9112 §5.2).
    let folded = format!(
        "GET /x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {t}\r\nX-A: 1\r\n folded\r\n\
         Connection: close\r\n\r\n"
    );
    assert!(
        raw(&s.proxy, folded.as_bytes())
            .await
            .starts_with("HTTP/1.1 400")
    );
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        1,
        "the refused requests reached the upstream"
    );
}

/// nginx stays in front of the upstream and asks the forward-auth endpoint
/// (`auth_request`); the claim headers it gets back are what the upstream sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_asks_the_forward_auth_endpoint() {
    let s = setup(|_| {}).await;
    let (up, hits) = upstream().await;
    let (auth, up) = (
        s.proxy.trim_start_matches("http://").to_owned(),
        up.trim_start_matches("http://").to_owned(),
    );
    let nginx = tokio::task::spawn_blocking(move || {
        examples::nginx::Nginx::start(|port| {
            format!(
                "server {{ listen 127.0.0.1:{port};\n\
                 location = /_auth {{ internal; proxy_pass http://{auth}/auth;\n\
                   proxy_pass_request_body off; proxy_set_header Content-Length \"\";\n\
                   proxy_set_header X-Original-URI $request_uri; }}\n\
                 location / {{ auth_request /_auth;\n\
                   auth_request_set $sub $upstream_http_x_auth_subject;\n\
                   auth_request_set $scope $upstream_http_x_auth_scope;\n\
                   proxy_set_header X-Auth-Subject $sub; proxy_set_header X-Auth-Scope $scope;\n\
                   proxy_pass http://{up}; }} }}"
            )
        })
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let t = token(&s.key, "grace", "orders:read", "j-6");
    let e = echoed(
        http.get(format!("{}/orders/1", nginx.url))
            .bearer_auth(&t)
            .header("x-auth-subject", "root")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e["headers"]["x-auth-subject"], "grace");
    assert_eq!(e["headers"]["x-auth-scope"], "orders:read");
    // The route for /orders requires the scope: nginx passes the 403 on.
    let t2 = token(&s.key, "heidi", "profile", "j-7");
    let res = http
        .get(format!("{}/orders/1", nginx.url))
        .bearer_auth(&t2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // No token: 401 with the challenge, the upstream untouched.
    let before = hits.load(Ordering::SeqCst);
    let res = http.get(format!("{}/x", nginx.url)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api""#);
    assert_eq!(hits.load(Ordering::SeqCst), before);
    // Traefik's headers and Envoy's path prefix pick the route the same way.
    let res = http
        .get(format!("{}/auth", s.proxy))
        .bearer_auth(&t2)
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/orders/9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = http
        .get(format!("{}/auth/orders/9", s.proxy))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-auth-subject"], "grace");
}

/// A WebSocket through the proxy: the handshake is guarded like any request (401 without
/// a token), and once the upstream agrees the two connections carry frames both ways.
#[tokio::test]
async fn a_websocket_echo_passes_through_after_authentication() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    // The upstream: a WebSocket echo server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_up = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(m)) = rx.next().await {
                    if (m.is_text() || m.is_binary()) && tx.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let s = setup(|c| c.routes.push(RouteConfig::new("/ws", &ws_up))).await;
    let addr = s.proxy.trim_start_matches("http://").to_owned();
    let connect = |auth: Option<String>| {
        let addr = addr.clone();
        async move {
            let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
            if let Some(a) = auth {
                req.headers_mut()
                    .insert("authorization", format!("Bearer {a}").parse().unwrap());
            }
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            tokio_tungstenite::client_async(req, tcp).await
        }
    };
    match connect(None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("a handshake without a token: {:?}", other.map(|_| ())),
    }
    let t = token(&s.key, "ivan", "", "j-ws");
    let (mut ws, res) = connect(Some(t)).await.unwrap();
    assert_eq!(res.status(), 101);
    for text in ["hello", "through the proxy"] {
        ws.send(Message::text(text)).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, Message::text(text));
    }
}

/// An h2c upstream (HTTP/2 with prior knowledge, a gRPC server's transport): the proxy
/// speaks HTTP/2 to it while its client spoke HTTP/1.1.
#[tokio::test]
async fn an_h2c_upstream_is_spoken_to_in_http2() {
    let (h2, _) = upstream().await;
    let s = setup(|c| {
        let mut r = RouteConfig::new("/grpc", &h2);
        r.h2c = true;
        c.routes.push(r);
    })
    .await;
    let t = token(&s.key, "judy", "", "j-h2");
    let http = reqwest::Client::new();
    let e = echoed(
        http.post(format!("{}/grpc/x", s.proxy))
            .bearer_auth(&t)
            .body("frame")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e["version"], "HTTP/2.0");
    assert_eq!(e["body_len"], 5);
    assert_eq!(e["headers"]["x-auth-subject"], "judy");
    let e = echoed(
        http.get(format!("{}/x", s.proxy))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e["version"], "HTTP/1.1");
}
