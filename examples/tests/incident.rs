//! The incident example's story against the gateway and the machine's PostgreSQL
//! (`TOKENLIFE_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/test`): what the
//! operator is shown and what the proof says, written out.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_token_is_found_cut_and_proven_unused_after_the_cut() {
    let db = std::env::var("TOKENLIFE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let story = examples::incident::play(&db, |_| {}).await.unwrap();
    let r = &story.revoked;
    // Alice's pair and the attacker's renewed pair: four tokens, found from the stolen
    // access token alone (its subject by introspection).
    assert!(r.subject.starts_with("alice-"));
    assert_eq!(r.tokens.len(), 4, "{}", story.transcript);
    let stolen = r
        .tokens
        .iter()
        .find(|t| t["usage"]["count"] == 5)
        .expect("the stolen access token: 2 uses by alice, 3 by the attacker");
    assert_eq!(
        stolen["usage"]["clients"],
        serde_json::json!(["127.0.0.1", "127.0.0.2"])
    );
    let renewed = r
        .tokens
        .iter()
        .find(|t| t["usage"]["count"] == 1)
        .expect("the attacker's renewed access token");
    assert_eq!(
        renewed["usage"]["clients"],
        serde_json::json!(["127.0.0.2"])
    );
    assert!(r.proven());
    // After the cut, every attempt of the attacker is refused: both access tokens
    // (401), and the renewal of the refresh token they were given (400 invalid_grant).
    assert_eq!(story.attacker_after, [401, 401, 400]);
    let v = &story.verified;
    assert_eq!(v.cutoff, r.cutoff);
    assert!(v.proven(), "{}", story.transcript);
    assert_eq!(v.refused, 3, "{}", story.transcript);
    assert!(story.transcript.contains("PROVEN: no token of alice-"));
    assert!(!story.transcript.contains("NOT PROVEN"));
}
