//! One conformance suite for both adapters: the same script of HTTP requests, over real
//! HTTP on 127.0.0.1, against an axum app behind `tokenlife_tower` and an actix-web app
//! behind `tokenlife_actix`, each on its own identically built fixture. Every answer must
//! be the same on both — status, every header but `Date` and `Connection`, body — and what the script
//! expects. The script runs on the in-memory backend and on the Redis backend (a fleet
//! node on a real `redis-server` this test starts).
//!
//! To add a case, add a step to `script()`: it runs against both adapters and both
//! backends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenlife_core::fleet::{FleetConfig, FleetTasks, RedisFleet};
use tokenlife_core::observe::console::{ConsoleFeed, MAX_STREAMS};
use tokenlife_core::observe::{Event, from_fn};
use tokenlife_core::testing::RedisServer;
use tokenlife_core::{
    Algorithm, Issuer, Key, Keyset, KeysetStore, ManualClock, RevocationList, Validator, testing,
};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "api://orders";
const ADMIN_KEY: &str = "admin-secret-for-the-conformance-suite";
const MAX_BODY: usize = 4096;
/// The console's Content-Security-Policy.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// What one adapter is mounted on: a validator and an admin state over one keyset store
/// and one revocation list (in memory, or a fleet node on Redis).
struct Fixture {
    validator: Validator,
    /// Every validation the validator's observer saw: outcome and client address.
    seen: Arc<Mutex<Vec<String>>>,
    admin: tokenlife_core::admin::AdminState,
    /// The console's feed, beside the validator's observer.
    console: ConsoleFeed,
    _fleet: Option<(RedisFleet, FleetTasks)>,
}

/// Where the suite's RFC 9728 metadata says it is.
const PRM_URL: &str = "https://api.example/.well-known/oauth-protected-resource";

/// The suite's RFC 9728 protected-resource metadata.
fn prm() -> tokenlife_core::gate::ProtectedResource {
    tokenlife_core::gate::ProtectedResource::new("https://api.example")
        .authorization_server(ISS)
        .scope("orders:read")
}

/// The claim predicate of `/claims/*`: the writer token's `jti`, or subject `bob` (no
/// token of the suite), combined with `any_of`.
fn writer_or_bob() -> tokenlife_core::gate::Predicate {
    use tokenlife_core::gate::{Predicate, any_of};
    let writer: Predicate = Arc::new(|t| t.claims().jti.as_deref() == Some("t-writer"));
    let bob: Predicate = Arc::new(|t| t.claims().sub.as_deref() == Some("bob"));
    any_of([writer, bob])
}

/// Claims a handler insists on: the tokens of the suite have no `level`.
#[derive(serde::Deserialize)]
struct Typed {
    sub: String,
    level: u8,
}

