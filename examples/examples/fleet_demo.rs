//! The fleet demo: three gateway processes against the local Redis, and a revocation and
//! a keyset rollback crossing the fleet.
//!
//! `cargo run -p examples --example fleet_demo` (Redis on `127.0.0.1:6379`, or
//! `-- --redis redis://host:port/`). The command starts three copies of itself as
//! gateway nodes — separate processes, each with its own listeners, revocation list,
//! keyset store and Redis connections, all sharing one signing key — then, as a client:
//!
//! 1. gets a token from node A and calls every node (200 each);
//! 2. revokes the token on node A (RFC 7009) and waits until nodes B and C answer 401;
//! 3. publishes a keyset without the signing key on node B (a bad deploy) and waits until
//!    every node rejects a fresh token;
//! 4. rolls back on node C and waits until every node accepts it again;
//!
//! printing how long each step took to cross the fleet. It stops the nodes and removes its
//! keys from Redis at the end (it uses a prefix of its own).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use examples::{FleetSettings, GatewayConfig, Secret, random_secret, start};

#[derive(Parser)]
#[command(about = "Three gateway processes sharing revocations and keysets through Redis")]
struct Args {
    /// The Redis the fleet shares.
    #[arg(
        long,
        env = "TOKENLIFE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    redis: String,
    /// (internal) run as node NAME of the fleet with this prefix and key file.
    #[arg(long, hide = true, num_args = 3, value_names = ["NAME", "PREFIX", "KEY_FILE"])]
    node: Option<Vec<String>>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One fleet node: the gateway, until its parent closes stdin.
async fn run_node(redis: String, node: &[String]) -> Result<(), Error> {
    let [name, prefix, key_file] = node else {
        return Err("--node NAME PREFIX KEY_FILE".into());
    };
    let env = |k: &str| std::env::var(k).map(Secret::new);
    let gw = start(GatewayConfig {
        issuer: "https://fleet.example.com".into(),
        signing_key_pem: Some(Secret::new(std::fs::read_to_string(key_file)?)),
        fleet: Some(FleetSettings {
            redis_url: Secret::new(redis),
            prefix: prefix.clone(),
            node_id: name.clone(),
        }),
        ..GatewayConfig::local(env("TOKENLIFE_ADMIN_KEY")?, env("TOKENLIFE_CLIENT_SECRET")?)
    })
    .await
    .map_err(|e| e.to_string())?;
    if let Some((fleet, _)) = &gw.fleet {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fleet.status().connected {
            if Instant::now() > deadline {
                return Err("could not reach Redis".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    println!("READY {} {}", gw.api_url, gw.admin_url);
    std::io::stdout().flush()?;
    // Until the parent goes away.
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    })
    .await?;
    Ok(())
}

/// A PKCS#8 PEM of a fresh P-256 key, shared by the nodes through a 0600 file.
fn signing_key_file(dir: &std::path::Path) -> Result<PathBuf, Error> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use base64::Engine;
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| "key generation failed")?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line)?);
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let path = dir.join("signing-key.pem");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(&path)?.write_all(pem.as_bytes())?;
    Ok(path)
}

