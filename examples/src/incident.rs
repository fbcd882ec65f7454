//! A stolen-token story, end to end against the gateway with its audit trail on
//! PostgreSQL (the `incident` example plays it; a test asserts what it finds).
//!
//! Alice signs in and calls the API from 127.0.0.1. An attacker who stole her access
//! and refresh tokens calls the API from 127.0.0.2 and renews the refresh token (a pair
//! of their own). The operator, handed the stolen access token, runs the incident
//! command: it learns the subject by introspection, lists her tokens and where they were
//! used — 127.0.0.2 among them — revokes every token of hers up to now (the refresh
//! tokens, the attacker's renewed pair included), and proves from the trail that none
//! was used after the cut-off. The attacker's next calls and renewal are refused; a
//! second proof (`--verify`) counts those refusals and still finds no success.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::Value;
use tokenlife_cli::AdminClient;
use tokenlife_cli::incident::{Action, Outcome, Target, respond};

use crate::{AuditDb, GatewayConfig, Secret, random_secret, start};

/// What the story saw.
#[derive(Debug)]
pub struct Story {
    /// The incident run that revoked.
    pub revoked: Outcome,
    /// The later proof.
    pub verified: Outcome,
    /// Statuses the attacker got after the cut: the stolen access token, the renewed
    /// one, the renewal of the stolen refresh token.
    pub attacker_after: [u16; 3],
    /// What the incident run printed.
    pub transcript: String,
}

fn ok(status: u16, what: &str) -> Result<(), String> {
    if status == 200 {
        Ok(())
    } else {
        Err(format!("{what}: {status}"))
    }
}

fn text(res: reqwest::blocking::Response) -> Value {
    serde_json::from_str(&res.text().unwrap_or_default()).unwrap_or(Value::Null)
}

/// Plays the story against a gateway started here, its trail in `audit_db`, and says
/// what happened (on `log` as it goes).
///
/// # Errors
/// The gateway could not start (the database unreachable), or a call failed.
pub async fn play(
    audit_db: &str,
    log: impl Fn(&str) + Send + Sync + 'static,
) -> Result<Story, Box<dyn std::error::Error + Send + Sync>> {
    let admin_key = random_secret();
    let config = GatewayConfig {
        audit_db: Some(AuditDb::new(Secret::new(audit_db))),
        node_id: "incident-gw".into(),
        ..GatewayConfig::local(Secret::new(admin_key.expose()), random_secret())
    };
    let gw = start(config).await.map_err(|e| e.to_string())?;
    let (api, admin) = (gw.api_url.clone(), gw.admin_url.clone());
    let key = zeroize::Zeroizing::new(admin_key.expose().to_owned());
    let story = tokio::task::spawn_blocking(move || -> Result<Story, String> {
        let mut suffix = [0u8; 4];
        getrandom::fill(&mut suffix).map_err(|e| e.to_string())?;
        let alice = format!(
            "alice-{}",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let http = reqwest::blocking::Client::new();
        let attacker = reqwest::blocking::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
            .build()
            .map_err(|e| e.to_string())?;
        let call = |c: &reqwest::blocking::Client, token: &str| {
            c.get(format!("{api}/orders"))
                .bearer_auth(token)
                .send()
                .map_or(0, |r| r.status().as_u16())
        };
        let renew = |c: &reqwest::blocking::Client, refresh: &str| {
            c.post(format!("{admin}/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("grant_type=refresh_token&refresh_token={refresh}"))
                .send()
                .map_err(|e| e.to_string())
        };

        log(&format!(
            "{alice} signs in and calls the API from 127.0.0.1"
        ));
        let pair = text(
            http.post(format!("{admin}/tokens"))
                .bearer_auth(key.as_str())
                .header("content-type", "application/json")
                .body(serde_json::json!({"subject": alice, "scope": "orders:read"}).to_string())
                .send()
                .map_err(|e| e.to_string())?,
        );
        let access = pair["access_token"]
            .as_str()
            .ok_or("no access token")?
            .to_owned();
        let refresh = pair["refresh_token"]
            .as_str()
            .ok_or("no refresh token")?
            .to_owned();
        for _ in 0..2 {
            ok(call(&http, &access), "alice's call")?;
        }

        log("an attacker with her stolen tokens calls the API from 127.0.0.2 and renews");
        for _ in 0..3 {
            ok(call(&attacker, &access), "the attacker's call")?;
        }
        let theirs = text(renew(&attacker, &refresh)?);
        let their_access = theirs["access_token"]
            .as_str()
            .ok_or("the renewal failed")?
            .to_owned();
        let their_refresh = theirs["refresh_token"].as_str().unwrap_or("").to_owned();
        ok(
            call(&attacker, &their_access),
            "the attacker's renewed token",
        )?;

        log("the operator runs: tokenlife incident --token-file stolen.txt");
        let client = AdminClient::new(&admin, key.clone(), Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let revoked = respond(
            &client,
            Target::Token(zeroize::Zeroizing::new(access.clone())),
            Action::Revoke,
            Duration::from_secs(3_600),
            &mut out,
        )
        .map_err(|e| e.to_string())?;

        log("the attacker tries again");
        let attacker_after = [
            call(&attacker, &access),
            call(&attacker, &their_access),
            renew(&attacker, &their_refresh)?.status().as_u16(),
        ];

        log(&format!(
            "the operator proves it later: tokenlife incident --subject {alice} --verify {}",
            revoked.cutoff
        ));
        let verified = respond(
            &client,
            Target::Subject(alice),
            Action::Verify(revoked.cutoff),
            Duration::from_secs(3_600),
            &mut out,
        )
        .map_err(|e| e.to_string())?;
        Ok(Story {
            revoked,
            verified,
            attacker_after,
            transcript: String::from_utf8_lossy(&out).into_owned(),
        })
    })
    .await??;
    Ok(story)
}
