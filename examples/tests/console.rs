//! The operator console in a real browser, on both gateways: Debian's `chromium` driven
//! by `playwright-core` (`examples/console-test/console.mjs`) against the axum gateway
//! and the actix-web gateway on 127.0.0.1. The script logs in, watches the rate move,
//! sees the guard's automatic rollback of a bad deploy on the timeline, stages and
//! promotes a canary from the page, revokes a pasted token (the API then answers 401),
//! and runs axe-core on every view; screenshots land in `target/console/`.
//!
//! The axum gateway's console is reached through Debian's nginx under a path prefix
//! (`/ops/`), as an operator behind a reverse proxy reaches it: the page's relative URLs
//! and its event stream (`X-Accel-Buffering: no`) must work there.
//!
//! Needs `nginx` and `chromium` (Debian's package; `.ci/run` installs it) and Node.js; installs the
//! script's two npm packages itself when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use examples::nginx::Nginx;
use examples::{Gateway, GatewayConfig, Secret};

const ADMIN_KEY: &str = "console-test-admin-key-0123456789";

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("console-test")
}

fn npm_ready() {
    let dir = script_dir();
    if dir.join("node_modules/playwright-core").is_dir()
        && dir.join("node_modules/axe-core").is_dir()
    {
        return;
    }
    let ok = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--silent"])
        .current_dir(&dir)
        .status()
        .expect("npm is installed (Node.js 20)");
    assert!(ok.success(), "npm ci in {}", dir.display());
}

fn browse(name: &str, gw: &Gateway, admin_url: &str, audit: bool) {
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console");
    let out = Command::new("node")
        .arg("console.mjs")
        .current_dir(script_dir())
        .env("ADMIN_URL", admin_url)
        .env("API_URL", &gw.api_url)
        .env("ADMIN_KEY", ADMIN_KEY)
        .env("BAD_JWKS", &gw.bad_deploy_jwks)
        .env("NAME", name)
        .env("SHOTS", &shots)
        .env("AUDIT", if audit { "1" } else { "" })
        .output()
        .expect("node is installed");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name}: {said}");
    assert!(
        said.contains(&format!("{name}: the console passed")),
        "{said}"
    );
    assert!(shots.join(format!("overview-{name}.png")).is_file());
}

/// Debian's nginx proxying `/ops/` to `upstream` (the stream unbuffered by its
/// `X-Accel-Buffering: no`).
fn nginx(upstream: &str) -> Nginx {
    let upstream = upstream.trim_start_matches("http://").to_owned();
    Nginx::start(|port| {
        format!(
            "server {{ listen 127.0.0.1:{port}; location /ops/ {{ proxy_pass http://{upstream}/; \
             proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}"
        )
    })
}

/// A database of this test's own on the machine's PostgreSQL (`TOKENLIFE_TEST_PG`),
/// dropped after.
struct Database {
    base: String,
    name: String,
    url: String,
}

impl Database {
    fn create() -> Self {
        let base = std::env::var("TOKENLIFE_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("tokenlife_console_{}", std::process::id());
        let mut c = postgres::Client::connect(&base, postgres::NoTls).unwrap();
        // Two statements: CREATE DATABASE cannot run inside a transaction block.
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let (head, _) = base.rsplit_once('/').unwrap();
        let url = format!("{head}/{name}");
        Self { base, name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.base, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn config() -> GatewayConfig {
    GatewayConfig::local(
        Secret::new(ADMIN_KEY),
        Secret::new("console-test-client-secret"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser_on_the_axum_gateway_behind_nginx() {
    npm_ready();
    let gw = examples::start(config()).await.unwrap();
    let proxy = nginx(&gw.admin_url);
    let url = format!("{}/ops", proxy.url);
    tokio::task::spawn_blocking(move || browse("axum", &gw, &url, false))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser_on_the_actix_gateway_with_an_audit_store() {
    npm_ready();
    let db = tokio::task::spawn_blocking(Database::create).await.unwrap();
    let gw = examples::start_actix(GatewayConfig {
        audit_db: Some(examples::AuditDb::new(Secret::new(db.url.clone()))),
        ..config()
    })
    .await
    .unwrap();
    tokio::task::spawn_blocking(move || {
        let url = gw.admin_url.clone();
        browse("actix", &gw, &url, true);
        drop(db);
    })
    .await
    .unwrap();
}
