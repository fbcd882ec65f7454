//! The running proxy: its configuration reloaded and rolled back through the admin
//! listener (the admin key only; a bad file changes nothing), and two proxies on one
//! Redis that see a revocation made at either at once.

mod common;

use std::time::{Duration, Instant};

use common::upstream_named;
use examples::{FleetSettings, GatewayConfig, Secret};
use serde_json::Value;
use tokenlife_proxy::{ConfigFile, ProxyConfig, Running};

const ADMIN: &str = "proxy-test-admin-key";

fn gateway() -> GatewayConfig {
    GatewayConfig {
        signing_key_pem: Some(Secret::new(tokenlife_core::testing::EC256_PEM)),
        ..GatewayConfig::local(Secret::new(ADMIN), Secret::new("proxy-test-client"))
    }
}

async fn json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An access token for `subject` with `scope`, minted at the proxy's admin listener.
async fn mint(http: &reqwest::Client, p: &Running, subject: &str, scope: &str) -> String {
    let (status, pair) = json(
        http.post(format!("{}/tokens", p.admin_url))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(serde_json::json!({"subject": subject, "scope": scope}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{pair}");
    pair["access_token"].as_str().unwrap().to_owned()
}

fn route(upstream: &str, scopes: &str) -> String {
    format!("[[route]]\nprefix = \"/\"\nupstream = \"{upstream}\"\nrequire_scopes = [{scopes}]\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_a_checked_file_and_a_rollback_restores_the_one_before() {
    let (a, _) = upstream_named("a").await;
    let (b, _) = upstream_named("b").await;
    let dir = std::env::temp_dir().join(format!("tokenlife-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.toml");
    std::fs::write(&file, route(&a, "")).unwrap();
    let source = ConfigFile(Some(file.clone()));
    let p = tokenlife_proxy::start(&gateway(), source.load().await.unwrap(), source)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let t = mint(&http, &p, "alice", "orders:read").await;
    let call = || async {
        json(
            http.get(format!("{}/x", p.public_url))
                .bearer_auth(&t)
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let admin = |path: &str| {
        http.post(format!("{}{path}", p.admin_url))
            .bearer_auth(ADMIN)
            .send()
    };
    assert_eq!(call().await.1["server"], "a");

    // A new file: upstream b, a scope alice lacks. Not without the admin key.
    std::fs::write(&file, route(&b, "\"orders:write\"")).unwrap();
    let refused = http
        .post(format!("{}/proxy/reload", p.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(p.proxy.version(), 1);
    let (status, body) = json(admin("/proxy/reload").await.unwrap()).await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)));
    assert_eq!(call().await.0, 403);

    // A bad file: 400 naming the field, version 2 stays in force.
    std::fs::write(
        &file,
        "[[route]]\nprefix = \"x\"\nupstream = \"http://h\"\n",
    )
    .unwrap();
    let (status, body) = json(admin("/proxy/reload").await.unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "route[0].prefix");
    assert_eq!(body["version"], 2);
    assert_eq!(call().await.0, 403);

    // Roll back: the configuration before the last reload, as a new version.
    let (status, body) = json(admin("/proxy/rollback").await.unwrap()).await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(3)));
    let (status, body) = call().await;
    assert_eq!((status, &body["server"]), (200, &Value::from("a")));
    let (_, config) = json(
        http.get(format!("{}/proxy/config", p.admin_url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(config["version"], 3);
    assert_eq!(config["config"]["route"][0]["upstream"], a.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_on_one_redis_see_a_revocation_made_at_either_at_once() {
    let redis = tokenlife_core::testing::RedisServer::start();
    let (up, _) = upstream_named("up").await;
    let node = |id: &str| GatewayConfig {
        fleet: Some(FleetSettings {
            redis_url: Secret::new(redis.url()),
            prefix: "{proxy-fleet}".into(),
            node_id: id.into(),
        }),
        ..gateway()
    };
    let config = ProxyConfig::single(&up).unwrap();
    let a = tokenlife_proxy::start(&node("a"), config.clone(), ConfigFile::default())
        .await
        .unwrap();
    let b = tokenlife_proxy::start(&node("b"), config, ConfigFile::default())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let t = mint(&http, &a, "mallory", "orders:read").await;
    for p in [&a, &b] {
        let res = http
            .get(format!("{}/x", p.public_url))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    // Revoked at a (RFC 7009): b refuses it as soon as the fleet carries it.
    let res = http
        .post(format!("{}/revoke", a.admin_url))
        .bearer_auth(ADMIN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    loop {
        let status = http
            .get(format!("{}/x", b.public_url))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .status();
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "b still accepts it"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("revocation seen at b after {:?}", started.elapsed());
}

/// A bad keyset published through the admin listener is in force at the proxy at once,
/// and so is its rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyset_change_and_its_rollback_are_in_force_at_the_proxy_at_once() {
    let (up, _) = upstream_named("up").await;
    let p = tokenlife_proxy::start(
        &gateway(),
        ProxyConfig::single(&up).unwrap(),
        ConfigFile::default(),
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let t = mint(&http, &p, "oscar", "orders:read").await;
    let call = || async {
        http.get(format!("{}/x", p.public_url))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(call().await, 200);
    let (status, _) = json(
        http.post(format!("{}/keysets?keep_signing=false", p.admin_url))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(p.parts.bad_deploy_jwks.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(call().await, 401);
    let (status, _) = json(
        http.post(format!("{}/keysets/rollback", p.admin_url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(call().await, 200);
}
