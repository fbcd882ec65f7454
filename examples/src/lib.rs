//! Runnable examples for tokenlife (`cargo run -p examples --example NAME`) and the
//! gateway they share with their tests.
//!
//! - `gateway`: the main job. An axum API protected by [`TokenLifeLayer`], the admin
//!   router on its own port, Prometheus `/metrics`; prints the curl lines to try it.
//! - `lifecycle`: one token's life on a manual clock, with audit lines and metrics.
//! - `quickstart`: the core API on the console.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tokenlife_core::audit::Auditor;
use tokenlife_core::{Algorithm, Issuer, Key, Keyset, KeysetStore, Monitor, Validator};
use tokenlife_tower::admin::{self, AdminState};
use tokenlife_tower::{Claims, TokenLifeLayer};

/// How the gateway is set up (flags and env in the `gateway` example).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where the protected API listens.
    pub api_addr: SocketAddr,
    /// Where the admin router and `/metrics` listen.
    pub admin_addr: SocketAddr,
    /// The `iss` of issued tokens (and the one accepted).
    pub issuer: String,
    /// The `aud` of issued tokens (and the one accepted).
    pub audience: String,
    /// The admin credential.
    pub admin_key: String,
    /// The demo client's id.
    pub client_id: String,
    /// The demo client's secret.
    pub client_secret: String,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Write audit events as JSON lines to stdout.
    pub audit_stdout: bool,
}

/// A random URL-safe string (for default secrets).
pub fn random_secret() -> String {
    let mut b = [0u8; 18];
    getrandom::fill(&mut b).expect("OS random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Base URL of the API.
    pub api_url: String,
    /// Base URL of the admin router.
    pub admin_url: String,
    /// The config it runs with.
    pub config: GatewayConfig,
    /// A public JWKS of a fresh key that signs nothing here: publishing it is a "bad deploy".
    pub bad_deploy_jwks: String,
}

#[derive(Deserialize)]
struct OrderClaims {
    sub: String,
    scope: Option<String>,
}

async fn orders(Claims(c): Claims<OrderClaims>) -> String {
    format!(
        "orders for {} (scope: {})\n",
        c.sub,
        c.scope.unwrap_or_default()
    )
}

fn prometheus() -> PrometheusHandle {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // Another recorder may already be installed (tests): the handle then renders nothing.
    let _ = metrics::set_global_recorder(recorder);
    handle
}

/// Binds both listeners and starts serving in the background (on the current runtime).
///
/// # Errors
/// A key could not be generated or a listener could not bind.
pub async fn start(config: GatewayConfig) -> Result<Gateway, Box<dyn std::error::Error>> {
    let prometheus = prometheus();
    let signing = Key::generate("gw-1", Algorithm::ES256)?;
    let store = KeysetStore::new(Keyset::new([signing])?.with_label("boot"));
    let mut auditor = Auditor::builder();
    if config.audit_stdout {
        auditor = auditor.json_lines(std::io::stdout());
    }
    let monitor = Monitor::builder().auditor(auditor.build()).build();
    let validator = Validator::builder(store.clone())
        .issuer(&config.issuer)
        .audience(&config.audience)
        .monitor(monitor.clone())
        .build()?;
    let issuer = Issuer::builder(store.clone())
        .issuer(&config.issuer)
        .audience(&config.audience)
        .access_ttl(config.access_ttl)
        .revocations(validator.revocations().clone())
        .monitor(monitor)
        .build()?;

    let api = Router::new()
        .route("/orders", get(orders))
        .route(
            "/orders/admin",
            get(|| async { "order admin\n" })
                .route_layer(TokenLifeLayer::new(validator.clone()).require_scope("orders:write")),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(TokenLifeLayer::new(validator.clone()).skip_path("/healthz"));

    let state = AdminState::builder(validator)
        .issuer(issuer)
        .admin_key(&config.admin_key)
        .client(
            &config.client_id,
            &config.client_secret,
            Some("orders:read"),
        )
        .build()?;
    let admin = admin::router(state).route(
        "/metrics",
        get(move || std::future::ready(prometheus.render())),
    );

    let api_listener = tokio::net::TcpListener::bind(config.api_addr).await?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_addr).await?;
    let api_url = format!("http://{}", api_listener.local_addr()?);
    let admin_url = format!("http://{}", admin_listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(
            api_listener,
            api.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    tokio::spawn(async move {
        let _ = axum::serve(
            admin_listener,
            admin.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let bad_deploy_jwks =
        Keyset::new([Key::generate("bad-deploy", Algorithm::ES256)?])?.to_public_jwks();
    Ok(Gateway {
        api_url,
        admin_url,
        config,
        bad_deploy_jwks,
    })
}

impl Gateway {
    /// The curl lines that walk through the gateway, ready to paste into a shell.
    pub fn curl_lines(&self) -> String {
        let (api, admin, c) = (&self.api_url, &self.admin_url, &self.config);
        let key = &c.admin_key;
        let get_token = format!(
            "TOKEN=$(curl -s -u {}:{} -d grant_type=client_credentials {admin}/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')",
            c.client_id, c.client_secret
        );
        format!(
            "\
# 1. get a token (OAuth 2.0 client credentials)
{get_token}
# 2. call a protected route: 200
curl -i -H \"Authorization: Bearer $TOKEN\" {api}/orders
# 3. revoke it (RFC 7009)
curl -i -H \"Authorization: Bearer {key}\" -d \"token=$TOKEN\" {admin}/revoke
# 4. call again: 401 invalid_token (token revoked)
curl -i -H \"Authorization: Bearer $TOKEN\" {api}/orders
# 5. a bad keyset deploy, then the rollback
{get_token}
curl -s -H \"Authorization: Bearer {key}\" -H 'content-type: application/json' -d '{jwks}' '{admin}/keysets?label=bad-deploy&keep_signing=false'
curl -i -H \"Authorization: Bearer $TOKEN\" {api}/orders
curl -s -X POST -H \"Authorization: Bearer {key}\" {admin}/keysets/rollback
curl -i -H \"Authorization: Bearer $TOKEN\" {api}/orders
curl -s -H \"Authorization: Bearer {key}\" {admin}/keysets
# 6. read the metrics
curl -s {admin}/metrics | grep '^tokenlife_'
",
            jwks = self.bad_deploy_jwks
        )
    }
}
