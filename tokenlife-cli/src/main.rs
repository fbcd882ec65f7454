//! `tokenlife`: the pipeline step before and during a keyset deploy.
//!
//! - `tokenlife check` reports which live tokens a candidate keyset would break — from a
//!   sample of tokens, or from the kids and algorithms an audit trail recorded — and exits
//!   non-zero when any would.
//! - `tokenlife admin` drives a running service's admin API: status, stage (canary share or
//!   shadow), share, promote, abort, rollback, release.
//! - `tokenlife audit` questions the service's audit trail: filtered pages of records or
//!   a named report (a token's life, a subject's tokens, a keyset version's rejections),
//!   as a table or JSON.
//! - `tokenlife incident` finds a subject's tokens and where they were used, revokes them
//!   all (refresh tokens and families included) and proves from the trail that none was
//!   used after the cut-off.
//!
//! Exit codes: 0 success; 1 the candidate would break tokens, the service refused the
//! request, or an incident's proof failed; 2 bad usage or input (unreadable file, bad JWKS); 3 the service could not be
//! reached. Tokens are never printed: a result names its file and line, kid and algorithm.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use tokenlife_cli::incident::{Action, Target, respond};
use tokenlife_cli::{AdminClient, Body, CallError};
use tokenlife_core::Keyset;
use tokenlife_core::admin::routes::{Operation, route_of};
use tokenlife_core::error::KeyErrorKind;
use tokenlife_core::jsonwebtoken::Algorithm;
use tokenlife_core::rollout::{check_kid, check_token};

/// Largest input file read (tokens, audit trail, JWKS).
const MAX_INPUT: u64 = 64 * 1024 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "tokenlife",
    version,
    about = "Check a candidate keyset against live tokens, and drive a service's keyset rollout",
    after_help = "Exit codes: 0 success; 1 the candidate would break tokens, the service \
                  refused the request, or an incident's proof failed; 2 bad usage or input; 3 the service could not be reached."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Report which live tokens a candidate keyset would break (exit 1 if any would).
    Check(CheckArgs),
    /// Drive a running service's keyset rollout through its admin API.
    Admin(AdminArgs),
    /// Question a service's audit trail (its audit store): records or a named report.
    Audit(Box<AuditArgs>),
    /// Find a subject's tokens, revoke them all, and prove from the audit trail that
    /// none was used after the cut-off (exit 1 if that cannot be proven).
    Incident(IncidentArgs),
}

/// Where the service's admin routes are and how to authenticate.
#[derive(Args, Debug)]
struct Connection {
    /// Base URL of the service's admin routes (`http://127.0.0.1:9090`).
    #[arg(long, env = "TOKENLIFE_ADMIN_URL", value_name = "URL")]
    url: String,
    /// A file holding the admin key. Without it the key comes from the environment
    /// (`TOKENLIFE_ADMIN_KEY`); it is never taken on the command line, where other users
    /// of the machine can read it.
    #[arg(long = "key-file", value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Seconds to wait for the service.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    timeout: u64,
}

#[derive(Args, Debug)]
struct AuditArgs {
    #[command(flatten)]
    conn: Connection,
    /// A named report instead of records: `token` (a token's whole life, by
    /// `--fingerprint`), `subject` (a subject's tokens in a window), `rejections`
    /// (what `--keyset-version` rejected in a window).
    #[arg(long, value_parser = ["token", "subject", "rejections"])]
    report: Option<String>,
    /// The token's keyed fingerprint (32 hex digits).
    #[arg(long)]
    fingerprint: Option<String>,
    /// The subject.
    #[arg(long)]
    subject: Option<String>,
    /// The client.
    #[arg(long)]
    client: Option<String>,
    /// The `jti` of an issued access token.
    #[arg(long)]
    jti: Option<String>,
    /// The issuer.
    #[arg(long)]
    issuer: Option<String>,
    /// The address tokens were presented from.
    #[arg(long)]
    address: Option<String>,
    /// The action (`token_issued`, `token_used`, `validation_failed`, …).
    #[arg(long)]
    action: Option<String>,
    /// The outcome (`ok`, `failure`).
    #[arg(long)]
    outcome: Option<String>,
    /// The keyset version.
    #[arg(long)]
    keyset_version: Option<u64>,
    /// From (Unix seconds).
    #[arg(long)]
    since: Option<u64>,
    /// Until (Unix seconds).
    #[arg(long)]
    until: Option<u64>,
    /// Rows per page (at most 1,000).
    #[arg(long)]
    limit: Option<usize>,
    /// The cursor a previous page gave.
    #[arg(long)]
    after: Option<String>,
    /// Print the answer as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["subject", "token_file"])))]
struct IncidentArgs {
    #[command(flatten)]
    conn: Connection,
    /// The subject whose tokens are compromised.
    #[arg(long)]
    subject: Option<String>,
    /// A file holding a compromised token (`-`: standard input): its subject is learnt
    /// from the service (`/introspect`). Never give a token on the command line.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Revoke nothing: prove that a former run's cut-off (Unix seconds) still holds.
    #[arg(long, value_name = "CUTOFF")]
    verify: Option<u64>,
    /// How far back to look for the subject's tokens, in hours.
    #[arg(long, default_value_t = 24 * 7, value_name = "HOURS",
          value_parser = clap::value_parser!(u64).range(1..=24 * 365))]
    window: u64,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The candidate keyset, a JWKS file of public keys.
    #[arg(long, value_name = "JWKS")]
    candidate: PathBuf,
    /// Live tokens, one per line (`-` for standard input); repeatable.
    #[arg(long, value_name = "FILE")]
    tokens: Vec<PathBuf>,
    /// An audit trail in JSON lines: the kid and algorithm of every issued token it
    /// recorded are checked; repeatable.
    #[arg(long, value_name = "FILE")]
    audit: Vec<PathBuf>,
    /// A kid in use and its algorithm, as `KID:ALG` (`k1:ES256`); repeatable.
    #[arg(long = "kid", value_name = "KID:ALG")]
    kids: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct AdminArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    op: AdminOp,
}

