//! The rollback drill: a bad keyset deploy, caught and rolled back by the gateway itself.
//!
//! `cargo run --release -p examples --example rollback_drill` starts the gateway in this
//! process (in-memory defaults, the rollout guard on its default policy), drives bounded
//! load at it over loopback, and runs two drills:
//!
//! 1. **publish**: a keyset without the key every live token names is published through the
//!    admin API; every request fails until the guard rolls it back;
//! 2. **canary**: the same broken keyset is staged as a 10 % canary; only the clients inside
//!    the share fail, until the guard aborts it.
//!
//! It prints each timeline (publish, first failure, automatic rollback, recovery, the
//! requests failed in between, the distinct clients hit) and writes both as an SVG chart
//! (`--svg`, default `rollback_drill.svg`): responses per outcome per millisecond, the
//! deploy and the rollback marked. It exits non-zero if the guard did not act within the
//! bound. Load is bounded in time and count and stays on 127.0.0.1.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use examples::{GatewayConfig, random_secret, start};
use plotters::prelude::*;

#[derive(Parser)]
#[command(about = "Drill: a bad keyset deploy rolled back by the rollout guard")]
struct Args {
    /// Where to write the chart.
    #[arg(long, default_value = "rollback_drill.svg")]
    svg: PathBuf,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Distinct subjects (clients) in the canary drill.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u16).range(20..=5000))]
    subjects: u16,
}

/// One response: when (since the drill's start), its status, and which client sent it.
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    ok: bool,
    client: usize,
}

