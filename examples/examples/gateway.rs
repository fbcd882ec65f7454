//! The main job: this service is its own token gateway.
//!
//! `cargo run -p examples --example gateway` starts, on in-memory defaults with a freshly
//! generated keyset, an axum API whose routes are protected by `TokenLifeLayer`, the admin
//! router on a separate port and Prometheus `/metrics`, then prints the curl lines to try
//! it. `cargo run -p examples --example gateway -- --help` lists the flags.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use examples::{GatewayConfig, random_secret, start};

/// tokenlife gateway example.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "A service that is its own token gateway (tokenlife example)"
)]
struct Args {
    /// Address of the protected API.
    #[arg(long, env = "TOKENLIFE_API_ADDR", default_value = "127.0.0.1:8080")]
    api_addr: SocketAddr,
    /// Address of the admin router and /metrics.
    #[arg(long, env = "TOKENLIFE_ADMIN_ADDR", default_value = "127.0.0.1:8081")]
    admin_addr: SocketAddr,
    /// Issuer (`iss`) of the tokens.
    #[arg(
        long,
        env = "TOKENLIFE_ISSUER",
        default_value = "https://gateway.example.com"
    )]
    issuer: String,
    /// Audience (`aud`) of the tokens.
    #[arg(long, env = "TOKENLIFE_AUDIENCE", default_value = "api://orders")]
    audience: String,
    /// Admin credential (random when not given).
    #[arg(long, env = "TOKENLIFE_ADMIN_KEY")]
    admin_key: Option<String>,
    /// Demo OAuth client id.
    #[arg(long, env = "TOKENLIFE_CLIENT_ID", default_value = "demo-client")]
    client_id: String,
    /// Demo OAuth client secret (random when not given).
    #[arg(long, env = "TOKENLIFE_CLIENT_SECRET")]
    client_secret: Option<String>,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "TOKENLIFE_ACCESS_TTL", default_value_t = 900)]
    access_ttl: u64,
    /// Do not print audit events.
    #[arg(long)]
    quiet: bool,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    run_for: Option<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = GatewayConfig {
        api_addr: args.api_addr,
        admin_addr: args.admin_addr,
        issuer: args.issuer,
        audience: args.audience,
        admin_key: args.admin_key.unwrap_or_else(random_secret),
        client_id: args.client_id,
        client_secret: args.client_secret.unwrap_or_else(random_secret),
        access_ttl: Duration::from_secs(args.access_ttl),
        audit_stdout: !args.quiet,
    };
    let gw = start(config).await?;
    println!("tokenlife gateway");
    println!(
        "  API    {}  (GET /orders needs a token; /healthz does not)",
        gw.api_url
    );
    println!(
        "  admin  {}  (admin key below; /metrics and /.well-known/jwks.json are open)",
        gw.admin_url
    );
    println!(
        "  admin key {}   demo client {} / {}",
        gw.config.admin_key, gw.config.client_id, gw.config.client_secret
    );
    println!(
        "\nTry it (audit events follow as JSON lines):\n\n{}",
        gw.curl_lines()
    );
    match args.run_for {
        Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
        None => std::future::pending::<()>().await,
    }
    Ok(())
}
