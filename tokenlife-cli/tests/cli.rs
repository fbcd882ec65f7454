//! The `tokenlife` binary as a pipeline runs it: exit codes, `--help`, JSON output, the
//! check against tokens and against a real audit trail, and the admin commands against a
//! real service on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tokenlife_core::observe::audit::Auditor;
use tokenlife_core::{
    Algorithm, Issuer, Keyset, KeysetStore, ManualClock, Monitor, TokenRequest, Validator, testing,
};
use tokenlife_tower::admin::{self, AdminState};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "api://orders";
const ADMIN_KEY: &str = "cli-test-admin-key";

fn tokenlife(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokenlife"))
        .args(args)
        .env_remove("TOKENLIFE_ADMIN_URL")
        .env_remove("TOKENLIFE_ADMIN_KEY")
        .output()
        .expect("the binary runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch directory for this test's files.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tokenlife-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(d: &Path, name: &str, text: &str) -> String {
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

fn jwks(kids: &[(&str, Algorithm)]) -> String {
    Keyset::new(kids.iter().map(|(k, a)| testing::key(k, *a)))
        .unwrap()
        .to_public_jwks()
}

fn token(kid: &str, alg: Algorithm) -> String {
    testing::sign(
        &testing::key(kid, alg),
        &serde_json::json!({"iss": ISS, "aud": AUD, "sub": "u", "exp": 4_000_000_000u64}),
    )
}

#[test]
fn help_and_usage_errors() {
    let o = tokenlife(&["--help"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("Exit codes"), "{}", stdout(&o));
    for sub in [
        &["check", "--help"][..],
        &["admin", "--help"],
        &["audit", "--help"],
        &["incident", "--help"],
        &["admin", "stage", "--help"],
    ] {
        assert_eq!(code(&tokenlife(sub)), 0, "{sub:?}");
    }
    assert_eq!(code(&tokenlife(&[])), 2, "no command");
    assert_eq!(code(&tokenlife(&["check"])), 2, "no candidate");
    assert_eq!(code(&tokenlife(&["frobnicate"])), 2);
    // An incident needs a subject or a token file.
    assert_eq!(
        code(&tokenlife(&["incident", "--url", "http://127.0.0.1:9"])),
        2
    );
}

#[test]
fn check_reports_the_tokens_a_candidate_would_break() {
    let d = dir("tokens");
    let blue = token("blue", Algorithm::ES256);
    let rsa = token("r1", Algorithm::RS256);
    let tokens = write(
        &d,
        "tokens.txt",
        &format!("# live sample\n{blue}\n\n{rsa}\nnot-a-jwt\n"),
    );

    // The candidate keeps both keys: nothing breaks, except the line that is no token.
    let keeps = write(
        &d,
        "keeps.json",
        &jwks(&[("blue", Algorithm::ES256), ("r1", Algorithm::RS256)]),
    );
    let o = tokenlife(&["check", "--candidate", &keeps, "--tokens", &tokens]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("tokens.txt:5"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("checked 3: 1 would break"),
        "{}",
        stdout(&o)
    );

    let clean = write(&d, "clean.txt", &format!("{blue}\n{rsa}\n"));
    let o = tokenlife(&["check", "--candidate", &keeps, "--tokens", &clean]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("checked 2: 0 would break"));

    // A candidate that drops r1 and reuses blue's kid for another algorithm.
    let breaks = write(&d, "breaks.json", &jwks(&[("blue", Algorithm::ES384)]));
    let o = tokenlife(&[
        "check",
        "--candidate",
        &breaks,
        "--tokens",
        &clean,
        "--json",
    ]);
    assert_eq!(code(&o), 1);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["checked"], 2);
    assert_eq!(report["breaking"], 2);
    let outcomes: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["algorithm_mismatch", "unknown_kid"]);
    assert_eq!(report["results"][1]["kid"], "r1");
    // Never a token in the output.
    for out in [stdout(&o), stderr(&o)] {
        assert!(!out.contains(&blue) && !out.contains(&rsa));
        assert!(!out.contains(blue.rsplit('.').next().unwrap()));
    }
    // Same kid, other material: a bad signature.
    let twin = Keyset::new([tokenlife_core::Key::from_private_pem(
        "r1",
        Algorithm::RS256,
        testing::RSA2_PEM.as_bytes(),
    )
    .unwrap()])
    .unwrap();
    let twin = write(&d, "twin.json", &twin.to_public_jwks());
    let only_rsa = write(&d, "rsa.txt", &rsa);
    let o = tokenlife(&["check", "--candidate", &twin, "--tokens", &only_rsa]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("bad_signature"), "{}", stdout(&o));
}

#[test]
fn check_against_the_kids_a_real_audit_trail_recorded() {
    let d = dir("audit");
    let path = d.join("audit.jsonl");
    {
        let file = std::fs::File::create(&path).unwrap();
        let clock = ManualClock::at_unix(1_700_000_000);
        let monitor = Monitor::builder()
            .clock(clock.clone())
            .auditor(Auditor::builder().json_lines(file).build())
            .build();
        let store =
            KeysetStore::new(Keyset::new([testing::key("blue", Algorithm::ES256)]).unwrap());
        let issuer = Issuer::builder(store.clone())
            .issuer(ISS)
            .audience(AUD)
            .clock(clock)
            .monitor(monitor.clone())
            .build()
            .unwrap();
        for i in 0..3 {
            issuer
                .issue(TokenRequest::subject(format!("user-{i}")))
                .unwrap();
        }
        monitor.auditor().unwrap().flush();
    }
    let audit = path.to_str().unwrap();
    let green = write(&d, "green.json", &jwks(&[("green", Algorithm::ES256)]));
    let o = tokenlife(&["check", "--candidate", &green, "--audit", audit, "--json"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["breaking"], 1);
    assert_eq!(report["results"][0]["kid"], "blue");
    assert_eq!(report["results"][0]["alg"], "ES256");
    assert_eq!(report["results"][0]["seen"], 3);
    let both = write(
        &d,
        "both.json",
        &jwks(&[("blue", Algorithm::ES256), ("green", Algorithm::ES256)]),
    );
    let o = tokenlife(&[
        "check",
        "--candidate",
        &both,
        "--audit",
        audit,
        "--kid",
        "green:ES256",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}

#[test]
fn check_bad_input_is_exit_2_and_private_material_exit_1() {
    let d = dir("bad");
    let good = write(&d, "good.json", &jwks(&[("blue", Algorithm::ES256)]));
    let not_json = write(&d, "bad.json", "{not json");
    for args in [
        vec!["check", "--candidate", &good],
        vec!["check", "--candidate", &not_json, "--kid", "blue:ES256"],
        vec!["check", "--candidate", &good, "--kid", "blue"],
        vec!["check", "--candidate", &good, "--kid", "blue:XX999"],
        vec![
            "check",
            "--candidate",
            &good,
            "--tokens",
            "/definitely/not/here",
        ],
        vec!["check", "--candidate", &good, "--audit", &not_json],
    ] {
        let o = tokenlife(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("tokenlife: "),
            "{args:?}: a clear message"
        );
    }
    let mut with_private: Value = serde_json::from_str(&jwks(&[
        ("blue", Algorithm::ES256),
        ("g", Algorithm::ES256),
    ]))
    .unwrap();
    with_private["keys"][1]["d"] = Value::String("c2VjcmV0".into());
    let private = write(&d, "private.json", &with_private.to_string());
    let o = tokenlife(&["check", "--candidate", &private, "--kid", "blue:ES256"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("PROBLEM"), "{}", stdout(&o));
}

async fn service() -> (String, KeysetStore) {
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let state = AdminState::builder(validator)
        .admin_key(ADMIN_KEY)
        // An audit store that says what it was asked (the PostgreSQL one is tested in
        // the core): the CLI's query string is what is under test here.
        .audit_search(|qs| {
            if qs.contains("limit=0") {
                Err(Some("limit"))
            } else {
                Ok(serde_json::json!({"rows": [], "next": null, "asked": qs}))
            }
        })
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, admin::admin_router(state)).await });
    (format!("http://{addr}"), store)
}

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tokenlife(&args)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_drive_a_running_service() {
    let (url, store) = service().await;
    let d = dir("admin");
    let green = write(&d, "green.json", &jwks(&[("green", Algorithm::ES256)]));
    let key_file = write(&d, "admin.key", &format!("{ADMIN_KEY}\n"));
    let wrong_key = write(&d, "wrong.key", "not-the-key");
    let cmd = |rest: &[&str]| {
        let mut v: Vec<String> = ["admin", "--url", &url, "--key-file", &key_file]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };

    let o = run(cmd(&["status"])).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let status: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(status["current"], 1);

    let o = run(cmd(&[
        "stage",
        &green,
        "--share",
        "10",
        "--label",
        "green deploy",
    ]))
    .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(store.current().canary_share(), 10.0);
    assert_eq!(
        store.current().staged().unwrap().label(),
        Some("green deploy")
    );

    // Refusals: exit 1 with the service's error code, and nothing changes.
    let generation = store.generation();
    for (args, error) in [
        (vec!["stage", green.as_str()], "rollout_in_progress"),
        (vec!["share", "150"], "invalid_share"),
        (vec!["release", "9"], "unknown_version"),
        (vec!["rollback", "--to", "99"], "unknown_version"),
    ] {
        let o = run(cmd(&args)).await;
        assert_eq!(code(&o), 1, "{args:?}");
        assert!(stderr(&o).contains(error), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(store.generation(), generation);

    assert_eq!(code(&run(cmd(&["share", "50"])).await), 0);
    assert_eq!(store.current().canary_share(), 50.0);
    assert_eq!(code(&run(cmd(&["promote"])).await), 0);
    assert!(store.current().candidate().is_none());
    assert!(store.current().find("green").is_some());
    assert_eq!(code(&run(cmd(&["rollback"])).await), 0);
    assert_eq!(store.current().canary_share(), 50.0);
    assert_eq!(code(&run(cmd(&["abort"])).await), 0);

    // A key revoked as compromised leaves the keyset, and no rollback brings it back.
    let with_partner = store.publish(
        Keyset::new([
            testing::key("k1", Algorithm::ES256),
            testing::key("partner L", Algorithm::ES256),
        ])
        .unwrap(),
    );
    let o = run(cmd(&["revoke-key", "partner L"])).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(store.current().find("partner L").is_none());
    assert_eq!(store.revoked_keys(), ["partner L"]);
    store.rollback_to(with_partner).unwrap();
    assert!(store.current().find("partner L").is_none());
    assert!(store.current().find("k1").is_some());
    // The last key left is not revoked: nothing changes.
    let generation = store.generation();
    let o = run(cmd(&["revoke-key", "k1"])).await;
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("kid_conflict"), "{}", stderr(&o));
    assert_eq!(store.generation(), generation);
    assert!(!store.is_key_revoked("k1"));

    // The wrong key is refused; an unreachable service is exit 3.
    let mut wrong = cmd(&["status"]);
    wrong[4] = wrong_key.clone();
    let o = run(wrong).await;
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    let o = run(vec![
        "admin".into(),
        "--url".into(),
        "http://127.0.0.1:9".into(),
        "--key-file".into(),
        key_file.clone(),
        "--timeout".into(),
        "2".into(),
        "status".into(),
    ])
    .await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    // Security review 3, LOW 17: the key is never taken on the command line.
    let o = run(vec![
        "admin".into(),
        "--url".into(),
        url.clone(),
        "--key".into(),
        ADMIN_KEY.into(),
        "status".into(),
    ])
    .await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = run(vec![
        "admin".into(),
        "--url".into(),
        url.clone(),
        "status".into(),
    ])
    .await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("TOKENLIFE_ADMIN_KEY"), "{}", stderr(&o));
}

/// `tokenlife audit`: the filters become `GET /audit`'s query string (path and method
/// from the route table), values percent-encoded; JSON or a table; a refused filter exits
/// 1 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_command_asks_the_audit_endpoint() {
    let (url, _store) = service().await;
    let d = dir("audit");
    let key_file = write(&d, "admin.key", &format!("{ADMIN_KEY}\n"));
    let cmd = |rest: &[&str]| {
        let mut v: Vec<String> = ["audit", "--url", &url, "--key-file", &key_file]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };
    let o = run(cmd(&[
        "--json",
        "--subject",
        "a b&c",
        "--since",
        "5",
        "--limit",
        "2",
    ]))
    .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let page: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(page["asked"], "subject=a%20b%26c&since=5&limit=2");
    let o = run(cmd(&["--report", "subject", "--subject", "a", "--json"])).await;
    let page: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(page["asked"], "report=subject&subject=a");
    // Without --json: a table.
    let o = run(cmd(&["--subject", "a"])).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("TIME "), "{}", stdout(&o));
    assert_eq!(code(&run(cmd(&["--report", "nope"])).await), 2);
    let o = run(cmd(&["--subject", "a", "--limit", "0"])).await;
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("invalid audit filter: limit"),
        "{}",
        stderr(&o)
    );
}

