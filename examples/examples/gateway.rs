//! The main job: this service is its own token gateway.
//!
//! `cargo run -p examples --example gateway` starts, on in-memory defaults with a freshly
//! generated keyset, an axum API whose routes are protected by `TokenLifeLayer`, the admin
//! router on a separate port and Prometheus `/metrics`, then prints the curl lines to try
//! it. `cargo run -p examples --example gateway -- --help` lists the flags.
//! `actix_gateway` is the same on actix-web.
//!
//! stdout carries the audit trail only (JSON lines); everything meant for a person,
//! generated credentials included, goes to stderr. Secrets are never taken from the
//! command line (where the process list shows them): give them in a file or in the
//! environment.

use examples::cli::Cli;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse()?;
    let gw = examples::start(cli.config.clone()).await?;
    cli.run(&gw, "axum").await;
    Ok(())
}
