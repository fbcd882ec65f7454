//! A stolen-token story, end to end against the gateway with its audit trail on
//! PostgreSQL: find, cut, prove (see `examples::incident`).
//!
//! ```text
//! cargo run -p examples --example incident [-- postgres://postgres@127.0.0.1:5432/test]
//! ```
//!
//! The database URL may also come from `TOKENLIFE_AUDIT_DB`. Exits non-zero unless the
//! proof holds and the attacker is refused.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let db = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("TOKENLIFE_AUDIT_DB").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let story = match examples::incident::play(&db, |line| println!("== {line}")).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("incident: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", story.transcript);
    println!(
        "the attacker after the cut: stolen access {}, renewed access {}, renewal {}",
        story.attacker_after[0], story.attacker_after[1], story.attacker_after[2]
    );
    let refused = story.attacker_after.iter().all(|s| *s == 400 || *s == 401);
    if story.revoked.proven() && story.verified.proven() && refused {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