#[derive(Subcommand, Debug)]
enum AdminOp {
    /// The rollout in progress, quarantined versions, retirement policy, guard.
    Status,
    /// The keyset history.
    Keysets,
    /// Stage a public JWKS as a canary (`--share`) or a shadow (`--shadow`).
    Stage {
        /// The JWKS file.
        jwks: PathBuf,
        /// Percent of clients (by subject) the canary serves, 0–100 (default 0: its keys
        /// verify for everyone, the current keys sign).
        #[arg(long, conflicts_with = "shadow")]
        share: Option<f64>,
        /// Judge traffic beside the current keyset without answering.
        #[arg(long)]
        shadow: bool,
        /// A label for the candidate.
        #[arg(long)]
        label: Option<String>,
    },
    /// Widen or narrow the canary.
    Share {
        /// Percent of clients, 0–100.
        percent: f64,
    },
    /// Make the candidate current.
    Promote {
        /// Promote the candidate of this version (not necessarily current).
        #[arg(long)]
        version: Option<u64>,
        /// For a shadow candidate: require this many judged validations and no regression.
        #[arg(long)]
        min_shadow_sample: Option<u64>,
    },
    /// Drop the candidate.
    Abort,
    /// Roll back one step, or to `--to` a version still in the history.
    Rollback {
        /// The version to go back to.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Lift the rollout guard's quarantine of a version.
    Release {
        /// The quarantined version.
        version: u64,
    },
    /// Revoke a key as compromised: it leaves the keyset, and no rollback (manual,
    /// automatic, fleet) trusts it again.
    RevokeKey {
        /// The key's kid.
        kid: String,
    },
}

/// How the command ends: the exit code and what it says on standard error.
enum Failure {
    /// Bad usage or input (exit 2).
    Input(String),
    /// The service refused the request (exit 1).
    Refused,
    /// The service could not be reached (exit 3).
    Unreachable(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check(&args),
        Command::Admin(args) => admin(&args),
        Command::Audit(args) => audit(&args),
        Command::Incident(args) => incident(&args),
    };
    match result {
        Ok(code) => code,
        Err(Failure::Input(msg)) => {
            eprintln!("tokenlife: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Refused) => ExitCode::from(1),
        Err(Failure::Unreachable(msg)) => {
            eprintln!("tokenlife: {msg}");
            ExitCode::from(3)
        }
    }
}

fn read_input(path: &Path) -> Result<String, Failure> {
    let mut text = String::new();
    let res = if path == Path::new("-") {
        std::io::stdin().take(MAX_INPUT).read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_INPUT).read_to_string(&mut text))
    };
    res.map_err(|e| Failure::Input(format!("cannot read {}: {e}", path.display())))?;
    Ok(text)
}

/// The `kid` and `alg` of a token's header, for the report (never the token).
fn header_names(token: &str) -> (Option<String>, Option<String>) {
    use tokenlife_core::jsonwebtoken::decode_header;
    match decode_header(token) {
        Ok(h) => (
            h.kid.map(|k| k.chars().take(128).collect()),
            Some(format!("{:?}", h.alg)),
        ),
        Err(_) => (None, None),
    }
}

fn check(args: &CheckArgs) -> Result<ExitCode, Failure> {
    if args.tokens.is_empty() && args.audit.is_empty() && args.kids.is_empty() {
        return Err(Failure::Input(
            "nothing to check: give --tokens, --audit or --kid".into(),
        ));
    }
    let text = read_input(&args.candidate)?;
    let candidate = Keyset::from_jwks_json(&text).map_err(|e| {
        Failure::Input(format!(
            "bad candidate JWKS {}: {e}",
            args.candidate.display()
        ))
    })?;
    let mut problems: Vec<String> = candidate
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect();
    let private = candidate.keys().any(|k| k.can_sign())
        || candidate
            .warnings()
            .iter()
            .any(|w| w.kind() == KeyErrorKind::PrivateMaterial);
    if private {
        problems.push("the candidate carries private key material: a deploy refuses it".into());
    }

    let mut results = Vec::new();
    for path in &args.tokens {
        let text = read_input(path)?;
        for (i, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            let (kid, alg) = header_names(token);
            let outcome = check_token(&candidate, token).map(|_| ());
            results.push(json!({
                "source": format!("{}:{}", path.display(), i + 1),
                "kid": kid, "alg": alg,
                "outcome": outcome.map_or_else(|k| k.as_str(), |()| "ok"),
            }));
        }
    }
    // Distinct (kid, alg) pairs from audit trails and --kid, with how often each was seen.
    let mut pairs: BTreeMap<(String, String), (String, u64)> = BTreeMap::new();
    for path in &args.audit {
        let text = read_input(path)?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event: Value = serde_json::from_str(line).map_err(|e| {
                Failure::Input(format!(
                    "{}:{}: not a JSON audit event: {e}",
                    path.display(),
                    i + 1
                ))
            })?;
            if let (Some(kid), Some(alg)) = (event["kid"].as_str(), event["alg"].as_str()) {
                pairs
                    .entry((kid.to_owned(), alg.to_owned()))
                    .or_insert_with(|| (format!("{}:{}", path.display(), i + 1), 0))
                    .1 += 1;
            }
        }
    }
    for spec in &args.kids {
        let (kid, alg) = spec
            .rsplit_once(':')
            .filter(|(k, a)| !k.is_empty() && !a.is_empty())
            .ok_or_else(|| Failure::Input(format!("--kid {spec}: expected KID:ALG")))?;
        pairs
            .entry((kid.to_owned(), alg.to_owned()))
            .or_insert_with(|| ("--kid".to_owned(), 0))
            .1 += 1;
    }
    for ((kid, alg), (source, seen)) in &pairs {
        let alg_parsed = Algorithm::from_str(alg)
            .map_err(|_| Failure::Input(format!("{source}: unknown algorithm {alg}")))?;
        let outcome = check_kid(&candidate, kid, alg_parsed);
        results.push(json!({
            "source": source, "kid": kid, "alg": alg, "seen": seen,
            "outcome": outcome.map_or_else(|k| k.as_str(), |()| "ok"),
        }));
    }

