//! `/metrics` holds every validation made before the scrape: the validator counts its
//! cache hits without calling an observer, and the scrape tells the count first. Its own
//! test binary: the gateway's Prometheus recorder is global to the process.

use examples::{GatewayConfig, Secret};

const ISSUER: &str = "https://scrape.example.com";

/// The value of the series `name{labels}` in a Prometheus text exposition (0 if absent).
fn series(text: &str, name: &str, labels: &str) -> u64 {
    let head = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

#[tokio::test]
async fn a_scrape_counts_every_cache_hit_before_it() {
    let config = GatewayConfig {
        issuer: ISSUER.into(),
        ..GatewayConfig::local(Secret::new("adm"), Secret::new("sec"))
    };
    let parts = examples::parts(&config).await.unwrap();
    let req = axum::http::Request::post("/token")
        .header("authorization", "Basic ZGVtby1jbGllbnQ6c2Vj") // demo-client:sec
        .header("content-type", "application/x-www-form-urlencoded")
        .body(b"grant_type=client_credentials".to_vec())
        .unwrap();
    let res = parts.state.respond(&req, None);
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();

    let ok = format!("{{outcome=\"ok\",keyset_version=\"1\",issuer=\"{ISSUER}\"}}");
    for round in 1..=3u64 {
        for _ in 0..40 {
            parts.validator.validate(&token).unwrap();
        }
        // Every validation so far, in the same second of the clock (no later hit has
        // told the count): the first verified, the rest from the cache.
        let text = parts.metrics.render();
        assert_eq!(
            series(&text, "tokenlife_validations_total", &ok),
            40 * round,
            "{text}"
        );
        assert_eq!(
            series(&text, "tokenlife_cache_hits_total", ""),
            40 * round - 1,
            "{text}"
        );
    }
}
