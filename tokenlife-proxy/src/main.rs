//! `tokenlife-proxy`: the gateway's validator and admin listener in front of any service.
//!
//! ```text
//! cargo run -p tokenlife-proxy -- --upstream http://127.0.0.1:3000
//! cargo run -p tokenlife-proxy -- --config proxy.toml
//! ```
//!
//! The public listener proxies to the upstream(s) after tokenlife's guard and answers
//! forward-auth at `/auth`; the admin listener is the gateway's (revocations, keysets,
//! rollout, audit, metrics, the console, and `/proxy/config`, `/proxy/reload`,
//! `/proxy/rollback`). `SIGHUP` reloads the file. It prints the admin key and how to get
//! a token.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use examples::{GatewayConfig, Secret};
use tokenlife_proxy::{ConfigFile, ProxyConfig};

/// tokenlife in front of a service in any language.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Send everything to this upstream (`http://host:port`).
    #[arg(long, conflicts_with = "config")]
    upstream: Option<String>,
    /// Routes, claims and limits from this TOML file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The public listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The admin listener (keep it off the public network).
    #[arg(long, default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// A file holding the admin key (a fresh one is made and printed otherwise).
    #[arg(long)]
    admin_key_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let file = ConfigFile(args.config.clone());
    let config = match &args.upstream {
        Some(up) => ProxyConfig::single(up)?,
        None if args.config.is_some() => file.load().await?,
        None => return Err("give --upstream URL or --config FILE".into()),
    };
    let admin_key = match &args.admin_key_file {
        Some(p) => Secret::new(std::fs::read_to_string(p)?.trim()),
        None => examples::random_secret(),
    };
    let gateway = GatewayConfig {
        api_addr: args.listen,
        admin_addr: args.admin_listen,
        ..GatewayConfig::local(admin_key.clone(), examples::random_secret())
    };
    let running = tokenlife_proxy::start(&gateway, config, file.clone()).await?;
    println!("tokenlife-proxy on {}", running.public_url);
    println!("admin on {} (the console at /console)", running.admin_url);
    println!("admin key: {}", admin_key.expose());
    println!(
        "a token: curl -s -X POST {}/tokens -H 'authorization: Bearer {}' -H 'content-type: application/json' -d '{{\"subject\":\"alice\",\"scope\":\"orders:read\"}}'",
        running.admin_url,
        admin_key.expose()
    );
    // SIGHUP re-reads the file: a bad one is reported and changes nothing.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => match file.load().await.and_then(|c| running.proxy.apply(c)) {
                Ok(v) => println!("configuration v{v} in force"),
                Err(e) => eprintln!("configuration refused, v{} stays: {e}", running.proxy.version()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
