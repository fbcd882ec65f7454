//! Validator hot path against `jsonwebtoken::decode`, and revocation lookups.
//!
//! `cargo bench -p benches --bench validate`

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use benches::{decoding_key, jwt_validation, key, token, validator};
use criterion::{Criterion, criterion_group, criterion_main};
use tokenlife_core::validate::RegisteredClaims;
use tokenlife_core::{Algorithm, Keyset, RevocationList};

fn hit_vs_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("hit_vs_decode");
    let k = key(Algorithm::RS256);
    let (_store, v) = validator(std::slice::from_ref(&k), 10_000);
    let t = token(&k, 1);
    v.validate(&t).expect("valid");
    assert!(v.validate(&t).expect("valid").from_cache());
    let dk = decoding_key(&k);
    let val = jwt_validation(Algorithm::RS256);
    g.bench_function("tokenlife_hit/RS256", |b| {
        b.iter(|| v.validate(black_box(&t)).expect("valid"))
    });
    g.bench_function("jsonwebtoken_decode/RS256", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<RegisteredClaims>(black_box(&t), &dk, &val).expect("valid")
        })
    });
    g.finish();
}

fn miss_vs_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("miss_vs_decode");
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::HS256,
    ] {
        let k = key(alg);
        // Cache off: every call is a full verification.
        let (_store, v) = validator(std::slice::from_ref(&k), 0);
        let t = token(&k, 1);
        let dk = decoding_key(&k);
        let val = jwt_validation(alg);
        jsonwebtoken::decode::<RegisteredClaims>(&t, &dk, &val).expect("decode");
        g.bench_function(format!("tokenlife_miss/{alg:?}"), |b| {
            b.iter(|| v.validate(black_box(&t)).expect("valid"))
        });
        g.bench_function(format!("jsonwebtoken_decode/{alg:?}"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<RegisteredClaims>(black_box(&t), &dk, &val).expect("valid")
            })
        });
    }
    g.finish();
}

/// The cold target: a cache-miss `validate` (header, key lookup, signature,
/// claims) against the bare signature check it cannot avoid — the same token's
/// signature decoded and verified by aws-lc-rs with the public key parsed once.
fn miss_vs_bare_verify(c: &mut Criterion) {
    use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::DecodingKeyKind;

    let mut g = c.benchmark_group("miss_vs_bare_verify");
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let k = key(alg);
        let (_store, v) = validator(std::slice::from_ref(&k), 0);
        let t = token(&k, 1);
        let dk = decoding_key(&k);
        let parsed = match (alg, dk.kind()) {
            (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
                RsaPublicKeyComponents { n, e }
                    .to_parsed_public_key(&sig::RSA_PKCS1_2048_8192_SHA256)
                    .expect("rsa key")
            }
            (_, DecodingKeyKind::SecretOrDer(point)) => {
                ParsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point).expect("ec key")
            }
            _ => unreachable!("RS256 and ES256 keys"),
        };
        let (message, signature) = t.rsplit_once('.').expect("three parts");
        g.bench_function(format!("tokenlife_miss/{alg:?}"), |b| {
            b.iter(|| v.validate(black_box(&t)).expect("valid"))
        });
        g.bench_function(format!("bare_aws_lc_verify/{alg:?}"), |b| {
            b.iter(|| {
                let mut buf = [0u8; 512];
                let n = URL_SAFE_NO_PAD
                    .decode_slice(black_box(signature), &mut buf)
                    .expect("base64");
                parsed
                    .verify_sig(black_box(message).as_bytes(), &buf[..n])
                    .expect("valid")
            })
        });
    }
    g.finish();
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended");
    let keys = [key(Algorithm::RS256), key(Algorithm::ES256)];
    let (store, v) = validator(&keys, 10_000);
    let tokens: Vec<String> = (0..64).map(|n| token(&keys[(n % 2) as usize], n)).collect();
    for t in &tokens {
        v.validate(t).expect("valid");
    }
    let mut i = 0usize;
    g.bench_function("validate_hit/uncontended", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            v.validate(black_box(&tokens[i % tokens.len()]))
                .expect("valid")
        })
    });
    // Another thread publishes and rolls back (both keysets hold the tokens' keys).
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (store, stop) = (store.clone(), stop.clone());
        let a = Keyset::new(keys.iter().cloned())
            .expect("keys")
            .with_label("a");
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                store.publish(a.clone());
                store.rollback().expect("rollback");
                swaps += 2;
            }
            swaps
        })
    };
    g.bench_function("validate_hit/while_swapping", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            v.validate(black_box(&tokens[i % tokens.len()]))
                .expect("valid")
        })
    });
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    eprintln!("contended: {swaps} keyset swaps during the contended run");

    // Control: the other core just as busy (allocating and freeing, as the swapper does),
    // but never touching the store. What this costs is the machine's, not the design's.
    stop.store(false, Ordering::Relaxed);
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let v: Vec<u64> = (0..32).collect();
                black_box(Arc::new(v));
            }
        })
    };
    g.bench_function("validate_hit/other_core_busy_elsewhere", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            v.validate(black_box(&tokens[i % tokens.len()]))
                .expect("valid")
        })
    });
    stop.store(true, Ordering::Relaxed);
    busy.join().expect("busy thread");
    g.finish();
}

fn revocation(c: &mut Criterion) {
    let mut g = c.benchmark_group("revocation_1m");
    let list = RevocationList::new();
    let until = SystemTime::now() + Duration::from_secs(3600);
    let before = benches::rss_bytes();
    for n in 0..1_000_000u32 {
        list.revoke_jti(&format!("jti-{n:08}"), until)
            .expect("revoke");
    }
    list.run_pending_tasks();
    let after = benches::rss_bytes();
    eprintln!(
        "revocation_1m: {} entries, RSS grew by {:.1} MB",
        list.len(),
        (after.saturating_sub(before)) as f64 / 1e6
    );
    let now = benches::now();
    let mut n = 0u32;
    // Spread over the whole list, so lookups pay the cache misses a real list costs.
    const PROBES: usize = 65_536;
    let hits: Vec<String> = (0..PROBES)
        .map(|i| format!("jti-{:08}", (i * 15_259) % 1_000_000))
        .collect();
    let misses: Vec<String> = (0..PROBES).map(|i| format!("nope-{i:08}")).collect();
    g.bench_function("lookup_hit", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            assert!(
                list.check(
                    Some(black_box(&hits[n as usize % PROBES])),
                    None,
                    None,
                    None,
                    now
                )
                .is_some()
            )
        })
    });
    g.bench_function("lookup_miss", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            assert!(
                list.check(
                    Some(black_box(&misses[n as usize % PROBES])),
                    None,
                    None,
                    None,
                    now
                )
                .is_none()
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = hit_vs_decode, miss_vs_decode, miss_vs_bare_verify, contended, revocation
}
criterion_main!(benches);
