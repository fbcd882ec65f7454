//! The alert rules in a real Prometheus (Debian's `prometheus`, which `.ci/run` installs):
//! a server on 127.0.0.1 scrapes a running gateway every second with
//! `ops/prometheus/tokenlife.rules.yml` loaded; a refresh-token reuse and an automatic
//! rollback are provoked over HTTP, and Prometheus's HTTP API must show both alerts
//! firing — and nothing firing before. Its own test binary: the gateway's Prometheus
//! recorder is global to the process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use examples::{GatewayConfig, Secret};
use serde_json::Value;

/// A Prometheus server this test owns, killed on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn prometheus(target: &str) -> Prometheus {
    let rules =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/prometheus/tokenlife.rules.yml");
    let dir = std::env::temp_dir().join(format!("tokenlife-prom-{}", free_port()));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: gateway\n    metrics_path: /metrics\n    \
         static_configs:\n      - targets: ['{target}']\n",
        rules.canonicalize().unwrap().display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed (Debian package prometheus; .ci/run installs it)");
    Prometheus {
        child,
        dir,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let res = http.get(url).send().await.ok()?;
    serde_json::from_str(&res.text().await.ok()?).ok()
}

/// Polls `url` until `done` holds for its JSON (a real server's pace: bounded, 90 s).
async fn until(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = get_json(http, url).await
            && done(&v)
        {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn firing(alerts: &Value) -> Vec<String> {
    alerts["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing")
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_fires_the_reuse_and_rollback_alerts() {
    let gw = examples::start(GatewayConfig {
        // A rotated refresh token presented again is reuse at once (no retry sibling).
        refresh_retry_grace: Duration::ZERO,
        refresh_reuse_grace: Duration::ZERO,
        node_id: "prom-gw".into(),
        ..GatewayConfig::local(Secret::new("adm"), Secret::new("sec"))
    })
    .await
    .unwrap();
    let (api, admin) = (gw.api_url.clone(), gw.admin_url.clone());
    let prom = prometheus(admin.trim_start_matches("http://"));
    let http = reqwest::Client::new();

    // Prometheus scrapes the gateway and holds its zero counters before anything happens.
    until(
        &http,
        &format!(
            "{}/api/v1/query?query=tokenlife_refresh_reuse_total",
            prom.url
        ),
        "the first scrapes",
        |v| {
            v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alerts = get_json(&http, &format!("{}/api/v1/alerts", prom.url))
        .await
        .unwrap();
    assert!(
        firing(&alerts).is_empty(),
        "alerts before anything happened: {alerts}"
    );

    let post = |path: String, body: String, json: bool| {
        let http = http.clone();
        async move {
            let res = http
                .post(path)
                .bearer_auth("adm")
                .header(
                    "content-type",
                    if json {
                        "application/json"
                    } else {
                        "application/x-www-form-urlencoded"
                    },
                )
                .body(body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (
                status,
                serde_json::from_str::<Value>(&res.text().await.unwrap()).unwrap_or(Value::Null),
            )
        }
    };
    // Six users signed in (the guard needs evidence from five distinct subjects).
    let mut tokens = Vec::new();
    for i in 0..6 {
        let (status, pair) = post(
            format!("{admin}/tokens"),
            serde_json::json!({"subject": format!("user-{i}"), "scope": "orders:read"}).to_string(),
            true,
        )
        .await;
        assert_eq!(status, 200, "{pair}");
        tokens.push(pair);
    }

    // Every user calls the API once: the statuses.
    let call_all = || async {
        let mut statuses = Vec::new();
        for t in &tokens {
            let res = http
                .get(format!("{api}/orders"))
                .bearer_auth(t["access_token"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            statuses.push(res.status().as_u16());
        }
        statuses
    };
    // Version 1 serves them (and so is the last good version).
    assert_eq!(call_all().await, [200; 6]);

    // A refresh token renewed, then its rotated predecessor presented again: reuse.
    let refresh = tokens[0]["refresh_token"].as_str().unwrap().to_owned();
    let renew = || {
        post(
            format!("{admin}/token"),
            format!("grant_type=refresh_token&refresh_token={refresh}"),
            false,
        )
    };
    assert_eq!(renew().await.0, 200);
    assert_eq!(
        renew().await.0,
        400,
        "the second use of a rotated refresh token is refused"
    );

    // A bad deploy: a keyset that verifies none of the live tokens. The guard sees the
    // failures verify under the last good version and rolls back by itself.
    let (status, _) = post(
        format!("{admin}/keysets?label=bad-deploy&keep_signing=false"),
        gw.bad_deploy_jwks.clone(),
        true,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(call_all().await, [401; 6], "the bad keyset rejects");
    for _ in 1..8 {
        call_all().await;
    }
    assert_eq!(
        gw.store.current().version(),
        1,
        "the guard rolled back to the good version"
    );

    let alerts = until(
        &http,
        &format!("{}/api/v1/alerts", prom.url),
        "both alerts firing",
        |v| {
            let f = firing(v);
            f.iter().any(|a| a == "TokenlifeRefreshTokenReuse")
                && f.iter().any(|a| a == "TokenlifeAutomaticRollback")
        },
    )
    .await;
    let f = firing(&alerts);
    // Only what was provoked, nothing unrelated (fleet, audit, remote keys): the reuse
    // revoked user-0's family, so its access token presented during the bad deploy is
    // a revoked token presented again — that alert is right too.
    for a in &f {
        assert!(
            [
                "TokenlifeRefreshTokenReuse",
                "TokenlifeAutomaticRollback",
                "TokenlifeRevokedTokenReuse",
            ]
            .contains(&a.as_str()),
            "unexpected alert {a}: {alerts}"
        );
    }
    let rollback = alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "TokenlifeAutomaticRollback")
        .unwrap();
    assert_eq!(rollback["labels"]["severity"], "critical");
    assert_eq!(rollback["labels"]["runbook"], "automatic-rollback");
}
