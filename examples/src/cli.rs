//! The gateway's command line, shared by the `gateway` (axum) and `actix_gateway`
//! examples: flags and environment into a [`GatewayConfig`], and the banner with the
//! curl walkthrough.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::{
    AlertWebhook, AuditDb, FleetSettings, Gateway, GatewayConfig, Secret, ServeLimits,
    random_secret,
};

/// tokenlife gateway example.
#[derive(Parser)]
#[command(
    version,
    about = "A service that is its own token gateway (tokenlife example)"
)]
#[command(group(clap::ArgGroup::new("audit_source").args(["audit_db", "audit_db_file"])))]
struct Args {
    /// Address of the protected API.
    #[arg(long, env = "TOKENLIFE_API_ADDR", default_value = "127.0.0.1:8080")]
    api_addr: SocketAddr,
    /// Address of the admin router and /metrics.
    #[arg(long, env = "TOKENLIFE_ADMIN_ADDR", default_value = "127.0.0.1:8081")]
    admin_addr: SocketAddr,
    /// Issuer (`iss`) of the tokens this gateway mints.
    #[arg(
        long,
        env = "TOKENLIFE_TOKEN_ISSUER",
        default_value = "https://gateway.example.com"
    )]
    token_issuer: String,
    /// An external identity provider (issuer URL, OpenID discovery) whose tokens the API
    /// accepts too; repeat for several.
    #[arg(long = "issuer", value_name = "URL")]
    issuers: Vec<String>,
    /// After an unknown kid of an external issuer wakes a key refresh, seconds during
    /// which that same kid wakes none again (all unknown kids together wake at most one
    /// refresh every 2 s).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    unknown_kid_cooldown: u64,
    /// A directory where each `--issuer`'s last good JWKS is kept: a restart while its
    /// provider is down begins from those keys (without it, that issuer's tokens are 503
    /// until the provider answers).
    #[arg(long, value_name = "DIR")]
    jwks_cache: Option<std::path::PathBuf>,
    /// Also write the audit trail to this PostgreSQL database (`postgres://user:pw@host/db`;
    /// it may hold a password: prefer the environment variable).
    #[arg(long, env = "TOKENLIFE_AUDIT_DB", hide_env_values = true)]
    audit_db: Option<String>,
    /// A file holding the audit database's URL (instead of `--audit-db`).
    #[arg(long, value_name = "FILE", conflicts_with = "audit_db")]
    audit_db_file: Option<PathBuf>,
    /// While the audit database is down, keep its batches in a spool file in this
    /// directory (at most 1 GiB) and replay them in order when it is back.
    #[arg(long, value_name = "DIR", requires = "audit_source")]
    audit_spool: Option<PathBuf>,
    /// POST every alert as JSON to this URL (a pager, a chat, your own receiver).
    #[arg(long, value_name = "URL")]
    alert_webhook: Option<String>,
    /// A file holding the secret the webhook's requests are signed with (HMAC-SHA256 in
    /// `X-Tokenlife-Signature`, with `X-Tokenlife-Timestamp`).
    #[arg(long, value_name = "FILE", requires = "alert_webhook")]
    alert_webhook_secret_file: Option<PathBuf>,
    /// Send Slack-compatible `{"text": …}` payloads to the webhook.
    #[arg(long, requires = "alert_webhook")]
    alert_webhook_slack: bool,
    /// Record every successful validation in the audit database, not one row per token
    /// per minute.
    #[arg(long, requires = "audit_source")]
    audit_every_validation: bool,
    /// Audience (`aud`) of the tokens.
    #[arg(long, env = "TOKENLIFE_AUDIENCE", default_value = "api://orders")]
    audience: String,
    /// File holding the admin credential (else $TOKENLIFE_ADMIN_KEY, else random).
    #[arg(long)]
    admin_key_file: Option<PathBuf>,
    /// Demo OAuth client id.
    #[arg(long, env = "TOKENLIFE_CLIENT_ID", default_value = "demo-client")]
    client_id: String,
    /// File holding the demo client's secret (else $TOKENLIFE_CLIENT_SECRET, else random).
    #[arg(long)]
    client_secret_file: Option<PathBuf>,
    /// Access-token lifetime in seconds (1 to 31536000).
    #[arg(long, env = "TOKENLIFE_ACCESS_TTL", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    access_ttl: u64,
    /// Seconds within which a client that lost a renewal's answer may present the rotated
    /// refresh token again and get a sibling pair (0 to 300; 0 turns retries off).
    #[arg(long, env = "TOKENLIFE_REFRESH_RETRY_GRACE", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    refresh_retry_grace: u64,
    /// Seconds after a refresh token's rotation during which presenting it again is a
    /// concurrent duplicate (refused) rather than reuse (its family revoked): 0 to 60.
    #[arg(long, env = "TOKENLIFE_REFRESH_REUSE_GRACE", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=60))]
    refresh_reuse_grace: u64,
    /// Longest wait for a request's headers, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Longest time a request may take, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout: u64,
    /// Most open connections per listener.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Most open connections from one client address.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections_per_address: u64,
    /// Do not print audit events.
    #[arg(long)]
    quiet: bool,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    run_for: Option<u64>,
    /// The signing key, a PKCS#8 PEM file (ES256); default a fresh one. Every node of a
    /// fleet needs the same one.
    #[arg(long, env = "TOKENLIFE_SIGNING_KEY_FILE")]
    signing_key_file: Option<PathBuf>,
    /// Fleet mode: share revocations, keysets and refresh tokens through this Redis.
    #[arg(long, env = "TOKENLIFE_REDIS_URL")]
    redis: Option<String>,
    /// Fleet key and channel prefix (keep the {hash tag}).
    #[arg(long, env = "TOKENLIFE_FLEET_PREFIX", default_value = "{tokenlife}")]
    fleet_prefix: String,
    /// This node's name in the fleet.
    #[arg(long, env = "TOKENLIFE_NODE_ID", default_value = "gateway")]
    node_id: String,
}