struct Node {
    name: &'static str,
    api: String,
    admin: String,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn status(http: &reqwest::Client, node: &Node, token: &str) -> u16 {
    http.get(format!("{}/orders", node.api))
        .bearer_auth(token)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Waits (bounded) until every node in `nodes` answers `want` for `token`.
async fn until_all(
    http: &reqwest::Client,
    nodes: &[&Node],
    token: &str,
    want: u16,
) -> Result<Duration, Error> {
    let t = Instant::now();
    for n in nodes {
        while status(http, n, token).await != want {
            if t.elapsed() > Duration::from_secs(10) {
                return Err(format!("node {} never answered {want}", n.name).into());
            }
        }
    }
    Ok(t.elapsed())
}

async fn token(http: &reqwest::Client, node: &Node, secret: &str) -> Result<String, Error> {
    let body = http
        .post(format!("{}/token", node.admin))
        .basic_auth("demo-client", Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await?
        .text()
        .await?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    Ok(v["access_token"].as_str().ok_or("no token")?.to_owned())
}

async fn admin_post(
    http: &reqwest::Client,
    node: &Node,
    key: &str,
    path: &str,
    body: String,
    ctype: &str,
) -> Result<String, Error> {
    let res = http
        .post(format!("{}{path}", node.admin))
        .bearer_auth(key)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await?;
    let status = res.status();
    let text = res.text().await?;
    if !status.is_success() {
        return Err(format!("{path} on node {}: {status} {text}", node.name).into());
    }
    Ok(text)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    if let Some(node) = &args.node {
        return run_node(args.redis, node).await;
    }
    let client = redis::Client::open(args.redis.as_str())?;
    let mut conn = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "Redis is not reachable at {}: {e}\nstart it (redis-server) or pass --redis URL",
                args.redis
            );
            std::process::exit(2);
        }
    };
    let admin_key = random_secret();
    let client_secret = random_secret();
    let prefix = format!("{{tokenlife-demo-{}}}", &random_secret().expose()[..12]);
    let dir = std::env::temp_dir().join(format!("tokenlife-fleet-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key_file = signing_key_file(&dir)?;

    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--redis", &args.redis, "--node", name, &prefix])
            .arg(&key_file)
            .env("TOKENLIFE_ADMIN_KEY", admin_key.expose())
            .env("TOKENLIFE_CLIENT_SECRET", client_secret.expose())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        let mut parts = line.split_whitespace().skip(1);
        let (Some(api), Some(admin)) = (parts.next(), parts.next()) else {
            let _ = child.kill();
            return Err(format!("node {name} did not start: {line}").into());
        };
        println!("node {name}: pid {}, API {api}, admin {admin}", child.id());
        nodes.push(Node {
            name,
            api: api.to_owned(),
            admin: admin.to_owned(),
            child,
        });
    }
    let _ = std::fs::remove_file(&key_file);
    let http = reqwest::Client::new();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let key = admin_key.expose();

    // 1. A token from A works everywhere (one signing key, one issuer).
    let t1 = token(&http, a, client_secret.expose()).await?;
    for n in [a, b, c] {
        println!(
            "GET /orders on node {} with A's token: {}",
            n.name,
            status(&http, n, &t1).await
        );
    }
    // 2. Revoke on A; B and C follow.
    let sent = Instant::now();
    admin_post(
        &http,
        a,
        key,
        "/revoke",
        format!("token={t1}"),
        "application/x-www-form-urlencoded",
    )
    .await?;
    let took = until_all(&http, &[b, c], &t1, 401).await?;
    println!(
        "revoked on node a: nodes b and c answer 401 after {:.1} ms (request round trips included; {:.1} ms since the revoke was sent)",
        took.as_secs_f64() * 1e3,
        sent.elapsed().as_secs_f64() * 1e3
    );

    // 3. A bad keyset deploy on B reaches everyone.
    let t2 = token(&http, c, client_secret.expose()).await?;
    until_all(&http, &[a, b, c], &t2, 200).await?;
    let bad = tokenlife_core::Keyset::new([tokenlife_core::Key::generate(
        "bad-deploy",
        tokenlife_core::Algorithm::ES256,
    )?])?
    .to_public_jwks();
    admin_post(
        &http,
        b,
        key,
        "/keysets?label=bad-deploy&keep_signing=false",
        bad,
        "application/json",
    )
    .await?;
    let took = until_all(&http, &[a, b, c], &t2, 401).await?;
    println!(
        "bad keyset published on node b: every node rejects a fresh token after {:.1} ms",
        took.as_secs_f64() * 1e3
    );

    // 4. Roll back on C; everyone follows.
    admin_post(
        &http,
        c,
        key,
        "/keysets/rollback",
        String::new(),
        "application/json",
    )
    .await?;
    let took = until_all(&http, &[a, b, c], &t2, 200).await?;
    println!(
        "rolled back on node c: every node accepts it again after {:.1} ms",
        took.as_secs_f64() * 1e3
    );
    let rollout = http
        .get(format!("{}/keysets/rollout", a.admin))
        .bearer_auth(key)
        .send()
        .await?
        .text()
        .await?;
    println!("node a's keyset status: {rollout}");

    drop(nodes);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("fleet stopped; its {} Redis keys removed", keys.len());
    Ok(())
}