    let breaking = results.iter().filter(|r| r["outcome"] != "ok").count();
    let kids: Vec<&str> = candidate.keys().map(|k| k.kid()).collect();
    if args.json {
        let report = json!({
            "candidate": {"kids": kids, "problems": problems},
            "checked": results.len(),
            "breaking": breaking,
            "results": results,
        });
        println!("{report:#}");
    } else {
        println!(
            "candidate {}: kids {}",
            args.candidate.display(),
            kids.join(", ")
        );
        for p in &problems {
            println!("PROBLEM {p}");
        }
        for r in results.iter().filter(|r| r["outcome"] != "ok") {
            println!(
                "BREAKS {} kid={} alg={}: {}",
                r["source"].as_str().unwrap_or(""),
                r["kid"].as_str().unwrap_or("-"),
                r["alg"].as_str().unwrap_or("-"),
                r["outcome"].as_str().unwrap_or("")
            );
        }
        println!("checked {}: {breaking} would break", results.len());
    }
    Ok(if breaking > 0 || private {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The admin key: from `--key-file`, else `TOKENLIFE_ADMIN_KEY`.
fn admin_key(conn: &Connection) -> Result<zeroize::Zeroizing<String>, Failure> {
    let key = match &conn.key_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::Input(format!("--key-file {}: {e}", path.display())))?,
        None => std::env::var("TOKENLIFE_ADMIN_KEY").map_err(|_| {
            Failure::Input("the admin key: --key-file FILE or TOKENLIFE_ADMIN_KEY".into())
        })?,
    };
    let key = zeroize::Zeroizing::new(key.trim().to_owned());
    if key.is_empty() {
        return Err(Failure::Input("the admin key is empty".into()));
    }
    Ok(key)
}

fn client(conn: &Connection) -> Result<AdminClient, Failure> {
    AdminClient::new(
        &conn.url,
        admin_key(conn)?,
        Duration::from_secs(conn.timeout),
    )
    .map_err(|e| Failure::Input(e.to_string()))
}

/// A failed call: the service's refusal on standard error (exit 1), or unreachable (3).
fn failed(what: &str, e: CallError) -> Failure {
    match e {
        CallError::Refused { .. } => {
            eprintln!("tokenlife: {what}: {e}");
            Failure::Refused
        }
        CallError::Unreachable(why) => Failure::Unreachable(why),
    }
}

fn admin(args: &AdminArgs) -> Result<ExitCode, Failure> {
    let client = client(&args.conn)?;
    // Paths and methods from the core's route table: the CLI cannot drift from the API.
    let (op, param, query, body): (Operation, Option<String>, Vec<(&str, String)>, _) =
        match &args.op {
            AdminOp::Status => (Operation::Rollout, None, vec![], None),
            AdminOp::Keysets => (Operation::Keysets, None, vec![], None),
            AdminOp::Stage {
                jwks,
                share,
                shadow,
                label,
            } => {
                let mut q = Vec::new();
                if *shadow {
                    q.push(("mode", "shadow".to_owned()));
                }
                if let Some(s) = share {
                    q.push(("share", s.to_string()));
                }
                if let Some(l) = label {
                    q.push(("label", l.clone()));
                }
                (
                    Operation::Stage,
                    None,
                    q,
                    Some(Body::Json(read_input(jwks)?)),
                )
            }
            AdminOp::Share { percent } => (
                Operation::Share,
                None,
                vec![("share", percent.to_string())],
                None,
            ),
            AdminOp::Promote {
                version,
                min_shadow_sample,
            } => {
                let mut q = Vec::new();
                if let Some(v) = version {
                    q.push(("version", v.to_string()));
                }
                if let Some(m) = min_shadow_sample {
                    q.push(("min_shadow_sample", m.to_string()));
                }
                (Operation::Promote, None, q, None)
            }
            AdminOp::Abort => (Operation::Abort, None, vec![], None),
            AdminOp::Rollback { to: None } => (Operation::Rollback, None, vec![], None),
            AdminOp::Rollback { to: Some(v) } => {
                (Operation::RollbackTo, Some(v.to_string()), vec![], None)
            }
            AdminOp::Release { version } => {
                (Operation::Release, Some(version.to_string()), vec![], None)
            }
            AdminOp::RevokeKey { kid } => (Operation::RevokeKey, Some(kid.clone()), vec![], None),
        };
    let answer = client
        .call(op, param.as_deref(), &query, body)
        .map_err(|e| failed(route_of(op).path, e))?;
    println!("{answer:#}");
    Ok(ExitCode::SUCCESS)
}

fn audit(args: &AuditArgs) -> Result<ExitCode, Failure> {
    let client = client(&args.conn)?;
    let query: Vec<(&str, String)> = [
        ("report", args.report.clone()),
        ("fingerprint", args.fingerprint.clone()),
        ("subject", args.subject.clone()),
        ("client", args.client.clone()),
        ("jti", args.jti.clone()),
        ("issuer", args.issuer.clone()),
        ("address", args.address.clone()),
        ("action", args.action.clone()),
        ("outcome", args.outcome.clone()),
        ("keyset_version", args.keyset_version.map(|v| v.to_string())),
        ("since", args.since.map(|v| v.to_string())),
        ("until", args.until.map(|v| v.to_string())),
        ("limit", args.limit.map(|v| v.to_string())),
        ("after", args.after.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let answer = client
        .call(Operation::Audit, None, &query, None)
        .map_err(|e| failed("/audit", e))?;
    if args.json {
        println!("{answer:#}");
    } else {
        print!("{}", tokenlife_cli::table::render(&answer));
    }
    Ok(ExitCode::SUCCESS)
}

fn incident(args: &IncidentArgs) -> Result<ExitCode, Failure> {
    let client = client(&args.conn)?;
    let target = match (&args.subject, &args.token_file) {
        (Some(s), _) => Target::Subject(s.clone()),
        (None, Some(path)) => {
            let token = zeroize::Zeroizing::new(read_input(path)?.trim().to_owned());
            if token.is_empty() {
                return Err(Failure::Input(format!("{}: no token", path.display())));
            }
            Target::Token(token)
        }
        (None, None) => return Err(Failure::Input("--subject or --token-file".into())),
    };
    let action = args.verify.map_or(Action::Revoke, Action::Verify);
    let outcome = respond(
        &client,
        target,
        action,
        Duration::from_secs(args.window * 3_600),
        &mut std::io::stdout(),
    )
    .map_err(|e| failed("incident", e))?;
    Ok(if outcome.proven() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
