//! `tokenlife`: the pipeline step before and during a keyset deploy.
//!
//! - `tokenlife check` reports which live tokens a candidate keyset would break — from a
//!   sample of tokens, or from the kids and algorithms an audit trail recorded — and exits
//!   non-zero when any would.
//! - `tokenlife admin` drives a running service's admin API: status, stage (canary share or
//!   shadow), share, promote, abort, rollback, release.
//!
//! Exit codes: 0 success; 1 the candidate would break tokens, or the service refused the
//! request; 2 bad usage or input (unreadable file, bad JWKS); 3 the service could not be
//! reached. Tokens are never printed: a result names its file and line, kid and algorithm.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
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
    after_help = "Exit codes: 0 success; 1 the candidate would break tokens, or the service \
                  refused the request; 2 bad usage or input; 3 the service could not be reached."
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
    /// Question the audit trail (the service's audit store): records newest first, as
    /// JSON, with the cursor of the next page (`--after`).
    Audit {
        /// The token's keyed fingerprint (32 hex digits).
        #[arg(long)]
        fingerprint: Option<String>,
        /// The subject.
        #[arg(long)]
        subject: Option<String>,
        /// The client.
        #[arg(long)]
        client: Option<String>,
        /// The action (`token_issued`, `validation_failed`, …).
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
    },
}

/// `s` as one URL path segment (RFC 3986 unreserved characters kept, the rest
/// percent-encoded).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
fn admin_key(args: &AdminArgs) -> Result<zeroize::Zeroizing<String>, Failure> {
    let key = match &args.key_file {
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

fn admin(args: &AdminArgs) -> Result<ExitCode, Failure> {
    let key = admin_key(args)?;
    let base = args.url.trim_end_matches('/');
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(args.timeout.max(1)))
        .build()
        .map_err(|e| Failure::Input(format!("HTTP client: {e}")))?;
    // Paths and methods from the core's route table: the CLI cannot drift from the API.
    let with_query = |op: Operation, q: &[String]| {
        let r = route_of(op);
        let query = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        (r.method.as_str(), format!("{}{query}", r.path))
    };
    let ((method, path), body) = match &args.op {
        AdminOp::Status => (with_query(Operation::Rollout, &[]), None),
        AdminOp::Keysets => (with_query(Operation::Keysets, &[]), None),
        AdminOp::Stage {
            jwks,
            share,
            shadow,
            label,
        } => {
            let mut q = Vec::new();
            if *shadow {
                q.push("mode=shadow".to_owned());
            }
            if let Some(s) = share {
                q.push(format!("share={s}"));
            }
            if let Some(l) = label {
                q.push(format!("label={}", encode(l)));
            }
            (with_query(Operation::Stage, &q), Some(read_input(jwks)?))
        }
        AdminOp::Share { percent } => (
            with_query(Operation::Share, &[format!("share={percent}")]),
            None,
        ),
        AdminOp::Promote {
            version,
            min_shadow_sample,
        } => {
            let mut q = Vec::new();
            if let Some(v) = version {
                q.push(format!("version={v}"));
            }
            if let Some(m) = min_shadow_sample {
                q.push(format!("min_shadow_sample={m}"));
            }
            (with_query(Operation::Promote, &q), None)
        }
        AdminOp::Abort => (with_query(Operation::Abort, &[]), None),
        AdminOp::Rollback { to } => (
            match to {
                None => with_query(Operation::Rollback, &[]),
                Some(v) => {
                    let r = route_of(Operation::RollbackTo);
                    (r.method.as_str(), r.path_with(&v.to_string()))
                }
            },
            None,
        ),
        AdminOp::Release { version } => {
            let r = route_of(Operation::Release);
            ((r.method.as_str(), r.path_with(&version.to_string())), None)
        }
        AdminOp::RevokeKey { kid } => {
            let r = route_of(Operation::RevokeKey);
            ((r.method.as_str(), r.path_with(&path_segment(kid))), None)
        }
        AdminOp::Audit {
            fingerprint,
            subject,
            client,
            action,
            outcome,
            keyset_version,
            since,
            until,
            limit,
            after,
        } => {
            let text = [
                ("fingerprint", fingerprint.clone()),
                ("subject", subject.clone()),
                ("client", client.clone()),
                ("action", action.clone()),
                ("outcome", outcome.clone()),
                ("keyset_version", keyset_version.map(|v| v.to_string())),
                ("since", since.map(|v| v.to_string())),
                ("until", until.map(|v| v.to_string())),
                ("limit", limit.map(|v| v.to_string())),
                ("after", after.clone()),
            ];
            let q: Vec<String> = text
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k}={}", path_segment(&v))))
                .collect();
            (with_query(Operation::Audit, &q), None)
        }
    };
    let url = format!("{base}{path}");
    let mut req = match method {
        "GET" => client.get(&url),
        _ => client.post(&url),
    }
    .bearer_auth(key.as_str());
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let res = req
        .send()
        .map_err(|e| Failure::Unreachable(format!("{method} {url}: {e}")))?;
    let status = res.status();
    let text = res
        .text()
        .map_err(|e| Failure::Unreachable(format!("{method} {url}: {e}")))?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        println!("{body:#}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "tokenlife: {method} {path}: {status}: {}: {}",
            body["error"].as_str().unwrap_or("error"),
            body["error_description"].as_str().unwrap_or("")
        );
        Err(Failure::Refused)
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
