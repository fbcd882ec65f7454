//! The running proxy: the public listener ([`Proxy::router`]) and the gateway's admin
//! listener, plus the proxy's own admin routes — `GET /proxy/config`,
//! `POST /proxy/reload` (re-reads the file it started from: checked whole, a bad file is a
//! 400 naming the field and changes nothing), `POST /proxy/rollback` (the configuration
//! before the last reload) — each for the admin key only, each an audit record.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use examples::{GatewayConfig, Parts};
use http::StatusCode;
use serde_json::json;
use tokenlife_core::admin::{Access, AdminState};
use tokenlife_core::observe::Event;
use tokenlife_core::observe::audit::AuditAction;

use crate::{ConfigError, Proxy, ProxyConfig};

/// A proxy serving on its two listeners (in tasks of the current runtime).
#[derive(Debug)]
pub struct Running {
    /// The public listener's base URL.
    pub public_url: String,
    /// The admin listener's base URL.
    pub admin_url: String,
    /// The proxy (reload and roll back from code too).
    pub proxy: Proxy,
    /// The gateway's parts behind both listeners (store, guard, fleet).
    pub parts: Parts,
}

/// Where `POST /proxy/reload` and `SIGHUP` read the configuration from.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile(pub Option<PathBuf>);

impl ConfigFile {
    /// Reads and checks the file.
    ///
    /// # Errors
    /// No file was given, it cannot be read, or it does not pass [`ProxyConfig::check`].
    pub async fn load(&self) -> Result<ProxyConfig, ConfigError> {
        let Some(path) = &self.0 else {
            return Err(ConfigError::unreadable(
                "the proxy was started without --config",
            ));
        };
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| ConfigError::unreadable(e.to_string()))?;
        ProxyConfig::from_toml(&text)
    }
}

/// Builds the gateway's parts for `gateway`, binds both listeners and serves: the proxy
/// for `config` on `gateway.api_addr`, the admin routes on `gateway.admin_addr`.
///
/// # Errors
/// The gateway's parts cannot be built, the configuration is bad, or a listener cannot
/// bind.
pub async fn start(
    gateway: &GatewayConfig,
    config: ProxyConfig,
    file: ConfigFile,
) -> Result<Running, Box<dyn std::error::Error>> {
    let parts = examples::parts(gateway).await?;
    let proxy = Proxy::new(parts.validator.clone(), config)?;
    let scrape = parts.metrics.clone();
    let admin = tokenlife_tower::admin::router(parts.state.clone())
        .route("/metrics", get(move || std::future::ready(scrape.render())))
        .merge(proxy_admin(
            &proxy,
            parts.state.clone(),
            parts.validator.clone(),
            file,
        ));
    let public = tokio::net::TcpListener::bind(gateway.api_addr).await?;
    let private = tokio::net::TcpListener::bind(gateway.admin_addr).await?;
    let public_url = format!("http://{}", public.local_addr()?);
    let admin_url = format!("http://{}", private.local_addr()?);
    tokio::spawn(examples::serve(private, admin, gateway.limits));
    tokio::spawn(examples::serve(public, proxy.service(), gateway.limits));
    Ok(Running {
        public_url,
        admin_url,
        proxy,
        parts,
    })
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Tells the validator's observer (the monitor: audit, metrics) what the admin did.
fn audit(validator: &tokenlife_core::Validator, detail: &str) {
    if let Some(o) = validator.observer() {
        o.on_event(&Event::Admin {
            action: AuditAction::Admin,
            detail: Some(detail),
            failure: None,
            client: Some("admin"),
            subject: None,
            keyset_version: None,
        });
    }
}

/// `GET /proxy/config`, `POST /proxy/reload`, `POST /proxy/rollback`: the admin key only.
fn proxy_admin(
    proxy: &Proxy,
    state: AdminState,
    validator: tokenlife_core::Validator,
    file: ConfigFile,
) -> Router {
    // The refusal to answer with, or `None` for the admin.
    let guard = move |state: &AdminState, req: &Request| -> Option<Response> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        state
            .authenticate(req.headers(), peer, Access::ADMIN)
            .err()
            .map(|refused| {
                let (parts, body) = refused.into_parts();
                Response::from_parts(parts, axum::body::Body::from(body))
            })
    };
    let (p1, s1) = (proxy.clone(), state.clone());
    let (p2, s2, f2, v2) = (proxy.clone(), state.clone(), file, validator.clone());
    let v3 = validator;
    let (p3, s3) = (proxy.clone(), state);
    Router::new()
        .route(
            "/proxy/config",
            get(move |req: Request| async move {
                if let Some(refused) = guard(&s1, &req) {
                    return refused;
                }
                answer(
                    StatusCode::OK,
                    json!({"version": p1.version(), "config": p1.config()}),
                )
            }),
        )
        .route(
            "/proxy/reload",
            post(move |req: Request| async move {
                if let Some(refused) = guard(&s2, &req) {
                    return refused;
                }
                match f2.load().await.and_then(|c| p2.apply(c)) {
                    Ok(version) => {
                        audit(&v2, &format!("proxy reload v{version}"));
                        answer(StatusCode::OK, json!({"version": version}))
                    }
                    Err(e) => answer(
                        StatusCode::BAD_REQUEST,
                        json!({"error": "invalid_request", "error_description": e.to_string(),
                            "field": e.field(), "version": p2.version()}),
                    ),
                }
            }),
        )
        .route(
            "/proxy/rollback",
            post(move |req: Request| async move {
                if let Some(refused) = guard(&s3, &req) {
                    return refused;
                }
                match p3.rollback() {
                    Some(version) => {
                        audit(&v3, &format!("proxy rollback v{version}"));
                        answer(StatusCode::OK, json!({"version": version}))
                    }
                    None => answer(
                        StatusCode::CONFLICT,
                        json!({"error": "conflict",
                            "error_description": "no configuration to roll back to"}),
                    ),
                }
            }),
        )
}