/// A service whose trail (a canned audit answer) shows one token of `mallory`, issued at
/// 1,000 and last used at `last_seen`; the proof is the CLI's to make.
async fn incident_service(last_seen: u64) -> (String, tokenlife_core::RevocationList) {
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let validator = Validator::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let revocations = validator.revocations().clone();
    let state = AdminState::builder(validator)
        .admin_key(ADMIN_KEY)
        .audit_search(move |qs| {
            if qs.starts_with("report=subject&subject=mallory&since=") {
                Ok(
                    serde_json::json!({"subject": "mallory", "since": 0, "until": 0,
                    "renewals": 0, "renewals_refused": 0, "revocations": [],
                    "tokens": [{"fingerprint": "00112233445566778899aabbccddeeff",
                        "token_kind": "access", "issued_at": 1_000, "client": null, "failures": 0,
                        "usage": {"count": 7, "first_seen": 1_000, "last_seen": last_seen,
                                  "clients": ["198.51.100.7"], "more_clients": false}}]}),
                )
            } else if qs.starts_with("fingerprint=00112233445566778899aabbccddeeff&action=") {
                Ok(serde_json::json!({"rows": [{"action": "validation_failed"}], "next": null}))
            } else {
                Err(Some("query"))
            }
        })
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, admin::admin_router(state)).await });
    (format!("http://{addr}"), revocations)
}