/// A secret from a file, else from an environment variable, else random (and then
/// shown once on stderr).
fn secret(file: Option<&PathBuf>, env: &str) -> Result<(Secret, bool), Box<dyn std::error::Error>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let s = text.trim();
        if s.is_empty() {
            return Err(format!("{} is empty", path.display()).into());
        }
        return Ok((Secret::new(s), false));
    }
    match std::env::var(env) {
        Ok(v) if !v.is_empty() => Ok((Secret::new(v), false)),
        Ok(_) => Err(format!("${env} is empty").into()),
        Err(_) => Ok((random_secret(), true)),
    }
}

/// What the command line asked for: the config, whether the admin key and the client
/// secret were generated (and so are shown once), how long to run.
#[derive(Debug)]
pub struct Cli {
    /// The gateway's config.
    pub config: GatewayConfig,
    admin_generated: bool,
    client_generated: bool,
    run_for: Option<u64>,
}

impl Cli {
    /// Parses the process's arguments and environment.
    ///
    /// # Errors
    /// A secret file cannot be read or is empty, or a secret variable is empty.
    pub fn parse() -> Result<Self, Box<dyn std::error::Error>> {
        let args = Args::parse();
        let (admin_key, admin_generated) =
            secret(args.admin_key_file.as_ref(), "TOKENLIFE_ADMIN_KEY")?;
        let (client_secret, client_generated) =
            secret(args.client_secret_file.as_ref(), "TOKENLIFE_CLIENT_SECRET")?;
        let audit_db_url = match &args.audit_db_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("--audit-db-file {}: {e}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => args.audit_db.clone(),
        };
        let alert_webhook = match &args.alert_webhook {
            Some(url) => Some(AlertWebhook {
                url: url.clone(),
                secret: match &args.alert_webhook_secret_file {
                    Some(p) => Some(Secret::new(
                        std::fs::read_to_string(p)
                            .map_err(|e| {
                                format!("--alert-webhook-secret-file {}: {e}", p.display())
                            })?
                            .trim()
                            .to_owned(),
                    )),
                    None => None,
                },
                slack: args.alert_webhook_slack,
            }),
            None => None,
        };
        let config = GatewayConfig {
            alert_webhook,
            api_addr: args.api_addr,
            admin_addr: args.admin_addr,
            issuer: args.token_issuer,
            audience: args.audience,
            admin_key,
            client_id: args.client_id,
            client_secret,
            access_ttl: Duration::from_secs(args.access_ttl),
            refresh_retry_grace: Duration::from_secs(args.refresh_retry_grace),
            refresh_reuse_grace: Duration::from_secs(args.refresh_reuse_grace),
            audit_stdout: !args.quiet,
            limits: ServeLimits {
                header_read_timeout: Duration::from_secs(args.header_timeout),
                request_timeout: Duration::from_secs(args.request_timeout),
                max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
                max_connections_per_address: usize::try_from(args.max_connections_per_address)
                    .unwrap_or(usize::MAX),
            },
            signing_key_pem: match &args.signing_key_file {
                Some(path) => Some(Secret::new(std::fs::read_to_string(path)?)),
                None => None,
            },
            external_issuers: args.issuers,
            unknown_kid_cooldown: Duration::from_secs(args.unknown_kid_cooldown),
            jwks_cache: args.jwks_cache,
            audit_db: audit_db_url.map(|url| AuditDb {
                spool: args.audit_spool,
                every_validation: args.audit_every_validation,
                ..AuditDb::new(Secret::new(url))
            }),
            node_id: args.node_id.clone(),
            fleet: args.redis.map(|redis_url| FleetSettings {
                redis_url: Secret::new(redis_url),
                prefix: args.fleet_prefix,
                node_id: args.node_id,
            }),
        };
        Ok(Self {
            config,
            admin_generated,
            client_generated,
            run_for: args.run_for,
        })
    }

    /// Prints the banner and the walkthrough to stderr, then serves for `--run-for`
    /// seconds or until interrupted.
    pub async fn run(&self, gw: &Gateway, framework: &str) {
        eprintln!("tokenlife gateway ({framework})");
        eprintln!(
            "  API    {}  (GET /orders needs a token; /healthz does not)",
            gw.api_url
        );
        eprintln!(
            "  admin  {}  (admin key below; /metrics and /.well-known/jwks.json are open)",
            gw.admin_url
        );
        // Secrets are shown only when generated here (nobody else knows them); from the
        // environment or a file they stay where the operator put them.
        if self.admin_generated {
            eprintln!(
                "  export TOKENLIFE_ADMIN_KEY={}   # generated",
                gw.config.admin_key.expose()
            );
        }
        if self.client_generated {
            eprintln!(
                "  export TOKENLIFE_CLIENT_SECRET={}   # generated, for client {}",
                gw.config.client_secret.expose(),
                gw.config.client_id
            );
        }
        eprintln!(
            "\nTry it (audit events go to stdout as JSON lines):\n\n{}",
            gw.curl_lines()
        );
        match self.run_for {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending::<()>().await,
        }
    }
}
