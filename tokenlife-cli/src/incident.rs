//! Incident response in one command: `tokenlife incident --subject S` (or `--token-file`).
//!
//! 1. **Find**: the subject's tokens from the audit trail (`GET /audit?report=subject`):
//!    each token issued in the window, how often, when and from where it was used.
//! 2. **Cut**: revoke every token of the subject issued up to now
//!    (`POST /revocations/subject`): through the service's issuer that reaches its
//!    refresh tokens (every family), and in fleet mode every replica within milliseconds.
//! 3. **Prove**, from the trail: no token issued at or before the cut-off was used
//!    successfully after it — and how many attempts were refused. Run again later with
//!    `--verify CUTOFF` to prove it still holds (nothing revoked again).
//!
//! Who may run it: whoever holds the admin key (the endpoints are admin-only). A token
//! given to it is read from a file (never the command line, which other users of the
//! machine can read) and sent only in a form body to `/introspect`, to learn its subject.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokenlife_core::admin::routes::Operation;

use crate::table::{subject_tokens, utc};
use crate::{AdminClient, Body, CallError};

/// Whom the incident is about.
#[derive(Debug)]
pub enum Target {
    /// A subject.
    Subject(String),
    /// A (stolen) token: its subject is learnt by introspection.
    Token(zeroize::Zeroizing<String>),
}

/// What the command does after finding the tokens.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Revoke now, then prove.
    Revoke,
    /// Revoke nothing: prove that the cut-off at this Unix second (a former run's) holds.
    Verify(u64),
}

/// What an incident run found and proved.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outcome {
    /// The subject.
    pub subject: String,
    /// The cut-off (Unix seconds): tokens issued at or before it are revoked.
    pub cutoff: u64,
    /// The tokens the trail knows of the subject in the window, before the cut.
    pub tokens: Vec<Value>,
    /// Tokens issued at or before the cut-off used successfully after it (their
    /// fingerprints): empty when proven.
    pub used_after: Vec<String>,
    /// Failed validations and renewals of those tokens from the cut-off on (refused
    /// attempts; at most 1,000 of each kind counted per token).
    pub refused: u64,
}

impl Outcome {
    /// Whether the trail shows no successful use after the cut-off.
    pub fn proven(&self) -> bool {
        self.used_after.is_empty()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn subject_of(client: &AdminClient, target: Target) -> Result<String, CallError> {
    match target {
        Target::Subject(s) => Ok(s),
        Target::Token(t) => {
            let form = zeroize::Zeroizing::new(format!("token={}", crate::encode(&t)));
            let answer = client.call(
                Operation::Introspect,
                None,
                &[],
                Some(Body::Form(form.to_string())),
            )?;
            match (answer["active"].as_bool(), answer["sub"].as_str()) {
                (Some(true), Some(sub)) => Ok(sub.to_owned()),
                _ => Err(CallError::Refused {
                    status: 404,
                    error: "inactive_token".into(),
                    description: "the token is not active (expired, revoked or unknown): \
                                  give --subject"
                        .into(),
                }),
            }
        }
    }
}

fn report(client: &AdminClient, subject: &str, since: u64) -> Result<Value, CallError> {
    client.call(
        Operation::Audit,
        None,
        &[
            ("report", "subject".into()),
            ("subject", subject.to_owned()),
            ("since", since.to_string()),
        ],
        None,
    )
}

/// Runs the incident (see the [module](self)), writing what it does to `out`: the
/// tokens of the last `window`, the cut, the proof.
///
/// # Errors
/// A call to the service failed ([`CallError`]); writing to `out` failing is ignored.
pub fn respond(
    client: &AdminClient,
    target: Target,
    action: Action,
    window: Duration,
    out: &mut dyn Write,
) -> Result<Outcome, CallError> {
    let subject = subject_of(client, target)?;
    let since = now().saturating_sub(window.as_secs());
    let before = report(client, &subject, since)?;
    let tokens = before["tokens"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "subject {subject}: {} tokens issued since {}",
        tokens.len(),
        utc(since)
    );
    let _ = write!(out, "{}", subject_tokens(&tokens));
    let cutoff = match action {
        Action::Revoke => {
            let answer = client.call(
                Operation::RevokeSubject,
                None,
                &[],
                Some(Body::Json(json!({ "subject": subject }).to_string())),
            )?;
            let cutoff = answer["issued_before"].as_u64().unwrap_or_else(now);
            let _ = writeln!(
                out,
                "revoked every token of {subject} issued at or before {} (refresh tokens and \
                 every family included), until {}",
                utc(cutoff),
                answer["until"].as_u64().map_or_else(|| "-".into(), utc)
            );
            cutoff
        }
        Action::Verify(cutoff) => cutoff,
    };
    // The proof, from the trail as it is now (the service flushes before answering).
    let after = report(client, &subject, since.min(cutoff.saturating_sub(1)))?;
    let mut used_after = Vec::new();
    let mut refused = 0;
    for t in after["tokens"].as_array().into_iter().flatten() {
        if t["issued_at"].as_u64().is_some_and(|at| at > cutoff) {
            continue; // issued after the cut: not covered
        }
        let fp = t["fingerprint"].as_str().unwrap_or("").to_owned();
        if t["usage"]["last_seen"]
            .as_u64()
            .is_some_and(|last| last > cutoff)
        {
            used_after.push(fp.clone());
        }
        // Refusals from the cut-off on, from the token's own rows: validations and
        // renewals.
        for action in ["validation_failed", "renew_failed"] {
            let failed = client.call(
                Operation::Audit,
                None,
                &[
                    ("fingerprint", fp.clone()),
                    ("action", action.into()),
                    ("since", cutoff.to_string()),
                    ("limit", "1000".into()),
                ],
                None,
            )?;
            refused += failed["rows"].as_array().map_or(0, |r| r.len() as u64);
        }
    }
    let outcome = Outcome {
        subject,
        cutoff,
        tokens,
        used_after,
        refused,
    };
    if outcome.proven() {
        let _ = writeln!(
            out,
            "PROVEN: no token of {} issued at or before {} was used successfully after it \
             ({} attempts refused since)",
            outcome.subject,
            utc(cutoff),
            outcome.refused
        );
    } else {
        let _ = writeln!(
            out,
            "NOT PROVEN: {} token(s) used successfully after the cut-off: {}",
            outcome.used_after.len(),
            outcome.used_after.join(", ")
        );
    }
    Ok(outcome)
}
