//! One token's whole life on a manual clock: issue → validate → renew → reuse detected →
//! family revoked → expiry, printing the audit lines and metrics it produced.
//!
//! `cargo run -p examples --example lifecycle`

use std::sync::mpsc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use tokenlife_core::observe::audit::Auditor;
use tokenlife_core::{
    Algorithm, Issuer, Keyset, KeysetStore, ManualClock, Monitor, TokenRequest, Validator, testing,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Metrics: install the recorder first, then build the monitor.
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let clock = ManualClock::at_unix(1_700_000_000);

    let (sink, events) = Auditor::channel(1024);
    let auditor = Auditor::builder().sink(sink).build();
    let monitor = Monitor::builder()
        .clock(clock.clone())
        .auditor(auditor.clone())
        .build();

    let store = KeysetStore::new(
        Keyset::new([testing::key("k1", Algorithm::ES256)])?.with_label("deploy-1"),
    );
    let validator = Validator::builder(store.clone())
        .issuer("https://auth.example.com")
        .audience("api://orders")
        .clock(clock.clone())
        .monitor(monitor.clone())
        .build()?;
    let issuer = Issuer::builder(store)
        .issuer("https://auth.example.com")
        .audience("api://orders")
        .access_ttl(Duration::from_secs(900))
        .refresh_ttl(Duration::from_secs(86_400))
        .clock(clock.clone())
        .revocations(validator.revocations().clone())
        .monitor(monitor.clone())
        .build()?;

    let step = |what: &str, events: &mpsc::Receiver<_>| {
        auditor.flush();
        println!("── {what}");
        for e in events.try_iter() {
            let e: tokenlife_core::observe::audit::AuditEvent = e;
            println!("   audit {}", e.to_json());
        }
    };

    let pair = issuer.issue(TokenRequest::subject("user-42").scope("orders:read"))?;
    step("issue: access + refresh token (family started)", &events);

    let v = validator.validate(&pair.access_token)?;
    println!(
        "── validate: ok, sub {:?}, fingerprint {}",
        v.claims().sub,
        v.fingerprint()
    );

    clock.advance(Duration::from_secs(600));
    let retired = pair.refresh_token.clone().expect("refresh token");
    let pair2 = issuer.renew(&retired)?;
    step(
        "renew after 10 min: the old refresh token is retired",
        &events,
    );

    let sibling = issuer.renew(&retired)?;
    step(
        "the retired token again at once (its answer was lost, within the 30 s retry grace) → a sibling pair, family intact",
        &events,
    );
    validator.validate(&sibling.access_token)?;

    clock.advance(Duration::from_secs(31));
    let err = issuer.renew(&retired).unwrap_err();
    step(
        &format!(
            "renew with the retired refresh token again, 31 s later: {err} → family revoked, alert raised"
        ),
        &events,
    );

    let err = validator.validate(&pair2.access_token).unwrap_err();
    step(
        &format!("validate the family's newest access token: {err}"),
        &events,
    );

    let lone = issuer.issue_access(TokenRequest::subject("user-7"))?;
    validator.validate(&lone.access_token)?;
    clock.advance(Duration::from_secs(3600));
    let err = validator.validate(&lone.access_token).unwrap_err();
    step(&format!("an hour later, another token: {err}"), &events);

    println!("\n── metrics (Prometheus text)");
    for line in prometheus
        .render()
        .lines()
        .filter(|l| l.starts_with("tokenlife_") && !l.ends_with(" 0"))
    {
        println!("   {line}");
    }
    Ok(())
}
