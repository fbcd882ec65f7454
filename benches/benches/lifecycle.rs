//! Issuing against `jsonwebtoken::encode`, monitoring overhead, API-key validation.
//!
//! `cargo bench -p benches --bench lifecycle`

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use benches::{AUD, ISS, key, now, token, validator};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Header;
use serde::Serialize;
use tokenlife_core::apikey::ApiKeys;
use tokenlife_core::observe::audit::Auditor;
use tokenlife_core::{Algorithm, Issuer, Keyset, KeysetStore, Monitor, TokenRequest, Validator};

/// The same claims the issuer writes, for a fair `encode` baseline.
#[derive(Serialize)]
struct Same<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: &'a str,
    scope: &'a str,
}

fn issue_vs_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("issue_vs_encode");
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let k = key(alg);
        let store = KeysetStore::new(Keyset::new([k.clone()]).expect("keyset"));
        let issuer = Issuer::builder(store)
            .issuer(ISS)
            .audience(AUD)
            .build()
            .expect("issuer");
        // The issuer's own key material for the baseline: the fixed test PEMs.
        let enc = match alg {
            Algorithm::HS256 => jsonwebtoken::EncodingKey::from_secret(&[0x5a; 64]),
            Algorithm::RS256 => {
                jsonwebtoken::EncodingKey::from_rsa_pem(tokenlife_core::testing::RSA_PEM.as_bytes())
                    .expect("pem")
            }
            Algorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(
                tokenlife_core::testing::EC256_PEM.as_bytes(),
            )
            .expect("pem"),
            _ => jsonwebtoken::EncodingKey::from_ed_pem(
                tokenlife_core::testing::ED25519_PEM.as_bytes(),
            )
            .expect("pem"),
        };
        g.bench_function(format!("tokenlife_issue_access/{alg:?}"), |b| {
            b.iter(|| {
                issuer
                    .issue_access(black_box(
                        TokenRequest::subject("user-42").scope("orders:read"),
                    ))
                    .expect("issue")
            })
        });
        g.bench_function(format!("jsonwebtoken_encode/{alg:?}"), |b| {
            b.iter(|| {
                let mut header = Header::new(alg);
                header.kid = Some(format!("{alg:?}"));
                let t = now();
                let claims = Same {
                    iss: ISS,
                    sub: black_box("user-42"),
                    aud: AUD,
                    iat: t,
                    nbf: t,
                    exp: t + 900,
                    jti: "abcdefgh.1",
                    scope: "orders:read",
                };
                jsonwebtoken::encode(&header, &claims, &enc).expect("encode")
            })
        });
    }
    g.finish();
}

fn monitoring_overhead(c: &mut Criterion) {
    let mut g = c.benchmark_group("monitoring");
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    metrics::set_global_recorder(recorder).expect("recorder");
    let k = key(Algorithm::RS256);
    let tokens: Vec<String> = (0..64).map(|n| token(&k, n)).collect();

    let (_s, plain) = validator(std::slice::from_ref(&k), 10_000);
    let (sink, events) = Auditor::channel(100_000);
    let monitor = Monitor::builder()
        .auditor(Auditor::builder().sink(sink).build())
        .build();
    let store = KeysetStore::new(Keyset::new([k.clone()]).expect("keyset"));
    let monitored = Validator::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .monitor(monitor)
        .build()
        .expect("validator");
    for t in &tokens {
        plain.validate(t).expect("valid");
        monitored.validate(t).expect("valid");
    }
    let mut i = 0usize;
    g.bench_function("validate_hit/monitor_off", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            plain.validate(black_box(&tokens[i % 64])).expect("valid")
        })
    });
    g.bench_function("validate_hit/monitor_on", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            monitored
                .validate(black_box(&tokens[i % 64]))
                .expect("valid")
        })
    });
    let bad = format!("{}x", &tokens[0][..tokens[0].len() - 1]);
    g.bench_function("validate_failure/monitor_off", |b| {
        b.iter(|| plain.validate(black_box(&bad)).is_err())
    });
    g.bench_function("validate_failure/monitor_on", |b| {
        b.iter(|| monitored.validate(black_box(&bad)).is_err())
    });
    drop(events);
    g.finish();
}

fn api_keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("api_keys_100k");
    let keys = ApiKeys::builder().build();
    let raws: Vec<String> = (0..100_000)
        .map(|n| {
            keys.issue(&format!("client-{n}"), Duration::from_secs(86_400))
                .expect("issue")
                .0
        })
        .collect();
    let mut i = 0usize;
    g.bench_function("validate", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            keys.validate(black_box(&raws[i % raws.len()]))
                .expect("valid")
        })
    });
    g.finish();
}

/// The rollback pipeline's primitive: `KeysetStore::rollback()` right after a publish
/// (the publish is setup, not measured), and the guard's `rollback_from`.
fn keyset_rollback(c: &mut Criterion) {
    let mut g = c.benchmark_group("keyset");
    let keys = Keyset::new([key(Algorithm::ES256)]).expect("keyset");
    let store = KeysetStore::new(keys.clone());
    g.bench_function("rollback_after_publish", |b| {
        b.iter_batched(
            || {
                store.publish(keys.clone());
            },
            |()| store.rollback().expect("rollback"),
            criterion::BatchSize::PerIteration,
        )
    });
    g.bench_function("guard_rollback_from", |b| {
        b.iter_batched(
            || {
                let from = store.publish(keys.clone());
                (from, store.history()[0].version())
            },
            |(from, to)| store.rollback_from(from, to).expect("rollback"),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = issue_vs_encode, monitoring_overhead, api_keys, keyset_rollback
}
criterion_main!(benches);