/// What one drill saw.
struct Drill {
    name: &'static str,
    samples: Vec<Sample>,
    deploy: Duration,
    deploy_answered: Duration,
    rollback: Option<Duration>,
    bad_version: u64,
    clients: usize,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn json_post(
    http: &reqwest::Client,
    url: String,
    bearer: &str,
    body: String,
) -> Result<serde_json::Value, Error> {
    let res = http
        .post(url)
        .bearer_auth(bearer)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = res.status();
    let text = res.text().await?;
    if !status.is_success() {
        return Err(format!("admin answered {status}: {text}").into());
    }
    Ok(serde_json::from_str(&text)?)
}

/// Runs load with `tokens` (client i uses `tokens[i]`) across `workers` until `stop`,
/// recording every response.
fn load(
    http: &reqwest::Client,
    url: &str,
    tokens: &Arc<Vec<String>>,
    workers: u16,
    start: Instant,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Sample>>> {
    (0..usize::from(workers))
        .map(|w| {
            let (http, url, tokens, stop) =
                (http.clone(), url.to_owned(), tokens.clone(), stop.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut client = w;
                // Bounded in count as well as time.
                while !stop.load(Ordering::Relaxed) && out.len() < 200_000 {
                    let res = http.get(&url).bearer_auth(&tokens[client]).send().await;
                    let ok = res.is_ok_and(|r| r.status().is_success());
                    out.push(Sample {
                        at: start.elapsed(),
                        ok,
                        client,
                    });
                    client = (client + usize::from(workers)) % tokens.len();
                }
                out
            })
        })
        .collect()
}

/// Watches the store from another thread and notes when the second change after
/// generation `g0` (the deploy, then the rollback) lands.
fn watch(
    store: tokenlife_core::KeysetStore,
    g0: u64,
    start: Instant,
) -> std::thread::JoinHandle<Option<Duration>> {
    std::thread::spawn(move || {
        let limit = Instant::now() + Duration::from_secs(10);
        while Instant::now() < limit {
            if store.generation() >= g0 + 2 {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        None
    })
}

#[allow(clippy::too_many_arguments)]
async fn drill(
    name: &'static str,
    gw: &examples::Gateway,
    http: &reqwest::Client,
    tokens: Arc<Vec<String>>,
    workers: u16,
    deploy_path: &str,
    admin_key: &str,
) -> Result<Drill, Error> {
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("{}/orders", gw.api_url);
    let handles = load(http, &url, &tokens, workers, start, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let watcher = watch(gw.store.clone(), gw.store.generation(), start);
    let deploy = start.elapsed();
    let answer = json_post(
        http,
        format!("{}{deploy_path}", gw.admin_url),
        admin_key,
        gw.bad_deploy_jwks.clone(),
    )
    .await?;
    let deploy_answered = start.elapsed();
    let bad_version = answer["version"]
        .as_u64()
        .ok_or_else(|| format!("unexpected deploy answer {answer}"))?;
    let rollback = tokio::task::spawn_blocking(move || watcher.join().ok().flatten()).await?;
    // Keep the load on a little after the rollback: recovery.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for h in handles {
        samples.extend(h.await?);
    }
    samples.sort_by_key(|s| s.at);
    Ok(Drill {
        name,
        samples,
        deploy,
        deploy_answered,
        rollback,
        bad_version,
        clients: tokens.len(),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Prints the timeline; returns the failed requests and the distinct clients hit.
fn report(d: &Drill) -> (usize, usize) {
    let rel = |t: Duration| ms(t) - ms(d.deploy);
    println!("\n== {} drill: {} clients ==", d.name, d.clients);
    println!("  t={:+9.3} ms  deploy of v{} sent", 0.0, d.bad_version);
    println!(
        "  t={:+9.3} ms  admin answered (the new version was current from here at the latest)",
        rel(d.deploy_answered)
    );
    let first_fail = d.samples.iter().find(|s| !s.ok && s.at >= d.deploy);
    if let Some(f) = first_fail {
        println!("  t={:+9.3} ms  first failed request", rel(f.at));
    }
    let Some(rb) = d.rollback else {
        println!("  NO automatic rollback within 10 s");
        return (0, 0);
    };
    println!(
        "  t={:+9.3} ms  automatic rollback by the rollout guard",
        rel(rb)
    );
    let after: Vec<&Sample> = d.samples.iter().filter(|s| s.at > rb).collect();
    if let Some(r) = after.iter().find(|s| s.ok) {
        println!(
            "  t={:+9.3} ms  first success after the rollback",
            rel(r.at)
        );
    }
    let window: Vec<&Sample> = d
        .samples
        .iter()
        .filter(|s| s.at >= d.deploy && s.at <= rb)
        .collect();
    let failed: Vec<&&Sample> = window.iter().filter(|s| !s.ok).collect();
    let hit: HashSet<usize> = d
        .samples
        .iter()
        .filter(|s| !s.ok)
        .map(|s| s.client)
        .collect();
    let late = after.iter().filter(|s| !s.ok).count();
    let before = d.samples.iter().filter(|s| s.at < d.deploy).count();
    println!(
        "  deploy -> rollback: {:.3} ms; requests failed in between: {} of {}",
        ms(rb) - ms(d.deploy),
        failed.len(),
        window.len()
    );
    println!(
        "  failed after the rollback (in flight across it): {late} of {}; before the deploy: {} of {before}",
        after.len(),
        d.samples
            .iter()
            .filter(|s| !s.ok && s.at < d.deploy)
            .count()
    );
    #[allow(clippy::cast_precision_loss)]
    let share = 100.0 * hit.len() as f64 / d.clients as f64;
    println!(
        "  distinct clients that saw a failure: {} of {} ({share:.1} %)",
        hit.len(),
        d.clients
    );
    (failed.len() + late, hit.len())
}

fn chart(path: &PathBuf, drills: &[&Drill]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 360 * drills.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((drills.len(), 1));
    for (panel, d) in panels.iter().zip(drills) {
        let Some(rb) = d.rollback else { continue };
        // 1 ms buckets from 20 ms before the deploy to 40 ms after the rollback.
        let from = ms(d.deploy) - 20.0;
        let to = ms(rb) + 40.0;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = (to - from).floor() as usize;
        let mut ok = vec![0u32; n];
        let mut bad = vec![0u32; n];
        for s in &d.samples {
            let t = ms(s.at);
            if t < from || t >= to {
                continue;
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let i = (t - from) as usize;
            if i >= n {
                continue;
            }
            if s.ok {
                ok[i] += 1;
            } else {
                bad[i] += 1;
            }
        }
        let top = ok.iter().chain(&bad).copied().max().unwrap_or(1).max(1) + 2;
        let rel = |t: f64| t - ms(d.deploy);
        let mut c = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{} drill: responses per ms ({} clients), deploy at 0, rollback at {:.2} ms",
                    d.name,
                    d.clients,
                    ms(rb) - ms(d.deploy)
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(rel(from)..rel(to), 0u32..top)?;
        c.configure_mesh()
            .x_desc("ms since the bad deploy")
            .y_desc("responses / ms")
            .draw()?;
        let xs = |v: &[u32]| -> Vec<(f64, u32)> {
            v.iter()
                .enumerate()
                .map(|(i, y)| (rel(from) + i as f64 + 0.5, *y))
                .collect()
        };
        let green = RGBColor(30, 140, 60);
        c.draw_series(LineSeries::new(xs(&ok), green.stroke_width(2)))?
            .label("200 OK")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green));
        c.draw_series(LineSeries::new(xs(&bad), RED.stroke_width(2)))?
            .label("401 (key failure)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        let marks = [
            (0.0, "deploy", BLUE),
            (ms(rb) - ms(d.deploy), "automatic rollback", BLACK),
        ];
        for (x, label, color) in marks {
            c.draw_series(std::iter::once(PathElement::new(
                vec![(x, 0), (x, top)],
                color.stroke_width(2),
            )))?
            .label(label)
            .legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 20, ly)], color));
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let admin_key = random_secret();
    let client_secret = random_secret();
    let gw = start(GatewayConfig {
        client_id: "drill-client".into(),
        ..GatewayConfig::local(admin_key.clone(), client_secret)
    })
    .await
    .map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::from(args.workers))
        .build()?;
    let key = admin_key.expose();

    // Tokens for distinct subjects, minted through the admin API.
    let mut tokens = Vec::new();
    for i in 0..args.subjects {
        let t = json_post(
            &http,
            format!("{}/tokens", gw.admin_url),
            key,
            format!(r#"{{"subject":"user-{i}","scope":"orders:read"}}"#),
        )
        .await?;
        tokens.push(
            t["access_token"]
                .as_str()
                .ok_or("no access token")?
                .to_owned(),
        );
    }
    let tokens = Arc::new(tokens);

    let publish = drill(
        "publish",
        &gw,
        &http,
        // The guard needs evidence from several distinct clients (GuardPolicy::min_clients):
        // every worker cycles through its share of 16 clients.
        Arc::new(tokens[..usize::from(args.workers).max(16)].to_vec()),
        args.workers,
        "/keysets?label=bad-deploy&keep_signing=false",
        key,
    )
    .await?;
    let (failed_publish, _) = report(&publish);
    let canary = drill(
        "canary 10 %",
        &gw,
        &http,
        tokens.clone(),
        args.workers,
        "/keysets/stage?label=bad-canary&share=10",
        key,
    )
    .await?;
    let (_, hit_canary) = report(&canary);

    let status = http
        .get(format!("{}/keysets/rollout", gw.admin_url))
        .bearer_auth(key)
        .send()
        .await?
        .text()
        .await?;
    println!("\nGET /keysets/rollout after both drills:\n  {status}");
    chart(&args.svg, &[&publish, &canary]).map_err(|e| e.to_string())?;
    println!("chart written to {}", args.svg.display());

    if publish.rollback.is_none() || canary.rollback.is_none() {
        return Err("the rollout guard did not act".into());
    }
    if gw.guard.rollbacks() != 2 {
        return Err(format!(
            "expected 2 automatic rollbacks, saw {}",
            gw.guard.rollbacks()
        )
        .into());
    }
    if failed_publish > 50 {
        return Err(format!("{failed_publish} failed requests: over the bound of 50").into());
    }
    #[allow(clippy::cast_precision_loss)]
    if hit_canary as f64
        > 0.10 * f64::from(args.subjects) + 3.0 * (f64::from(args.subjects) * 0.09).sqrt()
    {
        return Err(format!("{hit_canary} clients hit by a 10 % canary").into());
    }
    Ok(())
}
