//! The main job on actix-web: the gateway example's API behind `tokenlife_actix::TokenLife`,
//! the admin and OAuth scope and Prometheus `/metrics` on a second port, the same flags
//! and the same printed curl walkthrough (replayed by `examples/tests/gateway.rs`).
//!
//! `cargo run -p examples --example actix_gateway` (`-- --help` lists the flags).

use examples::cli::Cli;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse()?;
    let gw = examples::start_actix(cli.config.clone()).await?;
    cli.run(&gw, "actix-web").await;
    Ok(())
}