async fn fixture(clock: &ManualClock, redis: Option<(&str, &str)>) -> Fixture {
    let store = KeysetStore::builder(
        Keyset::new([testing::key("k1", Algorithm::ES256)])
            .unwrap()
            .with_label("v1"),
    )
    .clock(clock.clone())
    .build();
    let list = RevocationList::builder().clock(clock.clone());
    let (list, fleet) = match redis {
        Some((url, prefix)) => {
            let fleet = RedisFleet::new(
                FleetConfig::new(url)
                    .prefix(prefix)
                    .node_id(prefix)
                    .max_backoff(Duration::from_millis(50)),
            )
            .unwrap();
            fleet.share_keysets(&store);
            let list = list.backend(fleet.backend()).build();
            let tasks = fleet.start(list.clone()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !fleet.status().connected {
                assert!(Instant::now() < deadline, "{prefix} never synced");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (list, Some((fleet, tasks)))
        }
        None => (list.build(), None),
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let console = ConsoleFeed::with_clock(Arc::new(clock.clone()));
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .revocations(list.clone())
        .also_observer(console.clone())
        .also_observer(from_fn(move |e| {
            if let Event::Validated {
                outcome, client, ..
            } = e
            {
                let outcome = outcome.map_or_else(|k| format!("{k:?}"), |_| "ok".into());
                log.lock()
                    .unwrap()
                    .push(format!("{outcome} from {}", client.unwrap_or("?")));
            }
        }))
        .build()
        .unwrap();
    let issuer = Issuer::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .revocations(list)
        .build()
        .unwrap();
    let admin = tokenlife_core::admin::AdminState::builder(validator.clone())
        .issuer(issuer)
        .admin_key(ADMIN_KEY)
        .client(
            "demo-client",
            "demo-client-secret-0123456789",
            Some("orders:read"),
        )
        .resource_server("orders-api", "orders-api-secret-0123456789")
        // RFC 6749 §2.3.1: id and secret form-urlencoded inside Basic.
        .client("rfc client", "p@ss+w%rd:x/y", None)
        .max_body(MAX_BODY)
        .auth_throttle(8, Duration::from_secs(60))
        .console(console.clone())
        .console_tick(Duration::from_millis(20))
        .build()
        .unwrap();
    Fixture {
        validator,
        seen,
        admin,
        console,
        _fleet: fleet,
    }
}

fn problem(status: u16, title: &str) -> String {
    json!({"type": "about:blank", "status": status, "title": title}).to_string()
}

// ---------------------------------------------------------------------------------------
// The two apps: the same routes, middleware options and handlers on each framework.
//   /api/*       bearer or cookie `session`, `/api/health` skipped
//   /scoped/*    needs scope `orders:write`
//   /optional/*  optional authentication
//   /custom/*    a custom rejection body (problem+json), realm `orders`
//   /admin/*     the admin and OAuth routes
//   /bare/orders no middleware: the claims extractor answers
//   /header/*    token from `X-Api-Token`, else a custom function (`X-Legacy: tok:…`)
// ---------------------------------------------------------------------------------------

mod axum_app {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use bytes::Bytes;
    use tokenlife_tower::{Claims, TokenLifeLayer, TokenSource};

    const TEXT: [(http::HeaderName, &str); 1] =
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")];

    async fn orders(Claims(c): Claims<Value>) -> String {
        format!("orders for {}", c["sub"].as_str().unwrap_or("?"))
    }

    async fn whoami(c: Option<Claims<Value>>) -> String {
        match c {
            Some(Claims(c)) => format!("you are {}", c["sub"].as_str().unwrap_or("?")),
            None => "anonymous".to_owned(),
        }
    }

    async fn strict(Claims(c): Claims<super::Typed>) -> String {
        format!("level {} for {}", c.level, c.sub)
    }

    async fn typed(c: Option<Claims<super::Typed>>) -> String {
        match c {
            Some(Claims(c)) => format!("level {} for {}", c.level, c.sub),
            None => "anonymous".to_owned(),
        }
    }

    pub(super) async fn serve(f: &Fixture) -> String {
        let v = &f.validator;
        let api = Router::new()
            .route("/api/orders", get(orders))
            .route("/api/health", get(|| async { (TEXT, "ok") }))
            .layer(
                TokenLifeLayer::new(v.clone())
                    .cookie("session")
                    .skip_path("/api/health"),
            );
        let scoped = Router::new()
            .route("/scoped/orders", get(orders))
            .layer(TokenLifeLayer::new(v.clone()).require_scope("orders:write"));
        let cors = Router::new()
            .route(
                "/cors/orders",
                get(orders).options(|| async { "preflight answered behind the guard" }),
            )
            .layer(TokenLifeLayer::new(v.clone()).skip_preflight());
        let optional_realm = Router::new()
            .route("/optrealm/typed", get(strict))
            .layer(TokenLifeLayer::new(v.clone()).optional().realm("orders"));
        let prm = Router::new()
            .route("/prm/orders", get(orders))
            .layer(TokenLifeLayer::new(v.clone()).resource_metadata(super::PRM_URL))
            .merge(tokenlife_tower::protected_resource(&super::prm()));
        let claimed = Router::new().route("/claims/orders", get(orders)).layer({
            let p = super::writer_or_bob();
            TokenLifeLayer::new(v.clone()).require(move |t| p(t))
        });
        let optional = Router::new()
            .route("/optional/whoami", get(whoami))
            .route("/optional/typed", get(typed))
            .layer(TokenLifeLayer::new(v.clone()).optional());
        let custom = Router::new()
            .route("/custom/orders", get(orders))
            .route("/custom/typed", get(strict))
            .layer(
                TokenLifeLayer::new(v.clone())
                    .realm("orders")
                    .render_with(|r| {
                        let mut res =
                            http::Response::new(Bytes::from(problem(r.status, r.description)));
                        *res.status_mut() = http::StatusCode::from_u16(r.status).unwrap();
                        res.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/problem+json"),
                        );
                        res
                    }),
            );
        let sourced = Router::new().route("/header/orders", get(orders)).layer(
            TokenLifeLayer::new(v.clone()).sources([
                TokenSource::Header(http::HeaderName::from_static("x-api-token")),
                TokenSource::Custom(Arc::new(|h: &http::HeaderMap| {
                    h.get("x-legacy")
                        .and_then(|v| v.to_str().ok())?
                        .strip_prefix("tok:")
                })),
            ]),
        );
        // No middleware: the extractor itself refuses.
        let bare = Router::new().route("/bare/orders", get(orders));
        let app = Router::new()
            .merge(bare)
            .merge(sourced)
            .merge(api)
            .merge(scoped)
            .merge(claimed)
            .merge(prm)
            .merge(optional_realm)
            .merge(cors)
            .merge(optional)
            .merge(custom)
            .nest("/admin", tokenlife_tower::admin::router(f.admin.clone()));
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
}

mod actix_app {
    use super::*;
    use actix_web::http::header::{HeaderMap, HeaderName};
    use actix_web::{App, HttpResponse, HttpServer, web};
    use tokenlife_actix::{Claims, TokenLife, TokenSource};

    fn text(body: String) -> HttpResponse {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(body)
    }

    async fn orders(Claims(c): Claims<Value>) -> HttpResponse {
        text(format!("orders for {}", c["sub"].as_str().unwrap_or("?")))
    }

    async fn whoami(c: Option<Claims<Value>>) -> HttpResponse {
        text(match c {
            Some(Claims(c)) => format!("you are {}", c["sub"].as_str().unwrap_or("?")),
            None => "anonymous".to_owned(),
        })
    }

    async fn strict(Claims(c): Claims<super::Typed>) -> HttpResponse {
        text(format!("level {} for {}", c.level, c.sub))
    }

    async fn typed(c: tokenlife_actix::MaybeClaims<super::Typed>) -> HttpResponse {
        text(match c.0 {
            Some(c) => format!("level {} for {}", c.level, c.sub),
            None => "anonymous".to_owned(),
        })
    }

    pub(super) fn serve(f: &Fixture) -> String {
        let v = f.validator.clone();
        let admin = f.admin.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = HttpServer::new(move || {
            App::new()
                // No middleware: the extractor itself refuses.
                .route("/bare/orders", web::get().to(orders))
                .service(
                    web::scope("/header")
                        .wrap(TokenLife::new(v.clone()).sources([
                            TokenSource::Header(HeaderName::from_static("x-api-token")),
                            TokenSource::Custom(Arc::new(|h: &HeaderMap| {
                                h.get("x-legacy")
                                    .and_then(|v| v.to_str().ok())?
                                    .strip_prefix("tok:")
                            })),
                        ]))
                        .route("/orders", web::get().to(orders)),
                )
                .service(
                    web::scope("/api")
                        .wrap(
                            TokenLife::new(v.clone())
                                .cookie("session")
                                .skip_path("/api/health"),
                        )
                        .route("/orders", web::get().to(orders))
                        .route("/health", web::get().to(|| async { text("ok".into()) })),
                )
                .service(
                    web::scope("/scoped")
                        .wrap(TokenLife::new(v.clone()).require_scope("orders:write"))
                        .route("/orders", web::get().to(orders)),
                )
                .service(
                    web::scope("/cors")
                        .wrap(TokenLife::new(v.clone()).skip_preflight())
                        .route("/orders", web::get().to(orders))
                        .route(
                            "/orders",
                            web::method(actix_web::http::Method::OPTIONS).to(|| async {
                                text("preflight answered behind the guard".into())
                            }),
                        ),
                )
                .service(
                    web::scope("/optrealm")
                        .wrap(TokenLife::new(v.clone()).optional().realm("orders"))
                        .route("/typed", web::get().to(strict)),
                )
                .service(tokenlife_actix::protected_resource(&super::prm()))
                .service(
                    web::scope("/prm")
                        .wrap(TokenLife::new(v.clone()).resource_metadata(super::PRM_URL))
                        .route("/orders", web::get().to(orders)),
                )
                .service(
                    web::scope("/claims")
                        .wrap({
                            let p = super::writer_or_bob();
                            TokenLife::new(v.clone()).require(move |t| p(t))
                        })
                        .route("/orders", web::get().to(orders)),
                )
                .service(
                    web::scope("/optional")
                        .wrap(TokenLife::new(v.clone()).optional())
                        .route("/whoami", web::get().to(whoami))
                        .route("/typed", web::get().to(typed)),
                )
                .service(
                    web::scope("/custom")
                        .wrap(TokenLife::new(v.clone()).realm("orders").render_with(|r| {
                            HttpResponse::build(
                                actix_web::http::StatusCode::from_u16(r.status).unwrap(),
                            )
                            .content_type("application/problem+json")
                            .body(problem(r.status, r.description))
                        }))
                        .route("/orders", web::get().to(orders))
                        .route("/typed", web::get().to(strict)),
                )
                .service(tokenlife_actix::admin::scope("/admin", admin.clone()))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(server));
        format!("http://{addr}")
    }
}

// ---------------------------------------------------------------------------------------
// The script.
// ---------------------------------------------------------------------------------------

struct Step {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    want: u16,
    /// The exact `WWW-Authenticate` both must answer with, where the step names one.
    challenge: Option<&'static str>,
    /// The body differs from run to run (a fresh token): compare status and headers only.
    volatile: bool,
    /// The exact body both must answer with, where the step names one.
    want_body: Option<&'static str>,
    /// Headers both must answer with, exactly.
    want_headers: Vec<(&'static str, &'static str)>,
}

fn get(name: &'static str, path: &str, want: u16) -> Step {
    Step {
        name,
        method: "GET",
        path: path.to_owned(),
        headers: Vec::new(),
        body: None,
        want,
        challenge: None,
        volatile: false,
        want_body: None,
        want_headers: Vec::new(),
    }
}

fn options(name: &'static str, path: &str, want: u16) -> Step {
    Step {
        method: "OPTIONS",
        ..get(name, path, want)
    }
}

fn post(name: &'static str, path: &str, want: u16) -> Step {
    Step {
        method: "POST",
        ..get(name, path, want)
    }
}

impl Step {
    /// Both must answer with exactly this body.
    fn body_is(mut self, body: &'static str) -> Self {
        self.want_body = Some(body);
        self
    }

    /// Both must answer with this header, exactly.
    fn header_is(mut self, name: &'static str, value: &'static str) -> Self {
        self.want_headers.push((name, value));
        self
    }

    /// The body is fresh each time (a token): both must agree on all but it.
    fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// Both must answer with exactly this challenge.
    fn challenge(mut self, challenge: &'static str) -> Self {
        self.challenge = Some(challenge);
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    fn admin(self) -> Self {
        self.bearer(ADMIN_KEY)
    }

    fn json(self, body: Value) -> Self {
        self.raw("application/json", body.to_string())
    }

    fn form(self, body: &str) -> Self {
        self.raw("application/x-www-form-urlencoded", body.to_owned())
    }

    fn raw(mut self, content_type: &str, body: String) -> Self {
        self.headers.push(("content-type", content_type.to_owned()));
        self.body = Some(body);
        self
    }

    fn basic(self, id: &str, secret: &str) -> Self {
        use base64::Engine;
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        self.header("authorization", format!("Basic {creds}"))
    }
}

struct Tokens {
    valid: String,
    writer: String,
    expired: String,
    not_yet: String,
    wrong_iss: String,
    wrong_aud: String,
    unknown_kid: String,
    bad_sig: String,
    wrong_alg: String,
    oversize: String,
    revoke_by_jti: String,
    revoke_by_subject: String,
    revoke_by_family: String,
    revoke_by_rfc7009: String,
    second_key: String,
}

fn tokens(now: u64) -> Tokens {
    let k1 = testing::key("k1", Algorithm::ES256);
    let claims = |sub: &str, jti: &str| json!({"iss": ISS, "aud": AUD, "sub": sub, "jti": jti, "iat": now - 10, "exp": now + 600});
    let sign = |key: &Key, c: Value| testing::sign(key, &c);
    let mut bad_sig = sign(&k1, claims("alice", "t-bad-sig"));
    let last = bad_sig.pop().unwrap();
    bad_sig.push(if last == 'A' { 'B' } else { 'A' });
    let with = |mut c: Value, k: &str, v: Value| {
        c[k] = v;
        c
    };
    Tokens {
        valid: sign(
            &k1,
            with(claims("alice", "t-valid"), "scope", json!("orders:read")),
        ),
        writer: sign(
            &k1,
            with(
                claims("alice", "t-writer"),
                "scope",
                json!("orders:read orders:write"),
            ),
        ),
        expired: sign(
            &k1,
            with(claims("alice", "t-expired"), "exp", json!(now - 3600)),
        ),
        not_yet: sign(
            &k1,
            with(claims("alice", "t-nbf"), "nbf", json!(now + 3600)),
        ),
        wrong_iss: sign(
            &k1,
            with(
                claims("alice", "t-iss"),
                "iss",
                json!("https://evil.example"),
            ),
        ),
        wrong_aud: sign(
            &k1,
            with(claims("alice", "t-aud"), "aud", json!("api://other")),
        ),
        unknown_kid: sign(
            &testing::key("k9", Algorithm::ES256),
            claims("alice", "t-kid"),
        ),
        bad_sig,
        wrong_alg: sign(
            &testing::key("k1", Algorithm::ES384),
            claims("alice", "t-alg"),
        ),
        oversize: format!("{}.{}.{}", "e".repeat(20), "a".repeat(9000), "s".repeat(20)),
        revoke_by_jti: sign(&k1, claims("bob", "t-jti")),
        revoke_by_subject: sign(&k1, claims("carol", "t-sub")),
        revoke_by_family: sign(&k1, with(claims("dave", "t-fam"), "fam", json!("family-1"))),
        revoke_by_rfc7009: sign(&k1, claims("erin", "t-7009")),
        second_key: sign(
            &testing::key("k2", Algorithm::ES384),
            claims("frank", "t-k2"),
        ),
    }
}

fn script(t: &Tokens) -> Vec<Step> {
    // Published with `keep_signing=true`: the signing key k1 stays beside k2.
    let k2 = Keyset::new([testing::key("k2", Algorithm::ES384)])
        .unwrap()
        .to_public_jwks();
    let mut private: Value = serde_json::from_str(&k2).unwrap();
    private["keys"][0]["d"] = json!("c2VjcmV0");
    vec![
        // The middleware, every way in and every way out.
        get("missing token", "/api/orders", 401).challenge(r#"Bearer realm="api""#),
        get("valid token", "/api/orders", 200).bearer(&t.valid),
        get("scheme is case-insensitive", "/api/orders", 200)
            .header("authorization", format!("bEaReR {}", t.valid)),
        get("bearer without a token", "/api/orders", 400)
            .header("authorization", "Bearer")
            .challenge(
                r#"Bearer realm="api", error="invalid_request", error_description="malformed bearer token""#,
            ),
        get("bearer with two tokens", "/api/orders", 400)
            .header("authorization", format!("Bearer {} {}", t.valid, t.valid)),
        get("two authorization headers", "/api/orders", 400)
            .bearer(&t.valid)
            .bearer(&t.valid),
        get("another scheme", "/api/orders", 401).basic("alice", "pw"),
        get("not a JWT", "/api/orders", 401).bearer("not-a-jwt"),
        get("expired", "/api/orders", 401)
            .bearer(&t.expired)
            .challenge(r#"Bearer realm="api", error="invalid_token", error_description="token expired""#),
        get("not yet valid", "/api/orders", 401).bearer(&t.not_yet),
        get("wrong issuer", "/api/orders", 401).bearer(&t.wrong_iss),
        get("wrong audience", "/api/orders", 401).bearer(&t.wrong_aud),
        get("unknown kid", "/api/orders", 401).bearer(&t.unknown_kid),
        get("bad signature", "/api/orders", 401).bearer(&t.bad_sig),
        get("algorithm not the key's", "/api/orders", 401).bearer(&t.wrong_alg),
        get("oversize token", "/api/orders", 401).bearer(&t.oversize),
        get("skip path", "/api/health", 200),
        get("cookie", "/api/orders", 200)
            .header("cookie", format!("theme=dark; session={}", t.valid)),
        get("bad cookie", "/api/orders", 401).header("cookie", "session=x.y.z"),
        get("header wins over cookie", "/api/orders", 401)
            .bearer("x.y.z")
            .header("cookie", format!("session={}", t.valid)),
        get("scope missing", "/scoped/orders", 403)
            .bearer(&t.valid)
            .challenge(
                r#"Bearer realm="api", error="insufficient_scope", error_description="insufficient scope", scope="orders:write""#,
            ),
        get("scope present", "/scoped/orders", 200).bearer(&t.writer),
        get("scope, no token", "/scoped/orders", 401),
        // Per-route claim predicates (peer gaps, item 10).
        get("predicate holds", "/claims/orders", 200).bearer(&t.writer),
        get("predicate fails", "/claims/orders", 403)
            .bearer(&t.valid)
            .challenge(
                r#"Bearer realm="api", error="insufficient_scope", error_description="insufficient claims""#,
            ),
        get("predicate, no token", "/claims/orders", 401),
        // RFC 9728 (peer gaps, item 8): the metadata document, and its URL in challenges.
        get(
            "protected-resource metadata",
            "/.well-known/oauth-protected-resource",
            200,
        )
        .body_is(
            r#"{"resource":"https://api.example","authorization_servers":["https://auth.example.com"],"scopes_supported":["orders:read"],"bearer_methods_supported":["header"]}"#,
        ),
        get("resource_metadata in the challenge", "/prm/orders", 401).challenge(
            r#"Bearer realm="api", resource_metadata="https://api.example/.well-known/oauth-protected-resource""#,
        ),
        get("resource_metadata beside an error", "/prm/orders", 401)
            .bearer(&t.expired)
            .challenge(
                r#"Bearer realm="api", error="invalid_token", error_description="token expired", resource_metadata="https://api.example/.well-known/oauth-protected-resource""#,
            ),
        get("resource metadata with a valid token", "/prm/orders", 200).bearer(&t.valid),
        // CORS preflights pass without a token under `skip_preflight` (peer gaps, item
        // 7); anything else still needs one.
        options("preflight", "/cors/orders", 200)
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET"),
        options("OPTIONS without Origin", "/cors/orders", 401)
            .header("access-control-request-method", "GET"),
        options("OPTIONS without the request method", "/cors/orders", 401)
            .header("origin", "https://app.example"),
        get("GET with Origin, no token", "/cors/orders", 401)
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET"),

        get("optional, no token", "/optional/whoami", 200),
        get("optional, valid token", "/optional/whoami", 200).bearer(&t.valid),
        get("optional, bad token", "/optional/whoami", 401).bearer(&t.expired),
        // Security review 3, LOW 18: a verified token whose claims do not fit the
        // handler's type is a 401, never "anonymous" (actix: MaybeClaims).
        get("optional typed, no token", "/optional/typed", 200),
        get(
            "optional typed, claims that do not fit",
            "/optional/typed",
            401,
        )
        .bearer(&t.valid),
        get("optional, malformed header", "/optional/whoami", 400)
            .header("authorization", "Bearer"),
        get("custom body, no token", "/custom/orders", 401).challenge(r#"Bearer realm="orders""#),
        // The extractors' rejections name the realm of the guard in front (they said
        // "api" whatever it was).
        get("optional, custom realm, no token, strict claims", "/optrealm/typed", 401)
            .challenge(r#"Bearer realm="orders""#),
        get("custom realm, claims that do not fit", "/custom/typed", 401)
            .bearer(&t.valid)
            .challenge(
                r#"Bearer realm="orders", error="invalid_token", error_description="token claims do not fit""#,
            ),
        get("custom body, bad token", "/custom/orders", 401).bearer(&t.bad_sig),
        get("custom body, valid", "/custom/orders", 200).bearer(&t.valid),
        get("extractor without middleware", "/bare/orders", 401)
            .bearer(&t.valid)
            .challenge(r#"Bearer realm="api""#),
        get("token header", "/header/orders", 200).header("x-api-token", t.valid.clone()),
        get("two token headers", "/header/orders", 400)
            .header("x-api-token", t.valid.clone())
            .header("x-api-token", t.valid.clone()),
        get("custom source", "/header/orders", 200).header("x-legacy", format!("tok:{}", t.valid)),
        get("custom source, bad token", "/header/orders", 401).header("x-legacy", "tok:x.y.z"),
        get("sources replaced: bearer not read", "/header/orders", 401).bearer(&t.valid),
        // Revocations through the admin routes, then the token is refused.
        get("before jti revocation", "/api/orders", 200).bearer(&t.revoke_by_jti),
        post("revoke jti", "/admin/revocations/jti", 200)
            .admin()
            .json(json!({"jti": "t-jti"})),
        get("after jti revocation", "/api/orders", 401).bearer(&t.revoke_by_jti),
        get("after jti revocation, by cookie", "/api/orders", 401)
            .header("cookie", format!("session={}", t.revoke_by_jti)),
        get("after jti revocation, optional", "/optional/whoami", 401).bearer(&t.revoke_by_jti),
        post("revoke subject", "/admin/revocations/subject", 200)
            .admin()
            .json(json!({"subject": "carol"})),
        get("after subject revocation", "/api/orders", 401).bearer(&t.revoke_by_subject),
        post("revoke family", "/admin/revocations/family", 200)
            .admin()
            .json(json!({"family": "family-1"})),
        get("after family revocation", "/api/orders", 401).bearer(&t.revoke_by_family),
        post("introspect a revoked token", "/admin/introspect", 200)
            .basic("orders-api", "orders-api-secret-0123456789")
            .form(&format!("token={}", t.revoke_by_jti)),
        post("introspect a live token", "/admin/introspect", 200)
            .basic("orders-api", "orders-api-secret-0123456789")
            .form(&format!("token={}", t.valid)),
        post("RFC 7009 revoke", "/admin/revoke", 200)
            .admin()
            .form(&format!("token={}", t.revoke_by_rfc7009)),
        get("after RFC 7009 revoke", "/api/orders", 401).bearer(&t.revoke_by_rfc7009),
        // Keysets: a second key, then a rollback removes it.
        get("second key before publish", "/api/orders", 401).bearer(&t.second_key),
        post(
            "publish k2 beside k1",
            "/admin/keysets?label=v2&keep_signing=true",
            201,
        )
        .admin()
        .raw("application/json", k2.clone()),
        get("second key after publish", "/api/orders", 200).bearer(&t.second_key),
        get("keyset history", "/admin/keysets", 200).admin(),
        // The console: its page and files need no key (they hold no data) and carry the
        // console's security headers; its stream needs the admin key.
        get("console page", "/admin/console", 200)
            .header_is("content-type", "text/html; charset=utf-8")
            .header_is("content-security-policy", CSP)
            .header_is("x-frame-options", "DENY")
            .header_is("referrer-policy", "no-referrer"),
        get("console script", "/admin/console/assets/app.js", 200)
            .header_is("content-type", "text/javascript; charset=utf-8")
            .header_is("content-security-policy", CSP)
            .header_is("x-content-type-options", "nosniff"),
        get("console style", "/admin/console/assets/app.css", 200)
            .header_is("content-type", "text/css; charset=utf-8"),
        get("console: no other file", "/admin/console/assets/..%2Fmod.rs", 404),
        post("roll back", "/admin/keysets/rollback", 200).admin(),
        get("second key after rollback", "/api/orders", 401).bearer(&t.second_key),
        get("first key after rollback", "/api/orders", 200).bearer(&t.valid),
        get("rollout status", "/admin/keysets/rollout", 200).admin(),
        get("remote keys: none configured", "/admin/keysets/remote", 404).admin(),
        get("fleet: none configured", "/admin/fleet", 404).admin(),
        get("remote keys: admin only", "/admin/keysets/remote", 401),
        // Every admin endpoint's bad input.
        post("admin without a key", "/admin/revocations/jti", 401).json(json!({"jti": "x"})),
        post("admin with a managed token", "/admin/keysets/rollback", 401).bearer(&t.valid),
        post("jti: bad JSON", "/admin/revocations/jti", 400)
            .admin()
            .raw("application/json", "{".into()),
        post("jti: no jti", "/admin/revocations/jti", 400)
            .admin()
            .json(json!({"until": 5})),
        post("jti: oversize body", "/admin/revocations/jti", 413)
            .admin()
            .raw(
                "application/json",
                format!("{{\"jti\": \"{}\"}}", "j".repeat(MAX_BODY)),
            ),
        post("jti: lapsed until", "/admin/revocations/jti", 400)
            .admin()
            .json(json!({"jti": "x", "until": 1})),
        post("subject: wrong type", "/admin/revocations/subject", 400)
            .admin()
            .json(json!({"subject": 42})),
        // Security review 3, LOW 16: a cut-off past SystemTime's range panicked the handler.
        post(
            "subject: issued_before out of range",
            "/admin/revocations/subject",
            400,
        )
        .admin()
        .json(json!({"subject": "s", "issued_before": u64::MAX})),
        post("family: empty", "/admin/revocations/family", 400)
            .admin()
            .json(json!({"family": ""})),
        post("publish: not a JWKS", "/admin/keysets", 400)
            .admin()
            .raw("application/json", "[1]".into()),
        post(
            "publish: private key material",
            "/admin/keysets?keep_signing=true",
            400,
        )
        .admin()
        .json(private.clone()),
        post(
            "stage: private key material",
            "/admin/keysets/stage?share=10",
            400,
        )
        .admin()
        .json(private),
        post(
            "stage: share over 100",
            "/admin/keysets/stage?share=101",
            400,
        )
        .admin()
        .raw("application/json", k2.clone()),
        post(
            "share: nothing staged",
            "/admin/keysets/share?share=50",
            409,
        )
        .admin(),
        post(
            "share: not a number",
            "/admin/keysets/share?share=lots",
            400,
        )
        .admin(),
        post("promote: nothing staged", "/admin/keysets/promote", 409).admin(),
        post("abort: nothing staged", "/admin/keysets/abort", 409).admin(),
        post("release: not a version", "/admin/keysets/release/abc", 400).admin(),
        post(
            "release: unknown version",
            "/admin/keysets/release/999",
            404,
        )
        .admin(),
        post(
            "rollback to unknown version",
            "/admin/keysets/rollback/999",
            404,
        )
        .admin(),
        post(
            "rollback to not a version",
            "/admin/keysets/rollback/x",
            400,
        )
        .admin(),
        post("mint: no subject", "/admin/tokens", 400)
            .admin()
            .json(json!({"scope": "a"})),
        post("token: unsupported grant", "/admin/token", 400)
            .basic("demo-client", "demo-client-secret-0123456789")
            .form("grant_type=password&username=a&password=b"),
        post("token: wrong client secret", "/admin/token", 401)
            .basic("demo-client", "wrong")
            .form("grant_type=client_credentials"),
        // Review of peer gaps, item 5: `client_secret_basic` as RFC 6749 §2.3.1 spells it
        // (id and secret form-urlencoded), and as many clients send it (raw).
        post("token: client_secret_basic, form-urlencoded", "/admin/token", 200)
            .basic("rfc+client", "p%40ss%2Bw%25rd%3Ax%2Fy")
            .form("grant_type=client_credentials")
            .volatile(),
        post("token: client_secret_basic, raw", "/admin/token", 200)
            .basic("rfc client", "p@ss+w%rd:x/y")
            .form("grant_type=client_credentials")
            .volatile(),
        post("token: form-urlencoded, wrong secret", "/admin/token", 401)
            .basic("rfc+client", "p%40ss")
            .form("grant_type=client_credentials"),
        post("introspect: no credentials", "/admin/introspect", 401).form("token=x"),
        post("introspect: no token", "/admin/introspect", 400)
            .basic("orders-api", "orders-api-secret-0123456789")
            .form(""),
        post(
            "revoke: a client may not revoke by admin key's rights",
            "/admin/revoke",
            401,
        )
        .basic("demo-client", "wrong")
        .form("token=x"),
        get("jwks", "/admin/.well-known/jwks.json", 200),
        // Failed authentications are throttled per (address, presented identity): the
        // eighth bearer failure from this address (one above, with a managed token) is
        // followed by 429 for the admin key from here — and for nobody else.
        post("admin, wrong key 1", "/admin/keysets/rollback", 401).bearer("nope"),
        post("admin, wrong key 2", "/admin/keysets/rollback", 401).bearer("nope"),
        post("admin, wrong key 3", "/admin/keysets/rollback", 401).bearer("nope"),
        post("admin, wrong key 4", "/admin/keysets/rollback", 401).bearer("nope"),
        post("admin, wrong key 5", "/admin/keysets/rollback", 401).bearer("nope"),
        post("admin, wrong key 6", "/admin/keysets/rollback", 401).bearer("nope"),
        post("admin, wrong key 7", "/admin/keysets/rollback", 401).bearer("nope"),
        post("throttled", "/admin/keysets/rollback", 429).admin(),
        // Security review 3, MEDIUM 6: a resource server sharing the address keeps its
        // valid credential.
        post(
            "resource server after admin throttle",
            "/admin/introspect",
            400,
        )
        .basic("orders-api", "orders-api-secret-0123456789")
        .form(""),
        // The API itself is not throttled by admin failures.
        get("API after admin throttle", "/api/orders", 200).bearer(&t.valid),
    ]
}

/// One answer, as the suite compares it.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

async fn send(http: &reqwest::Client, base: &str, step: &Step) -> Answer {
    let method = reqwest::Method::from_bytes(step.method.as_bytes()).unwrap();
    let mut req = http.request(method, format!("{base}{}", step.path));
    for (name, value) in &step.headers {
        req = req.header(*name, value);
    }
    if let Some(body) = &step.body {
        req = req.body(body.clone());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let mut headers: Vec<(String, String)> = res
        .headers()
        .iter()
        // `Date` is the clock's, and `Connection` is hop-by-hop (RFC 9110 §7.6.1): how
        // the server treats this connection after an unread body, not the answer.
        .filter(|(name, _)| *name != "date" && *name != "connection")
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    headers.sort();
    let body = res.text().await.unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

/// Runs the script against both adapters, each on its own fixture from `make`, and
/// fails on the first step where they differ or miss what the script expects.
async fn run(backend: &str, redis: Option<&str>) {
    let clock = ManualClock::starting_now();
    let now = tokenlife_core::Clock::unix_now(&clock);
    let tower_fx = fixture(&clock, redis.map(|u| (u, "{conformance-tower}"))).await;
    let actix_fx = fixture(&clock, redis.map(|u| (u, "{conformance-actix}"))).await;
    let tower = axum_app::serve(&tower_fx).await;
    let actix = actix_app::serve(&actix_fx);
    let http = reqwest::Client::new();
    let t = tokens(now);
    let mut failures = Vec::new();
    for (i, step) in script(&t).iter().enumerate() {
        let mut a = send(&http, &tower, step).await;
        let mut b = send(&http, &actix, step).await;
        if step.volatile {
            for x in [&mut a, &mut b] {
                x.body.clear();
                x.headers.retain(|(n, _)| n != "content-length");
            }
        }
        if a != b {
            failures.push(format!(
                "{backend} #{i} {}: the adapters differ\n  tower: {a:?}\n  actix: {b:?}",
                step.name
            ));
        } else if a.status != step.want {
            eprintln!("{}", a.body);
            failures.push(format!(
                "{backend} #{i} {}: both answered {} (want {})\n  {a:?}",
                step.name, a.status, step.want
            ));
        } else if let Some(want) = step.challenge
            && !a
                .headers
                .iter()
                .any(|(n, v)| n == "www-authenticate" && v == want)
        {
            failures.push(format!(
                "{backend} #{i} {}: both challenged otherwise (want {want})\n  {a:?}",
                step.name
            ));
        } else if let Some(want) = step.want_body
            && a.body != want
        {
            failures.push(format!(
                "{backend} #{i} {}: both answered another body (want {want})\n  {a:?}",
                step.name
            ));
        } else if let Some((name, want)) = step
            .want_headers
            .iter()
            .find(|(n, v)| !a.headers.iter().any(|(hn, hv)| hn == n && hv == v))
        {
            failures.push(format!(
                "{backend} #{i} {}: both answered without {name}: {want}\n  {a:?}",
                step.name
            ));
        }
    }
    // What the observer saw (metrics, audit and alerts feed on it): the same verdicts, in
    // the same order, with the client's address, on both.
    let (a, b) = (
        tower_fx.seen.lock().unwrap().clone(),
        actix_fx.seen.lock().unwrap().clone(),
    );
    if a != b {
        failures.push(format!(
            "{backend}: observed validations differ\n  tower: {a:?}\n  actix: {b:?}"
        ));
    }
    assert!(a.iter().any(|e| e == "ok from 127.0.0.1"), "{a:?}");
    assert!(a.iter().any(|e| e == "Revoked from 127.0.0.1"), "{a:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_adapters_answer_alike_in_memory() {
    run("in-memory", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_adapters_answer_alike_on_redis() {
    let redis = RedisServer::start();
    run("redis", Some(&redis.url())).await;
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<tokenlife_actix::TokenLife>();
    assert_send_sync::<tokenlife_actix::Rejection>();
    assert_send_sync::<tokenlife_actix::Token>();
    assert_send_sync::<tokenlife_actix::AuthRejection>();
}

/// Every route of the core's table answers on the actix scope: a guarded route refuses a
/// caller without credentials with the admin challenge (so it is mounted, behind its
/// authentication), the JWKS is public, `/token` answers JSON.
#[actix_web::test]
async fn every_route_of_the_table_is_mounted_and_guarded() {
    use actix_web::{App, test};
    use tokenlife_core::admin::routes::{Operation, ROUTES};
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let validator = Validator::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let state = tokenlife_actix::admin::AdminState::builder(validator)
        .admin_key(ADMIN_KEY)
        // Twenty refusals in a row from one address: not a guess to throttle here.
        .auth_throttle(1_000, std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let app =
        test::init_service(App::new().service(tokenlife_actix::admin::scope("", state))).await;
    for route in ROUTES {
        let path = route.path_with("1");
        let method = actix_web::http::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let req = test::TestRequest::default()
            .method(method)
            .uri(&path)
            .to_request();
        let res = test::call_service(&app, req).await;
        let status = res.status().as_u16();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = test::read_body(res).await;
        let at = format!("{} {path}", route.method);
        match route.operation {
            Operation::Jwks | Operation::ConsolePage => assert_eq!(status, 200, "{at}"),
            // The page's files are public; there is no file `1`.
            Operation::ConsoleAsset => assert_eq!(status, 404, "{at}"),
            Operation::Token => {
                serde_json::from_slice::<Value>(&body)
                    .unwrap_or_else(|_| panic!("{at}: {status} without a JSON body"));
            }
            _ => {
                assert_eq!(status, 401, "{at}");
                assert_eq!(
                    challenge.as_deref(),
                    Some(r#"Bearer realm="admin""#),
                    "{at}"
                );
            }
        }
    }
}

/// Reads an event stream until `done` holds for what arrived, within five seconds.
async fn read_until(res: &mut reqwest::Response, seen: &mut String, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, res.chunk())
            .await
            .unwrap_or_else(|_| panic!("the stream never said it; it said:\n{seen}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended; it said:\n{seen}"));
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

/// The console's live stream on both adapters: the admin key only; `text/event-stream`
/// with the console's headers; a `hello`, then ticks that count the API's validations,
/// and the keyset timeline — a publish and a rollback made through the admin API appear
/// on it. At most `MAX_STREAMS` open at once (503 with `Retry-After` past that) while the
/// extra ones are never read (stalled readers hold no queue: the first stream goes on
/// ticking), and a closed stream frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_streams_on_both_adapters_and_bounds_its_streams() {
    let clock = ManualClock::starting_now();
    let now = tokenlife_core::Clock::unix_now(&clock);
    let t = tokens(now);
    let tower_fx = fixture(&clock, None).await;
    let actix_fx = fixture(&clock, None).await;
    let tower = axum_app::serve(&tower_fx).await;
    let actix = actix_app::serve(&actix_fx);
    let k2 = Keyset::new([testing::key("k2", Algorithm::ES256)])
        .unwrap()
        .to_public_jwks();
    for (base, fx) in [(tower, &tower_fx), (actix, &actix_fx)] {
        let http = reqwest::Client::new();
        let events = format!("{base}/admin/console/events");
        // A stream opened with the admin key.
        let open = async || {
            http.get(&events)
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .unwrap()
        };
        for refused in [
            http.get(&events).send().await.unwrap(),
            http.get(&events)
                .bearer_auth(&t.valid)
                .send()
                .await
                .unwrap(),
        ] {
            assert_eq!(refused.status(), 401, "{base}");
            assert_eq!(
                refused.headers()["www-authenticate"],
                r#"Bearer realm="admin""#
            );
        }
        let mut res = open().await;
        assert_eq!(res.status(), 200, "{base}");
        let h = res.headers();
        assert_eq!(h["content-type"], "text/event-stream", "{base}");
        assert_eq!(h["content-security-policy"], CSP, "{base}");
        assert_eq!(h["x-frame-options"], "DENY", "{base}");
        let mut seen = String::new();
        read_until(&mut res, &mut seen, |s| s.contains("event: hello\n")).await;

        for _ in 0..3 {
            let r = http
                .get(format!("{base}/api/orders"))
                .bearer_auth(&t.valid)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let r = http
            .post(format!("{base}/admin/keysets?label=v2&keep_signing=true"))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(k2.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{base}");
        let r = http
            .post(format!("{base}/admin/keysets/rollback"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{base}");
        read_until(&mut res, &mut seen, |s| {
            s.contains(r#""what":"publish""#) && s.contains(r#""what":"rollback""#)
        })
        .await;
        // The ticks carry the three accepted validations.
        read_until(&mut res, &mut seen, |s| {
            s.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .any(|d| d["totals"]["accepted"] == 3)
        })
        .await;
        assert_eq!(fx.console.counters().accepted, 3);

        // Fill every place with streams nobody reads.
        let mut stalled = Vec::new();
        for _ in 1..MAX_STREAMS {
            let r = open().await;
            assert_eq!(r.status(), 200, "{base}");
            stalled.push(r);
        }
        let full = open().await;
        assert_eq!(full.status(), 503, "{base}");
        assert_eq!(full.headers()["retry-after"], "5", "{base}");
        // The first stream goes on while the others stall.
        let ticks = seen.matches("event: tick").count();
        read_until(&mut res, &mut seen, |s| {
            s.matches("event: tick").count() >= ticks + 3
        })
        .await;
        // Closed streams free their places (the server sees it at its next write).
        drop(stalled);
        drop(res);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = open().await;
            if r.status() == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "{base}: places never freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