/// `tokenlife incident`: lists the subject's tokens and where they were used, revokes
/// the subject (a real revocation on the service), and proves from the trail — exit 1
/// when a token issued before the cut-off was used after it; `--verify` revokes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_command_cuts_and_refuses_a_proof_the_trail_contradicts() {
    let d = dir("incident");
    let key_file = write(&d, "admin.key", ADMIN_KEY);
    let args = |url: &str, rest: &[&str]| {
        let mut v: Vec<String> = ["incident", "--url", url, "--key-file", &key_file]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };
    // The trail shows a use far after any cut-off made now: not proven.
    let (url, revocations) = incident_service(4_000_000_000).await;
    let o = run(args(&url, &["--subject", "mallory"])).await;
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("198.51.100.7"), "{out}");
    assert!(out.contains("revoked every token of mallory"), "{out}");
    assert!(out.contains("NOT PROVEN: 1 token(s)"), "{out}");
    assert_eq!(revocations.len(), 1, "the subject was revoked");
    // Verifying a cut-off the last use precedes: proven, two refusals counted (one of
    // each kind of row), nothing revoked.
    let (url, revocations) = incident_service(1_500).await;
    let o = run(args(&url, &["--subject", "mallory", "--verify", "2000"])).await;
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("(2 attempts refused since)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(revocations.len(), 0);
}
