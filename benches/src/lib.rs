//! Shared fixtures for the tokenlife benchmarks: keys, tokens, validators.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokenlife_core::{Algorithm, Key, Keyset, KeysetStore, Validator, testing};

/// Issuer used by every bench token.
pub const ISS: &str = "https://auth.example.com";
/// Audience used by every bench token.
pub const AUD: &str = "api://orders";

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A signing key for `alg` from the fixed test keys, kid = the algorithm's name.
pub fn key(alg: Algorithm) -> Arc<Key> {
    Arc::new(testing::key(&format!("{alg:?}"), alg))
}

/// A token valid for an hour, with a distinct `jti` per `n`.
pub fn token(key: &Key, n: u64) -> String {
    let now = now();
    testing::sign(
        key,
        &json!({"iss": ISS, "aud": AUD, "sub": format!("user-{n}"), "jti": format!("jti-{n}"),
                "iat": now, "exp": now + 3600, "scope": "orders:read"}),
    )
}

/// A store holding `keys`, and a validator on it with the given cache capacity.
pub fn validator(keys: &[Arc<Key>], cache_capacity: u64) -> (KeysetStore, Validator) {
    let store = KeysetStore::new(Keyset::new(keys.iter().cloned()).expect("keys"));
    let validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .cache_capacity(cache_capacity)
        .build()
        .expect("validator");
    (store, validator)
}

/// A store holding `keys`, and a validator on it observed as the gateway observes its
/// own (`examples`' `parts`): a [`Monitor`](tokenlife_core::Monitor) whose metrics go to
/// a Prometheus recorder (installed once per process) and whose audit records go to a
/// JSON-lines sink, and a [`RolloutGuard`](tokenlife_core::rollout::RolloutGuard)
/// watching the validations.
pub fn observed_validator(keys: &[Arc<Key>], cache_capacity: u64) -> (KeysetStore, Validator) {
    observed_validator_with(keys, cache_capacity, false)
}

/// As [`observed_validator`], and with `usage` the gateway's usage rollup beside the
/// monitor too (what `--audit-db` adds: successful validations summed per token per
/// minute into the audit trail).
pub fn observed_validator_with(
    keys: &[Arc<Key>],
    cache_capacity: u64,
    usage: bool,
) -> (KeysetStore, Validator) {
    use tokenlife_core::Monitor;
    use tokenlife_core::observe::audit::Auditor;
    use tokenlife_core::rollout::{GuardPolicy, RolloutGuard};
    static RECORDER: std::sync::Once = std::sync::Once::new();
    RECORDER.call_once(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let _ = metrics::set_global_recorder(recorder);
    });
    let store = KeysetStore::new(Keyset::new(keys.iter().cloned()).expect("keys"));
    let monitor = Monitor::builder()
        .auditor(Auditor::builder().json_lines(std::io::sink()).build())
        .build();
    let guard = RolloutGuard::new(store.clone(), GuardPolicy::default()).notify(monitor.clone());
    let rollup = if usage {
        tokenlife_core::observe::usage::UsageRollup::for_monitor(&monitor)
            .map(tokenlife_core::observe::usage::UsageRollupBuilder::build)
    } else {
        None
    };
    let mut validator = Validator::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .cache_capacity(cache_capacity)
        .monitor(monitor)
        .also_observer(guard);
    if let Some(r) = rollup {
        validator = validator.also_observer(r);
    }
    (store, validator.build().expect("validator"))
}

/// jsonwebtoken's own `Validation` for the same checks the validator makes.
pub fn jwt_validation(alg: Algorithm) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v.set_required_spec_claims(&["iss", "aud", "exp"]);
    v
}

/// The public decoding key of `key`, as a jsonwebtoken user would build it from a JWKS.
pub fn decoding_key(key: &Key) -> jsonwebtoken::DecodingKey {
    match key.public_jwk() {
        Some(jwk) => jsonwebtoken::DecodingKey::from_jwk(jwk).expect("jwk"),
        None => jsonwebtoken::DecodingKey::from_secret(&[0x5a; 64]),
    }
}

/// Resident set size of this process in bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// The `p` quantile (0–1) of sorted durations (nearest rank).
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}
